"""Metric registry metadata and compute_metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hetreg.metrics as metrics
from hetreg.metrics import METRICS, POINT_METRICS, VARIANCE_METRICS, compute_metrics


def test_registry_metadata():
    assert METRICS["r2"].higher_is_better is True
    for name in ("mse", "rmse", "mae", "gmean", "balanced_mse", "gaussian_nll", "crps_gaussian", "calibration_error"):
        assert METRICS[name].higher_is_better is False
    assert METRICS["interval_coverage"].higher_is_better is None
    assert {n for n, info in METRICS.items() if info.needs_variance} == set(VARIANCE_METRICS)
    with pytest.raises(TypeError):
        METRICS["new"] = METRICS["mse"]  # read-only


def test_compute_metrics_equals_the_functions():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 20, 100).astype(float)
    pred = target + rng.normal(0, 2, 100)
    var = rng.uniform(1, 5, 100)
    out = compute_metrics(pred, target, var=var)
    assert set(POINT_METRICS) <= set(out)
    assert {"gaussian_nll", "coverage_90", "width_95", "calibration_error", "sharpness"} <= set(out)
    assert out["mse"] == pytest.approx(metrics.mse(pred, target).item())
    assert out["r2"] == pytest.approx(metrics.r2(pred, target).item())
    assert out["crps_gaussian"] == pytest.approx(metrics.crps_gaussian(pred, var, target).item())
    assert out["sharpness"] == pytest.approx(np.sqrt(var.mean()))
    assert all(isinstance(v, float) for v in out.values())
    point_only = compute_metrics(torch.as_tensor(pred), torch.as_tensor(target))
    assert set(point_only) == set(POINT_METRICS)


def test_compute_metrics_options_and_errors():
    pred, target = np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 3.0])
    out = compute_metrics(pred, target, ["balanced_mae"], options={"balanced_mae": {"bins": 10.0}})
    assert out == {"balanced_mae": pytest.approx(0.5)}
    out = compute_metrics(pred, target, ["interval_coverage"], var=np.ones(3), options={"interval_coverage": {"levels": (0.5,)}})
    assert set(out) == {"coverage_50", "width_50"}
    with pytest.raises(ValueError, match="unknown metrics"):
        compute_metrics(pred, target, ["mse", "accuracy"])
    with pytest.raises(ValueError, match="unknown metrics"):
        compute_metrics(pred, target, ["mse"], options={"nope": {}})
    with pytest.raises(ValueError, match="variance"):
        compute_metrics(pred, target, ["crps_gaussian"])
    with pytest.raises(TypeError):
        compute_metrics(pred, target, "mse")


def test_public_names():
    for name in metrics.__all__:
        assert hasattr(metrics, name)
    for name in ("mse", "rmse", "mae", "r2", "gmean_error", "shot_metrics", "balanced_mse", "balanced_mae",
                 "gaussian_nll", "crps_gaussian", "interval_coverage", "calibration_error", "sharpness",
                 "METRICS", "compute_metrics"):
        assert name in metrics.__all__
