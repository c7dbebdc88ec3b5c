"""Evaluation helpers: eval-mode predictions, error metrics, batch bounds."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from hetreg.train import batch_bounds, predict, squared_error_metrics
from hetreg.train.evaluation import PREDICTIVE_METRICS, predictive_metrics


def bn_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 1))
    model.train()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        for _ in range(3):
            model(torch.randn(16, 3) * 3 + 1)
    return model


def test_predict_uses_eval_mode_in_batches_and_restores_the_mode():
    model = bn_model()
    x = torch.randn(25, 3)
    stats = copy.deepcopy(model[1].state_dict())
    reference = copy.deepcopy(model).eval()
    with torch.no_grad():
        expected = reference(x)[:, 0]
    mean, var = predict(model, x, batch_size=7)
    assert var is None
    torch.testing.assert_close(mean, expected)  # deterministic: dropout off, running statistics used
    assert model.training
    for key, value in model[1].state_dict().items():
        assert torch.equal(value, stats[key]), key


class MeanVar(nn.Module):
    def forward(self, x):
        return x[:, :1], x[:, 1:2].exp()


def test_predict_returns_the_variance_of_a_mean_var_model():
    x = torch.randn(10, 2)
    mean, var = predict(MeanVar(), x, batch_size=4, transform=lambda b: b * 2)
    torch.testing.assert_close(mean, 2 * x[:, 0])
    torch.testing.assert_close(var, (2 * x[:, 1]).exp())


def test_predict_on_an_empty_split():
    mean, var = predict(bn_model(), torch.zeros(0, 3), batch_size=4)
    assert mean.shape == (0,) and var is None
    mse, mae = squared_error_metrics(mean, torch.zeros(0))
    assert np.isnan(mse) and np.isnan(mae)


@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=30), st.integers(0, 2**16))
def test_squared_error_metrics_match_numpy(values, seed):
    pred = torch.tensor(values, dtype=torch.float32)
    target = torch.from_numpy(np.random.default_rng(seed).normal(size=len(values))).float()
    mse, mae = squared_error_metrics(pred, target)
    err = pred.numpy().astype(np.float64) - target.numpy().astype(np.float64)
    assert mse == pytest.approx(float(np.mean(err**2)), rel=1e-12, abs=1e-12)
    assert mae == pytest.approx(float(np.mean(np.abs(err))), rel=1e-12, abs=1e-12)


def test_squared_error_metrics_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        squared_error_metrics(torch.zeros(3), torch.zeros(3, 1))


@given(st.integers(1, 200), st.integers(1, 64), st.booleans(), st.booleans())
def test_batch_bounds_cover_the_data_once(n, batch_size, drop_last, drop_singleton):
    bounds = batch_bounds(n, batch_size, drop_last=drop_last, drop_singleton=drop_singleton)
    covered = [i for start, stop in bounds for i in range(start, stop)]
    assert covered == list(range(len(covered)))
    assert all(stop - start == batch_size for start, stop in bounds[:-1])
    rest = n % batch_size
    full = n // batch_size
    if drop_last or (drop_singleton and rest == 1 and batch_size > 1):
        assert len(bounds) == full
    else:
        assert len(bounds) == full + (rest > 0)


def test_predictive_metrics_are_nan_for_an_unusable_variance():
    mean, target = torch.zeros(3), torch.ones(3)
    for var in (torch.tensor([1.0, 0.0, 1.0]), torch.tensor([1.0, float("inf"), 1.0]), torch.tensor([1.0, float("nan"), 1.0])):
        values = predictive_metrics(mean, var, target, prefix="test_")
        assert list(values) == [f"test_{name}" for name in PREDICTIVE_METRICS] and all(np.isnan(x) for x in values.values())
    assert all(np.isnan(x) for x in predictive_metrics(torch.zeros(0), torch.zeros(0), torch.zeros(0)).values())
    good = predictive_metrics(mean, torch.full((3,), 4.0), target)
    assert good["nll_raw"] == pytest.approx(0.5 * (np.log(2 * np.pi * 4.0) + 1 / 4.0), rel=1e-12)
    assert good["coverage_95"] == 1.0
