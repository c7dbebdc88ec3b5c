"""Evaluation metrics: pure functions, torch (or numpy) in, 0-dim tensors out.

* point predictions: :func:`mse`, :func:`rmse`, :func:`mae`, :func:`r2`, :func:`gmean_error`;
* imbalanced regression: :func:`balanced_mse`, :func:`balanced_mae`, :func:`shot_metrics`
  (many / medium / few-shot groups, sample-averaged or per-bin averaged);
* Gaussian predictions (mean and variance): :func:`gaussian_nll`, :func:`crps_gaussian`,
  :func:`interval_coverage`, :func:`calibration_error`, :func:`sharpness`;
* :data:`METRICS`, a name → :class:`MetricInfo` registry with ``higher_is_better`` metadata,
  and :func:`compute_metrics` to evaluate several at once.
"""

from hetreg.metrics.imbalanced import (
    SHOT_GROUPS,
    SHOT_METRIC_NAMES,
    SHOT_REDUCTIONS,
    balanced_mae,
    balanced_mse,
    binned_mean,
    label_bin_ids,
    shot_metrics,
)
from hetreg.metrics.registry import (
    METRICS,
    POINT_METRICS,
    VARIANCE_METRICS,
    MetricInfo,
    compute_metrics,
    metric_names,
)
from hetreg.metrics.regression import GMEAN_EPS, gmean_error, mae, mse, r2, rmse
from hetreg.metrics.uncertainty import (
    INTERVAL_LEVELS,
    calibration_error,
    calibration_proportions,
    crps_gaussian,
    gaussian_nll,
    interval_coverage,
    sharpness,
)

__all__ = [
    "mse",
    "rmse",
    "mae",
    "r2",
    "gmean_error",
    "GMEAN_EPS",
    "balanced_mse",
    "balanced_mae",
    "shot_metrics",
    "binned_mean",
    "label_bin_ids",
    "SHOT_GROUPS",
    "SHOT_METRIC_NAMES",
    "SHOT_REDUCTIONS",
    "gaussian_nll",
    "crps_gaussian",
    "interval_coverage",
    "calibration_error",
    "calibration_proportions",
    "sharpness",
    "INTERVAL_LEVELS",
    "METRICS",
    "MetricInfo",
    "POINT_METRICS",
    "VARIANCE_METRICS",
    "compute_metrics",
    "metric_names",
]
