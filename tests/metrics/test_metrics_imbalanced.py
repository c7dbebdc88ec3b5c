"""Balanced metrics and many/medium/few-shot metrics: hand-built example and a DIR-style loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import gmean

from hetreg.metrics import balanced_mae, balanced_mse, label_bin_ids, shot_metrics

# training labels: bin 0 holds 150 (many), bin 2 holds 5 (few); nothing in bins 1 and 3
TRAIN = np.r_[np.full(150, 0.5), np.full(5, 2.5)]
TARGET = np.array([0.2, 0.4, 0.6, 2.1, 2.9, 3.5])  # bins 0, 0, 0, 2, 2, 3
ERRORS = np.array([1.0, -1.0, 2.0, 0.5, 1.0, 4.0])
PRED = TARGET + ERRORS


def test_hand_example_sample_reduction():
    out = shot_metrics(PRED, TARGET, TRAIN, metrics=("mse", "rmse", "mae", "gmean"))
    assert set(out) == {"many", "medium", "few", "all"}
    assert out["many"]["mse"] == pytest.approx(2.0)
    assert out["many"]["rmse"] == pytest.approx(math.sqrt(2.0))
    assert out["many"]["mae"] == pytest.approx(4 / 3)
    assert out["many"]["gmean"] == pytest.approx(2 ** (1 / 3))
    assert (out["many"]["count"], out["many"]["num_bins"]) == (3, 1)
    # bin 3 has no training label at all: few-shot
    assert out["few"]["mse"] == pytest.approx((0.25 + 1 + 16) / 3)
    assert out["few"]["mae"] == pytest.approx(5.5 / 3)
    assert out["few"]["gmean"] == pytest.approx(2 ** (1 / 3))
    assert (out["few"]["count"], out["few"]["num_bins"]) == (3, 2)
    # empty medium group: NaN, no crash
    assert out["medium"]["count"] == 0
    assert all(math.isnan(out["medium"][m]) for m in ("mse", "rmse", "mae", "gmean"))
    assert out["all"]["mse"] == pytest.approx(np.mean(ERRORS**2))
    assert out["all"]["gmean"] == pytest.approx(gmean(np.abs(ERRORS)))
    assert out["all"]["count"] == 6


def test_hand_example_balanced_reduction():
    out = shot_metrics(PRED, TARGET, TRAIN, reduction="balanced")
    assert out["many"]["mse"] == pytest.approx(2.0)  # a single bin
    assert out["few"]["mse"] == pytest.approx((0.625 + 16) / 2)
    assert out["few"]["mae"] == pytest.approx((0.75 + 4) / 2)
    assert out["few"]["gmean"] == pytest.approx(math.sqrt(math.sqrt(0.5 * 1.0) * 4.0))
    assert math.isnan(out["medium"]["mae"])
    assert out["all"]["mse"] == pytest.approx((2.0 + 0.625 + 16) / 3)
    assert out["all"]["mse"] == pytest.approx(balanced_mse(PRED, TARGET).item())
    assert out["all"]["mae"] == pytest.approx(balanced_mae(PRED, TARGET).item())


def test_thresholds_are_strict():
    train = np.r_[np.full(100, 0.0), np.full(20, 1.0), np.full(101, 2.0), np.full(19, 3.0)]
    target = np.array([0.0, 1.0, 2.0, 3.0])
    out = shot_metrics(target + 1, target, train)
    assert out["medium"]["count"] == 2  # exactly 100 and exactly 20 are medium
    assert out["many"]["count"] == 1 and out["few"]["count"] == 1
    out = shot_metrics(target + 1, target, train, many_threshold=10, few_threshold=2)
    assert out["many"]["count"] == 4


def dir_shot_metrics(preds, labels, train_labels, many=100, few=20):
    """The DIR evaluation as loops: per distinct integer test label, sample-averaged per group."""
    groups = {"many": [], "medium": [], "few": []}
    for label in np.unique(labels):
        n_train = int(np.sum(train_labels == label))
        errors = list(preds[labels == label] - labels[labels == label])
        key = "many" if n_train > many else ("few" if n_train < few else "medium")
        groups[key] += errors
    out = {}
    for key, errs in groups.items():
        e = np.array(errs)
        out[key] = {"mse": np.mean(e**2), "mae": np.mean(np.abs(e)), "gmean": gmean(np.abs(e))}
    return out


def test_against_dir_style_loop_on_integer_labels():
    rng = np.random.default_rng(0)
    train = np.clip(rng.gamma(5.0, 8.0, 4000), 0, 99).astype(int).astype(float)
    target = rng.integers(0, 100, 800).astype(float)
    pred = target + rng.normal(0, 5, 800)
    expected = dir_shot_metrics(pred, target, train)
    out = shot_metrics(torch.as_tensor(pred), torch.as_tensor(target), torch.as_tensor(train))
    for group in ("many", "medium", "few"):
        for name in ("mse", "mae", "gmean"):
            assert out[group][name] == pytest.approx(expected[group][name], rel=1e-9)


def test_balanced_metrics_against_loop():
    rng = np.random.default_rng(1)
    target = rng.integers(0, 10, 200).astype(float)
    pred = target + rng.normal(0, 2, 200)
    per_label_mse = [np.mean((pred[target == v] - v) ** 2) for v in np.unique(target)]
    per_label_mae = [np.mean(np.abs(pred[target == v] - v)) for v in np.unique(target)]
    assert balanced_mse(pred, target).item() == pytest.approx(np.mean(per_label_mse), rel=1e-12)
    assert balanced_mae(pred, target).item() == pytest.approx(np.mean(per_label_mae), rel=1e-12)
    # coarser bins of width 5: two bins
    coarse = [np.mean(np.abs(pred[(target >= lo) & (target < lo + 5)] - target[(target >= lo) & (target < lo + 5)]))
              for lo in (0, 5)]
    assert balanced_mae(pred, target, bins=5.0).item() == pytest.approx(np.mean(coarse), rel=1e-12)


def test_count_bins_out_of_training_range_are_zero_shot():
    train = np.r_[np.full(200, 1.0), np.full(200, 2.0)]
    ids = label_bin_ids(np.array([0.0, 1.0, 2.0, 9.0]), 2, reference=train)
    assert ids.tolist() == [-1, 0, 1, 2]
    out = shot_metrics(np.zeros(4), np.array([0.0, 1.0, 2.0, 9.0]), train, bins=2)
    assert out["many"]["count"] == 2 and out["few"]["count"] == 2
    # explicit edges merge out-of-range labels into the edge bins
    out = shot_metrics(np.zeros(4), np.array([0.0, 1.0, 2.0, 9.0]), train, bins=np.array([0.0, 1.5, 3.0]))
    assert out["many"]["count"] == 4


@pytest.mark.parametrize(
    "kwargs,error",
    [
        ({"reduction": "mean"}, ValueError),
        ({"metrics": ("mse", "r2")}, ValueError),
        ({"many_threshold": 10, "few_threshold": 20}, ValueError),
        ({"eps": -1.0}, ValueError),
    ],
)
def test_shot_metrics_bad_arguments(kwargs, error):
    with pytest.raises(error):
        shot_metrics(PRED, TARGET, TRAIN, **kwargs)


def test_binned_metrics_need_scalar_labels():
    with pytest.raises(ValueError, match="scalar"):
        balanced_mse(torch.zeros(4, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError):
        shot_metrics(PRED, TARGET, [])
