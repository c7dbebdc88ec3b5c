"""Feature distribution smoothing (FDS; Yang et al., ICML 2021), functional and CPU-safe.

FDS keeps per-bucket statistics (mean and variance of every feature dimension) of the features
that a regression network computes just before its last layer, smooths those statistics across
neighbouring label buckets with a symmetric kernel, and in training re-colours each feature with
the smoothed statistics of its bucket:

.. math:: \\tilde z = (z - \\mu_b) \\sqrt{\\mathrm{clip}(\\tilde\\sigma^2_b / \\sigma^2_b,\\ c_{min},\\ c_{max})} + \\tilde\\mu_b

element-wise (diagonal statistics, as the original code; the paper's full covariances are not
implemented). The formulas are pure functions (:func:`calibrate_features`,
:func:`smooth_bucket_stats`, :func:`bucket_moments`, :func:`merge_moments`); :class:`FDS` only
keeps the state.

Differences from the original code (see the reference, §2.4), all deliberate:

* no in-place write: the calibrated features are a new tensor, so autograd works whatever
  precedes FDS (a ReLU included), and the features the network returns are the raw ones;
* no aliasing: the last-epoch statistics are copies of the running statistics, so whitening
  and re-colouring statistics always come from the same epoch, before and after a checkpoint
  reload alike (the original whitened with epoch e's statistics and re-coloured with e − 1's);
* buckets from a ``bucket_fn`` or bin edges, with labels below the first / above the last bucket
  always merged into the edge buckets (the original did so only when some label fell exactly
  on the boundary bucket, and skipped the samples otherwise);
* a bucket seen for the first time starts its running statistics from its own epoch statistics
  (α = 0), instead of averaging them with the initial zero mean / unit variance; samples of a
  bucket that has never been seen are left unchanged;
* no ``.cuda()``: the module runs on any device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hetreg.losses.lds import KernelSpec, resolve_kernel

#: Below this total variance (over feature dimensions) a bucket's statistics are unusable.
VAR_SUM_TOL = 1e-10


def calibrate_features(
    z: Tensor,
    m1: Tensor,
    v1: Tensor,
    m2: Tensor,
    v2: Tensor,
    clip: tuple[float, float] = (0.1, 10.0),
) -> Tensor:
    """Re-colour features with new diagonal statistics, without modifying ``z``.

    .. math:: \\tilde z = (z - m_1) \\sqrt{\\mathrm{clamp}(v_2 / v_1,\\ c_{min},\\ c_{max})} + m_2

    As the original: where :math:`v_1 = 0` the feature is left unchanged, and a row whose
    :math:`\\sum v_1 < 10^{-10}` is returned unchanged.

    Args:
        z: features, shape (N, D).
        m1, v1: statistics to remove (the bucket's running mean and variance), shape (N, D) or (D,).
        m2, v2: statistics to impose (the smoothed mean and variance), same shape as ``m1``.
        clip: bounds of the variance ratio.

    Returns:
        A new tensor of the shape of ``z``; gradients flow to ``z`` (the statistics are constants).
    """
    c_min, c_max = clip
    valid = (v1 != 0) & (v1.sum(dim=-1, keepdim=True) >= VAR_SUM_TOL)
    safe_v1 = torch.where(valid, v1, torch.ones_like(v1))
    factor = torch.sqrt(torch.clamp(v2 / safe_v1, c_min, c_max))
    return torch.where(valid, (z - m1) * factor + m2, z)


def smooth_bucket_stats(stats: Tensor, window: Tensor) -> Tensor:
    """Convolve every feature dimension's sequence of bucket statistics with ``window``.

    .. math:: \\tilde s_b = \\sum_{j=-h}^{h} k_j\\, s_{b+j}

    with reflect padding of h = (len(window) − 1) / 2 buckets at both ends (``F.pad`` "reflect",
    edge not repeated), as the original code.

    Args:
        stats: per-bucket statistics, shape (B, D), with B > h.
        window: kernel window, shape (2h + 1,), normally summing to 1.

    Returns:
        Shape (B, D).
    """
    half = (window.numel() - 1) // 2
    x = stats.t().unsqueeze(1)  # (D, 1, B)
    if half > 0:
        x = F.pad(x, (half, half), mode="reflect")
    return F.conv1d(x, window.to(x).view(1, 1, -1)).squeeze(1).t()


def bucket_moments(features: Tensor, ids: Tensor, num_buckets: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-bucket count, mean and sum of squared deviations of ``features`` (float64, no grad).

    Returns:
        ``(count (B,), mean (B, D), m2 (B, D))`` with :math:`m_2 = \\sum_{i \\in b} (z_i - \\bar z_b)^2`;
        empty buckets have zeros.
    """
    x = features.detach().to(torch.float64)
    dim = x.shape[1]
    count = torch.bincount(ids, minlength=num_buckets).to(torch.float64)
    sums = torch.zeros(num_buckets, dim, dtype=torch.float64, device=x.device).index_add_(0, ids, x)
    mean = sums / count.clamp_min(1.0).unsqueeze(1)
    m2 = torch.zeros_like(sums).index_add_(0, ids, (x - mean[ids]) ** 2)
    return count, mean, m2


def merge_moments(
    a: tuple[Tensor, Tensor, Tensor], b: tuple[Tensor, Tensor, Tensor]
) -> tuple[Tensor, Tensor, Tensor]:
    """Combine two sets of per-bucket ``(count, mean, m2)`` (Chan et al.'s parallel update).

    .. math:: n = n_a + n_b,\\quad \\bar z = \\bar z_a + \\delta\\, n_b / n,\\quad
              m_2 = m_{2,a} + m_{2,b} + \\delta^2 n_a n_b / n,\\quad \\delta = \\bar z_b - \\bar z_a
    """
    na, ma, m2a = a
    nb, mb, m2b = b
    n = na + nb
    safe_n = n.clamp_min(1.0).unsqueeze(1)
    delta = mb - ma
    mean = ma + delta * (nb.unsqueeze(1) / safe_n)
    m2 = m2a + m2b + delta**2 * (na * nb).unsqueeze(1) / safe_n
    return n, mean, m2


class FDS(nn.Module):
    """Feature distribution smoothing, inserted before the last layer of a regression model.

    Epoch contract (the module counts epochs itself; ``epoch`` starts at 0):

    1. during training epoch e, ``z = fds(z, labels)`` calibrates the penultimate features when
       the module is in training mode and e ≥ ``start_smooth``; it is the identity in eval mode,
       before ``start_smooth``, or without labels;
    2. ``fds.update(features, labels)`` accumulates the statistics of epoch e (call it on every
       batch of a no-grad pass over the training set after the epoch, as the original, or on the
       training batches themselves); calls are ignored while e < ``start_update``;
    3. ``fds.end_epoch()`` closes epoch e: it folds the epoch's statistics into the running
       statistics (EMA :math:`s \\leftarrow (1-\\alpha)\\, s_e + \\alpha\\, s` with α =
       ``momentum``, α = 0 in the first update epoch and for a bucket's first statistics;
       ``momentum=None`` gives the cumulative average, α = 1 − n_e/n_total), copies them to the
       last-epoch statistics, recomputes the smoothed statistics, and advances ``epoch``.

    Epoch e + 1 is then calibrated with the statistics of the features of epochs ≤ e. ::

        fds = FDS(feature_dim=512, bucket_num=100)
        for epoch in range(num_epochs):
            model.train()
            for x, y in train_loader:
                z = fds(backbone(x), y)      # before the last layer
                loss = loss_fn(head(z), y)
                ...
            with torch.no_grad():
                for x, y in train_loader:
                    fds.update(backbone(x), y)
            fds.end_epoch()

    Buckets: the label → bucket map is ``bucket_fn(labels)`` (integer ids), or the bin of
    ``edges`` (as :func:`hetreg.losses.lds.bin_index`), or ⌊label⌋ (the integer-label buckets of
    the age benchmarks) when neither is given. Buckets ``bucket_start .. bucket_num − 1`` are
    tracked; ids below / above are merged into the first / last tracked bucket.

    All statistics are buffers (in ``state_dict``, moved by ``.to()``).

    Args:
        feature_dim: D, the number of features.
        bucket_num: number of bucket ids; ``None``: ``len(edges) − 1`` with ``edges``, else 100.
        bucket_start: first tracked bucket id (e.g. 3 for AgeDB, 7 for NYUD2).
        edges: bin edges (strictly increasing) defining the buckets; exclusive with ``bucket_fn``.
        bucket_fn: callable mapping a label tensor (N,) to integer bucket ids (N,).
        kernel: smoothing kernel across buckets (see :func:`hetreg.losses.lds.resolve_kernel`),
            normalised to sum 1; default gaussian, size 5, σ 2.
        clip: bounds (c_min, c_max) of the variance ratio; (0.1, 10) as the age benchmarks.
        momentum: EMA momentum α in [0, 1), or ``None`` for the cumulative average.
        start_update: first epoch whose features update the statistics.
        start_smooth: first epoch in which features are calibrated.
    """

    def __init__(
        self,
        feature_dim: int,
        bucket_num: int | None = None,
        bucket_start: int = 0,
        *,
        edges: Any = None,
        bucket_fn: Callable[[Tensor], Tensor] | None = None,
        kernel: KernelSpec = "gaussian",
        clip: tuple[float, float] = (0.1, 10.0),
        momentum: float | None = 0.9,
        start_update: int = 0,
        start_smooth: int = 1,
    ) -> None:
        super().__init__()
        if int(feature_dim) != feature_dim or feature_dim < 1:
            raise ValueError(f"feature_dim must be a positive integer, got {feature_dim}")
        if edges is not None and bucket_fn is not None:
            raise ValueError("pass either edges= or bucket_fn=, not both")
        self._edges: Tensor | None = None
        if edges is not None:
            e = torch.as_tensor(np.asarray(edges, dtype=np.float64))
            if e.dim() != 1 or e.numel() < 2 or not torch.isfinite(e).all() or not (e.diff() > 0).all():
                raise ValueError("edges must be a finite, strictly increasing 1-D array of at least 2 values")
            if bucket_num is not None and bucket_num != e.numel() - 1:
                raise ValueError(f"bucket_num={bucket_num} does not match {e.numel()} edges ({e.numel() - 1} buckets)")
            bucket_num = e.numel() - 1
            self._edges = e
        if bucket_num is None:
            bucket_num = 100
        if not 0 <= bucket_start < bucket_num:
            raise ValueError(f"need 0 <= bucket_start < bucket_num, got bucket_start={bucket_start}, bucket_num={bucket_num}")
        c_min, c_max = (float(c) for c in clip)
        if not 0 < c_min <= c_max:
            raise ValueError(f"clip must be (c_min, c_max) with 0 < c_min <= c_max, got {clip}")
        if momentum is not None and not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1) or None (cumulative average), got {momentum}")
        if start_update < 0 or start_smooth < 0:
            raise ValueError(f"start_update and start_smooth must be >= 0, got {start_update}, {start_smooth}")
        window = resolve_kernel(kernel, normalize="sum")
        num = bucket_num - bucket_start
        half = (window.size - 1) // 2
        if num <= half:
            raise ValueError(
                f"{num} tracked buckets is too few for a kernel of size {window.size}; "
                "use a smaller kernel or more buckets"
            )
        self.feature_dim = int(feature_dim)
        self.bucket_num = int(bucket_num)
        self.bucket_start = int(bucket_start)
        self.bucket_fn = bucket_fn
        self.clip = (c_min, c_max)
        self.momentum = momentum
        self.start_update = int(start_update)
        self.start_smooth = int(start_smooth)
        shape = (num, self.feature_dim)
        self.register_buffer("window", torch.as_tensor(window, dtype=torch.float32), persistent=False)
        self.register_buffer("epoch", torch.zeros((), dtype=torch.long))
        self.register_buffer("running_mean", torch.zeros(shape))
        self.register_buffer("running_var", torch.ones(shape))
        self.register_buffer("running_mean_last_epoch", torch.zeros(shape))
        self.register_buffer("running_var_last_epoch", torch.ones(shape))
        self.register_buffer("smoothed_mean_last_epoch", torch.zeros(shape))
        self.register_buffer("smoothed_var_last_epoch", torch.ones(shape))
        self.register_buffer("num_samples_tracked", torch.zeros(num, dtype=torch.long))
        self.register_buffer("num_samples_last_epoch", torch.zeros(num, dtype=torch.long))
        # statistics of the current epoch, not yet folded in
        self.register_buffer("epoch_count", torch.zeros(num, dtype=torch.long))
        self.register_buffer("epoch_mean", torch.zeros(shape))
        self.register_buffer("epoch_m2", torch.zeros(shape))

    @property
    def num_buckets(self) -> int:
        """Number of tracked buckets, ``bucket_num − bucket_start``."""
        return self.bucket_num - self.bucket_start

    def bucket_index(self, labels: Tensor) -> Tensor:
        """Tracked-bucket index in [0, num_buckets) of every label (shape (N,) or (N, 1))."""
        y = self._labels(labels)
        if self._edges is not None:
            # compared in the labels' precision: a float32 label 0.7 lies on an edge 0.7
            dtype = y.dtype if y.is_floating_point() else torch.float64
            edges = self._edges.to(device=y.device, dtype=dtype)
            ids = torch.bucketize(y.to(dtype), edges, right=True) - 1
        elif self.bucket_fn is not None:
            ids = torch.as_tensor(self.bucket_fn(y), device=y.device)
            if ids.shape != y.shape:
                raise ValueError(f"bucket_fn returned shape {tuple(ids.shape)} for labels of shape {tuple(y.shape)}")
            if ids.is_floating_point():
                if not torch.equal(ids, torch.floor(ids)):
                    raise ValueError("bucket_fn must return integer bucket ids")
        else:
            ids = torch.floor(y)
        ids = ids.long().clamp(self.bucket_start, self.bucket_num - 1)
        return ids - self.bucket_start

    def _labels(self, labels: Tensor) -> Tensor:
        if not isinstance(labels, Tensor):
            raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
        y = labels.detach()
        if y.dim() == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.dim() != 1:
            raise ValueError(f"labels must have shape (N,) or (N, 1), got {tuple(labels.shape)}")
        if y.is_floating_point() and not torch.isfinite(y).all():
            raise ValueError("labels contain NaN or inf")
        return y

    def _check(self, features: Tensor, labels: Tensor) -> None:
        if not isinstance(features, Tensor):
            raise TypeError(f"features must be a torch.Tensor, got {type(features).__name__}")
        if features.dim() != 2 or features.shape[1] != self.feature_dim:
            raise ValueError(
                f"features must have shape (N, {self.feature_dim}), got {tuple(features.shape)}; "
                "flatten them before FDS"
            )
        if labels.shape[0] != features.shape[0]:
            raise ValueError(f"features has {features.shape[0]} rows but labels has {labels.shape[0]}")

    @torch.no_grad()
    def update(self, features: Tensor, labels: Tensor) -> None:
        """Accumulate the per-bucket statistics of ``features`` for the current epoch.

        Ignored while ``epoch < start_update``. ``features`` are detached; any number of calls
        per epoch combine exactly (the epoch's mean and unbiased variance are those of all the
        features passed).
        """
        self._check(features, labels)
        if int(self.epoch) < self.start_update:
            return
        ids = self.bucket_index(labels).to(features.device)
        batch = bucket_moments(features, ids, self.num_buckets)
        current = (
            self.epoch_count.to(torch.float64),
            self.epoch_mean.to(torch.float64),
            self.epoch_m2.to(torch.float64),
        )
        count, mean, m2 = merge_moments(current, batch)
        self.epoch_count.copy_(count.round().long())
        self.epoch_mean.copy_(mean)
        self.epoch_m2.copy_(m2)

    @torch.no_grad()
    def end_epoch(self) -> None:
        """Close the current epoch: fold, copy, smooth, reset the accumulators, advance ``epoch``.

        For every bucket seen in the epoch, with the epoch's mean :math:`\\bar z_e` and variance
        :math:`s^2_e` (unbiased; 0 for a single sample):
        :math:`\\mu \\leftarrow (1-\\alpha)\\bar z_e + \\alpha \\mu`, :math:`\\sigma^2 \\leftarrow
        (1-\\alpha) s^2_e + \\alpha \\sigma^2`. Then the last-epoch statistics become copies of the
        running ones and the smoothed statistics are recomputed from them.
        """
        epoch = int(self.epoch)
        count = self.epoch_count
        if epoch >= self.start_update and bool((count > 0).any()):
            seen = (count > 0).unsqueeze(1)
            n = count.to(torch.float64)
            var = self.epoch_m2.to(torch.float64) / (n - 1).clamp_min(1.0).unsqueeze(1)
            first = self.num_samples_tracked == 0
            self.num_samples_tracked += count
            if self.momentum is None:
                alpha = 1.0 - n / self.num_samples_tracked.clamp_min(1).to(torch.float64)
            else:
                alpha = torch.full_like(n, float(self.momentum))
            if epoch == self.start_update:
                alpha = torch.zeros_like(alpha)
            alpha = torch.where(first, torch.zeros_like(alpha), alpha).unsqueeze(1)
            new_mean = (1 - alpha) * self.epoch_mean.to(torch.float64) + alpha * self.running_mean.to(torch.float64)
            new_var = (1 - alpha) * var + alpha * self.running_var.to(torch.float64)
            self.running_mean.copy_(torch.where(seen, new_mean, self.running_mean.to(torch.float64)))
            self.running_var.copy_(torch.where(seen, new_var, self.running_var.to(torch.float64)))
        self.running_mean_last_epoch.copy_(self.running_mean)
        self.running_var_last_epoch.copy_(self.running_var)
        self.num_samples_last_epoch.copy_(self.num_samples_tracked)
        self.smoothed_mean_last_epoch.copy_(smooth_bucket_stats(self.running_mean_last_epoch, self.window))
        self.smoothed_var_last_epoch.copy_(smooth_bucket_stats(self.running_var_last_epoch, self.window))
        self.epoch_count.zero_()
        self.epoch_mean.zero_()
        self.epoch_m2.zero_()
        self.epoch += 1

    def forward(self, features: Tensor, labels: Tensor | None = None, epoch: int | None = None) -> Tensor:
        """Calibrated features in training (see the class docstring), else ``features`` itself.

        Args:
            features: penultimate features, shape (N, D).
            labels: labels of the batch, shape (N,) or (N, 1); without them FDS is the identity.
            epoch: the current epoch, compared with ``start_smooth``; default: the module's
                own counter (the number of :meth:`end_epoch` calls).

        Returns:
            A new tensor when calibrating (``features`` is never modified), else ``features``.
        """
        if not self.training or labels is None:
            return features
        self._check(features, labels)
        current = int(self.epoch) if epoch is None else int(epoch)
        if current < self.start_smooth or not bool((self.num_samples_last_epoch > 0).any()):
            return features
        ids = self.bucket_index(labels).to(features.device)
        dtype = features.dtype

        def stat(buffer: Tensor) -> Tensor:
            return buffer[ids].to(dtype)

        calibrated = calibrate_features(
            features,
            stat(self.running_mean_last_epoch),
            stat(self.running_var_last_epoch),
            stat(self.smoothed_mean_last_epoch),
            stat(self.smoothed_var_last_epoch),
            self.clip,
        )
        known = (self.num_samples_last_epoch[ids] > 0).unsqueeze(1)
        return torch.where(known, calibrated, features)

    def extra_repr(self) -> str:
        return (
            f"feature_dim={self.feature_dim}, bucket_num={self.bucket_num}, bucket_start={self.bucket_start}, "
            f"kernel_size={self.window.numel()}, clip={self.clip}, momentum={self.momentum}, "
            f"start_update={self.start_update}, start_smooth={self.start_smooth}"
        )


__all__ = ["FDS", "bucket_moments", "calibrate_features", "merge_moments", "smooth_bucket_stats"]
