"""What every model shares: a feature extractor, an optional FDS slot, and an output head.

A model is ``features(x) -> z`` (the penultimate features, shape (N, F)) followed by a head
``z -> prediction``. The split lets Feature Distribution Smoothing (FDS) sit between the two::

    z = model.features(x)                  # (N, F), before FDS (collect FDS statistics from this)
    z = model.fds(z, labels, epoch)        # only in training mode, when an FDS module is attached
    out = model.head(z)                    # (N, out_dim), or (mean, var) for a mean_var head

``forward(x, labels=None, epoch=None)`` runs the three steps; without labels (or in eval mode, or
with no FDS attached) it is ``head(features(x))``. Attach an FDS module with ``fds=`` in
:func:`hetreg.models.build_model` or later with :meth:`RegressionNet.attach_fds`; its size is
``model.num_features``.

Heads: ``"mean"`` returns a tensor (N, out_dim); ``"mean_var"`` returns ``(mean, var)``, each
(N, out_dim), the variance made positive by :func:`hetreg.losses.positive_variance`
(softplus or exp of a raw output, plus a floor; no clamping, so the gradient never vanishes).
"""

from __future__ import annotations

import math
from typing import Union

import torch
from torch import Tensor, nn

from hetreg._validation import check_choice, check_positive
from hetreg.losses.nll import positive_variance

HEADS = ("mean", "mean_var")
VARIANCE_KINDS = ("softplus", "exp")

ModelOutput = Union[Tensor, tuple[Tensor, Tensor]]


def inverse_positive_variance(var: float, *, kind: str = "softplus", floor: float = 1e-6) -> float:
    """The raw output ``r`` for which :func:`positive_variance` gives ``var``.

    softplus: :math:`r = \\log(e^{v-f} - 1)`; exp: :math:`r = \\log(v - f)`. Used to start a
    variance head at a chosen variance (in squared normalised label units).
    """
    check_choice(kind, VARIANCE_KINDS, "variance kind")
    if not var > floor:
        raise ValueError(f"init_var must be > var_floor ({floor}), got {var}")
    v = var - floor
    if kind == "exp":
        return math.log(v)
    return v + math.log(-math.expm1(-v))  # log(e^v - 1), stable for small and large v


def split_mean_var(raw: Tensor, out_dim: int, *, kind: str = "softplus", floor: float = 1e-6) -> tuple[Tensor, Tensor]:
    """Split a (N, 2*out_dim) output into ``mean`` and ``var = positive_variance(raw_var)``."""
    mean, raw_var = raw[:, :out_dim], raw[:, out_dim:]
    return mean, positive_variance(raw_var, kind=kind, floor=floor)


class RegressionHead(nn.Module):
    """Last layer: ``Linear(F, out_dim)`` (mean head) or ``Linear(F, 2*out_dim)`` (mean_var head).

    Args:
        in_features: width F of the features.
        out_dim: number of regression targets.
        kind: ``"mean"`` or ``"mean_var"``.
        variance: ``"softplus"`` or ``"exp"`` (log-variance output), for ``mean_var``.
        var_floor: smallest predicted variance (added, not clamped).
        init_var: predicted variance at initialisation (bias of the raw variance outputs), in
            squared normalised label units.
    """

    def __init__(
        self,
        in_features: int,
        out_dim: int = 1,
        kind: str = "mean",
        *,
        variance: str = "softplus",
        var_floor: float = 1e-6,
        init_var: float = 1.0,
    ) -> None:
        super().__init__()
        check_choice(kind, HEADS, "head")
        check_choice(variance, VARIANCE_KINDS, "variance")
        check_positive(var_floor, "var_floor", allow_zero=True)
        self.kind = kind
        self.out_dim = out_dim
        self.variance = variance
        self.var_floor = var_floor
        width = out_dim if kind == "mean" else 2 * out_dim
        self.linear = nn.Linear(in_features, width)
        if kind == "mean_var":
            with torch.no_grad():
                self.linear.bias[out_dim:] = inverse_positive_variance(init_var, kind=variance, floor=var_floor)

    def forward(self, features: Tensor) -> ModelOutput:
        raw = self.linear(features)
        if self.kind == "mean":
            return raw
        return split_mean_var(raw, self.out_dim, kind=self.variance, floor=self.var_floor)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, variance={self.variance!r}, var_floor={self.var_floor}"


class RegressionNet(nn.Module):
    """A feature extractor ``body`` (x -> (N, F)), an optional ``fds`` module and a ``head``.

    Attributes:
        body: the network up to the penultimate features (flattened to (N, F)).
        fds: ``None`` or a module called as ``fds(features, labels, epoch)`` in training mode.
        head: :class:`RegressionHead`.
        num_features: F, the width of the features (what an FDS module must be built for).
        input_shape: the shape of one input, ``(d,)`` or ``(C, H, W)``.
    """

    def __init__(self, body: nn.Module, num_features: int, head: RegressionHead, input_shape: tuple[int, ...],
                 fds: nn.Module | None = None) -> None:
        super().__init__()
        self.body = body
        self.head = head
        self.num_features = int(num_features)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.register_module("fds", fds)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features (N, F), before FDS and the head."""
        self._check_input(x)
        return self.body(x)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            hint = ""
            if x.dim() == 4 and x.shape[-1] == 3 and x.shape[1] != 3:
                hint = "; images must be channels-first floats: use Standardizer.transform_x on uint8 (n, H, W, 3) batches"
            raise ValueError(
                f"x must have shape (N, {', '.join(map(str, self.input_shape))}) for this model, "
                f"got {tuple(x.shape)}{hint}"
            )

    def attach_fds(self, fds: nn.Module | None) -> None:
        """Insert (or remove, with ``None``) an FDS module between the features and the head."""
        self.fds = fds

    def forward(self, x: Tensor, labels: Tensor | None = None, epoch: int | None = None) -> ModelOutput:
        """Predict from inputs ``x`` (N, *input_shape).

        ``labels`` and ``epoch`` are only used by an attached FDS module, in training mode.
        """
        predict = getattr(self.body, "predict", None)
        if predict is not None and self.fds is None and self.head.kind == "mean":
            self._check_input(x)
            return predict(x, self.head.linear)  # body and head in one pass (MLPs)
        return self.forward_features(x, labels, epoch)[0]

    def forward_features(
        self, x: Tensor, labels: Tensor | None = None, epoch: int | None = None
    ) -> tuple[ModelOutput, Tensor]:
        """The prediction and the penultimate features it came from, before FDS (N, F)."""
        z = self.features(x)
        calibrated = z
        if self.fds is not None and self.training and labels is not None:
            calibrated = self.fds(z, labels, epoch)
        return self.head(calibrated), z
