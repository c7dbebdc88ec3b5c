"""The IV precursor command line: the README example (seed 002), the variants of its history, every position."""

from __future__ import annotations

import math

import pytest
from compat_helpers import assert_distribution, dry_run, from_mean_var, max_hetero, mixture, uniform

from hetreg.compat import cli_iv

# The example of the precursor README (seed 002), as written there (the "\\" line breaks joined).
README_IV = (
    'python main.py --exp_settings="classical_1_7159,7159,True,mse,5000" '
    '--noise_settings="True,uniform,True,False,0.5,1,False,3" '
    '--noise_params="0,0,0,0"  --estim_noise_params="0.52,500,0.09,0"'
)


def test_readme_example(capsys: pytest.CaptureFixture[str]) -> None:
    got = dry_run(cli_iv, README_IV, capsys)
    assert (got["dataset"], got["model"], got["loss"], got["eps"], got["threshold"]) == ("utkface", "cnn", "mse", None, None)
    assert (got["seed"], got["normalize"], got["train_size"]) == (7159, True, 16000)
    assert (got["batch_size"], got["lr"], got["epochs"], got["variance_disturbance"]) == (256, 0.01, 20, 0.0)
    # two components (mu, v) = (0.52, 0.09) and (500, 0); P = 1 puts all the weight on the first,
    # and AVG_MEAN = 5000 is not applied because P = 1 (the precursor's rule)
    assert_distribution(
        got["noise"]["distribution"],
        mixture([1.0, 0.0], uniform(0.52 - math.sqrt(0.27), 0.52 + math.sqrt(0.27)), uniform(500.0, 500.0)),
    )


def test_readme_example_mentions_the_unapplied_average(capsys: pytest.CaptureFixture[str]) -> None:
    cli_iv(["--exp_settings=classical_1_7159,7159,True,mse,5000",
            "--noise_settings=True,uniform,True,False,0.5,1,False,3",
            "--noise_params=0,0,0,0", "--estim_noise_params=0.52,500,0.09,0", "--dry-run"])
    err = capsys.readouterr().err
    assert "AVG_MEAN=5000 is not applied (P = 1)" in err


def test_average_mean_replaces_mu2(capsys: pytest.CaptureFixture[str]) -> None:
    # a later README example: mu = (2, 500), v = (1, 0), p = 0.5, AVG_MEAN 5000 (with a space, as written)
    cmd = ('--exp_settings="hello,42,False,mse, 5000" --noise_settings="True,uniform,True,False,0.5,0.5,False,3" '
           '--noise_params="1,100,100,1000" --estim_noise_params="2,500,1,0"')
    got = dry_run(cli_iv, cmd, capsys)
    mu2 = (5000 - 0.5 * 2) / 0.5
    assert got["normalize"] is False and got["seed"] == 42
    assert_distribution(got["noise"]["distribution"], mixture([0.5, 0.5], from_mean_var(2.0, 1.0), uniform(mu2, mu2)))


def test_negative_average_mean_disables_it(capsys: pytest.CaptureFixture[str]) -> None:
    cmd = ('--exp_settings="t,1,True,mse,-1" --noise_settings="True,uniform,True,False,0.5,0.5,False,3" '
           '--estim_noise_params="2,500,1,0"')
    got = dry_run(cli_iv, cmd, capsys)
    assert_distribution(got["noise"]["distribution"], mixture([0.5, 0.5], from_mean_var(2.0, 1.0), uniform(500.0, 500.0)))


def test_direct_bounds_with_five_components_use_the_interval_rule(capsys: pytest.CaptureFixture[str]) -> None:
    # the example in the precursor's main.py header: 10 values = 5 components (a_i, b_i)
    cmd = ('--exp_settings="hello,42,True,mse, 5000" --noise_settings="True,uniform,False,False,0.5,0.5,False,3" '
           '--noise_params="1,100,1000,5000,10000,100000,100,2000,30000,400000" --estim_noise_params="100,500,1000,5000"')
    got = dry_run(cli_iv, cmd, capsys)
    # first ceil(5/2) = 3 components share p = 0.5, the last 2 share 0.5
    weights = [0.5 / 3] * 3 + [0.25, 0.25]
    expected = mixture(weights, uniform(1.0, 100000.0), uniform(100.0, 100.0), uniform(1000.0, 2000.0),
                       uniform(5000.0, 30000.0), uniform(10000.0, 400000.0))
    assert_distribution(got["noise"]["distribution"], expected)


def test_single_component_ignores_p(capsys: pytest.CaptureFixture[str]) -> None:
    cmd = '--exp_settings="t,1,True,mse,-1" --noise_settings="True,uniform,False,False,1,0.3,False,3" --noise_params="0,2"'
    assert_distribution(dry_run(cli_iv, cmd, capsys)["noise"]["distribution"], uniform(0.0, 2.0))


def test_max_hetero_scales_every_component(capsys: pytest.CaptureFixture[str]) -> None:
    cmd = ('--exp_settings="t,1,True,biv,-1" --noise_settings="True,uniform,True,True,0.5,0.5,False,3" '
           '--estim_noise_params="2,500,1,0"')
    got = dry_run(cli_iv, cmd, capsys)
    assert (got["loss"], got["eps"]) == ("biv", 0.1)
    assert_distribution(got["noise"]["distribution"], mixture([0.5, 0.5], max_hetero(2.0, 0.5), max_hetero(500.0, 0.5)))


def test_iv_loss(capsys: pytest.CaptureFixture[str]) -> None:
    cmd = '--exp_settings="t,1,True,iv,-1" --noise_settings="True,uniform,False,False,1,1,False,3" --noise_params="0,1"'
    got = dry_run(cli_iv, cmd, capsys)
    assert (got["loss"], got["eps"]) == ("iv", 0.1)


def test_threshold_becomes_the_cutoff_loss(capsys: pytest.CaptureFixture[str]) -> None:
    cmd = '--exp_settings="t,1,True,mse,-1" --noise_settings="True,uniform,False,False,1,1,True,3" --noise_params="0,10"'
    got = dry_run(cli_iv, cmd, capsys)
    assert (got["loss"], got["threshold"], got["eps"]) == ("cutoff", 3.0, None)


def test_gamma_direct_and_estimated(capsys: pytest.CaptureFixture[str]) -> None:
    direct = '--exp_settings="t,1,True,mse,-1" --noise_settings="True,gamma,False,False,1,1,False,3" --noise_params="2,0.5"'
    assert dry_run(cli_iv, direct, capsys)["noise"]["distribution"] == {"kind": "gamma", "shape": 2.0, "rate": 0.5}
    estim = '--exp_settings="t,1,True,mse,-1" --noise_settings="True,gamma,True,False,1,1,False,3" --estim_noise_params="2,8"'
    assert_distribution(dry_run(cli_iv, estim, capsys)["noise"]["distribution"], {"kind": "gamma", "shape": 0.5, "rate": 0.25})


def test_no_noise(capsys: pytest.CaptureFixture[str]) -> None:
    got = dry_run(cli_iv, '--exp_settings="t,7159.0,False,mse,0" --noise_settings="False"', capsys)
    assert got["noise"] is None and got["seed"] == 7159 and got["loss"] == "mse"


def test_epochs_override(capsys: pytest.CaptureFixture[str]) -> None:
    got = dry_run(cli_iv, '--exp_settings="t,1,False,mse,0" --noise_settings="False" --epochs 2', capsys)
    assert got["epochs"] == 2
