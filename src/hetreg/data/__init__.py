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
    "DataNotFoundError",
    "dataset_status",
]

# -- loader modules register themselves on import; each adds its import line below --
from hetreg.data import utkface  # noqa: E402,F401  (registers "utkface")
from hetreg.data import bike, sklearn_data, synthetic, table, wine  # noqa: E402,F401  (register tabular loaders)
from hetreg.data.status import DataNotFoundError, dataset_status  # noqa: E402,F401
