"""Name → loss-module registry, used by configs and the command line."""

from __future__ import annotations

from typing import Any, Callable

from hetreg.losses.base import RegressionLoss

_REGISTRY: dict[str, Callable[..., RegressionLoss]] = {}


def register_loss(name: str, factory: Callable[..., RegressionLoss]) -> None:
    """Register ``factory(**params) -> RegressionLoss`` under ``name``."""
    if name in _REGISTRY:
        raise ValueError(f"a loss named {name!r} is already registered")
    _REGISTRY[name] = factory


def loss_names() -> list[str]:
    return sorted(_REGISTRY)


def loss_factory(name: str) -> Callable[..., RegressionLoss]:
    """The factory registered as ``name`` (a loss class, or a ``functools.partial`` of one)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(loss_names())}")
    return _REGISTRY[name]


def build_loss(name: str, **params: Any) -> RegressionLoss:
    """Build the loss module registered as ``name`` with keyword ``params``.

    Raises ``ValueError`` listing the valid names for an unknown name, and naming the bad
    parameter for an unexpected keyword.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(loss_names())}")
    try:
        return _REGISTRY[name](**params)
    except TypeError as exc:  # unexpected keyword
        raise ValueError(f"bad parameters for loss {name!r}: {exc}") from None
