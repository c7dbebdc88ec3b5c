"""Multi-task learning with learned uncertainty weighting: age regression + gender classification.

A small CNN with two heads is trained on UTKFace faces: the age (in years, z-scored for training)
with the MSE, and the gender (0 = male, 1 = female, the second field of the file name) with the
cross-entropy. The two losses are combined by :class:`hetreg.losses.UncertaintyWeighting`
(Kendall, Gal, Cipolla 2018),

    L = ½·exp(−s_age)·MSE + s_age/2 + exp(−s_gender)·CE + s_gender/2,    s = log σ²,

which learns one σ per task together with the network. The example prints the learned σ_i and
the effective weights every epoch, and checks them against the fixed point of the formula for
the final losses (e^{s} = 2·c·L: σ²_age ≈ the training MSE, σ²_gender ≈ 2·CE).

Run (about half a minute on a CPU with the defaults; the first run also decodes and caches the
images)::

    HETREG_DATA=/work/shared/data python examples/multitask_utkface.py
    python examples/multitask_utkface.py --synthetic      # no image data needed

Without the UTKFace folder, or with ``--synthetic``, it falls back to synthetic two-task tabular
data (a nonlinear regression target and a logistic class label from the same inputs) and an MLP.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hetreg.losses import UncertaintyWeighting, mse_loss

TASKS = {"age": "regression", "gender": "classification"}


@dataclass(frozen=True)
class TwoTaskData:
    """Inputs (already normalised), z-scored regression targets and class labels per split."""

    name: str
    x: dict[str, Tensor]
    age_z: dict[str, Tensor]
    gender: dict[str, Tensor]
    age_mean: float
    age_std: float


def parse_gender(file_name: str) -> int:
    """Gender from a UTKFace file name ``<age>_<gender>_<race>_<datetime>.jpg.chip.jpg``."""
    field = file_name.split("_")[1]
    if field not in ("0", "1"):
        raise ValueError(f"no gender field (0/1) in UTKFace file name {file_name!r}")
    return int(field)


def load_utkface(max_images: int, image_size: int, seed: int) -> TwoTaskData:
    """UTKFace through the library loader; the gender comes from the file names (``Split.ids``)."""
    from hetreg.data import Standardizer, load_dataset

    data = load_dataset("utkface", seed=seed, max_images=max_images, image_size=image_size)
    std = Standardizer.fit(data)
    splits = {"train": data.train, "val": data.val, "test": data.test}
    return TwoTaskData(
        name=f"UTKFace ({max_images} images, {image_size} px)",
        x={k: std.transform_x(s.x) for k, s in splits.items()},
        age_z={k: std.transform_y(s.y) for k, s in splits.items()},
        gender={k: torch.tensor([parse_gender(i) for i in s.ids or ()], dtype=torch.long) for k, s in splits.items()},
        age_mean=std.y_mean,
        age_std=std.y_std,
    )


def synthetic(n: int, seed: int, dim: int = 16) -> TwoTaskData:
    """Two tasks from shared inputs: age-like y = 35 + 12·tanh(a·x) + noise, label = Bernoulli(σ(b·x))."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=dim) / math.sqrt(dim), rng.normal(size=dim) / math.sqrt(dim)
    x = rng.normal(size=(n, dim))
    age = 35 + 12 * np.tanh(2 * x @ a) + rng.normal(scale=4.0, size=n)
    gender = (rng.random(n) < 1 / (1 + np.exp(-3 * x @ b))).astype(np.int64)
    idx = {"train": slice(0, int(0.7 * n)), "val": slice(int(0.7 * n), int(0.8 * n)), "test": slice(int(0.8 * n), n)}
    mean, sd = float(age[idx["train"]].mean()), float(age[idx["train"]].std())
    return TwoTaskData(
        name=f"synthetic ({n} samples, {dim} features)",
        x={k: torch.tensor(x[s], dtype=torch.float32) for k, s in idx.items()},
        age_z={k: torch.tensor((age[s] - mean) / sd, dtype=torch.float32) for k, s in idx.items()},
        gender={k: torch.tensor(gender[s]) for k, s in idx.items()},
        age_mean=mean,
        age_std=sd,
    )


class TwoHeadNet(nn.Module):
    """A shared trunk (small CNN for images, MLP for vectors) and one head per task."""

    def __init__(self, input_shape: tuple[int, ...], width: int = 16) -> None:
        super().__init__()
        if len(input_shape) == 3:
            c = input_shape[0]
            self.trunk: nn.Module = nn.Sequential(
                nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            )  # fmt: skip
            features = 2 * width
        else:
            features = 4 * width
            self.trunk = nn.Sequential(nn.Linear(input_shape[0], features), nn.ReLU(), nn.Linear(features, features), nn.ReLU())
        self.age = nn.Linear(features, 1)
        self.gender = nn.Linear(features, 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.trunk(x)
        return self.age(h).squeeze(1), self.gender(h)


def task_losses(model: TwoHeadNet, x: Tensor, age_z: Tensor, gender: Tensor) -> dict[str, Tensor]:
    age_pred, logits = model(x)
    return {"age": mse_loss(age_pred, age_z), "gender": F.cross_entropy(logits, gender)}


@torch.no_grad()
def evaluate(model: TwoHeadNet, data: TwoTaskData, split: str) -> dict[str, float]:
    model.eval()
    age_pred, logits = model(data.x[split])
    model.train()
    mae_years = float((age_pred - data.age_z[split]).abs().mean()) * data.age_std
    accuracy = float((logits.argmax(1) == data.gender[split]).float().mean())
    return {"mae_years": mae_years, "accuracy": accuracy}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic", action="store_true", help="use synthetic two-task data instead of UTKFace")
    parser.add_argument("--max-images", type=int, default=2000, help="UTKFace images to load (a fixed subset)")
    parser.add_argument("--image-size", type=int, default=32, help="UTKFace image size in pixels")
    parser.add_argument("--samples", type=int, default=4000, help="synthetic samples")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3, help="network learning rate (Adam)")
    parser.add_argument("--uw-lr", type=float, default=2e-2, help="learning rate of the log-variances s_i")
    parser.add_argument("--init-log-var", type=float, default=0.0, help="initial s_i = log σ_i² (LibMTL: -0.5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (models this small run best on one)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    data = None
    if not args.synthetic:
        try:
            data = load_utkface(args.max_images, args.image_size, args.seed)
        except (FileNotFoundError, ValueError) as exc:
            print(f"UTKFace not available ({str(exc).splitlines()[0]}); falling back to --synthetic data")
    if data is None:
        data = synthetic(args.samples, args.seed)
    print(f"data: {data.name}; train/val/test = {len(data.age_z['train'])}/{len(data.age_z['val'])}/"
          f"{len(data.age_z['test'])}; age std {data.age_std:.2f} ({time.perf_counter() - start:.1f} s)")

    model = TwoHeadNet(tuple(data.x["train"].shape[1:]))
    uw = UncertaintyWeighting(TASKS, init_log_var=args.init_log_var)
    opt = torch.optim.Adam([{"params": model.parameters()}, *uw.param_groups(args.uw_lr)], lr=args.lr)

    n = len(data.age_z["train"])
    gen = torch.Generator().manual_seed(args.seed)
    print(f"{'epoch':>5} {'MSE(z)':>8} {'CE':>7} {'σ_age':>7} {'σ_gender':>8} {'w_age':>7} {'w_gender':>8} "
          f"{'val MAE (y)':>11} {'val acc':>7}")
    for epoch in range(1, args.epochs + 1):
        sums = {"age": 0.0, "gender": 0.0}
        for batch in torch.randperm(n, generator=gen).split(args.batch_size):
            losses = task_losses(model, data.x["train"][batch], data.age_z["train"][batch], data.gender["train"][batch])
            opt.zero_grad()
            uw(losses).backward()
            opt.step()
            for k in sums:
                sums[k] += float(losses[k].detach()) * len(batch)
        mse, ce = sums["age"] / n, sums["gender"] / n
        rec, val = uw.records, evaluate(model, data, "val")
        print(f"{epoch:>5} {mse:>8.4f} {ce:>7.4f} {rec['sigma_age']:>7.4f} {rec['sigma_gender']:>8.4f} "
              f"{rec['weight_age']:>7.3f} {rec['weight_gender']:>8.3f} {val['mae_years']:>11.2f} {val['accuracy']:>7.3f}")

    test = evaluate(model, data, "test")
    sig = uw.sigmas()
    print(f"\ntest: age MAE {test['mae_years']:.2f} years, gender accuracy {test['accuracy']:.3f}")
    print(f"learned σ_age = {sig['age']:.3f} (z-units) = {sig['age'] * data.age_std:.2f} years; σ_gender = {sig['gender']:.3f}")
    print(f"fixed point e^s = 2cL for the last epoch's losses: σ²_age → MSE = {mse:.3f} (now {sig['age'] ** 2:.3f}), "
          f"σ²_gender → 2·CE = {2 * ce:.3f} (now {sig['gender'] ** 2:.3f})")
    print(f"total time {time.perf_counter() - start:.1f} s")
    return {**test, "sigma_age": sig["age"], "sigma_gender": sig["gender"]}


if __name__ == "__main__":
    main()
