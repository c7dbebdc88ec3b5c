"""Trackers: the JSONL run store, the optional adapters (tested when their package is installed)."""

from __future__ import annotations

import json
import sys

import pytest

from hetreg.train import run_experiment
from hetreg.train.trackers import JsonlTracker, Tracker, build_trackers

from .conftest import make_config

RECORDS = [{"epoch": e, "step": 3 * e, "test_mse": 1.0 / e, "val_mse": 2.0 / e, "epoch_end": True} for e in (1, 2, 3)]


def test_jsonl_tracker_writes_one_line_per_record_and_nan_as_null(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tracker = JsonlTracker(path)
    assert isinstance(tracker, Tracker)
    tracker.start({})
    tracker.log({"epoch": 1, "val_mse": float("nan"), "test_mse": 0.5}, 3)
    tracker.log({"epoch": 2, "val_mse": 1.5, "test_mse": float("inf")}, 6)
    # flushed at once: readable before finish
    lines = path.read_text().splitlines()
    tracker.finish({"status": "completed"})
    assert [json.loads(line) for line in lines] == [
        {"epoch": 1, "val_mse": None, "test_mse": 0.5},
        {"epoch": 2, "val_mse": 1.5, "test_mse": None},
    ]


def test_jsonl_tracker_on_resume_rewrites_the_checkpointed_history(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")  # 3 lines, last one after the checkpoint
    tracker = JsonlTracker(path, history=RECORDS[:2])
    tracker.start({})
    tracker.log({"epoch": 3, "again": True}, 9)
    tracker.finish({})
    assert [json.loads(line) for line in path.read_text().splitlines()] == [*RECORDS[:2], {"epoch": 3, "again": True}]


def test_unknown_tracker_lists_the_allowed_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown tracker 'neptune'; allowed values: jsonl, tensorboard, mlflow, wandb"):
        build_trackers(["neptune"], tmp_path)
    assert build_trackers(["jsonl"], tmp_path) == []


@pytest.mark.parametrize(("name", "module", "extra"), [("tensorboard", "tensorboard", "tensorboard"), ("mlflow", "mlflow", "mlflow"), ("wandb", "wandb", "wandb")])
def test_a_missing_tracker_package_names_the_pip_extra(tmp_path, monkeypatch, name, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(ImportError, match=rf'pip install "hetreg\[{extra}\]"'):
        build_trackers([name], tmp_path)


def test_tensorboard_tracker_writes_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (tracker,) = build_trackers(["tensorboard"], tmp_path)
    tracker.start({"loss": {"name": "biv"}})
    for record in RECORDS:
        tracker.log(record, record["step"])
    tracker.finish({"status": "completed", "steps": 9})
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    scalars = events.Scalars("test_mse")
    assert [(s.step, round(s.value, 6)) for s in scalars] == [(3, 1.0), (6, 0.5), (9, round(1 / 3, 6))]
    assert "epoch_end" not in events.Tags()["scalars"]


def test_mlflow_tracker_logs_to_a_file_store_in_the_run_dir(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    (tracker,) = build_trackers(["mlflow"], tmp_path, project="proj", run_name="r1")
    tracker.start({"loss": {"name": "biv", "eps": 0.5}, "tags": [1, 2]})
    for record in RECORDS:
        tracker.log(record, record["step"])
    tracker.finish({"status": "failed"})
    assert "MLFLOW_ALLOW_FILE_STORE" not in __import__("os").environ
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.tracking.MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    run = client.get_run(tracker.run_id)
    assert run.data.params["loss.eps"] == "0.5" and run.data.params["loss.name"] == "biv"
    assert run.info.status == "FAILED"
    history = client.get_metric_history(tracker.run_id, "val_mse")
    assert sorted((m.step, m.value) for m in history) == [(3, 2.0), (6, 1.0), (9, pytest.approx(2 / 3))]


def test_wandb_tracker_runs_offline_inside_the_run_dir(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    (tracker,) = build_trackers(["wandb"], tmp_path, project="proj", run_name="r1")
    tracker.start({"loss": {"name": "biv"}})
    for record in RECORDS:
        tracker.log(record, record["step"])
    tracker.finish({"status": "completed"})
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))
    assert "WANDB_MODE" not in __import__("os").environ


def test_trackers_configured_in_the_experiment_see_every_evaluation(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_experiment(make_config("train.epochs=3", "tracking.trackers=[tensorboard]"), tmp_path / "run", quiet=True)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [s.step for s in events.Scalars("val_mse")] == [r["step"] for r in rows]
    assert [s.value for s in events.Scalars("val_mse")] == pytest.approx([r["val_mse"] for r in rows], rel=1e-6)
