"""Sweeps with the fake trainer: ids, skip/resume on rerun, failures recorded, folder safety."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hetreg.experiments import runstore
from hetreg.experiments.executor import Executor, LocalExecutor, RunResult, RunSpec, execute_run, register_executor
from hetreg.experiments.sweep import (
    DictBackend,
    dict_hash,
    load_sweep,
    plan_sweep,
    prepare_out_dir,
    run_sweep,
)
from hetreg.experiments.testing import fake_calls, fake_sweep_spec

FAKE = "hetreg.experiments.testing:fake_train"






def test_run_ids_are_stable_and_distinct(tmp_path: Path) -> None:
    spec = fake_sweep_spec(tmp_path, ["loss.name=mse,biv", "seed=0-2"])
    first = plan_sweep(spec, tmp_path / "out", DictBackend())
    again = plan_sweep(spec, tmp_path / "out", DictBackend())
    assert [p.run_id for p in first] == [p.run_id for p in again]
    assert len({p.run_id for p in first}) == 6
    # the id is the hash of the resolved configuration, independent of key order
    cfg = first[0].config
    assert first[0].run_id == dict_hash(cfg) == dict_hash(dict(reversed(list(cfg.items()))))
    assert first[0].run_dir == tmp_path / "out" / "runs" / first[0].run_id
    assert first[4].overrides == {"loss.name": "biv", "seed": 1}
    assert first[4].config["loss"] == {"name": "biv"} and first[4].config["seed"] == 1
    assert first[4].label == "loss.name=biv seed=1"


def test_sweep_runs_everything_then_skips_completed_runs(tmp_path: Path) -> None:
    spec = fake_sweep_spec(tmp_path, ["loss.name=mse,biv", "seed=0-2"])
    out = tmp_path / "out"
    outcome = run_sweep(spec, out, executor=LocalExecutor(workers=1))
    assert outcome.counts == {"completed": 6}
    assert len(fake_calls(tmp_path)) == 6
    index = pd.read_parquet(out / "index.parquet")
    assert sorted(index["run_id"]) == sorted(p.run_id for p in outcome.planned)
    assert set(index["status"]) == {"completed"}
    assert {"loss.name", "seed", "final.test_mse"} <= set(index.columns)
    assert json.loads((out / "sweep.json").read_text())["grid"][1] == {"key": "seed", "values": [0, 1, 2]}
    # rerun: nothing executes again
    again = run_sweep(spec, out, executor=LocalExecutor(workers=1))
    assert again.skipped == 6 and again.results == []
    assert len(fake_calls(tmp_path)) == 6
    # load_sweep gives back the same spec (the basis of hetreg sweep --resume)
    assert load_sweep(out).same_as(spec)


def test_interrupted_runs_are_resumed(tmp_path: Path) -> None:
    spec = fake_sweep_spec(tmp_path, ["seed=0-1"], interrupt_after=1)
    out = tmp_path / "out"
    first = run_sweep(spec, out, executor=LocalExecutor(workers=1))
    assert first.counts == {"interrupted": 2}
    assert [r.status for r in first.results] == ["interrupted", "interrupted"]
    plan = plan_sweep(spec, out, DictBackend())
    assert {p.action for p in plan} == {"resume"}
    second = run_sweep(spec, out, executor=LocalExecutor(workers=1))
    assert second.counts == {"completed": 2}
    assert [resumed for _, resumed in fake_calls(tmp_path)] == [False, False, True, True]
    for p in plan:
        epochs = [row["epoch"] for row in runstore.read_metrics(p.run_dir)]
        assert epochs == [1, 2, 3]  # continued, not restarted


def test_failed_run_is_recorded_and_the_others_complete(tmp_path: Path) -> None:
    spec = fake_sweep_spec(tmp_path, ["fake.fail=false,true", "seed=0-1"])
    out = tmp_path / "out"
    outcome = run_sweep(spec, out, executor=LocalExecutor(workers=1))
    assert outcome.counts == {"completed": 2, "failed": 2}
    failed = [r for r in outcome.results if r.status == "failed"]
    assert all(r.error == "RuntimeError: fake failure requested by fake.fail" for r in failed)
    for r in failed:
        summary = json.loads((out / "runs" / r.run_id / "summary.json").read_text())
        assert summary["status"] == "failed" and summary["error"] == r.error
        log = Path(summary["log"]).read_text()
        assert "Traceback" in log and "fake failure" in log
    index = pd.read_csv(out / "index.csv")
    bad = index[index["status"] == "failed"]
    assert len(bad) == 2 and bad["error"].str.contains("fake failure").all()
    assert bad["log"].str.endswith("run.log").all()
    # a rerun retries only the failed runs; the earlier attempt is kept, not deleted
    n = len(fake_calls(tmp_path))
    run_sweep(spec, out, executor=LocalExecutor(workers=1))
    assert len(fake_calls(tmp_path)) == n + 2
    kept = sorted(p.name for p in (out / "attempts").iterdir())
    assert kept == sorted(f"{r.run_id}-1" for r in failed)


def test_out_folder_safety(tmp_path: Path) -> None:
    spec = fake_sweep_spec(tmp_path, ["seed=0-1"])
    other = fake_sweep_spec(tmp_path, ["seed=0-2"])
    out = tmp_path / "out"
    assert prepare_out_dir(out, spec) is False
    assert prepare_out_dir(out, spec) is True
    with pytest.raises(FileExistsError, match="already holds a different sweep"):
        prepare_out_dir(out, other)
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        run_sweep(spec, user, executor=LocalExecutor(workers=1))
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        prepare_out_dir(afile, spec)


def test_bad_grid_points_and_duplicates(tmp_path: Path) -> None:
    def no_iv(config: dict[str, Any]) -> None:
        if config["loss"]["name"] == "iv":
            raise ValueError("unknown loss 'iv'; valid losses: mse, biv")

    spec = fake_sweep_spec(tmp_path, ["loss.name=mse,iv", "seed=0-1"])
    with pytest.raises(ValueError, match=r"grid point loss.name=iv seed=0: unknown loss 'iv'; valid losses: mse, biv"):
        run_sweep(spec, tmp_path / "out", check=no_iv, executor=LocalExecutor(workers=1))
    assert not (tmp_path / "out").exists()  # nothing written for an invalid grid

    class Collapsing(DictBackend):
        def resolve(self, base: Any, overrides: Any) -> dict[str, Any]:
            config = super().resolve(base, overrides)
            config.pop("note", None)  # a key without effect on the run
            return config

    dup = fake_sweep_spec(tmp_path, ["note=a,b"])
    with pytest.raises(ValueError, match="grid points note=a and note=b give the same configuration"):
        plan_sweep(dup, tmp_path / "out", Collapsing())


def test_execute_run_captures_output_and_checks_the_summary(tmp_path: Path) -> None:
    spec = RunSpec("r1", str(tmp_path / "r1"), {"fake": {"epochs": 1}}, target=FAKE, quiet=False)
    result = execute_run(spec)
    assert result.status == "completed" and result.error is None
    assert "fake training in" in (tmp_path / "r1" / "run.log").read_text()
    bad = execute_run(RunSpec("r2", str(tmp_path / "r2"), {}, target="hetreg.experiments.testing:nothing"))
    assert bad.status == "failed" and "has no function 'nothing'" in (bad.error or "")
    silent = execute_run(RunSpec("r3", str(tmp_path / "r3"), {"fake": {"no_summary": True}}, target=FAKE))
    assert silent.status == "failed" and "without writing a completed summary.json" in (silent.error or "")


def test_executors_are_pluggable(tmp_path: Path) -> None:
    seen: list[str] = []

    class Recording(Executor):
        name = "recording"

        def __init__(self, workers: int | None = None) -> None:
            self.workers = workers

        def submit(self, runs: Any, on_result: Any = None) -> list[RunResult]:
            results = []
            for spec in runs:
                seen.append(spec.run_id)
                result = execute_run(spec)
                results.append(result)
                if on_result is not None:
                    on_result(result)
            return results

    from hetreg.experiments import executor as executor_mod

    register_executor("recording-test", Recording)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_executor("recording-test", Recording)
        runner = executor_mod.build_executor("recording-test", workers=3)
        spec = fake_sweep_spec(tmp_path, ["seed=0-2"])
        outcome = run_sweep(spec, tmp_path / "out", executor=runner)
        assert sorted(seen) == sorted(p.run_id for p in outcome.planned)
        assert outcome.counts == {"completed": 3}
    finally:
        executor_mod._EXECUTORS.pop("recording-test", None)
    with pytest.raises(ValueError, match="unknown executor 'slurmx'; valid executors: local"):
        executor_mod.build_executor("slurmx")


def test_threads_per_worker() -> None:
    from hetreg.experiments.executor import threads_per_worker

    assert threads_per_worker(2, cores=2) == 1
    assert threads_per_worker(1, cores=8) == 8
    assert threads_per_worker(3, cores=8) == 2
    assert threads_per_worker(16, cores=2) == 1
    with pytest.raises(ValueError, match="--workers must be >= 1"):
        LocalExecutor(workers=0)


@pytest.mark.slow
def test_process_pool_runs_in_parallel_workers(tmp_path: Path) -> None:
    spec = fake_sweep_spec(tmp_path, ["seed=0-1", "fake.fail=false,true"])
    outcome = run_sweep(spec, tmp_path / "out", executor=LocalExecutor(workers=2))
    assert outcome.counts == {"completed": 2, "failed": 2}
    assert len(fake_calls(tmp_path)) == 4
    for p in outcome.planned:
        log = (p.run_dir / "run.log").read_text()
        assert ("completed" in log) != bool(p.overrides["fake.fail"])


def test_worker_initializer_limits_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from hetreg.experiments import executor as executor_mod

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(executor_mod, "_WORKER_THREADS", None)
    before = torch.get_num_threads()
    try:
        executor_mod._init_worker(1)
        assert torch.get_num_threads() == 1
        assert {executor_mod.os.environ[v] for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")} == {"1"}
    finally:
        torch.set_num_threads(before)


def test_experiment_backend_keeps_the_base_loss_parameters_each_loss_accepts() -> None:
    from hetreg.experiments.sweep import ExperimentBackend

    base = {"data": {"name": "synthetic-hetero"}, "model": {"name": "mlp"}, "loss": {"name": "biv", "eps": 0.1}}
    backend = ExperimentBackend()
    resolved = {name: backend.resolve(base, {"loss.name": name, "seed": 3})["loss"] for name in ("mse", "iv", "biv", "cutoff")}
    assert resolved["mse"]["eps"] is None and resolved["cutoff"]["eps"] is None
    assert resolved["iv"]["eps"] == 0.1 and resolved["biv"]["eps"] == 0.1
    assert backend.resolve(base, {"loss.name": "mse", "seed": 3})["seed"] == 3
    # explicit loss parameters in the same grid point are never adapted
    with pytest.raises(ValueError, match="not a parameter of loss 'mse'"):
        backend.resolve(base, {"loss.name": "mse", "loss.eps": 0.2})
    with pytest.raises(ValueError, match="unknown loss 'l3'"):
        backend.resolve(base, {"loss.name": "l3"})
    # ids follow the resolved configuration
    ids = {backend.run_id(backend.resolve(base, {"loss.name": n})) for n in ("mse", "iv", "biv")}
    assert len(ids) == 3
