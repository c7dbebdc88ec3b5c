"""Learning-rate schedules: formulas, and groups marked no_schedule are left alone."""

from __future__ import annotations

import math

import pytest
import torch

from hetreg.experiments.config import ScheduleConfig
from hetreg.train.schedule import apply_schedule, scheduled_lr


def test_constant_schedule():
    assert [scheduled_lr(0.1, e, 5, ScheduleConfig()) for e in range(5)] == [0.1] * 5


def test_step_schedule_decays_every_step_size_epochs():
    cfg = ScheduleConfig(name="step", step_size=2, gamma=0.5)
    assert [scheduled_lr(0.8, e, 6, cfg) for e in range(6)] == [0.8, 0.8, 0.4, 0.4, 0.2, 0.2]


def test_cosine_schedule_matches_the_closed_form_and_torch():
    cfg = ScheduleConfig(name="cosine", min_lr=0.01)
    ours = [scheduled_lr(0.1, e, 8, cfg) for e in range(8)]
    assert ours[0] == pytest.approx(0.1)
    assert ours[4] == pytest.approx(0.01 + 0.09 * 0.5)
    # torch's CosineAnnealingLR with T_max = epochs gives the same sequence
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=8, eta_min=0.01)
    theirs = []
    for _ in range(8):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert ours == pytest.approx(theirs, rel=1e-12)
    assert all(a > b for a, b in zip(ours, ours[1:]))


def test_bad_epoch_is_refused():
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        scheduled_lr(0.1, -1, 3, ScheduleConfig())


def test_apply_schedule_skips_no_schedule_groups_and_is_stateless():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([{"params": [a], "lr": 0.2}, {"params": [b], "lr": 0.05, "no_schedule": True}])
    cfg = ScheduleConfig(name="step", step_size=1, gamma=0.1)
    apply_schedule(opt, 2, 5, cfg)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.002)
    assert opt.param_groups[1]["lr"] == 0.05
    apply_schedule(opt, 0, 5, cfg)  # depends on the epoch only, not on earlier calls
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2)
    assert math.isclose(opt.param_groups[0]["initial_lr"], 0.2)
