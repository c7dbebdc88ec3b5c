"""Fully connected networks for tabular data (the BIV ``WineModel`` and ``BikeModel``).

Each hidden layer is ``Linear -> [BatchNorm1d] -> ReLU -> [Dropout]``; the features are the
output of the last hidden layer and the head adds the final ``Linear``. Presets reproduce the
original models: ``wine`` is 11-100-50-20-10-1 with BatchNorm after every hidden Linear, ``bike``
the same widths (19 inputs) without BatchNorm. The input width always comes from the data.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

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
    return nn.Sequential(*layers), width
