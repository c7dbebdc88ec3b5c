"""Point metrics against scikit-learn and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import gmean
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from hetreg.metrics import gmean_error, mae, mse, r2, rmse


def sample(shape, seed=0):
    rng = np.random.default_rng(seed)
    target = rng.normal(3.0, 2.0, size=shape)
    pred = target + rng.normal(0.2, 1.0, size=shape)
    return pred, target


@pytest.mark.parametrize("shape", [(50,), (50, 1), (40, 3)])
def test_against_sklearn(shape):
    pred, target = sample(shape)
    p, t = torch.as_tensor(pred), torch.as_tensor(target)
    assert mse(p, t).item() == pytest.approx(mean_squared_error(target.ravel(), pred.ravel()), rel=1e-12)
    assert rmse(p, t).item() == pytest.approx(math.sqrt(mean_squared_error(target.ravel(), pred.ravel())), rel=1e-12)
    assert mae(p, t).item() == pytest.approx(mean_absolute_error(target.ravel(), pred.ravel()), rel=1e-12)
    assert r2(p, t).item() == pytest.approx(r2_score(target, pred), rel=1e-12)


def test_numpy_in_tensor_out_and_dtypes():
    pred, target = sample((30,))
    value = mse(pred, target)
    assert isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype == torch.float64
    value32 = mae(torch.as_tensor(pred, dtype=torch.float32), torch.as_tensor(target, dtype=torch.float32))
    assert value32.dtype == torch.float32
    # integer labels are promoted
    assert mse(torch.tensor([1.5, 2.5]), np.array([1, 2])).item() == pytest.approx(0.25)
    assert mae([1.0, 2.0], [2.0, 4.0]).item() == pytest.approx(1.5)


def test_gmean_against_scipy():
    pred, target = sample((100,), seed=3)
    assert gmean_error(pred, target).item() == pytest.approx(gmean(np.abs(pred - target)), rel=1e-10)


def test_gmean_exact_zeros():
    pred = np.array([1.0, 2.0, 3.0, 4.0])
    target = np.array([1.0, 1.0, 1.0, 1.0])  # first error is exactly 0
    errors = np.abs(pred - target)
    with np.errstate(divide="ignore"):
        assert gmean_error(pred, target, eps=0.0).item() == pytest.approx(gmean(errors)) == 0.0
    replaced = np.where(errors == 0, 1e-10, errors)
    assert gmean_error(pred, target).item() == pytest.approx(gmean(replaced), rel=1e-10)
    assert gmean_error(pred, target, eps=1e-3).item() == pytest.approx(gmean(np.where(errors == 0, 1e-3, errors)))
    with pytest.raises(ValueError, match="eps"):
        gmean_error(pred, target, eps=-1.0)


def test_r2_undefined_for_constant_target():
    assert math.isnan(r2(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 3.0])).item())
    assert math.isnan(r2(torch.tensor([1.0]), torch.tensor([3.0])).item())


def test_mse_is_differentiable():
    pred = torch.randn(12, dtype=torch.float64, requires_grad=True)
    target = torch.randn(12, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: mse(p, target), (pred,))
    assert torch.autograd.gradcheck(lambda p: mae(p, target), (pred,))


@pytest.mark.parametrize(
    "pred,target,error",
    [
        (torch.zeros(5), torch.zeros(5, 1), ValueError),  # no silent broadcasting
        (torch.zeros(0), torch.zeros(0), ValueError),
        (torch.zeros(2, 2, 2), torch.zeros(2, 2, 2), ValueError),
        (torch.zeros(2), torch.tensor([0.0, float("nan")]), ValueError),
        ("abc", torch.zeros(2), TypeError),
    ],
)
def test_bad_inputs_raise(pred, target, error):
    with pytest.raises(error):
        mse(pred, target)
