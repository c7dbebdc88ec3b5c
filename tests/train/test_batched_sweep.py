"""Batched units inside a sweep: grouping planned runs and executing a group like ``execute_run``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hetreg.experiments.config import apply_overrides, config_to_dict
from hetreg.experiments.executor import DEFAULT_TARGET, RunSpec, execute_run
from hetreg.train.batched_sweep import execute_unit, group_run_specs

BASE: dict[str, Any] = {
    "name": "unit",
    "seed": 0,
    "data": {"name": "synthetic-hetero", "options": {"n": 200, "d": 4}},
    "noise": {"distribution": {"kind": "uniform", "low": 0.05, "high": 2.0}},
    "model": {"name": "mlp", "options": {"hidden": [8], "batchnorm": True}},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 2, "batch_size": 32, "num_threads": 1},
}


def spec(tmp_path: Path, name: str, *overrides: str, resume: bool = False, target: str = DEFAULT_TARGET) -> RunSpec:
    config = config_to_dict(apply_overrides(BASE, list(overrides)).resolved())
    return RunSpec(run_id=name, run_dir=str(tmp_path / name), config=config, resume=resume, target=target)


def ids(units: list[list[RunSpec]]) -> list[list[str]]:
    return [[s.run_id for s in unit] for unit in units]


def test_group_run_specs_groups_fresh_default_runs_that_batch(tmp_path):
    specs = [
        spec(tmp_path, "a", "seed=0"),
        spec(tmp_path, "b", "seed=1", "loss.name=biv"),
        spec(tmp_path, "c", "seed=2", resume=True),
        spec(tmp_path, "d", "seed=3", target="tests.somewhere:train"),
        spec(tmp_path, "e", "seed=4", "optimizer.lr=0.1"),
        spec(tmp_path, "f", "seed=5", "model.options.dropout=0.1"),
        spec(tmp_path, "g", "seed=6", "loss.name=cutoff"),
        spec(tmp_path, "h", "seed=7", "optimizer.lr=0.1"),
    ]
    assert ids(group_run_specs(specs)) == [["a", "b", "g"], ["e", "h"], ["c"], ["d"], ["f"]]
    assert ids(group_run_specs(specs, parts=2)) == [["a", "b"], ["g"], ["e"], ["h"], ["c"], ["d"], ["f"]]
    assert ids(group_run_specs(specs, max_size=2)) == [["a", "b"], ["g"], ["e", "h"], ["c"], ["d"], ["f"]]
    assert ids(group_run_specs(specs[2:4])) == [["c"], ["d"]]
    with pytest.raises(ValueError, match="parts"):
        group_run_specs(specs, parts=0)


def test_execute_unit_gives_the_results_of_execute_run(tmp_path):
    overrides = [["seed=0"], ["seed=1", "loss.name=biv", "loss.eps=0.3"], ["seed=2", "loss.name=cutoff"]]
    unit = [spec(tmp_path / "batched", f"r{i}", *ov) for i, ov in enumerate(overrides)]
    results = execute_unit(unit)
    plain = [execute_run(spec(tmp_path / "plain", f"r{i}", *ov)) for i, ov in enumerate(overrides)]
    assert [r.run_id for r in results] == ["r0", "r1", "r2"]
    for r, p in zip(results, plain):
        assert r.status == p.status == "completed" and r.error is None
        assert r.summary["final"] == {**p.summary["final"], "elapsed": r.summary["final"]["elapsed"]}
        assert r.summary == json.loads(Path(unit[0].run_dir).parent.joinpath(r.run_id, "summary.json").read_text())
    first = (tmp_path / "batched" / "r0" / "run.log").read_text()
    other = (tmp_path / "batched" / "r2" / "run.log").read_text()
    assert "started (batched with 3 runs)" in first and "completed after" in first
    assert "the group's output is in" in other and "=== run r2 completed" in other


def test_execute_unit_records_a_failing_run_like_execute_run(tmp_path):
    unit = [spec(tmp_path, "ok", "seed=0"), spec(tmp_path, "bad", "seed=1", "loss.name=cutoff", "noise.distribution=null")]
    ok, bad = execute_unit(unit)
    assert ok.status == "completed"
    assert bad.status == "failed" and "needs the noise variance" in bad.error
    summary = json.loads((tmp_path / "bad" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == bad.error and summary["log"].endswith("run.log")
    assert "=== run bad failed" in (tmp_path / "bad" / "run.log").read_text()


def test_execute_unit_runs_one_by_one_what_does_not_batch(tmp_path):
    unit = [spec(tmp_path, "x", "seed=0"), spec(tmp_path, "y", "seed=1", "optimizer.lr=0.1")]
    results = execute_unit(unit)
    assert [r.status for r in results] == ["completed", "completed"]
    assert "not started" in (tmp_path / "x" / "run.log").read_text()
    assert "training" not in json.loads((tmp_path / "y" / "environment.json").read_text())
    (single,) = execute_unit([spec(tmp_path, "z", "seed=2")])
    assert single.status == "completed"
