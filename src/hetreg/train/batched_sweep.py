"""Batched training inside a sweep: which planned runs train together, and running them as one unit.

An executor (``hetreg.experiments.executor``) runs :class:`~hetreg.experiments.executor.RunSpec`
objects one at a time with ``execute_run``. With the two functions here it can hand over *units*
instead: :func:`group_run_specs` puts the fresh runs of the default target that
:func:`hetreg.train.batched.batch_groups` can train together into groups (every other run is a
unit of one), and :func:`execute_unit` runs a unit, a group through
:func:`hetreg.train.batched.run_batched` and a single run through ``execute_run``, returning one
``RunResult`` per run with the same files and fields as ``execute_run`` gives (``run.log`` in
each run folder, ``summary.json`` completed with ``error`` and ``log`` for a failed run).
"""

from __future__ import annotations

import contextlib
import math
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hetreg.train.batched import batch_groups

if TYPE_CHECKING:  # the executor imports this module lazily; keep the import one-way at run time
    from hetreg.experiments.executor import RunResult, RunSpec

__all__ = ["DEFAULT_MAX_GROUP", "execute_unit", "group_run_specs"]

#: Largest number of runs trained as one group (memory and open files grow with it).
DEFAULT_MAX_GROUP = 128


def _batchable(spec: RunSpec) -> bool:
    from hetreg.experiments.executor import DEFAULT_TARGET

    return spec.target == DEFAULT_TARGET and not spec.resume


def group_run_specs(
    specs: Sequence[RunSpec],
    *,
    parts: int = 1,
    max_size: int = DEFAULT_MAX_GROUP,
) -> list[list[RunSpec]]:
    """Split planned runs into units: groups that train batched, and single runs.

    A run can join a group when it is fresh (``resume`` false: a resumed run continues its own
    checkpoint with the plain trainer) and uses the default run target; such runs are grouped by
    :func:`hetreg.train.batched.batch_groups`. Each group is cut into at least ``parts`` near-equal
    groups (one per worker, so that every worker gets work) of at most ``max_size`` runs.

    Args:
        specs: the planned runs, in order.
        parts: the number of workers that will run the units.
        max_size: the largest group.

    Returns:
        The units, groups first in the order of their first run, then the single runs in order.
    """
    if parts < 1 or max_size < 1:
        raise ValueError(f"parts and max_size must be >= 1, got parts={parts}, max_size={max_size}")
    candidates = [i for i, s in enumerate(specs) if _batchable(s)]
    units: list[list[RunSpec]] = []
    singles = sorted(set(range(len(specs))) - set(candidates))
    if candidates:
        groups = batch_groups([specs[i].config for i in candidates], max_size=None)
        for group in groups:
            if len(group) == 1:
                singles.append(candidates[group[0]])
                continue
            size = min(max_size, math.ceil(len(group) / parts))
            for part in batch_groups([specs[candidates[j]].config for j in group], max_size=size):
                units.append([specs[candidates[group[j]]] for j in part])
    units.extend([specs[i]] for i in sorted(singles))
    return units


def _header(spec: RunSpec, text: str) -> None:
    from hetreg.experiments import runstore

    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / runstore.LOG_FILE, "a", encoding="utf-8") as log:
        log.write(f"=== run {spec.run_id} {text} {time.strftime('%Y-%m-%d %H:%M:%S')}\n")


def execute_unit(unit: Sequence[RunSpec]) -> list[RunResult]:
    """Run one unit of :func:`group_run_specs` in this process; never raises on a run's failure.

    A single run goes to ``execute_run``. A group is trained by
    :func:`hetreg.train.batched.run_batched`; its output is logged in the first run's ``run.log``
    (the other logs point to it). If the group cannot start (its folders are not fresh, or the
    configurations turn out not to batch), its runs are executed one by one instead. A run that
    fails gets status ``failed``, its one-line error and the log path in ``summary.json``, as with
    ``execute_run``. ``KeyboardInterrupt`` is re-raised after the runs' summaries are written.
    """
    from hetreg.experiments import runstore
    from hetreg.experiments.executor import RunResult, _apply_thread_limit, execute_run, one_line
    from hetreg.train.batched import run_batched
    from hetreg.train.runner import RunExistsError, run_status

    if len(unit) == 1:
        return [execute_run(unit[0])]
    first_log = Path(unit[0].run_dir) / runstore.LOG_FILE
    for i, spec in enumerate(unit):
        where = "" if i == 0 else f"; the group's output is in {first_log}"
        _header(spec, f"started (batched with {len(unit)} runs{where})")
    start = time.monotonic()
    error: str | None = None
    unbatched = False
    interrupted: KeyboardInterrupt | None = None
    with open(first_log, "a", encoding="utf-8") as log:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            try:
                _apply_thread_limit()
                run_batched([s.config for s in unit], [s.run_dir for s in unit], quiet=all(s.quiet for s in unit))
            except KeyboardInterrupt as exc:
                interrupted = exc
            except Exception as exc:  # noqa: BLE001 - a group's failure must not end the sweep
                written = any(run_status(s.run_dir) is not None for s in unit)
                if isinstance(exc, (ValueError, RunExistsError)) and not written:
                    log.write(f"the group was not started ({one_line(exc)}); its runs are executed one by one\n")
                    unbatched = True
                else:
                    error = one_line(exc)
                    traceback.print_exc(file=log)
    if unbatched:
        return [execute_run(spec) for spec in unit]
    elapsed = time.monotonic() - start
    results: list[RunResult] = []
    for spec in unit:
        run_dir = Path(spec.run_dir)
        log_path = run_dir / runstore.LOG_FILE
        summary: dict[str, Any] = runstore.read_json(run_dir / runstore.SUMMARY_FILE)
        written_status = summary.get("status")
        run_error: str | None = None
        if written_status == "completed":
            status = "completed"
        elif written_status in ("failed", "interrupted"):
            status = str(written_status)
            reason = summary.get("error") or summary.get("message") or f"the run reported status {written_status}"
            run_error = str(reason).strip().splitlines()[0]
        elif interrupted is not None:
            status, run_error = "interrupted", "interrupted by the user"
        else:
            status, run_error = "failed", error or "the run finished without writing a completed summary.json"
        if status != "completed":
            summary = {**summary, "status": status, "error": summary.get("error") or run_error, "log": str(first_log)}
            runstore.write_json(run_dir / runstore.SUMMARY_FILE, summary)
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"=== run {spec.run_id} {status} after {elapsed:.1f} s (batched with {len(unit)} runs)\n")
        results.append(
            RunResult(run_id=spec.run_id, status=status, error=run_error, log_path=str(log_path), elapsed=elapsed, summary=summary)
        )
    if interrupted is not None:
        raise interrupted
    return results
