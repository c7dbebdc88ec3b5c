"""Input checks shared by losses, metrics and noise simulation.

Every public function validates its inputs at the boundary with these helpers and raises
``ValueError`` (or ``TypeError``) with a message that names the offending argument, what was
received, and how to fix it. Nothing deeper in the code re-checks.
"""

from __future__ import annotations

import math

from typing import Iterable

import torch
from torch import Tensor

REDUCTIONS = ("mean", "sum", "none")


def check_tensor(x: object, name: str) -> Tensor:
    """Raise ``TypeError`` unless ``x`` is a tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_same_shape(a: Tensor, b: Tensor, name_a: str = "pred", name_b: str = "target") -> None:
    """Raise ``ValueError`` naming both shapes when ``a`` and ``b`` differ in shape.

    Broadcasting between predictions and targets is a classic silent bug ((N,) against (N, 1)
    gives an (N, N) loss), so it is refused: reshape one of them explicitly.
    """
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {name_a} {tuple(a.shape)} and "
            f"{name_b} {tuple(b.shape)}; reshape one of them explicitly (e.g. pred.view_as(target))"
        )


def check_batch(x: Tensor, name: str = "pred") -> None:
    """Require a batch dimension: shapes (N,), (N, 1) or (N, d) with N >= 1."""
    if x.dim() == 0 or x.dim() > 2:
        raise ValueError(f"{name} must have shape (N,), (N, 1) or (N, d), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)}); pass at least one sample")


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def align_per_sample(x: Tensor, like: Tensor, name: str) -> Tensor:
    """Return a per-sample quantity (variance, weight) broadcastable against ``like``.

    ``x`` may have shape (N,), (N, 1) or exactly ``like.shape``. A (N,) vector is viewed as
    (N, 1) when ``like`` is 2-D, so that it applies to every output dimension of a sample.
    """
    check_tensor(x, name)
    n = like.shape[0]
    if x.shape == like.shape:
        return x
    if x.dim() == 1 and x.shape[0] == n:
        return x.view(n, *([1] * (like.dim() - 1))) if like.dim() > 1 else x
    if x.dim() == 2 and x.shape == (n, 1) and like.dim() == 2:
        return x
    if x.dim() == 2 and x.shape == (n, 1) and like.dim() == 1:
        return x.view(n)
    raise ValueError(
        f"{name} must have shape (N,), (N, 1) or {tuple(like.shape)} to match pred, "
        f"got {tuple(x.shape)}"
    )


def check_variance(variance: Tensor, name: str = "variance") -> None:
    """Variances must be finite and non-negative."""
    if torch.isnan(variance).any():
        raise ValueError(f"{name} contains NaN; every label needs a known variance (drop or impute those rows)")
    if (variance < 0).any():
        raise ValueError(
            f"{name} contains negative values (min {variance.min().item():.4g}); variances must be >= 0"
        )
    if torch.isinf(variance).any():
        raise ValueError(f"{name} contains inf; use a large finite variance or drop those rows")


def variance_extremes(variance: Tensor, name: str = "variance") -> tuple[float, float]:
    """The smallest and largest of the variances (NaN, NaN when there are none), checked as
    :func:`check_variance` checks them: one min/max reduction for the common case (any NaN
    makes both NaN and fails the comparisons), :func:`check_variance` to explain a failure."""
    if variance.numel() == 0:
        return math.nan, math.nan
    low, high = (float(t) for t in torch.aminmax(variance.detach()))
    if not (low >= 0 and high < math.inf):
        check_variance(variance, name)
    return low, high


def check_weight(weight: Tensor, name: str = "weight") -> None:
    """Per-sample weights must be finite and non-negative."""
    if not torch.isfinite(weight).all():
        raise ValueError(f"{name} contains NaN or inf; weights must be finite")
    if (weight < 0).any():
        raise ValueError(f"{name} contains negative values; weights must be >= 0")


def check_positive(value: float, name: str, *, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not ok or value != value:  # NaN check
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value}")


def check_choice(value: str, choices: Iterable[str], name: str) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(choices)}")
