"""Gaussian predictive metrics: NLL, CRPS, coverage, calibration error, sharpness."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from hetreg.metrics import (
    calibration_error,
    calibration_proportions,
    crps_gaussian,
    gaussian_nll,
    interval_coverage,
    sharpness,
)


def predictive_sample(n=40, seed=0):
    rng = np.random.default_rng(seed)
    mean = rng.normal(0, 3, n)
    var = rng.uniform(0.2, 4.0, n)
    target = mean + rng.normal(0, 1.5, n)
    return mean, var, target


def test_nll_against_scipy_logpdf():
    mean, var, target = predictive_sample()
    expected = -stats.norm.logpdf(target, loc=mean, scale=np.sqrt(var)).mean()
    assert gaussian_nll(mean, var, target).item() == pytest.approx(expected, rel=1e-12)
    # (N,) variance with (N, 1) mean
    value = gaussian_nll(torch.as_tensor(mean)[:, None], torch.as_tensor(var), torch.as_tensor(target)[:, None])
    assert value.item() == pytest.approx(expected, rel=1e-12)


def crps_by_integration(mu: float, sigma: float, y: float) -> float:
    cdf = lambda z: stats.norm.cdf(z, mu, sigma)  # noqa: E731
    below, _ = integrate.quad(lambda z: cdf(z) ** 2, -np.inf, y, epsabs=1e-12, epsrel=1e-12)
    above, _ = integrate.quad(lambda z: (cdf(z) - 1) ** 2, y, np.inf, epsabs=1e-12, epsrel=1e-12)
    return below + above


def test_crps_against_numerical_integration():
    mean, var, target = predictive_sample(12, seed=1)
    expected = np.mean([crps_by_integration(m, math.sqrt(v), y) for m, v, y in zip(mean, var, target)])
    assert crps_gaussian(mean, var, target).item() == pytest.approx(expected, rel=1e-7)


def test_crps_tends_to_absolute_error_for_small_variance():
    value = crps_gaussian(np.array([1.0, 2.0]), np.array([1e-12, 1e-12]), np.array([3.0, 1.5]))
    assert value.item() == pytest.approx(1.25, rel=1e-5)


def test_coverage_on_true_distribution_is_nominal():
    g = torch.Generator().manual_seed(0)
    n = 200_000
    mean = torch.randn(n, generator=g, dtype=torch.float64) * 3
    std = torch.rand(n, generator=g, dtype=torch.float64) + 0.5
    target = mean + std * torch.randn(n, generator=g, dtype=torch.float64)
    out = interval_coverage(mean, std**2, target, levels=(0.5, 0.9, 0.95, 0.975))
    assert set(out) == {f"{k}_{lvl}" for k in ("coverage", "width") for lvl in ("50", "90", "95", "97.5")}
    for level in (0.5, 0.9, 0.95, 0.975):
        key = f"{100 * level:g}"
        assert out[f"coverage_{key}"].item() == pytest.approx(level, abs=0.005)
        z = stats.norm.ppf((1 + level) / 2)
        assert out[f"width_{key}"].item() == pytest.approx(2 * z * std.mean().item(), rel=1e-12)


def test_coverage_hand_example():
    mean = torch.tensor([0.0, 0.0, 0.0, 0.0])
    var = torch.tensor([1.0, 1.0, 4.0, 4.0])
    target = torch.tensor([0.5, 1.0, 1.0, 3.0])  # standardised: 0.5, 1, 0.5, 1.5
    out = interval_coverage(mean, var, target, levels=(0.5,))
    # z_0.75 = 0.6745: inside for |r| <= 0.6745 -> 2 of 4
    assert out["coverage_50"].item() == pytest.approx(0.5)
    assert out["width_50"].item() == pytest.approx(2 * stats.norm.ppf(0.75) * 1.5, rel=1e-6)


def toolbox_mace(mean, std, target, num_bins=100):
    """uncertainty-toolbox's interval calibration error written out with scipy, as a reference."""
    exp = np.linspace(0, 1, num_bins)
    r = (mean - target) / std
    obs = []
    for p in exp:
        lo, hi = stats.norm.ppf(0.5 - p / 2), stats.norm.ppf(0.5 + p / 2)
        obs.append(np.mean((r >= lo) & (r <= hi)))
    return np.mean(np.abs(exp - np.array(obs)))


@pytest.mark.parametrize("num_bins", [100, 17])
def test_calibration_error_matches_toolbox_definition(num_bins):
    mean, var, target = predictive_sample(300, seed=4)
    expected = toolbox_mace(mean, np.sqrt(var), target, num_bins)
    assert calibration_error(mean, var, target, num_bins=num_bins).item() == pytest.approx(expected, abs=1e-12)
    exp, obs = calibration_proportions(mean, var, target, num_bins=num_bins)
    assert exp[0] == 0 and exp[-1] == 1 and obs[-1] == 1


def test_calibration_error_small_when_calibrated_large_when_not():
    rng = np.random.default_rng(5)
    n = 50_000
    mean = rng.normal(0, 2, n)
    std = rng.uniform(0.5, 2.0, n)
    target = mean + std * rng.normal(size=n)
    assert calibration_error(mean, std**2, target).item() < 0.01
    over = calibration_error(mean, (0.2 * std) ** 2, target).item()  # overconfident
    under = calibration_error(mean, (5 * std) ** 2, target).item()  # underconfident
    assert over > 0.2 and under > 0.2


def test_sharpness():
    var = torch.tensor([1.0, 4.0, 4.0, 7.0])
    assert sharpness(var).item() == pytest.approx(2.0)
    assert sharpness(np.array([[2.0], [2.0]])).item() == pytest.approx(math.sqrt(2.0))
    with pytest.raises(ValueError):
        sharpness(torch.tensor([1.0, -1.0]))


@pytest.mark.parametrize("fn", [gaussian_nll, crps_gaussian, calibration_error, interval_coverage])
@pytest.mark.parametrize(
    "var,match",
    [(torch.tensor([1.0, 0.0]), "zeros"), (torch.tensor([1.0, -1.0]), "negative"), (torch.tensor([1.0, float("nan")]), "NaN")],
)
def test_invalid_variance_raises(fn, var, match):
    with pytest.raises(ValueError, match=match):
        fn(torch.zeros(2), var, torch.ones(2))


def test_invalid_levels_and_bins_raise():
    with pytest.raises(ValueError):
        interval_coverage(torch.zeros(2), torch.ones(2), torch.ones(2), levels=(1.0,))
    with pytest.raises(ValueError):
        interval_coverage(torch.zeros(2), torch.ones(2), torch.ones(2), levels=())
    with pytest.raises(ValueError):
        calibration_error(torch.zeros(2), torch.ones(2), torch.ones(2), num_bins=1)
