"""A sweep on a real single-node Slurm: one task cancelled, one preempted, the sweep rerun.

Four runs of the real trainer (synthetic-hetero, a small MLP, one thread each; the two runs to
interrupt paced by a short pause after each epoch) are submitted as one job array, two tasks at a
time. While they train:

* task 0 is cancelled with ``scancel`` after two epochs: the waiting sweep gets an
  ``interrupted`` result naming the job id and the submitit logs, the other runs go on;
* task 1 receives ``SIGUSR2`` (what Slurm sends on preemption or near the time limit): submitit
  checkpoints it (``SlurmRunTask.checkpoint``) and requeues it, and it resumes from ``last.pt``
  (Slurm makes a requeued job wait ~2 minutes; the test, running as the cluster's administrator,
  releases it at once with ``scontrol update StartTime=now``).

Rerunning the sweep then submits only run 0, which resumes from its checkpoint. Every run must
end completed with exactly one metrics line per epoch, started once (resumed once for the two
interrupted ones), and the two interrupted runs must match uninterrupted local runs of the same
configurations to 1e-6 (the trainer checkpoints its random generators, so a resume is exact);
those reference runs are trained in the test process while the cluster works.

Needs ``sinfo`` to show an idle or mixed node (``bash scripts/slurm-single-node.sh start``).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hetreg.experiments import runstore
from hetreg.experiments.executor import RunResult
from hetreg.experiments.grid import parse_grid
from hetreg.experiments.slurm import JOBS_FILE, SlurmExecutor, SlurmOptions, recorded_jobs
from hetreg.experiments.sweep import SweepSpec, build_backend, plan_sweep, run_sweep, train_from_dict


def _slurm_ready() -> str | None:
    """``None`` when a Slurm node accepts jobs here, else why the test is skipped."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        return "submitit is not installed (pip install -c constraints.txt -e '.[slurm]')"
    for cmd in ("sinfo", "sbatch", "srun", "squeue", "scancel", "scontrol"):
        if shutil.which(cmd) is None:
            return f"no Slurm here ({cmd} not on PATH); start one with: bash scripts/slurm-single-node.sh start"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"sinfo did not answer ({exc}); start Slurm with: bash scripts/slurm-single-node.sh start"
    if not any(s.rstrip("*~#!%$@^-") in ("idle", "mix", "mixed") for s in states):
        return f"no idle or mixed Slurm node (sinfo states: {states or 'none'}); bash scripts/slurm-single-node.sh start"
    return None


SKIP_REASON = _slurm_ready()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")]

EPOCHS = 24
BASE: dict[str, Any] = {
    "name": "slurm-it",
    "seed": 0,
    "data": {"name": "synthetic-hetero", "options": {"n": 1500, "d": 8}},
    "noise": {"distribution": {"kind": "uniform", "low": 0.0, "high": 1.0}},
    "model": {"name": "mlp", "options": {"hidden": [32, 32]}},
    "loss": {"name": "biv", "eps": 0.5},
    "optimizer": {"name": "adam", "lr": 1e-3},
    "train": {"epochs": EPOCHS, "batch_size": 32, "num_threads": 1},
}
TIMEOUT_S = 300.0

# The run target on the nodes: the trainer, with a pause after each epoch (after last.pt is
# written; the results do not change) for the two runs the test interrupts: the cancelled run
# (seed 0) must not finish during Slurm's KillWait (scancel's SIGTERM is ignored by submitit's
# tasks until the SIGKILL that follows), the preempted one (seed 1) must still be training when
# the signal comes. The other runs are not paced.
PACED_TARGET = """
import time

from hetreg.train import run_experiment

PAUSE_S = {pauses!r}


def paced_train(config, run_dir, *, resume=False, quiet=True):
    pause = PAUSE_S.get(int(config["seed"]), 0.0)
    callbacks = [lambda record: time.sleep(pause)] if pause else []
    return run_experiment(dict(config), run_dir, resume=resume, quiet=quiet, callbacks=callbacks)
"""


def _kill_wait_s() -> float:
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.split("=")[0].strip() == "KillWait":
            return float(line.split("=")[1].split()[0])
    return 30.0


def _options(helpers: Path) -> SlurmOptions:
    """Two tasks at a time; the paced target importable on the node through the sbatch setup lines."""
    return SlurmOptions(
        time_min=30, cpus_per_task=1, array_parallelism=2, job_name="hetreg-test", poll_interval_s=0.5, grace_s=2.0,
        setup=(f"export PYTHONPATH={helpers}${{PYTHONPATH:+:$PYTHONPATH}}",),
    )


def _wait_for(what: str, check: Any, timeout: float = 120.0, interval: float = 0.1) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _job_state(job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-r", "-j", job_id.split("_")[0], "-o", "%i %T"], capture_output=True, text=True).stdout
    states = dict(line.split() for line in out.splitlines() if line.strip())
    return states.get(job_id, "GONE")


def _metric_rows(run_dir: Path) -> list[dict[str, Any]]:
    return runstore.read_metrics(run_dir)


def _log_count(run_dir: Path, word: str) -> int:
    text = (run_dir / runstore.LOG_FILE).read_text(encoding="utf-8")
    return sum(1 for line in text.splitlines() if line.startswith("=== run ") and f" {word} " in line)


def _without_time(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "elapsed"}


def _assert_same_metrics(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want):
        a, b = _without_time(a), _without_time(b)
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(b[key], float):
                assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), (a["epoch"], key)
            else:
                assert a[key] == b[key], (a["epoch"], key)


@pytest.fixture
def cancel_leftovers(tmp_path: Path) -> Any:
    """Cancel the test's jobs still queued when it ends (a failed test must not leave work behind)."""
    yield
    jobs = set(recorded_jobs(tmp_path / "sweep" / "slurm").values())
    if jobs:
        subprocess.run(["scancel", *sorted(jobs)], capture_output=True)


def _preempt(job_id: str) -> None:
    """Send the preemption signal until Slurm shows the task requeued."""
    end = time.monotonic() + 90
    while time.monotonic() < end:
        try:  # scancel keeps retrying for minutes while the task is being requeued: do not wait for it
            subprocess.run(["scancel", "--signal=USR2", job_id], capture_output=True, timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:
            _wait_for(f"{job_id} to be requeued", lambda: _job_state(job_id) == "PENDING", timeout=15)
            return
        except AssertionError:
            if _job_state(job_id) != "RUNNING":
                raise
    raise AssertionError(f"{job_id} was not requeued after the preemption signal")


def test_sweep_survives_cancel_and_preemption_and_resumes(tmp_path: Path, cancel_leftovers: None) -> None:
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    # the epochs left after the cancellation take at least twice Slurm's KillWait
    pauses = {0: max(0.3, 2.0 * _kill_wait_s() / (EPOCHS - 2)), 1: 0.1}
    (helpers / "hetreg_paced_target.py").write_text(PACED_TARGET.format(pauses=pauses))
    spec = SweepSpec(base=BASE, grid=parse_grid(["seed=0-3"]), target="hetreg_paced_target:paced_train")
    options = _options(helpers)
    out = tmp_path / "sweep"

    # uninterrupted runs of the two runs to interrupt, trained here while the cluster works
    # (array task i runs the i-th planned run: seeds 0 and 1)
    planned = plan_sweep(spec, out, build_backend(spec.backend))
    references: dict[str, dict[str, Any]] = {}
    ref_errors: list[BaseException] = []

    def train_references() -> None:
        try:
            for p in planned[:2]:
                train_from_dict(p.config, tmp_path / "reference" / p.run_id, quiet=True)
                references[p.run_id] = {"metrics": _metric_rows(tmp_path / "reference" / p.run_id)}
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            ref_errors.append(exc)

    reference_thread = threading.Thread(target=train_references, daemon=True)
    results: list[RunResult] = []
    errors: list[BaseException] = []
    messages: list[str] = []

    def first_pass() -> None:
        try:
            run_sweep(spec, out, executor=SlurmExecutor(options, notify=messages.append), on_result=results.append)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    worker = threading.Thread(target=first_pass, daemon=True)
    worker.start()
    folder = out / "slurm"

    def submitted() -> dict[str, str]:
        if errors:
            raise errors[0]
        return recorded_jobs(folder) if len(recorded_jobs(folder)) == 4 else {}

    jobs = _wait_for("the job array to be submitted", submitted, timeout=TIMEOUT_S)
    reference_thread.start()
    by_task = sorted(jobs.items(), key=lambda item: int(item[1].split("_")[1]))
    (cancelled_run, cancelled_job), (preempted_run, preempted_job) = by_task[0], by_task[1]
    assert [cancelled_run, preempted_run] == [p.run_id for p in planned[:2]]

    # task 0: scancel after two epochs (Slurm's KillWait lets it run a few more seconds)
    # (other jobs on the cluster may hold the CPUs for a while: generous waits)
    _wait_for("two epochs of task 0", lambda: len(_metric_rows(out / "runs" / cancelled_run)) >= 2, timeout=TIMEOUT_S)
    subprocess.run(["scancel", cancelled_job], check=True)
    # task 1: the preemption / time-limit signal after two epochs; submitit requeues it
    _wait_for("two epochs of task 1", lambda: len(_metric_rows(out / "runs" / preempted_run)) >= 2, timeout=TIMEOUT_S)
    _preempt(preempted_job)
    # Slurm holds a requeued job for ~2 minutes; an administrator may release it at once
    subprocess.run(["scontrol", "update", f"JobId={preempted_job}", "StartTime=now"], capture_output=True)

    worker.join(TIMEOUT_S)
    assert not worker.is_alive(), "the sweep did not return after its tasks ended"
    assert not errors, errors
    assert len(_metric_rows(out / "runs" / cancelled_run)) < EPOCHS, "task 0 finished before the cancellation took effect"
    first = {r.run_id: r for r in results}
    assert set(first) == set(jobs)
    assert first[cancelled_run].status == "interrupted"
    assert cancelled_job in (first[cancelled_run].error or "")
    assert str(folder / f"{cancelled_job}_0_log.out") in (first[cancelled_run].error or "")
    assert first[cancelled_run].log_path == str((out / "runs" / cancelled_run / runstore.LOG_FILE).absolute())
    assert runstore.read_json(out / "runs" / cancelled_run / runstore.SUMMARY_FILE)["slurm"]["job_id"] == cancelled_job
    for run_id in set(jobs) - {cancelled_run}:
        assert first[run_id].status == "completed", first[run_id]
    assert any("requeued" in line for line in (out / "runs" / preempted_run / runstore.LOG_FILE).read_text().splitlines())

    # rerun: only the cancelled run is submitted, and it resumes from its checkpoint
    again: list[RunResult] = []
    outcome = run_sweep(spec, out, executor=SlurmExecutor(options), on_result=again.append)
    actions = {p.run_id: p.action for p in outcome.planned}
    assert actions == {run_id: ("resume" if run_id == cancelled_run else "skip") for run_id in jobs}
    assert [(r.run_id, r.status) for r in again] == [(cancelled_run, "completed")]
    submissions = runstore.read_json(folder / JOBS_FILE)["submissions"]
    assert len(submissions) == 2 and [j["run_id"] for j in submissions[1]["jobs"].values()] == [cancelled_run]
    assert outcome.counts == {"completed": 4}

    # every run completed exactly once, one metrics line per epoch
    for run_id in jobs:
        run_dir = out / "runs" / run_id
        summary = runstore.read_json(run_dir / runstore.SUMMARY_FILE)
        assert summary["status"] == "completed" and summary["epochs"] == EPOCHS
        rows = _metric_rows(run_dir)
        assert [row["epoch"] for row in rows] == list(range(1, EPOCHS + 1))
        assert _log_count(run_dir, "started") == 1
        assert _log_count(run_dir, "resumed") == (1 if run_id in (cancelled_run, preempted_run) else 0)
    index = runstore.read_index(out)
    assert index is not None and sorted(index["status"]) == ["completed"] * 4

    # the interrupted runs equal uninterrupted runs of the same configurations
    reference_thread.join(TIMEOUT_S)
    assert not ref_errors, ref_errors
    for run_id in (cancelled_run, preempted_run):
        _assert_same_metrics(_metric_rows(out / "runs" / run_id), references[run_id]["metrics"])
        final = runstore.read_json(out / "runs" / run_id / runstore.SUMMARY_FILE)["final"]
        _assert_same_metrics([final], [runstore.read_json(tmp_path / "reference" / run_id / runstore.SUMMARY_FILE)["final"]])
    assert any(m.startswith("slurm: submitted job") for m in messages)
