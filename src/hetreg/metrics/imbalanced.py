"""Metrics for imbalanced regression: balanced (per-bin averaged) errors and many/medium/few shots.

Labels are binned with the bin specifications of :mod:`hetreg.losses.lds`:

* a float w (default 1.0): the grid [k·w, (k+1)·w) anchored at 0; w = 1 gives the integer-label
  bins of the age benchmarks. A bin is identified by its grid index, so a test label whose bin
  holds no training label has a training count of 0;
* an int n: n equal-width bins over [min, max] of the reference labels (the training labels
  for :func:`shot_metrics`, the targets for :func:`balanced_mse`); labels below / above that
  range form an underflow / overflow bin of their own (no training label there);
* an array of edges: :func:`hetreg.losses.lds.bin_index` with out-of-range labels merged into
  the edge bins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hetreg._validation import check_choice, check_positive
from hetreg.losses.lds import BinSpec, bin_index, bins_kind
from hetreg.losses.mse import squared_error
from hetreg.metrics._inputs import scalar_inputs
from hetreg.metrics.regression import GMEAN_EPS, absolute_error, log_absolute_error

SHOT_GROUPS = ("many", "medium", "few")
SHOT_METRIC_NAMES = ("mse", "rmse", "mae", "gmean")
SHOT_REDUCTIONS = ("sample", "balanced")


def label_bin_ids(labels: Any, bins: BinSpec = 1.0, reference: Any = None) -> np.ndarray:
    """Bin id of every label for the binned metrics (see the module docstring).

    Args:
        labels: labels, shape (N,) or (N, 1).
        bins: bin width (float), number of bins (int) or edges (array).
        reference: labels whose range defines ``n`` equal-width bins (int ``bins`` only);
            ``labels`` by default.

    Returns:
        int64 array (N,); ids are only meant to be compared with each other.
    """
    kind = bins_kind(bins)
    if kind == "width":
        return bin_index(labels, bin_width=float(bins))
    if kind == "edges":
        return bin_index(labels, edges=bins, clip=True)
    ref = labels if reference is None else reference
    ref_np = ref.detach().cpu().numpy() if isinstance(ref, Tensor) else np.asarray(ref)
    edges = np.histogram_bin_edges(np.asarray(ref_np, dtype=np.float64).ravel(), bins=int(bins))
    ids = bin_index(labels, edges=edges, clip=True)
    y = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    y = np.asarray(y, dtype=np.float64).ravel()
    ids[y < edges[0]] = -1
    ids[y > edges[-1]] = edges.size - 1
    return ids


def binned_mean(values: Tensor, ids: Tensor) -> Tensor:
    """Mean of ``values`` within each distinct id, in increasing id order.

    Args:
        values: shape (N,).
        ids: integer ids, shape (N,).

    Returns:
        Shape (K,), K the number of distinct ids.
    """
    _, inverse, counts = torch.unique(ids, return_inverse=True, return_counts=True)
    sums = torch.zeros(counts.numel(), dtype=values.dtype, device=values.device).index_add(0, inverse, values)
    return sums / counts.to(values.dtype)


def _reduce(terms: Tensor, ids: Tensor, reduction: str) -> Tensor:
    """Sample mean of ``terms``, or (``balanced``) the mean over bins of the per-bin means."""
    if terms.numel() == 0:
        return torch.full((), math.nan, dtype=terms.dtype)
    if reduction == "sample":
        return terms.mean()
    return binned_mean(terms, ids).mean()


def _ids_tensor(target: Tensor, bins: BinSpec, reference: Any = None) -> Tensor:
    return torch.as_tensor(label_bin_ids(target, bins, reference), device=target.device)


def balanced_mse(pred: Any, target: Any, bins: BinSpec = 1.0) -> Tensor:
    """Balanced MSE: the mean over label bins of the per-bin mean squared error.

    .. math:: \\mathrm{bMSE} = \\frac{1}{|B|} \\sum_{b \\in B} \\frac{1}{n_b} \\sum_{i: y_i \\in b} (\\hat y_i - y_i)^2

    over the bins B that hold at least one target (the "balanced" metric of the Balanced MSE
    code, which bins by distinct label). Scalar labels, shape (N,) or (N, 1). Squared label units.
    """
    p, t = scalar_inputs(pred, target)
    return _reduce(squared_error(p, t), _ids_tensor(t, bins), "balanced")


def balanced_mae(pred: Any, target: Any, bins: BinSpec = 1.0) -> Tensor:
    """Balanced MAE: the mean over label bins of the per-bin mean absolute error (label units)."""
    p, t = scalar_inputs(pred, target)
    return _reduce(absolute_error(p, t), _ids_tensor(t, bins), "balanced")


def _group_metrics(
    pred: Tensor, target: Tensor, ids: Tensor, names: Sequence[str], reduction: str, eps: float
) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in names:
        if name in ("mse", "rmse"):
            value = _reduce(squared_error(pred, target), ids, reduction)
            value = torch.sqrt(value) if name == "rmse" else value
        elif name == "mae":
            value = _reduce(absolute_error(pred, target), ids, reduction)
        else:  # gmean
            value = torch.exp(_reduce(log_absolute_error(pred, target, eps), ids, reduction))
        out[name] = float(value)
    out["count"] = int(target.numel())
    out["num_bins"] = int(torch.unique(ids).numel())
    return out


def shot_metrics(
    pred: Any,
    target: Any,
    train_labels: Any,
    bins: BinSpec = 1.0,
    many_threshold: int = 100,
    few_threshold: int = 20,
    metrics: Sequence[str] = ("mse", "mae", "gmean"),
    reduction: str = "sample",
    eps: float = GMEAN_EPS,
) -> dict[str, dict[str, float]]:
    """Errors in the many / medium / few-shot regions of the training label distribution.

    Each test sample's bin has :math:`n_{train}` training labels; the sample is **many**-shot
    when :math:`n_{train} >` ``many_threshold``, **few**-shot when :math:`n_{train} <`
    ``few_threshold``, **medium** otherwise (Yang et al. 2021: > 100, < 20, with 1-year bins).

    Reductions within each group (and ``"all"``, the whole test set):

    * ``"sample"`` (the DIR code): averages over the group's test samples; ``gmean`` is the
      geometric mean of their absolute errors;
    * ``"balanced"`` (the Balanced MSE code): per-bin means, then their mean over the group's
      bins; ``gmean`` is the geometric mean over bins of the per-bin geometric means.

    An empty group gives NaN metrics (never an error).

    Args:
        pred, target: predictions and test labels, shape (N,) or (N, 1), torch or numpy.
        train_labels: the training labels, shape (M,) or (M, 1).
        bins: label bins (see the module docstring); default: width 1 (integer labels).
        many_threshold, few_threshold: shot thresholds, ``few_threshold <= many_threshold``.
        metrics: any of ``"mse"``, ``"rmse"``, ``"mae"``, ``"gmean"``.
        reduction: ``"sample"`` or ``"balanced"``.
        eps: replacement of exactly-zero errors in ``gmean`` (see :func:`gmean_error`).

    Returns:
        ``{"many" | "medium" | "few" | "all": {metric: float, "count": test samples,
        "num_bins": distinct test bins}}``.
    """
    p, t = scalar_inputs(pred, target)
    check_choice(reduction, SHOT_REDUCTIONS, "reduction")
    for name in metrics:
        check_choice(name, SHOT_METRIC_NAMES, "shot metric")
    check_positive(eps, "eps", allow_zero=True)
    if not 0 <= few_threshold <= many_threshold:
        raise ValueError(
            f"need 0 <= few_threshold <= many_threshold, got few_threshold={few_threshold}, "
            f"many_threshold={many_threshold}"
        )
    test_ids = label_bin_ids(t, bins, reference=train_labels)
    train_ids = label_bin_ids(train_labels, bins, reference=train_labels)
    known, known_counts = np.unique(train_ids, return_counts=True)
    pos = np.clip(np.searchsorted(known, test_ids), 0, known.size - 1)
    n_train = np.where(known[pos] == test_ids, known_counts[pos], 0)
    masks = {
        "many": n_train > many_threshold,
        "few": n_train < few_threshold,
    }
    masks["medium"] = ~(masks["many"] | masks["few"])
    masks["all"] = np.ones_like(masks["many"])
    ids = torch.as_tensor(test_ids, device=t.device)
    result: dict[str, dict[str, float]] = {}
    for group in (*SHOT_GROUPS, "all"):
        mask = torch.as_tensor(masks[group], device=t.device)
        result[group] = _group_metrics(p[mask], t[mask], ids[mask], tuple(metrics), reduction, eps)
    return result


__all__ = [
    "SHOT_GROUPS",
    "SHOT_METRIC_NAMES",
    "SHOT_REDUCTIONS",
    "balanced_mae",
    "balanced_mse",
    "binned_mean",
    "label_bin_ids",
    "shot_metrics",
]
