"""The original BIV image pipeline, rebuilt as a baseline for the benchmarks (not part of the library).

What the original ``UTKface`` dataset did (reference ``biv-system.md`` §5.1, §7): a
``torch.utils.data.Dataset`` that opens and decodes the JPEG with PIL on **every**
``__getitem__`` (no caching), converts it with ``transforms.ToTensor()`` (uint8 HWC -> float CHW in
[0, 1]), z-scores the pixels with one scalar mean and standard deviation and the age with the
training-label mean and standard deviation, served by a standard ``DataLoader`` (default
``num_workers=0``, default collation). The original used 200 px images as stored; for the 64 px
runs the image is resized with PIL (bilinear, torchvision's ``Resize`` default) after decoding.

torchvision is not a dependency here, so :func:`to_tensor` reproduces ``ToTensor`` for RGB images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset


def to_tensor(img: Image.Image) -> torch.Tensor:
    """``torchvision.transforms.ToTensor`` for an RGB PIL image: float (3, H, W) in [0, 1]."""
    arr = np.array(img, dtype=np.uint8, copy=True)
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous().to(torch.float32).div(255)


class NaiveUTKFace(Dataset):
    """UTKFace read from the JPEG files on every access, as the original loader did.

    Args:
        paths: image files.
        ages: age in years of each file.
        size: output size in pixels; ``None`` keeps the stored size (200 px, no resizing).
        pixel_mean, pixel_std: scalar pixel statistics (images in [0, 1]).
        age_mean, age_std: training-label statistics (years).
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        ages: Sequence[float],
        *,
        size: int | None,
        pixel_mean: float,
        pixel_std: float,
        age_mean: float,
        age_std: float,
    ) -> None:
        if len(paths) != len(ages):
            raise ValueError(f"paths and ages must have the same length, got {len(paths)} and {len(ages)}")
        self.paths = [os.fspath(p) for p in paths]
        self.ages = [float(a) for a in ages]
        self.size = size
        self.pixel_mean, self.pixel_std = float(pixel_mean), float(pixel_std)
        self.age_mean, self.age_std = float(age_mean), float(age_std)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        with Image.open(self.paths[index]) as img:
            rgb = img.convert("RGB")
        if self.size is not None and rgb.size != (self.size, self.size):
            rgb = rgb.resize((self.size, self.size), Image.Resampling.BILINEAR)
        x = (to_tensor(rgb) - self.pixel_mean) / self.pixel_std
        y = torch.tensor([(self.ages[index] - self.age_mean) / self.age_std], dtype=torch.float32)
        return x, y


def naive_loader(dataset: NaiveUTKFace, batch_size: int, *, shuffle: bool, workers: int = 0, seed: int = 0) -> DataLoader:
    """A standard ``DataLoader`` over the dataset (``num_workers=0`` by default, as the original)."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers, generator=generator)
