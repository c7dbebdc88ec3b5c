"""Label priors :math:`p_{train}(y)` for Balanced MSE: a histogram (BNI) and a Gaussian mixture (GAI).

Both are small immutable objects built once from the **training labels** (never by decoding
images) and kept frozen during training. They store float64 tensors; the losses cast them to the
dtype and device of the predictions at use time (:meth:`HistogramPrior.tensors_like`,
:meth:`GMMPrior.tensors_like`), so a float64 prior never promotes a float32 loss.

Labels and prior live in the same units as the predictions the loss sees: if the labels are
z-scored for training, build the prior from the z-scored training labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hetreg.losses.lds import KernelSpec, bin_index, resolve_kernel, smooth_histogram

TRANSFORMS = (None, "sqrt")
GMM_COVARIANCE_TYPES = ("full", "diag", "spherical", "tied")


def _float_tensor(x: Any, name: str) -> Tensor:
    """``x`` as a float64 tensor (a tensor keeps its device); priors are stored in float64."""
    if isinstance(x, Tensor):
        return x.detach().to(torch.float64)
    try:
        return torch.as_tensor(np.asarray(x, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a tensor or an array of numbers, got {type(x).__name__}") from exc


def _normalised_weights(weights: Tensor, n: int, name: str) -> Tensor:
    if weights.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one per component, got {tuple(weights.shape)}")
    if not torch.isfinite(weights).all():
        raise ValueError(f"{name} contains NaN or inf; prior weights must be finite")
    if (weights < 0).any():
        raise ValueError(f"{name} contains negative values; prior weights are masses (counts or probabilities) >= 0")
    total = weights.sum()
    if not total > 0:
        raise ValueError(f"{name} sums to 0; a prior needs at least one component with positive weight")
    return weights / total


def _label_matrix(labels: Any) -> np.ndarray:
    """Training labels as a float64 (N, d) array; (N,) and (N, 1) are d = 1."""
    y = labels.detach().cpu().double().numpy() if isinstance(labels, Tensor) else np.asarray(labels, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] == 0:
        raise ValueError(f"labels must have shape (N,), (N, 1) or (N, d) with N >= 1, got {tuple(y.shape)}")
    if not np.isfinite(y).all():
        raise ValueError("labels contain NaN or inf; drop those rows before building a prior")
    return y


# ---------------------------------------------------------------------------------------------
# Histogram prior (BNI)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class HistogramPrior:
    """Point masses :math:`w_j` at bin centres :math:`c_j`: :math:`p(y) \\approx \\sum_j w_j \\delta(y - c_j)`.

    Args:
        centers: bin centres, shape (J,) for 1-D labels or (J, d), in label units.
        weights: non-negative masses, shape (J,) (counts or probabilities). They are normalised
            to sum to 1, and bins of zero weight are dropped.

    Build one from training labels with :meth:`from_labels`, or from precomputed per-bin counts
    (for dense targets such as depth maps) with the constructor.
    """

    centers: Tensor
    weights: Tensor

    def __post_init__(self) -> None:
        centers = _float_tensor(self.centers, "centers")
        if centers.dim() == 1:
            centers = centers.unsqueeze(1)
        if centers.dim() != 2 or centers.shape[0] == 0:
            raise ValueError(f"centers must have shape (J,) or (J, d) with J >= 1, got {tuple(centers.shape)}")
        if not torch.isfinite(centers).all():
            raise ValueError("centers contains NaN or inf; bin centres must be finite")
        weights = _normalised_weights(_float_tensor(self.weights, "weights").to(centers), centers.shape[0], "weights")
        keep = weights > 0
        if not bool(keep.all()):
            centers, weights = centers[keep], weights[keep]
        object.__setattr__(self, "centers", centers)
        object.__setattr__(self, "weights", weights)

    @property
    def dim(self) -> int:
        """Label dimension d."""
        return int(self.centers.shape[1])

    @property
    def num_bins(self) -> int:
        return int(self.centers.shape[0])

    def tensors_like(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """``(centers (J, d), log_weights (J,))`` in the dtype and on the device of ``like``."""
        centers = self.centers.to(device=like.device, dtype=like.dtype)
        return centers, torch.log(self.weights.to(device=like.device, dtype=like.dtype))

    @classmethod
    def from_labels(
        cls,
        labels: Any,
        *,
        bin_width: float | None = None,
        edges: Any = None,
        lds: KernelSpec | None = None,
        transform: str | None = None,
    ) -> "HistogramPrior":
        """Histogram of 1-D training labels, optionally transformed and LDS-smoothed.

        Steps: count the labels per bin, apply ``transform`` to the counts, smooth them with the
        LDS kernel (:func:`hetreg.losses.lds.smooth_histogram`, zero padding, over every bin of
        the range, empty ones included), drop the bins left empty, normalise. This is the order
        of the original code (transform, then smooth). Unlike the original, the counts are
        smoothed as floats (the original convolved an integer array, truncating the result).

        Args:
            labels: training labels, shape (N,) or (N, 1), in the units the loss sees.
            bin_width: bins of width w **centred** on the multiples of w: bin k is
                :math:`[(k - \tfrac12) w, (k + \tfrac12) w)`, represented by the point mass at
                its centre :math:`k w`. With integer labels and ``bin_width=1`` the centres are
                the integer labels themselves (the IMDB-WIKI setting), and the counts equal those
                of the LDS grid :math:`[k, k+1)` of :func:`hetreg.losses.lds.bin_index`. (For
                continuous labels that grid would put each bin's mass at its left edge, half a bin
                off; centring avoids the bias.) The range runs from the lowest to the highest
                occupied bin, widened by half the LDS window on each side so no smoothed mass is lost.
            edges: explicit increasing bin edges (J + 1,), instead of ``bin_width``; centres are
                the mid-points; the last bin is closed (``numpy.histogram`` semantics). Every
                label must lie inside ``[edges[0], edges[-1]]``.
            lds: ``None``, or an LDS kernel: a kind (``"gaussian"``, ``"triang"``, ``"laplace"``),
                a dict with any of ``kind``, ``size`` (odd window length) and ``sigma`` (missing
                keys default to gaussian, 5, 2), or an explicit window; see
                :func:`hetreg.losses.lds.resolve_kernel` (named kernels peak-normalised, as in LDS).
            transform: ``None`` (counts) or ``"sqrt"`` (square-root counts, the NYUD2-DIR option).

        Returns:
            A :class:`HistogramPrior` with 1-D centres.
        """
        y = _label_matrix(labels)
        if y.shape[1] != 1:
            raise ValueError(
                f"from_labels bins 1-D labels only, got labels with d = {y.shape[1]}; for multi-dimensional "
                "labels build HistogramPrior(centers (J, d), weights (J,)) from your own bins, or use GMMPrior.fit"
            )
        y = y[:, 0]
        if transform not in TRANSFORMS:
            raise ValueError(f"transform must be None or 'sqrt', got {transform!r}")
        half = (len(resolve_kernel(lds)) - 1) // 2 if lds is not None else 0
        centers, counts = _bin_counts(y, bin_width, edges, pad=half)
        if transform == "sqrt":
            counts = np.sqrt(counts)
        if lds is not None:
            counts = smooth_histogram(counts, lds, mode="constant")
        keep = counts > 0
        return cls(torch.from_numpy(centers[keep]), torch.from_numpy(counts[keep]))

    def __repr__(self) -> str:
        return f"HistogramPrior(num_bins={self.num_bins}, dim={self.dim})"


def _bin_counts(y: np.ndarray, bin_width: float | None, edges: Any, *, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of 1-D labels per bin over a contiguous range of bins: ``(centers, counts)`` float64."""
    if (bin_width is None) == (edges is None):
        raise ValueError("give exactly one of bin_width= (regular bins) or edges= (explicit bin edges)")
    if bin_width is not None:
        w = float(bin_width)
        if not (w > 0 and math.isfinite(w)):
            raise ValueError(f"bin_width must be finite and > 0, got {bin_width}")
        # the LDS grid [k w, (k+1) w) of labels shifted by w/2 is the centred grid of bin k
        k = bin_index(y + 0.5 * w, bin_width=w)
        lo, hi = int(k.min()) - pad, int(k.max()) + pad
        counts = np.bincount(k - lo, minlength=hi - lo + 1).astype(np.float64)
        return np.arange(lo, hi + 1, dtype=np.float64) * w, counts
    e = np.asarray(edges, dtype=np.float64)
    idx = bin_index(y, edges=e, clip=False)
    counts = np.bincount(idx, minlength=e.size - 1).astype(np.float64)
    return 0.5 * (e[:-1] + e[1:]), counts


# ---------------------------------------------------------------------------------------------
# Gaussian-mixture prior (GAI)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GMMPrior:
    """Gaussian mixture :math:`p(y) = \\sum_k \\phi_k \\mathcal N(y; \\mu_k, \\Sigma_k)`.

    Args:
        means: component means :math:`\\mu_k`, shape (K,) for 1-D labels or (K, d), label units.
        variances: :math:`\\Sigma_k` in squared label units: (K,) one variance per component
            (isotropic :math:`v_k I` when d > 1), (K, d) diagonal, or (K, d, d) full symmetric
            positive-definite covariances.
        weights: mixing weights :math:`\\phi_k \\ge 0`, shape (K,); normalised to sum to 1.

    Attributes:
        covariances: the (K, d, d) full covariances built from ``variances``.
    """

    means: Tensor
    variances: Tensor
    weights: Tensor
    covariances: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        means = _float_tensor(self.means, "means")
        if means.dim() == 1:
            means = means.unsqueeze(1)
        if means.dim() != 2 or means.shape[0] == 0:
            raise ValueError(f"means must have shape (K,) or (K, d) with K >= 1, got {tuple(means.shape)}")
        if not torch.isfinite(means).all():
            raise ValueError("means contains NaN or inf")
        k, d = means.shape
        variances = _float_tensor(self.variances, "variances").to(means)
        if not torch.isfinite(variances).all():
            raise ValueError("variances contains NaN or inf")
        if variances.shape == (k,):
            if (variances <= 0).any():
                raise ValueError("variances must be > 0")
            cov = variances[:, None, None] * torch.eye(d, dtype=means.dtype, device=means.device)
        elif variances.shape == (k, d):
            if (variances <= 0).any():
                raise ValueError("diagonal variances must be > 0")
            cov = torch.diag_embed(variances)
        elif variances.shape == (k, d, d):
            asymmetry = float((variances - variances.transpose(1, 2)).abs().amax())
            if asymmetry > 100 * torch.finfo(variances.dtype).eps * float(variances.abs().amax()):
                raise ValueError(f"full covariances (K, d, d) must be symmetric (max asymmetry {asymmetry:.3g})")
            cov = 0.5 * (variances + variances.transpose(1, 2))  # exact symmetry after rounding
            _, info = torch.linalg.cholesky_ex(cov.double())
            if bool((info != 0).any()):
                raise ValueError("full covariances (K, d, d) must be positive definite")
        else:
            raise ValueError(
                f"variances must have shape ({k},), ({k}, {d}) or ({k}, {d}, {d}) for means of shape {(k, d)}, "
                f"got {tuple(variances.shape)}"
            )
        weights = _normalised_weights(_float_tensor(self.weights, "weights").to(means), k, "weights")
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "variances", variances)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "covariances", cov)

    @property
    def dim(self) -> int:
        """Label dimension d."""
        return int(self.means.shape[1])

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    def tensors_like(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(means (K, d), covariances (K, d, d), log_weights (K,))`` in the dtype/device of ``like``."""
        to = {"device": like.device, "dtype": like.dtype}
        return self.means.to(**to), self.covariances.to(**to), torch.log(self.weights.to(**to))

    @classmethod
    def fit(
        cls,
        labels: Any,
        n_components: int = 8,
        seed: int = 0,
        *,
        covariance_type: str = "full",
        **gmm_options: Any,
    ) -> "GMMPrior":
        """Fit the mixture to training labels with ``sklearn.mixture.GaussianMixture``.

        The original GAI preprocessing fitted ``GaussianMixture(n_components=K, random_state=0)``
        (K = 8 for IMDB-WIKI, 16 for NYUD2) after decoding every training image just to collect
        the labels; here only the label array is needed.

        Args:
            labels: training labels, shape (N,), (N, 1) or (N, d), in the units the loss sees.
            n_components: K >= 1, at most the number of labels.
            seed: ``random_state`` of the fit (initialisation).
            covariance_type: ``"full"`` (default, as the original), ``"diag"``, ``"spherical"``
                or ``"tied"``.
            gmm_options: further keyword arguments of ``GaussianMixture`` (``max_iter``,
                ``reg_covar``, ``n_init``...).
        """
        from sklearn.mixture import GaussianMixture

        y = _label_matrix(labels)
        if not (isinstance(n_components, (int, np.integer)) and 1 <= n_components <= y.shape[0]):
            raise ValueError(f"n_components must be an integer in [1, {y.shape[0]}] (the number of labels), got {n_components}")
        if covariance_type not in GMM_COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {GMM_COVARIANCE_TYPES}, got {covariance_type!r}")
        gmm = GaussianMixture(
            n_components=int(n_components), covariance_type=covariance_type, random_state=seed, **gmm_options
        ).fit(y)
        cov = np.asarray(gmm.covariances_, dtype=np.float64)
        if covariance_type == "tied":
            cov = np.broadcast_to(cov, (int(n_components), *cov.shape)).copy()
        return cls(
            torch.from_numpy(np.asarray(gmm.means_, dtype=np.float64)),
            torch.from_numpy(cov),
            torch.from_numpy(np.asarray(gmm.weights_, dtype=np.float64)),
        )

    def __repr__(self) -> str:
        return f"GMMPrior(n_components={self.n_components}, dim={self.dim})"


__all__ = ["HistogramPrior", "GMMPrior"]
