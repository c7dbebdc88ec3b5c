"""Executors run a batch of planned runs and report one :class:`RunResult` per run.

The interface is small so that other back ends (Slurm through submitit, a thread pool, a remote
queue) plug in without touching the sweep logic::

    class MyExecutor(Executor):
        name = "mine"
        def submit(self, runs, on_result=None):
            ...  # run each RunSpec somewhere, typically by calling execute_run(spec) there
            return results

    register_executor("mine", MyExecutor)        # then: hetreg sweep --executor mine

A :class:`RunSpec` is plain data (picklable, JSON-serialisable): the run folder, the resolved
configuration as a dict, whether to resume, and the dotted path of the function that trains
(``"module:function"``, called as ``fn(config_dict, run_dir, resume=..., quiet=...)``).
:func:`execute_run` is what a worker calls: it captures the run's output into ``run.log`` and
turns any exception into a ``failed`` result (and ``summary.json``) instead of losing the sweep.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
import time
import traceback
from abc import ABC, abstractmethod
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from hetreg.experiments import runstore

DEFAULT_TARGET = "hetreg.experiments.sweep:train_from_dict"


@dataclass(frozen=True)
class RunSpec:
    """One run to execute.

    Attributes:
        run_id: the run's id (its folder name).
        run_dir: folder the run writes into (created by :func:`execute_run`).
        config: the resolved configuration as plain data.
        resume: continue from the run folder's last checkpoint.
        target: ``"module:function"`` called as ``fn(config, run_dir, resume=..., quiet=...)``.
        quiet: ask the target not to print progress.
    """

    run_id: str
    run_dir: str
    config: dict[str, Any]
    resume: bool = False
    target: str = DEFAULT_TARGET
    quiet: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunResult:
    """Outcome of one run: status ``completed``/``failed``/``interrupted``, error, log, seconds."""

    run_id: str
    status: str
    error: str | None = None
    log_path: str | None = None
    elapsed: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)


def load_target(target: str) -> Callable[..., Any]:
    """Import ``"package.module:function"``; raise ``ValueError`` naming the problem."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"run target {target!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import run target module {module_name!r}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"run target {target!r}: {module_name} has no function {attr!r}")
    return fn


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (first line of the message)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def execute_run(spec: RunSpec) -> RunResult:
    """Run ``spec`` in this process, logging into ``run_dir/run.log``; never raises on failure.

    A failure is recorded in ``summary.json`` (status ``failed``, the one-line error, the log
    path; a summary already written by the trainer is kept and completed) and returned.
    ``KeyboardInterrupt`` is recorded as ``interrupted`` and re-raised.
    """
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / runstore.LOG_FILE
    start = time.monotonic()
    status = "completed"
    error: str | None = None
    interrupted: KeyboardInterrupt | None = None
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"=== run {spec.run_id} {'resumed' if spec.resume else 'started'} {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        log.flush()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            try:
                fn = load_target(spec.target)
                _apply_thread_limit()
                fn(spec.config, run_dir, resume=spec.resume, quiet=spec.quiet)
            except KeyboardInterrupt as exc:
                status, error, interrupted = "interrupted", "interrupted by the user", exc
            except Exception as exc:  # noqa: BLE001 - a run's failure must not end the sweep
                status, error = "failed", one_line(exc)
                traceback.print_exc(file=log)
        log.write(f"=== run {spec.run_id} {status} after {time.monotonic() - start:.1f} s\n")
    summary = runstore.read_json(run_dir / runstore.SUMMARY_FILE)
    if status == "completed":
        written = summary.get("status")
        if written in ("failed", "interrupted"):
            status = str(written)
            error = str(summary.get("error") or summary.get("message") or f"the run reported status {written}").strip().splitlines()[0]
        elif written != "completed":
            status, error = "failed", "the run finished without writing a completed summary.json"
    if status != "completed":
        summary = {**summary, "status": status, "error": summary.get("error") or error, "log": str(log_path)}
        runstore.write_json(run_dir / runstore.SUMMARY_FILE, summary)
    result = RunResult(
        run_id=spec.run_id,
        status=status,
        error=error,
        log_path=str(log_path),
        elapsed=time.monotonic() - start,
        summary=summary,
    )
    if interrupted is not None:
        raise interrupted
    return result


class Executor(ABC):
    """Runs a batch of :class:`RunSpec`; subclasses implement :meth:`submit`."""

    name: str = "abstract"

    @abstractmethod
    def submit(
        self, runs: Sequence[RunSpec], on_result: Callable[[RunResult], None] | None = None
    ) -> list[RunResult]:
        """Execute ``runs`` and return their results (in any order).

        ``on_result`` is called once per finished run, as soon as it finishes (for progress bars
        and for updating the index). A failing run must yield a ``failed`` result, not raise.
        """


_WORKER_THREADS: int | None = None


def _init_worker(threads: int) -> None:
    """Pool initializer: limit every numeric library of this worker to ``threads`` threads.

    The environment variables take effect when torch (or numpy's BLAS) is imported later by the
    run target; :func:`_apply_thread_limit` also sets torch's pool once torch is loaded.
    """
    global _WORKER_THREADS
    _WORKER_THREADS = threads
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    _apply_thread_limit()


def _apply_thread_limit() -> None:
    if _WORKER_THREADS is None or "torch" not in sys.modules:
        return
    torch = sys.modules["torch"]
    if torch.get_num_threads() != _WORKER_THREADS:
        torch.set_num_threads(_WORKER_THREADS)
    with contextlib.suppress(RuntimeError):  # only settable before the first parallel op
        torch.set_num_interop_threads(1)


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch intra-op threads for each of ``workers`` processes: ``max(1, cores // workers)``."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, workers))


class LocalExecutor(Executor):
    """Runs on this machine: in-process for one worker, else in a pool of processes.

    Each worker process limits torch (``torch.set_num_threads``) and the BLAS libraries to
    ``cores // workers`` threads so that the machine is not oversubscribed. Processes are
    started with ``spawn`` (forking a process that already ran torch can deadlock in its thread
    pools), and at most ``workers`` runs are handed to them at a time.

    On Ctrl-C the runs in progress get ``grace`` seconds to record themselves as interrupted
    (they received the signal too), then the workers are stopped; every run stays resumable.

    Runs that differ only in seed, noise or loss (MLP models; see
    :func:`hetreg.train.batched.supports_batching`) are trained together as one batched model,
    one group per worker, with the same results as separate runs; the others run one by one.

    Args:
        workers: number of runs (or batched groups) in parallel (default: the number of cores).
        grace: seconds to wait for the runs in progress after an interrupt.
        batch: train compatible runs as batched groups (``--executor-option batch=false`` to turn
            it off).
    """

    name = "local"

    def __init__(self, workers: int | None = None, grace: float = 5.0, batch: bool = True) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        self.workers = workers or os.cpu_count() or 1
        self.grace = grace
        self.batch = bool(batch)

    def submit(
        self, runs: Sequence[RunSpec], on_result: Callable[[RunResult], None] | None = None
    ) -> list[RunResult]:
        results: list[RunResult] = []
        if not runs:
            return results
        from hetreg.train.batched_sweep import execute_unit, group_run_specs

        parts = min(self.workers, len(runs))
        units = group_run_specs(runs, parts=parts) if self.batch else [[spec] for spec in runs]
        workers = min(self.workers, len(units))
        if workers == 1:  # in this process, with torch's default of one thread per core
            for unit in units:
                for result in execute_unit(unit):
                    results.append(result)
                    if on_result is not None:
                        on_result(result)
            return results
        return self._submit_pool(units, workers, on_result, results)

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        import multiprocessing

        return ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(threads_per_worker(workers),),
        )

    def _submit_pool(
        self,
        units: Sequence[Sequence[RunSpec]],
        workers: int,
        on_result: Callable[[RunResult], None] | None,
        results: list[RunResult],
    ) -> list[RunResult]:
        # At most `workers` runs are handed to the pool at a time (the pool would otherwise queue
        # extra runs in its workers, which would still start after a Ctrl-C).
        from hetreg.train.batched_sweep import execute_unit

        pending = [list(unit) for unit in units]
        inflight: dict[Future[list[RunResult]], list[RunSpec]] = {}
        pool = self._new_pool(workers)

        def record(unit_results: list[RunResult]) -> None:
            for result in unit_results:
                results.append(result)
                if on_result is not None:
                    on_result(result)

        try:
            while pending or inflight:
                while pending and len(inflight) < workers:
                    unit = pending.pop(0)
                    inflight[pool.submit(execute_unit, unit)] = unit
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    unit = inflight.pop(future)
                    try:
                        unit_results = future.result()
                    except Exception as exc:  # noqa: BLE001 - e.g. a worker killed by the OOM killer
                        broken = broken or isinstance(exc, BrokenProcessPool)
                        unit_results = [_worker_failure(spec, exc) for spec in unit]
                    record(unit_results)
                if broken:  # every run of a broken pool fails; start a fresh pool for the rest
                    for future, unit in list(inflight.items()):
                        record([_worker_failure(spec, BrokenProcessPool("a worker process died")) for spec in unit])
                    inflight.clear()
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self._new_pool(workers)
        except KeyboardInterrupt:
            # runs that received the signal as well record "interrupted"; then stop the workers
            wait(inflight, timeout=self.grace)
            raise
        finally:
            if inflight:
                _terminate_workers(pool)
            pool.shutdown(wait=not inflight, cancel_futures=True)
        return results


def _worker_failure(spec: RunSpec, exc: BaseException) -> RunResult:
    """Record a run whose worker process failed (it could not record anything itself)."""
    log_path = str(Path(spec.run_dir) / runstore.LOG_FILE)
    error = f"worker process failed: {one_line(exc)}"
    summary = runstore.read_json(Path(spec.run_dir) / runstore.SUMMARY_FILE)
    if summary.get("status") != "completed":
        summary = {**summary, "status": "failed", "error": error, "log": log_path}
        runstore.write_json(Path(spec.run_dir) / runstore.SUMMARY_FILE, summary)
    return RunResult(run_id=spec.run_id, status=str(summary["status"]), error=error, log_path=log_path, summary=summary)


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    """Stop the worker processes of ``pool`` now (their runs stay resumable from ``last.pt``)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(timeout=5)


_EXECUTORS: dict[str, Callable[..., Executor]] = {}
#: Modules that register executors when imported; loaded on the first lookup by name.
PLUGIN_MODULES = ("hetreg.experiments.slurm",)
_plugins_loaded = False
_PLUGIN_ERRORS: dict[str, str] = {}


def register_executor(name: str, factory: Callable[..., Executor]) -> None:
    """Register ``factory(workers=None, **options) -> Executor`` under ``name``.

    Executors living in other modules register themselves at import; list such a module in
    :data:`PLUGIN_MODULES` or expose it as an entry point of the group ``hetreg.executors``
    (``name = "package.module"``) so that ``--executor NAME`` finds it.
    """
    if name in _EXECUTORS:
        raise ValueError(f"an executor named {name!r} is already registered")
    _EXECUTORS[name] = factory


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    modules = list(PLUGIN_MODULES)
    try:
        from importlib.metadata import entry_points

        modules += [ep.value.partition(":")[0] for ep in entry_points(group="hetreg.executors")]
    except Exception:  # noqa: BLE001 - broken metadata must not break the local executor
        pass
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the plugin exists but one of its imports is missing
                _PLUGIN_ERRORS[module] = one_line(exc)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the local executor
            _PLUGIN_ERRORS[module] = one_line(exc)


def executor_names() -> list[str]:
    _load_plugins()
    return sorted(_EXECUTORS)


def build_executor(name: str, **options: Any) -> Executor:
    """Build the executor registered as ``name``; unknown names list the valid ones."""
    _load_plugins()
    if name not in _EXECUTORS:
        broken = "".join(f" ({module} could not be imported: {err})" for module, err in _PLUGIN_ERRORS.items())
        raise ValueError(f"unknown executor {name!r}; valid executors: {', '.join(executor_names())}{broken}")
    factory = _EXECUTORS[name]
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # no signature to read: let the call say what is wrong
        parameters = None
    if parameters is not None and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        accepted = [n for n, p in parameters.items() if n != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL]
        unknown = [key for key in options if key not in accepted]
        if unknown:
            others = [n for n in executor_names() if n != name]
            hint = f"; is it an option of another executor ({', '.join(others)})?" if others else ""
            raise ValueError(
                f"executor {name!r} has no option {unknown[0]!r}; its options: {', '.join(accepted) or '(none)'}{hint}"
            )
    try:
        return factory(**options)
    except TypeError as exc:  # an option the executor does not take
        raise ValueError(f"bad option for executor {name!r}: {one_line(exc)}") from None


register_executor("local", LocalExecutor)
