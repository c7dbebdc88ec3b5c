"""A fast stand-in for the trainer, for testing sweeps, executors and reports without training.

:func:`fake_train` has the signature of a run target (``fn(config, run_dir, resume=, quiet=)``)
and writes what :func:`hetreg.train.run_experiment` writes (``config.yaml``, ``metrics.jsonl``,
``summary.json``, ``last.pt``) in milliseconds. Its behaviour is read from the ``fake`` section of
the configuration:

* ``fake.epochs`` (default 3): number of logged evaluations;
* ``fake.fail`` (default false): raise ``RuntimeError`` after writing ``config.yaml``;
* ``fake.interrupt_after`` (default none): stop after that many epochs with status
  ``interrupted`` (a later resume continues from the checkpoint);
* ``fake.counter`` (default none): a file to which one line ``<run_dir> <resume>`` is appended
  per call (counts executions across processes);
* ``fake.offset`` (default 0): added to every metric;
* ``fake.no_summary`` (default false): return without writing ``summary.json`` (a broken trainer).

Metric values are a deterministic function of ``seed``, ``loss.name`` and ``fake.offset``, so
reports built on fake runs have known contents (:func:`fake_final_mse`).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from hetreg.experiments import runstore
from hetreg.experiments.grid import get_dotted

#: Final test MSE of each loss name in fake runs (before the per-seed term).
FAKE_LOSS_LEVEL = {"mse": 1.0, "iv": 1.3, "biv": 0.6, "cutoff": 0.8}


def fake_final_mse(config: Mapping[str, Any]) -> float:
    """The final ``test_mse`` a fake run reports: level(loss) + 0.05·(seed mod 5) + offset."""
    loss = str(get_dotted(config, "loss.name", "mse"))
    level = FAKE_LOSS_LEVEL.get(loss, 1.0 + (zlib.crc32(loss.encode()) % 100) / 100)
    seed = int(get_dotted(config, "seed", 0) or 0)
    return level + 0.05 * (seed % 5) + float(get_dotted(config, "fake.offset", 0.0) or 0.0)


def write_fake_run(
    run_dir: Path,
    config: Mapping[str, Any],
    metrics: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any] | None,
) -> Path:
    """Write a run folder by hand: ``config.yaml``, ``metrics.jsonl`` and (if given) ``summary.json``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / runstore.CONFIG_FILE).write_text(yaml.safe_dump(dict(config), sort_keys=True), encoding="utf-8")
    with open(run_dir / runstore.METRICS_FILE, "w", encoding="utf-8") as fh:
        for row in metrics:
            fh.write(json.dumps(dict(row)) + "\n")
    if summary is not None:
        runstore.write_json(run_dir / runstore.SUMMARY_FILE, dict(summary))
    return run_dir


def fake_train(config: Mapping[str, Any], run_dir: Path, *, resume: bool = False, quiet: bool = True) -> dict[str, Any]:
    """Pretend to train (see the module docstring); returns the summary like the real trainer."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    counter = get_dotted(config, "fake.counter")
    if counter:
        with open(counter, "a", encoding="utf-8") as fh:
            fh.write(f"{run_dir} {bool(resume)}\n")
    (run_dir / runstore.CONFIG_FILE).write_text(yaml.safe_dump(dict(config), sort_keys=True), encoding="utf-8")
    if not quiet:
        print(f"fake training in {run_dir}")
    if get_dotted(config, "fake.fail", False):
        raise RuntimeError("fake failure requested by fake.fail")
    if get_dotted(config, "fake.no_summary", False):
        return {}
    epochs = int(get_dotted(config, "fake.epochs", 3))
    stop = get_dotted(config, "fake.interrupt_after")
    start = 0
    checkpoint = run_dir / runstore.CHECKPOINT_FILE
    if resume and checkpoint.exists():
        start = int(json.loads(checkpoint.read_text())["epoch"])
        stop = None  # a resumed run goes to the end
    final = fake_final_mse(config)
    rows = runstore.read_metrics(run_dir) if start else []
    end = epochs if stop is None else min(epochs, int(stop))
    for epoch in range(start + 1, end + 1):
        mse = final * (1.0 + 2.0 * (epochs - epoch) / epochs)
        rows.append({"epoch": epoch, "step": 10 * epoch, "train_loss": mse * 1.1, "test_mse": mse, "test_mse_raw": 4.0 * mse})
        checkpoint.write_text(json.dumps({"epoch": epoch}))
    with open(run_dir / runstore.METRICS_FILE, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    status = "completed" if end == epochs else "interrupted"
    last = rows[-1] if rows else {}
    summary = {
        "status": status,
        "epochs": end,
        "final": {k: v for k, v in last.items() if k not in ("epoch", "step")},
        "best": {"val_mse": last.get("test_mse")},
        "elapsed": 0.01,
    }
    runstore.write_json(run_dir / runstore.SUMMARY_FILE, summary)
    return summary


def fake_sweep_spec(counter_dir: Path, grid: Sequence[str], **fake: Any) -> Any:
    """A sweep of :func:`fake_train` runs over ``grid`` (``"key=v1,v2"`` entries), each run
    appending its call to ``counter_dir / "calls.txt"`` (read it with :func:`fake_calls`);
    ``fake`` sets more of the ``fake`` section (e.g. ``fail=True``)."""
    from hetreg.experiments.grid import parse_grid
    from hetreg.experiments.sweep import SweepSpec

    base = {"loss": {"name": "mse"}, "seed": 0, "fake": {"epochs": 3, "counter": str(Path(counter_dir) / "calls.txt"), **fake}}
    return SweepSpec(base=base, grid=parse_grid(list(grid)), target=f"{__name__}:fake_train", backend="dict")


def fake_calls(counter_dir: Path) -> list[tuple[str, bool]]:
    """The calls recorded by :func:`fake_sweep_spec` runs, in order: (run folder name, resumed)."""
    path = Path(counter_dir) / "calls.txt"
    if not path.exists():
        return []
    return [(Path(a).name, b == "True") for a, b in (line.split() for line in path.read_text().splitlines())]
