"""Learning-rate schedules as pure functions of the epoch, applied to optimizer parameter groups.

A group whose dict holds ``"no_schedule": True`` (the learnable σ of Balanced MSE) keeps its
learning rate. The schedule has no state beyond the epoch number, so a resumed run gets exactly
the learning rates of an uninterrupted one.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer

from hetreg.experiments.config import ScheduleConfig

__all__ = ["scheduled_lr", "apply_schedule"]


def scheduled_lr(base_lr: float, epoch: int, epochs: int, schedule: ScheduleConfig) -> float:
    """The learning rate of epoch ``epoch`` (0-based) out of ``epochs``.

    * ``none``: :math:`lr_0`;
    * ``step``: :math:`lr_0\\,\\gamma^{\\lfloor e / \\text{step\\_size} \\rfloor}`;
    * ``cosine``: :math:`lr_{min} + (lr_0 - lr_{min})\\,(1 + \\cos(\\pi e / E))/2`, from
      :math:`lr_0` at e = 0 towards :math:`lr_{min}` at e = E.
    """
    if epoch < 0 or epochs < 1:
        raise ValueError(f"epoch must be >= 0 and epochs >= 1, got epoch={epoch}, epochs={epochs}")
    if schedule.name == "none":
        return base_lr
    if schedule.name == "step":
        return base_lr * schedule.gamma ** (epoch // schedule.step_size)
    if schedule.name == "cosine":
        return schedule.min_lr + (base_lr - schedule.min_lr) * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    raise ValueError(f"unknown schedule {schedule.name!r}; allowed values: none, step, cosine")


def apply_schedule(optimizer: Optimizer, epoch: int, epochs: int, schedule: ScheduleConfig) -> None:
    """Set the lr of every group not marked ``no_schedule`` for epoch ``epoch`` (0-based).

    The base lr of a group is kept in ``group["initial_lr"]`` (written on first use).
    """
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
        if group.get("no_schedule", False):
            continue
        group["lr"] = scheduled_lr(group["initial_lr"], epoch, epochs, schedule)
