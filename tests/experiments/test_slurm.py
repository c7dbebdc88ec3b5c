"""Slurm executor without Slurm: options, sbatch parameters, dry run, waiting, skip/resume.

Submissions go to stand-in clusters: submitit's own ``LocalExecutor`` (array tasks as local
processes, the real pickling round trip) or a scripted cluster whose tasks run in this process
and whose queue answers are chosen by the test (lost jobs, an unreachable queue). The real
``squeue``/``scontrol``/``sbatch`` parsing is checked against small fake commands on ``PATH``.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, Collection, Sequence

import pytest

from hetreg.experiments import runstore
from hetreg.experiments.executor import RunResult, RunSpec, build_executor, executor_names
from hetreg.experiments.slurm import (
    JOBS_FILE,
    SlurmError,
    SlurmExecutor,
    SlurmOptions,
    SlurmRunTask,
    SubmititSlurmCluster,
    active_jobs,
    check_no_active_jobs,
    describe_submission,
    dry_run_sweep,
    format_memory,
    parse_memory_gb,
    parse_sbatch_flags,
    parse_time_limit,
    recorded_jobs,
    sbatch_script,
    submission_plan,
    sweep_folder_of,
)
from hetreg.experiments.sweep import DictBackend, plan_sweep, run_sweep
from hetreg.experiments.testing import fake_calls, fake_sweep_spec, write_fake_run

try:
    import submitit
    from submitit.core.utils import JobPaths, cloudpickle_dump
except ImportError:  # pragma: no cover - submitit is in the test extra
    submitit = None

needs_submitit = pytest.mark.skipif(submitit is None, reason="submitit is not installed (pip install -e '.[slurm]')")

FAKE = "hetreg.experiments.testing:fake_train"






FAST = dict(poll_interval_s=0.05, grace_s=0.0)


@pytest.fixture(autouse=True)
def isolate_worker_state(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Tasks run in this process here: restore the thread limits a task sets for its own process."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        if var in os.environ:
            monkeypatch.setenv(var, os.environ[var])
        else:
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("hetreg.experiments.executor._WORKER_THREADS", None)
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None and threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        (90, 90),
        (0.5, 1),  # 30 s round up to a whole minute
        ("90", 90),
        ("45:30", 46),  # MM:SS
        ("2:00:00", 120),  # HH:MM:SS
        ("1:00:01", 61),
        ("1-12", 36 * 60),  # D-HH
        ("2-00:30", 2 * 1440 + 30),  # D-HH:MM
        ("1-00:00:30", 1441),  # D-HH:MM:SS
    ],
)
def test_parse_time_limit(text: Any, minutes: int) -> None:
    assert parse_time_limit(text) == minutes


@pytest.mark.parametrize("bad", [0, -5, "0", "0:00:00", "1h", "1:2:3:4", "", True, float("nan")])
def test_parse_time_limit_rejects(bad: Any) -> None:
    with pytest.raises(ValueError, match="time limit"):
        parse_time_limit(bad)


@pytest.mark.parametrize(
    ("text", "gb", "flag"),
    [
        (16, 16.0, "16G"),
        ("16G", 16.0, "16G"),
        ("16GB", 16.0, "16G"),
        ("512M", 0.5, "512M"),
        ("1.5G", 1.5, "1536M"),
        ("2T", 2048.0, "2048G"),
        ("1048576K", 1.0, "1G"),
        (0.1, 0.1, "103M"),  # 102.4 MB rounded up, never below the request
    ],
)
def test_memory_parsing_and_sbatch_value(text: Any, gb: float, flag: str) -> None:
    assert parse_memory_gb(text) == pytest.approx(gb, rel=1e-12)
    assert format_memory(parse_memory_gb(text)) == flag


@pytest.mark.parametrize("bad", [0, -1, "lots", "16X", "", True])
def test_memory_rejects(bad: Any) -> None:
    with pytest.raises(ValueError, match="memory"):
        parse_memory_gb(bad)


def test_sbatch_flags_from_strings_and_mappings() -> None:
    assert parse_sbatch_flags(["--account=abc", "qos=high", "--requeue", "--constraint=a100&nvlink"]) == (
        ("account", "abc"),
        ("qos", "high"),
        ("requeue", True),
        ("constraint", "a100&nvlink"),
    )
    assert parse_sbatch_flags({"mail_type": "END", "exclusive": True, "comment": None}) == (
        ("mail-type", "END"),
        ("exclusive", True),
    )
    assert parse_sbatch_flags("--account=abc") == (("account", "abc"),)
    assert parse_sbatch_flags(None) == ()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-A abc"], "long form"),
        (["--time=10"], "time_min"),
        (["--partition=gpu"], "partition="),
        (["--mem=4G"], "mem_gb"),
        (["--array=0-3"], "job array"),
        (["--output=x.log"], "submitit folder"),
        (["--account=a", "--account=b"], "twice"),
        (["--bad key=1"], "not a valid"),
        (["--account="], "one-line value"),
    ],
)
def test_sbatch_flags_rejected(flags: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_sbatch_flags(flags)


# ------------------------------------------------------------------------------------ options


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time_min": 0}, "time_min"),
        ({"time_min": 1.5}, "time_min"),
        ({"cpus_per_task": 0}, "cpus_per_task"),
        ({"mem_gb": -2}, "mem_gb"),
        ({"gpus": -1}, "gpus"),
        ({"array_parallelism": 0}, "array_parallelism"),
        ({"partition": "two words"}, "partition"),
        ({"partition": ""}, "partition"),
        ({"job_name": ""}, "job_name"),
        ({"setup": "module load x"}, "list of shell lines"),
        ({"time_min": 1, "signal_delay_s": 60}, "signal_delay_s"),
        ({"max_timeouts": -1}, "max_timeouts"),
        ({"poll_interval_s": 0}, "poll_interval_s"),
        ({"grace_s": -1}, "grace_s"),
        ({"sbatch_flags": ["--job-name=x"]}, "job_name="),
    ],
)
def test_options_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SlurmOptions(**kwargs)


def test_options_are_frozen_and_hashable() -> None:
    options = SlurmOptions(partition="gpu", sbatch_flags=["--account=abc"], setup=["module load cuda"])
    assert options.sbatch_flags == (("account", "abc"),) and options.setup == ("module load cuda",)
    assert hash(options) == hash(SlurmOptions(partition="gpu", sbatch_flags={"account": "abc"}, setup=("module load cuda",)))
    with pytest.raises(AttributeError):
        options.partition = "cpu"  # type: ignore[misc]
    assert json.loads(json.dumps(options.to_dict()))["sbatch_flags"] == [["account", "abc"]]


def test_from_cli_parses_and_defaults() -> None:
    options = SlurmOptions.from_cli(
        partition="gpu", time="1:30:00", cpus=4, mem="16G", gpus=1, flags=["--account=abc"], job_name="wine",
        folder="logs", setup=["export HETREG_DATA=$SLURM_TMPDIR/data"], workers=8,
    )
    assert options == SlurmOptions(
        partition="gpu", time_min=90, cpus_per_task=4, mem_gb=16.0, gpus=1, array_parallelism=8,
        sbatch_flags=(("account", "abc"),), job_name="wine", folder="logs", setup=("export HETREG_DATA=$SLURM_TMPDIR/data",),
    )
    assert SlurmOptions.from_cli() == SlurmOptions()
    assert SlurmOptions.from_cli(array_parallelism=3, workers=8).array_parallelism == 3
    with pytest.raises(ValueError, match="--slurm-time"):
        SlurmOptions.from_cli(time="soon")
    with pytest.raises(ValueError, match="--slurm-mem"):
        SlurmOptions.from_cli(mem="lots")
    with pytest.raises(ValueError, match="--slurm-flag"):
        SlurmOptions.from_cli(flags=["--partition=x"])


def test_submitit_parameters() -> None:
    full = SlurmOptions(
        partition="gpu", time_min=30, cpus_per_task=2, mem_gb=4, gpus=1, array_parallelism=2,
        sbatch_flags=["--account=abc", "--requeue"], job_name="sweep", setup=["module load cuda"], signal_delay_s=120,
    )
    assert full.to_submitit_parameters() == {
        "job_name": "sweep",
        "time": 30,
        "cpus_per_task": 2,
        "signal_delay_s": 120,
        "partition": "gpu",
        "mem": "4G",
        "gpus_per_node": 1,
        "array_parallelism": 2,
        "setup": ["module load cuda"],
        "additional_parameters": {"account": "abc", "requeue": True},
    }
    # unset options stay out: the cluster's defaults apply
    assert SlurmOptions().to_submitit_parameters() == {"job_name": "hetreg", "time": 60, "cpus_per_task": 1, "signal_delay_s": 90}


@needs_submitit
def test_sbatch_script_has_the_options(tmp_path: Path) -> None:
    options = SlurmOptions(
        partition="gpu", time_min=30, cpus_per_task=2, mem_gb=4, gpus=1, array_parallelism=2,
        sbatch_flags=["--account=abc", "--requeue"], job_name="sweep", setup=["module load cuda"], signal_delay_s=120,
    )
    script = sbatch_script(options, tmp_path, 5)
    flags = {line for line in script.splitlines() if line.startswith("#SBATCH")}
    for expected in (
        "--array=0-4%2", "--partition=gpu", "--time=30", "--cpus-per-task=2", "--mem=4G", "--gpus-per-node=1",
        "--job-name=sweep", "--account=abc", "--requeue", "--signal=USR2@120", "--open-mode=append",
        f"--output={tmp_path}/%A_%a_0_log.out", f"--error={tmp_path}/%A_%a_0_log.err",
    ):
        assert f"#SBATCH {expected}" in flags, expected
    assert script.index("module load cuda") < script.index("srun ")
    assert f"-m submitit.core._submit {tmp_path}" in script
    # a single run is a plain job, not an array
    single = sbatch_script(options, tmp_path, 1)
    assert "--array" not in single and f"#SBATCH --output={tmp_path}/%j_0_log.out" in single


# ------------------------------------------------------------------------------------ dry run


@needs_submitit
def test_dry_run_lists_parameters_and_runs_without_writing(tmp_path: Path) -> None:
    spec = fake_sweep_spec(tmp_path, ["seed=0-2"])
    out = tmp_path / "sweep"
    planned = plan_sweep(spec, out, DictBackend())
    # one run already completed: listed as skipped, not part of the array
    write_fake_run(planned[1].run_dir, planned[1].config, [{"epoch": 1}], {"status": "completed"})
    options = SlurmOptions(partition="debug", time_min=20, array_parallelism=2)
    text = dry_run_sweep(spec, out, options)
    assert not (out / "slurm").exists() and not (out / "sweep.json").exists()
    assert "nothing is submitted" in text
    assert f"submitit folder (logs): {out.absolute() / 'slurm'}" in text
    assert "job array: 2 task(s), 1 run(s) skipped" in text
    for flag in ("#SBATCH --array=0-1%2", "#SBATCH --partition=debug", "#SBATCH --time=20", "#SBATCH --cpus-per-task=1"):
        assert flag in text
    rows = [line.split() for line in text.split("runs:\n", 1)[1].splitlines()]
    assert rows == [
        ["0", planned[0].run_id, "run", "seed=0"],
        ["-", planned[1].run_id, "skip", "seed=1"],
        ["1", planned[2].run_id, "run", "seed=2"],
    ]
    planned = plan_sweep(spec, out, DictBackend())
    plan = submission_plan(planned, options)
    assert plan["tasks"] == 2 and [r["task"] for r in plan["runs"]] == [0, None, 1]
    assert plan["parameters"] == options.to_submitit_parameters()
    assert "#SBATCH --array=0-1%2" in plan["sbatch"]
    # RunSpecs work too: resume specs are marked as such
    specs = [RunSpec(p.run_id, str(p.run_dir), p.config, resume=i == 0) for i, p in enumerate(planned)]
    assert [r["action"] for r in submission_plan(specs, options)["runs"]] == ["resume", "run", "run"]
    # nothing to do: no script
    assert submission_plan([planned[1]], options)["script"] is None
    assert "job array: 0 task(s)" in describe_submission([planned[1]], options)


def test_submitit_folder_of_runs(tmp_path: Path) -> None:
    runs = [RunSpec("a", str(tmp_path / "out" / "runs" / "a"), {}), RunSpec("b", str(tmp_path / "out" / "runs" / "b"), {})]
    assert sweep_folder_of(runs) == (tmp_path / "out").absolute()
    with pytest.raises(ValueError, match="not inside a sweep"):
        sweep_folder_of([RunSpec("c", str(tmp_path / "c"), {})])
    with pytest.raises(ValueError, match="2 different sweep folders"):
        sweep_folder_of([runs[0], RunSpec("d", str(tmp_path / "other" / "runs" / "d"), {})])


# ----------------------------------------------------------------------------- stand-in clusters


class FakeJob:
    """A job with submitit's file layout; its task runs in this process when the test says so."""

    def __init__(self, folder: Path, job_id: str, task: SlurmRunTask) -> None:
        self.job_id = job_id
        self.paths = JobPaths(folder, job_id=job_id, task_id=0)
        self.task = task

    def finish(self) -> None:
        cloudpickle_dump(("success", self.task()), self.paths.result_pickle)

    def crash(self, trace: str) -> None:
        cloudpickle_dump(("error", trace), self.paths.result_pickle)


class ScriptedCluster:
    """Submits to :class:`FakeJob`; ``on_poll(cluster, n)`` acts at each queue poll and the
    queue answers with ``answers[n]`` (the last one repeated), ``None`` meaning no answer."""

    def __init__(self, answers: Sequence[set[str] | None | str] = ("all",), on_poll: Any = None, states: dict[str, str] | None = None) -> None:
        self.answers = list(answers)
        self.on_poll = on_poll
        self.states = states or {}
        self.jobs: list[FakeJob] = []
        self.polls = 0
        self.cancelled: list[str] = []
        self.submissions = 0

    def submit(self, folder: Path, options: SlurmOptions, tasks: Sequence[SlurmRunTask]) -> list[FakeJob]:
        self.submissions += 1
        base = 40 + self.submissions
        self.jobs = [FakeJob(folder, f"{base}_{i}", task) for i, task in enumerate(tasks)]
        return list(self.jobs)

    def queued(self, job_ids: Collection[str]) -> set[str] | None:
        n = self.polls
        self.polls += 1
        if self.on_poll is not None:
            self.on_poll(self, n)
        answer = self.answers[min(n, len(self.answers) - 1)]
        if answer == "all":
            return {j.job_id for j in self.jobs if not j.paths.result_pickle.exists()} & set(job_ids)
        return None if answer is None else set(answer) & set(job_ids)

    def cancel(self, job_ids: Collection[str]) -> None:
        self.cancelled.extend(sorted(job_ids))

    def final_state(self, job_id: str) -> str:
        return self.states.get(job_id, "UNKNOWN")


class LocalCluster:
    """submitit's LocalExecutor: every array task is a local process (real pickling both ways)."""

    def __init__(self) -> None:
        self.jobs: dict[str, Any] = {}

    def submit(self, folder: Path, options: SlurmOptions, tasks: Sequence[SlurmRunTask]) -> list[Any]:
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=options.time_min)
        jobs = executor.submit_array(list(tasks))
        self.jobs.update({j.job_id: j for j in jobs})
        return jobs

    def queued(self, job_ids: Collection[str]) -> set[str] | None:
        return {i for i in job_ids if i in self.jobs and not self.jobs[i].done()}

    def cancel(self, job_ids: Collection[str]) -> None:
        for i in job_ids:
            self.jobs[i].cancel()

    def final_state(self, job_id: str) -> str:
        return "CANCELLED"


# ------------------------------------------------------------------------------ sweeps on them


@needs_submitit
def test_sweep_through_submitit_processes(tmp_path: Path) -> None:
    """Tasks pickled to real processes and their RunResults read back, as on a cluster."""
    spec = fake_sweep_spec(tmp_path, ["fake.fail=false,true"])
    out = tmp_path / "sweep"
    cluster = LocalCluster()
    messages: list[str] = []
    seen: list[RunResult] = []
    executor = SlurmExecutor(SlurmOptions(**FAST), cluster=cluster, notify=messages.append)
    outcome = run_sweep(spec, out, executor=executor, on_result=seen.append)
    assert outcome.counts == {"completed": 1, "failed": 1}
    jobs = recorded_jobs(out / "slurm")
    assert set(jobs) == {p.run_id for p in outcome.planned} == {r.run_id for r in seen}
    for p in outcome.planned:
        result = next(r for r in seen if r.run_id == p.run_id)
        assert result.log_path == str((p.run_dir / runstore.LOG_FILE).absolute())
        log = Path(result.log_path).read_text()
        assert log.startswith("=== slurm job ") and f"=== run {p.run_id} started" in log
        if p.overrides["fake.fail"]:
            job = cluster.jobs[jobs[p.run_id]]
            assert result.status == "failed" and "fake failure" in (result.error or "")
            assert f"slurm job {job.job_id}" in result.error and str(job.paths.stdout) in result.error and str(job.paths.stderr) in result.error
        else:
            assert result.status == "completed" and result.summary["status"] == "completed"
    assert messages and messages[0].startswith("slurm: submitted job")
    assert len(fake_calls(tmp_path)) == 2


@needs_submitit
def test_rerun_submits_only_the_runs_not_completed(tmp_path: Path) -> None:
    spec = fake_sweep_spec(tmp_path, ["seed=0-2", "fake.interrupt_after=null,1", "fake.fail=false,true"])
    out = tmp_path / "sweep"
    finish_all = ScriptedCluster(on_poll=lambda c, n: [j.finish() for j in c.jobs if not j.paths.result_pickle.exists()])
    outcome = run_sweep(spec, out, executor=SlurmExecutor(SlurmOptions(**FAST), cluster=finish_all))
    assert outcome.counts == {"completed": 3, "interrupted": 3, "failed": 6}
    assert len(fake_calls(tmp_path)) == 12
    # rerun: completed runs are skipped, interrupted ones resumed, failed ones started afresh
    again = run_sweep(spec, out, executor=SlurmExecutor(SlurmOptions(**FAST), cluster=finish_all))
    actions = {p.run_id: p.action for p in again.planned}
    assert sorted(actions.values()) == ["resume"] * 3 + ["run"] * 6 + ["skip"] * 3
    submitted = sorted(j["run_id"] for j in runstore.read_json(out / "slurm" / JOBS_FILE)["submissions"][1]["jobs"].values())
    assert submitted == sorted(r for r, a in actions.items() if a != "skip")
    assert sorted(c for c in fake_calls(tmp_path)[12:] if c[1]) == sorted((r, True) for r, a in actions.items() if a == "resume")
    assert again.counts == {"completed": 6, "failed": 6}
    assert len(fake_calls(tmp_path)) == 21


@needs_submitit
def test_results_as_tasks_finish_and_failures_named(tmp_path: Path) -> None:
    runs = [RunSpec(f"r{i}", str(tmp_path / "out" / "runs" / f"r{i}"), {"fake": {"epochs": 2}}, target=FAKE) for i in range(4)]

    def act(cluster: ScriptedCluster, n: int) -> None:
        jobs = cluster.jobs
        if n == 0:
            jobs[0].finish()
        elif n == 1:
            jobs[1].crash("Traceback (most recent call last):\n  ...\nImportError: no module named hetreg\n")
        elif n == 2:
            jobs[2].crash("Traceback\nsubmitit.core.utils.UncompletedJobError: Job not requeued because: timed-out too many times.\n")
        elif n == 3:
            jobs[3].finish()

    write_fake_run(tmp_path / "out" / "runs" / "r1", {}, [], None)  # r1 had started when it crashed
    cluster = ScriptedCluster(on_poll=act)
    order: list[str] = []
    results = SlurmExecutor(SlurmOptions(**FAST), cluster=cluster).submit(runs, on_result=lambda r: order.append(r.run_id))
    assert order == ["r0", "r1", "r2", "r3"] == [r.run_id for r in results]
    assert [r.status for r in results] == ["completed", "failed", "interrupted", "completed"]
    assert "ImportError: no module named hetreg" in results[1].error and "slurm job 41_1" in results[1].error
    assert str(cluster.jobs[1].paths.stderr) in results[1].error
    summary = runstore.read_json(tmp_path / "out" / "runs" / "r1" / runstore.SUMMARY_FILE)
    assert summary["status"] == "failed" and summary["slurm"]["job_id"] == "41_1"
    assert summary["log"] == str(tmp_path / "out" / "runs" / "r1" / runstore.LOG_FILE)
    assert "timed-out too many times" in results[2].error


@needs_submitit
@pytest.mark.parametrize(("state", "status"), [("CANCELLED", "interrupted"), ("TIMEOUT", "interrupted"), ("NODE_FAIL", "failed"), ("UNKNOWN", "failed")])
def test_a_job_gone_without_result_is_reported_not_waited_for(tmp_path: Path, state: str, status: str) -> None:
    run_dir = tmp_path / "out" / "runs" / "r0"
    # the task got as far as writing a checkpoint and one metrics line, then vanished
    write_fake_run(run_dir, {"fake": {"epochs": 3}}, [{"epoch": 1}], None)
    (run_dir / runstore.CHECKPOINT_FILE).write_text(json.dumps({"epoch": 1}))
    cluster = ScriptedCluster(answers=[set()], states={"41_0": state})
    options = SlurmOptions(poll_interval_s=0.01, grace_s=0.05)
    (result,) = SlurmExecutor(options, cluster=cluster).submit([RunSpec("r0", str(run_dir), {}, target=FAKE)])
    assert result.status == status
    assert f"Slurm state {state}" in result.error and "slurm job 41_0" in result.error
    assert str(cluster.jobs[0].paths.stdout) in result.error
    assert cluster.polls >= 2  # waited for the grace period before giving up
    summary = runstore.read_json(run_dir / runstore.SUMMARY_FILE)
    assert summary["status"] == status and summary["slurm"] == {
        "job_id": "41_0", "state": state, "stdout": str(cluster.jobs[0].paths.stdout), "stderr": str(cluster.jobs[0].paths.stderr),
    }
    # the run is resumable: a rerun of the sweep plans "resume" for it
    assert runstore.run_status(run_dir) == status and (run_dir / runstore.CHECKPOINT_FILE).exists()


@needs_submitit
def test_a_task_cancelled_before_it_started_leaves_no_run_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "out" / "runs" / "r0"
    cluster = ScriptedCluster(answers=[set()], states={"41_0": "CANCELLED"})
    (result,) = SlurmExecutor(SlurmOptions(**FAST), cluster=cluster).submit([RunSpec("r0", str(run_dir), {}, target=FAKE)])
    assert result.status == "interrupted" and "slurm job 41_0" in result.error
    assert not run_dir.exists() and runstore.run_status(run_dir) == "pending"


@needs_submitit
def test_an_unanswered_queue_is_not_a_lost_job(tmp_path: Path) -> None:
    run = RunSpec("r0", str(tmp_path / "out" / "runs" / "r0"), {"fake": {"epochs": 1}}, target=FAKE)

    def act(cluster: ScriptedCluster, n: int) -> None:
        if n == 5:
            cluster.jobs[0].finish()

    cluster = ScriptedCluster(answers=[None], on_poll=act)
    (result,) = SlurmExecutor(SlurmOptions(**FAST), cluster=cluster).submit([run])
    assert result.status == "completed" and cluster.polls == 6


@needs_submitit
def test_a_finished_run_without_result_file_counts_as_completed(tmp_path: Path) -> None:
    run_dir = tmp_path / "out" / "runs" / "r0"
    write_fake_run(run_dir, {}, [{"epoch": 1}], {"status": "completed", "final": {"test_mse": 1.0}})
    cluster = ScriptedCluster(answers=[set()])
    (result,) = SlurmExecutor(SlurmOptions(**FAST), cluster=cluster).submit([RunSpec("r0", str(run_dir), {}, target=FAKE)])
    assert result.status == "completed" and result.summary["final"] == {"test_mse": 1.0}


@needs_submitit
@pytest.mark.parametrize("cancel", [True, False])
def test_ctrl_c_while_waiting_cancels_the_unfinished_tasks(tmp_path: Path, cancel: bool) -> None:
    runs = [RunSpec(f"r{i}", str(tmp_path / "out" / "runs" / f"r{i}"), {"fake": {"epochs": 1}}, target=FAKE) for i in range(3)]

    def act(cluster: ScriptedCluster, n: int) -> None:
        if n == 0:
            cluster.jobs[1].finish()
        else:
            raise KeyboardInterrupt

    cluster = ScriptedCluster(on_poll=act)
    done: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        SlurmExecutor(SlurmOptions(cancel_on_interrupt=cancel, **FAST), cluster=cluster).submit(runs, on_result=lambda r: done.append(r.run_id))
    assert done == ["r1"]
    assert cluster.cancelled == (["41_0", "41_2"] if cancel else [])


@needs_submitit
def test_runs_still_in_the_queue_are_not_submitted_twice(tmp_path: Path) -> None:
    out = tmp_path / "out"
    runs = [RunSpec(f"r{i}", str(out / "runs" / f"r{i}"), {"fake": {"epochs": 1}}, target=FAKE) for i in range(2)]
    first = ScriptedCluster(on_poll=lambda c, n: [j.finish() for j in c.jobs])
    SlurmExecutor(SlurmOptions(**FAST), cluster=first).submit(runs)
    assert recorded_jobs(out / "slurm") == {"r0": "41_0", "r1": "41_1"}
    # both finished: their result files exist, so they are not active even if still listed
    assert active_jobs(out / "slurm", ScriptedCluster(answers=[{"41_0", "41_1"}])) == {}
    (out / "slurm" / "41_1_0_result.pkl").unlink()  # pretend 41_1 is still running
    still = ScriptedCluster(answers=[{"41_1"}])
    assert active_jobs(out / "slurm", still) == {"r1": "41_1"}
    with pytest.raises(SlurmError, match=r"r1 \(job 41_1\).*squeue -j 41.*scancel 41"):
        check_no_active_jobs(out, cluster=still)
    check_no_active_jobs(out, cluster=still, run_ids=["r0"])  # r0 is not active
    with pytest.raises(SlurmError, match="still queued or running"):
        SlurmExecutor(SlurmOptions(**FAST), cluster=still).submit(runs)
    assert still.submissions == 0
    # the queue does not answer: nothing is known to be active
    assert active_jobs(out / "slurm", ScriptedCluster(answers=[None])) == {}


# -------------------------------------------------------------------------------------- tasks


def test_task_resumes_whenever_the_run_folder_holds_a_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "r0"
    fresh = RunSpec("r0", str(run_dir), {}, target=FAKE)
    assert SlurmRunTask(fresh).effective_spec().resume is False
    assert SlurmRunTask(RunSpec("r0", str(run_dir), {}, resume=True, target=FAKE)).effective_spec().resume is False
    write_fake_run(run_dir, {}, [], None)  # config.yaml of an earlier attempt of this task
    assert SlurmRunTask(fresh).effective_spec().resume is True


@needs_submitit
def test_checkpoint_resubmits_the_run_with_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    config = {"fake": {"epochs": 4, "interrupt_after": 2, "counter": str(tmp_path / "calls.txt")}}
    run_dir = tmp_path / "out" / "runs" / "r0"
    task = SlurmRunTask(RunSpec("r0", str(run_dir), config, target=FAKE))
    first = task()  # stops after 2 of 4 epochs, as a preempted task would
    assert first.status == "interrupted" and os.environ["OMP_NUM_THREADS"] == "1"
    delayed = task.checkpoint()
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert delayed.function == SlurmRunTask(RunSpec("r0", str(run_dir), config, resume=True, target=FAKE))
    assert "requeued to resume from last.pt" in (run_dir / runstore.LOG_FILE).read_text()
    second = delayed.result()  # what the requeued task runs
    assert second.status == "completed" and second.summary["epochs"] == 4
    assert fake_calls(tmp_path) == [("r0", False), ("r0", True)]
    assert [row["epoch"] for row in runstore.read_metrics(run_dir)] == [1, 2, 3, 4]


# --------------------------------------------------------------------------- registry, errors


def test_registered_as_slurm() -> None:
    assert "slurm" in executor_names()
    executor = build_executor("slurm", workers=3)
    assert isinstance(executor, SlurmExecutor) and executor.options.array_parallelism == 3 and executor.workers == 3
    assert build_executor("slurm", workers=3, options=SlurmOptions(array_parallelism=5)).options.array_parallelism == 5
    assert SlurmExecutor(partition="debug", time_min=5).options == SlurmOptions(partition="debug", time_min=5)
    assert "partition debug" in str(SlurmExecutor(partition="debug"))
    with pytest.raises(ValueError, match="unknown Slurm option.*partitions"):
        SlurmExecutor(partitions="debug")
    with pytest.raises(ValueError, match="not both"):
        SlurmExecutor(SlurmOptions(), partition="debug")
    with pytest.raises(ValueError, match="array_parallelism"):
        build_executor("slurm", workers=0)
    assert SlurmExecutor().submit([]) == []


def test_missing_submitit_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(SlurmError, match=r"needs submitit.*\.\[slurm\]"):
        SubmititSlurmCluster().submit(tmp_path, SlurmOptions(), [])
    with pytest.raises(SlurmError, match="needs submitit"):
        sbatch_script(SlurmOptions(), tmp_path, 2)


def _fake_command(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake Slurm commands first on PATH (their answers are written by each test)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def test_queue_and_state_parsing(fake_slurm: Path) -> None:
    _fake_command(fake_slurm, "squeue", 'echo "$@" > "$(dirname "$0")/squeue.args"\nprintf "12_0\\n12_3\\n13\\n"\n')
    _fake_command(
        fake_slurm, "scontrol",
        'case "$*" in *12_1*) echo "JobId=14 ArrayJobId=12 ArrayTaskId=1 JobName=hetreg JobState=CANCELLED Reason=None";;'
        ' *) echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1;; esac\n',
    )
    _fake_command(fake_slurm, "sacct", 'case "$*" in *12_2*) printf "OUT_OF_MEMORY\\n";; *) exit 1;; esac\n')
    cluster = SubmititSlurmCluster()
    assert cluster.queued({"12_0", "12_1", "13", "99"}) == {"12_0", "13"}
    args = (fake_slurm / "squeue.args").read_text().split()
    assert "--array" in args and "--noheader" in args and args[args.index("--format") + 1] == "%i"
    assert cluster.queued(set()) == set()
    assert cluster.final_state("12_1") == "CANCELLED"
    assert cluster.final_state("12_2") == "OUT_OF_MEMORY"  # from sacct once scontrol forgot it
    assert cluster.final_state("12_9") == "UNKNOWN"
    _fake_command(fake_slurm, "squeue", "echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1\n")
    assert cluster.queued({"12_0"}) is None


@needs_submitit
def test_sbatch_refusal_is_a_clear_error(tmp_path: Path, fake_slurm: Path) -> None:
    for name in ("srun", "squeue", "scancel"):
        _fake_command(fake_slurm, name, "exit 0\n")
    _fake_command(fake_slurm, "sbatch", "echo 'sbatch: error: invalid partition specified: nope' >&2; exit 1\n")
    run = RunSpec("r0", str(tmp_path / "out" / "runs" / "r0"), {}, target=FAKE)
    with pytest.raises(SlurmError, match="sbatch refused the job array: .*invalid partition specified: nope"):
        SlurmExecutor(partition="nope").submit([run])


def test_missing_slurm_commands_are_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if submitit is None:
        pytest.skip("submitit is not installed")
    monkeypatch.setenv("PATH", str(tmp_path))
    run = RunSpec("r0", str(tmp_path / "out" / "runs" / "r0"), {}, target=FAKE)
    with pytest.raises(SlurmError, match="sbatch, srun, squeue, scancel are not on PATH.*--dry-run"):
        SlurmExecutor().submit([run])
