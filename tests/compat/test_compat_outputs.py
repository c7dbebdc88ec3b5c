"""Dry-run outputs: one JSON object on stdout, the equivalent ``hetreg train`` config as YAML; ``main.py``."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from compat_helpers import argv_of

from hetreg.compat import cli_biv, cli_iv
from hetreg.experiments.config import load_config

REPO = Path(__file__).resolve().parents[2]
MAIN = (
    '--experiment_settings="exp_tag,7159,utkf,True,16000" --model_settings="vanilla_cnn,cutoffMSE" '
    '--noise_settings="True,binary_uniform" --params_settings="meanvar_avg,0.5,3000" --parameters="True,0.5,1,0.3,0"'
)
WINE_BIV = (
    '--experiment_settings="w,11,wine,False,3000" --model_settings="vanilla_ann,biv,2e-2" '
    '--noise_settings="True,gamma" --params_settings="alphabeta" --parameters="2,4" --extra_exp="32,0.25,True,0.003"'
)


def _yaml_config(text: str) -> dict:
    return yaml.safe_load(text)


def test_yaml_on_stderr_is_the_equivalent_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_biv(argv_of(WINE_BIV) + ["--dry-run", "--data-dir", "/data/here"]) == 0
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 1
    cfg = _yaml_config(err)
    assert cfg["name"] == "w" and cfg["seed"] == 11
    assert cfg["data"]["name"] == "wine" and cfg["data"]["root"] == "/data/here"
    assert (cfg["data"]["normalize"], cfg["data"]["train_size"], cfg["data"]["test_size"], cfg["data"]["val_fraction"]) == (
        False, 3000, 2491, 0.0)
    assert cfg["noise"]["distribution"] == {"kind": "gamma", "shape": 2.0, "rate": 4.0}
    assert cfg["noise"]["disturbance"] == 0.25
    assert cfg["model"]["name"] == "mlp" and cfg["model"]["options"] == {"preset": "wine"}
    assert (cfg["loss"]["name"], cfg["loss"]["eps"]) == ("biv", 0.02)
    assert (cfg["optimizer"]["name"], cfg["optimizer"]["lr"]) == ("adam", 0.003)
    assert (cfg["train"]["epochs"], cfg["train"]["batch_size"], cfg["train"]["eval_every"]) == (20, 32, "epoch")


def test_utkface_keeps_full_size_images_and_raw_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_biv(argv_of(MAIN) + ["--dry-run"]) == 0
    out, err = capsys.readouterr()
    cfg = _yaml_config(err)
    assert cfg["data"]["options"] == {"image_size": 200}
    # the cutoff threshold stays in raw units (years²): the trainer divides it by s_y²
    assert (cfg["loss"]["name"], cfg["loss"]["threshold"]) == ("cutoff", 1.0)
    # the same distribution as the JSON, in hetreg's own format
    assert cfg["noise"]["distribution"] == json.loads(out)["noise"]["distribution"]
    # the note about the replaced mu2 is a YAML comment
    assert "# note: --parameters position 2 (MU2)=1 is replaced" in err


def test_config_out_writes_a_loadable_file_and_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "biv.yaml"
    assert cli_biv(argv_of(MAIN) + ["--dry-run", "--config-out", str(target)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["loss"] == "cutoff"
    assert "image_size" not in err  # the YAML went to the file
    cfg = load_config(target)
    assert cfg.loss.name == "cutoff" and cfg.data.name == "utkface" and cfg.train.epochs == 20
    mixture = cfg.noise.distribution
    assert mixture["weights"] == [0.5, 0.5]
    assert mixture["components"][1]["high"] == pytest.approx(5999.5 * (1 + math.sqrt(0.3)))
    before = target.read_text()
    assert cli_biv(argv_of(MAIN) + ["--dry-run", "--config-out", str(target)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and len(err.strip().splitlines()) == 1
    assert target.read_text() == before


def test_set_overrides_the_translated_config(capsys: pytest.CaptureFixture[str]) -> None:
    argv = argv_of(MAIN) + ["--dry-run", "--set", "data.options.image_size=32", "--set", "train.eval_every=10"]
    assert cli_biv(argv) == 0
    out, err = capsys.readouterr()
    cfg = _yaml_config(err)
    assert cfg["data"]["options"]["image_size"] == 32 and cfg["train"]["eval_every"] == 10
    assert cli_biv(argv_of(MAIN) + ["--dry-run", "--set", "train.epochz=3"]) == 2
    assert "epochz" in capsys.readouterr().err


def test_iv_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--exp_settings=t,5,True,mse,-1", "--noise_settings=True,uniform,False,False,1,1,True,30",
            "--noise_params=0,100", "--dry-run"]
    assert cli_iv(argv) == 0
    cfg = _yaml_config(capsys.readouterr().err)
    assert (cfg["loss"]["name"], cfg["loss"]["threshold"]) == ("cutoff", 30.0)
    assert cfg["noise"]["distribution"] == {"kind": "uniform", "low": 0.0, "high": 100.0}
    assert (cfg["model"]["name"], cfg["data"]["name"], cfg["data"]["train_size"]) == ("cnn", "utkface", 16000)


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_biv(["--help"]) == 0
    assert "--experiment_settings" in capsys.readouterr().out
    assert cli_iv(["--help"]) == 0
    assert "--estim_noise_params" in capsys.readouterr().out


def test_main_py_runs_the_readme_command_as_written() -> None:
    command = "python main.py " + MAIN + " --dry-run"
    proc = subprocess.run(
        [sys.executable, "main.py", *argv_of(command)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert (got["dataset"], got["model"], got["loss"], got["threshold"], got["seed"]) == ("utkface", "cnn", "cutoff", 1.0, 7159)
    bad = subprocess.run([sys.executable, "main.py", "--experiment_settings=t,1,utkf,maybe,10"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        "error: --experiment_settings position 3 (NORMALIZE) must be True or False (exactly), got 'maybe'"
    ]


def test_missing_data_fails_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HETREG_DATA", str(tmp_path / "empty"))
    code = cli_biv(["--experiment_settings=t,1,wine,True,200", "--model_settings=vanilla_ann,mse",
                    "--noise_settings=False", "--epochs", "1", "--out", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.startswith("error: ") and "winequality-red.csv" in err
    assert len(err.strip().splitlines()) == 1
