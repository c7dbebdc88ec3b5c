"""The Linear layers of the feature-major MLP pass: K models in one call against each model alone.

:class:`StackedLinear` computes K models' products either in one batched BLAS call or in one
call per model (:func:`batched_products` decides); either way model k's output and gradients
must be those of :class:`Linear1` on model k's own tensors, bit for bit, because batched
training groups rely on it (``tests/train/test_batched.py`` checks whole runs).
"""

from __future__ import annotations

import pytest
import torch

from hetreg.models.mlp import ALIGN_BYTES, Linear1, StackedLinear, batched_products

# (in, out) of the presets' layers and of small test models, including the single-output head
SHAPES = [(11, 100), (100, 50), (50, 20), (20, 10), (10, 1), (4, 16), (16, 8), (8, 1), (5, 20), (1, 3)]


def _padded(rows: list[torch.Tensor]) -> torch.Tensor:
    """Stack K tensors as (K, *shape) views of a (K, m) storage whose rows start on
    ALIGN_BYTES boundaries, as the batched trainer stores parameters."""
    n = rows[0].numel()
    per = ALIGN_BYTES // rows[0].element_size()
    storage = torch.zeros(len(rows), -(-n // per) * per, dtype=rows[0].dtype)
    for k, r in enumerate(rows):
        storage[k, :n] = r.reshape(-1)
    return storage[:, :n].view(len(rows), *rows[0].shape)


@pytest.mark.parametrize("batch", [256, 64, 16])  # whole 64-byte blocks: the batched trainer's one-pass case
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{i}-{o}" for i, o in SHAPES])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("transposed_input", [False, True], ids=["contiguous", "transposed-input"])
def test_stacked_linear_equals_each_model_alone(shape, batch, bias, transposed_input, threads):
    torch.manual_seed(batch + 7 * shape[0] + shape[1])
    k = 5
    n_in, n_out = shape
    weights = [torch.randn(n_out, n_in) / n_in**0.5 for _ in range(k)]
    biases = [torch.randn(n_out) for _ in range(k)] if bias else None
    if transposed_input:  # the first layer: the (K, B, d) inputs seen feature-major
        xs = torch.randn(k, batch, n_in).transpose(1, 2)
    else:
        xs = torch.randn(k, n_in, batch)
    grads = torch.randn(k, n_out, batch)

    w = _padded(weights).requires_grad_(True)
    b = _padded(biases).requires_grad_(True) if bias else None
    x = xs.detach().requires_grad_(True)
    out = StackedLinear.apply(x, w, b)
    out.backward(grads)

    for m in range(k):
        wm = weights[m].clone().requires_grad_(True)
        bm = biases[m].clone().requires_grad_(True) if bias else None
        if transposed_input:  # the model's own (B, d) input tensor, seen transposed
            xm = xs[m].detach().t().contiguous().t().requires_grad_(True)
        else:
            xm = xs[m].detach().clone().requires_grad_(True)
        ref = Linear1.apply(xm, wm, bm)
        ref.backward(grads[m])
        assert torch.equal(out[m], ref), f"output of model {m}"
        assert torch.equal(w.grad[m], wm.grad), f"weight gradient of model {m}"
        assert torch.equal(x.grad[m], xm.grad), f"input gradient of model {m}"
        if bias:
            assert torch.equal(b.grad[m], bm.grad), f"bias gradient of model {m}"


def test_batched_products_only_where_they_equal_the_products_alone(threads):
    # one thread, aligned batches, more than one output feature, more than one model
    assert batched_products(60, 11, 100, 256, 4) == (threads == 1)
    assert not batched_products(60, 10, 1, 256, 4)  # matrix-vector products alone
    assert not batched_products(60, 1, 3, 256, 4)
    assert not batched_products(60, 11, 100, 30, 4)  # 120-byte blocks: misaligned
    assert not batched_products(1, 11, 100, 256, 4)
    assert batched_products(3, 5, 8, 8, 8) == (threads == 1)  # 64-byte float64 blocks
