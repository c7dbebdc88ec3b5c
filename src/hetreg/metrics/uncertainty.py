"""Metrics for models that predict a Gaussian: NLL, CRPS, interval coverage, calibration, sharpness.

Definitions follow uncertainty-toolbox (``nll_gaussian``, ``crps_gaussian``,
``mean_absolute_calibration_error``, ``sharpness``), re-implemented in torch. Every function
takes the predicted ``mean`` (shape (N,), (N, 1) or (N, d)), the predicted variance ``var``
(> 0; shape (N,), (N, 1) or that of ``mean``; squared label units) and ``target`` (shape of
``mean``), as torch tensors or numpy arrays, and averages over all elements.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from hetreg._validation import check_variance
from hetreg.losses.nll import gaussian_nll_loss
from hetreg.metrics._inputs import as_tensor, variance_inputs

INTERVAL_LEVELS = (0.5, 0.9, 0.95)


def gaussian_nll(mean: Any, var: Any, target: Any) -> Tensor:
    """Mean negative log-likelihood of the targets under :math:`\\mathcal N(\\mu, \\sigma^2)`, in nats.

    .. math:: \\frac1N \\sum_i \\tfrac12 \\left( \\log 2\\pi + \\log \\sigma_i^2 + \\frac{(y_i - \\mu_i)^2}{\\sigma_i^2} \\right)

    With the constant (``full``), no variance floor: equal to
    :func:`hetreg.losses.gaussian_nll_loss` with ``full=True, var_floor=0``.
    """
    m, v, t = variance_inputs(mean, var, target)
    return gaussian_nll_loss(m, v, t, var_floor=0.0, full=True)


def crps_gaussian(mean: Any, var: Any, target: Any) -> Tensor:
    """Mean continuous ranked probability score of Gaussian predictions (closed form), label units.

    .. math:: \\mathrm{CRPS}(\\mathcal N(\\mu, \\sigma^2), y) = \\int (F(z) - \\mathbb 1\\{z \\ge y\\})^2 dz
              = \\sigma \\left( \\omega (2\\Phi(\\omega) - 1) + 2 \\varphi(\\omega) - \\tfrac{1}{\\sqrt\\pi} \\right),
              \\quad \\omega = (y - \\mu)/\\sigma

    (Gneiting & Raftery 2007). Lower is better; it reduces to the absolute error as σ → 0.
    """
    m, v, t = variance_inputs(mean, var, target)
    sigma = torch.sqrt(v)
    omega = (t - m) / sigma
    pdf = torch.exp(-0.5 * omega**2) / math.sqrt(2 * math.pi)
    cdf = torch.special.ndtr(omega)
    return (sigma * (omega * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi))).mean()


def _level_key(level: float) -> str:
    return f"{100 * level:g}"


def interval_coverage(
    mean: Any, var: Any, target: Any, levels: Sequence[float] = INTERVAL_LEVELS
) -> dict[str, Tensor]:
    """Coverage and mean width of central prediction intervals.

    For a level p the central interval is :math:`\\mu \\pm z_p \\sigma` with
    :math:`z_p = \\Phi^{-1}((1 + p)/2)`; its coverage is the fraction of targets inside
    (bounds included) and its width :math:`2 z_p \\sigma` (label units), averaged.

    Args:
        levels: nominal levels in (0, 1).

    Returns:
        ``{"coverage_<100p>": ..., "width_<100p>": ...}`` per level, e.g. ``coverage_90``.
    """
    m, v, t = variance_inputs(mean, var, target)
    if len(levels) == 0:
        raise ValueError("levels is empty; pass nominal levels in (0, 1), e.g. (0.5, 0.9, 0.95)")
    sigma = torch.sqrt(v).expand_as(m)
    distance = (t - m).abs()
    out: dict[str, Tensor] = {}
    for level in levels:
        if not 0 < level < 1:
            raise ValueError(f"interval levels must be in (0, 1), got {level}")
        z = torch.special.ndtri(torch.tensor((1 + level) / 2, dtype=torch.float64)).to(m.dtype)
        half_width = z * sigma
        out[f"coverage_{_level_key(level)}"] = (distance <= half_width).to(m.dtype).mean()
        out[f"width_{_level_key(level)}"] = (2 * half_width).mean()
    return out


def calibration_proportions(mean: Any, var: Any, target: Any, num_bins: int = 100) -> tuple[Tensor, Tensor]:
    """Expected and observed proportions of targets inside centred intervals.

    For the grid :math:`p_j` = ``linspace(0, 1, num_bins)``, the observed proportion is the
    fraction of samples whose standardised residual :math:`r = (\\mu - y)/\\sigma` lies in
    :math:`[\\Phi^{-1}(\\tfrac12 - \\tfrac{p_j}2), \\Phi^{-1}(\\tfrac12 + \\tfrac{p_j}2)]`
    (uncertainty-toolbox's ``get_proportion_lists_vectorized`` with ``prop_type="interval"``).

    Returns:
        ``(expected (num_bins,), observed (num_bins,))``, float64.
    """
    m, v, t = variance_inputs(mean, var, target)
    if int(num_bins) != num_bins or num_bins < 2:
        raise ValueError(f"num_bins must be an integer >= 2, got {num_bins}")
    r = ((m - t) / torch.sqrt(v)).abs().flatten().to(torch.float64)
    expected = torch.linspace(0, 1, int(num_bins), dtype=torch.float64, device=r.device)
    bound = torch.special.ndtri(0.5 + expected / 2)
    inside = torch.searchsorted(torch.sort(r).values, bound, right=True)
    return expected, inside.to(torch.float64) / r.numel()


def calibration_error(mean: Any, var: Any, target: Any, num_bins: int = 100) -> Tensor:
    """Mean absolute (regression) calibration error, as uncertainty-toolbox's ``mean_absolute_calibration_error``.

    .. math:: \\mathrm{MACE} = \\frac1J \\sum_{j=1}^{J} |p_j - \\hat p_j|

    with :math:`p_j` the expected and :math:`\\hat p_j` the observed proportion of targets in
    the centred intervals of :func:`calibration_proportions`. 0 for a perfectly calibrated
    predictor, at most 0.5; lower is better.
    """
    expected, observed = calibration_proportions(mean, var, target, num_bins)
    return (expected - observed).abs().mean()


def sharpness(var: Any) -> Tensor:
    """Sharpness :math:`\\sqrt{\\frac1N \\sum_i \\sigma_i^2}`, the root mean predicted variance (label units).

    Lower is sharper (more confident); only meaningful together with calibration.
    """
    v = as_tensor(var, "var")
    if not v.is_floating_point():
        v = v.to(torch.float64)
    if v.numel() == 0:
        raise ValueError("var is empty; pass at least one predicted variance")
    check_variance(v, "var")
    return torch.sqrt(v.mean())


__all__ = [
    "INTERVAL_LEVELS",
    "calibration_error",
    "calibration_proportions",
    "crps_gaussian",
    "gaussian_nll",
    "interval_coverage",
    "sharpness",
]
