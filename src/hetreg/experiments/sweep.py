"""Sweeps: a base configuration times a grid of dotted-key values, run into a run store.

Layout of a sweep folder ``OUT``::

    OUT/sweep.json          base configuration, grid and run target (what a rerun needs)
    OUT/runs/<id>/          one folder per run; <id> is the hash of the resolved configuration
    OUT/index.parquet/.csv  one row per run: id, swept keys, status, final metrics
    OUT/attempts/<id>-<n>/  earlier attempts of runs that failed without a checkpoint

Running the same sweep again (same ``OUT``) skips completed runs, resumes interrupted or failed
runs from their last checkpoint, and restarts the others. A folder holding anything else is
never written into.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from hetreg.experiments import runstore
from hetreg.experiments.executor import DEFAULT_TARGET, Executor, LocalExecutor, RunResult, RunSpec
from hetreg.experiments.grid import GridAxis, expand_grid, format_value, set_dotted

SWEEP_FILE = "sweep.json"
ATTEMPTS_DIR = "attempts"
_SWEEP_VERSION = 1


class ConfigBackend(Protocol):
    """How a sweep turns a base configuration plus overrides into a run configuration and id."""

    def resolve(self, base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
        """The full, validated configuration (plain data) for ``base`` with ``overrides`` set."""

    def run_id(self, config: Mapping[str, Any]) -> str:
        """A deterministic id (folder name) for a resolved configuration."""


def _canonical(obj: Any) -> Any:
    """JSON round trip: tuples become lists, keys become strings (for comparing and hashing)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def dict_hash(config: Mapping[str, Any], length: int = 12) -> str:
    """First ``length`` hex digits of the SHA-256 of the canonical JSON of ``config``."""
    text = json.dumps(_canonical(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


class DictBackend:
    """Configurations as plain nested dicts: overrides are set by dotted key, no validation.

    For run targets that take any dict (custom experiments, tests).
    """

    def resolve(self, base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
        config: dict[str, Any] = _canonical(dict(base))
        for key, value in overrides.items():
            config = set_dotted(config, key, value)
        return _canonical(config)

    def run_id(self, config: Mapping[str, Any]) -> str:
        return dict_hash(config)


class ExperimentBackend:
    """Configurations validated by :class:`hetreg.experiments.config.ExperimentConfig`.

    Overrides go through :func:`hetreg.experiments.config.apply_overrides`, so an unknown key
    or an invalid value is reported with the allowed keys and values.

    A grid over ``loss.name`` alone gives each loss the parameters of the base loss section that
    it accepts: with a base ``loss: {name: biv, eps: 0.1}``, ``loss.name=mse,iv,biv,cutoff``
    runs ``mse`` without ε and ``iv`` with ε = 0.1 (a parameter is kept when the configuration
    stays valid with it). Sweep the whole section to choose per-loss parameters explicitly:
    ``loss={name: mse},{name: biv, eps: 0.5}``.
    """

    def resolve(self, base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
        base = _canonical(dict(base))
        try:
            return self._apply(base, overrides)
        except ValueError:
            adapted = self._adapt_loss(base, overrides)
            if adapted is None:
                raise
            return adapted

    @staticmethod
    def _apply(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
        from hetreg.experiments import config as cfgmod

        items = [f"{key}={_yaml_text(value)}" for key, value in overrides.items()]
        return cfgmod.apply_overrides(dict(base), items).model_dump(mode="json")

    def _adapt_loss(self, base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any] | None:
        """For a switch of ``loss.name``: keep the base loss parameters the new loss accepts."""
        name = overrides.get("loss.name")
        base_loss = base.get("loss") if isinstance(base.get("loss"), Mapping) else {}
        if name is None or name == base_loss.get("name") or any(k.startswith("loss.") and k != "loss.name" for k in overrides):
            return None
        rest = {k: v for k, v in overrides.items() if k != "loss.name"}
        params = {k: v for k, v in base_loss.items() if k != "name" and v not in (None, {}, [])}
        kept: dict[str, Any] = {"name": name}
        for key, value in params.items():  # greedy: keep each parameter that stays valid
            trial = {**kept, key: value}
            try:
                self._apply({**base, "loss": trial}, rest)
            except ValueError:
                continue
            kept = trial
        try:
            return self._apply({**base, "loss": kept}, rest)
        except ValueError:
            return None

    def run_id(self, config: Mapping[str, Any]) -> str:
        from hetreg.experiments import config as cfgmod

        return str(cfgmod.config_hash(cfgmod.ExperimentConfig.model_validate(dict(config))))


def _yaml_text(value: Any) -> str:
    """Text that parses back (as a YAML 1.2 value) to ``value``: plain strings stay bare, the rest is JSON."""
    if isinstance(value, str):
        from hetreg.experiments.config import parse_yaml_value

        try:
            if parse_yaml_value(value) == value:
                return value
        except Exception:  # noqa: BLE001 - any YAML error: quote it
            pass
    return json.dumps(value)


BACKENDS: dict[str, Callable[[], ConfigBackend]] = {"experiment": ExperimentBackend, "dict": DictBackend}


def build_backend(name: str) -> ConfigBackend:
    """The configuration back end registered as ``name`` (``experiment`` or ``dict``)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown configuration backend {name!r}; valid backends: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]()


def train_from_dict(config: Mapping[str, Any], run_dir: Path, *, resume: bool = False, quiet: bool = True) -> dict[str, Any]:
    """The default run target: validate ``config`` and call :func:`hetreg.train.run_experiment`."""
    from hetreg.experiments.config import ExperimentConfig
    from hetreg.train import run_experiment

    cfg = ExperimentConfig.model_validate(dict(config))
    return run_experiment(cfg, Path(run_dir), resume=resume, quiet=quiet)


@dataclass(frozen=True)
class SweepSpec:
    """What defines a sweep: base configuration, grid axes, the run target and how configurations
    are resolved (``backend``: ``experiment`` validates with ExperimentConfig, ``dict`` does not)."""

    base: dict[str, Any]
    grid: tuple[GridAxis, ...] = ()
    target: str = DEFAULT_TARGET
    backend: str = "experiment"

    @property
    def keys(self) -> list[str]:
        return [axis.key for axis in self.grid]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": _SWEEP_VERSION,
            "base": _canonical(self.base),
            "grid": [_canonical(axis.to_dict()) for axis in self.grid],
            "target": self.target,
            "backend": self.backend,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SweepSpec":
        return cls(
            base=dict(d.get("base") or {}),
            grid=tuple(GridAxis.from_dict(a) for a in d.get("grid") or ()),
            target=str(d.get("target") or DEFAULT_TARGET),
            backend=str(d.get("backend") or "experiment"),
        )

    def same_as(self, other: "SweepSpec") -> bool:
        mine, theirs = self.to_dict(), other.to_dict()
        return mine == theirs


def load_sweep(out: Path) -> SweepSpec:
    """Read ``OUT/sweep.json``; raise ``FileNotFoundError`` with a hint when it is missing."""
    path = Path(out) / SWEEP_FILE
    if not path.exists():
        raise FileNotFoundError(f"{out} is not a sweep folder (no {SWEEP_FILE}); give the folder a sweep wrote")
    data = runstore.read_json(path)
    if not data:
        raise ValueError(f"{path} is unreadable or empty; it should hold the base config and grid of the sweep")
    return SweepSpec.from_dict(data)


def prepare_out_dir(out: Path, spec: SweepSpec) -> bool:
    """Create ``out`` for ``spec`` or check that it already holds the same sweep.

    Returns ``True`` when ``out`` already held this sweep (a rerun). Raises ``FileExistsError``
    when ``out`` holds a different sweep or other files, so nothing is overwritten.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; give a folder")
    sweep_file = out / SWEEP_FILE
    if sweep_file.exists():
        stored = runstore.read_json(sweep_file)
        if stored and SweepSpec.from_dict(stored).same_as(spec):
            return True
        raise FileExistsError(
            f"{out} already holds a different sweep ({SWEEP_FILE} differs); choose a new --out, "
            f"or rerun the stored one with: hetreg sweep --resume {out}"
        )
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty (and is not a sweep folder); choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    runstore.write_json(sweep_file, {**spec.to_dict(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return False


@dataclass(frozen=True)
class PlannedRun:
    """One grid point: its overrides, resolved configuration, id, folder and what to do.

    ``action`` is ``skip`` (already completed), ``run`` (fresh) or ``resume`` (continue from
    the folder's checkpoint).
    """

    run_id: str
    overrides: dict[str, Any]
    config: dict[str, Any]
    run_dir: Path
    status: str
    action: str

    @property
    def label(self) -> str:
        return " ".join(f"{k}={format_value(v)}" for k, v in self.overrides.items()) or self.run_id


def plan_sweep(
    spec: SweepSpec,
    out: Path,
    backend: ConfigBackend,
    *,
    check: Callable[[Mapping[str, Any]], None] | None = None,
) -> list[PlannedRun]:
    """Resolve every grid point and decide what to do with it, from the run folders' state.

    Args:
        spec: the sweep.
        out: the sweep folder.
        backend: resolves configurations and ids.
        check: optional validation of each resolved configuration (raise ``ValueError``).

    Raises:
        ValueError: a grid point does not give a valid configuration (the message names the
            point), or two grid points give the same configuration.
    """
    planned: list[PlannedRun] = []
    seen: dict[str, dict[str, Any]] = {}
    for point in expand_grid(spec.grid):
        where = " ".join(f"{k}={format_value(v)}" for k, v in point.items())
        try:
            config = backend.resolve(spec.base, point)
            if check is not None:
                check(config)
        except ValueError as exc:
            lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
            if len(lines) > 1 and lines[0].startswith("invalid configuration"):
                lines = lines[1:]  # the header adds nothing once the grid point is named
            detail = "; ".join(lines[:4]) if lines else type(exc).__name__
            raise ValueError(f"grid point {where or '(base config)'}: {detail}") from None
        run_id = backend.run_id(config)
        if run_id in seen:
            other = " ".join(f"{k}={format_value(v)}" for k, v in seen[run_id].items())
            raise ValueError(
                f"grid points {other} and {where} give the same configuration (run {run_id}); "
                "remove the duplicate value or the key that has no effect"
            )
        seen[run_id] = point
        run_dir = Path(out) / runstore.RUNS_DIR / run_id
        status = runstore.run_status(run_dir)
        if status == "completed":
            action = "skip"
        elif status == "pending":
            action = "run"
        elif (run_dir / runstore.CHECKPOINT_FILE).exists():
            action = "resume"
        else:
            action = "run"
        planned.append(PlannedRun(run_id, dict(point), config, run_dir, status, action))
    return planned


def _set_aside(run_dir: Path, out: Path) -> Path | None:
    """Move an earlier attempt without a checkpoint to ``OUT/attempts/<id>-<n>`` (kept, not deleted)."""
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return None
    base = Path(out) / ATTEMPTS_DIR
    base.mkdir(parents=True, exist_ok=True)
    n = 1
    while (base / f"{run_dir.name}-{n}").exists():
        n += 1
    target = base / f"{run_dir.name}-{n}"
    shutil.move(str(run_dir), str(target))
    return target


@dataclass
class SweepOutcome:
    """Result of :func:`run_sweep`: the plan, the results of the executed runs, the index path."""

    out: Path
    planned: list[PlannedRun]
    results: list[RunResult] = field(default_factory=list)
    index_path: Path | None = None

    @property
    def counts(self) -> dict[str, int]:
        statuses = {p.run_id: p.status for p in self.planned}
        statuses.update({r.run_id: r.status for r in self.results})
        out: dict[str, int] = {}
        for status in statuses.values():
            out[status] = out.get(status, 0) + 1
        return out

    @property
    def skipped(self) -> int:
        return sum(1 for p in self.planned if p.action == "skip")


def update_index(out: Path, spec: SweepSpec, planned: Sequence[PlannedRun]) -> Path:
    """Rebuild ``OUT/index.parquet`` and ``OUT/index.csv`` from the run folders of ``planned``."""
    records = []
    for p in planned:
        rec = runstore.read_run(p.run_dir)
        if not rec.config:
            rec = runstore.RunRecord(rec.run_id, rec.run_dir, rec.status, dict(p.config), rec.summary, rec.error)
        records.append(rec)
    frame = runstore.build_index(records, spec.keys, values={p.run_id: p.overrides for p in planned})
    parquet, _ = runstore.write_index(out, frame)
    return parquet


def run_sweep(
    spec: SweepSpec,
    out: Path,
    *,
    backend: ConfigBackend | None = None,
    executor: Executor | None = None,
    check: Callable[[Mapping[str, Any]], None] | None = None,
    quiet_runs: bool = True,
    on_plan: Callable[[list[PlannedRun]], None] | None = None,
    on_result: Callable[[RunResult], None] | None = None,
) -> SweepOutcome:
    """Plan and execute a sweep into ``out`` (created, or checked to hold the same sweep).

    Completed runs are skipped; the others are executed by ``executor`` (default: a
    :class:`~hetreg.experiments.executor.LocalExecutor` over all cores). The index is rewritten
    after every finished run, so an interrupted sweep still leaves a correct index.
    """
    out = Path(out)
    backend = backend or build_backend(spec.backend)
    executor = executor or LocalExecutor()
    # plan first: a bad grid must not leave an empty sweep folder behind
    planned = plan_sweep(spec, out, backend, check=check)
    prepare_out_dir(out, spec)
    outcome = SweepOutcome(out=out, planned=planned)
    if on_plan is not None:
        on_plan(planned)
    specs: list[RunSpec] = []
    for p in planned:
        if p.action == "skip":
            continue
        if p.action == "run" and p.status != "pending":
            _set_aside(p.run_dir, out)
        specs.append(
            RunSpec(
                run_id=p.run_id,
                run_dir=str(p.run_dir),
                config=p.config,
                resume=p.action == "resume",
                target=spec.target,
                quiet=quiet_runs,
            )
        )
    outcome.index_path = update_index(out, spec, planned)

    def _done(result: RunResult) -> None:
        outcome.results.append(result)
        outcome.index_path = update_index(out, spec, planned)
        if on_result is not None:
            on_result(result)

    try:
        executor.submit(specs, on_result=_done)
    finally:
        outcome.index_path = update_index(out, spec, planned)
    return outcome
