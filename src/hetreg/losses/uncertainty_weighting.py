"""Learned multi-task loss weighting by homoscedastic task uncertainty (Kendall, Gal, Cipolla, CVPR 2018).

Reference:
    Kendall, Gal, Cipolla. *Multi-Task Learning Using Uncertainty to Weigh Losses for Scene
    Geometry and Semantics*. CVPR 2018, arXiv:1705.07115.

Derivation. Each task i gets a homoscedastic (input-independent) noise scale :math:`\\sigma_i`, and
the tasks are independent given the network output, so the joint negative log-likelihood is the
sum of the per-task ones:

* **Regression**, Gaussian likelihood :math:`p(y \\mid f) = \\mathcal N(y; f, \\sigma^2)`:
  :math:`-\\log p \\propto \\frac{1}{2\\sigma^2}\\lVert y - f \\rVert^2 + \\log\\sigma`. With
  :math:`L = \\lVert y - f \\rVert^2` (the MSE) the task contributes
  :math:`\\frac{1}{2\\sigma^2} L + \\log\\sigma`.
* **Classification**, softmax of logits scaled by a temperature :math:`\\sigma^2`,
  :math:`p(y = c \\mid f, \\sigma) = \\mathrm{Softmax}(f/\\sigma^2)_c`. Using the approximation
  :math:`\\frac{1}{\\sigma}\\sum_{c'} \\exp(f_{c'}/\\sigma^2) \\approx (\\sum_{c'} \\exp f_{c'})^{1/\\sigma^2}`
  (exact at σ = 1), :math:`-\\log p \\approx \\frac{1}{\\sigma^2} L + \\log\\sigma` with
  :math:`L = -\\log \\mathrm{Softmax}(f)_c` (the cross-entropy).

So, for tasks with losses :math:`L_i`,

.. math:: L_{total} = \\sum_i c_i\\, e^{-s_i} L_i + \\tfrac12 s_i, \\qquad s_i = \\log \\sigma_i^2,
          \\quad c_i = \\tfrac12 \\text{ (regression)}, \\; 1 \\text{ (classification)}

because :math:`1/\\sigma^2 = e^{-s}` and :math:`\\log\\sigma = s/2`. A large loss is down-weighted
by a larger learned :math:`\\sigma_i`, and the :math:`s_i/2` term stops σ from growing without
bound; at the optimum for fixed :math:`L_i`, :math:`e^{s_i} = 2 c_i L_i`.

Parameterisation. The learnable quantity is the log-variance :math:`s_i`, not σ or σ²: it is
unconstrained (no positivity constraint or clamp), :math:`e^{-s}` never divides by zero, and
its gradient :math:`\\partial L_{total}/\\partial s_i = -c_i e^{-s_i} L_i + \\tfrac12` is smooth and
bounded near the optimum. (Discussions elsewhere about :math:`e^{-s}` vs :math:`e^{-s^2}` stem
from parameterising σ directly; here :math:`s = \\log\\sigma^2` throughout.)

Compatibility. LibMTL's ``UW`` uses the factor 1/2 for **every** task, classification included,
and initialises :math:`s_i = -0.5`. To reproduce it, declare every task ``"regression"`` and use
``init_log_var=-0.5``. The study notes this project started from also write 1/2 for both tasks.

Units. :math:`L_i` should be the batch mean of the per-sample loss (the sum over output
dimensions of a sample's squared error for multi-output regression); the :math:`s_i/2` term is
then per sample, which is what averaging the joint NLL over the batch gives.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn

from hetreg._validation import check_positive

TASK_KINDS: dict[str, float] = {"regression": 0.5, "classification": 1.0}
"""Task kind → factor :math:`c_i` of :math:`e^{-s_i} L_i`."""


def _check_task_names(given: Mapping[str, object], expected: Mapping[str, object], what: str) -> None:
    unknown = sorted(set(given) - set(expected))
    missing = sorted(set(expected) - set(given))
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown task(s) {unknown}")
        if missing:
            parts.append(f"missing task(s) {missing}")
        raise ValueError(f"{what}: {' and '.join(parts)}; expected exactly the tasks {sorted(expected)}")


def uncertainty_weighted_sum(
    losses: Mapping[str, Tensor],
    log_vars: Mapping[str, Tensor],
    kinds: Mapping[str, str],
) -> Tensor:
    """Kendall et al.'s uncertainty-weighted total loss:

    .. math:: L_{total} = \\sum_i c_i\\, e^{-s_i} L_i + \\tfrac12 s_i

    Args:
        losses: task name → scalar (0-dim) loss :math:`L_i` of the batch (MSE for regression,
            cross-entropy for classification).
        log_vars: task name → 0-dim log-variance :math:`s_i = \\log\\sigma_i^2`.
        kinds: task name → ``"regression"`` (:math:`c_i = 1/2`) or ``"classification"`` (:math:`c_i = 1`).

    Returns:
        A 0-dim tensor (dimensionless: nats).

    Raises:
        ValueError: on unknown or missing task names, an unknown kind or a non-scalar loss.
    """
    for name, kind in kinds.items():
        if kind not in TASK_KINDS:
            raise ValueError(f"task {name!r} has unknown kind {kind!r}; valid kinds: {', '.join(TASK_KINDS)}")
    _check_task_names(log_vars, kinds, "log_vars")
    _check_task_names(losses, kinds, "losses")
    total: Tensor | None = None
    for name in kinds:
        loss, s = losses[name], log_vars[name]
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise ValueError(f"the loss of task {name!r} must be a 0-dim tensor (a reduced batch loss), got {shape}")
        s = s.to(device=loss.device, dtype=loss.dtype)
        term = TASK_KINDS[kinds[name]] * torch.exp(-s) * loss + 0.5 * s
        total = term if total is None else total + term
    assert total is not None
    return total


class UncertaintyWeighting(nn.Module):
    """Learnable task weights :math:`s_i = \\log\\sigma_i^2`; the formula is :func:`uncertainty_weighted_sum`.

    Example::

        uw = UncertaintyWeighting({"age": "regression", "gender": "classification"})
        opt = torch.optim.Adam([*model.parameters(), *uw.parameters()], lr=1e-3)
        total = uw({"age": mse, "gender": cross_entropy})
        total.backward()
        uw.sigmas()  # {"age": σ_age, "gender": σ_gender}

    Args:
        tasks: task name → ``"regression"`` or ``"classification"``. Names must be non-empty
            and contain no ``"."`` (they are parameter names).
        init_log_var: initial :math:`s_i`, one float for all tasks or a dict per task
            (0 gives σ = 1; LibMTL starts at -0.5).

    Attributes:
        log_vars: ``nn.ParameterDict`` of the 0-dim :math:`s_i`, saved in ``state_dict``.
    """

    def __init__(self, tasks: Mapping[str, str], init_log_var: float | Mapping[str, float] = 0.0) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("tasks is empty; give at least one task, e.g. {'age': 'regression'}")
        for name, kind in tasks.items():
            if not isinstance(name, str) or not name or "." in name:
                raise ValueError(f"task names must be non-empty strings without '.', got {name!r}")
            if kind not in TASK_KINDS:
                raise ValueError(f"task {name!r} has unknown kind {kind!r}; valid kinds: {', '.join(TASK_KINDS)}")
        if isinstance(init_log_var, Mapping):
            _check_task_names(init_log_var, tasks, "init_log_var")
            init = {name: float(init_log_var[name]) for name in tasks}
        else:
            init = {name: float(init_log_var) for name in tasks}
        for name, value in init.items():
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(f"init_log_var of task {name!r} must be finite, got {value}")
        self.kinds: dict[str, str] = dict(tasks)
        self.log_vars = nn.ParameterDict(
            {name: nn.Parameter(torch.tensor(init[name], dtype=torch.get_default_dtype())) for name in tasks}
        )

    def forward(self, losses: Mapping[str, Tensor]) -> Tensor:
        """Total loss :math:`\\sum_i c_i e^{-s_i} L_i + s_i/2` from the per-task batch losses."""
        return uncertainty_weighted_sum(losses, dict(self.log_vars.items()), self.kinds)

    def sigmas(self) -> dict[str, float]:
        """Current :math:`\\sigma_i = e^{s_i/2}` per task (in the units of each task's residual)."""
        return {name: float(torch.exp(0.5 * s.detach())) for name, s in self.log_vars.items()}

    def task_weights(self) -> dict[str, float]:
        """Current effective weight :math:`c_i e^{-s_i}` of each task loss."""
        return {name: TASK_KINDS[self.kinds[name]] * float(torch.exp(-s.detach())) for name, s in self.log_vars.items()}

    @property
    def records(self) -> dict[str, float]:
        """Current ``sigma_<task>``, ``log_var_<task>`` and ``weight_<task>`` as floats, for logging."""
        out: dict[str, float] = {}
        weights = self.task_weights()
        for name, sigma in self.sigmas().items():
            out[f"sigma_{name}"] = sigma
            out[f"log_var_{name}"] = float(self.log_vars[name].detach())
            out[f"weight_{name}"] = weights[name]
        return out

    def param_groups(self, lr: float) -> list[dict]:
        """One optimizer parameter group holding every :math:`s_i`, with its own learning rate."""
        check_positive(float(lr), "lr")
        return [{"params": list(self.log_vars.values()), "lr": float(lr), "name": "task_log_vars"}]

    def extra_repr(self) -> str:
        return ", ".join(f"{name}: {kind}" for name, kind in self.kinds.items())


__all__ = ["UncertaintyWeighting", "uncertainty_weighted_sum", "TASK_KINDS"]
