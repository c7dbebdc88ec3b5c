"""Point-prediction metrics: MSE, RMSE, MAE, R², geometric mean of the absolute errors.

Every function takes ``pred`` and ``target`` of the same shape, (N,), (N, 1) or (N, d), as torch
tensors or numpy arrays, and returns a 0-dim tensor (differentiable where the formula is). With
(N, d) inputs the errors are averaged over all elements (R²: the mean of the per-column R², as
scikit-learn's ``uniform_average``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from hetreg._validation import check_positive
from hetreg.losses.mse import squared_error
from hetreg.metrics._inputs import point_inputs

#: Default replacement of exactly-zero errors in :func:`gmean_error` (the STS-B convention).
GMEAN_EPS = 1e-10


def absolute_error(pred: Tensor, target: Tensor) -> Tensor:
    """Element-wise :math:`|\\hat y - y|`."""
    return (pred - target).abs()


def log_absolute_error(pred: Tensor, target: Tensor, eps: float = GMEAN_EPS) -> Tensor:
    """Element-wise :math:`\\log |\\hat y - y|`, exact zeros replaced by ``eps`` first (``eps=0``: −inf)."""
    err = absolute_error(pred, target)
    if eps > 0:
        err = torch.where(err == 0, torch.full_like(err, eps), err)
    return torch.log(err)


def mse(pred: Any, target: Any) -> Tensor:
    """Mean squared error :math:`\\frac1N \\sum_i (\\hat y_i - y_i)^2`, in squared label units."""
    p, t = point_inputs(pred, target)
    return squared_error(p, t).mean()


def rmse(pred: Any, target: Any) -> Tensor:
    """Root mean squared error :math:`\\sqrt{\\mathrm{MSE}}`, in label units."""
    return torch.sqrt(mse(pred, target))


def mae(pred: Any, target: Any) -> Tensor:
    """Mean absolute error :math:`\\frac1N \\sum_i |\\hat y_i - y_i|`, in label units."""
    p, t = point_inputs(pred, target)
    return absolute_error(p, t).mean()


def r2(pred: Any, target: Any) -> Tensor:
    """Coefficient of determination :math:`1 - \\sum_i (y_i - \\hat y_i)^2 / \\sum_i (y_i - \\bar y)^2`.

    Per output column, then averaged over columns. A column with constant target (zero total
    sum of squares, e.g. N = 1) gives NaN: R² is undefined there.
    """
    p, t = point_inputs(pred, target)
    if p.dim() == 1:
        p, t = p.unsqueeze(1), t.unsqueeze(1)
    ss_res = squared_error(p, t).sum(dim=0)
    ss_tot = (t - t.mean(dim=0)).pow(2).sum(dim=0)
    score = 1 - ss_res / torch.where(ss_tot > 0, ss_tot, torch.ones_like(ss_tot))
    score = torch.where(ss_tot > 0, score, torch.full_like(score, float("nan")))
    return score.mean()


def gmean_error(pred: Any, target: Any, eps: float = GMEAN_EPS) -> Tensor:
    """Geometric mean of the absolute errors :math:`\\exp(\\frac1N \\sum_i \\log |\\hat y_i - y_i|)`.

    The "GM" of the imbalanced-regression benchmarks (``scipy.stats.gmean`` of the errors). An
    error of exactly 0 would make it 0, so exact zeros are replaced by ``eps`` (1e-10, as the
    STS-B code); ``eps=0`` gives scipy's value (0 when any error is 0). In label units.
    """
    check_positive(eps, "eps", allow_zero=True)
    p, t = point_inputs(pred, target)
    return torch.exp(log_absolute_error(p, t, eps).mean())


__all__ = ["GMEAN_EPS", "absolute_error", "gmean_error", "log_absolute_error", "mae", "mse", "r2", "rmse"]
