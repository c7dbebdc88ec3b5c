"""Sweep throughput on the original Wine protocol: batched training against the plain trainer.

Run (from the checkout, with the shared data)::

    HETREG_DATA=/work/shared/data python benchmarks/bench_sweep_wine.py

Protocol (the BIV paper's Wine setting): Wine Quality, 4000 training rows and 2491 test rows, no
validation split, MLP 11-100-50-20-10-1 with BatchNorm (preset ``wine``), Adam with lr 0.01,
batch 256, 20 epochs, evaluation every epoch. Grid: 4 losses (mse, iv, biv with ε = 0.1, cutoff
with τ = 0.5 quality points²) × 3 noise levels × 10 seeds = 120 runs. The noise levels are the
BIV paper's binary-uniform variance mixtures: with probability 1/2 a nearly clean label
(σ² ~ U around 0.001 points²), else a noisy one, the mixture mean being 1, 3 or 6 quality
points² (raw units; both components with heteroscedasticity scale s = 0.3, i.e. bounds
μ(1 ± √0.3)). τ = 0.5 keeps exactly the clean component (the "oracle" cutoff).

Measured side by side, in one invocation:

(a) the batched path (:func:`hetreg.train.batched.run_batched`) over all 120 runs, split into one
    group per worker process (``--workers``, one torch thread each; the workers are started and
    warmed up before the clock starts, and their start-up time is printed apart);
(b) the plain trainer (:func:`hetreg.train.run_experiment`) one run after another in this
    process with one thread, on a subset (``--plain-runs``, default 12: one seed of every loss and
    noise level), extrapolated to the grid (said so in the output).

Both use the same configurations, so the subset's results are compared line by line (they are
equal). Then the plain trainer's step is timed phase by phase with its own objects, at one
thread and at torch's default thread count, to show where its time goes. CPU times are printed
next to wall times because the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LOSSES: dict[str, dict[str, Any]] = {
    "mse": {"name": "mse"},
    "iv": {"name": "iv"},
    "biv": {"name": "biv", "eps": 0.1},
    "cutoff": {"name": "cutoff", "threshold": 0.5},
}
MIXTURE_MEANS = (1.0, 3.0, 6.0)  # quality points², mean of the noise-variance mixture
CLEAN_MEAN = 0.001  # quality points², mean of the nearly clean component
HETERO_SCALE = 0.3  # s: each component is U(mu (1 - sqrt s), mu (1 + sqrt s))


def noise_distribution(mixture_mean: float) -> dict[str, Any]:
    """The binary-uniform variance mixture with mean ``mixture_mean`` (raw quality points²)."""
    from hetreg.noise import binary_uniform, mixture_mean_target, uniform_max_heteroscedastic

    p = 0.5
    noisy_mean = mixture_mean_target(p, CLEAN_MEAN, mixture_mean)
    dist = binary_uniform(
        p, uniform_max_heteroscedastic(CLEAN_MEAN, HETERO_SCALE), uniform_max_heteroscedastic(noisy_mean, HETERO_SCALE)
    )
    return dist.to_dict()


def base_config(epochs: int) -> dict[str, Any]:
    return {
        "name": "wine",
        "data": {"name": "wine", "train_size": 4000, "test_size": 2491, "val_fraction": 0.0},
        "model": {"name": "mlp", "options": {"preset": "wine"}},
        "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": epochs, "batch_size": 256, "eval_every": "epoch", "num_threads": 1},
    }


def grid(epochs: int, seeds: int) -> list[dict[str, Any]]:
    """The configurations of the grid as plain dicts, seed-major within each (loss, noise) cell."""
    configs = []
    for seed in range(seeds):
        for loss_name, loss in LOSSES.items():
            for level, mean in enumerate(MIXTURE_MEANS):
                cfg = base_config(epochs)
                cfg.update(
                    name=f"wine-{loss_name}-noise{level}-seed{seed}",
                    seed=seed,
                    loss=dict(loss),
                    noise={"distribution": noise_distribution(mean)},
                )
                configs.append(cfg)
    return configs


# ---------------------------------------------------------------------------------------------
# Worker processes for the batched path
# ---------------------------------------------------------------------------------------------


def _warm_up() -> None:
    """Import everything a run needs and build one optimizer (torch imports its compiler stack then)."""
    import torch

    torch.set_num_threads(1)
    import hetreg.train.batched  # noqa: F401
    from hetreg.data import load_dataset

    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    load_dataset("wine", train_size=4000, test_size=2491, val_fraction=0.0)


def _ready(_: int) -> int:
    time.sleep(0.5)
    return os.getpid()


def _train_group(job: tuple[list[dict[str, Any]], list[str]]) -> dict[str, Any]:
    import torch

    from hetreg.train.batched import run_batched

    configs, dirs = job
    torch.set_num_threads(1)
    c0, w0 = time.process_time(), time.perf_counter()
    summaries = run_batched(configs, dirs, quiet=True)
    return {
        "runs": len(configs),
        "wall": time.perf_counter() - w0,
        "cpu": time.process_time() - c0,
        "statuses": [s.get("status") for s in summaries],
    }


def run_batched_grid(configs: list[dict[str, Any]], root: Path, workers: int, group_size: int | None) -> dict[str, Any]:
    from hetreg.train.batched import batch_groups

    size = group_size or math.ceil(len(configs) / workers)
    groups = batch_groups(configs, max_size=size)
    jobs = [([configs[i] for i in g], [str(root / f"run-{i:03d}") for i in g]) for g in groups]
    t0 = time.perf_counter()
    if workers == 1:
        _warm_up()
        startup = time.perf_counter() - t0
        w0 = time.perf_counter()
        results = [_train_group(job) for job in jobs]
        wall = time.perf_counter() - w0
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers, initializer=_warm_up) as pool:
            pids = pool.map(_ready, range(workers), chunksize=1)
            startup = time.perf_counter() - t0
            w0 = time.perf_counter()
            results = pool.map(_train_group, jobs, chunksize=1)
            wall = time.perf_counter() - w0
    statuses = [s for r in results for s in r["statuses"]]
    return {
        "workers": workers,
        "distinct_worker_processes": len(set(pids)) if workers > 1 else 1,
        "groups": [len(g) for g in groups],
        "startup": startup,
        "wall": wall,
        "cpu": sum(r["cpu"] for r in results),
        "group_walls": [r["wall"] for r in results],
        "completed": statuses.count("completed"),
        "runs": len(statuses),
    }


# ---------------------------------------------------------------------------------------------
# The plain trainer
# ---------------------------------------------------------------------------------------------


def run_plain_subset(configs: list[dict[str, Any]], root: Path) -> dict[str, Any]:
    import torch

    from hetreg.train import run_experiment

    torch.set_num_threads(1)
    walls, cpus = [], []
    for i, cfg in configs:
        c0, w0 = time.process_time(), time.perf_counter()
        summary = run_experiment(cfg, root / f"plain-{i:03d}", quiet=True)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
        if summary["status"] != "completed":
            raise RuntimeError(f"plain run {i} ended with status {summary['status']}: {summary.get('message')}")
    return {"runs": len(configs), "wall": sum(walls), "cpu": sum(cpus), "walls": walls}


def compare_subset(indices: Sequence[int], root: Path) -> float:
    """Largest relative difference between batched and plain metrics.jsonl values (elapsed aside)."""
    worst = 0.0
    for i in indices:
        rows = []
        for name in (f"run-{i:03d}", f"plain-{i:03d}"):
            text = (root / name / "metrics.jsonl").read_text().splitlines()
            rows.append([json.loads(line) for line in text if line.strip()])
        if len(rows[0]) != len(rows[1]):
            return math.inf
        for a, b in zip(*rows):
            if a.keys() != b.keys():
                return math.inf
            for key, value in a.items():
                if key == "elapsed" or not isinstance(value, float):
                    if key != "elapsed" and value != b[key]:
                        return math.inf
                    continue
                worst = max(worst, abs(value - b[key]) / max(abs(b[key]), 1e-300))
    return worst


def _timed(fn: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def profile_plain_step(config: dict[str, Any], root: Path, threads: int, epochs: int) -> dict[str, float]:
    """Mean milliseconds per step of each phase of the plain trainer's step, with its own objects.

    Follows ``hetreg.train.runner.TrainingRun.train``: batch slicing, forward, loss, reading the loss
    value, zero_grad, backward, optimizer step, loss records; per epoch: evaluation and the
    ``last.pt`` write (reported per step, i.e. divided by the steps of an epoch).
    """
    import torch

    from hetreg.experiments.config import ExperimentConfig
    from hetreg.train.evaluation import split_out
    from hetreg.train.files import save_checkpoint
    from hetreg.train.runner import TrainingRun

    torch.set_num_threads(threads)
    cfg = ExperimentConfig.model_validate(config).resolved()
    run = TrainingRun(cfg, root, quiet=True, callbacks=())
    run.setup(None)
    model, loss_fn, opt, prep = run.model, run.loss_fn, run.optimizer, run.prep
    phases = dict.fromkeys(
        ("batch", "forward", "loss", "loss value", "zero_grad", "backward", "optimizer step", "records",
         "evaluation", "last.pt write"), 0.0)
    steps = 0
    n = len(prep.y_train)
    for _ in range(epochs):
        order = torch.randperm(n, generator=run.shuffle_gen)
        for start, stop in run.bounds:
            (xb, yb, vb, wb), t = _timed(lambda: run.batch(order[start:stop]))
            phases["batch"] += t
            (mean, var), t = _timed(lambda: split_out(model(xb)))
            phases["forward"] += t
            loss, t = _timed(lambda: loss_fn.from_batch(mean, yb, label_variance=vb, pred_variance=var, weight=wb))
            phases["loss"] += t
            _, t = _timed(lambda: float(loss.detach()))
            phases["loss value"] += t
            _, t = _timed(lambda: opt.zero_grad(set_to_none=True))
            phases["zero_grad"] += t
            _, t = _timed(loss.backward)
            phases["backward"] += t
            _, t = _timed(opt.step)
            phases["optimizer step"] += t
            _, t = _timed(lambda: [float(v) for v in loss_fn.records.values()])
            phases["records"] += t
            steps += 1
        _, t = _timed(run.metrics)
        phases["evaluation"] += t
        _, t = _timed(lambda: save_checkpoint(root / "last.pt", run.checkpoint()))
        phases["last.pt write"] += t
    out = {k: 1e3 * v / steps for k, v in phases.items()}
    out["total"] = sum(out.values())
    return out


def profile_optimizers(config: dict[str, Any], steps: int = 200) -> dict[str, float]:
    """Milliseconds per Adam step on the Wine model at one thread: torch's default (per tensor) vs foreach vs fused."""
    import torch

    from hetreg.experiments.config import ExperimentConfig
    from hetreg.train.runner import _build_model

    torch.set_num_threads(1)
    cfg = ExperimentConfig.model_validate(config).resolved()
    out = {}
    for name, kwargs in (("default", {}), ("foreach", {"foreach": True}), ("fused", {"fused": True})):
        model = _build_model(cfg, (11,))
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        try:
            opt = torch.optim.Adam(model.parameters(), lr=0.01, **kwargs)
        except (RuntimeError, ValueError):
            continue
        opt.step()
        t = time.perf_counter()
        for _ in range(steps):
            opt.step()
        out[name] = 1e3 * (time.perf_counter() - t) / steps
    return out


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes of the batched path")
    parser.add_argument("--group-size", type=int, default=None, help="runs per batched group (default: grid / workers)")
    parser.add_argument("--plain-runs", type=int, default=12, help="runs of the plain trainer to time (then extrapolated)")
    parser.add_argument("--profile-epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="keep the run stores and results.json here")
    args = parser.parse_args(argv)

    data = os.environ.get("HETREG_DATA")
    if not data or not (Path(data) / "wine-quality").is_dir():
        print("needs the Wine Quality files: set HETREG_DATA to the data folder (e.g. /work/shared/data)", file=sys.stderr)
        return 2
    root = args.out or Path(tempfile.mkdtemp(prefix="bench-sweep-wine-"))
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        print(f"--out {root} is not empty; give a new folder", file=sys.stderr)
        return 2

    import torch

    default_threads = torch.get_num_threads()
    configs = grid(args.epochs, args.seeds)
    cells = len(LOSSES) * len(MIXTURE_MEANS)
    subset = list(range(min(args.plain_runs, len(configs))))  # seed 0 of every cell first
    load = os.getloadavg()
    print("hetreg sweep throughput: Wine, 4000 training rows, 2491 test rows, MLP 11-100-50-20-10-1 with BatchNorm,")
    print(f"  Adam lr 0.01, batch 256, {args.epochs} epochs, evaluation every epoch")
    print(f"grid: {len(LOSSES)} losses x {len(MIXTURE_MEANS)} noise levels x {args.seeds} seeds = {len(configs)} runs")
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, default torch threads {default_threads}; "
          f"load average at start {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
          + (" (a shared machine: other jobs were running, so times are inflated and noisy)" if load[0] > 1.5 else ""))
    sys.stdout.flush()

    # warm up this process (imports, the optimizer's first construction, the data files)
    _warm_up()

    batched = run_batched_grid(configs, root, args.workers, args.group_size)
    print(f"(a) batched: {batched['completed']}/{batched['runs']} runs completed in groups of {batched['groups']} "
          f"on {batched['workers']} worker process(es) x 1 thread: {batched['wall']:.1f} s wall, {batched['cpu']:.1f} s CPU "
          f"(worker start-up {batched['startup']:.1f} s, not included)")
    sys.stdout.flush()

    plain = run_plain_subset([(i, configs[i]) for i in subset], root)
    scale = len(configs) / plain["runs"]
    plain_wall, plain_cpu = plain["wall"] * scale, plain["cpu"] * scale
    print(f"(b) plain trainer: {plain['runs']} runs one after another, 1 thread: {plain['wall']:.1f} s wall, "
          f"{plain['cpu']:.1f} s CPU; EXTRAPOLATED x{scale:g} to the {len(configs)}-run grid: {plain_wall:.0f} s wall, "
          f"{plain_cpu:.0f} s CPU (median run {statistics.median(plain['walls']):.2f} s)")
    print(f"ratio (b)/(a): {plain_wall / batched['wall']:.1f}x wall-clock for the grid "
          f"({plain_cpu / batched['cpu']:.1f}x in CPU time per run)")
    diff = compare_subset(subset, root)
    print(f"check: the {len(subset)} runs trained both ways, largest relative difference over every metrics.jsonl value: {diff:.3g}")
    sys.stdout.flush()

    profile_cfg = dict(configs[[i for i in range(cells) if configs[i]["loss"]["name"] == "biv"][0]])
    profiles = {}
    for threads in sorted({1, default_threads}):
        with tempfile.TemporaryDirectory() as tmp:
            profiles[threads] = profile_plain_step(profile_cfg, Path(tmp), threads, args.profile_epochs)
    optimizers = profile_optimizers(profile_cfg)
    print(f"plain trainer, one step of the BIV run ({args.profile_epochs} epochs, ms per step; "
          "evaluation and last.pt write spread over the steps of an epoch):")
    names = list(profiles[1])
    print("  " + " | ".join(f"{k}" for k in ["threads"] + names))
    for threads, prof in profiles.items():
        print("  " + " | ".join([str(threads)] + [f"{prof[k]:.2f}" for k in names]))
    print("  Adam step alone, 1 thread: " + ", ".join(f"{k} {v:.2f} ms" for k, v in optimizers.items()))
    batched_per_step = batched["cpu"] / (len(configs) * args.epochs * math.ceil(4000 / 256))
    print(f"  batched path, CPU per run and step (everything included): {1e3 * batched_per_step:.2f} ms")

    results = {
        "grid_runs": len(configs),
        "epochs": args.epochs,
        "load_average_start": load,
        "load_average_end": os.getloadavg(),
        "batched": batched,
        "plain_subset": plain,
        "plain_extrapolated": {"wall": plain_wall, "cpu": plain_cpu},
        "ratio_wall": plain_wall / batched["wall"],
        "ratio_cpu": plain_cpu / batched["cpu"],
        "max_relative_difference": diff,
        "plain_step_ms": profiles,
        "adam_step_ms": optimizers,
    }
    (root / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    end = os.getloadavg()
    print(f"load average at the end {end[0]:.1f} {end[1]:.1f} {end[2]:.1f}")
    if args.out is None:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"run stores and results.json kept in {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
