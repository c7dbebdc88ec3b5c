"""Label distribution smoothing (LDS; Yang et al., ICML 2021): label bins, kernel windows, sample weights.

LDS estimates an *effective* label density by convolving the histogram of the training labels
with a symmetric kernel, and weights every training sample by the inverse (or inverse square
root) of that density at its label. The weights are per-sample numbers of mean 1 over the
training set, usable as ``weight=`` in any loss of :mod:`hetreg.losses`.

Everything here is pure NumPy (inputs may be anything :func:`numpy.asarray` accepts, including
CPU tensors). The pieces:

* :func:`bin_index` / :func:`assign_bins`: label → bin, from explicit edges, a bin width or a
  number of equal-width bins;
* :func:`kernel_window` / :func:`resolve_kernel`: the smoothing window of the original code;
* :func:`smooth_histogram`: the convolution (:func:`scipy.ndimage.convolve1d`);
* :func:`lds_weights`: the per-sample weights, in the order of the original code (transform the
  counts, then smooth).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Union

import numpy as np
from scipy.ndimage import convolve1d, gaussian_filter1d
from scipy.signal.windows import triang

KERNELS = ("gaussian", "triang", "laplace")
SCHEMES = ("sqrt_inv", "inverse", "none")
SMOOTHING_MODES = ("constant", "reflect", "nearest", "mirror", "wrap")

#: A kernel: a kind name (size 5, sigma 2), a mapping with keys ``kind``, ``size``, ``sigma``
#: (missing keys take those defaults), or an explicit window (1-D array of odd length).
KernelSpec = Union[str, Mapping[str, Any], np.ndarray]
#: Bins: a number of equal-width bins (int), a bin width (float) or explicit edges (1-D array).
BinSpec = Union[int, float, np.ndarray, "list[float]", "tuple[float, ...]"]

DEFAULT_KERNEL: dict[str, Any] = {"kind": "gaussian", "size": 5, "sigma": 2.0}
# Labels within this relative distance of a grid edge count as lying on it (see bin_index);
# single-precision labels (float32 tensors, the dataset default) need a looser tolerance.
_GRID_SNAP = 1e-9
_GRID_SNAP_SINGLE = 8 * float(np.finfo(np.float32).eps)


def kernel_window(kind: str = "gaussian", size: int = 5, sigma: float = 2.0, *, normalize: str = "max") -> np.ndarray:
    """The symmetric smoothing window of the original LDS/FDS code, reproduced exactly.

    * ``gaussian``: a length-``size`` delta filtered by ``scipy.ndimage.gaussian_filter1d`` with
      scipy's defaults (reflect boundaries, truncate 4). The reflection folds the tails back into
      the short window, so it is flatter than a textbook Gaussian: size 5, σ 2 gives
      [0.8583, 0.9458, 1, 0.9458, 0.8583] (a true Gaussian: [0.61, 0.88, 1, 0.88, 0.61]).
    * ``triang``: ``scipy.signal.windows.triang(size)``.
    * ``laplace``: :math:`\\exp(-|x|/\\sigma)/(2\\sigma)` at x = -half..half.

    Args:
        kind: ``"gaussian"``, ``"triang"`` or ``"laplace"``.
        size: odd window length >= 1.
        sigma: kernel width (bins) for gaussian and laplace, > 0.
        normalize: ``"max"`` (LDS: peak 1; triang is left as scipy returns it, whose peak is 1),
            or ``"sum"`` (FDS: the window sums to 1).
    """
    if kind not in KERNELS:
        raise ValueError(f"unknown kernel {kind!r}; valid kernels: {', '.join(KERNELS)}")
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be an odd integer >= 1, got {size}")
    if not sigma > 0:
        raise ValueError(f"kernel sigma must be > 0, got {sigma}")
    if normalize not in ("max", "sum"):
        raise ValueError(f"normalize must be 'max' or 'sum', got {normalize!r}")
    half = (size - 1) // 2
    if kind == "gaussian":
        delta = np.zeros(size)
        delta[half] = 1.0
        window = gaussian_filter1d(delta, sigma=sigma)
    elif kind == "triang":
        window = triang(size)
    else:
        x = np.arange(-half, half + 1, dtype=np.float64)
        window = np.exp(-np.abs(x) / sigma) / (2.0 * sigma)
    if normalize == "sum":
        return window / window.sum()
    return window / window.max()


def resolve_kernel(kernel: KernelSpec, *, normalize: str = "max") -> np.ndarray:
    """Turn a kernel specification into a window (float64, odd length).

    Args:
        kernel: a kind (``"gaussian"``, ``"triang"``, ``"laplace"``; size 5 and σ 2, the README
            recipe of the original code), a mapping ``{"kind", "size", "sigma"}`` (missing keys
            take those defaults), both given to :func:`kernel_window`; or an explicit window
            (non-negative, finite, odd length, not all zero).
        normalize: ``"max"`` (LDS): named kernels are normalised to peak 1 and an explicit window
            is used as given (its scale cancels in :func:`lds_weights`); ``"sum"`` (FDS): the
            window, named or explicit, sums to 1.
    """
    if normalize not in ("max", "sum"):
        raise ValueError(f"normalize must be 'max' or 'sum', got {normalize!r}")
    if isinstance(kernel, (str, Mapping)):
        spec = {**DEFAULT_KERNEL, "kind": kernel} if isinstance(kernel, str) else {**DEFAULT_KERNEL, **kernel}
        unknown = set(spec) - set(DEFAULT_KERNEL)
        if unknown:
            raise ValueError(f"kernel has unknown keys {sorted(unknown)}; valid keys: kind, size, sigma")
        size = spec["size"]
        if isinstance(size, bool) or not float(size).is_integer():
            raise ValueError(f"kernel size must be an odd integer, got {size!r}")
        return kernel_window(str(spec["kind"]), int(size), float(spec["sigma"]), normalize=normalize)
    window = np.asarray(kernel, dtype=np.float64)
    if window.ndim != 1 or window.size % 2 == 0:
        raise ValueError(f"a kernel window must be a 1-D array of odd length, got shape {window.shape}")
    if not np.isfinite(window).all() or (window < 0).any() or not (window > 0).any():
        raise ValueError("a kernel window must be finite and non-negative with at least one positive value")
    return window / window.sum() if normalize == "sum" else window


def _as_labels(labels: Any, name: str = "labels") -> np.ndarray:
    """Labels as a finite float64 vector; shapes (N,) and (N, 1) are accepted."""
    if hasattr(labels, "detach"):  # a torch tensor
        labels = labels.detach().cpu().numpy()
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name} must have shape (N,) or (N, 1), got {y.shape}")
    if y.size == 0:
        raise ValueError(f"{name} is empty; pass at least one label")
    if not np.isfinite(y).all():
        raise ValueError(f"{name} contains NaN or inf; drop or impute those rows first")
    return y


def _is_single_precision(labels: Any) -> bool:
    """Whether ``labels`` are float32 / float16 / bfloat16 (a tensor or an array)."""
    dtype = getattr(labels, "dtype", None)
    if dtype is None:
        return False
    if hasattr(labels, "detach"):
        return bool(dtype.is_floating_point) and dtype.itemsize <= 4
    return np.dtype(dtype).kind == "f" and np.dtype(dtype).itemsize <= 4


def _as_edges(edges: Any) -> np.ndarray:
    if hasattr(edges, "detach"):
        edges = edges.detach().cpu().numpy()
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2:
        raise ValueError(f"edges must be a 1-D array of at least 2 values, got shape {e.shape}")
    if not np.isfinite(e).all() or not (np.diff(e) > 0).all():
        raise ValueError("edges must be finite and strictly increasing")
    return e


def bin_index(
    labels: Any,
    edges: Any = None,
    bin_width: float | None = None,
    clip: bool = True,
) -> np.ndarray:
    """Bin index of every label, from explicit edges or from a bin width.

    * ``edges`` (length B + 1, strictly increasing): bin i is [e_i, e_{i+1}), the last bin also
      holds its right edge (the :func:`numpy.histogram` convention, with which the result agrees
      exactly). Labels outside [e_0, e_B] are merged into the first / last bin when ``clip`` is
      true (e.g. ages ≥ 120 in the last bin, as in the original age benchmarks), and raise
      otherwise. Result in [0, B).
    * ``bin_width`` w: the grid [k·w, (k+1)·w) over every integer k, anchored at 0, so that
      w = 1 gives the integer-label bins of the age benchmarks (k = ⌊y⌋). The grid index k is
      returned (it may be negative, and does not depend on which labels are passed, so train
      and test labels bin consistently); ``clip`` does not apply. Labels within a relative
      1e-9 of a grid edge count as lying on it, so that 0.3 with w = 0.1 is in bin 3 despite
      0.3 / 0.1 = 2.9999999999999996 in floating point (for float32 labels the tolerance is
      8 float32 epsilons, so that float32(0.7) is in bin 7 too).

    Labels in single precision (float32 tensors, the dataset default) are compared with the
    edges rounded to that precision, so that a float32 label 0.7 and an edge 0.7 are equal.

    Args:
        labels: shape (N,) or (N, 1), finite.
        edges: bin edges; exclusive with ``bin_width``.
        bin_width: bin width > 0; exclusive with ``edges``.
        clip: merge out-of-range labels into the edge bins (``edges`` only).

    Returns:
        int64 array (N,).
    """
    y = _as_labels(labels)
    single = _is_single_precision(labels)
    if (edges is None) == (bin_width is None):
        raise ValueError("pass exactly one of edges= (explicit bin edges) or bin_width= (a grid anchored at 0)")
    if bin_width is not None:
        w = float(bin_width)
        if not (np.isfinite(w) and w > 0):
            raise ValueError(f"bin_width must be a finite number > 0, got {bin_width}")
        q = y / w
        nearest = np.rint(q)
        tol = _GRID_SNAP_SINGLE if single else _GRID_SNAP
        on_edge = np.abs(q - nearest) <= tol * np.maximum(1.0, np.abs(q))
        return np.where(on_edge, nearest, np.floor(q)).astype(np.int64)
    e = _as_edges(edges)
    num_bins = e.size - 1
    if single:
        e = e.astype(np.float32).astype(np.float64)
    if not clip:
        outside = (y < e[0]) | (y > e[-1])
        if outside.any():
            raise ValueError(
                f"{int(outside.sum())} labels lie outside the edges [{e[0]:g}, {e[-1]:g}] "
                f"(min {y.min():g}, max {y.max():g}); widen the edges or pass clip=True to merge them "
                "into the edge bins"
            )
    idx = np.searchsorted(e, y, side="right") - 1
    return np.clip(idx, 0, num_bins - 1).astype(np.int64)


def bins_kind(bins: Any) -> str:
    """Which bin specification ``bins`` is: ``"count"`` (int), ``"width"`` (float) or ``"edges"``."""
    if isinstance(bins, (bool, np.bool_)):
        raise ValueError("bins must be an int (number of bins), a float (bin width) or an array of edges, got a bool")
    if isinstance(bins, (int, np.integer)):
        if bins < 1:
            raise ValueError(f"the number of bins must be >= 1, got {bins}")
        return "count"
    if isinstance(bins, (float, np.floating)):
        return "width"
    if hasattr(bins, "detach") and bins.dim() == 0:  # a scalar tensor
        return bins_kind(bins.item())
    return "edges"


def assign_bins(labels: Any, bins: BinSpec, reference: Any = None) -> tuple[np.ndarray, int]:
    """Bin ids of ``labels`` under a bin specification resolved against ``reference`` labels.

    Args:
        labels: labels to bin, shape (N,) or (N, 1).
        bins: ``int`` n: n equal-width bins over [min, max] of ``reference``
            (:func:`numpy.histogram_bin_edges`; labels outside are merged into the edge bins);
            ``float`` w: the grid of width w anchored at 0 (see :func:`bin_index`), restricted to
            the grid cells spanned by ``reference``; array: explicit edges (out-of-range labels
            merged into the edge bins).
        reference: labels that define the range (the training labels); ``labels`` by default.

    Returns:
        ``(ids, num_bins)``: int64 ids in [0, num_bins), and the number of bins. With a width,
        labels outside the reference's grid cells are merged into the first / last cell.
    """
    y = _as_labels(labels)
    ref = y if reference is None else _as_labels(reference, "reference")
    kind = bins_kind(bins)
    if kind == "width":
        k_ref = bin_index(ref, bin_width=float(bins))
        first, last = int(k_ref.min()), int(k_ref.max())
        ids = np.clip(bin_index(y, bin_width=float(bins)), first, last) - first
        return ids.astype(np.int64), last - first + 1
    edges = np.histogram_bin_edges(ref, bins=int(bins)) if kind == "count" else _as_edges(bins)
    return bin_index(y, edges=edges, clip=True), edges.size - 1


def smooth_histogram(counts: Any, kernel: KernelSpec = "gaussian", mode: str = "constant") -> np.ndarray:
    """Convolve a histogram (or any per-bin values) with a symmetric kernel window.

    .. math:: \\tilde c_b = \\sum_{j=-h}^{h} k_{h+j}\\, c_{b-j}

    (a convolution: an asymmetric explicit window is flipped; the named kernels are symmetric),
    with the values beyond the ends given by ``mode`` (:func:`scipy.ndimage.convolve1d`):
    ``"constant"`` pads with zeros (the age and STS-B benchmarks), ``"reflect"`` mirrors (NYUD2).

    Args:
        counts: per-bin values, 1-D, finite.
        kernel: see :func:`resolve_kernel`; a named kernel is normalised to peak 1.
        mode: boundary mode, one of ``constant``, ``reflect``, ``nearest``, ``mirror``, ``wrap``.

    Returns:
        float64 array with the shape of ``counts``.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"counts must be a non-empty 1-D array, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError("counts contains NaN or inf")
    if mode not in SMOOTHING_MODES:
        raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(SMOOTHING_MODES)}")
    window = resolve_kernel(kernel)
    return convolve1d(c, window, mode=mode, cval=0.0)


def lds_weights(
    labels: Any,
    bins: BinSpec,
    scheme: str = "sqrt_inv",
    kernel: KernelSpec | None = None,
    inverse_clip: tuple[float, float] | None = (5, 1000),
    mode: str = "constant",
) -> np.ndarray:
    """Per-sample LDS / inverse-frequency weights of mean 1 over ``labels`` (the training labels).

    In the order of the original code (Yang et al. 2021, ``_prepare_weights``):

    1. histogram: :math:`c_b` = number of labels in bin b (:func:`assign_bins`);
    2. transform the counts: ``sqrt_inv``: :math:`v_b = \\sqrt{c_b}`; ``inverse``:
       :math:`v_b = \\mathrm{clip}(c_b, 5, 1000)` (``inverse_clip``; every bin, empty ones
       included, as in the age benchmarks; ``None`` does not clip, as STS-B); ``none``: all
       weights 1;
    3. LDS (when ``kernel`` is given): :math:`\\tilde v = k * v` (:func:`smooth_histogram`).
       The transform comes **before** the smoothing: SQINV + LDS smooths √counts, it does not
       take the root of the smoothed counts;
    4. :math:`w_i = 1/\\tilde v_{b(y_i)}`, rescaled by :math:`N/\\sum_i w_i` so that the mean
       weight is 1.

    Because of step 4 the kernel's scale does not matter. To reproduce the age benchmarks
    exactly (bins 0..120, ages ≥ 120 in the last bin) pass ``bins=np.arange(0, 122)``; with a
    bin width the histogram spans only the grid cells between the smallest and largest label,
    which gives the same weights for ``sqrt_inv`` (empty bins and zero padding agree) but not
    for ``inverse`` (empty bins are clipped up to 5, padding is 0).

    Args:
        labels: training labels, shape (N,) or (N, 1), finite.
        bins: number of equal-width bins (int), bin width (float) or edges (array); see
            :func:`assign_bins`.
        scheme: ``"sqrt_inv"`` (the paper's SQINV), ``"inverse"`` or ``"none"``.
        kernel: ``None`` (no smoothing), a kernel kind, ``{"kind", "size", "sigma"}`` or a window.
            The paper's recipe is ``{"kind": "gaussian", "size": 5, "sigma": 2}`` with sqrt_inv.
        inverse_clip: ``(low, high)`` bounds on the counts for ``inverse``, or ``None``.
        mode: boundary mode of the smoothing (``"constant"``: zero padding, as the original).

    Returns:
        float64 array (N,), positive, of mean 1.
    """
    y = _as_labels(labels)
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; valid schemes: {', '.join(SCHEMES)}")
    if scheme == "none":
        if kernel is not None:
            raise ValueError("LDS smooths a reweighting: use scheme='sqrt_inv' or 'inverse' with a kernel")
        return np.ones_like(y)
    ids, num_bins = assign_bins(y, bins)
    counts = np.bincount(ids, minlength=num_bins).astype(np.float64)
    if scheme == "sqrt_inv":
        values = np.sqrt(counts)
    else:
        values = counts
        if inverse_clip is not None:
            low, high = (float(v) for v in inverse_clip)
            if not (0 <= low <= high):
                raise ValueError(f"inverse_clip must be (low, high) with 0 <= low <= high, got {inverse_clip}")
            values = np.clip(counts, low, high)
    if kernel is not None:
        values = smooth_histogram(values, kernel, mode=mode)
    per_sample = values[ids]
    if not (per_sample > 0).all():
        raise ValueError(
            "the smoothed density is zero at some training labels (a kernel window with a zero centre?); "
            "use a window whose centre value is positive"
        )
    weights = 1.0 / per_sample
    return weights * (y.size / weights.sum())
