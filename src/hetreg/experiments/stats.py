"""Summary statistics over seeds: mean, standard deviation, Student-t confidence intervals.

All formulas work on plain float64 numpy arrays; non-finite values (a diverged run) are dropped
and counted by the callers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import special


@dataclass(frozen=True)
class Estimate:
    """Mean of ``n`` values with its sample standard deviation and a two-sided t interval.

    Attributes:
        n: number of finite values used.
        mean: arithmetic mean (same units as the values).
        std: sample standard deviation with ``n - 1`` in the denominator (NaN when n < 2).
        half_width: ``t_{(1+c)/2, n-1} · std / sqrt(n)`` (NaN when n < 2).
        confidence: the level ``c`` of the interval, e.g. 0.95.
    """

    n: int
    mean: float
    std: float
    half_width: float
    confidence: float

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def t_quantile(p: float, dof: int) -> float:
    """Quantile ``t_p`` of Student's t distribution with ``dof`` degrees of freedom."""
    if dof < 1:
        raise ValueError(f"dof must be >= 1, got {dof}")
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    return float(special.stdtrit(dof, p))


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Estimate:
    """Mean and Student-t confidence interval of independent replicates (e.g. seeds).

    .. math::
        \\bar x \\pm t_{(1+c)/2,\\,n-1}\\; s/\\sqrt{n},\\qquad s^2 = \\frac{1}{n-1}\\sum_i (x_i-\\bar x)^2

    Non-finite values are dropped. With a single value the interval is undefined (NaN); with no
    values the mean is NaN too.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return Estimate(0, math.nan, math.nan, math.nan, confidence)
    mean = float(x.mean())
    if n == 1:
        return Estimate(1, mean, math.nan, math.nan, confidence)
    std = float(x.std(ddof=1))
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * std / math.sqrt(n)
    return Estimate(n, mean, std, half, confidence)


def format_estimate(est: Estimate, digits: int = 4) -> str:
    """``mean ± half_width`` with ``digits`` significant digits (just the mean when n < 2)."""
    if est.n == 0:
        return "n/a"
    if not math.isfinite(est.half_width):
        return f"{est.mean:.{digits}g}"
    return f"{est.mean:.{digits}g} ± {est.half_width:.{digits - 1}g}"
