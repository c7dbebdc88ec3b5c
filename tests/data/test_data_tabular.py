"""The shared split machinery: sizes, determinism, disjointness, nesting, option errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hetreg.data import Standardizer, load_dataset
from hetreg.data.tabular import (
    DEFAULT_VAL_FRACTION,
    SplitSizes,
    check_bool,
    check_option,
    resolve_split_sizes,
    split_indices,
    split_table,
)


def _table(n: int = 50, d: int = 3) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(n * d, dtype=np.float64).reshape(n, d)
    y = np.arange(n, dtype=np.float64) * 10.0
    return x, y


def _split(n: int = 50, seed: int = 0, **sizes):
    x, y = _table(n)
    sizes.setdefault("test_size", 10)
    return split_table(
        "toy", x, y, seed=seed, feature_names=["a", "b", "c"], target_name="t", ids=[str(i) for i in range(n)], **sizes
    )


def _rows(split) -> set[int]:
    return {int(i) for i in split.ids}


def test_default_sizes() -> None:
    sizes = resolve_split_sizes(100, test_size=20)
    assert sizes == SplitSizes(train=72, val=8, test=20, unused=0)  # val = round(0.1 * 80)
    assert DEFAULT_VAL_FRACTION == 0.1


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"test_size": 0.25}, SplitSizes(train=67, val=8, test=25)),  # fraction of all rows; val round(7.5)
        ({"test_size": 10, "val_size": 0}, SplitSizes(train=90, val=0, test=10)),
        ({"test_size": 10, "val_fraction": 0.0, "train_size": 30}, SplitSizes(train=30, val=0, test=10, unused=60)),
        ({"test_size": 10, "val_size": 5, "train_size": 85}, SplitSizes(train=85, val=5, test=10)),
        ({"test_size": 10, "val_fraction": 0.5, "train_size": 0.2}, SplitSizes(train=20, val=45, test=10, unused=25)),
    ],
)
def test_resolved_sizes(options: dict, expected: SplitSizes) -> None:
    assert resolve_split_sizes(100, **options) == expected


@pytest.mark.parametrize(
    "options, words",
    [
        ({"test_size": 0}, "test_size"),
        ({"test_size": 100}, "test_size"),
        ({"test_size": 1.0}, "test_size"),
        ({"test_size": -3}, "test_size"),
        ({"test_size": "10"}, "test_size"),
        ({"test_size": True}, "test_size"),
        ({"test_size": None}, "test_size"),
        ({"test_size": 10, "val_fraction": 1.0}, "val_fraction"),
        ({"test_size": 10, "val_fraction": -0.1}, "val_fraction"),
        ({"test_size": 10, "val_fraction": "a"}, "val_fraction"),
        ({"test_size": 10, "val_size": -1}, "val_size"),
        ({"test_size": 10, "val_size": 2.5}, "val_size"),
        ({"test_size": 10, "val_size": 1, "val_fraction": 0.1}, "not both"),
        ({"test_size": 10, "train_size": 0}, "train_size"),
        ({"test_size": 10, "train_size": 95}, "train_size"),
        ({"test_size": 90, "val_size": 10}, "no rows left"),
    ],
)
def test_bad_sizes_name_the_option(options: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        resolve_split_sizes(100, **options)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(3, 400),
    test_share=st.floats(0.01, 0.6),
    val_fraction=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**31),
)
def test_indices_partition_and_sizes(n: int, test_share: float, val_fraction: float, seed: int) -> None:
    test = max(1, min(n - 2, int(test_share * n)))
    sizes = resolve_split_sizes(n, test_size=test, val_fraction=val_fraction)
    train, val, test_rows = split_indices(n, seed, sizes)
    assert (len(train), len(val), len(test_rows)) == (sizes.train, sizes.val, sizes.test)
    assert sizes.train + sizes.val + sizes.test + sizes.unused == n
    everything = np.concatenate([train, val, test_rows])
    assert len(set(everything.tolist())) == len(everything)  # disjoint
    assert sizes.unused == 0 and sorted(everything.tolist()) == list(range(n))  # a partition by default
    for rows in (train, val, test_rows):
        assert np.all(np.diff(rows) > 0)  # table order inside a split


def test_split_is_deterministic_and_seed_dependent() -> None:
    a, b, c = _split(seed=3), _split(seed=3), _split(seed=4)
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(a, name).x, getattr(b, name).x)
        assert getattr(a, name).ids == getattr(b, name).ids
    assert _rows(a.test) != _rows(c.test)


def test_rows_keep_their_inputs_and_labels() -> None:
    data = _split(seed=1)
    for split in (data.train, data.val, data.test):
        rows = np.array([int(i) for i in split.ids])
        assert torch.equal(split.y, torch.tensor(rows * 10.0, dtype=torch.float32))
        assert torch.equal(split.x[:, 0], torch.tensor(rows * 3.0, dtype=torch.float32))
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.float32


def test_test_split_fixed_and_train_nested_across_sizes() -> None:
    small = _split(n=200, seed=7, test_size=40, val_size=16, train_size=50)
    large = _split(n=200, seed=7, test_size=40, val_size=16, train_size=120)
    full = _split(n=200, seed=7, test_size=40, val_size=16)
    assert _rows(small.test) == _rows(large.test) == _rows(full.test)
    assert _rows(small.val) == _rows(large.val)
    assert _rows(small.train) < _rows(large.train) < _rows(full.train)
    assert len(small.train) == 50 and small.info["sizes"]["unused"] == 200 - 40 - 16 - 50


def test_info_records_seed_and_sizes() -> None:
    data = _split(seed=5, test_size=10, val_size=4)
    assert data.info["seed"] == 5
    assert data.info["sizes"] == {"train": 36, "val": 4, "test": 10, "unused": 0}


def test_variance_follows_its_rows() -> None:
    x, y = _table(30)
    data = split_table("toy", x, y, seed=0, test_size=5, variance=y / 100.0, feature_names="abc", target_name="t")
    for split in (data.train, data.val, data.test):
        assert torch.allclose(split.variance, split.y / 100.0)


def test_standardizer_uses_training_rows_only() -> None:
    data = _split(n=60, seed=2, test_size=20)
    stats = Standardizer.fit(data)
    train_x = data.train.x.double()
    assert stats.y_mean == pytest.approx(float(data.train.y.double().mean()))
    assert stats.y_std == pytest.approx(float(np.std(data.train.y.numpy().astype(np.float64), ddof=1)))
    assert torch.allclose(stats.x_mean.double(), train_x.mean(0), rtol=1e-6)
    all_y = np.arange(60) * 10.0
    assert stats.y_mean != pytest.approx(all_y.mean())  # not the statistics of all rows


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True, None])
def test_bad_seed(seed: object) -> None:
    with pytest.raises(ValueError, match="seed"):
        _split(seed=seed)  # type: ignore[arg-type]


def test_shape_checks() -> None:
    x, y = _table(10)
    with pytest.raises(ValueError, match="shape"):
        split_table("toy", x[:5], y, seed=0, test_size=2, feature_names="abc", target_name="t")
    with pytest.raises(ValueError, match="feature names"):
        split_table("toy", x, y, seed=0, test_size=2, feature_names="ab", target_name="t")


def test_option_checks() -> None:
    assert check_option("red", ("red", "white"), "colour") == "red"
    with pytest.raises(ValueError, match=r"colour must be one of 'red', 'white'; got 'blue'"):
        check_option("blue", ("red", "white"), "colour")
    with pytest.raises(ValueError, match="colour_feature"):
        check_bool(1, "colour_feature")


def test_unknown_and_missing_options_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown option colour.*valid options: seed, n, d, train_size"):
        load_dataset("synthetic-hetero", colour="red")
    with pytest.raises(ValueError, match=r"needs the options path, target"):
        load_dataset("csv")
    with pytest.raises(ValueError, match="unknown dataset 'nope'; valid datasets: .*wine"):
        load_dataset("nope")
