"""Inverse-variance weighting: IV, batch inverse-variance (BIV), effective batch size, automatic ε.

References:
    Mai, Khamies, Paull. *Batch Inverse-Variance Weighting: Deep Heteroscedastic Regression*.
    ICML 2021 UDL workshop, arXiv:2107.04497.

Notation: a mini-batch of K samples, residual :math:`e_k = \\hat y_k - \\tilde y_k`, label-noise
variance :math:`\\sigma_k^2` (in the units the loss sees: normalised label units when labels are
z-scored), weight :math:`w_k = 1/(\\sigma_k^2 + \\varepsilon)`.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from hetreg._validation import align_per_sample, check_positive, check_variance
from hetreg.losses.base import RegressionLoss
from hetreg.losses.mse import _prepare, squared_error
from hetreg.losses.reduction import reduce_terms


def _inverse_variance_weights(pred: Tensor, variance: Tensor, eps: float) -> Tensor:
    variance = align_per_sample(variance, pred, "variance")
    check_variance(variance)
    check_positive(float(eps), "eps", allow_zero=True)
    if eps == 0 and (variance == 0).any():
        raise ValueError(
            "a variance is exactly 0 and eps=0, so its inverse-variance weight is infinite; "
            "use eps > 0 (e.g. eps=0.1, or eps='auto' with a minimum effective batch size)"
        )
    return 1.0 / (variance.to(pred.dtype) + eps)


def iv_loss(
    pred: Tensor,
    target: Tensor,
    variance: Tensor,
    eps: float = 0.0,
    *,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Inverse-variance weighted MSE, not normalised by the batch:

    .. math:: L_{IV} = \\frac{1}{K} \\sum_k u_k \\frac{e_k^2}{\\sigma_k^2 + \\varepsilon}

    The gradient scale grows like :math:`1/\\sigma^2`: near-zero variances blow up the effective
    learning rate, which is what BIV fixes.

    Args:
        pred, target: shape (N,), (N, 1) or (N, d), same shape.
        variance: label-noise variance per sample, shape (N,), (N, 1) or that of ``pred``,
            finite and >= 0, in squared label units.
        eps: ε >= 0 added to every variance (same units). ε = 0 with a zero variance raises.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        weight: optional extra per-sample weights :math:`u_k` (e.g. LDS).
    """
    u = _prepare(pred, target, weight, reduction)
    w = _inverse_variance_weights(pred, variance, eps)
    return reduce_terms(w * squared_error(pred, target), reduction, u)


def biv_loss(
    pred: Tensor,
    target: Tensor,
    variance: Tensor,
    eps: float = 0.1,
    *,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Batch inverse-variance loss, the IV weights normalised over the mini-batch:

    .. math:: L_{BIV} = \\frac{\\sum_k u_k w_k e_k^2}{\\sum_k u_k w_k}, \\quad w_k = \\frac{1}{\\sigma_k^2 + \\varepsilon}

    It equals the MSE when all variances are equal, tends to the MSE as ε → ∞, and with ε = 0 it
    is invariant to a common scale of the variances. Its gradient, :math:`2 w_k e_k / \\sum_j w_j`,
    stays at MSE scale whatever the size of the variances.

    ``reduction="none"`` returns the normalised element-wise terms
    :math:`u_k w_k e_k^2 / \\sum_j u_j w_j`, which sum to the loss; ``"mean"`` and ``"sum"`` both
    return that sum (the loss is already a weighted mean over the batch). For (N, d) predictions
    the normaliser runs over all N·d elements, so a per-sample variance weighs each dimension alike.

    Args:
        pred, target: shape (N,), (N, 1) or (N, d), same shape.
        variance: per-sample label-noise variance (see :func:`iv_loss`).
        eps: ε >= 0, in the units of ``variance``. The original command line's default is 0.1.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        weight: optional extra per-sample weights :math:`u_k` (e.g. LDS).
    """
    u = _prepare(pred, target, weight, reduction)
    w = _inverse_variance_weights(pred, variance, eps)
    if u is not None:
        w = w * u
    w = w.expand_as(pred)
    total = w.sum()
    if total == 0:
        raise ValueError("all per-sample weights are zero, so the BIV normaliser is zero; check `weight`")
    terms = w * squared_error(pred, target) / total
    return terms if reduction == "none" else terms.sum()


# ---------------------------------------------------------------------------------------------
# Effective batch size and automatic ε
# ---------------------------------------------------------------------------------------------


def _as_float64(x: float | Tensor) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _ebs_numpy(variance: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """EBS over the last axis, for float64 arrays; ``eps`` broadcasts over the leading axes.

    Weights are rescaled by the smallest σ²+ε of each row, so a zero variance with ε = 0 gives
    the limit value (the number of zero-variance samples) instead of inf/inf.
    """
    s = variance + eps[..., None]
    m = s.min(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(m > 0, m / np.where(s > 0, s, 1.0), (s == 0).astype(np.float64))
    return w.sum(axis=-1) ** 2 / (w**2).sum(axis=-1)


def effective_batch_size(variance: Tensor, eps: float | Tensor = 0.0) -> Tensor:
    """Effective batch size of inverse-variance weights:

    .. math:: \\mathrm{EBS} = \\frac{(\\sum_k w_k)^2}{\\sum_k w_k^2}, \\quad w_k = \\frac{1}{\\sigma_k^2 + \\varepsilon}

    It lies in [1, N]: N when all weights are equal, near 1 when one sample dominates. It is
    non-decreasing in ε and tends to N as ε → ∞. With ε = 0 and some zero variances it takes its
    limit value, the number of zero-variance samples.

    Args:
        variance: shape (N,) or (..., N): the EBS is taken over the last axis.
        eps: ε >= 0, a float or a tensor broadcastable to the leading shape.

    Returns:
        float64 tensor with the leading shape of ``variance`` (a scalar for a 1-D input).
    """
    if variance.dim() == 0 or variance.shape[-1] == 0:
        raise ValueError(f"variance must have shape (N,) or (..., N) with N >= 1, got {tuple(variance.shape)}")
    check_variance(variance)
    v = variance.detach().cpu().double().numpy()
    e = np.broadcast_to(_as_float64(eps), v.shape[:-1])
    if (e < 0).any() or np.isnan(e).any():
        raise ValueError(f"eps must be >= 0, got {eps}")
    return torch.from_numpy(np.asarray(_ebs_numpy(v, np.asarray(e, dtype=np.float64))))


def _solve_epsilon_numpy(v: np.ndarray, target: np.ndarray, rtol: float) -> np.ndarray:
    """Vectorised bracketed root finding of EBS(ε) = target over the rows of ``v``."""
    lead = v.shape[:-1]
    eps = np.zeros(lead)
    done = _ebs_numpy(v, eps) >= target * (1 - 1e-12)
    if done.all():
        return eps
    scale = np.where(v.max(axis=-1) > 0, v.max(axis=-1), 1.0)
    # Bracket in t = log(ε): f(lo) < 0 <= f(hi).
    hi = np.log(scale)
    for _ in range(2100):
        ok = done | (_ebs_numpy(v, np.exp(hi)) >= target)
        if ok.all():
            break
        hi = np.where(ok, hi, hi + 2.0)
    lo = hi - 2.0
    for _ in range(2100):
        below = done | (_ebs_numpy(v, np.exp(lo)) < target) | (lo < -700)
        if below.all():
            break
        hi = np.where(below, hi, lo)
        lo = np.where(below, lo, lo - 2.0)
    f_lo = np.where(lo < -700, -1.0, _ebs_numpy(v, np.exp(lo)) - target)
    f_hi = _ebs_numpy(v, np.exp(hi)) - target
    # Illinois false position in log-space, with a bisection step every third iteration so the
    # bracket shrinks geometrically whatever the shape of the function.
    tol = math.log1p(rtol)
    side = np.zeros(lead)
    for it in range(400):
        active = ~done & (hi - lo > tol)
        if not active.any():
            break
        if it % 3 == 2:
            mid = 0.5 * (lo + hi)
        else:
            denom = f_hi - f_lo
            mid = np.where(denom > 0, hi - f_hi * (hi - lo) / np.where(denom > 0, denom, 1.0), 0.5 * (lo + hi))
            inside = (mid > lo) & (mid < hi)
            mid = np.where(inside, mid, 0.5 * (lo + hi))
        f_mid = _ebs_numpy(v, np.exp(mid)) - target
        up = active & (f_mid >= 0)
        down = active & (f_mid < 0)
        hi = np.where(up, mid, hi)
        f_hi = np.where(up, f_mid, f_hi)
        lo = np.where(down, mid, lo)
        f_lo = np.where(down, f_mid, f_lo)
        # Illinois: halve the function value of an endpoint kept twice in a row.
        f_lo = np.where(up & (side == 1), f_lo / 2, f_lo)
        f_hi = np.where(down & (side == -1), f_hi / 2, f_hi)
        side = np.where(up, 1, np.where(down, -1, side))
    return np.where(done, 0.0, np.exp(hi))


def solve_epsilon(variance: Tensor, min_ebs: float | Tensor, *, rtol: float = 1e-7) -> Tensor:
    """Smallest ε >= 0 whose effective batch size reaches ``min_ebs``.

    EBS(ε) is non-decreasing in ε (see :func:`effective_batch_size`), so the solution is found by
    a vectorised bracketed solver (bracket expansion, then Illinois false position mixed with
    bisection in log ε), exact to ``rtol`` relative. If EBS(0) already reaches the target, ε = 0.
    This replaces the Nelder–Mead search of the IV-RL follow-up (Mai et al. 2022).

    Args:
        variance: shape (N,) or (..., N); one ε is solved per row.
        min_ebs: the target, in [1, N]. A target of exactly N is reachable only when all
            variances in the row are equal (otherwise EBS < N for every finite ε).

    Returns:
        float64 tensor of ε with the leading shape of ``variance``.
    """
    if variance.dim() == 0 or variance.shape[-1] == 0:
        raise ValueError(f"variance must have shape (N,) or (..., N) with N >= 1, got {tuple(variance.shape)}")
    check_variance(variance)
    v = variance.detach().cpu().double().numpy()
    n = v.shape[-1]
    target = np.broadcast_to(_as_float64(min_ebs), v.shape[:-1])
    if np.isnan(target).any() or (target < 1).any() or (target > n).any():
        raise ValueError(f"min_ebs must lie in [1, N] = [1, {n}], got {min_ebs}")
    equal = (v.max(axis=-1) == v.min(axis=-1))
    if ((target >= n) & ~equal).any():
        raise ValueError(
            f"min_ebs = N = {n} is reached only when all variances are equal (EBS < N for every finite eps); "
            "ask for less, e.g. N - 1 or a fraction such as 0.9 * N"
        )
    return torch.from_numpy(np.asarray(_solve_epsilon_numpy(v, np.asarray(target, dtype=np.float64), rtol)))


class IVLoss(RegressionLoss):
    """Module face of :func:`iv_loss`; keeps ε."""

    needs_label_variance = True

    def __init__(self, eps: float = 0.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        check_positive(float(eps), "eps", allow_zero=True)
        self.eps = float(eps)

    def forward(self, pred: Tensor, target: Tensor, variance: Tensor, weight: Tensor | None = None) -> Tensor:
        return iv_loss(pred, target, variance, self.eps, reduction=self.reduction, weight=weight)

    def extra_repr(self) -> str:
        return f"eps={self.eps}, reduction={self.reduction!r}"


class BIVLoss(RegressionLoss):
    """Module face of :func:`biv_loss`, with an optional automatic ε.

    Args:
        eps: a fixed ε >= 0, or ``"auto"`` to solve, per batch and without gradient, the
            smallest ε whose effective batch size reaches ``min_ebs`` (:func:`solve_epsilon`).
        min_ebs: with ``eps="auto"``: an ``int`` is an absolute effective batch size; a ``float``
            in (0, 1] is a fraction of the batch size (the scikit-learn convention). The target is
            capped at N - 1 for a batch of N >= 2 samples with unequal variances.
        reduction: see :func:`biv_loss`.

    After each call, :attr:`last_ebs` and :attr:`last_eps` (and :attr:`records`) hold the
    effective batch size of the weights used and the ε used.
    """

    needs_label_variance = True

    def __init__(
        self,
        eps: float | Literal["auto"] = 0.1,
        min_ebs: float | int | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        if eps == "auto":
            if min_ebs is None:
                raise ValueError("eps='auto' needs min_ebs: an int (absolute) or a float in (0, 1] (fraction of the batch)")
            if isinstance(min_ebs, numbers.Integral) and not isinstance(min_ebs, bool):
                if min_ebs < 1:
                    raise ValueError(f"an absolute min_ebs must be >= 1, got {min_ebs}")
            elif not (0 < float(min_ebs) <= 1):
                raise ValueError(
                    f"a fractional min_ebs must lie in (0, 1], got {min_ebs}; pass an int for an absolute size"
                )
        elif isinstance(eps, str):
            raise ValueError(f"eps must be a number >= 0 or 'auto', got {eps!r}")
        else:
            check_positive(float(eps), "eps", allow_zero=True)
            if min_ebs is not None:
                raise ValueError("min_ebs is used only with eps='auto'")
        self.eps = eps if eps == "auto" else float(eps)
        self.min_ebs = min_ebs

    def _target(self, n: int) -> float:
        assert self.min_ebs is not None
        if isinstance(self.min_ebs, numbers.Integral) and not isinstance(self.min_ebs, bool):
            target = float(self.min_ebs)
        else:
            target = float(self.min_ebs) * n
        return max(1.0, min(target, n - 1.0)) if n >= 2 else 1.0

    def forward(self, pred: Tensor, target: Tensor, variance: Tensor, weight: Tensor | None = None) -> Tensor:
        if self.eps == "auto":
            flat = variance.detach().reshape(variance.shape[0], -1)[:, 0]
            check_variance(flat)
            n = flat.shape[0]
            if n >= 2 and bool((flat.max() == flat.min()).item()):
                eps = 0.0 if bool((flat.min() > 0).item()) else 1.0
            else:
                eps = float(solve_epsilon(flat, self._target(n)))
            if eps == 0.0 and bool((flat == 0).any().item()):
                # EBS(0) already meets the target thanks to exact (zero-variance) labels; BIV at
                # eps -> 0+ weighs only those, which a tiny relative eps reproduces without inf/inf.
                eps = 1e-12 * max(float(flat.max()), 1e-30)
        else:
            eps = self.eps
        loss = biv_loss(pred, target, variance, eps, reduction=self.reduction, weight=weight)
        with torch.no_grad():
            w = 1.0 / (align_per_sample(variance, pred, "variance").detach().to(torch.float64) + eps)
            if weight is not None:
                w = w * align_per_sample(weight, pred, "weight").detach().to(torch.float64)
            w = w.reshape(w.shape[0], -1)[:, 0]
            ebs = w.sum() ** 2 / (w**2).sum()
        self._record(ebs=ebs, eps=eps)
        return loss

    @property
    def last_ebs(self) -> float | None:
        return self.records.get("ebs")

    @property
    def last_eps(self) -> float | None:
        return self.records.get("eps")

    def extra_repr(self) -> str:
        extra = f", min_ebs={self.min_ebs}" if self.eps == "auto" else ""
        return f"eps={self.eps!r}{extra}, reduction={self.reduction!r}"
