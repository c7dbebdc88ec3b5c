"""Label noise for 10^6 labels: hetreg's vectorised sampler against the original per-sample loop.

Noise: the README main example of the original BIV code in raw UTKFace units, a two-uniform
mixture of variances (p = 0.5; U(0.226, 0.774) and U(2713, 9286) years², mean 3000 years²),
then y + N(0, σ²) per label.

* ``hetreg``: :func:`hetreg.noise.add_label_noise` on all n labels at once.
* ``per-sample loop``: written here the way the original did it (reference §3.3-3.4): for each
  label, draw r = ``torch.rand(1)``, walk the component intervals {1: (0, p), 2: (p, 1)} in a
  Python loop to pick the component, build a ``torch.distributions.Uniform(low, high)`` and sample
  σ², build a ``torch.distributions.Normal(0, sqrt(σ²))`` and sample the noise. It is timed on a
  subset (``--loop-n``, default 10^4) and **extrapolated linearly** to n (the loop does the same
  work for every label). Two variants: with the distribution argument checks that torch >= 1.8
  runs by default, and without them (``validate_args=False``, as under torch 1.5, which the
  original used); the ratio against the faster of the two is the conservative one.

Timing: CPU time of this process, 1 thread by default, measurements interleaved, medians.

Run: ``python benchmarks/bench_noise.py [--quick] [--n N] [--loop-n M]``
"""

from __future__ import annotations

import math
import time

import torch

import _common as C
from hetreg.noise import add_label_noise, binary_uniform, mixture_mean_target, uniform_max_heteroscedastic

P, MU1, TARGET_MEAN, SCALE = 0.5, 0.5, 3000.0, 0.3


def noise_distribution():
    """The README main example (``meanvar_avg,0.5,3000`` + ``True,0.5,1,0.3,0``) in years²."""
    mu2 = mixture_mean_target(P, MU1, TARGET_MEAN)
    return binary_uniform(P, uniform_max_heteroscedastic(MU1, SCALE), uniform_max_heteroscedastic(mu2, SCALE))


def generate_intervals(p: float) -> dict[int, tuple[float, float]]:
    """The original's component intervals for two components: {1: (0, p), 2: (p, 1)}."""
    return {1: (0.0, p), 2: (p, 1.0)}


def loop_noise(y: torch.Tensor, bounds: dict[int, tuple[float, float]], p: float, validate: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy labels and variances, one label at a time (the original per-sample procedure)."""
    intervals = generate_intervals(p)
    labels = torch.empty_like(y)
    variances = torch.empty_like(y)
    for k in range(y.shape[0]):
        r = torch.rand(1)
        component = None
        for key, (low, high) in intervals.items():
            if low < r.item() < high:
                component = key
                break
        if component is None:
            raise RuntimeError("r landed on an interval boundary")
        low, high = bounds[component]
        var = torch.distributions.Uniform(low, high, validate_args=validate).sample()
        delta = torch.distributions.Normal(0.0, math.sqrt(float(var)), validate_args=validate).sample()
        labels[k] = y[k] + delta
        variances[k] = var
    return labels, variances


def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0], default_threads=1)
    parser.add_argument("--n", type=int, default=1_000_000, help="labels for the vectorised sampler (default 10^6)")
    parser.add_argument("--loop-n", type=int, default=None, help="labels actually run through the loop (default 10^4, 2000 with --quick)")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (default 5, 3 with --quick)")
    parser.add_argument("--wall", action="store_true", help="time with the wall clock instead of CPU time")
    args = parser.parse_args()
    threads = C.set_threads(args.threads)
    loop_n = args.loop_n or (2000 if args.quick else 10_000)
    rounds = args.rounds or (3 if args.quick else 5)
    clock = time.perf_counter if args.wall else time.process_time
    print(C.environment_line(threads))
    print(f"clock: {'wall time' if args.wall else 'CPU time of this process (process_time)'}; {rounds} rounds, medians")

    dist = noise_distribution()
    low1, high1 = dist.components[0].low, dist.components[0].high
    low2, high2 = dist.components[1].low, dist.components[1].high
    bounds = {1: (low1, high1), 2: (low2, high2)}
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(1, 117, (args.n,), generator=gen).double()
    y_loop = y[:loop_n].clone()
    torch.manual_seed(0)

    # Sanity: both produce the same law (mean variance close to 3000 years²).
    vec = add_label_noise(y, dist, torch.Generator().manual_seed(1))
    _, loop_var = loop_noise(y_loop[:2000], bounds, P, validate=False)
    print(f"mean variance: vectorised {float(vec.true_variance.mean()):.0f}, loop {float(loop_var.mean()):.0f} "
          f"(expected {TARGET_MEAN:.0f} years²)")

    variants = {
        "hetreg add_label_noise (vectorised)": lambda: C.time_call(
            lambda: add_label_noise(y, dist, torch.Generator().manual_seed(1)), clock=clock),
        "per-sample loop, validate_args=True": lambda: C.time_call(
            lambda: loop_noise(y_loop, bounds, P, validate=True), clock=clock) * args.n / loop_n,
        "per-sample loop, validate_args=False": lambda: C.time_call(
            lambda: loop_noise(y_loop, bounds, P, validate=False), clock=clock) * args.n / loop_n,
    }
    times = C.interleaved(variants, rounds, warmup=0)
    base = "hetreg add_label_noise (vectorised)"
    rows = []
    for name, ts in times.items():
        how = "measured" if name == base else f"measured on {loop_n:,}, x{args.n / loop_n:g}"
        ratio = C.median(C.paired_ratios(ts, times[base]))
        rows.append([name, f"{args.n:,}", how, C.median(ts), args.n / C.median(ts), ratio])
    C.print_table(["method", "labels", "timing", "seconds", "labels/s", "time vs hetreg"], rows,
                  title=f"Noisy labels from the two-uniform mixture (n = {args.n:,})")


if __name__ == "__main__":
    main()
