"""Generated benchmarks: no files, reproducible from the seed.

``synthetic-hetero`` (the default dataset of the main job)
    Inputs :math:`x \\sim U(-1, 1)^d` (``d >= 4``, default 8), clean label

    .. math::
        f(x) = \\sin(\\pi x_1) + 1.5\\,x_2 x_3 + 0.5\\cos(\\pi x_4)
               + \\frac{0.5}{\\sqrt{d-4}}\\sum_{j=5}^{d} x_j

    (the last term is absent when ``d = 4``). Each term has mean 0; the variances are
    1/2, 1/4, 1/8 and 1/12, so :math:`\\mathrm{sd}(f) = \\sqrt{23/24} \\approx 0.98` for ``d > 4``
    (:math:`\\sqrt{7/8} \\approx 0.94` for ``d = 4``): labels are on a unit scale, and noise
    variances of order 0.1 to 10 are "small" to "large". The function is smooth and learnable by
    a small MLP from a few thousand samples, but not linear (the best linear model explains
    :math:`(3/\\pi^2 + 1/12)/(23/24) \\approx 40\\%` of the variance), so noisy labels visibly hurt
    an unweighted fit and inverse-variance weighting has something to recover. Labels are clean; heteroscedastic noise
    is added by :mod:`hetreg.noise`. ``n`` rows (default 4000) are split by
    :func:`hetreg.data.tabular.split_table` (defaults: 20% test, 10% of the rest validation).

``synthetic-imbalanced``
    The 1-D benchmark of Balanced MSE (Ren et al. 2022, ``synthetic_benchmark/main_1d.py``):

    * training: 1024 *observed* labels :math:`y` drawn from the imbalanced distribution,
      :math:`N(5, \\sigma^2)` (``imbalance``: ``"high"`` σ = 0.5, ``"medium"`` 0.75, ``"low"`` 1.0,
      or a number σ) or ``Exp(rate)`` (``distribution="exp"``; ``"high"`` rate 2, ``"medium"`` 1.5,
      ``"low"`` 1, or a number), truncated to [0, 10] by rejection;
      the oracle label is :math:`y_o = y - \\epsilon`, :math:`\\epsilon \\sim N(0, s^2)` with
      ``noise_sigma`` s = 1, and the input is :math:`x = (y_o - b)/k` (``k = 1``, ``b = 0``).
      So :math:`y = y_o + \\epsilon` (observed = oracle + noise) and ``Split.variance`` is
      :math:`s^2` for every training row, for variance-aware losses;
    * validation and test: 1024 rows each, :math:`y \\sim U(0, 10)`, :math:`x = (y - b)/k`, clean
      (``variance`` is ``None``).

    As in the original code it is the *observed* label, not the oracle one, that follows the
    imbalanced distribution: then :math:`E[y \\mid x]` is pulled towards the training mode, which
    is the bias Balanced MSE corrects. (Drawing :math:`y_o` from it and adding independent noise
    would make plain MSE already optimal for the balanced test set.) Training labels are
    therefore noisy by construction: run it without extra simulated noise. The input is
    one-dimensional, named ``x``.
"""

from __future__ import annotations

import math
import os

import numpy as np

from hetreg.data.base import RegressionData, Split, register_dataset
from hetreg.data.tabular import Size, check_option, check_seed, make_split, split_table, strict_options

HETERO_MIN_D = 4
IMBALANCE_LEVELS = {"normal": {"high": 0.5, "medium": 0.75, "low": 1.0}, "exp": {"high": 2.0, "medium": 1.5, "low": 1.0}}
Y_LOW, Y_HIGH = 0.0, 10.0
NORMAL_MEAN = 5.0


def hetero_function(x: np.ndarray) -> np.ndarray:
    """Clean label of ``synthetic-hetero`` for inputs ``x`` of shape (n, d), d >= 4 (formula in the module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < HETERO_MIN_D:
        raise ValueError(f"x must have shape (n, d) with d >= {HETERO_MIN_D}, got {x.shape}")
    f = np.sin(math.pi * x[:, 0]) + 1.5 * x[:, 1] * x[:, 2] + 0.5 * np.cos(math.pi * x[:, 3])
    d = x.shape[1]
    if d > HETERO_MIN_D:
        f = f + 0.5 / math.sqrt(d - HETERO_MIN_D) * x[:, HETERO_MIN_D:].sum(axis=1)
    return f


def _positive_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _positive_float(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


@strict_options("synthetic-hetero")
def load_synthetic_hetero(
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    *,
    n: int = 4000,
    d: int = 8,
    train_size: Size = None,
    test_size: Size = 0.2,
    val_fraction: float | None = None,
    val_size: int | None = None,
) -> RegressionData:
    """Generate ``synthetic-hetero`` (see the module docstring). ``root`` is ignored.

    Args:
        seed: draws the inputs (numpy PCG64) and the split.
        n: number of rows in all (default 4000).
        d: input dimension, >= 4 (default 8).
    """
    seed = check_seed(seed)
    n = _positive_int(n, "n", minimum=3)
    d = _positive_int(d, "d", minimum=HETERO_MIN_D)
    x = np.random.default_rng([seed, 0x5E7]).uniform(-1.0, 1.0, size=(n, d))
    return split_table(
        "synthetic-hetero",
        x,
        hetero_function(x),
        seed=seed,
        test_size=test_size,
        train_size=train_size,
        val_fraction=val_fraction,
        val_size=val_size,
        feature_names=[f"x{j + 1}" for j in range(d)],
        target_name="y",
        ids=[str(i) for i in range(n)],
        info={
            "generator": "x ~ U(-1,1)^d; y = sin(pi x1) + 1.5 x2 x3 + 0.5 cos(pi x4) + 0.5/sqrt(d-4) sum_{j>4} x_j",
            "n": n,
            "d": d,
        },
    )


def sample_truncated(
    rng: np.random.Generator, distribution: str, scale: float, size: int, low: float = Y_LOW, high: float = Y_HIGH
) -> np.ndarray:
    """``size`` draws of N(5, scale²) (``"normal"``) or Exp(rate=scale) (``"exp"``) kept in [low, high].

    Rejection sampling: draw 2·size, keep those inside [low, high] in draw order, repeat until
    enough (as the original, which drew 2·1024 and kept the first 1024 inside the range).
    """
    kept: list[np.ndarray] = []
    total = 0
    while total < size:
        if distribution == "normal":
            draw = rng.normal(NORMAL_MEAN, scale, size=2 * size)
        else:
            draw = rng.exponential(1.0 / scale, size=2 * size)
        draw = draw[(draw >= low) & (draw <= high)]
        kept.append(draw)
        total += draw.size
    return np.concatenate(kept)[:size]


@strict_options("synthetic-imbalanced")
def load_synthetic_imbalanced(
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    *,
    distribution: str = "normal",
    imbalance: str | float = "high",
    noise_sigma: float = 1.0,
    k: float = 1.0,
    b: float = 0.0,
    train_size: int = 1024,
    val_size: int = 1024,
    test_size: int = 1024,
) -> RegressionData:
    """Generate the Balanced MSE 1-D benchmark (see the module docstring). ``root`` is ignored.

    Args:
        seed: draws every sample (numpy PCG64).
        distribution: ``"normal"`` or ``"exp"`` (training label distribution).
        imbalance: ``"high"``, ``"medium"``, ``"low"`` or a number: σ of the normal
            (0.5 / 0.75 / 1.0) or the rate of the exponential (2 / 1.5 / 1).
        noise_sigma: standard deviation s of the training label noise (variance s² is stored).
        k, b: the linear relation :math:`x = (y_o - b)/k`.
        train_size, val_size, test_size: rows per split (1024 each in the original).
    """
    seed = check_seed(seed)
    check_option(distribution, tuple(IMBALANCE_LEVELS), "distribution")
    levels = IMBALANCE_LEVELS[distribution]
    if isinstance(imbalance, str):
        check_option(imbalance, tuple(levels), "imbalance")
        scale = levels[imbalance]
    else:
        scale = _positive_float(imbalance, "imbalance")
    if isinstance(noise_sigma, bool) or not isinstance(noise_sigma, (int, float)) or not (noise_sigma >= 0):
        raise ValueError(f"noise_sigma must be a number >= 0, got {noise_sigma!r}")
    k = _positive_float(k, "k")
    if isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b):
        raise ValueError(f"b must be a finite number, got {b!r}")
    sizes = {name: _positive_int(v, name) for name, v in (("train_size", train_size), ("test_size", test_size))}
    n_val = _positive_int(val_size, "val_size", minimum=0)

    rng = np.random.default_rng([seed, 0xB5E])
    y_train = sample_truncated(rng, distribution, scale, sizes["train_size"])
    oracle = y_train - rng.normal(0.0, 1.0, size=y_train.size) * noise_sigma
    y_val = rng.uniform(Y_LOW, Y_HIGH, size=n_val)
    y_test = rng.uniform(Y_LOW, Y_HIGH, size=sizes["test_size"])

    def clean(y: np.ndarray, prefix: str) -> Split:
        x = ((y - b) / k)[:, None]
        return make_split(x, y, np.arange(y.size), ids=[f"{prefix}:{i}" for i in range(y.size)])

    train = make_split(
        ((oracle - b) / k)[:, None],
        y_train,
        np.arange(y_train.size),
        variance=np.full(y_train.size, float(noise_sigma) ** 2),
        ids=[f"train:{i}" for i in range(y_train.size)],
    )
    return RegressionData(
        name="synthetic-imbalanced",
        kind="tabular",
        train=train,
        val=clean(y_val, "val"),
        test=clean(y_test, "test"),
        feature_names=("x",),
        target_name="y",
        info={
            "seed": seed,
            "distribution": distribution,
            "scale": scale,
            "noise_sigma": float(noise_sigma),
            "k": k,
            "b": float(b),
            "sizes": {"train": y_train.size, "val": n_val, "test": sizes["test_size"], "unused": 0},
            "train_labels": "observed (noisy): y = y_oracle + N(0, noise_sigma^2); y_oracle = k*x + b",
            "generator": "Balanced MSE synthetic_benchmark/main_1d.py",
        },
    )


register_dataset("synthetic-hetero", load_synthetic_hetero)
register_dataset("synthetic-imbalanced", load_synthetic_imbalanced)
