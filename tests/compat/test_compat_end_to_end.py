"""Tiny end-to-end runs of original command lines (1 epoch, 200 training rows) on the shared data.

Skipped when ``HETREG_DATA`` is unset or the dataset files are missing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from hetreg.compat import cli_biv, cli_iv

DATA = os.environ.get("HETREG_DATA")
FILES = {
    "wine": ("wine-quality/winequality-red.csv", "wine-quality/winequality-white.csv"),
    "bike": ("bike-sharing/hour.csv",),
    "utkface": ("utkface/UTKFace",),
}
# UTKFace at 16 px on a fixed subset of 400 images (test 100) keeps the run to seconds.
SMALL_UTKFACE = ["--set", "data.options.image_size=16", "--set", "data.options.max_images=400", "--set", "data.test_size=100"]


def _need(dataset: str) -> None:
    if not DATA:
        pytest.skip("HETREG_DATA is not set (point it at the shared data folder)")
    missing = [f for f in FILES[dataset] if not (Path(DATA) / f).exists()]
    if missing:
        pytest.skip(f"{dataset} files missing under HETREG_DATA: {', '.join(missing)}")


def _check_run(run_dir: Path, out: str, loss: str, dataset: str) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 1
    assert summary["data"]["n_train"] == 200 and summary["data"]["n_val"] == 0
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["loss"]["name"] == loss and config["data"]["name"] == dataset
    final = summary["final"]
    # printed values are the run's final test MSE, normalised and in squared label units
    assert f"final test MSE (normalised labels): {final['test_mse']:.6g}" in out
    assert f"{final['test_mse_raw']:.6g}" in out
    assert final["test_mse_raw"] == pytest.approx(final["test_mse"] * summary["data"]["y_std"] ** 2, rel=1e-4)
    assert f"run folder: {run_dir}" in out
    return summary


def test_wine_biv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _need("wine")
    run_dir = tmp_path / "wine"
    code = cli_biv([
        "--experiment_settings=w,3,wine,True,200", "--model_settings=vanilla_ann,biv,0.5",
        "--noise_settings=True,binary_uniform", "--params_settings=boundaries,0.5", "--parameters=0,1,1,4",
        "--epochs", "1", "--out", str(run_dir),
    ])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = _check_run(run_dir, out, "biv", "wine")
    assert summary["data"]["n_test"] == 2491


def test_bike_cutoff_gamma(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _need("bike")
    run_dir = tmp_path / "bike"
    code = cli_biv([
        "--experiment_settings=b,3,bike,True,200", "--model_settings=vanilla_ann,cutoffMSE,5000",
        "--noise_settings=True,gamma", "--params_settings=alphabeta", "--parameters=1,0.0002",
        "--extra_exp=64,0.5,True,0.01", "--epochs", "1", "--out", str(run_dir),
    ])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = _check_run(run_dir, out, "cutoff", "bike")
    assert summary["data"]["n_test"] == 3379
    assert 0.0 < summary["final"]["kept_fraction"] < 1.0


def test_utkface_readme_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _need("utkface")
    run_dir = tmp_path / "utk"
    code = cli_biv([
        "--experiment_settings=exp_tag,7159,utkf,True,200", "--model_settings=vanilla_cnn,cutoffMSE",
        "--noise_settings=True,binary_uniform", "--params_settings=meanvar_avg,0.5,3000",
        "--parameters=True,0.5,1,0.3,0", "--epochs", "1", "--out", str(run_dir), *SMALL_UTKFACE,
    ])
    out, err = capsys.readouterr()
    assert code == 0, err
    _check_run(run_dir, out, "cutoff", "utkface")


def test_iv_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _need("utkface")
    run_dir = tmp_path / "iv"
    code = cli_iv([
        "--exp_settings=iv_run,7159,True,iv,-1", "--noise_settings=True,uniform,True,False,0.5,0.5,False,3",
        "--noise_params=0,0,0,0", "--estim_noise_params=0.52,500,0.09,0",
        "--epochs", "1", "--out", str(run_dir), "--set", "data.train_size=200", *SMALL_UTKFACE,
    ])
    out, err = capsys.readouterr()
    assert code == 0, err
    _check_run(run_dir, out, "iv", "utkface")


def test_existing_run_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _need("wine")
    argv = ["--experiment_settings=w,3,wine,True,200", "--model_settings=vanilla_ann,mse", "--noise_settings=False",
            "--epochs", "1", "--out", str(tmp_path / "run")]
    assert cli_biv(argv) == 0
    capsys.readouterr()
    assert cli_biv(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out:") and len(err.strip().splitlines()) == 1
