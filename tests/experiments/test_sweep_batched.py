"""Local sweeps train compatible runs as batched groups, with the results of separate runs."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hetreg.cli.app import app

BASE = """
data: {name: synthetic-hetero, options: {n: 400, d: 5}}
noise:
  distribution: {kind: mixture, weights: [0.5, 0.5], components: [{kind: uniform, low: 0.0, high: 0.01}, {kind: uniform, low: 1.0, high: 4.0}]}
model: {name: mlp, options: {hidden: [16, 8], batchnorm: true}}
loss: {name: mse}
optimizer: {name: adam, lr: 0.01}
train: {epochs: 3, batch_size: 64, num_threads: 1}
"""


def _sweep(tmp_path: Path, out: str, *extra: str) -> dict[str, list[dict]]:
    config = tmp_path / "base.yaml"
    config.write_text(BASE)
    args = ["--quiet", "sweep", "-c", str(config), "--grid", "loss={name: mse},{name: biv, eps: 0.1},{name: cutoff, threshold: 1.0}",
            "--grid", "seed=0-1", "--workers", "1", "--no-report", "--out", str(tmp_path / out), *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    runs = {}
    for run in sorted((tmp_path / out / "runs").iterdir()):
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        env = json.loads((run / "environment.json").read_text())
        runs[run.name] = {"metrics": lines, "batched": "training" in env}
    return runs


def test_batched_sweep_equals_separate_runs(tmp_path):
    batched = _sweep(tmp_path, "batched")
    separate = _sweep(tmp_path, "separate", "-E", "batch=false")
    assert batched.keys() == separate.keys() and len(batched) == 6
    assert all(r["batched"] for r in batched.values())
    assert not any(r["batched"] for r in separate.values())
    for run_id, run in batched.items():
        for a, b in zip(run["metrics"], separate[run_id]["metrics"], strict=True):
            for key in ("test_mse", "val_mse", "train_loss"):
                assert abs(a[key] - b[key]) <= 1e-6 * max(1.0, abs(b[key])), (run_id, key, a[key], b[key])
