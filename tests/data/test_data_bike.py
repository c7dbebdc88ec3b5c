"""Bike Sharing: the 19 engineered inputs checked against hand-computed values."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from hetreg.data import DataNotFoundError, load_dataset
from hetreg.data.bike import BIKE_FEATURES, bike_features

pytestmark = pytest.mark.filterwarnings("ignore:.*differs from the published:UserWarning")

R3 = math.sqrt(3.0) / 2.0
# instant -> expected inputs by name (the rest of the weekday one-hot is 0) and cnt.
# Day index = days since 2011-01-01: 2011-07-04 is 31+28+31+30+31+30+3 = 184; 2012-03-01 is
# 365 + 31 + 29 = 425 (2012 is a leap year); 2012-12-31 is 365 + 365 = 730 (angle 4*pi).
EXPECTED = {
    "1": (
        {"yr": 0, "date_sin": 0.0, "date_cos": 1.0, "hour_sin": 0.0, "hour_cos": 1.0, "weekday_sat": 1,
         "holiday": 0, "workingday": 0, "weathersit": 1, "temp": 0.24, "atemp": 0.2879, "hum": 0.81,
         "windspeed": 0.0},
        16,
    ),
    "4323": (
        {"yr": 0, "date_sin": math.sin(4 * math.pi * 184 / 730), "date_cos": math.cos(4 * math.pi * 184 / 730),
         "hour_sin": 0.0, "hour_cos": 1.0, "weekday_mon": 1, "holiday": 1, "workingday": 0, "weathersit": 1,
         "temp": 0.64, "atemp": 0.5758, "hum": 0.83, "windspeed": 0.1343},
        140,
    ),
    "10093": (
        # 4*pi*425/730 = 2*pi + 2*pi*120/730; hour 14: angle 7*pi/6
        {"yr": 1, "date_sin": math.sin(2 * math.pi * 120 / 730), "date_cos": math.cos(2 * math.pi * 120 / 730),
         "hour_sin": -0.5, "hour_cos": -R3, "weekday_thu": 1, "holiday": 0, "workingday": 1, "weathersit": 1,
         "temp": 0.58, "atemp": 0.5455, "hum": 0.35, "windspeed": 0.2239},
        211,
    ),
    "17379": (
        # hour 23: angle 2*pi - pi/12
        {"yr": 1, "date_sin": 0.0, "date_cos": 1.0, "hour_sin": -math.sin(math.pi / 12),
         "hour_cos": math.cos(math.pi / 12), "weekday_mon": 1, "holiday": 0, "workingday": 1, "weathersit": 1,
         "temp": 0.26, "atemp": 0.2727, "hum": 0.65, "windspeed": 0.1343},
        49,
    ),
}


def _expected_vector(values: dict) -> np.ndarray:
    return np.array([float(values.get(name, 0.0)) for name in BIKE_FEATURES])


def _by_id(data) -> dict[str, tuple[np.ndarray, float]]:
    rows = {}
    for split in (data.train, data.val, data.test):
        for k, row_id in enumerate(split.ids):
            rows[row_id] = (split.x[k].numpy(), split.y[k].item())
    return rows


def test_nineteen_named_features() -> None:
    assert len(BIKE_FEATURES) == 19
    assert "season" not in BIKE_FEATURES and "mnth" not in BIKE_FEATURES and "cnt" not in BIKE_FEATURES
    assert BIKE_FEATURES[5:12] == tuple(f"weekday_{d}" for d in ("sun", "mon", "tue", "wed", "thu", "fri", "sat"))


def test_features_of_hand_checked_rows(fake_root: Path) -> None:
    frame = pd.read_csv(fake_root / "bike-sharing" / "hour.csv")
    x = bike_features(frame)
    assert x.shape == (5, 19)
    for k, instant in enumerate(frame["instant"].astype(str)):
        if instant in EXPECTED:
            np.testing.assert_allclose(x[k], _expected_vector(EXPECTED[instant][0]), atol=1e-12)
    assert x[:, 5:12].sum(axis=1).tolist() == [1.0] * 5  # exactly one weekday each


def test_loader_on_small_file(fake_root: Path) -> None:
    data = load_dataset("bike", root=fake_root, test_size=1, val_size=1)
    rows = _by_id(data)
    assert sorted(rows, key=int) == ["1", "2", "4323", "10093", "17379"]
    for instant, (values, count) in EXPECTED.items():
        np.testing.assert_allclose(rows[instant][0], _expected_vector(values), atol=1e-6)
        assert rows[instant][1] == count
    assert data.target_name == "cnt" and data.feature_names == BIKE_FEATURES


def test_bad_weekday(fake_root: Path) -> None:
    frame = pd.read_csv(fake_root / "bike-sharing" / "hour.csv")
    frame.loc[0, "weekday"] = 7
    with pytest.raises(ValueError, match=r"weekday must be an integer 0..6 \(0 = Sunday\), found 7$"):
        bike_features(frame)


def test_missing_column_is_named(fake_root: Path) -> None:
    frame = pd.read_csv(fake_root / "bike-sharing" / "hour.csv").drop(columns=["atemp"])
    with pytest.raises(ValueError, match=r"no column 'atemp'; available columns: 'instant'"):
        bike_features(frame)


def test_default_test_size_needs_enough_rows(fake_root: Path) -> None:
    with pytest.raises(ValueError, match=r"test_size=3379.*bike has 5 rows"):
        load_dataset("bike", root=fake_root)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"bike: file not found: .*bike-sharing/hour.csv[\s\S]*the root argument"):
        load_dataset("bike", root=tmp_path)


def test_real_file(shared_file: Callable[[str], Path]) -> None:
    path = shared_file("bike-sharing/hour.csv")
    data = load_dataset("bike", root=path.parent.parent, seed=1)
    assert (len(data.train), len(data.val), len(data.test)) == (12600, 1400, 3379)
    assert data.info["sha256"] == {"bike-sharing/hour.csv": "verified"}
    rows = _by_id(data)
    assert len(rows) == 17379
    for instant, (values, count) in EXPECTED.items():
        np.testing.assert_allclose(rows[instant][0], _expected_vector(values), atol=1e-6)
        assert rows[instant][1] == count
    x = np.concatenate([data.train.x.numpy(), data.val.x.numpy(), data.test.x.numpy()])
    assert np.all(x[:, 5:12].sum(axis=1) == 1)
    radius = x[:, 1] ** 2 + x[:, 2] ** 2
    np.testing.assert_allclose(radius, 1.0, atol=1e-6)
