"""Balanced MSE (Ren et al., CVPR 2022): BMC, BNI and GAI, with a fixed or learnable noise scale σ.

Reference:
    Ren, Zhang, Yu, Liu. *Balanced MSE for Imbalanced Visual Regression*. CVPR 2022,
    arXiv:2203.16427.

Principle. Read the MSE as the Gaussian NLL :math:`-\\log \\mathcal N(y; \\hat y, \\sigma^2 I)` of a
*balanced* (uniform-prior) predictive distribution, and correct it for the label prior
:math:`p_{train}` of the training set. Dropping the θ-independent :math:`-\\log p_{train}(y)`:

.. math::
    L(\\hat y, y) = -\\log \\mathcal N(y; \\hat y, \\sigma^2 I)
                  + \\log \\int \\mathcal N(y'; \\hat y, \\sigma^2 I)\\, p_{train}(y')\\, dy' \\qquad (\\star)

The second, "balancing", term pushes predictions away from dense label regions. The variants
differ only in how they compute the integral :math:`I(\\hat y)`:

* **BMC** (batch Monte Carlo, :func:`bmc_loss`): the other labels of the batch are the samples of
  :math:`p_{train}`; no prior needed; O(B²·d) per batch; degenerate for a batch of one.
* **BNI** (Bayesian numerical integration, :func:`bni_loss`): point masses at histogram bins
  (:class:`~hetreg.losses.priors.HistogramPrior`).
* **GAI** (Gaussian-mixture analytical integration, :func:`gai_loss`): a GMM prior
  (:class:`~hetreg.losses.priors.GMMPrior`), integrated in closed form.

Conventions. Predictions and targets are (N,), (N, 1) or (N, d); (N,) and (N, 1) are d = 1. The
loss is one term per **sample** (the d output dimensions are coupled through the balancing
term), so ``reduction="none"`` returns shape (N,) for a 1-D ``pred`` and (N, 1) for a 2-D one,
``"mean"`` averages over the N samples, and ``weight`` is per sample ((N,) or (N, 1)).

Scale. With ``rescale=True`` (the default, as every official implementation) each term is
multiplied by :math:`2\\sigma^2` **detached**: the quadratic part becomes the plain squared error,
so the gradient with respect to :math:`\\hat y` has MSE magnitude whatever σ is, and the gradient
on σ is :math:`2\\sigma^2\\, \\partial L_{nll}/\\partial\\sigma` (the effective σ learning rate grows
like σ²). Without the detach the factor itself would drive a learnable σ to 0. Constants that do
not depend on :math:`\\hat y` or σ are dropped, so values can be negative (BNI) and grow like
:math:`2\\sigma^2 \\log B` (BMC): loss values are not comparable across σ, batch sizes or
variants, and must not drive model selection. The plain MSE usually *rises* under Balanced MSE;
the method targets a balanced evaluation (per-bin averaged metrics).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from hetreg._validation import check_choice, check_positive
from hetreg.losses.base import RegressionLoss
from hetreg.losses.mse import _prepare
from hetreg.losses.priors import GMMPrior, HistogramPrior
from hetreg.losses.reduction import reduce_terms

METHODS = ("bmc", "bni", "gai")
PRIOR_FOR_METHOD: dict[str, type | None] = {"bmc": None, "bni": HistogramPrior, "gai": GMMPrior}
"""Which prior each method needs (a trainer builds it from the training labels)."""

_HOW_TO_BUILD = {
    "bni": "pass prior=HistogramPrior.from_labels(train_labels, bin_width=1.0) (optionally lds=dict(kind='gaussian', "
    "size=5, sigma=2))",
    "gai": "pass prior=GMMPrior.fit(train_labels, n_components=8, seed=0)",
}

# ---------------------------------------------------------------------------------------------
# Shared argument handling
# ---------------------------------------------------------------------------------------------


def _as_matrix(x: Tensor) -> Tensor:
    """(N,) → (N, 1); (N, d) unchanged."""
    return x.unsqueeze(1) if x.dim() == 1 else x


def _per_sample_weight(pred: Tensor, target: Tensor, weight: Tensor | None, reduction: str) -> Tensor | None:
    """Validate pred/target/reduction/weight; return a weight aligned with the per-sample terms."""
    u = _prepare(pred, target, weight, reduction)
    if u is not None and pred.dim() == 2 and u.shape[1] != 1:
        raise ValueError(
            f"Balanced MSE has one term per sample, so weight must have shape (N,) or (N, 1) with N = "
            f"{pred.shape[0]}, got {tuple(weight.shape)}"  # type: ignore[union-attr]
        )
    return u


def _noise_var_like(noise_var: float | Tensor, like: Tensor) -> Tensor:
    """σ² as a 0-dim tensor in the dtype and on the device of ``like`` (the graph is kept)."""
    if isinstance(noise_var, Tensor):
        if noise_var.dim() != 0:
            raise ValueError(
                f"noise_var must be a float or a 0-dim tensor (one σ² for all dimensions, e.g. sigma ** 2), "
                f"got a tensor of shape {tuple(noise_var.shape)}"
            )
        value = float(noise_var.detach())
        var = noise_var.to(device=like.device, dtype=like.dtype)
    else:
        value = float(noise_var)
        var = torch.tensor(value, device=like.device, dtype=like.dtype)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(
            f"noise_var (σ²) must be finite and > 0, got {value}; a learnable σ that reached 0 needs a smaller "
            "sigma learning rate or a fixed σ (learn_sigma=False)"
        )
    return var


def _check_prior_dim(prior: HistogramPrior | GMMPrior, pred: Tensor) -> None:
    d = _as_matrix(pred).shape[1]
    if prior.dim != d:
        raise ValueError(f"the prior is {prior.dim}-dimensional but pred has d = {d} (shape {tuple(pred.shape)})")


def _finish(terms: Tensor, pred: Tensor, var: Tensor, rescale: bool, reduction: str, u: Tensor | None) -> Tensor:
    """Per-sample terms (N,) → optional ×(2σ²).detach(), sample shape, weights and reduction."""
    if rescale:
        terms = terms * (2 * var).detach()
    if pred.dim() == 2:
        terms = terms.unsqueeze(1)
    return reduce_terms(terms, reduction, u)


def _sq_dist(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise squared distances ‖a_i − b_j‖², (N, d) × (M, d) → (N, M), without cancellation."""
    return (a[:, None, :] - b[None, :, :]).pow(2).sum(-1)


# ---------------------------------------------------------------------------------------------
# BMC
# ---------------------------------------------------------------------------------------------


def _bmc_candidates(n: int, max_candidates: int | None, generator: torch.Generator | None, device: torch.device) -> Tensor | None:
    if max_candidates is None:
        return None
    if isinstance(max_candidates, bool) or not isinstance(max_candidates, int) or max_candidates < 1:
        raise ValueError(f"max_candidates must be None or an integer >= 1, got {max_candidates!r}")
    gen_device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(n, generator=generator, device=gen_device)
    return perm[: min(max_candidates, n)].to(device)


def _bmc_terms(p: Tensor, t: Tensor, var: Tensor, candidates: Tensor | None) -> Tensor:
    """Per-sample BMC terms for (N, d) matrices, before rescaling:

    .. math:: \\ell_i = \\frac{\\lVert \\hat y_i - y_i \\rVert^2}{2\\sigma^2}
                       + \\operatorname{logsumexp}_{j \\in C_i} \\left(-\\frac{\\lVert \\hat y_i - y_j \\rVert^2}{2\\sigma^2}\\right)

    with :math:`C_i` the whole batch, or the shared candidate set plus the positive i.
    """
    pos = -(p - t).pow(2).sum(1) / (2 * var)  # logit of the positive, (N,)
    if candidates is None:
        logits = -_sq_dist(p, t) / (2 * var)  # (N, N); its diagonal is pos
        return -pos + torch.logsumexp(logits, dim=1)
    logits = -_sq_dist(p, t[candidates]) / (2 * var)  # (N, k)
    in_set = torch.zeros(p.shape[0], dtype=torch.bool, device=p.device)
    in_set[candidates] = True
    own = pos.masked_fill(in_set, float("-inf"))  # add the positive only where it is not a candidate
    return -pos + torch.logsumexp(torch.cat([logits, own[:, None]], dim=1), dim=1)


def bmc_loss(
    pred: Tensor,
    target: Tensor,
    noise_var: float | Tensor,
    *,
    rescale: bool = True,
    max_candidates: int | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Balanced MSE by batch Monte-Carlo (BMC): the in-batch labels estimate :math:`p_{train}`.

    Per sample, a cross-entropy that classifies the own target among the batch targets:

    .. math::
        \\text{logits}_{ij} = -\\frac{\\lVert \\hat y_i - y_j \\rVert^2}{2\\sigma^2}, \\qquad
        \\ell_i = 2\\sigma^2_{\\text{detached}} \\cdot \\mathrm{CE}(\\text{logits}_{i\\cdot},\\, i)

    (the constant :math:`\\log B` of the Monte-Carlo average is dropped). Gradient:
    :math:`B\\, \\partial L / \\partial \\hat y_i = 2(\\sum_j p_{ij} y_j - y_i)` with
    :math:`p_{i\\cdot} = \\mathrm{softmax}_j(\\text{logits}_{i\\cdot})`. As σ → 0 the scaled loss tends to
    :math:`\\lVert \\hat y_i - y_i \\rVert^2 - \\min_j \\lVert \\hat y_i - y_j \\rVert^2`, which is close to the
    MSE only when the batch labels are dense relative to the errors.

    Args:
        pred: predictions, shape (N,), (N, 1) or (N, d), N >= 2, label units.
        target: labels, same shape.
        noise_var: σ² > 0, a float or a 0-dim tensor (e.g. ``sigma ** 2`` of a learnable σ), in
            squared label units.
        rescale: multiply by :math:`2\\sigma^2` detached (MSE-scale gradients).
        max_candidates: the downsampled BMC (BalancedMSE issue #5) for large B or d: a shared
            candidate set of ``k`` targets drawn at random from the batch, and each sample's own
            target always added to its row. Cost O(B·k·d). ``k >= N`` is the full BMC.
        generator: random generator for drawing the candidate set (the global one if ``None``).
        reduction: ``"mean"`` (over samples), ``"sum"`` or ``"none"`` (shape (N,) or (N, 1)).
        weight: optional per-sample weights, shape (N,) or (N, 1).

    Raises:
        ValueError: for a batch of one sample (BMC is identically 0 then: use :func:`gai_loss`).
    """
    u = _per_sample_weight(pred, target, weight, reduction)
    n = pred.shape[0]
    if n < 2:
        raise ValueError(
            "BMC needs a batch of at least 2 samples (with one sample the loss is identically 0 and "
            "gives no gradient); use GAI (gai_loss / method='gai') for batch size 1"
        )
    var = _noise_var_like(noise_var, pred)
    candidates = _bmc_candidates(n, max_candidates, generator, pred.device)
    terms = _bmc_terms(_as_matrix(pred), _as_matrix(target), var, candidates)
    return _finish(terms, pred, var, rescale, reduction, u)


# ---------------------------------------------------------------------------------------------
# BNI
# ---------------------------------------------------------------------------------------------


def _bni_terms(p: Tensor, t: Tensor, var: Tensor, centers: Tensor, log_w: Tensor) -> Tensor:
    """Per-sample BNI terms for (N, d) matrices, before rescaling (see :func:`bni_loss`)."""
    quad = (t - p).pow(2).sum(1) / (2 * var)
    return quad + torch.logsumexp(log_w[None, :] - _sq_dist(p, centers) / (2 * var), dim=1)


def bni_loss(
    pred: Tensor,
    target: Tensor,
    noise_var: float | Tensor,
    prior: HistogramPrior,
    *,
    rescale: bool = True,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Balanced MSE by Bayesian numerical integration (BNI) over a histogram prior.

    With :math:`p_{train} \\approx \\sum_j w_j \\delta_{c_j}`, :math:`I(\\hat y) \\approx \\sum_j w_j
    \\mathcal N(\\hat y; c_j, \\sigma^2 I)` and

    .. math::
        \\ell = \\frac{\\lVert y - \\hat y \\rVert^2}{2\\sigma^2}
              + \\operatorname{logsumexp}_j \\left[\\log w_j - \\frac{\\lVert \\hat y - c_j \\rVert^2}{2\\sigma^2}\\right]

    times :math:`2\\sigma^2` detached. The :math:`\\tfrac d2 \\log(2\\pi\\sigma^2)` terms cancel exactly;
    the loss can be negative (normal: BalancedMSE issue #21). With unit-width buckets weighted
    by the prior density, BNI ≈ GAI with that prior.

    Args:
        pred, target: shape (N,), (N, 1) or (N, d), same shape, label units.
        noise_var: σ² > 0, float or 0-dim tensor.
        prior: :class:`~hetreg.losses.priors.HistogramPrior` of the training labels, same d.
        rescale, reduction, weight: see :func:`bmc_loss`.
    """
    u = _per_sample_weight(pred, target, weight, reduction)
    if not isinstance(prior, HistogramPrior):
        raise ValueError(f"BNI needs a HistogramPrior, got {type(prior).__name__}; {_HOW_TO_BUILD['bni']}")
    _check_prior_dim(prior, pred)
    var = _noise_var_like(noise_var, pred)
    centers, log_w = prior.tensors_like(pred)
    terms = _bni_terms(_as_matrix(pred), _as_matrix(target), var, centers, log_w)
    return _finish(terms, pred, var, rescale, reduction, u)


# ---------------------------------------------------------------------------------------------
# GAI
# ---------------------------------------------------------------------------------------------


def _gai_terms(p: Tensor, t: Tensor, var: Tensor, means: Tensor, covs: Tensor, log_phi: Tensor) -> Tensor:
    """Per-sample GAI terms for (N, d) matrices, before rescaling (see :func:`gai_loss`)."""
    d = p.shape[1]
    quad = (t - p).pow(2).sum(1) / (2 * var)
    eye = torch.eye(d, dtype=p.dtype, device=p.device)
    chol = torch.linalg.cholesky(covs + var * eye)  # (K, d, d), of Σ_k + σ²I
    half_logdet = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # ½ log det, (K,)
    diff = (p[None, :, :] - means[:, None, :]).transpose(1, 2)  # (K, d, N)
    z = torch.linalg.solve_triangular(chol, diff, upper=False)
    maha = z.pow(2).sum(1).transpose(0, 1)  # (N, K)
    comp = log_phi[None, :] - half_logdet[None, :] - 0.5 * maha
    return quad + 0.5 * d * torch.log(var) + torch.logsumexp(comp, dim=1)


def gai_loss(
    pred: Tensor,
    target: Tensor,
    noise_var: float | Tensor,
    prior: GMMPrior,
    *,
    rescale: bool = True,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Balanced MSE by GMM-based analytical integration (GAI).

    With :math:`p_{train} = \\sum_k \\phi_k \\mathcal N(\\mu_k, \\Sigma_k)`, the integral of (★) is
    :math:`\\sum_k \\phi_k \\mathcal N(\\hat y; \\mu_k, \\Sigma_k + \\sigma^2 I)` and

    .. math::
        \\ell = -\\log \\mathcal N(y; \\hat y, \\sigma^2 I)
              + \\log \\sum_k \\phi_k \\mathcal N(\\hat y; \\mu_k, \\Sigma_k + \\sigma^2 I)
            = \\frac{\\lVert y - \\hat y \\rVert^2}{2\\sigma^2} + \\frac d2 \\log \\sigma^2
              + \\operatorname{logsumexp}_k \\Big[\\log \\phi_k - \\tfrac12 \\log\\det(\\Sigma_k + \\sigma^2 I)
              - \\tfrac12 (\\hat y - \\mu_k)^\\top (\\Sigma_k + \\sigma^2 I)^{-1} (\\hat y - \\mu_k)\\Big]

    times :math:`2\\sigma^2` detached. The :math:`2\\pi` constants cancel exactly, so without
    rescaling this *is* (★), and the :math:`\\log\\sigma^2` terms make σ a proper maximum-likelihood
    parameter. For d = 1 it reads :math:`\\frac{(y-\\hat y)^2}{2\\sigma^2} + \\tfrac12\\log\\sigma^2 +
    \\operatorname{logsumexp}_k[\\log\\phi_k - \\tfrac12\\log(\\Sigma_k+\\sigma^2) -
    \\frac{(\\hat y-\\mu_k)^2}{2(\\Sigma_k+\\sigma^2)}]`. Works for any batch size, including 1.

    Args:
        pred, target: shape (N,), (N, 1) or (N, d), same shape, label units.
        noise_var: σ² > 0, float or 0-dim tensor.
        prior: :class:`~hetreg.losses.priors.GMMPrior` fitted to the training labels, same d.
        rescale, reduction, weight: see :func:`bmc_loss`.
    """
    u = _per_sample_weight(pred, target, weight, reduction)
    if not isinstance(prior, GMMPrior):
        raise ValueError(f"GAI needs a GMMPrior, got {type(prior).__name__}; {_HOW_TO_BUILD['gai']}")
    _check_prior_dim(prior, pred)
    var = _noise_var_like(noise_var, pred)
    means, covs, log_phi = prior.tensors_like(pred)
    terms = _gai_terms(_as_matrix(pred), _as_matrix(target), var, means, covs, log_phi)
    return _finish(terms, pred, var, rescale, reduction, u)


# ---------------------------------------------------------------------------------------------
# Module
# ---------------------------------------------------------------------------------------------


class BalancedMSELoss(RegressionLoss):
    """Balanced MSE as a module: the method, the noise scale σ and the frozen label prior.

    State:

    * ``noise_sigma``: an ``nn.Parameter`` holding σ (the loss uses σ², so its sign is
      irrelevant). It is registered even when fixed (``requires_grad=False``), so it is always in
      ``state_dict`` and a resumed run continues from the learned σ, not from its initial value.
    * the prior as buffers (in ``state_dict``, moved by ``.to()``): ``prior_centers`` /
      ``prior_weights`` for BNI, ``prior_means`` / ``prior_covariances`` / ``prior_weights`` for
      GAI. Loading a state dict needs a module built with a prior of the same size.

    Training σ. Give σ its own parameter group with :meth:`param_groups`, e.g.
    ``torch.optim.Adam([{"params": model.parameters()}, *loss.param_groups(1e-2)], lr=1e-3)``.
    The group carries ``"no_schedule": True``: σ's learning rate must not be decayed with the
    model's (the original code skipped that group in its schedule). A trainer honours it by
    giving such groups a constant factor, e.g.
    ``LambdaLR(opt, [(lambda e: 1.0) if g.get("no_schedule") else f for g in opt.param_groups])``,
    or by putting them in a separate optimizer that no scheduler touches. Optimizers keep the
    extra keys (``name``, ``no_schedule``) in their param groups and state dicts.

    After each call :attr:`records` holds ``sigma`` (|σ|) and ``noise_var`` (σ²), the quantities
    the original training loop logged.

    Args:
        method: ``"bmc"``, ``"bni"`` or ``"gai"``.
        init_noise_sigma: initial σ > 0, in label units (the official settings: 1 for depth in
            metres or z-scored labels, 10 for ages in years with BMC/BNI/GAI, 8 for prices in $1000s).
        learn_sigma: learn σ jointly (the default of the original code), else keep it fixed.
        prior: :class:`HistogramPrior` for BNI, :class:`GMMPrior` for GAI; BMC takes none.
        max_candidates: BMC only; see :func:`bmc_loss`. The module draws the candidate set
            from torch's global generator (seed it with ``torch.manual_seed`` to reproduce).
        rescale: multiply by :math:`2\\sigma^2` detached (MSE-scale gradients).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    method_names: ClassVar[tuple[str, ...]] = METHODS

    def __init__(
        self,
        method: str = "bmc",
        init_noise_sigma: float = 1.0,
        learn_sigma: bool = True,
        prior: HistogramPrior | GMMPrior | None = None,
        max_candidates: int | None = None,
        rescale: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        check_choice(method, METHODS, "Balanced MSE method")
        check_positive(float(init_noise_sigma), "init_noise_sigma")
        if not math.isfinite(float(init_noise_sigma)):
            raise ValueError(f"init_noise_sigma must be finite, got {init_noise_sigma}")
        if method == "bmc":
            if prior is not None:
                raise ValueError(
                    "BMC uses the batch labels as its prior and takes no prior=; drop it, or use method='bni' "
                    "(HistogramPrior) or method='gai' (GMMPrior)"
                )
            _bmc_candidates(2, max_candidates, None, torch.device("cpu"))  # validates max_candidates
        else:
            if max_candidates is not None:
                raise ValueError("max_candidates applies to BMC only (method='bmc')")
            wanted = PRIOR_FOR_METHOD[method]
            if prior is None:
                raise ValueError(f"method={method!r} needs a label prior built from the training labels: {_HOW_TO_BUILD[method]}")
            if not isinstance(prior, wanted):  # type: ignore[arg-type]
                raise ValueError(
                    f"method={method!r} needs a {wanted.__name__}, got {type(prior).__name__}; {_HOW_TO_BUILD[method]}"  # type: ignore[union-attr]
                )
        self.method = method
        self.learn_sigma = bool(learn_sigma)
        self.max_candidates = max_candidates
        self.rescale = bool(rescale)
        self.noise_sigma = nn.Parameter(
            torch.tensor(float(init_noise_sigma), dtype=torch.get_default_dtype()), requires_grad=self.learn_sigma
        )
        if isinstance(prior, HistogramPrior):
            self.register_buffer("prior_centers", prior.centers.clone())
            self.register_buffer("prior_weights", prior.weights.clone())
        elif isinstance(prior, GMMPrior):
            self.register_buffer("prior_means", prior.means.clone())
            self.register_buffer("prior_covariances", prior.covariances.clone())
            self.register_buffer("prior_weights", prior.weights.clone())

    @property
    def noise_var(self) -> Tensor:
        """σ², the variance the loss uses (keeps the graph to ``noise_sigma``)."""
        return self.noise_sigma**2

    @property
    def prior(self) -> HistogramPrior | GMMPrior | None:
        """The prior rebuilt from the (possibly loaded or moved) buffers."""
        if self.method == "bni":
            return HistogramPrior(self.prior_centers, self.prior_weights)
        if self.method == "gai":
            return GMMPrior(self.prior_means, self.prior_covariances, self.prior_weights)
        return None

    def param_groups(self, lr: float) -> list[dict]:
        """The optimizer parameter group of σ: its own learning rate, kept out of LR schedules.

        Returns ``[{"params": [noise_sigma], "lr": lr, "name": "noise_sigma", "no_schedule": True}]``,
        or ``[]`` when σ is fixed (``learn_sigma=False``). See the class docstring for how a
        trainer honours ``no_schedule``. The original default σ learning rate is 1e-2.
        """
        check_positive(float(lr), "lr")
        if not self.learn_sigma:
            return []
        return [{"params": [self.noise_sigma], "lr": float(lr), "name": "noise_sigma", "no_schedule": True}]

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        noise_var = self.noise_var
        common = {"rescale": self.rescale, "reduction": self.reduction, "weight": weight}
        if self.method == "bmc":
            loss = bmc_loss(pred, target, noise_var, max_candidates=self.max_candidates, **common)
        elif self.method == "bni":
            loss = bni_loss(pred, target, noise_var, self.prior, **common)  # type: ignore[arg-type]
        else:
            loss = gai_loss(pred, target, noise_var, self.prior, **common)  # type: ignore[arg-type]
        self._record(sigma=self.noise_sigma.abs(), noise_var=noise_var)
        return loss

    def extra_repr(self) -> str:
        extra = f", max_candidates={self.max_candidates}" if self.max_candidates is not None else ""
        return (
            f"method={self.method!r}, sigma={float(self.noise_sigma.detach()):.4g}, learn_sigma={self.learn_sigma}"
            f"{extra}, rescale={self.rescale}, reduction={self.reduction!r}"
        )


__all__ = ["bmc_loss", "bni_loss", "gai_loss", "BalancedMSELoss", "METHODS", "PRIOR_FOR_METHOD"]
