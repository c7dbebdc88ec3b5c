"""Shared machinery that turns one table (inputs, clean labels) into train/validation/test splits.

Every table-shaped loader (Wine, Bike, user csv/parquet files, the generated benchmarks and the
scikit-learn data) goes through :func:`split_table`, so the split rules are written once:

1. the rows come in a fixed, documented order (file order, or generation order);
2. ``perm = seeded_permutation(n, seed)``; the first ``test`` rows of ``perm`` form the test
   split, the next ``val`` rows the validation split, the next ``train`` rows the training split
   (rows beyond ``train + val + test`` are left out); each split lists its rows in table order.

Because the test rows come first, for a fixed seed the test split does not depend on
``train_size`` or ``val_fraction``, and the training split for a smaller ``train_size`` is a subset
of the one for a larger ``train_size`` (learning curves compare like with like).

Size options (common to these loaders):

* ``test_size``: number of test rows (int >= 1), or a fraction of all rows (float in (0, 1)).
* ``val_fraction``: share of the rows *not* in the test split that form the validation split,
  in [0, 1); or ``val_size``: number of validation rows (int >= 0). Not both.
* ``train_size``: number of training rows (int >= 1) or a fraction of all rows (float in
  (0, 1)); by default every row not in the test or validation split.
"""

from __future__ import annotations

import functools
import inspect
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import pandas as pd
import torch

from hetreg.data.base import RegressionData, Split, seeded_permutation
from hetreg.data.status import KnownFile, checksum_state, require_file

DEFAULT_VAL_FRACTION = 0.1
"""Share of the non-test rows held out for validation when neither option is given."""

Size = int | float | None


@dataclass(frozen=True)
class SplitSizes:
    """Row counts of the three splits; ``unused`` rows belong to none of them."""

    train: int
    val: int
    test: int
    unused: int = 0


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _count(value: Size, n: int, name: str, *, minimum: int) -> int | None:
    """A row count from an int (rows) or a float in (0, 1) (share of all ``n`` rows)."""
    if value is None:
        return None
    if _is_int(value):
        count = int(value)
    elif isinstance(value, float) and 0.0 < value < 1.0:
        count = int(round(value * n))
    else:
        raise ValueError(
            f"{name} must be a number of rows (int >= {minimum}) or a fraction of the rows "
            f"(float strictly between 0 and 1), got {value!r}"
        )
    if count < minimum:
        raise ValueError(f"{name}={value!r} gives {count} rows; it must give at least {minimum}")
    return count


def resolve_split_sizes(
    n: int,
    *,
    test_size: Size,
    train_size: Size = None,
    val_fraction: float | None = None,
    val_size: int | None = None,
    dataset: str = "dataset",
) -> SplitSizes:
    """Turn the size options into row counts for a table of ``n`` rows.

    ``test = test_size``; ``val = val_size`` or ``round(val_fraction * (n - test))`` (default
    fraction :data:`DEFAULT_VAL_FRACTION`); ``train = train_size`` or ``n - test - val``.

    Raises:
        ValueError: an option has the wrong type or range, both ``val_fraction`` and
            ``val_size`` are given, or the three splits need more than ``n`` rows. The message
            names the option and the valid values.
    """
    test = _count(test_size, n, "test_size", minimum=1)
    if test is None:
        raise ValueError(f"test_size is required for {dataset}")
    if test >= n:
        raise ValueError(
            f"test_size={test_size!r} ({test} rows) leaves no rows for training: {dataset} has "
            f"{n} rows; choose test_size < {n}"
        )
    if val_fraction is not None and val_size is not None:
        raise ValueError("give val_fraction or val_size, not both")
    if val_size is not None:
        if not _is_int(val_size) or val_size < 0:
            raise ValueError(f"val_size must be a number of rows (int >= 0), got {val_size!r}")
        val = int(val_size)
    else:
        fraction = DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
            raise ValueError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
        val = int(round(float(fraction) * (n - test)))
    train = _count(train_size, n, "train_size", minimum=1)
    if train is None:
        train = n - test - val
        if train < 1:
            raise ValueError(
                f"no rows left for training: {dataset} has {n} rows, test {test}, validation {val}; "
                f"lower test_size or val_fraction/val_size"
            )
    if train + val + test > n:
        raise ValueError(
            f"train_size ({train}) + validation ({val}) + test_size ({test}) = {train + val + test} "
            f"rows, but {dataset} has {n}; lower train_size or test_size, or set val_fraction=0"
        )
    return SplitSizes(train=train, val=val, test=test, unused=n - train - val - test)


def split_indices(n: int, seed: int, sizes: SplitSizes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices (train, val, test), each sorted, from ``seeded_permutation(n, seed)``.

    The permutation is cut in the order test, validation, train (see the module docstring).
    """
    perm = seeded_permutation(n, seed)
    test = perm[: sizes.test]
    val = perm[sizes.test : sizes.test + sizes.val]
    train = perm[sizes.test + sizes.val : sizes.test + sizes.val + sizes.train]
    return np.sort(train), np.sort(val), np.sort(test)


def make_split(
    x: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    *,
    variance: np.ndarray | None = None,
    ids: Sequence[str] | None = None,
) -> Split:
    """The :class:`Split` of the given ``rows``: float32 inputs (n, d), labels and variances (n,)."""
    return Split(
        x=torch.as_tensor(np.ascontiguousarray(x[rows], dtype=np.float32)),
        y=torch.as_tensor(np.ascontiguousarray(y[rows], dtype=np.float32)),
        variance=None
        if variance is None
        else torch.as_tensor(np.ascontiguousarray(variance[rows], dtype=np.float32)),
        ids=None if ids is None else tuple(ids[int(i)] for i in rows),
    )


def split_table(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    test_size: Size,
    train_size: Size = None,
    val_fraction: float | None = None,
    val_size: int | None = None,
    feature_names: Sequence[str],
    target_name: str,
    variance: np.ndarray | None = None,
    ids: Sequence[str] | None = None,
    info: dict[str, Any] | None = None,
    kind: Literal["tabular", "image"] = "tabular",
) -> RegressionData:
    """Split a whole table into a :class:`RegressionData` (see the module docstring for the rules).

    Args:
        name: registry name of the dataset, used in messages and stored in the result.
        x: inputs, shape (n, d), in raw units (no normalisation here).
        y: clean labels, shape (n,), in raw units.
        seed: split seed (int >= 0).
        test_size, train_size, val_fraction, val_size: size options, see
            :func:`resolve_split_sizes`.
        feature_names: one name per column of ``x``.
        target_name: name of the label.
        variance: optional known per-label variances, shape (n,), squared label units.
        ids: optional stable row identifiers (file row, file name), length n.
        info: provenance to store; the sizes, seed and split rule are added to it.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    n = y.shape[0]
    if x.ndim != 2 or x.shape[0] != n:
        raise ValueError(f"{name}: x must have shape (n, d) with n = {n} labels, got {x.shape}")
    if len(feature_names) != x.shape[1]:
        raise ValueError(f"{name}: {len(feature_names)} feature names for {x.shape[1]} columns")
    seed = check_seed(seed)
    sizes = resolve_split_sizes(
        n, test_size=test_size, train_size=train_size, val_fraction=val_fraction, val_size=val_size, dataset=name
    )
    train, val, test = split_indices(n, seed, sizes)
    full_info = dict(info or {})
    full_info.update(
        seed=seed,
        rows=n,
        sizes={"train": sizes.train, "val": sizes.val, "test": sizes.test, "unused": sizes.unused},
        split_rule="seeded_permutation(rows, seed): test first, then validation, then train",
    )
    return RegressionData(
        name=name,
        kind=kind,
        train=make_split(x, y, train, variance=variance, ids=ids),
        val=make_split(x, y, val, variance=variance, ids=ids),
        test=make_split(x, y, test, variance=variance, ids=ids),
        feature_names=tuple(feature_names),
        target_name=target_name,
        info=full_info,
    )


def check_seed(seed: object) -> int:
    """A split/generation seed must be an int >= 0 (numpy seeds cannot be negative)."""
    if not _is_int(seed) or int(seed) < 0:  # type: ignore[call-overload]
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return int(seed)  # type: ignore[call-overload]


def check_option(value: object, choices: Sequence[str], name: str) -> str:
    """Raise ``ValueError`` naming option ``name`` and its valid values unless ``value`` is one."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


def check_bool(value: object, name: str) -> bool:
    """Raise ``ValueError`` unless ``value`` is ``True`` or ``False``."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def strict_options(dataset: str) -> Callable[[Callable[..., RegressionData]], Callable[..., RegressionData]]:
    """Decorate a loader so that a bad keyword raises ``ValueError`` listing the valid options.

    Without it Python raises ``TypeError: unexpected keyword argument``, which does not say which
    options ``dataset`` accepts. Required options (no default) are reported the same way.
    """

    def decorate(loader: Callable[..., RegressionData]) -> Callable[..., RegressionData]:
        params = inspect.signature(loader).parameters
        valid = [p for p in params if p != "root"]
        required = [p for p in valid if params[p].default is inspect.Parameter.empty]

        @functools.wraps(loader)
        def wrapper(root: Any = None, **options: Any) -> RegressionData:
            unknown = sorted(set(options) - set(valid))
            if unknown:
                raise ValueError(
                    f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for dataset "
                    f"{dataset!r}; valid options: {', '.join(valid)}"
                )
            missing = [p for p in required if p not in options]
            if missing:
                raise ValueError(
                    f"dataset {dataset!r} needs the option{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(missing)}; valid options: {', '.join(valid)}"
                )
            return loader(root=root, **options)

        wrapper.valid_options = tuple(valid)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def read_release_csv(
    dataset: str, item: KnownFile, root: str | os.PathLike[str] | None, *, sep: str = ","
) -> tuple[pd.DataFrame, Path, str]:
    """Read one file of a public release from the data folder.

    Returns the table, its path, and its checksum state (``"verified"`` or ``"mismatch"``). A
    file that differs from the release is still read, with a ``UserWarning``, so that a
    corrected or extended copy can be used knowingly.

    Raises:
        DataNotFoundError: the file is not in the data folder (the message says how to get it).
    """
    path = require_file(dataset, item.relpath, root)
    state = checksum_state(path, item)
    if state != "verified":
        warnings.warn(
            f"{path} differs from the published {item.relpath} (sha256 is not {item.sha256}); "
            f"results may not be comparable with other runs",
            UserWarning,
            stacklevel=3,
        )
    return pd.read_csv(path, sep=sep), path, state


def require_columns(frame: pd.DataFrame, columns: Sequence[str], source: object) -> None:
    """Raise ``ValueError`` naming the missing columns and listing the available ones."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{source} has no column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}; "
            f"available columns: {', '.join(map(repr, map(str, frame.columns)))}"
        )
