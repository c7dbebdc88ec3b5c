"""Run the original command lines of the BIV research code and of its IV precursor with hetreg.

* :func:`cli_biv` (``python main.py ...`` at the repository root, ``hetreg compat biv ...``):
  ``--experiment_settings``, ``--model_settings``, ``--noise_settings``, ``--params_settings``,
  ``--parameters``, ``--extra_exp``;
* :func:`cli_iv` (``hetreg compat iv ...``): ``--exp_settings``, ``--noise_settings``,
  ``--noise_params``, ``--estim_noise_params``.

Both accept the hetreg options ``--data-dir``, ``--epochs``, ``--out``, ``--dry-run`` and
``--config-out FILE``. :func:`resolve_biv` and :func:`resolve_iv` give the resolved experiment
without running anything. Semantics and divergences: ``docs/compat.md``.
"""

from hetreg.compat._common import CompatError, ResolvedExperiment, RunOptions
from hetreg.compat.biv import cli_biv, resolve_biv
from hetreg.compat.iv import cli_iv, resolve_iv

__all__ = ["CompatError", "ResolvedExperiment", "RunOptions", "cli_biv", "cli_iv", "resolve_biv", "resolve_iv"]
