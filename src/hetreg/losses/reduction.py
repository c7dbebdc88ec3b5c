"""Reduction of element-wise loss terms: the one place where weights and masks are applied.

Every loss in :mod:`hetreg.losses` computes element-wise terms with the shape of ``pred`` and
hands them to :func:`reduce_terms`. Keeping the per-sample terms apart from their reduction is
what lets per-sample weights (LDS), masks (cutoff) and batch normalisation (BIV) compose with
any loss.
"""

from __future__ import annotations

from torch import Tensor


def reduce_terms(
    terms: Tensor,
    reduction: str,
    weight: Tensor | None = None,
    *,
    count: Tensor | float | None = None,
) -> Tensor:
    """Reduce element-wise loss ``terms``.

    With per-sample weights :math:`u_k` (already aligned to ``terms``):

    * ``"none"``: :math:`u_k \\ell_k`, same shape as ``terms``;
    * ``"sum"``: :math:`\\sum_k u_k \\ell_k`;
    * ``"mean"``: :math:`\\frac{1}{M} \\sum_k u_k \\ell_k`, with ``M = count`` when given
      (e.g. the number of kept samples of a cutoff) and the number of elements otherwise.

    The weighted mean divides by the number of elements, not by :math:`\\sum u_k`: LDS weights
    have mean 1 over the training set, and this is the convention of the imbalanced-regression
    literature (``mean(w * loss)``).
    """
    if weight is not None:
        terms = terms * weight
    if reduction == "none":
        return terms
    if reduction == "sum":
        return terms.sum()
    total = terms.sum()
    if count is None:
        return total / terms.numel()
    return total / count
