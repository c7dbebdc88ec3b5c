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
from collections import deque
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from hetreg._validation import align_per_sample, check_positive, check_variance, variance_extremes
from hetreg.losses.base import RegressionLoss
from hetreg.losses.mse import _prepare, squared_error
from hetreg.losses.reduction import reduce_terms


def _variance_numpy(variance: Tensor) -> np.ndarray:
    """The variances as a float64 numpy array, checked like :func:`check_variance`."""
    return _variance_range(variance)[0]


def _variance_range(variance: Tensor) -> tuple[np.ndarray, float, float]:
    """The variances as a float64 numpy array, checked (:func:`variance_extremes`), with their
    smallest and largest value (NaN for no variances)."""
    low, high = variance_extremes(variance)
    x = variance.detach() if variance.requires_grad else variance
    if x.device.type != "cpu":
        x = x.cpu()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.double()
    return x.numpy().astype(np.float64, copy=False), low, high


def _check_eps(eps: float, v: np.ndarray) -> None:
    check_positive(float(eps), "eps", allow_zero=True)
    if eps == 0 and (v == 0).any():
        raise ValueError(
            "a variance is exactly 0 and eps=0, so its inverse-variance weight is infinite; "
            "use eps > 0 (e.g. eps=0.1, or eps='auto' with a minimum effective batch size)"
        )


def _inverse_variance_weights(pred: Tensor, variance: Tensor, eps: float) -> Tensor:
    variance = align_per_sample(variance, pred, "variance")
    _check_eps(eps, _variance_numpy(variance))
    return _reciprocal(variance, eps, pred.dtype)


def _reciprocal(variance: Tensor, eps: float, dtype: torch.dtype) -> Tensor:
    """:math:`1/(\\sigma^2 + \\varepsilon)` in ``dtype`` (no conversion when already in it)."""
    return torch.reciprocal((variance if variance.dtype == dtype else variance.to(dtype)) + eps)


def _normalised_terms(pred: Tensor, target: Tensor, variance: Tensor, eps: float, u: Tensor | None, reduction: str) -> Tensor:
    """BIV from the variances (aligned with ``pred``) and optional weights ``u``, in torch (the
    path for variances or weights that carry a gradient).

    The weights are :math:`1/(\\sigma_k^2+\\varepsilon)`; when that overflows (a σ²+ε below about
    1/max float, e.g. a subnormal variance with ε = 0) they are rescaled to
    :math:`c/(\\sigma_k^2+\\varepsilon)` with :math:`c = \\min_j \\sigma_j^2+\\varepsilon` (a
    constant, without gradient), which BIV's ratio does not see."""
    s = (variance if variance.dtype == pred.dtype else variance.to(pred.dtype)) + eps

    def weights(w: Tensor) -> Tensor:
        if u is not None:
            w = w * u
        return w if w.shape == pred.shape else w.expand_as(pred)

    w = weights(torch.reciprocal(s))
    total = w.sum()
    if not bool(torch.isfinite(total)):
        w = weights(s.detach().min() / s)
        total = w.sum()
    # Without u, every w = 1/(σ² + ε) is > 0 (σ² finite), so only extra weights can zero the sum.
    if u is not None and total == 0:
        raise ValueError("all per-sample weights are zero, so the BIV normaliser is zero; check `weight`")
    terms = w * squared_error(pred, target) / total
    return terms if reduction == "none" else terms.sum()


def biv_factors(v: np.ndarray, eps: float | np.ndarray, u: np.ndarray | None = None) -> np.ndarray:
    """The normalised BIV weights :math:`w_k / \\sum_j w_j`, :math:`w_k = u_k / (\\sigma_k^2 + \\varepsilon)`,
    in float64, over the last axis (one normalisation per row of a 2-D ``v``).

    This is where BIV's weights are computed whenever they carry no gradient: in float64 (the
    variances are data), so the loss itself is two float32 operations, :math:`\\sum_k f_k e_k^2`.
    The row sums are numpy's pairwise sums, the same for a row of a 2-D array as for a 1-D array,
    so a batched group of runs gets each run's factors bit for bit.

    A row whose reciprocals or their sum overflow (a σ²+ε below about 1e-308, e.g. a subnormal
    variance with ε = 0) is computed as :math:`c/(\\sigma_k^2+\\varepsilon)` with
    :math:`c = \\min_j \\sigma_j^2+\\varepsilon` instead: the same factors, without inf/inf.

    Args:
        v: variances (float64, finite, >= 0), shape (..., N).
        eps: ε, a float or an array broadcasting against ``v`` (e.g. (K, 1)).
        u: optional extra weights (float64), shaped like ``v``.
    """
    s = v + eps
    with np.errstate(over="ignore"):
        w = 1.0 / s
        if u is not None:
            w = w * u
        total = w.sum(axis=-1, keepdims=True)
    overflow = ~np.isfinite(total)
    if overflow.any():  # a reciprocal or a sum overflows: rescale those rows by their min σ²+ε
        rescaled = s.min(axis=-1, keepdims=True) / s
        if u is not None:
            rescaled = rescaled * u
        w = np.where(overflow, rescaled, w)
        total = w.sum(axis=-1, keepdims=True)
    if u is not None and (total == 0).any():
        raise ValueError("all per-sample weights are zero, so the BIV normaliser is zero; check `weight`")
    return w / total


_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


class _FactorWeightedSum(torch.autograd.Function):
    """:math:`\\sum_k f_k (\\hat y_k - y_k)^2` for constant factors f, with its gradient
    :math:`2 f_k (\\hat y_k - y_k)` written out.

    The operations are autograd's for ``(f * (pred - target).pow(2)).sum()`` in the same order
    (forward: the difference, its square, the product, the sum; backward: the upstream gradient
    times f, times 2e), so values and gradients are equal bit for bit, with one graph node
    instead of four."""

    @staticmethod
    def forward(ctx, pred: Tensor, target: Tensor, factors: Tensor) -> Tensor:  # type: ignore[override]
        e = pred - target
        ctx.save_for_backward(e, factors)
        return (factors * (e * e)).sum()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        e, factors = ctx.saved_tensors
        g = (grad * factors) * (e * 2)
        return (
            g if ctx.needs_input_grad[0] else None,
            -g if ctx.needs_input_grad[1] else None,
            None,
        )


def _biv_terms(
    pred: Tensor, target: Tensor, variance: Tensor, v: np.ndarray, eps: float, u: Tensor | None, reduction: str
) -> tuple[Tensor, np.ndarray | None]:
    """BIV's terms, and the float64 factors (``None`` on the torch path); ``variance`` aligned
    with ``pred``, ``v`` its checked float64 copy."""
    if variance.requires_grad or (u is not None and u.requires_grad):
        return _normalised_terms(pred, target, variance, eps, u, reduction), None
    shape = tuple(pred.shape)
    if v.shape != shape:
        v = np.broadcast_to(v, shape)
    u64 = None if u is None else np.broadcast_to(u.detach().cpu().double().numpy(), shape)
    flat = biv_factors(v.reshape(1, -1), eps, None if u64 is None else u64.reshape(1, -1))
    dtype = _NUMPY_DTYPES.get(pred.dtype)
    factors = torch.from_numpy(flat.astype(dtype)) if dtype is not None else torch.from_numpy(flat).to(pred.dtype)
    if factors.device != pred.device:
        factors = factors.to(pred.device)
    if reduction == "none":
        return factors.view(shape) * squared_error(pred, target), flat
    return _FactorWeightedSum.apply(pred, target, factors.view(shape)), flat


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
    variance = align_per_sample(variance, pred, "variance")
    v = _variance_numpy(variance)
    _check_eps(eps, v)
    return _biv_terms(pred, target, variance, v, eps, u, reduction)[0]


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


#: Largest step of the solver in t = log ε (a factor e^8 ≈ 3000 in ε) while the root is unbracketed.
_MAX_LOG_STEP = 8.0
#: Range of t = log ε the solver visits; below it ε counts as 0 (EBS below the target), above it
#: every finite variance is negligible next to ε (EBS = N).
_LOG_EPS_MIN, _LOG_EPS_MAX = -700.0, 700.0


def _log_ebs_and_slope(v: np.ndarray, v_min: float, eps: float, buf: np.ndarray | None = None) -> tuple[float, float]:
    """:math:`\\log \\mathrm{EBS}(\\varepsilon)` and its derivative in :math:`t = \\log\\varepsilon`, for ε > 0.

    With :math:`S_j = \\sum_k w_k^j` and :math:`dw_k/d\\varepsilon = -w_k^2`:

    .. math:: \\frac{d \\log \\mathrm{EBS}}{d t} = 2\\varepsilon\\Big(\\frac{S_3}{S_2} - \\frac{S_2}{S_1}\\Big) \\ge 0

    (Cauchy-Schwarz). The weights are rescaled by :math:`c = \\min_k \\sigma_k^2 + \\varepsilon`
    (``v_min`` is the smallest variance) into (0, 1] so nothing overflows; the ratios then carry a
    factor c, divided out. ``buf``: optional (3, N) scratch whose first row is ones, so that
    the three sums are one matrix-vector product.
    """
    c = v_min + eps
    if buf is None:
        buf = _ebs_buffer(v.shape[0])
    w = buf[1]
    np.add(v, eps, out=w)
    np.divide(c, w, out=w)
    np.multiply(w, w, out=buf[2])
    s1, s2, s3 = (buf @ w).tolist()
    return math.log(s1 * s1 / s2), 2.0 * eps / c * (s3 / s2 - s2 / s1)


def _ebs_buffer(n: int) -> np.ndarray:
    buf = np.empty((3, n))
    buf[0] = 1.0
    return buf


def _solve_epsilon_row(v: np.ndarray, target: float, rtol: float, v_min: float | None = None) -> float:
    """Smallest ε >= 0 with EBS(ε) >= ``target`` for one row ``v`` (float64, shape (N,)).

    ε = 0 when EBS(0) already reaches the target (with zero variances, EBS(0) is their number).
    Otherwise, safeguarded Newton on :math:`g(t) = \\log\\mathrm{EBS}(e^t) - \\log T` (non-decreasing in t),
    keeping a bracket ``lo < root <= hi`` with g(lo) < 0 <= g(hi):

    * start at t = log of the ⌈T⌉-th smallest variance (EBS(σ²₍ₖ₎) is of the order of k);
    * each Newton step overshoots its root estimate by 0.4·tol, so once Newton is accurate the
      next point lands on the other side and the bracket closes from both ends;
    * a step leaving the bracket, longer than :data:`_MAX_LOG_STEP`, or (once both ends are
      finite) not shrinking fast enough (more than half the previous step) is replaced by
      bisection, or by a step of :data:`_MAX_LOG_STEP` towards the root while one end is still
      unbounded.

    It stops when ``hi - lo <= log1p(rtol)`` and returns exp(hi): EBS reaches the target there
    and ε is exact to ``rtol`` relative. Typically 5-8 evaluations of EBS; never worse than bisection.
    ``v_min``: ``v.min()`` when the caller has it.
    """
    if v_min is None:
        v_min = float(v.min())
    buf = _ebs_buffer(v.shape[0])
    if v_min > 0:
        if _log_ebs_and_slope(v, v_min, 0.0, buf)[0] >= math.log(target * (1 - 1e-12)):
            return 0.0
    elif float(np.count_nonzero(v == 0)) >= target * (1 - 1e-12):  # EBS(0) = number of exact labels
        return 0.0
    tol = math.log1p(rtol)
    log_target = math.log(target)
    k = min(max(math.ceil(target) - 1, 0), v.shape[0] - 1)
    start = float(np.partition(v, k)[k])
    t = math.log(start if start > 0 else float(v.max()))
    lo, hi = -math.inf, math.inf
    last_step = math.inf
    while True:
        if t < _LOG_EPS_MIN:
            g, slope = -1.0, 0.0  # ε is 0 at float precision: EBS(0) < target
        else:
            log_ebs, slope = _log_ebs_and_slope(v, v_min, math.exp(t), buf)
            g = log_ebs - log_target
        if g >= 0:
            hi = t
        else:
            lo = t
        if hi - lo <= tol:
            return math.exp(hi)
        towards_root = 1.0 if g < 0 else -1.0
        new = math.nan
        if slope > 0 and math.isfinite(slope):
            step = -g / slope + towards_root * 0.4 * tol
            # within a closed bracket a step must also shrink (or bisection takes over); while an
            # end is unbounded, any Newton step up to the longest one goes
            bracketed = not (math.isinf(lo) or math.isinf(hi))
            if abs(step) <= _MAX_LOG_STEP and (not bracketed or abs(step) <= 0.5 * last_step + tol):
                new = t + step
        if not lo < new < hi:  # also when new is NaN (no Newton step)
            if math.isinf(lo) or math.isinf(hi):
                new = min(t + towards_root * _MAX_LOG_STEP, _LOG_EPS_MAX)
            else:
                new = 0.5 * (lo + hi)
        last_step = abs(new - t)
        t = new


def _solve_epsilon_numpy(v: np.ndarray, target: np.ndarray, rtol: float) -> np.ndarray:
    """ε for every row of ``v`` (float64, shape (..., N)), one row after the other."""
    lead = v.shape[:-1]
    rows = v.reshape(-1, v.shape[-1])
    targets = np.broadcast_to(target, lead).reshape(-1)
    eps = np.array([_solve_epsilon_row(row, float(t), rtol) for row, t in zip(rows, targets)], dtype=np.float64)
    return eps.reshape(lead)


def solve_epsilon(variance: Tensor, min_ebs: float | Tensor, *, rtol: float = 1e-7) -> Tensor:
    """Smallest ε >= 0 whose effective batch size reaches ``min_ebs``.

    EBS(ε) is non-decreasing in ε (see :func:`effective_batch_size`), so the solution is found by
    a bracketed root finder in log ε (safeguarded Newton with the analytic derivative, falling
    back to bisection), exact to ``rtol`` relative: the returned ε reaches the target and
    ε / (1 + rtol) does not. If EBS(0) already reaches the target, ε = 0. Rows are solved one
    after the other (a few EBS evaluations each). This replaces the Nelder–Mead search of the
    IV-RL follow-up (Mai et al. 2022).

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
        # planned calls: (variance tensor, eps, its checked float64 copy)
        self._plan: deque[tuple[Tensor, float, np.ndarray]] = deque()

    @property
    def plans_ahead(self) -> bool:
        return self.eps == "auto"

    def plan(self, variances: Sequence[Tensor]) -> None:
        """Solve ahead the automatic ε of the coming calls (``eps="auto"``; else nothing).

        ``variances``: the label-variance tensors of the coming calls, in order, the very
        objects that will be passed (matched by identity; their values are read and checked
        here, so they must not change in between). A call with another tensor solves its own ε
        and drops the rest of the plan, so the results are the same with or without a plan.
        Solving a whole epoch's batches in one go is faster than one solve per training step,
        which leaves the solver's code and data out of the caches (on a small MLP, several times
        faster); a planned call also reuses the float64 copy of its variances made here.
        """
        self._plan.clear()
        if self.eps != "auto":
            return
        for variance in variances:
            if variance.dim() not in (1, 2) or variance.shape[0] == 0:
                return  # not a batch of variances: the call itself explains
            v, low, high = _variance_range(variance)
            per_sample = v.reshape(v.shape[0], -1)[:, 0]
            if per_sample.size != v.size:
                low, high = float(per_sample.min()), float(per_sample.max())
            self._plan.append((variance, self._auto_eps(per_sample, low, high), v))

    def _planned(self, variance: Tensor) -> tuple[float, np.ndarray] | None:
        """The planned ε of this call and the checked float64 copy of its variances, if the
        plan's next tensor is ``variance``."""
        if not self._plan:
            return None
        planned, eps, v = self._plan.popleft()
        if planned is not variance:
            self._plan.clear()
            return None
        return eps, v

    def _target(self, n: int) -> float:
        assert self.min_ebs is not None
        if isinstance(self.min_ebs, numbers.Integral) and not isinstance(self.min_ebs, bool):
            target = float(self.min_ebs)
        else:
            target = float(self.min_ebs) * n
        return max(1.0, min(target, n - 1.0)) if n >= 2 else 1.0

    def _auto_eps(self, v: np.ndarray, low: float, high: float) -> float:
        """ε of a batch for ``eps="auto"``, from one variance per sample (float64 (N,), checked)
        and their extremes."""
        n = v.shape[0]
        if n >= 2 and low == high:
            return 0.0 if low > 0 else 1.0
        eps = _solve_epsilon_row(v, self._target(n), 1e-7, low)
        if eps == 0.0 and low == 0:
            # EBS(0) already meets the target thanks to exact (zero-variance) labels; BIV at
            # eps -> 0+ weighs only those, which a tiny relative eps reproduces without inf/inf.
            eps = 1e-12 * max(high, 1e-30)
        return eps

    def forward(self, pred: Tensor, target: Tensor, variance: Tensor, weight: Tensor | None = None) -> Tensor:
        # biv_loss(pred, target, variance, eps, ...) with its checks, sharing the numpy copy of the
        # variances between the checks, the solver of eps="auto" and the EBS record.
        planned = self._planned(variance) if self._plan else None
        u = _prepare(pred, target, weight, self.reduction)
        variance = align_per_sample(variance, pred, "variance")
        if planned is not None:  # aligning is a view: the planned copy holds the same values
            eps, v = planned[0], planned[1].reshape(tuple(variance.shape))
            per_sample = v.reshape(v.shape[0], -1)[:, 0]
        else:
            v, low, high = _variance_range(variance)
            per_sample = v.reshape(v.shape[0], -1)[:, 0]
            if self.eps == "auto":
                if per_sample.size != v.size:  # one variance per element: ε from the first
                    low, high = float(per_sample.min()), float(per_sample.max())
                eps = self._auto_eps(per_sample, low, high)
            else:
                eps = self.eps
        _check_eps(eps, v)
        loss, factors = _biv_terms(pred, target, variance, v, eps, u, self.reduction)
        if factors is not None and factors.size == per_sample.size:
            # one factor f = w / sum(w) per sample: EBS = (sum w)^2 / sum w^2 = 1 / sum f^2
            ebs = float(1.0 / (factors[0] @ factors[0]))
        else:
            ebs_w = 1.0 / (per_sample + eps)
            if weight is not None:
                extra = align_per_sample(weight, pred, "weight").detach()
                ebs_w = ebs_w * extra.reshape(extra.shape[0], -1)[:, 0].cpu().double().numpy()
            ebs = float(ebs_w.sum() ** 2 / (ebs_w @ ebs_w))
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
