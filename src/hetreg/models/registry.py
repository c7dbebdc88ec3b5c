"""Name -> model registry: :func:`build_model` and :func:`model_names`.

A model is registered as a *body factory* ``body(input_shape, **options) -> (nn.Module, F)``
that builds the feature extractor; :func:`build_model` adds the output head and the FDS slot
(:class:`hetreg.models.base.RegressionNet`). The valid options of a model are the keyword-only
parameters of its body factory.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from torch import nn

from hetreg.models.base import RegressionHead, RegressionNet

BodyFactory = Callable[..., tuple[nn.Module, int]]
HEAD_OPTIONS = ("variance", "var_floor", "init_var")


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its body factory and the input it takes.

    Attributes:
        body: ``body(input_shape, **options) -> (module, features)``.
        input_rank: 1 for tabular inputs ``(d,)``, 3 for images ``(C, H, W)``.
        description: one line for listings.
    """

    body: BodyFactory
    input_rank: int
    description: str = ""

    @property
    def options(self) -> tuple[str, ...]:
        params = inspect.signature(self.body).parameters.values()
        return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, body: BodyFactory, *, input_rank: int, description: str = "") -> None:
    """Register a body factory under ``name`` (see the module docstring)."""
    if name in _REGISTRY:
        raise ValueError(f"a model named {name!r} is already registered")
    if input_rank not in (1, 3):
        raise ValueError(f"input_rank must be 1 (tabular) or 3 (images), got {input_rank}")
    _REGISTRY[name] = ModelSpec(body=body, input_rank=input_rank, description=description)


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def model_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(model_names())}")
    return _REGISTRY[name]


def _check_input_shape(name: str, input_shape: Sequence[int], rank: int) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in input_shape)
        valid = all(s == t and s >= 1 for s, t in zip(shape, input_shape))
    except (TypeError, ValueError):
        shape, valid = (), False
    expected = "(d,) for tabular data" if rank == 1 else "(C, H, W) for images, e.g. (3, 64, 64)"
    if valid and len(shape) != rank and len(shape) in (1, 3):
        kind = "image" if len(shape) == 3 else "tabular"
        fits = "cnn or resnet18" if len(shape) == 3 else "mlp"
        raise ValueError(
            f"model {name!r} takes {expected}, but the data is {kind} with inputs of shape {shape}; "
            f"use a model for {kind} data ({fits})"
        )
    if not valid or len(shape) != rank:
        raise ValueError(
            f"model {name!r} needs input_shape {expected}, got {input_shape!r}; "
            "pass RegressionData.input_shape"
        )
    return shape


def build_model(
    name: str,
    input_shape: Sequence[int],
    *,
    head: str = "mean",
    out_dim: int = 1,
    fds: nn.Module | None = None,
    variance: str = "softplus",
    var_floor: float = 1e-6,
    init_var: float = 1.0,
    **options: Any,
) -> RegressionNet:
    """Build the model registered as ``name`` for inputs of ``input_shape``.

    Args:
        name: ``"mlp"``, ``"cnn"``, ``"resnet18"`` (see :func:`model_names`).
        input_shape: shape of one input, ``(d,)`` or ``(3, H, W)`` (``RegressionData.input_shape``).
        head: ``"mean"`` (forward returns (N, out_dim)) or ``"mean_var"`` (returns ``(mean, var)``).
        out_dim: number of regression targets.
        fds: optional FDS module inserted between the features and the head (training only).
        variance, var_floor, init_var: the variance parameterisation of a ``mean_var`` head
            (see :class:`hetreg.models.base.RegressionHead`).
        **options: model options, e.g. ``preset="wine"`` (mlp), ``small_input=True`` (resnet18).

    Raises:
        ValueError: unknown model or option (listing the valid ones), or a wrong input shape.
    """
    spec = model_spec(name)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = ", ".join(("head", "out_dim", "fds") + HEAD_OPTIONS + spec.options)
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for model {name!r}; valid options: {valid}")
    if isinstance(out_dim, bool) or not isinstance(out_dim, int) or out_dim < 1:
        raise ValueError(f"out_dim must be a positive integer, got {out_dim!r}")
    shape = _check_input_shape(name, input_shape, spec.input_rank)
    body, num_features = spec.body(shape, **options)
    head_module = RegressionHead(num_features, out_dim, head, variance=variance, var_floor=var_floor, init_var=init_var)
    return RegressionNet(body, num_features, head_module, shape, fds=fds)
