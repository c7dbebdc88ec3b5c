"""Wine Quality loader: options on a small fake release, row counts on the real files."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import torch

from hetreg.data import DataNotFoundError, load_dataset
from hetreg.data.wine import WINE_FEATURES

pytestmark = pytest.mark.filterwarnings("ignore:.*differs from the published:UserWarning")


def _all_rows(data) -> list[str]:
    return [i for split in (data.train, data.val, data.test) for i in split.ids]


def test_pooled_rows_and_features(fake_root: Path) -> None:
    data = load_dataset("wine", root=fake_root, test_size=20)
    ids = _all_rows(data)
    assert len(ids) == 80 and len(set(ids)) == 80
    assert sum(i.startswith("red:") for i in ids) == 30
    assert data.feature_names == WINE_FEATURES and data.target_name == "quality"
    assert data.input_shape == (11,)
    assert (len(data.train), len(data.val), len(data.test)) == (54, 6, 20)


def test_values_match_the_file(fake_root: Path) -> None:
    data = load_dataset("wine", root=fake_root, test_size=20)
    white = pd.read_csv(fake_root / "wine-quality" / "winequality-white.csv", sep=";")
    for split in (data.train, data.val, data.test):
        for k, row_id in enumerate(split.ids):
            colour, row = row_id.split(":")
            if colour == "white":
                expected = white.iloc[int(row)]
                assert split.y[k].item() == expected["quality"]
                assert np.allclose(split.x[k].numpy(), expected[list(WINE_FEATURES)].to_numpy(float), rtol=1e-6)


@pytest.mark.parametrize("colour, n", [("red", 30), ("white", 50)])
def test_single_colour(fake_root: Path, colour: str, n: int) -> None:
    data = load_dataset("wine", root=fake_root, colour=colour)
    ids = _all_rows(data)
    assert len(ids) == n and all(i.startswith(colour) for i in ids)
    assert len(data.test) == round(n * 2491 / 6491)  # the original test share


def test_colour_feature(fake_root: Path) -> None:
    data = load_dataset("wine", root=fake_root, test_size=20, colour_feature=True)
    assert data.feature_names[-1] == "is_red" and data.input_shape == (12,)
    for split in (data.train, data.val, data.test):
        is_red = torch.tensor([i.startswith("red") for i in split.ids], dtype=torch.float32)
        assert torch.equal(split.x[:, -1], is_red)


def test_checksum_state_recorded_and_warned(fake_root: Path) -> None:
    with pytest.warns(UserWarning, match="differs from the published wine-quality/winequality-red.csv"):
        data = load_dataset("wine", root=fake_root, test_size=20)
    assert data.info["sha256"] == {
        "wine-quality/winequality-red.csv": "mismatch",
        "wine-quality/winequality-white.csv": "mismatch",
    }


@pytest.mark.parametrize(
    "options, words",
    [
        ({"colour": "rose"}, "colour must be one of 'both', 'red', 'white'; got 'rose'"),
        ({"colour_feature": "yes"}, "colour_feature must be true or false"),
        ({"test_size": 81}, "test_size"),
        ({"train_size": 4000, "test_size": 20}, "train_size"),
        ({"color": "red"}, "unknown option color for dataset 'wine'; valid options: seed, colour"),
    ],
)
def test_bad_options(fake_root: Path, options: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        load_dataset("wine", root=fake_root, **options)


def test_missing_column(fake_root: Path) -> None:
    path = fake_root / "wine-quality" / "winequality-red.csv"
    path.write_text(path.read_text().replace('"alcohol"', '"alc"'))
    with pytest.raises(ValueError, match=r"no column 'alcohol'; available columns: .*'alc'"):
        load_dataset("wine", root=fake_root, test_size=20)


def test_missing_file_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HETREG_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("wine")
    message = str(info.value)
    assert str(tmp_path / "wine-quality" / "winequality-red.csv") in message
    assert "$HETREG_DATA" in message and "wine-quality/winequality-white.csv" in message
    assert "python -m hetreg.data.download wine" in message
    assert isinstance(info.value, FileNotFoundError) and info.value.dataset == "wine"


# -- the real release (skipped without HETREG_DATA) ------------------------------------------


def test_real_row_counts(shared_file: Callable[[str], Path]) -> None:
    root = shared_file("wine-quality/winequality-red.csv").parent.parent
    shared_file("wine-quality/winequality-white.csv")
    data = load_dataset("wine", root=root)
    ids = _all_rows(data)
    assert len(ids) == 1599 + 4898 == len(set(ids))
    assert sum(i.startswith("red:") for i in ids) == 1599
    assert (len(data.train), len(data.val), len(data.test)) == (3605, 401, 2491)
    assert data.info["sha256"] == {
        "wine-quality/winequality-red.csv": "verified",
        "wine-quality/winequality-white.csv": "verified",
    }
    labels = torch.cat([data.train.y, data.val.y, data.test.y])
    assert labels.min().item() == 3 and labels.max().item() == 9
    original = load_dataset("wine", root=root, train_size=4000, test_size=2491, val_fraction=0)
    assert (len(original.train), len(original.val), len(original.test)) == (4000, 0, 2491)
    assert original.info["sizes"]["unused"] == 6
    assert set(original.test.ids) == set(data.test.ids)  # same seed: same test rows
    red = load_dataset("wine", root=root, colour="red")
    assert len(red.train) + len(red.val) + len(red.test) == 1599
