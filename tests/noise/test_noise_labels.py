"""Label noise: residual variance given σ², variance disturbance, reproducibility, normalisation, bad input."""

from __future__ import annotations

import math

import pytest
import scipy.stats
import torch

from hetreg.data.base import Standardizer
from hetreg.noise import (
    Constant,
    Gamma,
    NoisyLabels,
    Uniform,
    add_label_noise,
    binary_uniform,
    disturb_variance,
    normalize_noise,
    uniform_from_mean_var,
)

N = 10**6


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def clean_labels(n: int, seed: int = 99, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return (torch.rand(n, generator=gen(seed), dtype=torch.float64) * 100.0).to(dtype)


@pytest.mark.parametrize(
    "dist",
    [Uniform(0.1, 4.0), binary_uniform(0.5, Uniform(0.226, 0.774), Uniform(2713.4, 9285.6)), Gamma(2.0, 0.5)],
    ids=["uniform", "worked_mixture", "gamma"],
)
def test_residual_variance_equals_the_true_variance(dist) -> None:
    y = clean_labels(N)
    noisy = add_label_noise(y, dist, gen(1))
    r = (noisy.labels - y).numpy()
    s2 = noisy.true_variance.numpy()
    # Least squares through the origin of r^2 on sigma^2: slope 1 with an exact standard error
    # (Var[r^2 | s2] = 2 s2^2 for Gaussian noise).
    s4 = s2**2
    slope = (r**2 * s2).sum() / s4.sum()
    se = math.sqrt((2 * s4 * s4).sum()) / s4.sum()
    assert abs(slope - 1.0) <= 4 * se, (slope, se)
    # standardised residuals are N(0, 1): mean, variance and the whole law
    z = r / s2**0.5
    assert abs(z.mean()) <= 4 / math.sqrt(N)
    assert abs((z**2).mean() - 1.0) <= 4 * math.sqrt(2 / N)
    assert scipy.stats.kstest(z[:100_000], "norm").pvalue > 1e-4
    # noise in raw units: the variances are those the distribution produced
    assert torch.equal(noisy.variance, noisy.true_variance)
    assert torch.equal(noisy.true_variance, dist.sample(N, gen(1)))


def test_labels_keep_dtype_and_device() -> None:
    y = clean_labels(1000, dtype=torch.float32)
    noisy = add_label_noise(y, Uniform(0.0, 1.0), gen(0))
    assert noisy.labels.dtype == torch.float32 and noisy.labels.shape == (1000,)
    assert noisy.variance.dtype == torch.float64 and noisy.true_variance.dtype == torch.float64
    ref = add_label_noise(y.double(), Uniform(0.0, 1.0), gen(0))
    torch.testing.assert_close(noisy.labels, ref.labels.float())


def test_zero_variance_gives_clean_labels_and_no_crash() -> None:
    y = clean_labels(1000)
    for dist in (Constant(0.0), uniform_from_mean_var(2.0, 0.0)):
        noisy = add_label_noise(y, dist, gen(0), disturbance=0.0)
        if dist.mean == 0.0:
            assert torch.equal(noisy.labels, y)
        assert torch.all(noisy.variance == dist.mean)


def _folded_normal_moments(c: float) -> tuple[float, float]:
    """Mean and variance of |X|, X ~ N(1, c^2)."""
    mean = c * math.sqrt(2 / math.pi) * math.exp(-1 / (2 * c * c)) + (1 - 2 * scipy.stats.norm.cdf(-1 / c))
    return mean, 1 + c * c - mean * mean


@pytest.mark.parametrize("d", [0.25, 1.0, 4.0])
def test_disturbance_has_relative_std_sqrt_d_over_3(d: float) -> None:
    y = clean_labels(N)
    dist = Uniform(0.5, 3.0)
    noisy = add_label_noise(y, dist, gen(2), disturbance=d)
    ratio = (noisy.variance / noisy.true_variance).numpy()
    c = math.sqrt(d) / 3
    assert ratio.min() >= 0
    # E[ratio^2] = 1 + d/9 exactly (the absolute value does not change the square)
    sq = ratio**2
    assert abs(sq.mean() - (1 + d / 9)) <= 4 * sq.std(ddof=1) / math.sqrt(N)
    # the mean is that of the folded normal |N(1, c^2)|: checks the absolute value too
    mean, var = _folded_normal_moments(c)
    assert abs(ratio.mean() - mean) <= 4 * math.sqrt(var / N)
    assert abs(ratio.var() - var) <= 4 * ((ratio - mean) ** 2).std() / math.sqrt(N)
    if d <= 1:  # folding is negligible: relative std ~ sqrt(d)/3
        assert ratio.std() == pytest.approx(c, rel=0.01)


def test_disturbance_leaves_the_label_noise_on_the_true_variance() -> None:
    y = clean_labels(N)
    dist = Uniform(0.5, 3.0)
    exact = add_label_noise(y, dist, gen(3), disturbance=0.0)
    disturbed = add_label_noise(y, dist, gen(3), disturbance=1.0)
    assert torch.equal(exact.labels, disturbed.labels)
    assert torch.equal(exact.true_variance, disturbed.true_variance)
    assert not torch.equal(disturbed.variance, disturbed.true_variance)
    # residuals follow the true variance, not the disturbed one
    r2 = ((disturbed.labels - y) ** 2).numpy()
    s2 = disturbed.true_variance.numpy()
    assert abs((r2 / s2).mean() - 1) <= 4 * math.sqrt(2 / N)


def test_disturb_variance_function() -> None:
    v = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    out = disturb_variance(v, 0.0, gen(0))
    assert torch.equal(out, v) and out is not v
    g = gen(0)
    out = disturb_variance(v, 9.0, g)  # relative std 1
    z = torch.randn(3, generator=gen(0), dtype=torch.float64)
    torch.testing.assert_close(out, (v + v * z).abs(), rtol=1e-15, atol=0)
    assert out[0] == 0.0


def test_reproducible_and_seed_dependent() -> None:
    y = clean_labels(500)
    dist = binary_uniform(0.3, Uniform(0, 1), Gamma(2.0, 0.1))
    a = add_label_noise(y, dist, gen(10), disturbance=0.5)
    b = add_label_noise(y, dist, gen(10), disturbance=0.5)
    c = add_label_noise(y, dist, gen(11), disturbance=0.5)
    for name in ("labels", "variance", "true_variance"):
        assert torch.equal(getattr(a, name), getattr(b, name))
        assert not torch.equal(getattr(a, name), getattr(c, name))


def test_empty_labels() -> None:
    noisy = add_label_noise(torch.zeros(0), Uniform(0, 1), gen(0), disturbance=1.0)
    assert len(noisy) == 0 and noisy.variance.shape == (0,)


def test_normalize_noise_matches_the_standardizer_rule() -> None:
    y = clean_labels(10_000, dtype=torch.float32)
    noisy = add_label_noise(y, Uniform(2713.4, 9285.6), gen(4), disturbance=0.25)
    m, s = 33.3, 19.89
    out = normalize_noise(noisy, m, s)
    torch.testing.assert_close(out.labels, (noisy.labels - m) / s)
    torch.testing.assert_close(out.variance, noisy.variance / s**2, rtol=1e-15, atol=0)
    torch.testing.assert_close(out.true_variance, noisy.true_variance / s**2, rtol=1e-15, atol=0)
    assert out.labels.dtype == torch.float32
    scaler = Standardizer(x_mean=torch.zeros(()), x_std=torch.ones(()), y_mean=m, y_std=s)
    torch.testing.assert_close(out.variance, scaler.transform_variance(noisy.variance))
    # z-scored residuals have the normalised variance
    r = (out.labels.double() - (y.double() - m) / s).numpy()
    assert abs((r**2 / out.true_variance.numpy()).mean() - 1) <= 4 * math.sqrt(2 / 10_000) + 1e-4


def test_worked_example_normalised_components() -> None:
    """With s_y^2 = 395.5 the worked-example components become ~U(0.00057, 0.00196) and ~U(6.86, 23.5)."""
    v = torch.tensor([0.226, 0.774, 2713.4, 9285.6], dtype=torch.float64)
    noisy = NoisyLabels(labels=torch.zeros(4), variance=v, true_variance=v)
    out = normalize_noise(noisy, 0.0, math.sqrt(395.5))
    assert out.variance.tolist() == pytest.approx([0.00057, 0.00196, 6.86, 23.48], rel=1e-2)


BAD = [
    (lambda: add_label_noise(torch.zeros(3), Uniform(0, 1), gen(), disturbance=-0.1), "disturbance must be >= 0"),
    (lambda: add_label_noise(torch.zeros(3, 1), Uniform(0, 1), gen()), r"y must have shape \(n,\)"),
    (lambda: add_label_noise(torch.zeros(3, dtype=torch.int64), Uniform(0, 1), gen()), "floating-point"),
    (lambda: add_label_noise(torch.tensor([0.0, float("nan")]), Uniform(0, 1), gen()), "NaN or inf"),
    (lambda: disturb_variance(torch.ones(2), -1.0, gen()), "disturbance must be >= 0"),
    (
        lambda: normalize_noise(add_label_noise(torch.zeros(2), Uniform(0, 1), gen()), 0.0, 0.0),
        "y_std must be > 0",
    ),
    (
        lambda: normalize_noise(add_label_noise(torch.zeros(2), Uniform(0, 1), gen()), float("nan"), 1.0),
        "y_mean must be finite",
    ),
    (lambda: NoisyLabels(torch.zeros(3), torch.zeros(2), torch.zeros(3)), "must all have shape"),
]


@pytest.mark.parametrize("make,match", BAD, ids=[m for _, m in BAD])
def test_bad_input_raises_value_error(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_wrong_types_raise_type_error() -> None:
    with pytest.raises(TypeError, match="VarianceDistribution"):
        add_label_noise(torch.zeros(3), {"kind": "uniform", "low": 0, "high": 1}, gen())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="torch.Generator"):
        add_label_noise(torch.zeros(3), Uniform(0, 1), 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="NoisyLabels"):
        normalize_noise((torch.zeros(1),), 0.0, 1.0)  # type: ignore[arg-type]
