"""Mean squared error with optional per-sample weights."""

from __future__ import annotations

from torch import Tensor

from hetreg._validation import (
    align_per_sample,
    check_batch,
    check_reduction,
    check_same_shape,
    check_tensor,
    check_weight,
)
from hetreg.losses.base import RegressionLoss
from hetreg.losses.reduction import reduce_terms


def _prepare(pred: Tensor, target: Tensor, weight: Tensor | None, reduction: str) -> Tensor | None:
    """Validate the common arguments of every regression loss; return the aligned weight."""
    check_tensor(pred, "pred")
    check_tensor(target, "target")
    check_batch(pred, "pred")
    check_same_shape(pred, target)
    check_reduction(reduction)
    if weight is None:
        return None
    weight = align_per_sample(weight, pred, "weight")
    check_weight(weight)
    return weight.to(pred.dtype)


def squared_error(pred: Tensor, target: Tensor) -> Tensor:
    """Element-wise :math:`e^2` with :math:`e = \\hat y - y`."""
    return (pred - target).pow(2)


def mse_loss(pred: Tensor, target: Tensor, *, reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """Mean squared error :math:`L = \\frac{1}{N}\\sum_k u_k (\\hat y_k - y_k)^2`.

    Args:
        pred: predictions, shape (N,), (N, 1) or (N, d), in label units.
        target: labels, same shape as ``pred``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (element-wise terms).
        weight: optional per-sample weights :math:`u_k \\ge 0`, shape (N,) or that of ``pred``
            (e.g. LDS weights). Omitted weights are 1.

    Returns:
        The loss, in squared label units.
    """
    weight = _prepare(pred, target, weight, reduction)
    return reduce_terms(squared_error(pred, target), reduction, weight)


class MSELoss(RegressionLoss):
    """Module face of :func:`mse_loss`."""

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return mse_loss(pred, target, reduction=self.reduction, weight=weight)
