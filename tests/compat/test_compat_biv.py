"""The original BIV command line: every README example and every position, resolved through ``--dry-run``.

Expected distributions are computed here by hand (μ ± √(3v), μ(1 ± √s), μ₂ = (X − pμ₁)/(1 − p)),
independently of :mod:`hetreg.noise`.
"""

from __future__ import annotations

import math

import pytest
from compat_helpers import (
    assert_distribution,
    dry_run,
    from_mean_var,
    max_hetero,
    mixture,
    uniform,
)

from hetreg.compat import cli_biv, resolve_biv

# The example commands of the BIV README (seed 000), as written there (line breaks joined).
README_MAIN = (
    'python main.py --experiment_settings="exp_tag,7159,utkf,True,16000" --model_settings="vanilla_cnn,cutoffMSE" '
    '--noise_settings="True,binary_uniform" --params_settings="meanvar_avg,0.5,3000" --parameters="True,0.5,1,0.3,0"'
)
README_EXAMPLES = {
    "main": README_MAIN,
    "cnn_mse_no_noise": (
        'python main.py --experiment_settings="exp_tag,7159,utkf,True,16000" --model_settings="vanilla_cnn,mse,0.5" '
        '--noise_settings="False"'
    ),
    "resnet_biv_uniform_boundaries": (
        'python main.py --experiment_settings="exp_tag,7159,utkf,True,16000" --model_settings="resnet,biv,0.5" '
        '--noise_settings="True,uniform" --params_settings="boundaries" --parameters="0,1"'
    ),
    "resnet_biv_uniform_max_hetero": (
        'python main.py --experiment_settings="exp_tag,7159,utkf,True,16000" --model_settings="resnet,biv,0.5" '
        '--noise_settings="True,uniform" --params_settings="meanvar" --parameters="True,0.5,0.083"'
    ),
    "resnet_biv_binary_boundaries": (
        'python main.py --experiment_settings="exp_tag,7159,utkf,True,16000" --model_settings="resnet,biv,0.5" '
        '--noise_settings="True,binary_uniform"  --params_settings="boundaries,0.5" --parameters="0,1,1,4"'
    ),
    "resnet_mse_binary_meanvar": (
        'python main.py --experiment_settings="exp_tag,7159,utkf,True,16000" --model_settings="resnet,mse" '
        '--noise_settings="True,binary_uniform"  --params_settings="meanvar,0.5" --parameters="False,0.5,1,0.083,0"'
    ),
    "resnet_biv_binary_avg_2000": (
        'python main.py --experiment_settings="exp_tag,7159,utkf,True,16000" --model_settings="resnet,biv,0.5" '
        '--noise_settings="True,binary_uniform"  --params_settings="meanvar_avg,0.5,2000" '
        '--parameters="False,0.5,1,0.083,0"'
    ),
    "resnet_cutoff_binary_avg_2000": (
        'python main.py --experiment_settings="exp_tag,7159,utkf,True,16000" --model_settings="resnet,cutoffMSE,1" '
        '--noise_settings="True,binary_uniform" --params_settings="meanvar_avg,0.5,2000" '
        '--parameters="False,0.5,1,0.08,0"'
    ),
}

S = math.sqrt(0.3)
EXPECTED = {
    # p = 0.5, mu1 = 0.5, mu2 = (3000 - 0.25)/0.5 = 5999.5, s = 0.3 (v1 slot) on both components
    "main": dict(
        model="cnn", loss="cutoff", eps=None, threshold=1.0,
        noise=mixture(
            [0.5, 0.5],
            uniform(0.5 * (1 - S), 0.5 * (1 + S)),
            uniform(5999.5 * (1 - S), 5999.5 * (1 + S)),
        ),
    ),
    "cnn_mse_no_noise": dict(model="cnn", loss="mse", eps=None, threshold=None, noise=None),
    "resnet_biv_uniform_boundaries": dict(model="resnet18", loss="biv", eps=0.5, threshold=None, noise=uniform(0.0, 1.0)),
    # README says "variance equal to the maximum heteroscedasticity", the code reads 0.083 as the scale s
    "resnet_biv_uniform_max_hetero": dict(
        model="resnet18", loss="biv", eps=0.5, threshold=None,
        noise=uniform(0.5 * (1 - math.sqrt(0.083)), 0.5 * (1 + math.sqrt(0.083))),
    ),
    "resnet_biv_binary_boundaries": dict(
        model="resnet18", loss="biv", eps=0.5, threshold=None,
        noise=mixture([0.5, 0.5], uniform(0.0, 1.0), uniform(1.0, 4.0)),
    ),
    "resnet_mse_binary_meanvar": dict(
        model="resnet18", loss="mse", eps=None, threshold=None,
        noise=mixture([0.5, 0.5], uniform(0.5 - math.sqrt(0.249), 0.5 + math.sqrt(0.249)), uniform(1.0, 1.0)),
    ),
    # mu2 = (2000 - 0.5*0.5)/0.5 = 3999.5 with v2 = 0: a point mass
    "resnet_biv_binary_avg_2000": dict(
        model="resnet18", loss="biv", eps=0.5, threshold=None,
        noise=mixture([0.5, 0.5], from_mean_var(0.5, 0.083), uniform(3999.5, 3999.5)),
    ),
    "resnet_cutoff_binary_avg_2000": dict(
        model="resnet18", loss="cutoff", eps=None, threshold=1.0,
        noise=mixture([0.5, 0.5], from_mean_var(0.5, 0.08), uniform(3999.5, 3999.5)),
    ),
}


@pytest.mark.parametrize("name", sorted(README_EXAMPLES))
def test_readme_examples_resolve_to_the_hand_computed_experiment(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    got = dry_run(cli_biv, README_EXAMPLES[name], capsys)
    expected = EXPECTED[name]
    assert got["dataset"] == "utkface"
    assert got["seed"] == 7159 and got["train_size"] == 16000 and got["normalize"] is True
    assert got["batch_size"] == 256 and got["lr"] == 0.01 and got["epochs"] == 20
    assert got["variance_disturbance"] == 0.0
    for key in ("model", "loss", "eps", "threshold"):
        assert got[key] == expected[key], key
    if expected["noise"] is None:
        assert got["noise"] is None
    else:
        assert set(got["noise"]) == {"distribution"}
        assert_distribution(got["noise"]["distribution"], expected["noise"])


def test_main_example_mixture_mean_is_the_target(capsys: pytest.CaptureFixture[str]) -> None:
    d = dry_run(cli_biv, README_MAIN, capsys)["noise"]["distribution"]
    mean = sum(w * (c["low"] + c["high"]) / 2 for w, c in zip(d["weights"], d["components"]))
    assert mean == pytest.approx(3000.0, rel=1e-12)


def test_max_hetero_readme_reading_documented_alternatives(capsys: pytest.CaptureFixture[str]) -> None:
    """What the README text describes (U(0, 1), variance 1/12) needs False,0.5,0.083 (≈) or True,0.5,1."""
    base = 'python main.py --experiment_settings="t,1,utkf,True,100" --model_settings="resnet,biv,0.5" --noise_settings="True,uniform" --params_settings="meanvar"'
    full = dry_run(cli_biv, base + ' --parameters="True,0.5,1"', capsys)["noise"]["distribution"]
    assert_distribution(full, uniform(0.0, 1.0))
    direct = dry_run(cli_biv, base + ' --parameters="False,0.5,0.083"', capsys)["noise"]["distribution"]
    assert_distribution(direct, from_mean_var(0.5, 0.083))


def _cmd(exp: str = "t,3,utkf,True,1000", model: str = "vanilla_cnn,biv", noise: str = "True,uniform",
         params: str = "boundaries", parameters: str = "0,1", extra: str | None = None) -> str:
    cmd = (f'--experiment_settings="{exp}" --model_settings="{model}" --noise_settings="{noise}" '
           f'--params_settings="{params}" --parameters="{parameters}"')
    return cmd if extra is None else cmd + f' --extra_exp="{extra}"'


def test_seed_is_parsed_as_a_number(capsys: pytest.CaptureFixture[str]) -> None:
    assert dry_run(cli_biv, _cmd(exp="t,7159.0,utkf,True,1000"), capsys)["seed"] == 7159
    assert dry_run(cli_biv, _cmd(exp="t,7159,utkf,True,1000"), capsys)["seed"] == 7159


def test_defaults_eps_threshold_batch_lr_epochs(capsys: pytest.CaptureFixture[str]) -> None:
    biv = dry_run(cli_biv, _cmd(model="vanilla_cnn,biv"), capsys)
    assert (biv["loss"], biv["eps"], biv["threshold"]) == ("biv", 0.1, None)
    cut = dry_run(cli_biv, _cmd(model="vanilla_cnn,cutoffMSE"), capsys)
    assert (cut["loss"], cut["eps"], cut["threshold"]) == ("cutoff", None, 1.0)
    assert (biv["batch_size"], biv["lr"], biv["epochs"], biv["variance_disturbance"]) == (256, 0.01, 20, 0.0)


def test_scientific_notation_for_eps_and_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    assert dry_run(cli_biv, _cmd(model="vanilla_cnn,biv,1e-5"), capsys)["eps"] == 1e-5
    assert dry_run(cli_biv, _cmd(model="vanilla_cnn,cutoffMSE,2.5e3"), capsys)["threshold"] == 2500.0


def test_iv_loss_works_and_normalize_biv_false_means_iv(capsys: pytest.CaptureFixture[str]) -> None:
    iv = dry_run(cli_biv, _cmd(model="vanilla_cnn,iv,0.3"), capsys)
    assert (iv["loss"], iv["eps"]) == ("iv", 0.3)
    unnormalised = dry_run(cli_biv, _cmd(model="vanilla_cnn,biv,0.2", extra="256,0,False,0.01"), capsys)
    assert (unnormalised["loss"], unnormalised["eps"]) == ("iv", 0.2)
    normalised = dry_run(cli_biv, _cmd(model="vanilla_cnn,biv,0.2", extra="256,0,True,0.01"), capsys)
    assert normalised["loss"] == "biv"


def test_extra_exp_positions(capsys: pytest.CaptureFixture[str]) -> None:
    got = dry_run(cli_biv, _cmd(extra="64,0.5,True,1e-3"), capsys)
    assert (got["batch_size"], got["variance_disturbance"], got["lr"]) == (64, 0.5, 1e-3)
    # TRAIN_BS = 0 keeps the default batch size (the original overrode it only when non-zero)
    assert dry_run(cli_biv, _cmd(extra="0,0,True,0.01"), capsys)["batch_size"] == 256


@pytest.mark.parametrize(
    "dataset, model, expected_model, epochs, max_train",
    [("utkf", "vanilla_cnn", "cnn", 20, 19708), ("utkf", "resnet", "resnet18", 20, 19708),
     ("wine", "vanilla_ann", "mlp", 20, 4006), ("bike", "vanilla_ann", "mlp", 100, 14000)],
)
def test_datasets_models_epochs(dataset: str, model: str, expected_model: str, epochs: int, max_train: int,
                                capsys: pytest.CaptureFixture[str]) -> None:
    got = dry_run(cli_biv, _cmd(exp=f"t,1,{dataset},False,{max_train}", model=f"{model},mse", noise="False"), capsys)
    name = {"utkf": "utkface"}.get(dataset, dataset)
    assert (got["dataset"], got["model"], got["epochs"], got["normalize"]) == (name, expected_model, epochs, False)
    assert got["train_size"] == max_train
    assert dry_run(cli_biv, _cmd(exp=f"t,1,{dataset},False,200", model=f"{model},mse", noise="False") + " --epochs 3",
                   capsys)["epochs"] == 3


def test_mlp_preset_follows_the_dataset() -> None:
    assert resolve_biv("t,1,wine,True,100", "vanilla_ann,mse", "False").model_options == {"preset": "wine"}
    assert resolve_biv("t,1,bike,True,100", "vanilla_ann,mse", "False").model_options == {"preset": "bike"}
    assert resolve_biv("t,1,utkf,True,100", "vanilla_cnn,mse", "False").model_options == {}


def test_uniform_meanvar_without_scale_and_zero_width(capsys: pytest.CaptureFixture[str]) -> None:
    got = dry_run(cli_biv, _cmd(params="meanvar", parameters="False,2,1"), capsys)["noise"]["distribution"]
    assert_distribution(got, from_mean_var(2.0, 1.0))
    point = dry_run(cli_biv, _cmd(params="meanvar", parameters="False,2,0"), capsys)["noise"]["distribution"]
    assert_distribution(point, uniform(2.0, 2.0))
    bounds = dry_run(cli_biv, _cmd(params="boundaries", parameters="3,3"), capsys)["noise"]["distribution"]
    assert_distribution(bounds, uniform(3.0, 3.0))


def test_binary_meanvar_scale_from_the_v1_slot_applies_to_both(capsys: pytest.CaptureFixture[str]) -> None:
    # v1 = 0.25 is the scale; v2 = 0.9 is ignored
    got = dry_run(cli_biv, _cmd(noise="True,binary_uniform", params="meanvar,0.3", parameters="True,2,10,0.25,0.9"),
                  capsys)["noise"]["distribution"]
    assert_distribution(got, mixture([0.3, 0.7], max_hetero(2.0, 0.25), max_hetero(10.0, 0.25)))


def test_meanvar_avg_solves_mu2(capsys: pytest.CaptureFixture[str]) -> None:
    p, mu1, x = 0.2, 1.0, 50.0
    mu2 = (x - p * mu1) / (1 - p)
    got = dry_run(cli_biv, _cmd(noise="True,binary_uniform", params=f"meanvar_avg,{p},{x}",
                                parameters=f"False,{mu1},123,0.1,4"), capsys)["noise"]["distribution"]
    assert_distribution(got, mixture([p, 1 - p], from_mean_var(mu1, 0.1), from_mean_var(mu2, 4.0)))


def test_binary_extreme_probabilities_keep_two_components(capsys: pytest.CaptureFixture[str]) -> None:
    got = dry_run(cli_biv, _cmd(noise="True,binary_uniform", params="boundaries,1", parameters="0,1,1,4"),
                  capsys)["noise"]["distribution"]
    assert_distribution(got, mixture([1.0, 0.0], uniform(0.0, 1.0), uniform(1.0, 4.0)))


def test_p_is_ignored_for_single_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    got = dry_run(cli_biv, _cmd(params="boundaries,0.3", parameters="0,2"), capsys)["noise"]["distribution"]
    assert_distribution(got, uniform(0.0, 2.0))


def test_gamma_alphabeta_and_meanvar(capsys: pytest.CaptureFixture[str]) -> None:
    ab = dry_run(cli_biv, _cmd(noise="True,gamma", params="alphabeta", parameters="2,0.5"), capsys)
    assert ab["noise"]["distribution"] == {"kind": "gamma", "shape": 2.0, "rate": 0.5}
    # mean 2, variance 8: shape mu^2/v = 0.5, rate mu/v = 0.25 (a placeholder var_scale comes first)
    mv = dry_run(cli_biv, _cmd(noise="True,gamma", params="meanvar", parameters="False,2,8"), capsys)
    assert_distribution(mv["noise"]["distribution"], {"kind": "gamma", "shape": 0.5, "rate": 0.25})
    # shape > 1 (v < mu^2) is accepted, unlike the original
    mv = dry_run(cli_biv, _cmd(noise="True,gamma", params="meanvar", parameters="True,2,1"), capsys)
    assert_distribution(mv["noise"]["distribution"], {"kind": "gamma", "shape": 4.0, "rate": 2.0})
    from hetreg.compat.biv import resolve_biv

    resolved = resolve_biv("t,1,utkf,True,1000", "vanilla_cnn,biv", "True,gamma", "meanvar", "True,2,0.5")
    assert any("V=0.5 is the variance of sigma^2, not a heteroscedasticity scale" in note for note in resolved.notes)


def test_noise_off_ignores_params(capsys: pytest.CaptureFixture[str]) -> None:
    got = dry_run(cli_biv, _cmd(model="vanilla_cnn,mse", noise="False", params="nonsense", parameters="x"), capsys)
    assert got["noise"] is None


def test_whitespace_around_values_is_tolerated(capsys: pytest.CaptureFixture[str]) -> None:
    got = dry_run(cli_biv, _cmd(exp="t, 5, utkf, True, 1000", parameters="0, 1"), capsys)
    assert got["seed"] == 5 and got["train_size"] == 1000


def test_the_default_cutoff_threshold_says_it_is_in_raw_units() -> None:
    from hetreg.compat.biv import resolve_biv

    default = resolve_biv("t,1,wine,True,1000", "vanilla_ann,cutoffMSE", "True,uniform", "boundaries", "0,1")
    assert default.threshold == 1.0
    assert any("cutoff keeps sigma^2 < 1 in raw label units" in note for note in default.notes)
    explicit = resolve_biv("t,1,wine,True,1000", "vanilla_ann,cutoffMSE,1", "True,uniform", "boundaries", "0,1")
    unnormalised = resolve_biv("t,1,wine,False,1000", "vanilla_ann,cutoffMSE", "True,uniform", "boundaries", "0,1")
    assert not any("raw label units" in note for note in explicit.notes + unnormalised.notes)
