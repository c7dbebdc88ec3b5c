"""Heteroscedastic Gaussian negative log-likelihood and β-NLL, for models that predict a variance.

Variances are kept positive by parameterisation, never by clamping: a clamp has zero gradient
below its floor, so a variance that falls there can never recover (PyTorch's
``GaussianNLLLoss`` clamps). Use :func:`positive_variance` in a model head, and the losses add
a small ``var_floor`` to the variance they are given.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from hetreg._validation import align_per_sample, check_positive, check_variance
from hetreg.losses.base import RegressionLoss
from hetreg.losses.mse import _prepare, squared_error
from hetreg.losses.reduction import reduce_terms

LOG_2PI = math.log(2 * math.pi)


def positive_variance(raw: Tensor, *, kind: str = "softplus", floor: float = 1e-6) -> Tensor:
    """Map an unconstrained network output to a variance > ``floor`` with a live gradient.

    ``kind="softplus"``: :math:`\\mathrm{softplus}(r) + f`; ``kind="exp"`` (log-variance output):
    :math:`\\exp(r) + f`.
    """
    check_positive(floor, "floor", allow_zero=True)
    if kind == "softplus":
        return F.softplus(raw) + floor
    if kind == "exp":
        return torch.exp(raw) + floor
    raise ValueError(f"kind must be 'softplus' or 'exp', got {kind!r}")


def _nll_terms(mean: Tensor, var: Tensor, target: Tensor, var_floor: float, full: bool) -> tuple[Tensor, Tensor]:
    var = align_per_sample(var, mean, "var")
    check_variance(var, "var")
    check_positive(var_floor, "var_floor", allow_zero=True)
    if var_floor == 0 and (var == 0).any():
        raise ValueError("var contains zeros and var_floor=0; predict a positive variance or set var_floor > 0")
    v = var.to(mean.dtype) + var_floor
    terms = 0.5 * (torch.log(v) + squared_error(mean, target) / v)
    if full:
        terms = terms + 0.5 * LOG_2PI
    return terms, v


def gaussian_nll_loss(
    mean: Tensor,
    var: Tensor,
    target: Tensor,
    *,
    var_floor: float = 1e-6,
    full: bool = False,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Heteroscedastic Gaussian NLL (Nix & Weigend 1994; Kendall & Gal 2017):

    .. math:: \\ell_k = \\tfrac12 \\left( \\log v_k + \\frac{(y_k - \\mu_k)^2}{v_k} \\right) [+ \\tfrac12 \\log 2\\pi],
              \\quad v_k = \\mathrm{var}_k + \\text{var\\_floor}

    Args:
        mean: predicted mean, shape (N,), (N, 1) or (N, d).
        var: predicted variance (>= 0), shape (N,), (N, 1) or that of ``mean``, in squared label units.
        target: labels, same shape as ``mean``.
        var_floor: added to ``var`` (not a clamp, so the gradient stays alive).
        full: add the constant :math:`\\tfrac12\\log 2\\pi` (the exact NLL in nats).
        reduction, weight: see :func:`hetreg.losses.mse_loss`.

    The value can be negative (a density can exceed 1).
    """
    u = _prepare(mean, target, weight, reduction)
    terms, _ = _nll_terms(mean, var, target, var_floor, full)
    return reduce_terms(terms, reduction, u)


def beta_nll_loss(
    mean: Tensor,
    var: Tensor,
    target: Tensor,
    beta: float = 0.5,
    *,
    var_floor: float = 1e-6,
    full: bool = False,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """β-NLL (Seitzer et al., ICLR 2022): the Gaussian NLL weighted by a stop-gradient :math:`v^\\beta`:

    .. math:: \\ell_k = \\mathrm{sg}(v_k)^{\\beta} \\cdot \\tfrac12 \\left( \\log v_k + \\frac{(y_k - \\mu_k)^2}{v_k} \\right)

    β = 0 is the NLL; β = 1 gives the mean the gradient of the MSE. Arguments as in
    :func:`gaussian_nll_loss`; ``beta`` in [0, 1].
    """
    if not 0 <= beta <= 1:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    u = _prepare(mean, target, weight, reduction)
    terms, v = _nll_terms(mean, var, target, var_floor, full)
    return reduce_terms(terms * v.detach().pow(beta), reduction, u)


class GaussianNLLLoss(RegressionLoss):
    """Module face of :func:`gaussian_nll_loss`."""

    needs_predicted_variance = True

    def __init__(self, var_floor: float = 1e-6, full: bool = False, reduction: str = "mean") -> None:
        super().__init__(reduction)
        check_positive(var_floor, "var_floor", allow_zero=True)
        self.var_floor = float(var_floor)
        self.full = bool(full)

    def forward(self, mean: Tensor, var: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return gaussian_nll_loss(
            mean, var, target, var_floor=self.var_floor, full=self.full, reduction=self.reduction, weight=weight
        )


class BetaNLLLoss(RegressionLoss):
    """Module face of :func:`beta_nll_loss`."""

    needs_predicted_variance = True

    def __init__(self, beta: float = 0.5, var_floor: float = 1e-6, full: bool = False, reduction: str = "mean") -> None:
        super().__init__(reduction)
        if not 0 <= beta <= 1:
            raise ValueError(f"beta must lie in [0, 1], got {beta}")
        self.beta = float(beta)
        self.var_floor = float(var_floor)
        self.full = bool(full)

    def forward(self, mean: Tensor, var: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return beta_nll_loss(
            mean, var, target, self.beta, var_floor=self.var_floor, full=self.full, reduction=self.reduction, weight=weight
        )
