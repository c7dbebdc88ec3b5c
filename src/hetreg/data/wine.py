"""Wine Quality (UCI; Cortez et al. 2009): 11 physicochemical inputs → sensory ``quality`` score.

Files: ``<data folder>/wine-quality/winequality-red.csv`` (1599 rows) and
``winequality-white.csv`` (4898 rows), semicolon-separated, as released by UCI (CC BY 4.0).
Get them with ``python -m hetreg.data.download wine``.

Row order before splitting: red rows in file order, then white rows in file order. The split is
:func:`hetreg.data.tabular.split_table` (seeded permutation; test first, then validation, train).

Defaults and the original BIV protocol: the original pooled red and white (6491 rows, 6 fewer
than the release, reason unknown) into 4000 training and 2491 test rows, with no validation
split and no colour indicator. Here the default keeps its test size, **2491 test rows**, and
takes 10% of the remaining rows for validation (401), leaving 3605 for training. The original
sizes are ``train_size=4000, test_size=2491, val_fraction=0`` (6 rows of the release then stay
unused). With ``colour="red"`` or ``"white"`` the default test share is the original one,
2491/6491 ≈ 38.4% of the rows.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from hetreg.data.base import RegressionData, register_dataset
from hetreg.data.status import WINE_RED, WINE_WHITE
from hetreg.data.tabular import (
    Size,
    check_bool,
    check_option,
    read_release_csv,
    require_columns,
    split_table,
    strict_options,
)

WINE_FEATURES = (
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
)
WINE_TARGET = "quality"
COLOURS = ("both", "red", "white")
ORIGINAL_TEST_SIZE = 2491
ORIGINAL_ROWS = 6491


@strict_options("wine")
def load_wine(
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    *,
    colour: str = "both",
    colour_feature: bool = False,
    train_size: Size = None,
    test_size: Size = None,
    val_fraction: float | None = None,
    val_size: int | None = None,
) -> RegressionData:
    """Load Wine Quality with raw inputs and clean integer quality labels (as float32).

    Args:
        root: data folder (else ``$HETREG_DATA``, else the per-user data directory).
        seed: split seed.
        colour: ``"both"`` (pooled, as the original), ``"red"`` or ``"white"``.
        colour_feature: add a 12th input ``is_red`` (1 for red, 0 for white).
        train_size, test_size, val_fraction, val_size: split sizes (see
            :mod:`hetreg.data.tabular`); defaults in the module docstring.

    Raises:
        DataNotFoundError: a csv file is missing from the data folder.
        ValueError: a bad option, or a file without the expected columns.
    """
    check_option(colour, COLOURS, "colour")
    colour_feature = check_bool(colour_feature, "colour_feature")
    parts = []
    paths = {}
    checksums = {}
    for name, item in (("red", WINE_RED), ("white", WINE_WHITE)):
        if colour not in ("both", name):
            continue
        frame, path, state = read_release_csv("wine", item, root, sep=";")
        require_columns(frame, (*WINE_FEATURES, WINE_TARGET), path)
        frame = frame.assign(is_red=1.0 if name == "red" else 0.0, _id=[f"{name}:{i}" for i in range(len(frame))])
        parts.append(frame)
        paths[name] = str(path)
        checksums[item.relpath] = state
    table = pd.concat(parts, ignore_index=True)
    features = (*WINE_FEATURES, "is_red") if colour_feature else WINE_FEATURES
    n = len(table)
    if test_size is None:
        test_size = ORIGINAL_TEST_SIZE if colour == "both" else int(round(n * ORIGINAL_TEST_SIZE / ORIGINAL_ROWS))
    return split_table(
        "wine",
        table.loc[:, list(features)].to_numpy(dtype=np.float64),
        table[WINE_TARGET].to_numpy(dtype=np.float64),
        seed=seed,
        test_size=test_size,
        train_size=train_size,
        val_fraction=val_fraction,
        val_size=val_size,
        feature_names=features,
        target_name=WINE_TARGET,
        ids=table["_id"].tolist(),
        info={
            "source": paths,
            "sha256": checksums,
            "colour": colour,
            "colour_feature": colour_feature,
            "row_order": "red rows in file order, then white rows (ids '<colour>:<data row>')",
        },
    )


register_dataset("wine", load_wine)
