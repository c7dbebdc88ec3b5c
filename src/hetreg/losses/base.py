"""Common base of the loss modules: state, per-call records and a uniform call for trainers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from hetreg._validation import check_reduction


class RegressionLoss(nn.Module):
    """Base class of every loss module in :mod:`hetreg.losses`.

    A module keeps state (ε, σ, priors, the reduction) and calls its pure function. After each
    call, :attr:`records` holds the diagnostics of that call as floats (for example the effective
    batch size and ε of BIV, the kept fraction of the cutoff MSE, σ of Balanced MSE), so trainers
    can log them without knowing the loss.

    Class attributes tell a trainer what a loss needs:

    * ``needs_label_variance``: the known per-label noise variance (IV, BIV, cutoff);
    * ``needs_predicted_variance``: a model with a variance head (Gaussian NLL, β-NLL);
    * :attr:`plans_ahead`: the loss computes something from the label variances alone (BIV's
      automatic ε) and prefers to do it for all the batches of an epoch at once: a trainer that
      knows them then calls :meth:`plan` with the variance tensors it will pass, in order.
    """

    needs_label_variance: ClassVar[bool] = False
    needs_predicted_variance: ClassVar[bool] = False

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.reduction = reduction
        self._records: dict[str, Tensor | float] = {}

    @property
    def plans_ahead(self) -> bool:
        """Whether :meth:`plan` does anything (see the class docstring)."""
        return False

    def plan(self, variances: Sequence[Tensor]) -> None:
        """Compute ahead what the coming calls need from their label variances alone; the
        results of the calls are the same with or without a plan. The base class does nothing."""

    @property
    def records(self) -> dict[str, float]:
        """Diagnostics of the last call, as Python floats."""
        return {k: float(v.item()) if isinstance(v, Tensor) else float(v) for k, v in self._records.items()}

    def _record(self, **values: Tensor | float) -> None:
        for key, value in values.items():
            self._records[key] = value.detach() if isinstance(value, Tensor) else value

    def from_batch(
        self,
        pred: Tensor,
        target: Tensor,
        *,
        label_variance: Tensor | None = None,
        pred_variance: Tensor | None = None,
        weight: Tensor | None = None,
    ) -> Tensor:
        """Call the loss with whatever it needs from a training batch.

        ``pred`` is the predicted mean, ``label_variance`` the known noise variance of each
        label, ``pred_variance`` the variance predicted by a ``mean_var`` model head.
        """
        if self.needs_label_variance:
            if label_variance is None:
                raise ValueError(
                    f"{type(self).__name__} needs the noise variance of every label; "
                    "enable label noise or give the dataset a variance column"
                )
            return self(pred, target, label_variance, weight=weight)
        if self.needs_predicted_variance:
            if pred_variance is None:
                raise ValueError(
                    f"{type(self).__name__} needs a predicted variance; build the model with head='mean_var'"
                )
            return self(pred, pred_variance, target, weight=weight)
        return self(pred, target, weight=weight)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


def zero_with_grad(like: Tensor) -> Tensor:
    """A scalar zero that keeps the autograd graph of ``like`` (gradients are zero)."""
    return (like * 0).sum()


__all__ = ["RegressionLoss", "zero_with_grad", "torch"]
