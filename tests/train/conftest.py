"""Tiny in-memory datasets and configurations for the trainer tests (each run takes well under a second)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hetreg.data import RegressionData, Split, dataset_names, register_dataset, seeded_permutation
from hetreg.experiments.config import ExperimentConfig, apply_overrides

TABULAR = "test-train-tabular"
IMAGE = "test-train-image"


def _splits(n: int, seed: int, n_val: int, n_test: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    perm = seeded_permutation(n, seed)
    return perm[n_val + n_test :], perm[:n_val], perm[n_val : n_val + n_test]


def _split(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> Split:
    return Split(
        x=torch.from_numpy(x[idx]),
        y=torch.from_numpy(y[idx].astype(np.float32)),
        ids=tuple(str(i) for i in idx),
    )


def load_tiny_tabular(root: Any = None, seed: int = 0, *, n: int = 160, val_size: int = 32, **_: Any) -> RegressionData:
    """y = 3·(x·w) + 10 with 4 features; fixed rows, split by ``seed``."""
    rng = np.random.default_rng(1234)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = 3.0 * (x @ np.array([1.0, -0.5, 0.25, 0.0], dtype=np.float32)) + 10.0
    train, val, test = _splits(n, seed, val_size, 32)
    return RegressionData(
        name=TABULAR,
        kind="tabular",
        train=_split(x, y, train),
        val=_split(x, y, val),
        test=_split(x, y, test),
        feature_names=("a", "b", "c", "d"),
    )


def load_tiny_image(root: Any = None, seed: int = 0, **_: Any) -> RegressionData:
    """8x8 RGB uint8 images; the label is the mean brightness of the left half (so flips matter)."""
    n = 64
    rng = np.random.default_rng(99)
    x = rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
    y = x[:, :, :4, :].reshape(n, -1).mean(axis=1).astype(np.float32) / 10.0
    train, val, test = _splits(n, seed, 8, 8)
    return RegressionData(name=IMAGE, kind="image", train=_split(x, y, train), val=_split(x, y, val), test=_split(x, y, test))


if TABULAR not in dataset_names():
    register_dataset(TABULAR, load_tiny_tabular)
if IMAGE not in dataset_names():
    register_dataset(IMAGE, load_tiny_image)


BASE: dict[str, Any] = {
    "name": "tiny",
    "seed": 3,
    "data": {"name": TABULAR},
    "model": {"name": "mlp", "options": {"hidden": [16, 8]}},
    "loss": {"name": "mse"},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 4, "batch_size": 32, "num_threads": 1},
}

NOISE = "noise.distribution={kind: uniform, low: 0.5, high: 4.0}"

#: A small CNN on the tiny image dataset.
SMALL_CNN = ("data.name=" + IMAGE, "model.name=cnn", "model.options={channels: [4, 8]}", "train.batch_size=16")


def make_config(*overrides: str, base: dict[str, Any] | None = None) -> ExperimentConfig:
    return apply_overrides(base or BASE, list(overrides))


@pytest.fixture
def config_factory():
    return make_config


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl``."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def without_elapsed(record: dict[str, Any]) -> dict[str, Any]:
    """A record without its wall-clock time (the only field two equal runs may differ in)."""
    return {k: v for k, v in record.items() if k != "elapsed"}


class Interrupt:
    """A callback that raises KeyboardInterrupt at the evaluation of the given step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def __call__(self, record: dict[str, Any]) -> None:
        if record["step"] == self.step:
            raise KeyboardInterrupt
