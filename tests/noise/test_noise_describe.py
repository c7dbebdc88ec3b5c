"""``describe_distribution`` / ``format_description``: values against brute force and integrals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from hetreg.noise import Constant, Gamma, Uniform, binary_uniform, describe_distribution, format_description


def brute_force_ebs(v: np.ndarray, eps: float) -> np.ndarray:
    w = 1.0 / (v + eps)
    return w.sum(axis=-1) ** 2 / (w**2).sum(axis=-1)


@pytest.mark.parametrize("dist,eps", [(Uniform(0.5, 3.0), 0.0), (Gamma(0.5, 0.01), 1.0)])
def test_values_match_a_brute_force_recomputation(dist, eps: float) -> None:
    d = describe_distribution(dist, batch_size=64, eps=eps, n_batches=50, seed=5, bins=7)
    draws = dist.sample(64 * 50, torch.Generator().manual_seed(5)).numpy()
    assert d["mean"] == dist.mean and d["variance"] == dist.variance and d["std"] == math.sqrt(dist.variance)
    assert d["n_samples"] == draws.size
    assert d["sample_mean"] == pytest.approx(draws.mean(), rel=1e-12)
    assert d["quantiles"]["0.5"] == pytest.approx(np.median(draws), rel=1e-12)
    assert d["quantiles"]["0.99"] == pytest.approx(np.quantile(draws, 0.99), rel=1e-12)
    ebs = brute_force_ebs(draws.reshape(50, 64), eps)
    assert d["ebs"]["mean"] == pytest.approx(ebs.mean(), rel=1e-10)
    assert d["ebs"]["std"] == pytest.approx(ebs.std(ddof=1), rel=1e-8)
    assert d["ebs"]["fraction"] == pytest.approx(ebs.mean() / 64, rel=1e-10)
    counts, edges = d["histogram"]["counts"], d["histogram"]["edges"]
    assert len(counts) == 7 and len(edges) == 8 and sum(counts) == draws.size
    assert edges[0] == draws.min() and edges[-1] == draws.max()
    assert d["distribution"] == dist.to_dict()


def test_support_reports_unbounded_as_none_and_is_json_safe() -> None:
    d = describe_distribution(Gamma(2.0, 1.0), n_batches=4)
    assert d["support"] == [0.0, None]
    json.loads(json.dumps(d, allow_nan=False))
    assert describe_distribution(Uniform(1.0, 2.0), n_batches=4)["support"] == [1.0, 2.0]


def test_ebs_of_a_constant_is_the_batch_size() -> None:
    d = describe_distribution(Constant(3.0), batch_size=32, n_batches=10)
    assert d["ebs"]["mean"] == pytest.approx(32.0, rel=1e-12) and d["ebs"]["fraction"] == pytest.approx(1.0)


@pytest.mark.parametrize("a,b,eps", [(1.0, 3.0, 0.0), (0.0, 1.0, 0.1)])
def test_ebs_fraction_tends_to_the_integral_value(a: float, b: float, eps: float) -> None:
    """For large K, EBS/K -> E[w]^2 / E[w^2] with w = 1/(U(a,b) + eps), in closed form."""
    ew = math.log((b + eps) / (a + eps)) / (b - a)
    ew2 = (1 / (a + eps) - 1 / (b + eps)) / (b - a)
    d = describe_distribution(Uniform(a, b), batch_size=4096, eps=eps, n_batches=50, seed=1)
    assert d["ebs"]["fraction"] == pytest.approx(ew**2 / ew2, rel=5e-3)


def test_ebs_grows_with_eps_and_seed_makes_it_reproducible() -> None:
    dist = binary_uniform(0.5, Uniform(0.226, 0.774), Uniform(2713.4, 9285.6))
    values = [describe_distribution(dist, eps=e, n_batches=20)["ebs"]["mean"] for e in (0.0, 1.0, 100.0, 1e6)]
    assert values == sorted(values) and values[-1] > 250
    assert describe_distribution(dist, n_batches=20, seed=3) == describe_distribution(dist, n_batches=20, seed=3)
    assert describe_distribution(dist, n_batches=20, seed=3) != describe_distribution(dist, n_batches=20, seed=4)


def test_format_description_is_plain_text_with_every_section() -> None:
    d = describe_distribution(binary_uniform(0.5, Uniform(0.0, 1.0), Constant(4.0)), batch_size=16, n_batches=8, bins=5)
    text = format_description(d)
    assert isinstance(text, str) and text.isascii()
    assert "0.5*[U(0, 1)] + 0.5*[Constant(4)]" in text
    assert f"mean      {d['mean']:.6g}" in text
    assert "effective batch size" in text and "batch 16" in text
    assert sum(line.startswith("  [") for line in text.splitlines()) == 5
    assert "support   [0, inf]" in format_description(describe_distribution(Gamma(1.0, 1.0), n_batches=2))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"n_batches": 0}, "n_batches must be a positive integer"),
        ({"bins": 0}, "bins must be a positive integer"),
        ({"eps": -1.0}, "eps must be >= 0"),
        ({"seed": 1.5}, "seed must be an integer"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        describe_distribution(Uniform(0.0, 1.0), **kwargs)


def test_zero_variances_with_zero_eps_are_flagged_and_the_histogram_stays_non_negative() -> None:
    d = describe_distribution(Constant(0.0), batch_size=16, eps=0.0, n_batches=5)
    assert d["ebs"]["mean"] == 16 and "losses refuse such batches" in d["ebs"]["note"]
    assert d["histogram"]["edges"][0] == 0.0 and d["histogram"]["counts"][0] == 80
    assert "note: some variances are 0 and eps is 0" in format_description(d)
    assert describe_distribution(Constant(0.0), batch_size=16, eps=0.1, n_batches=5)["ebs"]["note"] is None
    shifted = describe_distribution(Constant(3.0), batch_size=4, n_batches=5)["histogram"]
    assert (shifted["edges"][0], shifted["edges"][-1]) == (2.5, 3.5) and sum(shifted["counts"]) == 20
    spread = describe_distribution(Uniform(1.0, 2.0), batch_size=8, n_batches=50, bins=4)["histogram"]
    values = Uniform(1.0, 2.0).sample(400, torch.Generator().manual_seed(0)).numpy()
    assert spread["counts"] == np.histogram(values, bins=4)[0].tolist()  # as numpy bins a spread sample
