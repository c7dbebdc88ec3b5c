"""Variance distributions: exact moments vs sampling and scipy, mixture probabilities,
reproducibility, the BIV parameterisations and worked examples, serialisation, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hetreg.noise import (
    Constant,
    Gamma,
    Mixture,
    Uniform,
    VarianceDistribution,
    binary_uniform,
    distribution_from_dict,
    gamma_from_mean_var,
    gamma_from_shape_rate,
    mixture_mean_target,
    uniform_from_bounds,
    uniform_from_mean_var,
    uniform_max_heteroscedastic,
    uniform_max_variance,
)

N = 10**6


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


WORKED = binary_uniform(
    0.5,
    uniform_max_heteroscedastic(0.5, 0.3),
    uniform_max_heteroscedastic(mixture_mean_target(0.5, 0.5, 3000.0), 0.3),
)

DISTRIBUTIONS = {
    "uniform01": Uniform(0.0, 1.0),
    "uniform_shifted": Uniform(2.5, 7.0),
    "gamma_heavy": Gamma(0.5, 2.0),
    "gamma_peaked": Gamma(4.0, 0.1),
    "worked_mixture": WORKED,
    "mixture3": Mixture((Uniform(0.0, 1.0), Gamma(2.0, 0.5), Constant(10.0)), (0.2, 0.5, 0.3)),
    "nested": Mixture((Mixture((Uniform(1.0, 2.0), Constant(0.0)), (0.25, 0.75)), Gamma(3.0, 1.5)), (0.6, 0.4)),
}


# --------------------------------------------------------------------------- moments


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_sample_moments_match_exact_within_4_standard_errors(name: str) -> None:
    dist = DISTRIBUTIONS[name]
    x = dist.sample(N, gen(123))
    assert x.dtype == torch.float64 and x.shape == (N,)
    lo, hi = dist.support
    assert float(x.min()) >= lo and float(x.max()) <= hi
    x = x.numpy()
    # E[X] with the exact standard error
    se_mean = math.sqrt(dist.variance / N)
    assert abs(x.mean() - dist.mean) <= 4 * se_mean, (x.mean(), dist.mean, se_mean)
    # E[(X - mu)^2] = Var with the standard error of the squared deviations
    sq = (x - dist.mean) ** 2
    se_var = sq.std(ddof=1) / math.sqrt(N)
    assert abs(sq.mean() - dist.variance) <= 4 * se_var, (sq.mean(), dist.variance, se_var)


def test_point_masses_sample_exactly() -> None:
    for dist in (Uniform(3.0, 3.0), Constant(1.25), Mixture((Constant(2.0), Uniform(2.0, 2.0)), (0.5, 0.5))):
        x = dist.sample(N, gen(1))
        assert torch.all(x == dist.mean)
        assert dist.variance == 0.0
        assert dist.support == (dist.mean, dist.mean)
    assert Uniform(3.0, 3.0).is_point_mass and not Uniform(3.0, 3.5).is_point_mass


@pytest.mark.parametrize("low,high", [(0.0, 1.0), (2.5, 7.0), (0.001, 0.999)])
def test_uniform_moments_against_scipy(low: float, high: float) -> None:
    ref = scipy.stats.uniform(loc=low, scale=high - low)
    d = Uniform(low, high)
    assert d.mean == pytest.approx(ref.mean(), rel=1e-14)
    assert d.variance == pytest.approx(ref.var(), rel=1e-12)


@pytest.mark.parametrize("shape,rate", [(0.5, 2.0), (4.0, 0.1), (25.0, 2.5)])
def test_gamma_is_rate_parametrised_like_scipy_and_torch(shape: float, rate: float) -> None:
    d = Gamma(shape, rate)
    ref = scipy.stats.gamma(a=shape, scale=1.0 / rate)
    assert d.mean == pytest.approx(ref.mean(), rel=1e-14)
    assert d.variance == pytest.approx(ref.var(), rel=1e-12)
    tref = torch.distributions.Gamma(torch.tensor(shape, dtype=torch.float64), torch.tensor(rate, dtype=torch.float64))
    assert d.mean == pytest.approx(float(tref.mean)) and d.variance == pytest.approx(float(tref.variance))
    # the whole law, not only two moments: KS test against scipy's CDF (alpha 1e-4)
    x = d.sample(100_000, gen(7)).numpy()
    assert scipy.stats.kstest(x, ref.cdf).pvalue > 1e-4


def test_uniform_sampler_passes_ks_test() -> None:
    x = Uniform(2.0, 5.0).sample(100_000, gen(8)).numpy()
    assert scipy.stats.kstest(x, scipy.stats.uniform(loc=2.0, scale=3.0).cdf).pvalue > 1e-4


def test_mixture_moments_by_raw_moments_of_the_components() -> None:
    """Independent route: E[X^2] = sum_i w_i E_i[X^2] with the components' raw moments from scipy."""
    comps = [scipy.stats.uniform(loc=0.0, scale=1.0), scipy.stats.gamma(a=2.0, scale=2.0)]
    w = [0.2, 0.5]
    m1 = sum(wi * c.moment(1) for wi, c in zip(w, comps)) + 0.3 * 10.0
    m2 = sum(wi * c.moment(2) for wi, c in zip(w, comps)) + 0.3 * 100.0
    d = DISTRIBUTIONS["mixture3"]
    assert d.mean == pytest.approx(m1, rel=1e-12)
    assert d.variance == pytest.approx(m2 - m1**2, rel=1e-12)


def test_mixture_of_mixture_flattens_to_the_same_moments() -> None:
    nested = DISTRIBUTIONS["nested"]
    flat = Mixture((Uniform(1.0, 2.0), Constant(0.0), Gamma(3.0, 1.5)), (0.6 * 0.25, 0.6 * 0.75, 0.4))
    assert nested.mean == pytest.approx(flat.mean, rel=1e-13)
    assert nested.variance == pytest.approx(flat.variance, rel=1e-13)
    assert nested.support == flat.support == (0.0, math.inf)


# --------------------------------------------------------------------------- mixture probabilities


@pytest.mark.parametrize("p", [0.3, 0.5, 0.93])
def test_binary_mixture_honours_p(p: float) -> None:
    d = binary_uniform(p, Uniform(0.0, 1.0), Uniform(2.0, 3.0))
    x = d.sample(N, gen(5))
    first = float((x < 1.5).to(torch.float64).mean())
    assert abs(first - p) <= 4 * math.sqrt(p * (1 - p) / N)
    assert d.weights == (p, 1 - p)
    # within each component the draws are uniform on its own support
    assert float(x[x < 1.5].mean()) == pytest.approx(0.5, abs=4 * math.sqrt(1 / 12 / (p * N)))
    assert float(x[x >= 1.5].mean()) == pytest.approx(2.5, abs=4 * math.sqrt(1 / 12 / ((1 - p) * N)))


def test_three_component_frequencies() -> None:
    w = (0.1, 0.6, 0.3)
    d = Mixture((Constant(0.0), Constant(1.0), Constant(2.0)), w)
    x = d.sample(N, gen(11))
    for i, wi in enumerate(w):
        freq = float((x == i).to(torch.float64).mean())
        assert abs(freq - wi) <= 4 * math.sqrt(wi * (1 - wi) / N)


@pytest.mark.parametrize("p,expect_low", [(1.0, True), (0.0, False)])
def test_zero_weight_component_is_never_drawn(p: float, expect_low: bool) -> None:
    x = binary_uniform(p, Uniform(0.0, 1.0), Uniform(2.0, 3.0)).sample(100_000, gen(2))
    assert bool((x < 1.5).all()) is expect_low and bool((x >= 1.5).all()) is not expect_low


def test_zero_weight_tail_is_never_drawn() -> None:
    w = (0.1, 0.2, 0.7, 0.0)
    x = Mixture((Constant(1.0), Constant(2.0), Constant(3.0), Constant(99.0)), w).sample(200_000, gen(3))
    assert not bool((x == 99.0).any())


# --------------------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_reproducible_from_seed_and_different_for_other_seeds(name: str) -> None:
    dist = DISTRIBUTIONS[name]
    a = dist.sample(1000, gen(42))
    b = dist.sample(1000, gen(42))
    c = dist.sample(1000, gen(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    g = gen(42)
    first, second = dist.sample(1000, g), dist.sample(1000, g)
    assert torch.equal(first, a) and not torch.equal(first, second)  # the generator is advanced


def test_zero_draws() -> None:
    for dist in [*DISTRIBUTIONS.values(), Constant(1.0)]:
        x = dist.sample(0, gen(0))
        assert x.shape == (0,) and x.dtype == torch.float64


# --------------------------------------------------------------------------- parameterisations


def test_readme_worked_example_mean_target_3000() -> None:
    mu2 = mixture_mean_target(0.5, 0.5, 3000.0)
    assert mu2 == 5999.5
    first, second = WORKED.components
    assert (round(first.low, 3), round(first.high, 3)) == (0.226, 0.774)
    assert second.low == pytest.approx(2713.4, rel=1e-4) and second.high == pytest.approx(9285.6, rel=1e-4)
    assert WORKED.mean == pytest.approx(3000.0, rel=1e-12)
    assert WORKED.weights == (0.5, 0.5)
    # variance of each component is s * V_max(mu)
    assert first.variance == pytest.approx(0.3 * 0.5**2 / 3, rel=1e-12)
    assert second.variance == pytest.approx(0.3 * uniform_max_variance(5999.5), rel=1e-12)


def test_readme_worked_example_meanvar_false_2000() -> None:
    """``meanvar_avg,0.5,2000`` + ``False,0.5,1,0.083,0``: U(0.001, 0.999) and the constant 3999.5."""
    first = uniform_from_mean_var(0.5, 0.083)
    assert first.low == pytest.approx(0.001, abs=1e-3) and first.high == pytest.approx(0.999, abs=1e-3)
    assert first.low == pytest.approx(0.5 - math.sqrt(3 * 0.083), rel=1e-14)
    mu2 = mixture_mean_target(0.5, 0.5, 2000.0)
    assert mu2 == 3999.5
    second = uniform_from_mean_var(mu2, 0.0)
    assert second.is_point_mass and second.low == 3999.5
    mix = binary_uniform(0.5, first, second)
    assert mix.mean == pytest.approx(2000.0, rel=1e-12)
    assert torch.all(second.sample(1000, gen(0)) == 3999.5)


def test_readme_true_scale_example_is_narrow() -> None:
    """``True,0.5,0.083`` reads 0.083 as the scale s: U(0.356, 0.644), not U(0, 1)."""
    d = uniform_max_heteroscedastic(0.5, 0.083)
    assert (round(d.low, 3), round(d.high, 3)) == (0.356, 0.644)
    assert d.variance == pytest.approx(0.083 * 0.25 / 3, rel=1e-12)


def test_max_heteroscedastic_extremes() -> None:
    assert uniform_max_heteroscedastic(2.0, 1.0) == Uniform(0.0, 4.0)
    assert Uniform(0.0, 4.0).variance == pytest.approx(uniform_max_variance(2.0))
    assert uniform_max_heteroscedastic(2.0, 0.0) == Uniform(2.0, 2.0)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.0, 1e4), st.floats(0.0, 1.0))
def test_uniform_from_mean_var_inverts_the_moments(mu: float, frac: float) -> None:
    var = frac * mu**2 / 3  # every valid variance for this mean
    d = uniform_from_mean_var(mu, var)
    assert d.mean == pytest.approx(mu, rel=1e-12, abs=1e-12)
    assert d.variance == pytest.approx(var, rel=1e-9, abs=1e-12)
    assert d.low >= 0


@settings(max_examples=60, deadline=None)
@given(st.floats(1e-3, 1e4), st.floats(1e-3, 1e3))
def test_gamma_from_mean_var_inverts_the_moments(mu: float, rel_var: float) -> None:
    var = rel_var * mu**2  # both v < mu^2 (shape > 1, refused by the original) and v > mu^2
    d = gamma_from_mean_var(mu, var)
    assert d.mean == pytest.approx(mu, rel=1e-12)
    assert d.variance == pytest.approx(var, rel=1e-12)
    assert d.shape == pytest.approx(mu**2 / var, rel=1e-12) and d.rate == pytest.approx(mu / var, rel=1e-12)


def test_gamma_from_mean_var_accepts_shape_above_one() -> None:
    d = gamma_from_mean_var(10.0, 4.0)
    assert d == Gamma(25.0, 2.5)
    assert gamma_from_shape_rate(25.0, 2.5) == d


def test_constructors_return_plain_families() -> None:
    assert uniform_from_bounds(0.0, 1.0) == Uniform(0.0, 1.0)
    assert uniform_from_bounds(2.0, 2.0).is_point_mass
    assert isinstance(binary_uniform(0.5, Uniform(0, 1), Uniform(1, 4)), Mixture)
    assert mixture_mean_target(0.0, 123.0, 5.0) == 5.0
    assert mixture_mean_target(0.25, 4.0, 1.0) == 0.0  # exactly zero is allowed


# --------------------------------------------------------------------------- serialisation


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS) + ["constant", "point"])
def test_to_dict_round_trip_through_json(name: str) -> None:
    dist = {"constant": Constant(1.5), "point": Uniform(2.0, 2.0)}.get(name) or DISTRIBUTIONS[name]
    d = dist.to_dict()
    back = distribution_from_dict(json.loads(json.dumps(d)))
    assert back == dist and type(back) is type(dist)
    assert back.to_dict() == d


def test_dict_formats_are_the_documented_ones() -> None:
    assert Uniform(1, 2).to_dict() == {"kind": "uniform", "low": 1.0, "high": 2.0}
    assert Constant(3).to_dict() == {"kind": "constant", "value": 3.0}
    assert Gamma(2, 0.5).to_dict() == {"kind": "gamma", "shape": 2.0, "rate": 0.5}
    assert binary_uniform(0.25, Uniform(0, 1), Constant(4)).to_dict() == {
        "kind": "mixture",
        "weights": [0.25, 0.75],
        "components": [{"kind": "uniform", "low": 0.0, "high": 1.0}, {"kind": "constant", "value": 4.0}],
    }


def test_distributions_are_frozen_and_share_the_base() -> None:
    for dist in [*DISTRIBUTIONS.values(), Constant(1.0)]:
        assert isinstance(dist, VarianceDistribution)
        with pytest.raises(AttributeError):
            dist.kind_of_thing = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        Uniform(0, 1).low = 3.0  # type: ignore[misc]


# --------------------------------------------------------------------------- bad input

BAD = [
    (lambda: Uniform(2.0, 1.0), "low must be <= high"),
    (lambda: Uniform(-0.5, 1.0), "low must be >= 0"),
    (lambda: Uniform(float("nan"), 1.0), "low must be finite"),
    (lambda: Uniform(0.0, float("inf")), "high must be finite"),
    (lambda: Uniform("a", 1.0), "low must be a real number"),
    (lambda: Constant(-1.0), "value must be >= 0"),
    (lambda: Gamma(0.0, 1.0), "shape must be > 0"),
    (lambda: Gamma(1.0, -2.0), "rate must be > 0"),
    (lambda: Mixture((Uniform(0, 1), Uniform(1, 2)), (0.5, 0.6)), "weights must sum to 1"),
    (lambda: Mixture((Uniform(0, 1), Uniform(1, 2)), (1.5, -0.5)), "weights must be >= 0"),
    (lambda: Mixture((Uniform(0, 1), Uniform(1, 2)), (1.0,)), "one weight per component"),
    (lambda: Mixture((), ()), "at least one component"),
    (lambda: Mixture((Uniform(0, 1), "U(1,2)"), (0.5, 0.5)), r"components\[1\] must be a VarianceDistribution"),
    (lambda: uniform_from_mean_var(0.5, -1.0), "var must be >= 0"),
    (lambda: uniform_max_heteroscedastic(1.0, 1.5), r"must lie in \[0, 1\]"),
    (lambda: uniform_max_heteroscedastic(1.0, -0.1), r"must lie in \[0, 1\]"),
    (lambda: uniform_max_heteroscedastic(-1.0, 0.5), "mean must be >= 0"),
    (lambda: binary_uniform(1.2, Uniform(0, 1), Uniform(1, 2)), r"p is a probability and must lie in \[0, 1\]"),
    (lambda: binary_uniform(-0.1, Uniform(0, 1), Uniform(1, 2)), r"must lie in \[0, 1\]"),
    (lambda: mixture_mean_target(1.0, 0.5, 3000.0), "p = 1 puts no weight on the second component"),
    (lambda: mixture_mean_target(1.5, 0.5, 3000.0), r"must lie in \[0, 1\]"),
    (lambda: mixture_mean_target(0.5, 10.0, 1.0), "second mean would be negative"),
    (lambda: mixture_mean_target(0.5, -1.0, 1.0), "mu1 must be >= 0"),
    (lambda: gamma_from_mean_var(0.0, 1.0), "mean must be > 0"),
    (lambda: gamma_from_mean_var(1.0, 0.0), "Constant"),
    (lambda: gamma_from_shape_rate(-1.0, 1.0), "shape must be > 0"),
    (lambda: distribution_from_dict({"kind": "beta", "a": 1}), "unknown distribution kind 'beta'"),
    (lambda: distribution_from_dict({"kind": "uniform", "low": 0}), "missing: high"),
    (lambda: distribution_from_dict({"kind": "gamma", "shape": 1, "rate": 1, "scale": 1}), "unexpected: scale"),
    (lambda: distribution_from_dict([1, 2]), "must be a dict"),
    (lambda: distribution_from_dict({"kind": "mixture", "weights": [1.0], "components": {"kind": "constant"}}), "list"),
    (lambda: Uniform(0, 1).sample(-1, gen()), "non-negative integer"),
    (lambda: Uniform(0, 1).sample(2.5, gen()), "non-negative integer"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("make,match", BAD, ids=[m for _, m in BAD])
def test_bad_input_raises_value_error(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_uniform_from_mean_var_states_the_smallest_valid_mean() -> None:
    with pytest.raises(ValueError) as info:
        uniform_from_mean_var(0.1, 1.0)
    assert f"{math.sqrt(3.0):.6g}" in str(info.value)
    assert "smallest valid mean" in str(info.value)
    uniform_from_mean_var(math.sqrt(3.0), 1.0)  # the bound itself is valid


def test_uniform_from_mean_var_accepts_the_largest_variance_despite_rounding() -> None:
    mus = np.random.default_rng(0).uniform(0.0, 1e4, 2000)
    for mu in mus:  # v = mu**2/3 rounds up for a few percent of these
        d = uniform_from_mean_var(float(mu), float(mu) ** 2 / 3)
        assert 0.0 <= d.low <= 1e-12 * mu and d.high == pytest.approx(2 * mu, rel=1e-12)


def test_generator_must_be_a_torch_generator() -> None:
    with pytest.raises(TypeError, match="torch.Generator"):
        Uniform(0, 1).sample(3, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="torch.Generator"):
        Gamma(1, 1).sample(3, np.random.default_rng(0))  # type: ignore[arg-type]
