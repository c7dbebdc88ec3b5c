"""The uniform test battery, run on every loss of the foundation library.

For each loss: shapes (N,), (N, 1), (N, d) under every reduction; shape errors; float64
gradcheck; module == function; all-ones weights == no weights; and the value against an
independent float64 brute-force loop over samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import pytest
import torch

from hetreg import losses as L


def _brute_mse(p, t, v, w):
    return sum(w[k] * sum((p[k][j] - t[k][j]) ** 2 for j in range(len(p[k]))) for k in range(len(p))) / (len(p) * len(p[0]))


def _brute_iv(p, t, v, w, eps=0.3):
    return sum(
        w[k] * (p[k][j] - t[k][j]) ** 2 / (v[k] + eps) for k in range(len(p)) for j in range(len(p[k]))
    ) / (len(p) * len(p[0]))


def _brute_biv(p, t, v, w, eps=0.3):
    num = sum(w[k] / (v[k] + eps) * (p[k][j] - t[k][j]) ** 2 for k in range(len(p)) for j in range(len(p[k])))
    den = sum(w[k] / (v[k] + eps) for k in range(len(p)) for j in range(len(p[k])))
    return num / den


def _brute_cutoff(p, t, v, w, threshold=0.5):
    kept = [(k, j) for k in range(len(p)) for j in range(len(p[k])) if v[k] < threshold]
    return sum(w[k] * (p[k][j] - t[k][j]) ** 2 for k, j in kept) / max(len(kept), 1)


def _brute_nll(p, t, v, w, floor=1e-6, beta=0.0):
    total = 0.0
    for k in range(len(p)):
        for j in range(len(p[k])):
            var = v[k] + floor
            total += w[k] * var**beta * 0.5 * (math.log(var) + (p[k][j] - t[k][j]) ** 2 / var)
    return total / (len(p) * len(p[0]))


@dataclass(frozen=True)
class Case:
    name: str
    fn: Callable
    module: Callable[[], L.RegressionLoss]
    brute: Callable
    kind: str  # "plain", "label_var" or "pred_var"
    kwargs: dict


CASES = [
    Case("mse", L.mse_loss, lambda **r: L.MSELoss(**r), _brute_mse, "plain", {}),
    Case("iv", L.iv_loss, lambda **r: L.IVLoss(eps=0.3, **r), _brute_iv, "label_var", {"eps": 0.3}),
    Case("biv", L.biv_loss, lambda **r: L.BIVLoss(eps=0.3, **r), _brute_biv, "label_var", {"eps": 0.3}),
    Case(
        "cutoff",
        L.cutoff_mse_loss,
        lambda **r: L.CutoffMSELoss(threshold=0.5, **r),
        _brute_cutoff,
        "label_var",
        {"threshold": 0.5},
    ),
    Case("gaussian_nll", L.gaussian_nll_loss, lambda **r: L.GaussianNLLLoss(**r), _brute_nll, "pred_var", {}),
    Case(
        "beta_nll",
        L.beta_nll_loss,
        lambda **r: L.BetaNLLLoss(beta=0.5, **r),
        lambda *a: _brute_nll(*a, beta=0.5),
        "pred_var",
        {"beta": 0.5},
    ),
]
IDS = [c.name for c in CASES]
SHAPES = [(7,), (7, 1), (7, 3)]


def _inputs(shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(shape, generator=g, dtype=dtype)
    target = torch.randn(shape, generator=g, dtype=dtype)
    var = torch.rand(shape[0], generator=g, dtype=dtype) + 0.05
    weight = torch.rand(shape[0], generator=g, dtype=dtype) + 0.1
    return pred, target, var, weight


def _call(case: Case, pred, target, var, **kw):
    kwargs = {**case.kwargs, **kw}
    if case.kind == "plain":
        return case.fn(pred, target, **kwargs)
    if case.kind == "label_var":
        extra = {k: kwargs.pop(k) for k in ("eps", "threshold") if k in kwargs}
        return case.fn(pred, target, var, *extra.values(), **kwargs)
    if "beta" in kwargs:
        beta = kwargs.pop("beta")
        return case.fn(pred, var, target, beta, **kwargs)
    return case.fn(pred, var, target, **kwargs)


def _as_rows(x: torch.Tensor):
    return x.reshape(x.shape[0], -1).tolist()


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_smoke_and_cardinality(case, shape, reduction):
    pred, target, var, _ = _inputs(shape)
    out = _call(case, pred, target, var, reduction=reduction)
    if reduction == "none":
        assert out.shape == pred.shape
    else:
        assert out.dim() == 0
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_value_against_brute_force(case, shape):
    pred, target, var, weight = _inputs(shape, seed=3)
    got = _call(case, pred, target, var, weight=weight)
    want = case.brute(_as_rows(pred), _as_rows(target), var.tolist(), weight.tolist())
    assert got.item() == pytest.approx(want, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_reductions_are_consistent(case):
    pred, target, var, weight = _inputs((9, 2), seed=5)
    none = _call(case, pred, target, var, reduction="none", weight=weight)
    total = _call(case, pred, target, var, reduction="sum", weight=weight)
    torch.testing.assert_close(none.sum(), total)
    if case.name != "biv":  # BIV terms are already normalised: none sums to the loss
        mean = _call(case, pred, target, var, reduction="mean", weight=weight)
        if case.name == "cutoff":
            kept = (var < 0.5).sum() * pred.shape[1]
            torch.testing.assert_close(mean, total / kept)
        else:
            torch.testing.assert_close(mean, total / pred.numel())
    else:
        torch.testing.assert_close(_call(case, pred, target, var, weight=weight), total)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_weights_of_one_equal_no_weights(case):
    pred, target, var, _ = _inputs((8, 1), seed=1)
    a = _call(case, pred, target, var)
    b = _call(case, pred, target, var, weight=torch.ones(8, dtype=pred.dtype))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_module_equals_function(case):
    pred, target, var, weight = _inputs((6, 2), seed=2)
    for reduction in ("mean", "sum", "none"):
        module = case.module(reduction=reduction)
        want = _call(case, pred, target, var, reduction=reduction, weight=weight)
        if case.kind == "plain":
            got = module(pred, target, weight)
        elif case.kind == "label_var":
            got = module(pred, target, var, weight)
        else:
            got = module(pred, var, target, weight)
        torch.testing.assert_close(got, want)
        # the trainer-facing call dispatches the same way
        got2 = module.from_batch(pred, target, label_variance=var, pred_variance=var, weight=weight)
        torch.testing.assert_close(got2, want)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradcheck_float64(case):
    pred, target, var, weight = _inputs((5, 2), seed=4)
    pred.requires_grad_(True)
    if case.name == "beta_nll":  # var^beta is stop-gradient: check the mean numerically, var in closed form
        assert torch.autograd.gradcheck(lambda p: _call(case, p, target, var, weight=weight), (pred,))
    elif case.kind == "pred_var":
        var = var.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda p, v: _call(case, p, target, v, weight=weight), (pred, var))
    else:
        assert torch.autograd.gradcheck(lambda p: _call(case, p, target, var, weight=weight), (pred,))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_shape_mismatch_names_both_shapes(case):
    pred, target, var, _ = _inputs((6, 1))
    with pytest.raises(ValueError, match=r"\(6, 1\).*\(6,\)"):
        _call(case, pred, target.view(6), var)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bad_variance_and_weight_raise(case):
    pred, target, var, _ = _inputs((6,))
    if case.kind != "plain":
        with pytest.raises(ValueError, match="negative"):
            _call(case, pred, target, torch.tensor([-1.0, 1, 1, 1, 1, 1], dtype=pred.dtype))
        with pytest.raises(ValueError, match="NaN"):
            _call(case, pred, target, torch.tensor([float("nan"), 1, 1, 1, 1, 1], dtype=pred.dtype))
        with pytest.raises(ValueError, match="shape"):
            _call(case, pred, target, torch.ones(5, dtype=pred.dtype))
    with pytest.raises(ValueError, match="weight"):
        _call(case, pred, target, var, weight=-torch.ones(6, dtype=pred.dtype))
    with pytest.raises(ValueError, match="reduction"):
        _call(case, pred, target, var, reduction="avg")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_follows_input_dtype(case):
    pred, target, var, _ = _inputs((4, 1), dtype=torch.float32)
    assert _call(case, pred, target, var).dtype == torch.float32


def test_beta_nll_variance_gradient_is_stop_gradient_weighted():
    pred, target, var, _ = _inputs((5,), seed=6)
    v = var.clone().requires_grad_(True)
    L.beta_nll_loss(pred, v, target, 0.5, var_floor=0.0, reduction="sum").backward()
    e2 = (pred - target) ** 2
    want = var**0.5 * 0.5 * (1 / var - e2 / var**2)
    torch.testing.assert_close(v.grad, want)
    # beta = 1: the gradient on the mean is that of the MSE (up to the factor 1/2)
    m = pred.clone().requires_grad_(True)
    L.beta_nll_loss(m, var, target, 1.0, var_floor=0.0, reduction="sum").backward()
    torch.testing.assert_close(m.grad, pred - target)
