"""Boundary checks and conversions shared by the metric functions (torch or numpy in)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from hetreg._validation import align_per_sample, check_batch, check_same_shape, check_variance


def as_tensor(x: Any, name: str) -> Tensor:
    """A tensor view of ``x``: tensors pass through, arrays / sequences / numbers are converted."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (np.ndarray, list, tuple, float, int, np.number)):
        return torch.as_tensor(np.asarray(x))
    raise TypeError(f"{name} must be a torch.Tensor or a numpy array, got {type(x).__name__}")


def _common_float(*xs: Tensor) -> list[Tensor]:
    dtype = xs[0].dtype
    for x in xs[1:]:
        dtype = torch.promote_types(dtype, x.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float64
    return [x.to(dtype) for x in xs]


def point_inputs(pred: Any, target: Any) -> tuple[Tensor, Tensor]:
    """``pred`` and ``target`` as tensors of one floating dtype, shape (N,), (N, 1) or (N, d)."""
    p, t = _common_float(as_tensor(pred, "pred"), as_tensor(target, "target"))
    check_batch(p, "pred")
    check_same_shape(p, t)
    if not torch.isfinite(t).all():
        raise ValueError("target contains NaN or inf; drop those rows before evaluating")
    return p, t


def scalar_inputs(pred: Any, target: Any) -> tuple[Tensor, Tensor]:
    """As :func:`point_inputs`, for one-dimensional labels: shape (N,) or (N, 1), returned as (N,)."""
    p, t = point_inputs(pred, target)
    if p.dim() == 2:
        if p.shape[1] != 1:
            raise ValueError(f"binned metrics need scalar labels, shape (N,) or (N, 1), got {tuple(p.shape)}")
        p, t = p[:, 0], t[:, 0]
    return p, t


def variance_inputs(mean: Any, var: Any, target: Any) -> tuple[Tensor, Tensor, Tensor]:
    """Predicted ``mean``, strictly positive ``var`` aligned to it, and ``target``."""
    m, v, t = _common_float(as_tensor(mean, "mean"), as_tensor(var, "var"), as_tensor(target, "target"))
    check_batch(m, "mean")
    check_same_shape(m, t, "mean", "target")
    v = align_per_sample(v, m, "var")
    check_variance(v, "var")
    if (v == 0).any():
        raise ValueError("var contains zeros; a predictive distribution needs a variance > 0")
    if not torch.isfinite(t).all():
        raise ValueError("target contains NaN or inf; drop those rows before evaluating")
    return m, v, t
