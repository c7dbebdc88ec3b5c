"""UTKFace training throughput: hetreg's cached image pipeline against the original per-item PIL pipeline.

Both pipelines train the same BIV age CNN (``build_model("cnn")``, same initial weights, Adam,
lr 1e-3, MSE on z-scored ages) with the same batch size, the same number of steps and the same
evaluation cadence: **one evaluation of the test split at the end of every epoch** (eval mode, no
gradients). Only the way images reach the model differs:

* ``hetreg cached``: what the trainer does (``hetreg.train.runner``): the split is decoded once
  into the uint8 image cache (:mod:`hetreg.data.images`) and held in memory; each batch is
  ``x_train[idx]`` for a seeded permutation, then ``Standardizer.transform_x`` (to float, channels
  first, z-scored) per batch; evaluation is ``hetreg.train.evaluation.predict`` on the in-memory
  test images.
* ``naive (original)``: ``benchmarks/naive_pipeline.py``: a ``Dataset`` that opens and decodes
  each JPEG with PIL on every ``__getitem__`` (resized with PIL at 64 px; 200 px is the stored
  size), ``ToTensor``-like conversion, scalar z-scoring, a standard ``DataLoader``
  (``num_workers=0`` as the original; ``--workers`` to change it), the test split read the same
  way at every evaluation. (The original also evaluated after every step; here both evaluate
  once per epoch, so the comparison isolates the data pipeline.)

The images are the same files in both: the train and test splits chosen by
``load_utkface(max_images=..., train_size=..., test_size=..., val_fraction=0)``. The OS file
cache is warmed (every file read once) before timing, so neither pipeline pays for disk reads.
The one-time cost of building hetreg's cache is reported separately.

Threads: 1 by default (``--threads N`` to change). On a shared machine every multi-threaded op
waits for its slowest thread: with 2 threads on a busy 2-core machine the CNN step was measured 4x
slower than with 1, and the naive pipeline's per-image tensor ops (200 px images are large enough
for torch to parallelise them) 10-25x slower, which would exaggerate the gap. On an idle machine
try ``--threads 2`` as well.

Timing: with 1 thread and no DataLoader workers all the work happens in this process, so the
clock is the CPU time of the process (``time.process_time``), which does not count the time
spent waiting for a core while other jobs run; otherwise (or with ``--wall``) the wall clock.
Each round runs one
epoch (training steps + the test evaluation) of each pipeline, the order alternating between
rounds; a warm-up step of each pipeline is not timed. The ratio is the median over rounds of
(naive time / hetreg time); img/s counts training images per second of the whole epoch (steps +
evaluation).

FLOP/s: forward FLOPs of the CNN per image counted with ``torch.utils.flop_counter.FlopCounterMode``
(convolutions and the linear head; BatchNorm, ReLU and pooling are not counted), x3 for a
training step (forward + backward), x1 for an evaluated image; divided by the epoch time and
compared with the float32 ``torch.mm`` throughput (2048 x 2048, best of 7) measured at the same
thread count with the same clock.

Needs the data: ``HETREG_DATA=/work/shared/data python benchmarks/bench_utkface_training.py [--quick]``.
The image cache goes to ``HETREG_CACHE`` (default: the per-user cache folder).
"""

from __future__ import annotations

import copy
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

import _common as C
from naive_pipeline import NaiveUTKFace, naive_loader
from hetreg.data import Standardizer
from hetreg.data.location import data_root
from hetreg.data.utkface import load_utkface
from hetreg.models import build_model
from hetreg.train.evaluation import predict
from hetreg.train.runner import batch_bounds

LR = 1e-3


@dataclass(frozen=True)
class Case:
    size: int
    train: int
    test: int
    batch: int
    rounds: int


def forward_flops_per_image(model: nn.Module, size: int) -> float:
    """Forward FLOPs of ``model`` for one (3, size, size) image."""
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    finally:
        model.train(was_training)
    return float(counter.get_total_flops())


class Pipeline:
    """One training run: a model, its optimizer, and a way to get batches and evaluate."""

    name = ""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.opt = torch.optim.Adam(model.parameters(), lr=LR)
        self.loss_fn = nn.MSELoss()
        self.data_time = 0.0
        self.clock: Callable[[], float] = time.perf_counter

    def batches(self, limit: int | None):  # pragma: no cover - interface
        raise NotImplementedError

    def evaluate(self) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def epoch(self, limit: int | None = None, evaluate: bool = True) -> tuple[float, int, float, float]:
        """Train one epoch (or ``limit`` steps), then evaluate.

        Returns (seconds, training images, seconds waiting for training batches, seconds of the evaluation).
        """
        self.model.train()
        self.data_time = 0.0
        images = 0
        t0 = self.clock()
        for xb, yb in self.batches(limit):
            loss = self.loss_fn(self.model(xb), yb)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            images += xb.shape[0]
        t1 = self.clock()
        if evaluate:
            self.evaluate()
        t2 = self.clock()
        return t2 - t0, images, self.data_time, t2 - t1


class CachedPipeline(Pipeline):
    """hetreg: in-memory uint8 images, a seeded permutation, ``transform_x`` per batch."""

    name = "hetreg cached"

    def __init__(self, model: nn.Module, x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor,
                 std: Standardizer, batch: int, seed: int = 0) -> None:
        super().__init__(model)
        self.x_train, self.y_train = x_train, std.transform_y(y_train).float().reshape(-1, 1)
        self.x_test, self.y_test = x_test, std.transform_y(y_test).float()
        self.std, self.batch = std, batch
        self.gen = torch.Generator().manual_seed(seed)
        self.bounds = batch_bounds(len(y_train), batch, drop_last=False, drop_singleton=True)

    def batches(self, limit: int | None):
        order = torch.randperm(len(self.y_train), generator=self.gen)
        for start, stop in self.bounds[:limit]:
            t = self.clock()
            idx = order[start:stop]
            xb = self.std.transform_x(self.x_train[idx])
            yb = self.y_train[idx]
            self.data_time += self.clock() - t
            yield xb, yb

    def evaluate(self) -> float:
        pred, _ = predict(self.model, self.x_test, batch_size=self.batch, transform=self.std.transform_x)
        return float(((pred - self.y_test) ** 2).mean())


class NaivePipeline(Pipeline):
    """The original: PIL decode on every ``__getitem__``, a standard ``DataLoader``."""

    name = "naive (original)"

    def __init__(self, model: nn.Module, train: NaiveUTKFace, test: NaiveUTKFace, batch: int, workers: int) -> None:
        super().__init__(model)
        self.train_loader = naive_loader(train, batch, shuffle=True, workers=workers)
        self.test_loader = naive_loader(test, batch, shuffle=False, workers=workers)

    def batches(self, limit: int | None):
        it = iter(self.train_loader)
        steps = 0
        while limit is None or steps < limit:
            t = self.clock()
            try:
                xb, yb = next(it)
            except StopIteration:
                return
            self.data_time += self.clock() - t
            if xb.shape[0] < 2:  # BatchNorm cannot train on one sample (as batch_bounds drops it)
                return
            steps += 1
            yield xb, yb

    def evaluate(self) -> float:
        self.model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for xb, yb in self.test_loader:
                total += float(((self.model(xb) - yb) ** 2).sum())
                count += yb.shape[0]
        self.model.train()
        return total / max(count, 1)


def warm_file_cache(paths: list[Path]) -> None:
    """Read every file once so the OS page cache holds them (no disk reads in the timed epochs)."""
    for p in paths:
        p.read_bytes()


def run_case(case: Case, workers: int, matmul: float, clock: Callable[[], float]) -> list[list[object]]:
    t0 = time.perf_counter()
    data = load_utkface(
        seed=0,
        image_size=case.size,
        max_images=case.train + case.test + 64,  # slack: duplicate groups are never split
        train_size=case.train,
        test_size=case.test,
        val_fraction=0.0,
    )
    load_s = time.perf_counter() - t0
    decoded = data.info["decoded"]
    std = Standardizer.fit(data)
    folder = data_root() / "utkface" / "UTKFace"
    train_files = [folder / name for name in data.train.ids]
    test_files = [folder / name for name in data.test.ids]
    warm_file_cache(train_files + test_files)
    size = None if case.size == 200 else case.size
    stats = dict(pixel_mean=float(std.x_mean), pixel_std=float(std.x_std), age_mean=std.y_mean, age_std=std.y_std)
    naive_train = NaiveUTKFace(train_files, data.train.y.tolist(), size=size, **stats)
    naive_test = NaiveUTKFace(test_files, data.test.y.tolist(), size=size, **stats)

    torch.manual_seed(0)
    model = build_model("cnn", (3, case.size, case.size))
    flops = forward_flops_per_image(model, case.size)
    pipes: dict[str, Pipeline] = {
        "hetreg cached": CachedPipeline(copy.deepcopy(model), data.train.x, data.train.y, data.test.x, data.test.y,
                                        std, case.batch),
        "naive (original)": NaivePipeline(copy.deepcopy(model), naive_train, naive_test, case.batch, workers),
    }
    for pipe in pipes.values():
        pipe.clock = clock
    for pipe in pipes.values():  # warm-up: allocator, thread pool, first-call overheads
        pipe.epoch(limit=1, evaluate=False)

    results: dict[str, list[tuple[float, int, float, float]]] = {name: [] for name in pipes}
    names = list(pipes)
    for r in range(case.rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            results[name].append(pipes[name].epoch())
            seconds, images, data_s, _ = results[name][-1]
            print(f"  {case.size} px round {r + 1}/{case.rounds} {name}: {images} images in {seconds:.1f} s "
                  f"({images / seconds:.1f} img/s, data {100 * data_s / seconds:.0f}%)", file=sys.stderr, flush=True)

    base = [r[0] for r in results["hetreg cached"]]
    rows = []
    steps = len(pipes["hetreg cached"].bounds)  # type: ignore[attr-defined]
    for name in names:
        secs = [r[0] for r in results[name]]
        imgs = results[name][0][1]
        data_share = C.median([r[2] / r[0] for r in results[name]])
        eval_s = C.median([r[3] for r in results[name]])
        epoch_s = C.median(secs)
        achieved = (3 * flops * imgs + flops * len(data.test)) / epoch_s
        rows.append([
            f"{case.size} px", name, f"{steps} x {case.batch}", imgs / epoch_s,
            C.median(C.paired_ratios(secs, base)), f"{100 * data_share:.0f}%", eval_s,
            achieved / 1e9, f"{100 * achieved / matmul:.1f}%",
        ])
    # The original evaluated the whole test split after every step, not once per epoch.
    naive_eval = C.median([r[3] for r in results["naive (original)"]])
    naive_epoch = C.median([r[0] for r in results["naive (original)"]])
    original_cadence = naive_epoch + (steps - 1) * naive_eval
    print(f"{case.size} px: with the original's cadence (test evaluation after every step) the naive epoch would "
          f"take {original_cadence:.1f} s = {original_cadence / C.median(base):.1f} x hetreg's epoch "
          f"(extrapolated from the measured evaluation time)", flush=True)
    cache_note = f"decoded {decoded} images into the cache" if decoded else "cache reused"
    print(f"{case.size} px: train {len(data.train)}, test {len(data.test)} images; hetreg load {load_s:.1f} s "
          f"({cache_note}); CNN forward {flops / 1e6:.1f} MFLOP/image", flush=True)
    return rows


def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0], default_threads=1)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the naive pipeline (default 0, as the original)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 200], help="image sizes (default 64 200)")
    parser.add_argument("--batch", type=int, default=64, help="batch size of both pipelines (default 64)")
    parser.add_argument("--wall", action="store_true", help="time with the wall clock (always used with threads > 1 or workers > 0)")
    parser.add_argument("--rounds", type=int, default=None, help="timed epochs per pipeline (default 3, 1 with --quick)")
    args = parser.parse_args()
    if not os.environ.get("HETREG_DATA"):
        sys.exit("set HETREG_DATA to the data folder holding utkface/UTKFace/ (e.g. HETREG_DATA=/work/shared/data)")
    threads = C.set_threads(args.threads)
    rounds = args.rounds or (1 if args.quick else 3)
    cases = {
        64: Case(64, train=512 if args.quick else 2048, test=128 if args.quick else 512, batch=args.batch, rounds=rounds),
        200: Case(200, train=64 if args.quick else 512, test=32 if args.quick else 128, batch=args.batch, rounds=rounds),
    }
    cpu_clock = threads == 1 and args.workers == 0 and not args.wall
    clock = time.process_time if cpu_clock else time.perf_counter
    matmul = C.matmul_flops(threads, clock=clock)
    print(C.environment_line(threads))
    print(f"clock: {'CPU time of this process (process_time)' if cpu_clock else 'wall time'}")
    print(f"float32 matmul (2048^2, best of 7, same clock) at {threads} threads: {matmul / 1e9:.1f} GFLOP/s; "
          f"naive DataLoader workers: {args.workers}; evaluation: test split once per epoch")
    rows: list[list[object]] = []
    for size in args.sizes:
        case = cases.get(size) or Case(size, train=cases[64].train, test=cases[64].test, batch=args.batch, rounds=rounds)
        rows += run_case(case, args.workers, matmul, clock)
    C.print_table(
        ["size", "pipeline", "steps x batch / epoch", "img/s", "time vs hetreg", "train data wait", "eval s",
         "GFLOP/s", "of matmul peak"],
        rows,
        title="UTKFace CNN training, one epoch + test evaluation per round (medians over rounds)",
    )


if __name__ == "__main__":
    main()
