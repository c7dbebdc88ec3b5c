"""Training: ``run_experiment`` (one configured run and its run directory) and metric trackers."""

from hetreg.train.evaluation import EvalSet, predict, squared_error_metrics
from hetreg.train.runner import RUN_FILES, Callback, RunExistsError, batch_bounds, run_experiment, run_status
from hetreg.train.schedule import apply_schedule, scheduled_lr
from hetreg.train.trackers import (
    JsonlTracker,
    MLflowTracker,
    TensorBoardTracker,
    Tracker,
    WandbTracker,
    build_trackers,
)

__all__ = [
    "RUN_FILES",
    "Callback",
    "EvalSet",
    "JsonlTracker",
    "MLflowTracker",
    "RunExistsError",
    "TensorBoardTracker",
    "Tracker",
    "WandbTracker",
    "apply_schedule",
    "batch_bounds",
    "build_trackers",
    "predict",
    "run_experiment",
    "run_status",
    "scheduled_lr",
    "squared_error_metrics",
]
