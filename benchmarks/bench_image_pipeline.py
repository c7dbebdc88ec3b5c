"""Benchmark of the UTKFace image pipeline (not a test).

Measures, on the real UTKFace files:

* first load (decode every JPEG in parallel and write the cache, in a fresh cache folder), images/s;
* cached load (memory-map the cache, decode nothing), seconds and images/s;
* the share of a training step spent preparing the batch: slicing a random batch of uint8 images
  from memory, normalising it to float (n, 3, H, W) and flipping half of it, against the model
  step (forward + backward + Adam) of the age CNN. Target: < 5 %.

Usage::

    HETREG_DATA=/work/shared/data python benchmarks/bench_image_pipeline.py [--sizes 64 200]

The cache goes to a temporary folder that is deleted at the end (the real cache is untouched).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

import torch

from hetreg.data import Standardizer, load_dataset
from hetreg.data.images import augment_hflip, default_workers
from hetreg.losses import mse_loss
from hetreg.models import build_model


def time_loads(root: str | None, size: int, workers: int | None) -> tuple[float, float, float, int, object]:
    """(first load s, cached load s, cached load CPU s, images, data); HETREG_CACHE is a fresh folder.

    The cached load is timed in wall-clock and in CPU seconds of this process (it runs no worker
    processes), the latter being what a machine without other work would show as wall time.
    """
    t0 = time.perf_counter()
    first = load_dataset("utkface", root=root, image_size=size, workers=workers)
    t1 = time.perf_counter()
    n = int(first.info["files_listed"])
    assert first.info["decoded"] == first.info["images"] + len(first.info["skipped"])
    del first
    c1, t2 = time.process_time(), time.perf_counter()
    data = load_dataset("utkface", root=root, image_size=size, workers=workers)
    c2, t3 = time.process_time(), time.perf_counter()
    assert data.info["decoded"] == 0, "the second load decoded images: the cache was not reused"
    return t1 - t0, t3 - t2, c2 - c1, n, data


def time_step(data, batch: int, steps: int, seed: int = 0) -> tuple[float, float]:
    """Median seconds per batch for data preparation and for the CNN training step."""
    std = Standardizer.fit(data)
    x, y = data.train.x, std.transform_y(data.train.y).unsqueeze(1)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build_model("cnn", data.input_shape)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(y), generator=g)
    data_times, step_times = [], []
    for i in range(steps + 1):  # the first step warms up and is not counted
        idx = order[(i * batch) % (len(y) - batch) :][:batch]
        t0 = time.perf_counter()
        xb = augment_hflip(std.transform_x(x[idx]), g)
        yb = y[idx]
        t1 = time.perf_counter()
        loss = mse_loss(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        if i > 0:
            data_times.append(t1 - t0)
            step_times.append(t2 - t1)
    return statistics.median(data_times), statistics.median(step_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="data folder (default: $HETREG_DATA)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64], help="image sizes (e.g. 64 200)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per size")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: all cores)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(f"cores usable: {default_workers()}, torch threads: {torch.get_num_threads()}, "
          f"load average at start: {os.getloadavg()[0]:.1f}")
    rows = []
    for size in args.sizes:
        tmp = tempfile.mkdtemp(prefix="hetreg-bench-cache-")
        os.environ["HETREG_CACHE"] = tmp
        try:
            first, cached, cached_cpu, n, data = time_loads(args.root, size, args.workers)
            t_data, t_step = time_step(data, args.batch, args.steps)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        rows.append((size, n, first, cached, cached_cpu, t_data, t_step))

    print()
    print("| size | images | first load (s) | first load (img/s) | cached load (s) | cached load (CPU s) "
          "| cached (img/s) | batch data (ms) | CNN step (ms) | data share |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size, n, first, cached, cached_cpu, t_data, t_step in rows:
        share = t_data / (t_data + t_step)
        print(f"| {size} | {n} | {first:.1f} | {n / first:,.0f} | {cached:.2f} | {cached_cpu:.2f} "
              f"| {n / cached:,.0f} | {1e3 * t_data:.1f} | {1e3 * t_step:.0f} | {100 * share:.1f} % |")
    print(f"\nbatch {args.batch}, median of {args.steps} steps; load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
