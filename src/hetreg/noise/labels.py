"""Heteroscedastic Gaussian label noise with known (optionally disturbed) variances.

Pipeline of the BIV experiments (Mai et al., arXiv:2107.04497), done once per training set:

1. :math:`\\sigma_k^2 \\sim D` for each label (a :class:`~hetreg.noise.VarianceDistribution`);
2. :math:`\\tilde y_k = y_k + \\delta_k`, :math:`\\delta_k \\sim N(0, \\sigma_k^2)`, in **raw label
   units** (years, quality points, counts), always with the true :math:`\\sigma_k^2`;
3. the variance handed to the loss is :math:`\\hat\\sigma_k^2 = |\\sigma_k^2 + \\eta_k|`,
   :math:`\\eta_k \\sim N(0, (\\sigma_k^2 \\sqrt d / 3)^2)` when the disturbance d > 0 (relative
   standard deviation :math:`\\sqrt d/3`), and exactly :math:`\\sigma_k^2` when d = 0;
4. optionally, normalisation (:func:`normalize_noise`): labels z-scored with the clean
   training-label statistics, variances scaled by :math:`1/s_y^2`.

Noise is added before normalisation, so distribution parameters are given in squared raw label
units (e.g. a mean variance of 3000 years² for UTKFace).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from hetreg._validation import check_tensor, check_variance
from hetreg.data.base import Standardizer
from hetreg.noise.distributions import VarianceDistribution, _as_float, _check_sample_args


@dataclass(frozen=True)
class NoisyLabels:
    """Noisy labels and their variances.

    Attributes:
        labels: noisy labels :math:`\\tilde y`, shape (n,), same dtype as the clean labels.
        variance: the variance the loss will see, float64 (n,): :math:`\\hat\\sigma^2` (disturbed
            when d > 0, else equal to ``true_variance``).
        true_variance: the variance actually used to draw the label noise, float64 (n,).

    Units: labels in label units, variances in squared label units; raw units as returned by
    :func:`add_label_noise`, normalised units after :func:`normalize_noise`.
    """

    labels: Tensor
    variance: Tensor
    true_variance: Tensor

    def __post_init__(self) -> None:
        for name in ("labels", "variance", "true_variance"):
            check_tensor(getattr(self, name), name)
        n = self.labels.shape
        if self.labels.dim() != 1 or self.variance.shape != n or self.true_variance.shape != n:
            raise ValueError(
                "labels, variance and true_variance must all have shape (n,), got "
                f"{tuple(self.labels.shape)}, {tuple(self.variance.shape)}, {tuple(self.true_variance.shape)}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def disturb_variance(variance: Tensor, disturbance: float, generator: torch.Generator) -> Tensor:
    """Noisy estimate of known variances: :math:`|\\sigma^2 + \\eta|`, :math:`\\eta \\sim N(0, (\\sigma^2\\sqrt d/3)^2)`.

    The relative standard deviation of the estimate (before the absolute value) is :math:`\\sqrt d/3`.
    With d = 0 the variances are returned unchanged (a copy) and the generator is not used, so
    there is no degenerate N(0, 0) draw.

    Args:
        variance: σ² >= 0, float tensor of any shape (units kept).
        disturbance: d >= 0.
        generator: CPU ``torch.Generator`` for the η draws (advanced only when d > 0).
    """
    d = _as_float(disturbance, "disturbance")
    if d < 0:
        raise ValueError(f"disturbance must be >= 0 (relative std of the variance estimate is sqrt(d)/3), got {d}")
    if d == 0:
        return variance.clone()
    z = torch.randn(variance.shape, generator=generator, dtype=variance.dtype)
    return (variance + variance * (math.sqrt(d) / 3.0) * z).abs()


def add_label_noise(
    y: Tensor,
    distribution: VarianceDistribution,
    generator: torch.Generator,
    disturbance: float = 0.0,
) -> NoisyLabels:
    """Add heteroscedastic Gaussian noise with per-label variances drawn from ``distribution``.

    .. math:: \\sigma_k^2 \\sim D, \\quad \\tilde y_k = y_k + \\sqrt{\\sigma_k^2}\\, z_k, \\quad z_k \\sim N(0, 1)

    and the variance handed on is :func:`disturb_variance` of :math:`\\sigma_k^2`. Everything is in
    the units of ``y`` (raw label units; ``distribution`` in squared label units).

    The generator is used in a fixed order: the n variances, then n standard normals for the
    label noise, then (only when d > 0) n standard normals for the disturbance. Hence the same
    seed gives the same labels and true variances whatever d is. Computations are in float64;
    the labels are cast back to the dtype of ``y``.

    Args:
        y: clean labels, floating tensor of shape (n,).
        distribution: distribution of σ².
        generator: CPU ``torch.Generator``; the result is a deterministic function of its state.
        disturbance: d >= 0, see :func:`disturb_variance`.

    Returns:
        :class:`NoisyLabels` (raw units).
    """
    check_tensor(y, "y")
    if y.dim() != 1:
        raise ValueError(f"y must have shape (n,), got {tuple(y.shape)}; flatten it first (y.reshape(-1))")
    if not y.is_floating_point():
        raise ValueError(f"y must be a floating-point tensor, got dtype {y.dtype}; convert it with y.float()")
    if not torch.isfinite(y).all():
        raise ValueError("y contains NaN or inf; drop or fix those labels before adding noise")
    if not isinstance(distribution, VarianceDistribution):
        raise TypeError(
            f"distribution must be a VarianceDistribution (Uniform, Constant, Gamma, Mixture), "
            f"got {type(distribution).__name__}"
        )
    d = _as_float(disturbance, "disturbance")
    if d < 0:
        raise ValueError(f"disturbance must be >= 0 (relative std of the variance estimate is sqrt(d)/3), got {d}")
    n = _check_sample_args(y.shape[0], generator)

    true_variance = distribution.sample(n, generator)
    z = torch.randn(n, generator=generator, dtype=torch.float64)
    labels = (y.detach().to(device="cpu", dtype=torch.float64) + true_variance.sqrt() * z).to(
        dtype=y.dtype, device=y.device
    )
    variance = disturb_variance(true_variance, d, generator)
    return NoisyLabels(labels=labels, variance=variance, true_variance=true_variance)


def normalize_noise(noisy: NoisyLabels, y_mean: float, y_std: float) -> NoisyLabels:
    """Move noisy labels and their variances from raw to normalised units.

    Labels become :math:`(\\tilde y - m_y)/s_y` and both variances :math:`\\sigma^2/s_y^2`,
    with :math:`m_y, s_y` the **clean** training-label mean and standard deviation (as
    :class:`hetreg.data.base.Standardizer`, whose rules are reused). The same
    :math:`1/s_y^2` factor applies to ε and cutoff thresholds given in raw units
    (``Standardizer.transform_variance``).

    Args:
        noisy: labels and variances in raw units (from :func:`add_label_noise`).
        y_mean: :math:`m_y`, finite, label units.
        y_std: :math:`s_y` > 0, label units.
    """
    if not isinstance(noisy, NoisyLabels):
        raise TypeError(f"noisy must be NoisyLabels (from add_label_noise), got {type(noisy).__name__}")
    m = _as_float(y_mean, "y_mean")
    s = _as_float(y_std, "y_std")
    if s <= 0:
        raise ValueError(f"y_std must be > 0 (the standard deviation of the clean training labels), got {s}")
    check_variance(noisy.variance, "noisy.variance")
    scaler = Standardizer(x_mean=torch.zeros(()), x_std=torch.ones(()), y_mean=m, y_std=s)
    return NoisyLabels(
        labels=scaler.transform_y(noisy.labels),
        variance=scaler.transform_variance(noisy.variance),  # type: ignore[arg-type]
        true_variance=scaler.transform_variance(noisy.true_variance),  # type: ignore[arg-type]
    )
