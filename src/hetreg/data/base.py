"""The dataset contract shared by every loader, the noise module and the trainer.

A loader returns a :class:`RegressionData`: train / validation / test :class:`Split` objects with
**raw** inputs and **clean** labels in their original units. Label noise is applied later by
:mod:`hetreg.noise` to the training (and validation) labels; the clean labels are always kept for
evaluation. Normalisation statistics are computed from the training split only
(:class:`Standardizer`), and saved with each run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Split:
    """One split of a regression dataset.

    Attributes:
        x: inputs. Tabular: float32 tensor (n, d). Images: uint8 tensor (n, H, W, 3) kept in
            memory (or a memmap-backed tensor); models receive float batches made by the trainer.
        y: clean labels, float32 tensor (n,) in original units (years, quality points, counts).
        variance: known per-label noise variance (n,) in squared label units when the dataset
            carries one (a variance column of a user table), else ``None``.
        ids: a stable identifier per row (file name, row index), for tracing and dedup checks.
    """

    x: Tensor
    y: Tensor
    variance: Tensor | None = None
    ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        n = self.y.shape[0]
        if self.y.dim() != 1:
            raise ValueError(f"y must have shape (n,), got {tuple(self.y.shape)}")
        if self.x.shape[0] != n:
            raise ValueError(f"x has {self.x.shape[0]} rows but y has {n}")
        if self.variance is not None and self.variance.shape != (n,):
            raise ValueError(f"variance must have shape ({n},), got {tuple(self.variance.shape)}")
        if self.ids is not None and len(self.ids) != n:
            raise ValueError(f"ids has {len(self.ids)} entries but y has {n}")

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class RegressionData:
    """A dataset split three ways, with its description.

    Attributes:
        name: registry name (``"wine"``, ``"utkface"``, ...).
        kind: ``"tabular"`` or ``"image"``.
        train, val, test: the splits. ``val`` may be empty (0 rows) when asked for.
        feature_names: names of the tabular input columns (empty for images).
        target_name: name of the label (``"quality"``, ``"age"``, ``"cnt"``).
        info: free-form provenance: source path, checksums verified, options used, seed.
    """

    name: str
    kind: Literal["tabular", "image"]
    train: Split
    val: Split
    test: Split
    feature_names: tuple[str, ...] = ()
    target_name: str = "y"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input: (d,) for tabular data, (3, H, W) (channels first) for images."""
        if self.kind == "image":
            h, w, c = self.train.x.shape[1:]
            return (int(c), int(h), int(w))
        return tuple(int(s) for s in self.train.x.shape[1:])


@dataclass(frozen=True)
class Standardizer:
    """Affine z-scoring of inputs and labels with statistics of the training split.

    Labels: :math:`z = (y - m_y)/s_y`; a label-noise variance becomes :math:`\\sigma^2 / s_y^2`,
    and thresholds or ε given in raw variance units scale by :math:`1/s_y^2` too.
    Tabular inputs use per-feature statistics; images one scalar mean and std over all pixels
    and channels of [0, 1]-scaled images (as the original BIV code).
    """

    x_mean: Tensor
    x_std: Tensor
    y_mean: float
    y_std: float

    @classmethod
    def fit(cls, data: RegressionData) -> "Standardizer":
        y = data.train.y.double()
        y_std = float(y.std(unbiased=True)) if len(y) > 1 else 1.0
        if data.kind == "image":
            x = data.train.x
            # one scalar over all pixels; computed in chunks to bound memory
            total = 0.0
            total_sq = 0.0
            count = 0
            for start in range(0, x.shape[0], 2048):
                chunk = x[start : start + 2048].to(torch.float64) / 255.0
                total += float(chunk.sum())
                total_sq += float((chunk**2).sum())
                count += chunk.numel()
            mean = total / max(count, 1)
            std = max((total_sq / max(count, 1) - mean**2) ** 0.5, 1e-12)
            x_mean = torch.tensor(mean, dtype=torch.float32)
            x_std = torch.tensor(std, dtype=torch.float32)
        else:
            x = data.train.x.double()
            x_mean = x.mean(0).float()
            sd = x.std(0, unbiased=True) if x.shape[0] > 1 else torch.ones(x.shape[1], dtype=torch.float64)
            x_std = torch.where(sd > 0, sd, torch.ones_like(sd)).float()  # constant columns stay as they are
        return cls(x_mean=x_mean, x_std=x_std, y_mean=float(y.mean()), y_std=y_std if y_std > 0 else 1.0)

    @classmethod
    def identity(cls, data: RegressionData) -> "Standardizer":
        d = data.input_shape[0] if data.kind == "tabular" else 1
        zeros = torch.zeros(d) if data.kind == "tabular" else torch.tensor(0.0)
        ones = torch.ones(d) if data.kind == "tabular" else torch.tensor(1.0)
        return cls(x_mean=zeros, x_std=ones, y_mean=0.0, y_std=1.0)

    def transform_y(self, y: Tensor) -> Tensor:
        return (y - self.y_mean) / self.y_std

    def inverse_y(self, z: Tensor) -> Tensor:
        return z * self.y_std + self.y_mean

    def transform_variance(self, variance: Tensor | float) -> Tensor | float:
        """Scale a label variance (or ε, or a cutoff threshold) from raw to normalised units."""
        return variance / self.y_std**2

    def transform_x(self, x: Tensor) -> Tensor:
        """Tabular: per-feature z-score. Images: uint8 (n, H, W, 3) → float (n, 3, H, W) z-scored."""
        if x.dtype == torch.uint8:
            # one contiguous channels-first float copy, then in-place affine: (x/255 - m)/s
            xf = x.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format)
            return xf.sub_(255.0 * self.x_mean).div_(255.0 * self.x_std)
        return (x.to(torch.float32) - self.x_mean) / self.x_std

    def to_dict(self) -> dict[str, Any]:
        return {
            "x_mean": self.x_mean.tolist(),
            "x_std": self.x_std.tolist(),
            "y_mean": self.y_mean,
            "y_std": self.y_std,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Standardizer":
        return cls(
            x_mean=torch.tensor(d["x_mean"], dtype=torch.float32),
            x_std=torch.tensor(d["x_std"], dtype=torch.float32),
            y_mean=float(d["y_mean"]),
            y_std=float(d["y_std"]),
        )


Loader = Callable[..., RegressionData]
_LOADERS: dict[str, Loader] = {}


def register_dataset(name: str, loader: Loader) -> None:
    """Register ``loader(root=None, seed=0, **options) -> RegressionData`` under ``name``."""
    if name in _LOADERS:
        raise ValueError(f"a dataset named {name!r} is already registered")
    _LOADERS[name] = loader


def dataset_names() -> list[str]:
    return sorted(_LOADERS)


def load_dataset(name: str, root: str | None = None, **options: Any) -> RegressionData:
    """Load the dataset registered as ``name``; see :mod:`hetreg.data` for the list and options.

    ``root`` is the data folder (else ``$HETREG_DATA``, else the per-user cache directory).
    Common options: ``seed`` (split seed), ``val_fraction``, ``train_size``, ``test_size``.
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(dataset_names())}")
    return _LOADERS[name](root=root, **options)


def seeded_permutation(n: int, seed: int) -> np.ndarray:
    """Deterministic permutation of range(n) from ``seed`` (numpy PCG64), the same on every machine."""
    return np.random.default_rng(seed).permutation(n)
