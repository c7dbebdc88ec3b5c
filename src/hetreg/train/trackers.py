"""Metric trackers: the JSONL run store (always on) and optional TensorBoard, MLflow and W&B adapters.

A tracker follows the tiny :class:`Tracker` protocol: ``start(config)`` once, ``log(metrics,
step)`` after every evaluation, ``finish(summary)`` once. The optional adapters import their
package only when built, and everything they write stays inside the run directory: nothing
needs a server, an account or the network.
"""

from __future__ import annotations

import importlib
import json
import math
import numbers
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from hetreg.train.files import json_safe

__all__ = [
    "Tracker",
    "JsonlTracker",
    "TensorBoardTracker",
    "MLflowTracker",
    "WandbTracker",
    "build_trackers",
    "TRACKER_EXTRAS",
]

# tracker name -> (module to import, pip extra that installs it)
TRACKER_EXTRAS = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "mlflow": ("mlflow", "mlflow"),
    "wandb": ("wandb", "wandb"),
}


@runtime_checkable
class Tracker(Protocol):
    """What the trainer calls on a metric tracker."""

    def start(self, config: Mapping[str, Any]) -> None:
        """Called once before training with the resolved configuration (plain data)."""

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        """Called after every evaluation with one record (see ``metrics.jsonl``) at optimizer step ``step``."""

    def finish(self, summary: Mapping[str, Any]) -> None:
        """Called once at the end (completed, failed or interrupted) with the run summary."""


def _require(name: str) -> Any:
    module, extra = TRACKER_EXTRAS[name]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"the {name!r} tracker needs the {module!r} package, which is not installed; "
            f'install it with: pip install "hetreg[{extra}]"'
        ) from None


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numeric entries of a record (booleans and strings left out)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            continue
        value = float(value)
        if math.isfinite(value):
            out[key] = value
    return out


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (lists kept as JSON text)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, name + "."))
        elif isinstance(value, (list, tuple, Mapping)):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


class JsonlTracker:
    """The run store's ``metrics.jsonl``: one JSON object per evaluation, flushed at once.

    Args:
        path: the file.
        history: records already logged before a resume; the file is rewritten with exactly
            these (evaluations logged after the last checkpoint are dropped, as they are
            replayed). ``None`` starts an empty file.
    """

    def __init__(self, path: str | Path, history: Sequence[Mapping[str, Any]] | None = None) -> None:
        self.path = Path(path)
        self._history = list(history or [])
        self._fh: Any = None

    def start(self, config: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        for record in self._history:
            self._write(record)
        self._fh.flush()

    def _write(self, record: Mapping[str, Any]) -> None:
        self._fh.write(json.dumps(json_safe(dict(record)), allow_nan=False) + "\n")

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        self._write(metrics)
        self._fh.flush()

    def finish(self, summary: Mapping[str, Any]) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class TensorBoardTracker:
    """Scalars to ``<run_dir>/tensorboard`` via ``torch.utils.tensorboard`` (needs ``tensorboard``)."""

    def __init__(self, run_dir: str | Path) -> None:
        _require("tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self._writer_cls = SummaryWriter
        self.log_dir = Path(run_dir) / "tensorboard"
        self._writer: Any = None

    def start(self, config: Mapping[str, Any]) -> None:
        self._writer = self._writer_cls(log_dir=str(self.log_dir))
        self._writer.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```", 0)

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        for key, value in _scalars(metrics).items():
            if key not in ("step",):
                self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def finish(self, summary: Mapping[str, Any]) -> None:
        if self._writer is not None:
            self._writer.add_text("status", str(summary.get("status")), int(summary.get("steps") or 0))
            self._writer.close()
            self._writer = None


@contextmanager
def _mlflow_file_store_allowed() -> Iterator[None]:
    """Opt in to MLflow's local file store for the calls inside (MLflow >= 3.7 refuses it by
    default: it is in maintenance mode), leaving the environment as it was afterwards."""
    old = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = old


class MLflowTracker:
    """An MLflow run in a local file store ``<run_dir>/mlruns`` (needs ``mlflow`` or ``mlflow-skinny``).

    Uses an explicit ``MlflowClient`` bound to that store, so the global MLflow state (active
    run, tracking URI) of the calling process is left alone. Browse it with
    ``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri <run_dir>/mlruns``. Pass
    ``tracking_uri`` (e.g. ``sqlite:///...``, which needs SQLAlchemy) to log elsewhere.
    """

    def __init__(
        self,
        run_dir: str | Path,
        experiment: str = "hetreg",
        run_name: str | None = None,
        tracking_uri: str | None = None,
    ) -> None:
        mlflow = _require("mlflow")
        self.tracking_uri = tracking_uri or (Path(run_dir).resolve() / "mlruns").as_uri()
        self.experiment = experiment
        self.run_name = run_name
        self._client_cls = mlflow.tracking.MlflowClient
        self._client: Any = None
        self.run_id: str | None = None

    def start(self, config: Mapping[str, Any]) -> None:
        with _mlflow_file_store_allowed():
            self._client = self._client_cls(tracking_uri=self.tracking_uri)
            found = self._client.get_experiment_by_name(self.experiment)
            exp_id = found.experiment_id if found is not None else self._client.create_experiment(self.experiment)
            run = self._client.create_run(exp_id, run_name=self.run_name)
            self.run_id = run.info.run_id
            for key, value in _flatten(config).items():
                self._client.log_param(self.run_id, key, "null" if value is None else str(value)[:500])

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        with _mlflow_file_store_allowed():
            for key, value in _scalars(metrics).items():
                self._client.log_metric(self.run_id, key, value, step=step)

    def finish(self, summary: Mapping[str, Any]) -> None:
        if self._client is None or self.run_id is None:
            return
        status = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}.get(
            str(summary.get("status")), "FINISHED"
        )
        with _mlflow_file_store_allowed():
            self._client.set_terminated(self.run_id, status=status)
        self._client = None


class WandbTracker:
    """A Weights & Biases run in offline mode under ``<run_dir>/wandb`` (needs ``wandb``; no account).

    The run is created with ``mode="offline"`` (and ``WANDB_MODE=offline`` while it starts), so
    nothing goes to the network and no API key is needed; sync it later with
    ``wandb sync <run_dir>/wandb/offline-run-*``.
    """

    def __init__(self, run_dir: str | Path, project: str = "hetreg", run_name: str | None = None) -> None:
        self._wandb = _require("wandb")
        self.dir = Path(run_dir)
        self.project = project
        self.run_name = run_name
        self._run: Any = None

    def start(self, config: Mapping[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        old = os.environ.get("WANDB_MODE")
        os.environ["WANDB_MODE"] = "offline"
        try:
            self._run = self._wandb.init(
                project=self.project,
                name=self.run_name,
                dir=str(self.dir),
                config=dict(config),
                mode="offline",
                reinit="create_new",
                settings=self._wandb.Settings(silent=True, console="off", disable_git=True),
            )
        finally:
            if old is None:
                os.environ.pop("WANDB_MODE", None)
            else:
                os.environ["WANDB_MODE"] = old

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        self._run.log(_scalars(metrics), step=step)

    def finish(self, summary: Mapping[str, Any]) -> None:
        if self._run is None:
            return
        self._run.summary.update(_scalars(summary))
        self._run.summary["status"] = str(summary.get("status"))
        self._run.finish(exit_code=0 if summary.get("status") == "completed" else 1)
        self._run = None


def build_trackers(
    names: Iterable[str],
    run_dir: str | Path,
    *,
    project: str = "hetreg",
    run_name: str | None = None,
) -> list[Tracker]:
    """The optional trackers named in ``names`` (``"jsonl"`` is skipped: the trainer always writes it).

    Raises:
        ValueError: an unknown tracker name (the allowed names are listed).
        ImportError: a tracker whose package is missing, naming the pip extra to install.
    """
    trackers: list[Tracker] = []
    for name in dict.fromkeys(names):
        if name == "jsonl":
            continue
        if name == "tensorboard":
            trackers.append(TensorBoardTracker(run_dir))
        elif name == "mlflow":
            trackers.append(MLflowTracker(run_dir, experiment=project, run_name=run_name))
        elif name == "wandb":
            trackers.append(WandbTracker(run_dir, project=project, run_name=run_name))
        else:
            raise ValueError(f"unknown tracker {name!r}; allowed values: jsonl, {', '.join(TRACKER_EXTRAS)}")
    return trackers
