"""``hetreg compat biv|iv`` passes the original arguments through to the compat parsers."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from hetreg.cli.app import app

BIV = [
    "--experiment_settings=exp_tag,7159,utkf,True,16000",
    "--model_settings=vanilla_cnn,cutoffMSE",
    "--noise_settings=True,binary_uniform",
    "--params_settings=meanvar_avg,0.5,3000",
    "--parameters=True,0.5,1,0.3,0",
    "--dry-run",
]


def test_compat_biv_dry_run_resolves_the_readme_example():
    result = CliRunner().invoke(app, ["compat", "biv", *BIV])
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.stdout.strip().splitlines()[0])
    assert resolved["dataset"] == "utkface" and resolved["loss"] == "cutoff"
    mixture = resolved["noise"]["distribution"]
    assert mixture["weights"] == [0.5, 0.5]
    high = mixture["components"][1]
    s = 0.3**0.5
    assert abs(high["low"] - 5999.5 * (1 - s)) < 1e-6 and abs(high["high"] - 5999.5 * (1 + s)) < 1e-6


def test_compat_errors_exit_2_with_one_line():
    result = CliRunner().invoke(app, ["compat", "biv", "--experiment_settings=exp_tag,7159,mnist,True,100", "--dry-run"])
    assert result.exit_code == 2
    assert "mnist" in result.output
    result = CliRunner().invoke(app, ["compat", "iv", "--exp_settings=a,1", "--dry-run"])
    assert result.exit_code == 2
    assert "missing position" in result.output


def test_compat_help_reaches_the_original_parser():
    result = CliRunner().invoke(app, ["compat", "biv", "--help"])
    assert result.exit_code == 0
    assert "--experiment_settings" in result.output and "--extra_exp" in result.output
