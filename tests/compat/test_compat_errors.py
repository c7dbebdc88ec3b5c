"""Invalid original command lines: exit code 2 and one clear line, never a traceback."""

from __future__ import annotations

import pytest
from compat_helpers import failure

from hetreg.compat import cli_biv, cli_iv


def _biv(exp: str = "t,3,utkf,True,1000", model: str = "vanilla_cnn,biv", noise: str = "True,uniform",
         params: str = "boundaries", parameters: str = "0,1", extra: str = "256,0,True,0.01") -> str:
    return (f'--experiment_settings="{exp}" --model_settings="{model}" --noise_settings="{noise}" '
            f'--params_settings="{params}" --parameters="{parameters}" --extra_exp="{extra}"')


BIV_ERRORS = {
    "model_dataset_mismatch": (_biv(exp="t,3,wine,True,1000", model="resnet,mse"), ["'resnet' does not fit dataset 'wine'"]),
    "ann_on_utkface": (_biv(model="vanilla_ann,mse"), ["does not fit dataset 'utkf'"]),
    "p_above_one": (_biv(noise="True,binary_uniform", params="boundaries,1.5", parameters="0,1,1,4"),
                    ["position 1 (P)", "in [0, 1]", "1.5"]),
    "p_below_zero": (_biv(noise="True,binary_uniform", params="boundaries,-0.1", parameters="0,1,1,4"), ["in [0, 1]"]),
    "mu_below_sqrt_3v": (_biv(params="meanvar", parameters="False,0.1,1"), ["(MU,V)=(0.1,1)", "sqrt(3*var)"]),
    "mu_below_sqrt_3v_binary": (_biv(noise="True,binary_uniform", params="meanvar,0.5", parameters="False,0.5,1,0.3,0"),
                                ["component 1", "sqrt(3*var)"]),
    "biv_without_noise": (_biv(model="vanilla_cnn,biv", noise="False"), ["loss biv needs label noise"]),
    "iv_without_noise": (_biv(model="vanilla_cnn,iv", noise="False"), ["loss iv needs label noise"]),
    "cutoff_without_noise": (_biv(model="vanilla_cnn,cutoffMSE", noise="False"), ["loss cutoffMSE needs label noise"]),
    "scale_above_one": (_biv(params="meanvar", parameters="True,0.5,1.5"), ["heteroscedasticity scale", "in [0, 1]"]),
    "scale_negative_binary": (_biv(noise="True,binary_uniform", params="meanvar,0.5", parameters="True,0.5,1,-0.2,0"),
                              ["position 3 (V1)", "in [0, 1]"]),
    "malformed_parameter": (_biv(parameters="0,abc"), ["position 1 (B) must be a number", "'abc'"]),
    "malformed_seed": (_biv(exp="t,seven,utkf,True,1000"), ["position 1 (SEED) must be a whole number"]),
    "fractional_seed": (_biv(exp="t,7159.5,utkf,True,1000"), ["whole number"]),
    "negative_seed": (_biv(exp="t,-1,utkf,True,1000"), ["SEED", ">= 0"]),
    "malformed_eps": (_biv(model="vanilla_cnn,biv,small"), ["position 2 (EPS_OR_THRESHOLD) must be a number"]),
    "negative_eps": (_biv(model="vanilla_cnn,biv,-0.1"), ["epsilon", ">= 0"]),
    "zero_threshold": (_biv(model="vanilla_cnn,cutoffMSE,0"), ["cutoff threshold", "> 0"]),
    "malformed_lr": (_biv(extra="256,0,True,fast"), ["--extra_exp position 3 (LR) must be a number"]),
    "zero_lr": (_biv(extra="256,0,True,0"), ["learning rate", "> 0"]),
    "negative_disturbance": (_biv(extra="256,-1,True,0.01"), ["VAR_DISTURBANCE", ">= 0"]),
    "missing_parameter": (_biv(parameters="0"), ["missing position 1 (B)", '--parameters="A,B"']),
    "missing_train_size": (_biv(exp="t,3,utkf,True"), ["missing position 4 (TRAIN_SIZE)"]),
    "missing_noise_type": (_biv(noise="True"), ["missing position 1 (NOISE_TYPE)"]),
    "missing_p": (_biv(noise="True,binary_uniform", params="boundaries", parameters="0,1,1,4"), ["missing position 1 (P)"]),
    "missing_avg_mean": (_biv(noise="True,binary_uniform", params="meanvar_avg,0.5", parameters="False,0.5,1,0.08,0"),
                         ["missing position 2 (AVG_MEAN)"]),
    "missing_extra_exp": (_biv(extra="256,0"), ["missing position 2 (NORMALIZE_BIV)"]),
    "defaults_only": ("", ["--experiment_settings='0': missing position 1 (SEED)"]),
    "unknown_dataset": (_biv(exp="t,3,mnist,True,1000"), ["unknown value 'mnist'", "utkf, wine, bike"]),
    "unknown_model": (_biv(model="cnn,mse"), ["unknown value 'cnn'", "vanilla_cnn, resnet, vanilla_ann"]),
    "unknown_loss": (_biv(model="vanilla_cnn,l1"), ["unknown value 'l1'", "mse, cutoffMSE, iv, biv"]),
    "unknown_noise_type": (_biv(noise="True,normal"), ["unknown value 'normal'", "uniform, binary_uniform, gamma"]),
    "unknown_params_type": (_biv(params="bounds"), ["unknown value 'bounds'", "boundaries, alphabeta, meanvar, meanvar_avg"]),
    "params_type_for_other_noise": (_biv(params="alphabeta"), ["'alphabeta' does not apply to noise type 'uniform'",
                                                               "boundaries, meanvar"]),
    "lowercase_bool": (_biv(exp="t,3,utkf,true,1000"), ["position 3 (NORMALIZE) must be True or False", "'true'"]),
    "numeric_bool": (_biv(noise="1,uniform"), ["position 0 (NOISE) must be True or False"]),
    "bool_var_scale": (_biv(params="meanvar", parameters="yes,0.5,0.1"), ["position 0 (VAR_SCALE) must be True or False"]),
    "bool_normalize_biv": (_biv(extra="256,0,false,0.01"), ["NORMALIZE_BIV", "True or False"]),
    "too_many_parameters": (_biv(parameters="0,1,2"), ["3 values", "exactly 2"]),
    "too_many_settings": (_biv(exp="t,3,utkf,True,1000,extra"), ["6 values", "exactly 5"]),
    "train_too_large": (_biv(exp="t,3,wine,True,5000", model="vanilla_ann,mse"), ["train size 5000", "at most 4006"]),
    "train_zero": (_biv(exp="t,3,wine,True,0", model="vanilla_ann,mse"), ["TRAIN_SIZE", ">= 1"]),
    "meanvar_avg_p_one": (_biv(noise="True,binary_uniform", params="meanvar_avg,1,3000", parameters="False,0.5,1,0.08,0"),
                          ["needs p < 1"]),
    "meanvar_avg_target_too_small": (_biv(noise="True,binary_uniform", params="meanvar_avg,0.5,0.1",
                                          parameters="False,0.5,1,0.08,0"), ["target_mean"]),
    "gamma_zero_variance": (_biv(noise="True,gamma", params="meanvar", parameters="False,2,0"), ["var must be > 0"]),
    "bounds_reversed": (_biv(parameters="2,1"), ["low must be <= high"]),
    "negative_bound": (_biv(parameters="-1,1"), ["low must be >= 0"]),
    "infinite_number": (_biv(parameters="0,inf"), ["finite"]),
    "unknown_option": (_biv() + " --train_size 3", ["unrecognized arguments: --train_size"]),
    "bad_epochs": (_biv() + " --epochs zero", ["--epochs", "invalid int value"]),
}


@pytest.mark.parametrize("name", sorted(BIV_ERRORS))
def test_biv_errors(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    command, fragments = BIV_ERRORS[name]
    message = failure(cli_biv, command, capsys)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_config_out_needs_dry_run(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    code = cli_biv(['--experiment_settings=t,1,wine,True,100', '--model_settings=vanilla_ann,mse',
                    '--noise_settings=False', '--config-out', str(tmp_path / "c.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "add --dry-run" in err and len(err.strip().splitlines()) == 1


def _iv(exp: str = "t,1,True,mse,-1", noise: str = "True,uniform,False,False,0.5,1,False,3",
        direct: str = "0,1", estim: str = "1,0.1") -> str:
    return f'--exp_settings="{exp}" --noise_settings="{noise}" --noise_params="{direct}" --estim_noise_params="{estim}"'


IV_ERRORS = {
    "unknown_loss": (_iv(exp="t,1,True,cutoffMSE,-1"), ["unknown value 'cutoffMSE'", "mse, iv, biv"]),
    "later_7_value_layout": (
        _iv(exp="t,1,utkf,True,mse,vanilla_cnn,-1"),
        ["7 values (TAG,SEED,DATASET,NORMALIZE,LOSS,MODEL,AVG_MEAN", "exactly 5", "BIV command line"],
    ),
    "six_values": (_iv(exp="t,1,True,mse,-1,extra"), ["6 values, but the IV command line takes exactly 5"]),
    "unknown_noise_type": (_iv(noise="True,binary_uniform,False,False,0.5,1,False,3"), ["uniform, gamma"]),
    "p_outside": (_iv(noise="True,uniform,False,False,0.5,2,False,3"), ["position 5 (P)", "in [0, 1]"]),
    "scale_outside": (_iv(noise="True,uniform,True,True,1.5,1,False,3"), ["position 4 (HETERO_SCALE)", "in [0, 1]"]),
    "mu_below_sqrt_3v": (_iv(noise="True,uniform,True,False,0.5,1,False,3", estim="0.1,1"), ["sqrt(3*var)"]),
    "odd_number_of_values": (_iv(direct="0,1,2"), ["even number of values", "got 3"]),
    "malformed_unused_list": (_iv(estim="1,x"), ["--estim_noise_params position 1", "must be a number"]),
    "biv_without_noise": (_iv(exp="t,1,True,biv,-1", noise="False"), ["loss biv needs label noise"]),
    "threshold_with_biv": (_iv(exp="t,1,True,biv,-1", noise="True,uniform,False,False,0.5,1,True,3"),
                           ["cannot be combined with loss biv"]),
    "threshold_not_positive": (_iv(noise="True,uniform,False,False,0.5,1,True,0"), ["noise threshold", "> 0"]),
    "missing_threshold": (_iv(noise="True,uniform,False,False,0.5,1,False"), ["missing position 7 (THRESHOLD)"]),
    "missing_avg_mean": (_iv(exp="t,1,True,mse"), ["missing position 4 (AVG_MEAN)"]),
    "bad_bool": (_iv(noise="True,uniform,yes,False,0.5,1,False,3"), ["position 2 (ESTIM) must be True or False"]),
    "avg_mean_negative_mu2": (_iv(exp="t,1,True,mse,0.1", noise="True,uniform,True,False,0.5,0.5,False,3",
                                  estim="1,5,0,0"), ["AVG_MEAN=0.1", "target_mean"]),
    "malformed_seed": (_iv(exp="t,x,True,mse,-1"), ["SEED", "whole number"]),
}


@pytest.mark.parametrize("name", sorted(IV_ERRORS))
def test_iv_errors(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    command, fragments = IV_ERRORS[name]
    message = failure(cli_iv, command, capsys)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
