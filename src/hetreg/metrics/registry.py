"""Name → metric registry with machine-readable metadata, and :func:`compute_metrics`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from torch import Tensor

from hetreg.metrics.imbalanced import balanced_mae, balanced_mse
from hetreg.metrics.regression import gmean_error, mae, mse, r2, rmse
from hetreg.metrics.uncertainty import calibration_error, crps_gaussian, gaussian_nll, interval_coverage, sharpness


@dataclass(frozen=True)
class MetricInfo:
    """A registered metric.

    Attributes:
        name: registry name (also the key of its value in :func:`compute_metrics`).
        fn: the metric function: ``fn(pred, target, **options)``, or
            ``fn(mean, var, target, **options)`` when ``needs_variance`` (``sharpness``:
            ``fn(var)``).
        higher_is_better: ``True`` / ``False``, or ``None`` when closer to a nominal value is
            better (interval coverage).
        needs_variance: the metric needs a predicted variance.
        returns_dict: the metric returns several named values (flattened by
            :func:`compute_metrics`).
    """

    name: str
    fn: Callable[..., Any]
    higher_is_better: bool | None
    needs_variance: bool = False
    returns_dict: bool = False

    def __call__(self, pred: Any, target: Any, var: Any = None, **options: Any) -> Any:
        """Call :attr:`fn` with the arguments it needs."""
        if not self.needs_variance:
            return self.fn(pred, target, **options)
        if var is None:
            raise ValueError(f"metric {self.name!r} needs a predicted variance; pass var=")
        if self.fn is sharpness:
            return self.fn(var, **options)
        return self.fn(pred, var, target, **options)


METRICS: Mapping[str, MetricInfo] = MappingProxyType(
    {
        info.name: info
        for info in (
            MetricInfo("mse", mse, higher_is_better=False),
            MetricInfo("rmse", rmse, higher_is_better=False),
            MetricInfo("mae", mae, higher_is_better=False),
            MetricInfo("r2", r2, higher_is_better=True),
            MetricInfo("gmean", gmean_error, higher_is_better=False),
            MetricInfo("balanced_mse", balanced_mse, higher_is_better=False),
            MetricInfo("balanced_mae", balanced_mae, higher_is_better=False),
            MetricInfo("gaussian_nll", gaussian_nll, higher_is_better=False, needs_variance=True),
            MetricInfo("crps_gaussian", crps_gaussian, higher_is_better=False, needs_variance=True),
            MetricInfo(
                "interval_coverage", interval_coverage, higher_is_better=None, needs_variance=True, returns_dict=True
            ),
            MetricInfo("calibration_error", calibration_error, higher_is_better=False, needs_variance=True),
            MetricInfo("sharpness", sharpness, higher_is_better=False, needs_variance=True),
        )
    }
)

#: Metrics of :func:`compute_metrics` when no names are given (plus VARIANCE_METRICS with ``var``).
POINT_METRICS = ("mse", "rmse", "mae", "r2", "gmean")
VARIANCE_METRICS = ("gaussian_nll", "crps_gaussian", "interval_coverage", "calibration_error", "sharpness")


def metric_names() -> list[str]:
    return sorted(METRICS)


def compute_metrics(
    pred: Any,
    target: Any,
    names: Sequence[str] | None = None,
    *,
    var: Any = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, float]:
    """Evaluate several registered metrics at once, as Python floats.

    Args:
        pred: predictions (the predicted mean), torch or numpy.
        target: labels, same shape.
        names: metric names from :data:`METRICS`; default: :data:`POINT_METRICS`, plus
            :data:`VARIANCE_METRICS` when ``var`` is given.
        var: predicted variance, for the metrics that need one.
        options: keyword options per metric, e.g. ``{"balanced_mae": {"bins": 0.1}}``.

    Returns:
        ``{name: value}``; a metric returning several values (``interval_coverage``)
        contributes its own keys (``coverage_90``, ``width_90``, ...).
    """
    if names is None:
        names = POINT_METRICS + (VARIANCE_METRICS if var is not None else ())
    if isinstance(names, str):
        raise TypeError("names must be a sequence of metric names, e.g. ['mse', 'mae'], not a string")
    options = dict(options or {})
    unknown = [n for n in (*names, *options) if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; valid metrics: {', '.join(metric_names())}")
    out: dict[str, float] = {}
    for name in names:
        value = METRICS[name](pred, target, var, **dict(options.get(name, {})))
        if isinstance(value, Mapping):
            out.update({key: float(v) for key, v in value.items()})
        else:
            out[name] = float(value.detach()) if isinstance(value, Tensor) else float(value)
    return out


__all__ = ["METRICS", "POINT_METRICS", "VARIANCE_METRICS", "MetricInfo", "compute_metrics", "metric_names"]
