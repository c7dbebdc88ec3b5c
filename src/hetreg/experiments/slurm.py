"""Sweeps on a Slurm cluster through submitit: one job array per sweep, requeued on preemption.

:class:`SlurmExecutor` plugs into the sweep machinery like the local process pool: the sweep
plans its runs (completed runs are skipped, interrupted ones resumed, see
:mod:`hetreg.experiments.sweep`), and the executor submits the runs left to do as **one** Slurm
job array, one array task per run. Each task calls :func:`~hetreg.experiments.executor.execute_run`
on the compute node, so results land in the sweep's run store (``OUT/runs/<id>/``) exactly as
with ``--executor local`` and ``hetreg report`` reads them unchanged::

    from hetreg.experiments.slurm import SlurmExecutor, SlurmOptions
    options = SlurmOptions(partition="gpu", time_min=120, cpus_per_task=4, mem_gb=16, gpus=1)
    run_sweep(spec, out, executor=SlurmExecutor(options))

    hetreg sweep -c wine.yaml --grid seed=0-9 --executor slurm --slurm-partition gpu ...

Fault tolerance:

* a task that is preempted, or reaches ``signal_delay_s`` seconds before its time limit,
  receives ``SIGUSR2``; submitit then calls :meth:`SlurmRunTask.checkpoint`, which resubmits the
  same :class:`~hetreg.experiments.executor.RunSpec` with ``resume=True`` and requeues the task:
  it continues from the run's ``last.pt`` (written by the trainer at every epoch end);
* a task that ends without a result (``scancel``, node failure, killed by the out-of-memory
  killer) is reported as an ``interrupted`` or ``failed`` :class:`RunResult` naming the Slurm
  job id and its log files, recorded in the run's ``summary.json``; the other runs go on;
* rerunning the same sweep submits only the runs that have not completed (the sweep's own
  skip/resume plan); runs still queued or running from an earlier submission are refused
  (:func:`check_no_active_jobs`) instead of being started twice.

Layout of the submitit folder (``OUT/slurm/`` unless ``folder`` is given)::

    <job>_submission.sh          the sbatch script of the array
    <job>_<task>_submitted.pkl   the pickled task (run spec); rewritten at each checkpoint
    <job>_<task>_0_log.out       stdout / stderr of the task (submitit's own log lines included)
    <job>_<task>_0_log.err
    <job>_<task>_0_result.pkl    the task's RunResult, written when it ends
    jobs.json                    every submission: which run went to which array task

submitit is imported only when something is submitted or described, so this module (and the
``slurm`` executor name) is available without it; install it with the ``slurm`` extra.
"""

from __future__ import annotations

import getpass
import math
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Mapping, Protocol, Sequence

from hetreg.experiments import runstore
from hetreg.experiments.executor import (
    Executor,
    RunResult,
    RunSpec,
    _init_worker,
    execute_run,
    executor_names,
    register_executor,
)

__all__ = [
    "DEFAULT_FOLDER",
    "JOBS_FILE",
    "Cluster",
    "SlurmError",
    "SlurmExecutor",
    "SlurmOptions",
    "SlurmRunTask",
    "SubmititSlurmCluster",
    "active_jobs",
    "check_no_active_jobs",
    "describe_submission",
    "dry_run_sweep",
    "format_memory",
    "parse_memory_gb",
    "parse_sbatch_flags",
    "parse_time_limit",
    "recorded_jobs",
    "submission_plan",
]

#: Name of the submitit folder inside a sweep folder (``OUT/slurm``).
DEFAULT_FOLDER = "slurm"
#: Record of the submissions (run id -> array task), inside the submitit folder.
JOBS_FILE = "jobs.json"

INSTALL_HINT = 'pip install -c constraints.txt -e ".[slurm]"'

#: Slurm states of a job that was stopped from outside (the run can resume from its checkpoint).
INTERRUPTED_STATES = frozenset({"CANCELLED", "PREEMPTED", "TIMEOUT", "DEADLINE"})

#: sbatch flags that hetreg or submitit set themselves, with the way to set them instead.
RESERVED_FLAGS: dict[str, str] = {
    "partition": "use partition= (--slurm-partition)",
    "time": "use time_min= (--slurm-time)",
    "cpus-per-task": "use cpus_per_task= (--slurm-cpus)",
    "mem": "use mem_gb= (--slurm-mem)",
    "gpus-per-node": "use gpus= (--slurm-gpus)",
    "job-name": "use job_name= (--slurm-job-name)",
    "array": "the job array is built from the sweep's runs (parallelism: --slurm-parallel)",
    "output": "submitit writes the logs into the submitit folder (--slurm-folder)",
    "error": "submitit writes the logs into the submitit folder (--slurm-folder)",
    "open-mode": "submitit appends to the logs so that requeued tasks keep their history",
    "signal": "set by submitit from signal_delay_s (the preemption/timeout signal)",
    "wrap": "the job's command is submitit's",
    "parsable": "submitit reads sbatch's normal output",
}

_FLAG_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_TIME_FORMATS = (
    (re.compile(r"^(\d+)$"), ("m",)),
    (re.compile(r"^(\d+):(\d+)$"), ("m", "s")),
    (re.compile(r"^(\d+):(\d+):(\d+)$"), ("h", "m", "s")),
    (re.compile(r"^(\d+)-(\d+)$"), ("d", "h")),
    (re.compile(r"^(\d+)-(\d+):(\d+)$"), ("d", "h", "m")),
    (re.compile(r"^(\d+)-(\d+):(\d+):(\d+)$"), ("d", "h", "m", "s")),
)
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([KMGT]?)(?:B|iB)?\s*$", re.IGNORECASE)
_MEMORY_GB = {"": 1.0, "K": 1.0 / 1024**2, "M": 1.0 / 1024, "G": 1.0, "T": 1024.0}


class SlurmError(ValueError):
    """A Slurm submission cannot be made as asked: submitit or the Slurm commands are missing,
    sbatch refused the job, or runs of the sweep are still queued or running."""


# ------------------------------------------------------------------------------------- parsing


def parse_time_limit(value: int | float | str) -> int:
    """A Slurm time limit in whole minutes (seconds are rounded up).

    Accepts minutes as a number, or Slurm's text forms ``MM``, ``MM:SS``, ``HH:MM:SS``,
    ``D-HH``, ``D-HH:MM`` and ``D-HH:MM:SS``. Formula: minutes = ceil(total seconds / 60).

    Raises:
        ValueError: not one of those forms, or not positive.
    """
    if isinstance(value, bool):
        raise ValueError(f"time limit must be minutes or D-HH:MM:SS, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"time limit must be > 0 minutes, got {value}")
        return int(math.ceil(value))
    text = str(value).strip()
    for pattern, units in _TIME_FORMATS:
        match = pattern.match(text)
        if match:
            seconds = sum(int(n) * _SECONDS[u] for n, u in zip(match.groups(), units))
            if seconds <= 0:
                raise ValueError(f"time limit must be > 0, got {value!r}")
            return int(math.ceil(seconds / 60))
    raise ValueError(
        f"time limit {value!r} is not understood; give minutes (90) or D-HH:MM:SS (2:00:00, 1-12:00:00)"
    )


def parse_memory_gb(value: int | float | str) -> float:
    """Memory in GB (2**30 bytes) from a number of GB or a text like ``16G``, ``512M``, ``1.5T``.

    Raises:
        ValueError: not a positive amount with an optional K/M/G/T suffix.
    """
    if isinstance(value, bool):
        raise ValueError(f"memory must be a number of GB or a size like 16G, got {value!r}")
    if isinstance(value, (int, float)):
        gb = float(value)
    else:
        match = _MEMORY.match(str(value))
        if not match:
            raise ValueError(f"memory {value!r} is not understood; give GB (16) or a size with a unit (16G, 512M)")
        gb = float(match.group(1)) * _MEMORY_GB[match.group(2).upper()]
    if not math.isfinite(gb) or gb <= 0:
        raise ValueError(f"memory must be > 0 GB, got {value!r}")
    return gb


def format_memory(gb: float) -> str:
    """The ``--mem`` value of ``gb`` GB: whole gigabytes as ``<n>G``, else whole megabytes ``<n>M``
    (rounded up, so a request is never smaller than asked)."""
    if float(gb).is_integer():
        return f"{int(gb)}G"
    return f"{int(math.ceil(gb * 1024))}M"


def parse_sbatch_flags(
    flags: Mapping[str, Any] | Iterable[str] | None,
) -> tuple[tuple[str, str | bool], ...]:
    """Extra sbatch flags as ``((key, value), ...)``, keys in sbatch's dashed long form.

    Accepts a mapping ``{"account": "abc", "requeue": True}`` or strings ``"--account=abc"``,
    ``"account=abc"``, ``"--requeue"`` (a flag without a value). A value ``True`` writes the bare
    flag; ``False``/``None`` drops it.

    Raises:
        ValueError: a short option (``-A``), a malformed key, a repeated key, or a flag that
            hetreg or submitit sets itself (the message says which option to use instead).
    """
    if flags is None:
        return ()
    pairs: list[tuple[str, Any]] = []
    if isinstance(flags, Mapping):
        pairs = [(str(k), v) for k, v in flags.items()]
    else:
        if isinstance(flags, str):
            flags = [flags]
        for item in flags:
            text = str(item).strip()
            if text.startswith("-") and not text.startswith("--"):
                raise ValueError(
                    f"sbatch flag {item!r}: give the long form --key=value (e.g. --account=abc instead of -A abc)"
                )
            key, sep, value = text.lstrip("-").partition("=")
            pairs.append((key, value if sep else True))
    out: list[tuple[str, str | bool]] = []
    seen: set[str] = set()
    for raw_key, value in pairs:
        key = raw_key.strip().lstrip("-").replace("_", "-")
        if not _FLAG_KEY.match(key):
            raise ValueError(f"sbatch flag {raw_key!r} is not a valid long option name; write it as --key=value")
        if key in RESERVED_FLAGS:
            raise ValueError(f"sbatch flag --{key} cannot be given as an extra flag: {RESERVED_FLAGS[key]}")
        if key in seen:
            raise ValueError(f"sbatch flag --{key} is given twice; keep one")
        seen.add(key)
        if value is None or value is False:
            continue
        if value is True:
            out.append((key, True))
            continue
        text = str(value)
        if not text or "\n" in text:
            raise ValueError(f"sbatch flag --{key} needs a one-line value (--{key}=VALUE), got {value!r}")
        out.append((key, text))
    return tuple(out)


# ------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class SlurmOptions:
    """How the runs of a sweep are submitted (one Slurm array task per run).

    Attributes:
        partition: Slurm partition (``None``: the cluster's default partition).
        time_min: time limit of each task, in minutes (``--time``); a text such as
            ``"2:00:00"`` is read by :func:`parse_time_limit`.
        cpus_per_task: CPUs of each task (``--cpus-per-task``); torch uses as many threads.
        mem_gb: memory of each task in GB (``--mem``; ``None``: the cluster's default).
        gpus: GPUs of each task (``--gpus-per-node``; 0: none requested).
        array_parallelism: at most this many tasks at a time (``--array=0-N%P``; ``None``:
            submitit's default of 256).
        sbatch_flags: extra sbatch flags, ``((key, value), ...)`` (see :func:`parse_sbatch_flags`).
        job_name: Slurm job name (``--job-name``).
        folder: the submitit folder (``None``: ``OUT/slurm`` of the sweep).
        setup: shell lines run by the sbatch script before the task (``module load ...``,
            ``export HETREG_DATA=...``).
        signal_delay_s: seconds before the time limit at which the task receives ``SIGUSR2`` to
            checkpoint and requeue itself.
        max_timeouts: how many times a task that reached its time limit is requeued.
        poll_interval_s: seconds between two checks of the queue while waiting.
        grace_s: how long a task may be gone from the queue without a result file before it is
            reported as lost (shared file systems can show files late).
        cancel_on_interrupt: cancel the sweep's unfinished tasks when the waiting process is
            interrupted (Ctrl-C), so that the sweep can be resumed at once.
    """

    partition: str | None = None
    time_min: int = 60
    cpus_per_task: int = 1
    mem_gb: float | None = None
    gpus: int = 0
    array_parallelism: int | None = None
    sbatch_flags: tuple[tuple[str, str | bool], ...] = ()
    job_name: str = "hetreg"
    folder: str | None = None
    setup: tuple[str, ...] = ()
    signal_delay_s: int = 90
    max_timeouts: int = 3
    poll_interval_s: float = 10.0
    grace_s: float = 30.0
    cancel_on_interrupt: bool = True

    def __post_init__(self) -> None:
        if self.partition is not None and (not str(self.partition).strip() or re.search(r"\s", str(self.partition))):
            raise ValueError(f"partition must be a partition name without spaces (sinfo lists them), got {self.partition!r}")
        if isinstance(self.time_min, str):  # "2:00:00", "1-12:00:00", "90"
            object.__setattr__(self, "time_min", _cli_value(parse_time_limit, self.time_min, "time_min"))
        _check_int(self.time_min, "time_min (--slurm-time, minutes)", minimum=1)
        _check_int(self.cpus_per_task, "cpus_per_task (--slurm-cpus)", minimum=1)
        if self.mem_gb is not None:
            object.__setattr__(self, "mem_gb", _check_memory(self.mem_gb))
        _check_int(self.gpus, "gpus (--slurm-gpus)", minimum=0)
        if self.array_parallelism is not None:
            _check_int(self.array_parallelism, "array_parallelism (--slurm-parallel / --workers)", minimum=1)
        object.__setattr__(self, "sbatch_flags", parse_sbatch_flags(_flag_source(self.sbatch_flags)))
        if not isinstance(self.job_name, str) or not self.job_name.strip() or re.search(r"\s", self.job_name):
            raise ValueError(f"job_name must be a non-empty name without spaces, got {self.job_name!r}")
        if self.folder is not None:
            object.__setattr__(self, "folder", str(self.folder))
        if isinstance(self.setup, str):
            raise ValueError("setup must be a list of shell lines, not one string; pass [line] or split it")
        object.__setattr__(self, "setup", tuple(str(line) for line in self.setup))
        _check_int(self.signal_delay_s, "signal_delay_s", minimum=0)
        if self.signal_delay_s >= 60 * self.time_min:
            raise ValueError(
                f"signal_delay_s ({self.signal_delay_s} s) must be shorter than the time limit "
                f"({self.time_min} min = {60 * self.time_min} s): the checkpoint signal would come at once; "
                "raise time_min or lower signal_delay_s"
            )
        _check_int(self.max_timeouts, "max_timeouts", minimum=0)
        if not (isinstance(self.poll_interval_s, (int, float)) and math.isfinite(self.poll_interval_s) and self.poll_interval_s > 0):
            raise ValueError(f"poll_interval_s must be > 0 seconds, got {self.poll_interval_s!r}")
        if not (isinstance(self.grace_s, (int, float)) and math.isfinite(self.grace_s) and self.grace_s >= 0):
            raise ValueError(f"grace_s must be >= 0 seconds, got {self.grace_s!r}")

    @classmethod
    def from_cli(
        cls,
        *,
        partition: str | None = None,
        time: int | str | None = None,
        cpus: int | None = None,
        mem: float | str | None = None,
        gpus: int | None = None,
        array_parallelism: int | None = None,
        flags: Mapping[str, Any] | Iterable[str] | None = None,
        job_name: str | None = None,
        folder: str | Path | None = None,
        setup: Sequence[str] = (),
        workers: int | None = None,
    ) -> "SlurmOptions":
        """Options from command-line values; ``None`` keeps the default.

        Args:
            partition: ``--slurm-partition``.
            time: ``--slurm-time``: minutes, or ``D-HH:MM:SS`` (:func:`parse_time_limit`).
            cpus: ``--slurm-cpus``.
            mem: ``--slurm-mem``: GB, or a size like ``16G`` (:func:`parse_memory_gb`).
            gpus: ``--slurm-gpus``.
            array_parallelism: ``--slurm-parallel``.
            flags: ``--slurm-flag`` values (``--key=value``, repeatable).
            job_name: ``--slurm-job-name``.
            folder: ``--slurm-folder``.
            setup: ``--slurm-setup`` lines.
            workers: ``--workers``: the array parallelism when ``array_parallelism`` is not given.
        """
        values: dict[str, Any] = {}
        if partition is not None:
            values["partition"] = partition
        if time is not None:
            values["time_min"] = _cli_value(parse_time_limit, time, "--slurm-time")
        if cpus is not None:
            values["cpus_per_task"] = cpus
        if mem is not None:
            values["mem_gb"] = _cli_value(parse_memory_gb, mem, "--slurm-mem")
        if gpus is not None:
            values["gpus"] = gpus
        parallel = array_parallelism if array_parallelism is not None else workers
        if parallel is not None:
            values["array_parallelism"] = parallel
        if flags:
            values["sbatch_flags"] = _cli_value(parse_sbatch_flags, flags, "--slurm-flag")
        if job_name is not None:
            values["job_name"] = job_name
        if folder is not None:
            values["folder"] = str(folder)
        if setup:
            values["setup"] = tuple(setup)
        return cls(**values)

    def to_submitit_parameters(self) -> dict[str, Any]:
        """Keyword arguments of ``submitit.SlurmExecutor.update_parameters`` (sbatch's names).

        Maps ``time_min`` -> ``time``, ``mem_gb`` -> ``mem`` (:func:`format_memory`), ``gpus`` ->
        ``gpus_per_node``, ``sbatch_flags`` -> ``additional_parameters``, ``setup`` -> ``setup``.
        Unset options are left out (the cluster's defaults apply).
        """
        params: dict[str, Any] = {
            "job_name": self.job_name,
            "time": self.time_min,
            "cpus_per_task": self.cpus_per_task,
            "signal_delay_s": self.signal_delay_s,
        }
        if self.partition is not None:
            params["partition"] = self.partition
        if self.mem_gb is not None:
            params["mem"] = format_memory(self.mem_gb)
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        if self.array_parallelism is not None:
            params["array_parallelism"] = self.array_parallelism
        if self.setup:
            params["setup"] = list(self.setup)
        if self.sbatch_flags:
            params["additional_parameters"] = dict(self.sbatch_flags)
        return params

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sbatch_flags"] = [list(pair) for pair in self.sbatch_flags]
        d["setup"] = list(self.setup)
        return d

    def describe(self) -> str:
        """One line: partition, time, CPUs, memory, GPUs, parallelism."""
        parts = [f"partition {self.partition or '(default)'}", f"{self.time_min} min", f"{self.cpus_per_task} CPU"]
        if self.mem_gb is not None:
            parts.append(f"mem {format_memory(self.mem_gb)}")
        if self.gpus:
            parts.append(f"{self.gpus} GPU")
        parts.append(f"≤{self.array_parallelism} at a time" if self.array_parallelism else "no parallelism limit")
        return ", ".join(parts)


def _check_int(value: Any, name: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_memory(value: Any) -> float:
    try:
        return parse_memory_gb(value)
    except ValueError as exc:
        raise ValueError(f"mem_gb (--slurm-mem): {exc}") from None


def _flag_source(flags: Any) -> Any:
    """``sbatch_flags`` as given: already-parsed pairs are turned back into a mapping."""
    if isinstance(flags, (tuple, list)) and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in flags):
        keys = [str(p[0]) for p in flags]
        if len(set(keys)) != len(keys):  # let parse_sbatch_flags report the repeated key
            return [f"--{k}" if v is True else f"--{k}={v}" for k, v in flags]
        return {str(k): v for k, v in flags}
    return flags


def _cli_value(parse: Callable[[Any], Any], value: Any, flag: str) -> Any:
    try:
        return parse(value)
    except ValueError as exc:
        raise ValueError(f"{flag}: {exc}") from None


# -------------------------------------------------------------------------------- submitit glue


def _require_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise SlurmError(f"the slurm executor needs submitit, which is not installed: {INSTALL_HINT}") from None
    return submitit


def sweep_folder_of(runs: Sequence[Any]) -> Path:
    """The sweep folder ``OUT`` shared by ``runs`` (each run lives in ``OUT/runs/<id>``).

    Raises:
        ValueError: the runs are not in one sweep's ``runs`` folder (then give ``folder``).
    """
    outs = set()
    for run in runs:
        run_dir = Path(run.run_dir).absolute()
        if run_dir.parent.name != runstore.RUNS_DIR:
            raise ValueError(
                f"run {run.run_id}: {run_dir} is not inside a sweep's {runstore.RUNS_DIR}/ folder; "
                "give the submitit folder explicitly (SlurmOptions(folder=...), --slurm-folder)"
            )
        outs.add(run_dir.parent.parent)
    if len(outs) != 1:
        raise ValueError(
            f"the runs belong to {len(outs)} different sweep folders; give the submitit folder explicitly "
            "(SlurmOptions(folder=...), --slurm-folder)"
        )
    return outs.pop()


def submitit_folder(runs: Sequence[Any], options: SlurmOptions) -> Path:
    """``options.folder``, else ``OUT/slurm`` of the sweep the runs belong to (absolute)."""
    if options.folder is not None:
        return Path(options.folder).expanduser().absolute()
    return sweep_folder_of(runs) / DEFAULT_FOLDER


def _submit_command(folder: Path) -> str:
    """The command submitit puts in the sbatch script (same text as submitit's own)."""
    return " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))])


def sbatch_script(options: SlurmOptions, folder: Path, n_tasks: int) -> str:
    """The sbatch script submitit writes for ``n_tasks`` runs (an array when ``n_tasks > 1``)."""
    _require_submitit()
    from submitit.slurm.slurm import _make_sbatch_string

    params = options.to_submitit_parameters()
    if n_tasks > 1:
        params["map_count"] = n_tasks
    return _make_sbatch_string(command=_submit_command(folder), folder=folder, **params)


# --------------------------------------------------------------------------------- dry run


def _action(run: Any) -> str:
    action = getattr(run, "action", None)
    if action is None:
        return "resume" if getattr(run, "resume", False) else "run"
    return str(action)


def submission_plan(runs: Sequence[Any], options: SlurmOptions, *, folder: str | Path | None = None) -> dict[str, Any]:
    """What :class:`SlurmExecutor` would submit for ``runs``, without submitting.

    Args:
        runs: :class:`~hetreg.experiments.sweep.PlannedRun` (runs whose ``action`` is ``skip``
            are listed but not submitted) or :class:`~hetreg.experiments.executor.RunSpec`.
        options: the Slurm options.
        folder: the submitit folder (default: ``options.folder``, else ``OUT/slurm``).

    Returns:
        ``folder``, ``tasks`` (number of array tasks), ``parameters`` (submitit's
        ``update_parameters`` arguments), ``sbatch`` (the ``#SBATCH`` lines), ``script`` (the
        whole sbatch script, ``None`` when nothing would be submitted) and ``runs`` (one dict per
        run: ``task`` index or ``None`` when skipped, ``run_id``, ``action``, ``label``, ``run_dir``).
    """
    where = Path(folder).expanduser().absolute() if folder is not None else (
        submitit_folder(runs, options) if runs else Path(options.folder or DEFAULT_FOLDER).absolute()
    )
    rows = []
    task = 0
    for run in runs:
        action = _action(run)
        index = None
        if action != "skip":
            index, task = task, task + 1
        rows.append(
            {
                "task": index,
                "run_id": run.run_id,
                "action": action,
                "label": getattr(run, "label", run.run_id),
                "run_dir": str(run.run_dir),
            }
        )
    script = sbatch_script(options, where, task) if task else None
    sbatch = [line for line in (script or "").splitlines() if line.startswith("#SBATCH")]
    return {
        "folder": str(where),
        "tasks": task,
        "parameters": options.to_submitit_parameters(),
        "sbatch": sbatch,
        "script": script,
        "runs": rows,
    }


def describe_submission(runs: Sequence[Any], options: SlurmOptions, *, folder: str | Path | None = None) -> str:
    """Text of :func:`submission_plan`: the sbatch script submitit would use and the list of runs."""
    plan = submission_plan(runs, options, folder=folder)
    skipped = sum(1 for r in plan["runs"] if r["task"] is None)
    lines = [
        "dry run: nothing is submitted",
        f"slurm: {options.describe()}",
        f"submitit folder (logs): {plan['folder']}",
        f"job array: {plan['tasks']} task(s)" + (f", {skipped} run(s) skipped (already completed)" if skipped else ""),
    ]
    if plan["script"] is not None:
        lines += ["", "sbatch script:"] + [f"  {line}" if line else "" for line in plan["script"].rstrip().splitlines()]
    lines += ["", "runs:"]
    width = max((len(r["run_id"]) for r in plan["runs"]), default=6)
    for r in plan["runs"]:
        task = "-" if r["task"] is None else str(r["task"])
        label = r["label"] if r["label"] != r["run_id"] else ""
        lines.append(f"  {task:>5}  {r['run_id']:<{width}}  {r['action']:<6}  {label}".rstrip())
    return "\n".join(lines)


def dry_run_sweep(spec: Any, out: str | Path, options: SlurmOptions) -> str:
    """Plan ``spec`` into ``out`` (nothing is written) and describe the Slurm submission.

    Args:
        spec: a :class:`~hetreg.experiments.sweep.SweepSpec`.
        out: the sweep folder (may not exist yet).
        options: the Slurm options.
    """
    from hetreg.experiments.sweep import build_backend, plan_sweep

    planned = plan_sweep(spec, Path(out), build_backend(spec.backend))
    folder = Path(options.folder) if options.folder is not None else Path(out).absolute() / DEFAULT_FOLDER
    return describe_submission(planned, options, folder=folder)


# ------------------------------------------------------------------------------ the array task


def _has_state(run_dir: Path) -> bool:
    return (run_dir / runstore.CONFIG_FILE).exists() or (run_dir / runstore.CHECKPOINT_FILE).exists()


def _note(run_dir: Path, message: str) -> None:
    """Append ``=== message`` to the run's ``run.log`` (never fails the task)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / runstore.LOG_FILE, "a", encoding="utf-8") as log:
            log.write(f"=== {message} {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    except OSError:
        pass


def _job_description() -> str:
    """``slurm job <id> on <host>; submitit logs: <out>, <err>`` inside a submitit job."""
    try:
        import submitit

        env = submitit.JobEnvironment()
        paths = env.paths
        return f"slurm job {env.job_id} on {env.hostname}; submitit logs: {paths.stdout}, {paths.stderr}"
    except Exception:  # noqa: BLE001 - outside submitit (tests, local calls)
        job = os.environ.get("SLURM_ARRAY_JOB_ID")
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        job_id = f"{job}_{task}" if job and task else os.environ.get("SLURM_JOB_ID", "?")
        return f"slurm job {job_id} on {socket.gethostname()}"


def _task_threads() -> int:
    """CPUs given to this task: ``SLURM_CPUS_PER_TASK``, else the CPUs this process may use."""
    value = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class SlurmRunTask:
    """One array task: run a :class:`RunSpec` on the compute node (a submitit ``Checkpointable``).

    Calling it runs :func:`execute_run` with torch limited to the task's CPUs. The run resumes
    whenever its folder already holds a run (``config.yaml`` or ``last.pt``): that can only be an
    earlier attempt of this same task (requeued after preemption, a time limit or a node
    failure), since the sweep sets earlier attempts without a checkpoint aside before submitting.

    ``checkpoint()`` is what submitit calls on ``SIGUSR2`` (preemption, or ``signal_delay_s``
    before the time limit): it notes the event in ``run.log`` and returns the same spec with
    ``resume=True``, which submitit pickles before requeueing the task; the trainer's ``last.pt``
    (end of the last completed epoch) is the checkpoint it resumes from.
    """

    spec: RunSpec

    def effective_spec(self) -> RunSpec:
        """The spec to execute now: ``resume`` iff the run folder already holds a run."""
        resume = _has_state(Path(self.spec.run_dir))
        return self.spec if resume == self.spec.resume else replace(self.spec, resume=resume)

    def __call__(self) -> RunResult:
        spec = self.effective_spec()
        _init_worker(_task_threads())
        _note(Path(spec.run_dir), _job_description())
        return execute_run(spec)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """The resubmission: this task with ``resume=True`` (a ``submitit.helpers.DelayedSubmission``)."""
        from submitit.helpers import DelayedSubmission

        _note(Path(self.spec.run_dir), f"{_job_description()}: preempted or near its time limit; requeued to resume from {runstore.CHECKPOINT_FILE}")
        return DelayedSubmission(SlurmRunTask(replace(self.spec, resume=True)))


# ----------------------------------------------------------------------------------- clusters


class Cluster(Protocol):
    """Where array tasks go: submission, queue probe, cancellation, final state.

    :class:`SubmititSlurmCluster` is the real one; tests substitute submitit's local executor.
    Jobs returned by :meth:`submit` need ``job_id`` and ``paths`` (``result_pickle``,
    ``stdout``, ``stderr``), as submitit's jobs have.
    """

    def submit(self, folder: Path, options: SlurmOptions, tasks: Sequence[SlurmRunTask]) -> list[Any]:
        """Submit ``tasks`` as one array; return one job per task, in order."""

    def queued(self, job_ids: Collection[str]) -> set[str] | None:
        """The ids among ``job_ids`` still pending or running (``None``: the queue did not answer)."""

    def cancel(self, job_ids: Collection[str]) -> None:
        """Cancel these jobs (best effort)."""

    def final_state(self, job_id: str) -> str:
        """The state a finished job ended in (``CANCELLED``, ``FAILED``, ...; ``UNKNOWN``)."""


def _run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None


class SubmititSlurmCluster:
    """The Slurm cluster of this machine: ``sbatch`` through submitit, ``squeue``, ``scancel``,
    ``scontrol``/``sacct`` (the job's final state; ``UNKNOWN`` when both have forgotten it)."""

    def submit(self, folder: Path, options: SlurmOptions, tasks: Sequence[SlurmRunTask]) -> list[Any]:
        submitit = _require_submitit()
        missing = [cmd for cmd in ("sbatch", "srun", "squeue", "scancel") if shutil.which(cmd) is None]
        if missing:
            raise SlurmError(
                f"the Slurm commands {', '.join(missing)} are not on PATH: submit from a machine of the cluster "
                "(a login node), or look at the submission with --dry-run"
            )
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=options.max_timeouts)
        executor.update_parameters(**options.to_submitit_parameters())
        try:
            return list(executor.submit_array(list(tasks)))
        except submitit.core.utils.FailedJobError as exc:
            detail = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
            raise SlurmError(f"sbatch refused the job array: {detail} (check the --slurm-* options; sinfo lists the partitions)") from None

    def queued(self, job_ids: Collection[str]) -> set[str] | None:
        if not job_ids:
            return set()
        done = _run(["squeue", "--noheader", "--array", "--user", getpass.getuser(), "--format", "%i"])
        if done is None or done.returncode != 0:
            return None
        listed = {line.strip() for line in done.stdout.splitlines() if line.strip()}
        return {job_id for job_id in job_ids if job_id in listed}

    def cancel(self, job_ids: Collection[str]) -> None:
        if job_ids:
            _run(["scancel", *sorted(job_ids)])

    def final_state(self, job_id: str) -> str:
        done = _run(["scontrol", "--oneliner", "show", "job", job_id])
        if done is not None and done.returncode == 0:
            match = re.search(r"\bJobState=(\S+)", done.stdout)
            if match:
                return match.group(1)
        done = _run(["sacct", "--noheader", "--allocations", "--parsable2", "--format", "State", "--jobs", job_id])
        if done is not None and done.returncode == 0:
            states = [line.strip() for line in done.stdout.splitlines() if line.strip()]
            if states:
                return states[-1]
        return "UNKNOWN"


# ---------------------------------------------------------------------------- job bookkeeping


def _recorded(folder: str | Path) -> dict[str, dict[str, str]]:
    """Latest submission of each run in ``folder/jobs.json``: ``{run_id: {job_id, stdout, stderr, result}}``."""
    data = runstore.read_json(Path(folder) / JOBS_FILE)
    latest: dict[str, dict[str, str]] = {}
    for submission in data.get("submissions") or []:
        for job_id, job in (submission.get("jobs") or {}).items():
            if isinstance(job, Mapping) and job.get("run_id"):
                latest[str(job["run_id"])] = {"job_id": str(job_id), **{k: str(v) for k, v in job.items()}}
    return latest


def recorded_jobs(folder: str | Path) -> dict[str, str]:
    """``{run_id: job_id}`` of the latest submission of each run recorded in ``folder/jobs.json``."""
    return {run_id: job["job_id"] for run_id, job in _recorded(folder).items()}


def _record_submission(folder: Path, options: SlurmOptions, tracked: Sequence["_Tracked"]) -> None:
    """Append one submission to ``folder/jobs.json`` (array task -> run, log and result files)."""
    path = folder / JOBS_FILE
    data = runstore.read_json(path)
    submissions = list(data.get("submissions") or [])
    submissions.append(
        {
            "submitted": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "options": options.to_dict(),
            "jobs": {
                t.job_id: {
                    "run_id": t.spec.run_id,
                    "run_dir": t.spec.run_dir,
                    "stdout": str(t.job.paths.stdout),
                    "stderr": str(t.job.paths.stderr),
                    "result": str(t.job.paths.result_pickle),
                }
                for t in tracked
            },
        }
    )
    runstore.write_json(path, {"submissions": submissions})


def active_jobs(
    folder: str | Path, cluster: Cluster | None = None, run_ids: Collection[str] | None = None
) -> dict[str, str]:
    """``{run_id: job_id}`` of recorded submissions (``folder/jobs.json``) still queued or running.

    A task whose result file exists has finished (it may still be leaving the queue) and is
    not active.

    Args:
        folder: the submitit folder (``OUT/slurm`` by default).
        cluster: the cluster to ask (default: :class:`SubmititSlurmCluster`).
        run_ids: only these runs (default: all recorded runs).
    """
    recorded = {
        run_id: job
        for run_id, job in _recorded(folder).items()
        if (run_ids is None or run_id in set(run_ids)) and not (job.get("result") and Path(job["result"]).exists())
    }
    if not recorded:
        return {}
    queued = (cluster or SubmititSlurmCluster()).queued({job["job_id"] for job in recorded.values()})
    if not queued:
        return {}
    return {run_id: job["job_id"] for run_id, job in recorded.items() if job["job_id"] in queued}


def check_no_active_jobs(
    out: str | Path,
    options: SlurmOptions | None = None,
    *,
    cluster: Cluster | None = None,
    run_ids: Collection[str] | None = None,
) -> None:
    """Refuse to (re)submit a sweep whose runs are still queued or running in Slurm.

    Call it before :func:`~hetreg.experiments.sweep.run_sweep` on a rerun: the sweep would
    otherwise set aside or resume the folders of runs that another task is still writing.

    Raises:
        SlurmError: naming the runs, their jobs and the commands to wait for or cancel them.
    """
    folder = Path(options.folder) if options is not None and options.folder else Path(out) / DEFAULT_FOLDER
    active = active_jobs(folder, cluster, run_ids)
    if not active:
        return
    shown = ", ".join(f"{run_id} (job {job_id})" for run_id, job_id in sorted(active.items())[:5])
    more = f" and {len(active) - 5} more" if len(active) > 5 else ""
    arrays = " ".join(sorted({job_id.split("_")[0] for job_id in active.values()}))
    raise SlurmError(
        f"{len(active)} run(s) of {out} are still queued or running in Slurm from an earlier submission: "
        f"{shown}{more}; wait for them (squeue -j {arrays.replace(' ', ',')}) or cancel them (scancel {arrays}), "
        "then rerun the sweep"
    )


# ---------------------------------------------------------------------------------- executor


@dataclass
class _Tracked:
    """A submitted run and its array task while the executor waits."""

    spec: RunSpec
    job: Any
    submitted: float
    gone_since: float | None = None

    @property
    def job_id(self) -> str:
        return str(self.job.job_id)

    @property
    def run_dir(self) -> Path:
        return Path(self.spec.run_dir)

    @property
    def where(self) -> str:
        return f"slurm job {self.job_id}; submitit logs: {self.job.paths.stdout}, {self.job.paths.stderr}"


class SlurmExecutor(Executor):
    """Runs a sweep's runs as one Slurm job array through submitit (registered as ``slurm``).

    :meth:`submit` submits the array, records it in ``jobs.json``, then waits: each finished
    task's result is passed to ``on_result`` as soon as its result file appears; a task that
    leaves the queue without a result becomes an ``interrupted`` (cancelled, preempted, timed
    out) or ``failed`` result naming its job id and log files. The queue is asked every
    ``poll_interval_s`` seconds with one ``squeue`` call (no ``sacct`` needed).

    Args:
        options: a :class:`SlurmOptions` (or give its fields as keyword arguments).
        workers: the array parallelism when ``options`` does not set one (``--workers``).
        notify: called with one-line messages (the submission, the log folder).
        cluster: where tasks go (default: :class:`SubmititSlurmCluster`).
        **fields: fields of :class:`SlurmOptions`, instead of ``options``.
    """

    name = "slurm"

    def __init__(
        self,
        options: SlurmOptions | None = None,
        *,
        workers: int | None = None,
        notify: Callable[[str], None] | None = None,
        cluster: Cluster | None = None,
        **fields_: Any,
    ) -> None:
        if options is not None and fields_:
            raise ValueError("give either options=SlurmOptions(...) or its fields as keywords, not both")
        if options is None:
            valid = {f.name for f in fields(SlurmOptions)}
            unknown = sorted(set(fields_) - valid)
            if unknown:
                raise ValueError(f"unknown Slurm option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(valid))}")
            options = SlurmOptions(**fields_)
        elif not isinstance(options, SlurmOptions):
            raise ValueError(f"options must be a SlurmOptions, got {type(options).__name__}")
        if workers is not None and options.array_parallelism is None:
            options = replace(options, array_parallelism=workers)
        self.options = options
        self.workers = options.array_parallelism
        self.notify = notify
        self.cluster: Cluster = cluster or SubmititSlurmCluster()

    def __str__(self) -> str:
        return f"slurm ({self.options.describe()})"

    def _say(self, message: str) -> None:
        if self.notify is not None:
            self.notify(message)

    def submit(
        self, runs: Sequence[RunSpec], on_result: Callable[[RunResult], None] | None = None
    ) -> list[RunResult]:
        if not runs:
            return []
        specs = [replace(spec, run_dir=str(Path(spec.run_dir).absolute())) for spec in runs]
        folder = submitit_folder(specs, self.options)
        check_no_active_jobs(
            folder.parent, replace(self.options, folder=str(folder)), cluster=self.cluster, run_ids=[s.run_id for s in specs]
        )
        folder.mkdir(parents=True, exist_ok=True)
        jobs = self.cluster.submit(folder, self.options, [SlurmRunTask(spec) for spec in specs])
        if len(jobs) != len(specs):
            raise SlurmError(f"submitit returned {len(jobs)} jobs for {len(specs)} runs")
        now = time.monotonic()
        tracked = [_Tracked(spec, job, now) for spec, job in zip(specs, jobs)]
        _record_submission(folder, self.options, tracked)
        array = tracked[0].job_id.split("_")[0]
        self._say(
            f"slurm: submitted job {array} ({len(tracked)} task(s), {self.options.describe()}); "
            f"logs in {folder}; runs -> tasks in {folder / JOBS_FILE}"
        )
        pending = list(tracked)
        try:
            return self._wait(pending, on_result)
        except KeyboardInterrupt:
            if self.options.cancel_on_interrupt and pending:
                self.cluster.cancel({t.job_id for t in pending})
                self._say(f"slurm: cancelled {len(pending)} unfinished task(s) of job {array}")
            raise

    # -- waiting ---------------------------------------------------------------------------------

    def _wait(self, pending: list[_Tracked], on_result: Callable[[RunResult], None] | None) -> list[RunResult]:
        """Poll until every task in ``pending`` has a result; ``pending`` shrinks in place."""
        results: list[RunResult] = []
        while pending:
            _refresh(pending[0].job.paths.result_pickle.parent)
            queued = self.cluster.queued({t.job_id for t in pending if not t.job.paths.result_pickle.exists()})
            now = time.monotonic()
            for t in list(pending):
                result = self._check(t, queued, now)
                if result is None:
                    continue
                pending.remove(t)
                results.append(result)
                if on_result is not None:
                    on_result(result)
            if pending:
                time.sleep(self.options.poll_interval_s)
        return results

    def _check(self, t: _Tracked, queued: set[str] | None, now: float) -> RunResult | None:
        """The result of ``t`` if it has one or is lost, else ``None`` (still waiting)."""
        if t.job.paths.result_pickle.exists():
            return self._from_result_file(t)
        if queued is None or t.job_id in queued:  # running, pending, or the queue did not answer
            t.gone_since = None
            return None
        if t.gone_since is None:
            t.gone_since = now
        if now - t.gone_since < self.options.grace_s:
            return None
        return self._lost(t, now)

    def _from_result_file(self, t: _Tracked) -> RunResult:
        from submitit.core.utils import pickle_load

        try:
            outcome, value = pickle_load(t.job.paths.result_pickle)
        except Exception as exc:  # noqa: BLE001 - a torn or foreign file
            return self._record(t, "failed", f"unreadable result file {t.job.paths.result_pickle} ({type(exc).__name__})")
        if outcome == "success" and isinstance(value, RunResult):
            if value.status == "completed":
                return value
            return replace(value, error=f"{value.error} ({t.where})")
        if outcome == "success":
            return self._record(t, "failed", f"the task returned {type(value).__name__}, not a RunResult")
        lines = [line.strip() for line in str(value).splitlines() if line.strip()]
        last = lines[-1] if lines else "unknown error"
        status = "interrupted" if "UncompletedJobError" in last else "failed"
        return self._record(t, status, f"the task stopped with {last}")

    def _lost(self, t: _Tracked, now: float) -> RunResult:
        if runstore.run_status(t.run_dir) == "completed":  # finished, but its result file is missing
            summary = runstore.read_json(t.run_dir / runstore.SUMMARY_FILE)
            return RunResult(
                t.spec.run_id, "completed", log_path=str(t.run_dir / runstore.LOG_FILE), elapsed=now - t.submitted, summary=summary
            )
        state = self.cluster.final_state(t.job_id)
        word = state.split()[0].upper() if state.strip() else "UNKNOWN"
        status = "interrupted" if word in INTERRUPTED_STATES else "failed"
        return self._record(t, status, f"the task ended without a result (Slurm state {state})", elapsed=now - t.submitted, state=state)

    def _record(self, t: _Tracked, status: str, error: str, *, elapsed: float = 0.0, state: str | None = None) -> RunResult:
        """A non-completed result, also written to the run's ``summary.json`` (trainer fields kept).

        A task that never started (cancelled while pending) has no run folder; none is created,
        so that the run stays ``pending`` for the next submission.
        """
        log_path = t.run_dir / runstore.LOG_FILE
        message = f"{error}; {t.where}"
        summary = runstore.read_json(t.run_dir / runstore.SUMMARY_FILE)
        slurm = {"job_id": t.job_id, "stdout": str(t.job.paths.stdout), "stderr": str(t.job.paths.stderr)}
        if state is not None:
            slurm["state"] = state
        summary = {**summary, "status": status, "error": message, "log": str(log_path), "slurm": slurm}
        if t.run_dir.is_dir():
            runstore.write_json(t.run_dir / runstore.SUMMARY_FILE, summary)
        return RunResult(t.spec.run_id, status, error=message, log_path=str(log_path), elapsed=elapsed, summary=summary)


def _refresh(folder: Path) -> None:
    """Touch a folder's attributes so that a network file system shows new files at once."""
    try:
        folder.chmod(folder.stat().st_mode)
    except OSError:
        pass


if "slurm" not in executor_names():
    register_executor("slurm", SlurmExecutor)
