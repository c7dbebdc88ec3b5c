"""User tables (csv, parquet): target, variance column, feature choice, and every error case."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hetreg.data import DataNotFoundError, load_dataset


def _frame(n: int = 40) -> pd.DataFrame:
    i = np.arange(n)
    return pd.DataFrame(
        {
            "a": i * 1.0,
            "name": [f"row{k}" for k in i],  # not numeric: never a default feature
            "b": (i % 7) * 0.5,
            "flag": i % 2 == 0,
            "y": i * 2.0 + 1.0,
            "var": (i % 5) * 0.25,
        }
    )


@pytest.fixture(params=["csv", "parquet"])
def table(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    """Write ``_frame()`` as csv or parquet; return (dataset name, path)."""
    kind = request.param
    path = tmp_path / f"t.{kind}"
    if kind == "csv":
        _frame().to_csv(path, index=False)
    else:
        _frame().to_parquet(path)
    return kind, path


def _rows(split) -> np.ndarray:
    return np.array([int(i) for i in split.ids])


def test_target_variance_and_default_features(table: tuple[str, Path]) -> None:
    kind, path = table
    data = load_dataset(kind, path=str(path), target="y", variance="var", seed=3)
    assert data.feature_names == ("a", "b", "flag") and data.target_name == "y"
    assert (len(data.train), len(data.val), len(data.test)) == (29, 3, 8)  # test 20%, val 10% of the rest
    for split in (data.train, data.val, data.test):
        rows = _rows(split)
        assert torch.equal(split.y, torch.tensor(rows * 2.0 + 1.0, dtype=torch.float32))
        assert torch.equal(split.variance, torch.tensor((rows % 5) * 0.25, dtype=torch.float32))
        assert torch.equal(split.x[:, 2], torch.tensor(rows % 2 == 0, dtype=torch.float32))
    assert data.info["variance_column"] == "var" and data.info["source"] == str(path)


def test_explicit_features_and_no_variance(table: tuple[str, Path]) -> None:
    kind, path = table
    data = load_dataset(kind, path=path, target="y", features=["b", "var"], test_size=10, val_size=0)
    assert data.feature_names == ("b", "var") and data.train.variance is None
    as_string = load_dataset(kind, path=path, target="y", features="b, var", test_size=10, val_size=0)
    assert torch.equal(as_string.train.x, data.train.x)


def test_same_seed_same_split(table: tuple[str, Path]) -> None:
    kind, path = table
    a = load_dataset(kind, path=path, target="y", seed=9)
    b = load_dataset(kind, path=path, target="y", seed=9)
    c = load_dataset(kind, path=path, target="y", seed=10)
    assert a.test.ids == b.test.ids and a.test.ids != c.test.ids


def test_relative_path_in_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tables").mkdir()
    _frame().to_csv(tmp_path / "tables" / "t.csv", index=False)
    monkeypatch.chdir(tmp_path / "tables")  # found in the current directory
    assert len(load_dataset("csv", path="t.csv", target="y").test) == 8
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HETREG_DATA", str(tmp_path / "tables"))  # found in the data folder
    assert len(load_dataset("csv", path="t.csv", target="y").test) == 8


def test_separator(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    _frame().to_csv(path, index=False, sep=";")
    data = load_dataset("csv", path=path, target="y", sep=";")
    assert data.feature_names == ("a", "b", "flag", "var")


def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HETREG_DATA", str(tmp_path / "data"))
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("csv", path="nope.csv", target="y")
    message = str(info.value)
    assert str(tmp_path / "nope.csv") in message and str(tmp_path / "data" / "nope.csv") in message
    assert "$HETREG_DATA" in message
    with pytest.raises(FileNotFoundError, match="parquet: file not found"):
        load_dataset("parquet", path=tmp_path / "absent.parquet", target="y")


@pytest.mark.parametrize(
    "options, words",
    [
        ({"target": "z"}, r"no column 'z'; available columns: 'a', 'name', 'b', 'flag', 'y', 'var'"),
        ({"target": "y", "variance": "v"}, r"no column 'v'; available columns: 'a'"),
        ({"target": "y", "features": ["a", "c"]}, r"no column 'c'; available columns: 'a'"),
        ({"target": "name"}, r"target column 'name' .* is not numeric"),
        ({"target": "y", "variance": "name"}, r"variance column 'name' .* is not numeric"),
        ({"target": "y", "features": ["a", "name"]}, r"feature column 'name' .* is not numeric"),
        ({"target": "y", "features": ["a", "y"]}, r"must not contain the target or variance column \('y'\)"),
        ({"target": "y", "variance": "var", "features": ["var"]}, r"must not contain .*\('var'\)"),
        ({"target": "y", "features": []}, r"features is empty"),
        ({"target": "y", "features": ["a", "a"]}, r"lists a column twice"),
        ({"target": "y", "features": 3}, r"features must be a list"),
        ({"target": "y", "variance": "y"}, r"variance and target are the same column"),
        ({"target": 1}, r"target must be the name"),
        ({"target": "y", "test_size": 40}, r"test_size"),
        ({"target": "y", "sep": ""}, r"sep must be"),
        ({"target": "y", "bogus": 1}, r"unknown option bogus for dataset 'csv'; valid options: seed, path, target"),
    ],
)
def test_csv_errors(tmp_path: Path, options: dict, words: str) -> None:
    path = tmp_path / "t.csv"
    _frame().to_csv(path, index=False)
    with pytest.raises(ValueError, match=words):
        load_dataset("csv", path=path, **options)


@pytest.mark.parametrize(
    "column, value, words",
    [
        ("var", -0.5, r"variance column 'var' .* negative value \(-0.5\) in data row 7 "),
        ("var", math.inf, r"variance column 'var' .* non-finite value \(inf\) in data row 7 "),
        ("var", math.nan, r"variance column 'var' .* non-finite value \(nan\) in data row 7 "),
        ("y", math.nan, r"target column 'y' .* non-finite value \(nan\) in data row 7 "),
        ("b", -math.inf, r"feature column 'b' .* non-finite value \(-inf\) in data row 7 "),
    ],
)
def test_bad_values_name_the_row(table: tuple[str, Path], column: str, value: float, words: str) -> None:
    kind, path = table
    frame = _frame()
    frame.loc[7, column] = value
    if kind == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path)
    with pytest.raises(ValueError, match=words):
        load_dataset(kind, path=path, target="y", variance="var")


def test_no_numeric_feature(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"name": ["a", "b", "c"], "y": [1.0, 2.0, 3.0]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"no numeric column besides 'y'; pass features="):
        load_dataset("csv", path=path, target="y", test_size=1)


def test_empty_and_unreadable_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("a,y\n")
    with pytest.raises(ValueError, match="has no data rows"):
        load_dataset("csv", path=empty, target="y")
    blank = tmp_path / "blank.csv"
    blank.write_text("")
    with pytest.raises(ValueError, match="could not read .* as csv"):
        load_dataset("csv", path=blank, target="y")
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_text("a,y\n1,2\n")
    with pytest.raises(ValueError, match="could not read .* as parquet"):
        load_dataset("parquet", path=not_parquet, target="y")
