"""Generated benchmarks: reproducibility, the formulas, and the Balanced MSE protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from hetreg.data import load_dataset
from hetreg.data.synthetic import hetero_function, sample_truncated


def _cat(data, attr: str = "x") -> torch.Tensor:
    return torch.cat([getattr(data.train, attr), getattr(data.val, attr), getattr(data.test, attr)])


# -- synthetic-hetero ------------------------------------------------------------------------


def test_hetero_reproducible_and_seeded() -> None:
    a = load_dataset("synthetic-hetero", seed=11)
    b = load_dataset("synthetic-hetero", seed=11)
    c = load_dataset("synthetic-hetero", seed=12)
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(a, name).x, getattr(b, name).x)
        assert torch.equal(getattr(a, name).y, getattr(b, name).y)
    assert not torch.equal(a.train.x[:5], c.train.x[:5])
    assert (len(a.train), len(a.val), len(a.test)) == (2880, 320, 800)
    assert a.feature_names == tuple(f"x{j}" for j in range(1, 9)) and a.input_shape == (8,)


def test_hetero_labels_follow_the_formula() -> None:
    data = load_dataset("synthetic-hetero", seed=0, n=300, d=6)
    x = _cat(data).double().numpy()
    y = _cat(data, "y").double().numpy()
    expected = (
        np.sin(math.pi * x[:, 0])
        + 1.5 * x[:, 1] * x[:, 2]
        + 0.5 * np.cos(math.pi * x[:, 3])
        + 0.5 / math.sqrt(2) * (x[:, 4] + x[:, 5])
    )
    np.testing.assert_allclose(y, expected, atol=2e-6)  # float32 storage
    assert x.min() >= -1 and x.max() <= 1
    assert np.allclose(hetero_function(np.zeros((1, 4))), 0.5)


def test_hetero_label_scale_matches_the_documented_variance() -> None:
    # Var f = 1/2 + 2.25/9 + 1/8 + 1/12 = 23/24 for x ~ U(-1, 1)^d, d > 4; check the 1-D
    # integrals numerically, then the sample variance of a large draw.
    sin_var = integrate.quad(lambda t: math.sin(math.pi * t) ** 2 / 2, -1, 1)[0]
    cos_var = integrate.quad(lambda t: 0.25 * math.cos(math.pi * t) ** 2 / 2, -1, 1)[0]
    assert sin_var + 2.25 / 9 + cos_var + 0.25 / 3 == pytest.approx(23 / 24, rel=1e-9)
    x = np.random.default_rng(0).uniform(-1, 1, size=(400_000, 8))
    f = hetero_function(x)
    assert f.mean() == pytest.approx(0.0, abs=0.01)
    assert f.var() == pytest.approx(23 / 24, rel=0.01)


@pytest.mark.parametrize(
    "options, words",
    [({"d": 3}, "d must be an int >= 4"), ({"n": 2}, "n must be an int >= 3"), ({"n": 10.0}, "n must be")],
)
def test_hetero_bad_options(options: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        load_dataset("synthetic-hetero", **options)


def test_hetero_function_shape_check() -> None:
    with pytest.raises(ValueError, match="d >= 4"):
        hetero_function(np.zeros((3, 2)))


# -- synthetic-imbalanced ----------------------------------------------------------------------


def test_imbalanced_protocol() -> None:
    data = load_dataset("synthetic-imbalanced", seed=0)
    assert (len(data.train), len(data.val), len(data.test)) == (1024, 1024, 1024)
    assert data.feature_names == ("x",) and data.input_shape == (1,)
    y = data.train.y.double().numpy()
    assert y.min() >= 0 and y.max() <= 10
    assert y.mean() == pytest.approx(5.0, abs=0.1) and y.std() == pytest.approx(0.5, rel=0.1)
    assert torch.equal(data.train.variance, torch.ones(1024))
    noise = y - data.train.x[:, 0].double().numpy()  # observed - oracle, with x = y_oracle (k=1, b=0)
    assert noise.std() == pytest.approx(1.0, rel=0.1) and abs(noise.mean()) < 0.15
    x = data.train.x[:, 0].double().numpy()
    assert abs(np.corrcoef(noise, y)[0, 1]) < 0.1  # the noise is independent of the observed label,
    assert np.corrcoef(noise, x)[0, 1] == pytest.approx(-1 / math.sqrt(1.25), abs=0.05)  # not of x
    # so E[y | x] is pulled towards the mode: least-squares slope sigma^2/(sigma^2 + s^2) = 0.2
    assert np.polyfit(x, y, 1)[0] == pytest.approx(0.2, abs=0.05)
    for split in (data.val, data.test):
        assert split.variance is None
        assert torch.equal(split.x[:, 0], split.y)  # clean: x = y
        assert stats.kstest(split.y.double().numpy(), stats.uniform(0, 10).cdf).pvalue > 1e-3


def test_imbalanced_reproducible() -> None:
    a = load_dataset("synthetic-imbalanced", seed=4, distribution="exp")
    b = load_dataset("synthetic-imbalanced", seed=4, distribution="exp")
    c = load_dataset("synthetic-imbalanced", seed=5, distribution="exp")
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.y, c.train.y)


@pytest.mark.parametrize("level, sigma", [("high", 0.5), ("medium", 0.75), ("low", 1.0), (0.6, 0.6)])
def test_imbalance_levels(level: object, sigma: float) -> None:
    data = load_dataset("synthetic-imbalanced", imbalance=level, train_size=4000, seed=1)
    assert data.train.y.double().std().item() == pytest.approx(sigma, rel=0.06)
    assert data.info["scale"] == sigma


def test_exponential_training_labels() -> None:
    y = load_dataset("synthetic-imbalanced", distribution="exp", train_size=4000).train.y.double().numpy()
    assert y.min() >= 0 and y.mean() == pytest.approx(0.5, rel=0.06)  # Exp(rate 2): mean 1/2
    truncated = stats.truncexpon(b=10 * 2, scale=1 / 2)  # Exp(2) truncated to [0, 10]
    assert stats.kstest(y, truncated.cdf).pvalue > 1e-3


def test_truncation_is_rejection() -> None:
    draws = sample_truncated(np.random.default_rng(0), "normal", 3.0, 20_000, low=4.0, high=6.0)
    assert draws.min() >= 4 and draws.max() <= 6 and draws.size == 20_000
    expected = stats.truncnorm((4 - 5) / 3, (6 - 5) / 3, loc=5, scale=3)
    assert stats.kstest(draws, expected.cdf).pvalue > 1e-3


def test_linear_relation_and_noise_options() -> None:
    data = load_dataset("synthetic-imbalanced", k=2.0, b=1.0, noise_sigma=0.0, seed=2)
    assert torch.allclose(data.train.x[:, 0], (data.train.y - 1.0) / 2.0)  # no noise: x = (y - b)/k
    assert torch.equal(data.train.variance, torch.zeros(1024))
    assert torch.allclose(data.test.x[:, 0], (data.test.y - 1.0) / 2.0)
    data = load_dataset("synthetic-imbalanced", noise_sigma=2.0, val_size=0)
    assert torch.equal(data.train.variance, torch.full((1024,), 4.0)) and len(data.val) == 0


@pytest.mark.parametrize(
    "options, words",
    [
        ({"distribution": "gamma"}, "distribution must be one of 'normal', 'exp'"),
        ({"imbalance": "extreme"}, "imbalance must be one of 'high', 'medium', 'low'"),
        ({"imbalance": -1.0}, "imbalance must be a finite number > 0"),
        ({"noise_sigma": -1.0}, "noise_sigma must be a number >= 0"),
        ({"k": 0}, "k must be a finite number > 0"),
        ({"b": math.nan}, "b must be a finite number"),
        ({"train_size": 0}, "train_size must be an int >= 1"),
        ({"val_size": -1}, "val_size must be an int >= 0"),
        ({"seed": -2}, "seed must be an int >= 0"),
    ],
)
def test_imbalanced_bad_options(options: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        load_dataset("synthetic-imbalanced", **options)


# -- diabetes (bundled with scikit-learn) ---------------------------------------------------------


def test_diabetes_raw_and_split() -> None:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)
    data = load_dataset("diabetes", seed=0)
    assert (len(data.train), len(data.val), len(data.test)) == (319, 35, 88)
    assert data.feature_names == tuple(bunch.feature_names) and data.target_name == "progression"
    for split in (data.train, data.val, data.test):
        rows = [int(i) for i in split.ids]
        assert torch.equal(split.y, torch.tensor(bunch.target[rows], dtype=torch.float32))
        assert torch.equal(split.x, torch.tensor(bunch.data[rows], dtype=torch.float32))
    assert load_dataset("diabetes", seed=0).test.ids == data.test.ids
    assert load_dataset("diabetes", seed=1).test.ids != data.test.ids
