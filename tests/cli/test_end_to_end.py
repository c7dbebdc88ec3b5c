"""Tiny real runs through the command line: train, sweep (rerun skips), run --quick, bad names."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from hetreg.cli import app

runner = CliRunner()

TINY = {
    "name": "tiny",
    "seed": 0,
    "data": {"name": "synthetic-hetero", "options": {"n": 240, "d": 4}},
    "noise": {"distribution": {"kind": "mixture", "weights": [0.5, 0.5], "components": [
        {"kind": "uniform", "low": 0.001, "high": 0.002}, {"kind": "uniform", "low": 4.0, "high": 8.0}]}},
    "model": {"name": "mlp", "options": {"hidden": [8]}},
    "loss": {"name": "mse"},
    "train": {"epochs": 2, "batch_size": 32},
}


def invoke(*args: str):  # noqa: ANN201 - click Result
    return runner.invoke(app, list(args), env={"COLUMNS": "120", "HETREG_DEBUG": ""})


@pytest.fixture()
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def error_line(result) -> str:  # noqa: ANN001
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.slow
def test_train_then_refuse_overwrite_then_resume(tmp_path: Path, config_file: Path) -> None:
    run_dir = tmp_path / "run"
    result = invoke("--quiet", "train", "--config", str(config_file), "--set", "loss.name=biv", "--set", "loss.eps=0.1", "--out", str(run_dir))
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 2
    assert "test_mse_raw" in result.stdout and "status: completed" in result.stdout
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["loss"]["eps"] == 0.1
    again = invoke("train", "--config", str(config_file), "--out", str(run_dir))
    assert again.exit_code == 2 and "already holds a completed run; choose a new folder" in error_line(again)
    resumed = invoke("--quiet", "train", "--resume", str(run_dir))
    assert resumed.exit_code == 0, resumed.output


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("loss.name=l3", "unknown loss 'l3'; allowed values: "),
        ("data.name=mnist", "unknown dataset 'mnist'; allowed values: "),
        ("model.name=vit", "unknown model 'vit'; allowed values: "),
        ("loss.epss=1", "unknown key 'loss.epss'"),
    ],
)
def test_unknown_names_list_the_choices(config_file: Path, override: str, message: str) -> None:
    result = invoke("train", "--config", str(config_file), "--set", override)
    assert result.exit_code == 2
    line = error_line(result)
    assert message in line
    if "allowed values" in line:
        assert "mse" in line or "synthetic-hetero" in line or "mlp" in line


def test_sweep_with_an_invalid_grid_point_names_it(tmp_path: Path, config_file: Path) -> None:
    out = tmp_path / "sweep"
    result = invoke("sweep", "--config", str(config_file), "--grid", "loss.name=mse,l3", "--out", str(out))
    assert result.exit_code == 2
    line = error_line(result)
    assert line.startswith("error: grid point loss.name=l3: ") and "unknown loss 'l3'; allowed values:" in line
    assert not out.exists()


@pytest.mark.slow
def test_sweep_then_rerun_skips_completed(tmp_path: Path, config_file: Path) -> None:
    out = tmp_path / "sweep"
    args = ["sweep", "--config", str(config_file), "--grid", "loss.name=mse,biv", "--grid", "seed=0-1", "--out", str(out), "--workers", "1"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "4 runs, 0 already completed, 4 to run" in result.stderr
    index = pd.read_parquet(out / "index.parquet")
    assert len(index) == 4 and set(index["status"]) == {"completed"}
    assert sorted(index["loss.name"]) == ["biv", "biv", "mse", "mse"]
    assert all((out / "runs" / rid / "summary.json").exists() for rid in index["run_id"])
    assert (out / "report.html").exists() and (out / "results.csv").exists()
    mtimes = {rid: (out / "runs" / rid / "summary.json").stat().st_mtime_ns for rid in index["run_id"]}
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert "4 runs, 4 already completed, 0 to run" in again.stderr
    assert mtimes == {rid: (out / "runs" / rid / "summary.json").stat().st_mtime_ns for rid in index["run_id"]}
    # a different grid in the same folder is refused
    other = invoke("sweep", "--config", str(config_file), "--grid", "seed=0-2", "--out", str(out))
    assert other.exit_code == 2 and "already holds a different sweep" in error_line(other)


@pytest.mark.slow
def test_run_quick(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = invoke("run", "--quick", "--seeds", "1", "--workers", "1", "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    for name in ("mse", "iv (eps=0.5)", "biv (eps=0.5)", "cutoff (threshold=1)"):
        assert name in result.stdout
    assert "Δ vs mse" in result.stdout
    assert (out / "report.html").exists() and (out / "report.md").exists()
    assert len(pd.read_csv(out / "index.csv")) == 4
