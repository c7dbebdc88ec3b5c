"""Any user table (csv or parquet) as a regression dataset, optionally with known label variances.

Options (datasets ``csv`` and ``parquet``):

* ``path``: the file. An absolute path is used as is; a relative one is looked up in the current
  directory first, then in the data folder (``root`` / ``$HETREG_DATA`` / per-user folder).
* ``target``: the label column (numeric, finite).
* ``variance``: optional column of known per-label noise variances, in squared label units
  (finite, >= 0); it becomes :attr:`hetreg.data.base.Split.variance`, so variance-aware losses
  (IV, BIV, cutoff) can use real variances instead of simulated ones.
* ``features``: input columns (a list, or one comma-separated string); default every other
  numeric column (the target and variance columns excluded).
* ``sep`` (csv only): the field separator, default ``","``.
* split sizes as in :mod:`hetreg.data.tabular`; defaults: 20% of the rows for testing, 10% of the
  rest for validation.

Rows keep their file order before the seeded split; ``ids`` are the 0-based data row numbers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from hetreg.data.base import RegressionData, register_dataset
from hetreg.data.location import data_root, data_root_source
from hetreg.data.status import DataNotFoundError
from hetreg.data.tabular import Size, require_columns, split_table, strict_options

DEFAULT_TEST_FRACTION = 0.2


def resolve_table_path(path: object, root: str | os.PathLike[str] | None, dataset: str) -> Path:
    """Find ``path``: as given if absolute, else in the current directory, then the data folder.

    Raises:
        ValueError: ``path`` is not a string or path.
        DataNotFoundError: no candidate exists; the message lists every place tried.
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"path must be the file name of the {dataset} table, got {path!r}")
    given = Path(path).expanduser()
    candidates = [given] if given.is_absolute() else [Path.cwd() / given, data_root(root) / given]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = " and ".join(str(c) for c in candidates)
    where = "" if given.is_absolute() else f" (the data folder comes from {data_root_source(root)})"
    raise DataNotFoundError(
        f"{dataset}: file not found: {str(path)!r}; looked for {tried}{where}. Pass an absolute path, a "
        f"path relative to the current directory, or one relative to the data folder.",
        dataset=dataset,
        path=candidates[-1],
    )


def _numeric_column(frame: pd.DataFrame, column: str, role: str, source: Path) -> np.ndarray:
    """The column as float64, refusing non-numeric data and non-finite values (naming the row)."""
    series = frame[column]
    if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
        raise ValueError(
            f"{role} column {column!r} of {source} is not numeric (dtype {series.dtype}); "
            f"convert it or choose another column"
        )
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(
            f"{role} column {column!r} of {source} has a non-finite value ({values[bad[0]]}) in data row "
            f"{bad[0]} (0-based, header excluded){f' and {bad.size - 1} more rows' if bad.size > 1 else ''}; "
            f"drop or fix those rows"
        )
    return values


def _feature_list(features: object, frame: pd.DataFrame, exclude: Sequence[str], source: Path) -> list[str]:
    if features is None:
        chosen = [
            str(c)
            for c in frame.columns
            if c not in exclude
            and (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
        ]
        if not chosen:
            raise ValueError(
                f"{source} has no numeric column besides {', '.join(map(repr, exclude))}; pass features= "
                f"(available columns: {', '.join(map(repr, map(str, frame.columns)))})"
            )
        return chosen
    if isinstance(features, str):
        chosen = [f.strip() for f in features.split(",") if f.strip()]
    elif isinstance(features, (list, tuple)) and all(isinstance(f, str) for f in features):
        chosen = list(features)
    else:
        raise ValueError(f"features must be a list of column names (or one comma-separated string), got {features!r}")
    if not chosen:
        raise ValueError("features is empty; name at least one input column, or omit it to use every numeric column")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"features lists a column twice: {chosen}")
    require_columns(frame, chosen, source)
    clash = [f for f in chosen if f in exclude]
    if clash:
        raise ValueError(
            f"features must not contain the target or variance column ({', '.join(map(repr, clash))}); "
            f"that would leak the label"
        )
    return chosen


def table_to_data(
    name: str,
    frame: pd.DataFrame,
    source: Path,
    *,
    seed: int,
    target: object,
    variance: object = None,
    features: object = None,
    **sizes: Any,
) -> RegressionData:
    """Turn a DataFrame read from ``source`` into a split :class:`RegressionData`.

    See the module docstring for ``target``, ``variance`` and ``features``; ``sizes`` are the
    split options of :func:`hetreg.data.tabular.split_table`.
    """
    if not isinstance(target, str) or not target:
        raise ValueError(f"target must be the name of the label column, got {target!r}")
    if variance is not None and (not isinstance(variance, str) or not variance):
        raise ValueError(f"variance must be the name of a column of label variances (or omitted), got {variance!r}")
    if variance == target:
        raise ValueError(f"variance and target are the same column {target!r}")
    if len(frame) == 0:
        raise ValueError(f"{source} has no data rows")
    require_columns(frame, [target] + ([variance] if variance else []), source)
    y = _numeric_column(frame, target, "target", source)
    var = None
    if variance is not None:
        var = _numeric_column(frame, variance, "variance", source)
        negative = np.flatnonzero(var < 0)
        if negative.size:
            raise ValueError(
                f"variance column {variance!r} of {source} has a negative value ({var[negative[0]]}) in data row "
                f"{negative[0]} (0-based, header excluded); variances must be >= 0"
            )
    exclude = [target] + ([variance] if variance else [])
    columns = _feature_list(features, frame, exclude, source)
    x = np.column_stack([_numeric_column(frame, c, "feature", source) for c in columns])
    return split_table(
        name,
        x,
        y,
        seed=seed,
        variance=var,
        feature_names=columns,
        target_name=target,
        ids=[str(i) for i in range(len(frame))],
        info={"source": str(source), "variance_column": variance},
        **sizes,
    )


@strict_options("csv")
def load_csv(
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    *,
    path: str,
    target: str,
    variance: str | None = None,
    features: Sequence[str] | str | None = None,
    sep: str = ",",
    train_size: Size = None,
    test_size: Size = DEFAULT_TEST_FRACTION,
    val_fraction: float | None = None,
    val_size: int | None = None,
) -> RegressionData:
    """Load any csv table (see the module docstring for the options)."""
    source = resolve_table_path(path, root, "csv")
    if not isinstance(sep, str) or not sep:
        raise ValueError(f"sep must be a non-empty string such as ',' or ';', got {sep!r}")
    try:
        frame = pd.read_csv(source, sep=sep)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"could not read {source} as csv (sep={sep!r}): {exc}") from None
    return table_to_data(
        "csv",
        frame,
        source,
        seed=seed,
        target=target,
        variance=variance,
        features=features,
        train_size=train_size,
        test_size=test_size,
        val_fraction=val_fraction,
        val_size=val_size,
    )


@strict_options("parquet")
def load_parquet(
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    *,
    path: str,
    target: str,
    variance: str | None = None,
    features: Sequence[str] | str | None = None,
    train_size: Size = None,
    test_size: Size = DEFAULT_TEST_FRACTION,
    val_fraction: float | None = None,
    val_size: int | None = None,
) -> RegressionData:
    """Load any parquet table (see the module docstring for the options)."""
    source = resolve_table_path(path, root, "parquet")
    try:
        frame = pd.read_parquet(source)
    except (OSError, ValueError) as exc:
        raise ValueError(f"could not read {source} as parquet: {exc}") from None
    return table_to_data(
        "parquet",
        frame,
        source,
        seed=seed,
        target=target,
        variance=variance,
        features=features,
        train_size=train_size,
        test_size=test_size,
        val_fraction=val_fraction,
        val_size=val_size,
    )


register_dataset("csv", load_csv)
register_dataset("parquet", load_parquet)
