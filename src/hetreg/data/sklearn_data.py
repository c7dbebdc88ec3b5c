"""Small regression datasets bundled with scikit-learn (offline, no download).

``diabetes``: 442 patients, 10 baseline inputs (age, sex, body-mass index, mean blood pressure
and six blood serum measurements ``s1`` … ``s6``) → a quantitative measure of disease progression
one year later (25 to 346). Loaded with ``load_diabetes(scaled=False)``, i.e. raw units; the
inputs are standardised later from the training split like every tabular dataset. Rows keep the
bundled order before the seeded split; defaults: 20% test rows, 10% of the rest validation.
"""

from __future__ import annotations

import os

from hetreg.data.base import RegressionData, register_dataset
from hetreg.data.tabular import Size, split_table, strict_options


@strict_options("diabetes")
def load_diabetes(
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    *,
    train_size: Size = None,
    test_size: Size = 0.2,
    val_fraction: float | None = None,
    val_size: int | None = None,
) -> RegressionData:
    """scikit-learn's diabetes data, raw (unscaled) inputs and target. ``root`` is ignored."""
    from sklearn.datasets import load_diabetes as sklearn_diabetes  # imported here: slow to import

    bunch = sklearn_diabetes(scaled=False)
    return split_table(
        "diabetes",
        bunch.data,
        bunch.target,
        seed=seed,
        test_size=test_size,
        train_size=train_size,
        val_fraction=val_fraction,
        val_size=val_size,
        feature_names=list(bunch.feature_names),
        target_name="progression",
        ids=[str(i) for i in range(len(bunch.target))],
        info={"source": "sklearn.datasets.load_diabetes(scaled=False)"},
    )


register_dataset("diabetes", load_diabetes)
