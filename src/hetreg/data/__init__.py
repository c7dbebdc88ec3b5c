"""Datasets: loaders returning raw inputs and clean labels in train/validation/test splits."""

from hetreg.data.base import (
    RegressionData,
    Split,
    Standardizer,
    dataset_names,
    load_dataset,
    register_dataset,
    seeded_permutation,
)

__all__ = [
    "RegressionData",
    "Split",
    "Standardizer",
    "dataset_names",
    "load_dataset",
    "register_dataset",
    "seeded_permutation",
]

# -- loader modules register themselves on import; each adds its import line below --
from hetreg.data import utkface  # noqa: E402,F401  (registers "utkface")
