"""Cutoff MSE: the filtering baseline of Mai et al., MSE over the labels whose variance is below a threshold."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hetreg._validation import align_per_sample, check_positive, variance_extremes
from hetreg.losses.base import RegressionLoss
from hetreg.losses.mse import _prepare, squared_error
from hetreg.losses.reduction import reduce_terms


def cutoff_mask(variance: Tensor, threshold: float) -> Tensor:
    """Boolean mask of the samples kept by the cutoff: :math:`\\sigma_k^2 < \\tau` (strict)."""
    return variance < threshold


def cutoff_mse_loss(
    pred: Tensor,
    target: Tensor,
    variance: Tensor,
    threshold: float,
    *,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """MSE over the samples whose label variance is strictly below ``threshold``:

    .. math:: L = \\frac{1}{K'} \\sum_{k:\\, \\sigma_k^2 < \\tau} u_k e_k^2

    with :math:`K'` the number of kept elements. When no sample is kept, the loss is a zero that
    keeps the autograd graph (its gradients are zero), never a sentinel, so a training step
    runs as usual and changes nothing but the optimizer's internal state.

    ``reduction="none"`` returns the element-wise terms with zeros for dropped samples.

    Args:
        pred, target: shape (N,), (N, 1) or (N, d), same shape.
        variance: per-sample label-noise variance (finite, >= 0), shape (N,), (N, 1) or that of ``pred``.
        threshold: τ > 0, in the units of ``variance`` (scale it by :math:`1/s_y^2` when labels are z-scored).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        weight: optional per-sample weights.
    """
    return _cutoff(pred, target, variance, threshold, reduction, weight)[0]


def _cutoff(
    pred: Tensor, target: Tensor, variance: Tensor, threshold: float, reduction: str, weight: Tensor | None
) -> tuple[Tensor, Tensor, int]:
    """:func:`cutoff_mse_loss`, its mask (aligned with ``pred``, not expanded) and the number
    of kept elements."""
    u = _prepare(pred, target, weight, reduction)
    variance = align_per_sample(variance, pred, "variance")
    variance_extremes(variance)
    check_positive(float(threshold), "threshold")
    keep = cutoff_mask(variance, threshold)
    expanded = keep.expand_as(pred)
    terms = torch.where(expanded, squared_error(pred, target), torch.zeros((), dtype=pred.dtype, device=pred.device))
    kept = int(expanded.sum())
    return reduce_terms(terms, reduction, u, count=float(max(kept, 1))), keep, kept


class CutoffMSELoss(RegressionLoss):
    """Module face of :func:`cutoff_mse_loss`; keeps τ and records the kept fraction.

    After each call :attr:`records` holds ``kept_fraction`` (kept samples / batch size), and
    :attr:`empty_batches` counts the calls in which nothing was kept.
    """

    needs_label_variance = True

    def __init__(self, threshold: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        check_positive(float(threshold), "threshold")
        self.threshold = float(threshold)
        self.empty_batches = 0

    def forward(self, pred: Tensor, target: Tensor, variance: Tensor, weight: Tensor | None = None) -> Tensor:
        loss, keep, kept = _cutoff(pred, target, variance, self.threshold, self.reduction, weight)
        n = keep.shape[0]
        if pred.numel() != n:  # several outputs per sample: count samples, by their first output
            kept = int(keep.reshape(n, -1)[:, 0].sum())
        if kept == 0:
            self.empty_batches += 1
        self._record(kept_fraction=kept / n if n else math.nan)
        return loss

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, reduction={self.reduction!r}"
