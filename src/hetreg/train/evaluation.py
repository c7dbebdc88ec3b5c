"""Evaluation of a regression model: predictions in eval mode without gradients, and error metrics.

The original BIV code evaluated in train mode (BatchNorm used and updated with test-batch
statistics) after every optimizer step; here evaluation switches the model to ``eval()``, runs
under ``torch.no_grad()``, restores the previous mode, and is called once per epoch (or every N
steps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["EvalSet", "predict", "predictive_metrics", "squared_error_metrics", "split_out"]


@dataclass(frozen=True)
class EvalSet:
    """A split ready for evaluation.

    Attributes:
        x: model inputs (already normalised tabular features, or raw uint8 images that
            ``transform`` turns into a float batch).
        y: labels in the units the model predicts (z-scored when normalising), shape (n,).
        y_raw: the same labels in raw units, shape (n,).
    """

    x: Tensor
    y: Tensor
    y_raw: Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


def split_out(out: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, Tensor | None]:
    """A model output as (mean (N, 1), predicted variance (N, 1) or None)."""
    if isinstance(out, (tuple, list)):
        mean, var = out[0], (out[1] if len(out) > 1 else None)
    else:
        mean, var = out, None
    if mean.dim() == 1:
        mean = mean.unsqueeze(1)
    if var is not None and var.dim() == 1:
        var = var.unsqueeze(1)
    return mean, var


def predict(
    model: nn.Module,
    x: Tensor,
    *,
    batch_size: int,
    transform: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Predicted means (n,) and variances (n,) or ``None``, in eval mode and without gradients.

    The model's previous train/eval mode is restored afterwards, so evaluation changes no state
    (BatchNorm running statistics stay as they were).
    """
    was_training = model.training
    model.eval()
    means: list[Tensor] = []
    variances: list[Tensor] = []
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                xb = x[start : start + batch_size]
                if transform is not None:
                    xb = transform(xb)
                mean, var = split_out(model(xb))
                means.append(mean[:, 0])
                if var is not None:
                    variances.append(var[:, 0])
    finally:
        model.train(was_training)
    if not means:
        return torch.zeros(0), None
    return torch.cat(means), (torch.cat(variances) if variances else None)


def squared_error_metrics(pred: Tensor, target: Tensor) -> tuple[float, float]:
    """MSE and MAE, accumulated in float64: :math:`\\frac1n\\sum (\\hat y - y)^2`, :math:`\\frac1n\\sum |\\hat y - y|`.

    An empty split gives NaN for both.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.numel() == 0:
        return float("nan"), float("nan")
    err = pred.double() - target.double()
    return float(err.pow(2).mean()), float(err.abs().mean())


#: The metrics :func:`predictive_metrics` computes, without their prefix.
PREDICTIVE_METRICS = ("nll_raw", "crps_raw", "coverage_95", "calibration_error")


def predictive_metrics(mean: Tensor, var: Tensor, target: Tensor, prefix: str = "") -> dict[str, float]:
    """Metrics of a predicted Gaussian :math:`\\mathcal N(\\mu, \\sigma^2)` per sample, in float64:
    ``nll_raw`` (mean negative log-likelihood with the constant, nats, raw label units),
    ``crps_raw`` (mean CRPS, raw label units), ``coverage_95`` (fraction of targets inside the
    central 95 % interval) and ``calibration_error`` (mean absolute miscalibration over 100
    interval levels); see :mod:`hetreg.metrics.uncertainty`.

    ``mean``, ``var`` and ``target`` in raw units, shape (n,). A split that is empty, or whose
    variances are not all finite and > 0 (a diverging variance head), gives NaN for each.
    """
    from hetreg.metrics.uncertainty import calibration_error, crps_gaussian, gaussian_nll, interval_coverage

    names = [prefix + name for name in PREDICTIVE_METRICS]
    v = var.double()
    if mean.numel() == 0 or not bool(torch.isfinite(v).all()) or not bool((v > 0).all()):
        return dict.fromkeys(names, float("nan"))
    m, t = mean.double(), target.double()
    values = (
        gaussian_nll(m, v, t),
        crps_gaussian(m, v, t),
        interval_coverage(m, v, t, levels=(0.95,))["coverage_95"],
        calibration_error(m, v, t),
    )
    return {name: float(value) for name, value in zip(names, values)}
