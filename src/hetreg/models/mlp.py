"""Fully connected networks for tabular data (the BIV ``WineModel`` and ``BikeModel``).

Each hidden layer is ``Linear -> [BatchNorm1d] -> ReLU -> [Dropout]``; the features are the
output of the last hidden layer and the head adds the final ``Linear``. Presets reproduce the
original models: ``wine`` is 11-100-50-20-10-1 with BatchNorm after every hidden Linear, ``bike``
the same widths (19 inputs) without BatchNorm. The input width always comes from the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hetreg._validation import check_choice


@dataclass(frozen=True)
class MLPConfig:
    """Hidden widths, BatchNorm after each hidden Linear, dropout probability after each ReLU."""

    hidden: tuple[int, ...] = (100, 50, 20, 10)
    batchnorm: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a sequence of positive integer widths, got {self.hidden!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


PRESETS: dict[str, MLPConfig] = {
    "wine": MLPConfig(hidden=(100, 50, 20, 10), batchnorm=True),
    "bike": MLPConfig(hidden=(100, 50, 20, 10), batchnorm=False),
}


def mlp_config(
    preset: str | None = None,
    hidden: tuple[int, ...] | list[int] | None = None,
    batchnorm: bool | None = None,
    dropout: float | None = None,
) -> MLPConfig:
    """The configuration from a preset (default: no preset, i.e. :class:`MLPConfig` defaults),
    with any explicitly given field overriding it."""
    if preset is not None:
        check_choice(preset, PRESETS, "mlp preset")
    base = PRESETS[preset] if preset is not None else MLPConfig()
    return MLPConfig(
        hidden=tuple(hidden) if hidden is not None else base.hidden,
        batchnorm=base.batchnorm if batchnorm is None else bool(batchnorm),
        dropout=base.dropout if dropout is None else float(dropout),
    )


def mlp_body(
    input_shape: tuple[int, ...],
    *,
    preset: str | None = None,
    hidden: tuple[int, ...] | list[int] | None = None,
    batchnorm: bool | None = None,
    dropout: float | None = None,
) -> tuple[nn.Module, int]:
    """The hidden layers of an MLP for inputs of shape ``(d,)``; returns ``(body, width)``.

    Args:
        input_shape: ``(d,)``.
        preset: ``"wine"`` or ``"bike"`` (see the module docstring); other arguments override it.
        hidden: hidden layer widths (default ``(100, 50, 20, 10)``); ``()`` gives a linear model.
        batchnorm: BatchNorm1d after each hidden Linear (default: off, on for ``wine``).
        dropout: dropout probability after each ReLU (default 0).
    """
    cfg = mlp_config(preset, hidden, batchnorm, dropout)
    layers: list[nn.Module] = []
    width = input_shape[0]
    for h in cfg.hidden:
        layers.append(nn.Linear(width, h))
        if cfg.batchnorm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(nn.ReLU())
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        width = h
    return MLPBody(*layers), width


# ---------------------------------------------------------------------------------------------
# The forward pass of K MLPs at once (K = 1 for one model)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MLPLayer:
    """One step of an MLP's forward pass: ``"linear"``, ``"batchnorm"`` or ``"relu"``.

    ``prefix`` is the layer's state-dict prefix in the model (``"body.0."``, ``"head.linear."``);
    ``momentum`` and ``eps`` are a BatchNorm's (``momentum=None``: cumulative average).
    """

    kind: str
    prefix: str
    momentum: float | None = None
    eps: float = 0.0


def mlp_layers(body: nn.Module, head_prefix: str = "head.linear.") -> tuple[MLPLayer, ...] | None:
    """The layer plan of an MLP body (``Linear``, affine ``BatchNorm1d`` tracking running
    statistics, ``ReLU``, ``Dropout(0)``) followed by the head's Linear, or ``None`` when the body
    holds anything else (e.g. dropout > 0, which draws random numbers)."""
    if not isinstance(body, nn.Sequential):
        return None
    layers: list[MLPLayer] = []
    for name, module in body.named_children():
        prefix = f"body.{name}."
        if isinstance(module, nn.Linear):
            layers.append(MLPLayer("linear", prefix))
        elif isinstance(module, nn.BatchNorm1d) and module.affine and module.track_running_stats:
            layers.append(MLPLayer("batchnorm", prefix, module.momentum, module.eps))
        elif isinstance(module, nn.ReLU):
            layers.append(MLPLayer("relu", prefix))
        elif isinstance(module, nn.Dropout) and module.p == 0:
            continue
        else:
            return None
    layers.append(MLPLayer("linear", head_prefix))
    return tuple(layers)


#: Each model's block of a gradient computed by :class:`StackedLinear` starts on a boundary of
#: this many bytes, as a tensor of its own does.
ALIGN_BYTES = 64


def _aligned_grad(grad: Tensor, per_model: bool) -> Tensor:
    """``grad`` with every model's block on an :data:`ALIGN_BYTES` boundary, as a tensor of its
    own (BLAS rounds differently for misaligned operands; a slice of a larger gradient may start
    anywhere). ``per_model``: a leading model axis whose blocks must all be aligned."""
    block = grad[0].numel() * grad.element_size()
    if not grad.is_contiguous() or grad.data_ptr() % ALIGN_BYTES or (per_model and grad.shape[0] > 1 and block % ALIGN_BYTES):
        return grad.clone(memory_format=torch.contiguous_format)
    return grad


def _product(out: Tensor):  # torch.mm for one model (2-D), torch.bmm for K models (3-D)
    return torch.bmm if out.dim() == 3 else torch.mm


def _linear_out(out: Tensor, weight: Tensor, x: Tensor, bias: Tensor | None) -> None:
    """``W x + b`` into ``out``: one model, weight (out, in), x (in, B), bias (out, 1) or
    ``None``; or K models in one batched call, each with a leading K axis."""
    if bias is None:
        _product(out)(weight, x, out=out)
    elif out.dim() == 3:
        torch.baddbmm(bias, weight, x, out=out)
    else:
        torch.addmm(bias, weight, x, out=out)


def _linear_grad_x(out: Tensor, weight: Tensor, grad: Tensor) -> None:
    """The input gradient ``W^T g`` into ``out`` (shapes as :func:`_linear_out`)."""
    _product(out)(weight.transpose(-1, -2), grad, out=out)


def _grad_w_buffer(weight_shape: tuple[int, ...], like: Tensor) -> Tensor | None:
    """Scratch for :func:`_linear_grad_w` when a layer has fewer inputs than outputs (the first
    layer): the gradient of W^T, x g^T, is then much faster to compute, and transposed.
    ``weight_shape``: (out, in), or (K, out, in) for K models in one call."""
    *lead, out_features, in_features = weight_shape
    return like.new_empty(*lead, in_features, out_features) if in_features < out_features else None


def _linear_grad_w(out: Tensor, grad: Tensor, x: Tensor, buf: Tensor | None) -> None:
    """The weight gradient ``g x^T`` into ``out`` (out, in); x (in, B), grad (out, B), or K
    models in one batched call, each with a leading K axis."""
    product = _product(out)
    if buf is not None:
        out.copy_(product(x, grad.transpose(-1, -2), out=buf).transpose(-1, -2))
    else:
        product(grad, x.transpose(-1, -2), out=out)


def batched_products(models: int, in_features: int, out_features: int, batch: int, element_size: int) -> bool:
    """Whether :class:`StackedLinear` computes the products of ``models`` models in one batched
    BLAS call (``torch.bmm``) rather than one call per model.

    Only where the batched call gives each model the numbers of its own ``torch.mm`` (checked
    for this library's shapes by ``tests/models/test_mlp.py``): one torch thread (with
    more, ``bmm`` splits the batch across threads where ``mm`` splits the matrix), batches whose
    rows fill whole :data:`ALIGN_BYTES` blocks (each model's block of the activations aligned,
    as a tensor of its own is), and more than one input and output feature (``mm`` computes a
    product with a single row or column as a matrix-vector product, ``bmm`` does not).
    """
    return (
        models > 1
        and in_features > 1
        and out_features > 1
        and (batch * element_size) % ALIGN_BYTES == 0
        and torch.get_num_threads() == 1
    )


def padded_rows(rows: int, element_size: int) -> int:
    """The number of rows an eval-mode MLP pass computes for ``rows`` inputs: the next multiple
    of :data:`ALIGN_BYTES` / ``element_size`` (16 float32 rows), so that every model's block of
    a stacked (K, C, rows) activation starts on an :data:`ALIGN_BYTES` boundary, the case in
    which K models run in one pass (a training pass cannot pad: BatchNorm's batch statistics
    would see the padding)."""
    per = max(1, ALIGN_BYTES // element_size)
    return -(-rows // per) * per


class StackedLinear(torch.autograd.Function):
    """:math:`h_k \\leftarrow W_k h_k + b_k` for K models, feature-major: x (K, in, B), weight
    (K, out, in), bias (K, out) or ``None`` -> (K, out, B).

    Model k's numbers are those of the model alone (:class:`Linear1`, the same products without
    the leading axis) whatever K is. Each product is either one batched call for the K models
    (``torch.baddbmm`` / ``torch.bmm``) or one ``torch.addmm`` / ``torch.mm`` call per model into
    that model's block; :func:`batched_products` says which. The bias gradient is one reduction
    over B for all models.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:  # type: ignore[override]
        k, b = x.shape[0], x.shape[2]
        out = x.new_empty(k, weight.shape[1], b)
        ctx.batched = batched_products(k, weight.shape[2], weight.shape[1], b, x.element_size())
        column = None if bias is None else bias.unsqueeze(-1)
        if ctx.batched:
            _linear_out(out, weight, x, column)
        else:
            biases = [None] * k if column is None else column.unbind(0)
            for w, xi, bi, oi in zip(weight.unbind(0), x.unbind(0), biases, out.unbind(0)):
                _linear_out(oi, w, xi, bi)
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad = _aligned_grad(grad, per_model=True)
        k = x.shape[0]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = grad.new_empty(k, x.shape[1], x.shape[2])
            if ctx.batched:
                _linear_grad_x(grad_x, weight, grad)
            else:
                for w, g, gx in zip(weight.unbind(0), grad.unbind(0), grad_x.unbind(0)):
                    _linear_grad_x(gx, w, g)
        if ctx.needs_input_grad[1]:
            n = weight[0].numel()
            per = max(1, ALIGN_BYTES // grad.element_size())
            grad_w = grad.new_empty(k, -(-n // per) * per)[:, :n].view(weight.shape)
            if ctx.batched:
                _linear_grad_w(grad_w, grad, x, _grad_w_buffer(tuple(weight.shape), grad))
            else:
                buf = _grad_w_buffer(tuple(weight.shape[1:]), grad)
                for g, xi, gw in zip(grad.unbind(0), x.unbind(0), grad_w.unbind(0)):
                    _linear_grad_w(gw, g, xi, buf)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(2)
        return grad_x, grad_w, grad_b


class Linear1(torch.autograd.Function):
    """:class:`StackedLinear` for one model, without the model axis: x (in, B), weight
    (out, in), bias (out,) or ``None`` -> (out, B), with the same kernel calls."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:  # type: ignore[override]
        out = x.new_empty(weight.shape[0], x.shape[1])
        _linear_out(out, weight, x, None if bias is None else bias.unsqueeze(-1))
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad = _aligned_grad(grad, per_model=False)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = grad.new_empty(x.shape[0], x.shape[1])
            _linear_grad_x(grad_x, weight, grad)
        if ctx.needs_input_grad[1]:
            grad_w = grad.new_empty(weight.shape)
            _linear_grad_w(grad_w, grad, x, _grad_w_buffer(tuple(weight.shape), grad))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(1)
        return grad_x, grad_w, grad_b


def stacked_mlp_forward(
    layers: Sequence[MLPLayer],
    tensors: Mapping[str, Tensor],
    x: Tensor,
    *,
    training: bool,
    upto: int | None = None,
) -> Tensor:
    """K MLPs of one architecture on K batches: :math:`h \\leftarrow W h + b`, batch
    normalisation, :math:`\\max(h, 0)`, computed feature-major, i.e. on (K, features, B).

    The Linear layers are :class:`StackedLinear` (one matrix product per model; one model alone
    runs the same calls through :class:`Linear1`), every other layer one kernel call for all K
    models, e.g. one ``F.batch_norm`` over K·C channels (so model k's BatchNorm uses its own batch
    statistics and updates its own running statistics, in place). Model k's numbers do not depend on K or
    on the other models: the same model alone (K = 1) gives the same results bit for bit, which
    is how the plain trainer runs an MLP (:meth:`MLPBody.predict`) and why a batched group of
    runs (:mod:`hetreg.train.batched`) reproduces each run exactly.

    Args:
        layers: the plan (:func:`mlp_layers`) with every BatchNorm momentum resolved to a number
            (the caller counts batches).
        tensors: stacked parameters and buffers keyed by state-dict key, each (K, *shape). The
            running statistics must be contiguous (K, C) tensors: they are updated in place.
        x: (K, B, d) inputs.
        training: batch statistics (and running-statistics updates) or running statistics.
        upto: evaluate only ``layers[:upto]`` (e.g. ``-1``: the features, before the head).

    Returns:
        (K, width, B): the last layer's outputs, feature-major.
    """
    k, b = x.shape[0], x.shape[1]
    h = x.transpose(1, 2)
    plan = list(layers[:upto])
    for i, layer in enumerate(plan):
        p = layer.prefix
        if layer.kind == "linear":
            h = StackedLinear.apply(h, tensors[p + "weight"], tensors.get(p + "bias"))
        elif layer.kind == "relu":
            if i == 0 or plan[i - 1].kind != "batchnorm":  # (after a BatchNorm: done there)
                # in place on a Linear output (its backward does not use it), not on the input
                h = torch.relu(h) if i == 0 else torch.relu_(h)
        else:
            c = h.shape[1]
            h = F.batch_norm(
                h.reshape(1, k * c, b),
                tensors[p + "running_mean"].view(-1),
                tensors[p + "running_var"].view(-1),
                tensors[p + "weight"].reshape(-1),
                tensors[p + "bias"].reshape(-1),
                training,
                0.0 if layer.momentum is None else layer.momentum,
                layer.eps,
            )
            if i + 1 < len(plan) and plan[i + 1].kind == "relu":
                h = torch.relu_(h)  # on the BatchNorm output itself (not a view): no autograd rebase
            h = h.view(k, c, b)
    return h


class MLPBody(nn.Sequential):
    """The hidden layers of an MLP (an ``nn.Sequential``, so its state-dict keys and modules are
    the usual ones) whose forward pass is :func:`stacked_mlp_forward` with K = 1.

    ``forward(x)`` gives the (N, F) features; :meth:`predict` runs the body and a head Linear
    in one pass, as a batched group of runs computes them. Bodies holding other modules
    (dropout > 0) run as a plain ``nn.Sequential``.
    """

    def plan(self) -> tuple[MLPLayer, ...] | None:
        """The layer plan (:func:`mlp_layers`), kept until the children change."""
        key = tuple(map(id, self._modules.values()))
        cached = self.__dict__.get("_plan_cache")
        if cached is None or cached[0] != key:
            layers = mlp_layers(self)
            modules = None if layers is None else [self._modules[layer.prefix[5:-1]] for layer in layers[:-1]]
            cached = (key, layers, modules)
            self.__dict__["_plan_cache"] = cached
        return cached[1]

    def _run(self, x: Tensor, head: nn.Linear | None) -> Tensor:
        """:func:`stacked_mlp_forward` for this one model (the same kernel calls, without the
        model axis); x (N, d) -> (N, width) features, or (N, out) with the head. In eval mode
        the rows are padded as :func:`padded_rows` says (each row's outputs do not depend on
        the others then), so that a batched group computes the same numbers in one pass."""
        n = x.shape[0]
        if not self.training and padded_rows(n, x.element_size()) != n:
            x = torch.cat([x, x.new_zeros(padded_rows(n, x.element_size()) - n, x.shape[1])])
            return self._run(x, head)[:n]
        layers = self.plan()
        assert layers is not None
        modules: list[nn.Module | None] = list(self.__dict__["_plan_cache"][2])
        if head is not None:
            modules.append(head)
        else:
            layers = layers[:-1]
        h = x.t()
        for i, (layer, module) in enumerate(zip(layers, modules)):
            if layer.kind == "linear":
                h = Linear1.apply(h, module.weight, module.bias)
            elif layer.kind == "relu":
                if i == 0 or layers[i - 1].kind != "batchnorm":
                    h = torch.relu(h) if i == 0 else torch.relu_(h)
            else:
                assert isinstance(module, nn.BatchNorm1d)
                momentum = layer.momentum
                if self.training:
                    module.num_batches_tracked.add_(1)
                    if momentum is None:
                        momentum = 1.0 / float(module.num_batches_tracked)
                h = F.batch_norm(
                    h.unsqueeze(0), module.running_mean, module.running_var, module.weight, module.bias,
                    self.training, 0.0 if momentum is None else momentum, layer.eps,
                )
                if i + 1 < len(layers) and layers[i + 1].kind == "relu":
                    h = torch.relu_(h)
                h = h[0]
        return h.t()

    def _check(self, x: Tensor) -> None:
        if x.dim() != 2:
            raise ValueError(f"an MLP takes inputs of shape (N, d), got {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        if self.plan() is None:
            return super().forward(x)
        self._check(x)
        return self._run(x, None)

    def predict(self, x: Tensor, head: nn.Linear) -> Tensor:
        """``head(self(x))``, shape (N, out), computed as a batched group computes it."""
        if self.plan() is None:
            return head(super().forward(x))
        self._check(x)
        return self._run(x, head)
