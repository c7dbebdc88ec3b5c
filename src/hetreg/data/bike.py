"""Bike Sharing (UCI; Fanaee-T & Gama 2013): hourly rental count ``cnt`` from 19 engineered inputs.

File: ``<data folder>/bike-sharing/hour.csv`` (17379 rows, 2011-01-01 to 2012-12-31), as released
by UCI (CC BY 4.0). Get it with ``python -m hetreg.data.download bike``.

The 19 inputs are those of the original BIV code (its preprocessing script was not published; the
list below follows its description):

* ``yr`` (0 for 2011, 1 for 2012);
* ``date_sin``, ``date_cos``: :math:`\\sin, \\cos(4\\pi\\,\\mathrm{day}/730)`, where ``day`` is the
  number of days since 2011-01-01 (0 on 2011-01-01, 730 on 2012-12-31); one period is 365 days,
  so the pair encodes the time of year;
* ``hour_sin``, ``hour_cos``: :math:`\\sin, \\cos(2\\pi h/24)` for the hour ``h`` in 0..23;
* ``weekday_sun`` … ``weekday_sat``: one-hot of ``weekday`` (UCI coding, 0 = Sunday);
* ``holiday``, ``workingday``, ``weathersit`` (1..4), ``temp``, ``atemp``, ``hum``, ``windspeed``
  (as in the file: already divided by 41, 50, 100 and 67).

``season`` and ``mnth`` are dropped (the date encoding carries them), and so are ``instant``,
``casual`` and ``registered`` (``cnt = casual + registered`` would leak the label).

Split: rows in file order (by ``instant``), then :func:`hetreg.data.tabular.split_table`. The
original used 3379 test rows (and the first N of the rest for training, no validation); the
default here is **3379 test rows**, 10% of the other 14000 for validation (1400) and 12600 for
training.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from hetreg.data.base import RegressionData, register_dataset
from hetreg.data.status import BIKE_HOUR
from hetreg.data.tabular import Size, read_release_csv, require_columns, split_table, strict_options

BIKE_START = "2011-01-01"
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
BIKE_FEATURES = (
    "yr",
    "date_sin",
    "date_cos",
    "hour_sin",
    "hour_cos",
    *(f"weekday_{d}" for d in WEEKDAYS),
    "holiday",
    "workingday",
    "weathersit",
    "temp",
    "atemp",
    "hum",
    "windspeed",
)
BIKE_TARGET = "cnt"
BIKE_INPUT_COLUMNS = (
    "dteday",
    "yr",
    "hr",
    "weekday",
    "holiday",
    "workingday",
    "weathersit",
    "temp",
    "atemp",
    "hum",
    "windspeed",
)
ORIGINAL_TEST_SIZE = 3379


def bike_features(frame: pd.DataFrame) -> np.ndarray:
    """The 19 inputs (columns in the order of :data:`BIKE_FEATURES`) of rows of ``hour.csv``.

    ``day = (dteday − 2011-01-01)`` in days; date angle :math:`4\\pi\\,\\mathrm{day}/730`; hour
    angle :math:`2\\pi h/24`; ``weekday`` one-hot with 0 = Sunday.

    Args:
        frame: rows with at least the columns of :data:`BIKE_INPUT_COLUMNS`.

    Returns:
        float64 array of shape (rows, 19).
    """
    require_columns(frame, BIKE_INPUT_COLUMNS, "the bike table")
    day = (pd.to_datetime(frame["dteday"], format="%Y-%m-%d") - pd.Timestamp(BIKE_START)).dt.days.to_numpy()
    date_angle = 4.0 * math.pi * day / 730.0
    hour_angle = 2.0 * math.pi * frame["hr"].to_numpy(dtype=np.float64) / 24.0
    weekday = frame["weekday"].to_numpy()
    bad = ~np.isin(weekday, np.arange(7))
    if bad.any():
        found = sorted({str(v) for v in weekday[bad].tolist()})
        raise ValueError(f"weekday must be an integer 0..6 (0 = Sunday), found {', '.join(found)}")
    one_hot = np.eye(7)[weekday.astype(int)]
    rest = frame.loc[:, ["holiday", "workingday", "weathersit", "temp", "atemp", "hum", "windspeed"]]
    return np.column_stack(
        [
            frame["yr"].to_numpy(dtype=np.float64),
            np.sin(date_angle),
            np.cos(date_angle),
            np.sin(hour_angle),
            np.cos(hour_angle),
            one_hot,
            rest.to_numpy(dtype=np.float64),
        ]
    )


@strict_options("bike")
def load_bike(
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    *,
    train_size: Size = None,
    test_size: Size = ORIGINAL_TEST_SIZE,
    val_fraction: float | None = None,
    val_size: int | None = None,
) -> RegressionData:
    """Load Bike Sharing (hourly) with the 19 engineered inputs and the raw count ``cnt``.

    Args:
        root: data folder (else ``$HETREG_DATA``, else the per-user data directory).
        seed: split seed.
        train_size, test_size, val_fraction, val_size: split sizes (see
            :mod:`hetreg.data.tabular`); defaults in the module docstring.

    Raises:
        DataNotFoundError: ``bike-sharing/hour.csv`` is missing from the data folder.
        ValueError: a bad option, or a file without the expected columns.
    """
    frame, path, state = read_release_csv("bike", BIKE_HOUR, root)
    require_columns(frame, (*BIKE_INPUT_COLUMNS, "instant", BIKE_TARGET), path)
    return split_table(
        "bike",
        bike_features(frame),
        frame[BIKE_TARGET].to_numpy(dtype=np.float64),
        seed=seed,
        test_size=test_size,
        train_size=train_size,
        val_fraction=val_fraction,
        val_size=val_size,
        feature_names=BIKE_FEATURES,
        target_name=BIKE_TARGET,
        ids=[str(i) for i in frame["instant"].tolist()],
        info={
            "source": str(path),
            "sha256": {BIKE_HOUR.relpath: state},
            "features": "yr, sin/cos(4*pi*day/730) with day = days since 2011-01-01, sin/cos(2*pi*hr/24), "
            "weekday one-hot (0 = Sunday), holiday, workingday, weathersit, temp, atemp, hum, windspeed",
            "row_order": "file order (ids are the 'instant' column)",
        },
    )


register_dataset("bike", load_bike)
