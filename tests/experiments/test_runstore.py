"""Run store: statuses from run folders, tolerant readers, index round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hetreg.experiments import runstore
from hetreg.experiments.testing import write_fake_run


def _run(tmp_path: Path, name: str, status: str | None, **summary: object) -> Path:
    body = None if status is None else {"status": status, **summary}
    return write_fake_run(tmp_path / "runs" / name, {"seed": 0, "loss": {"name": "mse"}}, [{"epoch": 1, "test_mse": 2.0}], body)


def test_statuses(tmp_path: Path) -> None:
    assert runstore.run_status(tmp_path / "nope") == "pending"
    (tmp_path / "empty").mkdir()
    assert runstore.run_status(tmp_path / "empty") == "pending"
    for status in ("completed", "failed", "interrupted"):
        assert runstore.run_status(_run(tmp_path, status, status)) == status
    assert runstore.run_status(_run(tmp_path, "nosummary", None)) == "incomplete"
    torn = _run(tmp_path, "torn", None)
    (torn / "summary.json").write_text('{"status": "compl')
    assert runstore.run_status(torn) == "incomplete"


def test_read_metrics_skips_a_torn_last_line(tmp_path: Path) -> None:
    run = _run(tmp_path, "a", "completed")
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 2, "test_m')
    assert runstore.read_metrics(run) == [{"epoch": 1, "test_mse": 2.0}]
    assert runstore.read_metrics(tmp_path / "missing") == []


def test_read_run_and_scan(tmp_path: Path) -> None:
    _run(tmp_path, "b", "failed", error="RuntimeError: boom\nsecond line")
    _run(tmp_path, "a", "completed", final={"test_mse": 1.5, "nested": {"x": 2}}, best={"val_mse": 1.0})
    records = runstore.scan_runs(tmp_path)
    assert [r.run_id for r in records] == ["a", "b"]
    assert records[0].config["loss"]["name"] == "mse"
    assert records[1].status == "failed"
    assert records[1].error == "second line"  # the last line of a multi-line error
    assert runstore.scan_runs(tmp_path / "runs")[0].run_id == "a"
    assert runstore.scan_runs(tmp_path / "nowhere") == []


def test_summary_metrics_flattens_final_and_best() -> None:
    summary = {"status": "completed", "final": {"test_mse": 1.5, "nested": {"x": 2}, "note": "s"}, "best": {"val_mse": 1.0}, "elapsed": 3, "ok": True}
    assert runstore.summary_metrics(summary) == {"final.test_mse": 1.5, "final.nested.x": 2.0, "best.val_mse": 1.0, "elapsed": 3.0}


def test_index_round_trip(tmp_path: Path) -> None:
    _run(tmp_path, "a", "completed", final={"test_mse": 1.5})
    _run(tmp_path, "b", "failed", error="boom")
    records = runstore.scan_runs(tmp_path)
    frame = runstore.build_index(records, ["loss.name", "model.options.hidden"], values={"b": {"model.options.hidden": [64, 64]}})
    assert list(frame.columns[:6]) == ["run_id", "loss.name", "model.options.hidden", "status", "error", "log"]
    hidden = frame["model.options.hidden"].tolist()
    assert pd.isna(hidden[0]) and hidden[1] == "[64, 64]"
    parquet, csv = runstore.write_index(tmp_path, frame)
    assert parquet.exists() and csv.exists()
    back = runstore.read_index(tmp_path)
    assert back is not None
    assert back["status"].tolist() == ["completed", "failed"]
    assert back["final.test_mse"].iloc[0] == 1.5 and pd.isna(back["final.test_mse"].iloc[1])
    assert pd.read_csv(csv)["run_id"].tolist() == ["a", "b"]
    # a mixed-type swept column is stored as text in parquet
    mixed = pd.DataFrame({"run_id": ["a", "b"], "loss.eps": [0.1, "auto"]})
    runstore.write_index(tmp_path / "mixed", mixed)
    assert runstore.read_index(tmp_path / "mixed")["loss.eps"].tolist() == ["0.1", "auto"]
    assert runstore.read_index(tmp_path / "none") is None


def test_write_json_is_atomic_and_readable(tmp_path: Path) -> None:
    import numpy as np

    runstore.write_json(tmp_path / "x.json", {"a": np.float64(1.5), "p": tmp_path})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 1.5, "p": str(tmp_path)}
    assert not list(tmp_path.glob(".x.json.*"))
    with pytest.raises(TypeError):
        runstore.write_json(tmp_path / "y.json", {"a": object()})
    assert not (tmp_path / "y.json").exists()
