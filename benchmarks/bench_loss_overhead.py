"""Step time of every loss relative to MSE, on the same model and the same batches.

One training step as the trainer runs it (``hetreg.train.runner``): forward, ``loss.from_batch``,
``float(loss)``, ``zero_grad``, ``backward``, ``Adam.step`` and reading ``loss.records``; for a
loss that plans ahead (BIV with ``eps="auto"``), ``loss.plan`` over the cycle's batches at the
start of each cycle, as the trainer does at the start of each epoch (timed with the step). Each
loss trains its own copy of the model (same initial weights) on the same cycle of batches.

Model: the Wine MLP preset (11-100-50-20-10-1 with BatchNorm; the ``gaussian_nll`` row uses the
same network with a ``mean_var`` head), batch 256 (and 1024 for the Balanced MSE rows).
Optionally (``--cnn``) the BIV age CNN at 64 px, batch 64 (rounds / 20 rounds of 1 step).
Losses: mse, iv (ε = 0.1), biv (ε = 0.1), biv with ``eps="auto", min_ebs=0.5``, cutoff (τ = 1),
gaussian_nll, and Balanced MSE with a learned σ (initial 1, its own Adam group at lr 1e-2):
bmc, bni (histogram prior of the labels, one bin per quality point), gai (5-component GMM prior).

Data: synthetic and seeded, shaped like Wine: 11 standard-normal features, integer quality
labels with the Wine histogram (3-9), z-scored; label-noise variances from the README main
example of the original BIV code (two uniforms, p = 0.5, mean 3000 years², heteroscedasticity
scale 0.3), divided by UTKFace's label variance (395.5 years²) so they are in normalised units
(about U(0.0006, 0.002) and U(6.9, 23.5)). BIV with ``eps="auto", min_ebs=0.5`` has to solve for
ε on every batch with these variances (EBS(0) is below half the batch).

Timing: 1 thread by default; the clock is the CPU time of this process (``--wall`` for wall
time), which leaves out the time spent waiting for a core on a busy machine. Rounds of
``--steps`` steps per loss (default 2 steps, 200 rounds: short measurements are rarely
interrupted), the losses interleaved with a rotating order; the ratio reported is the median
over rounds of (loss time / MSE time in the same round), with its interquartile range.
Target: biv-auto <= 1.10 x MSE.

Run: ``python benchmarks/bench_loss_overhead.py [--quick] [--cnn] [--threads N]``
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

import _common as C
from hetreg.losses import GMMPrior, HistogramPrior, build_loss
from hetreg.models import build_model
from hetreg.noise import binary_uniform, mixture_mean_target, uniform_max_heteroscedastic
from hetreg.train.evaluation import split_out

#: Wine quality histogram (red + white, scores 3..9).
WINE_QUALITY_COUNTS = {3: 30, 4: 216, 5: 2138, 6: 2836, 7: 1079, 8: 193, 9: 5}
#: UTKFace label variance (years²) used to normalise the README example's variances.
UTKFACE_LABEL_VAR = 395.5
TARGET = 1.10
PHASES = ("forward", "loss", "backward", "optimizer")


@dataclass
class Batches:
    x: list[Tensor]
    y: list[Tensor]
    var: list[Tensor]


def make_batches(input_shape: tuple[int, ...], batch_size: int, n_batches: int, seed: int = 0) -> Batches:
    """Seeded synthetic batches: inputs N(0, 1), z-scored Wine-like labels, normalised variances."""
    gen = torch.Generator().manual_seed(seed)
    n = batch_size * n_batches
    scores = torch.tensor(list(WINE_QUALITY_COUNTS), dtype=torch.float32)
    probs = torch.tensor(list(WINE_QUALITY_COUNTS.values()), dtype=torch.float64)
    y = scores[torch.multinomial(probs / probs.sum(), n, replacement=True, generator=gen)]
    y = (y - y.mean()) / y.std()
    noise = binary_uniform(
        0.5,
        uniform_max_heteroscedastic(0.5, 0.3),
        uniform_max_heteroscedastic(mixture_mean_target(0.5, 0.5, 3000.0), 0.3),
    )
    var = (noise.sample(n, gen) / UTKFACE_LABEL_VAR).float()
    x = torch.randn((n, *input_shape), generator=gen)
    chunks = lambda t: list(t.split(batch_size))  # noqa: E731
    return Batches(x=chunks(x), y=chunks(y.reshape(-1, 1)), var=chunks(var))


def all_labels(batches: Batches) -> Tensor:
    return torch.cat(batches.y).reshape(-1)


def loss_specs(labels: Tensor, *, balanced_only: bool) -> dict[str, tuple[str, Callable[[], nn.Module]]]:
    """name -> (model head, loss factory). MSE first: it is the reference of every ratio."""
    specs: dict[str, tuple[str, Callable[[], nn.Module]]] = {"mse": ("mean", lambda: build_loss("mse"))}
    if not balanced_only:
        specs.update(
            {
                "iv (eps=0.1)": ("mean", lambda: build_loss("iv", eps=0.1)),
                "biv (eps=0.1)": ("mean", lambda: build_loss("biv", eps=0.1)),
                "biv auto (min_ebs=0.5)": ("mean", lambda: build_loss("biv", eps="auto", min_ebs=0.5)),
                "cutoff (tau=1)": ("mean", lambda: build_loss("cutoff", threshold=1.0)),
                "gaussian_nll (mean_var head)": ("mean_var", lambda: build_loss("gaussian_nll")),
            }
        )
    hist = HistogramPrior.from_labels(labels.double(), bin_width=float(labels.unique().diff().min()))
    gmm = GMMPrior.fit(labels.double().numpy(), n_components=5, seed=0)
    specs.update(
        {
            "bmc": ("mean", lambda: build_loss("bmc", init_noise_sigma=1.0)),
            "bni": ("mean", lambda: build_loss("bni", init_noise_sigma=1.0, prior=hist)),
            "gai": ("mean", lambda: build_loss("gai", init_noise_sigma=1.0, prior=gmm)),
        }
    )
    return specs


class Trainer:
    """One model + loss + Adam, stepping through a fixed cycle of batches like the trainer does."""

    def __init__(self, model: nn.Module, loss_fn: nn.Module, batches: Batches, lr: float = 1e-3) -> None:
        self.model, self.loss_fn, self.batches = model, loss_fn, batches
        groups: list[dict] = [{"params": list(model.parameters()), "lr": lr}]
        if hasattr(loss_fn, "param_groups"):
            groups += loss_fn.param_groups(1e-2)
        self.opt = torch.optim.Adam(groups, lr=lr)
        self.i = 0
        self.model.train()

    def step(self, phases: dict[str, list[float]] | None = None, clock: Callable[[], float] = time.process_time) -> float:
        """One step; with ``phases``, append the time of each phase (forward, loss, backward,
        optimizer) to its list."""
        b = self.i % len(self.batches.x)
        self.i += 1
        xb, yb, vb = self.batches.x[b], self.batches.y[b], self.batches.var[b]
        t0 = clock() if phases is not None else 0.0
        if b == 0 and getattr(self.loss_fn, "plans_ahead", False):
            # as the trainer: at the start of each epoch (here: each cycle of batches), so its
            # cost is part of the timed steps (counted in the loss phase)
            self.loss_fn.plan(self.batches.var)
        tp = clock() if phases is not None else 0.0
        mean, var = split_out(self.model(xb))
        t1 = clock() if phases is not None else 0.0
        label_var = vb if getattr(self.loss_fn, "needs_label_variance", False) else None
        loss = self.loss_fn.from_batch(mean, yb, label_variance=label_var, pred_variance=var)
        value = float(loss.detach())
        t2 = clock() if phases is not None else 0.0
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = clock() if phases is not None else 0.0
        self.opt.step()
        _ = self.loss_fn.records
        if phases is not None:
            t4 = clock()
            for name, dt in zip(PHASES, (t1 - tp, t2 - t1 + tp - t0, t3 - t2, t4 - t3)):
                phases[name].append(dt)
        return value

    def timed(self, steps: int, clock: Callable[[], float]) -> float:
        """Seconds per step over ``steps`` steps."""
        return C.time_call(self.step, repeat=steps, clock=clock)


def run_case(
    title: str,
    model_name: str,
    input_shape: tuple[int, ...],
    batch_size: int,
    *,
    balanced_only: bool,
    rounds: int,
    steps: int,
    options: dict,
    clock: Callable[[], float],
    phase_rows: list[list[object]] | None = None,
) -> list[list[object]]:
    batches = make_batches(input_shape, batch_size, n_batches=8)
    specs = loss_specs(all_labels(batches), balanced_only=balanced_only)
    base_models = {}
    for head in {h for h, _ in specs.values()}:
        torch.manual_seed(0)
        base_models[head] = build_model(model_name, input_shape, head=head, **options)
    trainers = {
        name: Trainer(copy.deepcopy(base_models[head]), factory(), batches) for name, (head, factory) in specs.items()
    }
    times = C.interleaved({name: (lambda t=t: t.timed(steps, clock)) for name, t in trainers.items()}, rounds, warmup=1)
    if phase_rows is not None:  # the same steps again, split into phases (means over all steps)
        phases = {name: {p: [] for p in PHASES} for name in trainers}
        C.interleaved({name: (lambda t=t, n=name: t.step(phases[n], clock)) for name, t in trainers.items()}, rounds)
        for name in specs:
            means = [statistics.fmean(phases[name][p]) * 1e6 for p in PHASES]
            phase_rows.append([title, name, *(f"{m:.0f}" for m in means), f"{sum(means):.0f}"])
    rows = []
    for name in specs:
        ratios = C.paired_ratios(times[name], times["mse"])
        ratio = C.median(ratios)
        q1, q3 = C.quartiles(ratios)
        target = f"<= {TARGET:.2f}: {'met' if ratio <= TARGET else 'MISSED'}" if name.startswith("biv auto") else ""
        rows.append([title, name, C.median(times[name]) * 1e3, f"{ratio:.3f}", f"{q1:.2f}-{q3:.2f}", target])
    return rows


def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0], default_threads=1)
    parser.add_argument("--cnn", action="store_true", help="also time the BIV age CNN at 64 px, batch 64")
    parser.add_argument("--wall", action="store_true", help="time with the wall clock instead of CPU time")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (default 200, 60 with --quick)")
    parser.add_argument("--steps", type=int, default=None, help="steps per loss per round (default 2)")
    parser.add_argument("--phases", action="store_true",
                        help="also time each phase of the Wine batch-256 steps (forward, loss, backward, optimizer)")
    args = parser.parse_args()
    threads = C.set_threads(args.threads)
    rounds = args.rounds or (60 if args.quick else 200)
    steps = args.steps or 2
    clock = time.perf_counter if args.wall else time.process_time
    print(C.environment_line(threads))
    print(f"clock: {'wall time' if args.wall else 'CPU time of this process (process_time)'}")
    print(f"{rounds} rounds x {steps} steps per loss; ratio = median over rounds of (loss / mse in the same round)")

    wine = {"preset": "wine"}
    phase_rows: list[list[object]] | None = [] if args.phases else None
    rows = run_case("wine MLP, batch 256", "mlp", (11,), 256, balanced_only=False, rounds=rounds, steps=steps,
                    options=wine, clock=clock, phase_rows=phase_rows)
    rows += run_case("wine MLP, batch 1024", "mlp", (11,), 1024, balanced_only=True, rounds=rounds, steps=steps,
                     options=wine, clock=clock)
    if args.cnn:
        rows += run_case("cnn 64 px, batch 64", "cnn", (3, 64, 64), 64, balanced_only=False,
                         rounds=max(5, rounds // 20), steps=1, options={}, clock=clock)
    C.print_table(["case", "loss", "step ms (median)", "ratio vs mse (median)", "ratio IQR", "target"], rows,
                  title="Step time relative to MSE (forward + loss + backward + Adam step)")
    if phase_rows:
        C.print_table(["case", "loss", *(f"{p} us" for p in PHASES), "total us"], phase_rows,
                      title="Phases of the same steps inside the training loop (mean over all steps, microseconds)")


if __name__ == "__main__":
    main()
