"""The run store: one folder per run under ``OUT/runs/<id>/`` and an index table over them.

A run folder holds what :func:`hetreg.train.run_experiment` writes (``config.yaml``,
``metrics.jsonl``, ``summary.json``, checkpoints, ...) plus ``run.log`` (the captured output of
the run). The sweep adds ``OUT/index.parquet`` and ``OUT/index.csv``: one row per run with its
id, the swept keys, its status and its final metrics. The index is a cache: it can always be
rebuilt from the run folders (:func:`scan_runs`).

Statuses: ``completed``, ``failed``, ``interrupted`` (from ``summary.json``), ``incomplete``
(a folder without a summary, e.g. a run killed hard), ``pending`` (no folder yet).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd
import yaml

from hetreg.experiments.grid import flatten, format_value, get_dotted

RUNS_DIR = "runs"
INDEX_PARQUET = "index.parquet"
INDEX_CSV = "index.csv"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
LOG_FILE = "run.log"
CHECKPOINT_FILE = "last.pt"

STATUSES = ("completed", "failed", "interrupted", "incomplete", "pending")
# summary.json sections whose numbers go into the index, with their column prefix
_METRIC_SECTIONS = ("final", "best")


@dataclass(frozen=True)
class RunRecord:
    """What the store knows about one run folder.

    Attributes:
        run_id: folder name (the configuration hash for sweep runs).
        run_dir: the folder.
        status: one of :data:`STATUSES`.
        config: the resolved configuration (``config.yaml``), empty when missing.
        summary: ``summary.json`` as written by the trainer, empty when missing.
        error: one-line error message of a failed run.
    """

    run_id: str
    run_dir: Path
    status: str
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def log_path(self) -> Path:
        return self.run_dir / LOG_FILE

    def metrics(self) -> list[dict[str, Any]]:
        return read_metrics(self.run_dir)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (no torn files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object; an unreadable or truncated file gives ``{}``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl`` (one per evaluation); a torn last line is ignored."""
    path = Path(run_dir) / METRICS_FILE
    rows: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return rows
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def run_status(run_dir: Path) -> str:
    """Status of a run folder from its ``summary.json`` (see the module docstring)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return "pending"
    summary = read_json(run_dir / SUMMARY_FILE)
    status = summary.get("status")
    if status in ("completed", "failed", "interrupted"):
        return str(status)
    if any(run_dir.iterdir()):
        return "incomplete"
    return "pending"


def read_run(run_dir: Path) -> RunRecord:
    """Load one run folder into a :class:`RunRecord`."""
    run_dir = Path(run_dir)
    summary = read_json(run_dir / SUMMARY_FILE)
    error = summary.get("error")
    if error is None and summary.get("status") in ("failed", "interrupted"):
        error = summary.get("message")  # the trainer's own explanation
    if isinstance(error, str):
        error = error.strip().splitlines()[-1] if error.strip() else None
    else:
        error = None if error is None else str(error)
    return RunRecord(
        run_id=run_dir.name,
        run_dir=run_dir,
        status=run_status(run_dir),
        config=read_yaml(run_dir / CONFIG_FILE),
        summary=summary,
        error=error,
    )


def scan_runs(out: Path) -> list[RunRecord]:
    """Every run folder under ``out/runs/`` (sorted by id); ``out`` may also be a runs folder."""
    out = Path(out)
    base = out / RUNS_DIR if (out / RUNS_DIR).is_dir() else out
    if not base.is_dir():
        return []
    return [read_run(p) for p in sorted(base.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def summary_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """Numbers of the ``final`` and ``best`` sections of a summary as ``{"final.test_mse": ...}``.

    Top-level numbers (``elapsed``, ``epochs``, ...) are kept under their own name.
    """
    out: dict[str, float] = {}
    for key, value in summary.items():
        if key in _METRIC_SECTIONS and isinstance(value, Mapping):
            for name, number in flatten(value).items():
                if _is_number(number):
                    out[f"{key}.{name}"] = float(number)
        elif _is_number(value):
            out[key] = float(value)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def index_cell(value: Any) -> Any:
    """A swept value as a scalar table cell (lists and mappings become compact text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return format_value(value)


def build_index(
    records: Iterable[RunRecord],
    keys: Sequence[str],
    *,
    values: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """One row per run: ``run_id``, the swept ``keys``, ``status``, ``error``, ``log``, metrics.

    Args:
        records: the runs.
        keys: dotted configuration keys to put in columns (read from each run's config).
        values: optional ``{run_id: {key: value}}`` overriding the config lookup (the values
            the sweep asked for, e.g. for runs that failed before writing ``config.yaml``).
    """
    rows = []
    for rec in records:
        row: dict[str, Any] = {"run_id": rec.run_id}
        asked = (values or {}).get(rec.run_id, {})
        for key in keys:
            row[key] = index_cell(asked[key] if key in asked else get_dotted(rec.config, key))
        row["status"] = rec.status
        row["error"] = rec.error
        row["log"] = str(rec.log_path) if rec.log_path.exists() else None
        row.update(summary_metrics(rec.summary))
        rows.append(row)
    columns = ["run_id", *keys, "status", "error", "log"]
    frame = pd.DataFrame(rows)
    for col in columns:
        if col not in frame.columns:
            frame[col] = None
    rest = sorted(c for c in frame.columns if c not in columns)
    return frame[columns + rest]


def write_index(out: Path, frame: pd.DataFrame) -> tuple[Path, Path]:
    """Write ``index.parquet`` and ``index.csv`` into ``out`` (atomically) and return both paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parquet = out / INDEX_PARQUET
    csv = out / INDEX_CSV
    clean = frame.copy()
    for col in clean.columns:
        if clean[col].dtype == object:
            # mixed str/int columns (e.g. a grid over 1, "auto") are stored as text in parquet
            kinds = {type(v) for v in clean[col] if v is not None and not (isinstance(v, float) and math.isnan(v))}
            if len(kinds) > 1:
                clean[col] = [None if v is None else str(v) for v in clean[col]]
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".index.", suffix=".parquet")
    os.close(fd)
    try:
        clean.to_parquet(tmp, index=False)
        os.replace(tmp, parquet)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    atomic_write_text(csv, frame.to_csv(index=False))
    return parquet, csv


def read_index(out: Path) -> pd.DataFrame | None:
    """The index table of ``out`` (parquet, else csv), or ``None`` when there is none."""
    out = Path(out)
    if (out / INDEX_PARQUET).exists():
        try:
            return pd.read_parquet(out / INDEX_PARQUET)
        except (OSError, ValueError):
            pass
    if (out / INDEX_CSV).exists():
        try:
            return pd.read_csv(out / INDEX_CSV)
        except (OSError, ValueError, pd.errors.EmptyDataError):
            pass
    return None
