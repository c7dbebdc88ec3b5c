"""Loss library: every loss is a pure function (the formula) plus an ``nn.Module`` (the state).

Conventions shared by all losses:

* shapes (N,), (N, 1) and (N, d); ``pred`` and ``target`` must have the same shape;
* ``reduction`` in ``"mean"``, ``"sum"``, ``"none"`` and an optional per-sample ``weight``;
* per-sample variances may be (N,), (N, 1) or the shape of ``pred``;
* bad input raises ``ValueError`` naming the argument.
"""

from hetreg.losses.base import RegressionLoss
from hetreg.losses.cutoff import CutoffMSELoss, cutoff_mask, cutoff_mse_loss
from hetreg.losses.inverse_variance import (
    BIVLoss,
    IVLoss,
    biv_factors,
    biv_loss,
    effective_batch_size,
    iv_loss,
    solve_epsilon,
)
from hetreg.losses.mse import MSELoss, mse_loss
from hetreg.losses.nll import BetaNLLLoss, GaussianNLLLoss, beta_nll_loss, gaussian_nll_loss, positive_variance
from hetreg.losses.reduction import reduce_terms
from hetreg.losses.registry import build_loss, loss_factory, loss_names, register_loss

register_loss("mse", MSELoss)
register_loss("iv", IVLoss)
register_loss("biv", BIVLoss)
register_loss("cutoff", CutoffMSELoss)
register_loss("gaussian_nll", GaussianNLLLoss)
register_loss("beta_nll", BetaNLLLoss)

__all__ = [
    "RegressionLoss",
    "reduce_terms",
    "build_loss",
    "loss_names",
    "loss_factory",
    "register_loss",
    "mse_loss",
    "MSELoss",
    "iv_loss",
    "IVLoss",
    "biv_factors",
    "biv_loss",
    "BIVLoss",
    "effective_batch_size",
    "solve_epsilon",
    "cutoff_mse_loss",
    "cutoff_mask",
    "CutoffMSELoss",
    "gaussian_nll_loss",
    "GaussianNLLLoss",
    "beta_nll_loss",
    "BetaNLLLoss",
    "positive_variance",
]

# -- imbalanced regression and learned weighting (Balanced MSE, LDS): added below this line --
from functools import partial as _partial  # noqa: E402

from hetreg.losses.balanced_mse import BalancedMSELoss, bmc_loss, bni_loss, gai_loss  # noqa: E402
from hetreg.losses.priors import GMMPrior, HistogramPrior  # noqa: E402
from hetreg.losses.uncertainty_weighting import UncertaintyWeighting, uncertainty_weighted_sum  # noqa: E402

register_loss("bmc", _partial(BalancedMSELoss, "bmc"))
register_loss("bni", _partial(BalancedMSELoss, "bni"))
register_loss("gai", _partial(BalancedMSELoss, "gai"))
__all__ += ["bmc_loss", "bni_loss", "gai_loss", "BalancedMSELoss", "HistogramPrior", "GMMPrior"]
__all__ += ["UncertaintyWeighting", "uncertainty_weighted_sum"]

from hetreg.losses.lds import assign_bins, bin_index, kernel_window, lds_weights, smooth_histogram  # noqa: E402

__all__ += ["assign_bins", "bin_index", "kernel_window", "lds_weights", "smooth_histogram"]
