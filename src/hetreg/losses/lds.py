"""Label distribution smoothing (LDS; Yang et al., ICML 2021): kernel windows and sample weights."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal.windows import triang

KERNELS = ("gaussian", "triang", "laplace")


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
