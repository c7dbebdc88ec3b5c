"""Learned uncertainty weighting of task losses (Kendall et al. 2018)."""

from __future__ import annotations

import math

import pytest
import torch

from hetreg.losses import UncertaintyWeighting, uncertainty_weighted_sum

F64 = torch.float64
KINDS = {"age": "regression", "gender": "classification"}


def _t(x: float, grad: bool = False) -> torch.Tensor:
    return torch.tensor(x, dtype=F64, requires_grad=grad)


def test_value_and_gradients_against_hand_computation():
    l_age, l_gender = _t(3.0, True), _t(0.7, True)
    s_age, s_gender = _t(0.4, True), _t(-0.3, True)
    total = uncertainty_weighted_sum({"age": l_age, "gender": l_gender}, {"age": s_age, "gender": s_gender}, KINDS)
    want = 0.5 * math.exp(-0.4) * 3.0 + 0.4 / 2 + 1.0 * math.exp(0.3) * 0.7 + (-0.3) / 2
    assert total.item() == pytest.approx(want, rel=1e-14)
    total.backward()
    # ∂/∂s_i = −c_i e^{−s_i} L_i + 1/2 ; ∂/∂L_i = c_i e^{−s_i}
    assert s_age.grad.item() == pytest.approx(-0.5 * math.exp(-0.4) * 3.0 + 0.5, rel=1e-14)
    assert s_gender.grad.item() == pytest.approx(-1.0 * math.exp(0.3) * 0.7 + 0.5, rel=1e-14)
    assert l_age.grad.item() == pytest.approx(0.5 * math.exp(-0.4), rel=1e-14)
    assert l_gender.grad.item() == pytest.approx(math.exp(0.3), rel=1e-14)


def test_gradcheck_float64():
    def f(la, lg, sa, sg):
        return uncertainty_weighted_sum({"age": la, "gender": lg}, {"age": sa, "gender": sg}, KINDS)

    args = (_t(2.0, True), _t(0.4, True), _t(0.1, True), _t(-0.6, True))
    assert torch.autograd.gradcheck(f, args)


def test_module_equals_function_and_exposes_sigmas():
    uw = UncertaintyWeighting(KINDS, init_log_var={"age": 0.8, "gender": -0.2}).double()
    losses = {"age": _t(1.5), "gender": _t(0.9)}
    want = uncertainty_weighted_sum(losses, {"age": _t(0.8), "gender": _t(-0.2)}, KINDS)
    torch.testing.assert_close(uw(losses), want)
    assert uw.sigmas() == {"age": pytest.approx(math.exp(0.4)), "gender": pytest.approx(math.exp(-0.1))}
    rec = uw.records
    assert rec["sigma_age"] == pytest.approx(math.exp(0.4))
    assert rec["log_var_gender"] == pytest.approx(-0.2)
    assert rec["weight_age"] == pytest.approx(0.5 * math.exp(-0.8))
    assert rec["weight_gender"] == pytest.approx(math.exp(0.2))
    assert set(uw.state_dict()) == {"log_vars.age", "log_vars.gender"}


def test_learned_log_variances_reach_the_closed_form_optimum():
    """For fixed task losses the optimum is e^{s_i} = 2 c_i L_i: checks the factors c_i."""
    uw = UncertaintyWeighting(KINDS).double()
    losses = {"age": _t(4.0), "gender": _t(0.3)}
    opt = torch.optim.Adam(uw.parameters(), lr=0.05)
    for _ in range(600):
        opt.zero_grad()
        uw(losses).backward()
        opt.step()
    assert uw.log_vars["age"].item() == pytest.approx(math.log(2 * 0.5 * 4.0), abs=1e-3)
    assert uw.log_vars["gender"].item() == pytest.approx(math.log(2 * 1.0 * 0.3), abs=1e-3)


def test_libmtl_convention_is_every_task_as_regression():
    """LibMTL UW: Σ L_i / (2 e^{s_i}) + s_i / 2 with s initialised at −0.5."""
    uw = UncertaintyWeighting({"a": "regression", "b": "regression"}, init_log_var=-0.5).double()
    got = uw({"a": _t(1.2), "b": _t(0.3)})
    want = sum(loss / (2 * math.exp(-0.5)) + (-0.5) / 2 for loss in (1.2, 0.3))
    assert got.item() == pytest.approx(want, rel=1e-14)


def test_unknown_or_missing_tasks_raise():
    uw = UncertaintyWeighting(KINDS)
    with pytest.raises(ValueError, match=r"missing task\(s\) \['gender'\]"):
        uw({"age": torch.tensor(1.0)})
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['race'\]"):
        uw({"age": torch.tensor(1.0), "gender": torch.tensor(1.0), "race": torch.tensor(1.0)})
    with pytest.raises(ValueError, match="0-dim"):
        uw({"age": torch.ones(3), "gender": torch.tensor(1.0)})


def test_bad_construction_raises():
    with pytest.raises(ValueError, match="unknown kind"):
        UncertaintyWeighting({"age": "ordinal"})
    with pytest.raises(ValueError, match="empty"):
        UncertaintyWeighting({})
    with pytest.raises(ValueError, match="without '.'"):
        UncertaintyWeighting({"a.b": "regression"})
    with pytest.raises(ValueError, match="missing"):
        UncertaintyWeighting(KINDS, init_log_var={"age": 0.0})
    with pytest.raises(ValueError, match="finite"):
        UncertaintyWeighting(KINDS, init_log_var=float("inf"))
    with pytest.raises(ValueError, match="unknown kind"):
        uncertainty_weighted_sum({"a": torch.tensor(1.0)}, {"a": torch.tensor(0.0)}, {"a": "ranking"})


def test_param_groups_and_float32():
    uw = UncertaintyWeighting(KINDS)
    (group,) = uw.param_groups(0.01)
    assert group["lr"] == 0.01 and len(group["params"]) == 2
    out = uw({"age": torch.tensor(1.0), "gender": torch.tensor(2.0)})
    assert out.dtype == torch.float32


# ---------------------------------------------------------------------------------------------
# The worked example (examples/multitask_utkface.py)
# ---------------------------------------------------------------------------------------------


def _example():
    import importlib.util
    import sys
    from pathlib import Path

    name = "hetreg_example_multitask_utkface"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[2] / "examples" / "multitask_utkface.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_example_runs_on_synthetic_data(capsys):
    threads = str(torch.get_num_threads())  # keep the session's thread count
    out = _example().main(["--synthetic", "--samples", "600", "--epochs", "2", "--batch-size", "100", "--threads", threads])
    assert set(out) == {"mae_years", "accuracy", "sigma_age", "sigma_gender"}
    assert all(math.isfinite(v) for v in out.values())
    assert out["sigma_age"] != 1.0 and out["sigma_gender"] != 1.0  # the σ_i were learned
    assert "learned σ_age" in capsys.readouterr().out


def test_example_parses_gender_from_every_utkface_file_name():
    import os
    from pathlib import Path

    root = os.environ.get("HETREG_DATA")
    folder = Path(root) / "utkface" / "UTKFace" if root else None
    if folder is None or not folder.is_dir():
        pytest.skip("HETREG_DATA is unset or has no utkface/UTKFace folder")
    genders = [_example().parse_gender(name) for name in os.listdir(folder)]
    assert (genders.count(0), genders.count(1)) == (12391, 11317)  # the counts of the data README
    with pytest.raises(ValueError, match="gender"):
        _example().parse_gender("25_x_0_2017.jpg.chip.jpg")
