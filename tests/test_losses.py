import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_lm

from rins.losses import default_chunk_rows, linear_cross_entropy


def _pair(N=37, d=16, V=53, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N, d, generator=g)
    w = torch.randn(V, d, generator=g) * 0.3
    t = torch.randint(0, V, (N,), generator=g)
    return h, w, t


def _grads(fn, h, w, t, **kw):
    h, w = h.clone().requires_grad_(), w.clone().requires_grad_()
    loss = fn(h, w, t, **kw)
    (loss * 3.0).backward()  # a non-unit incoming gradient must be applied
    return loss.detach(), h.grad, w.grad


def _reference(h, w, t, ignore_index=-100, reduction="mean"):
    return F.cross_entropy(F.linear(h, w).float(), t, ignore_index=ignore_index, reduction=reduction)


@pytest.mark.parametrize("chunk", [1, 5, 37, 1000])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_matches_cross_entropy_fp32(chunk, reduction):
    h, w, t = _pair()
    t[[3, 10, 11]] = -100
    ref = _grads(_reference, h, w, t, reduction=reduction)
    got = _grads(linear_cross_entropy, h, w, t, reduction=reduction, chunk_rows=chunk)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_matches_cross_entropy_under_bf16_autocast():
    h, w, t = _pair(N=64, d=32, V=97)

    def under_autocast(fn):
        def f(h, w, t, **kw):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return fn(h, w, t, **kw)
        return f

    ref = _grads(under_autocast(_reference), h, w, t)
    got = _grads(under_autocast(linear_cross_entropy), h, w, t, chunk_rows=10)
    assert got[1].dtype == got[2].dtype == torch.float32  # grads in the parameters' dtype
    torch.testing.assert_close(got[0], ref[0], atol=1e-5, rtol=1e-5)  # same bf16 logits, fp32 softmax
    for a, b in zip(got[1:], ref[1:]):  # bf16 matmuls of the gradient: bf16-level agreement
        torch.testing.assert_close(a, b, atol=2e-2 * b.abs().max().item(), rtol=2e-2)


def test_shapes_no_grad_and_edge_cases():
    h, w, t = _pair(N=12)
    ref = _reference(h, w, t)
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(h.view(3, 4, -1), w, t.view(3, 4)), ref)
    # only the weight needs a gradient (frozen trunk) and only h does (frozen head)
    wg = w.clone().requires_grad_()
    linear_cross_entropy(h, wg, t).backward()
    w2 = w.clone().requires_grad_()
    _reference(h, w2, t).backward()
    torch.testing.assert_close(wg.grad, w2.grad)
    hg = h.clone().requires_grad_()
    linear_cross_entropy(hg, w, t).backward()
    assert hg.grad is not None and hg.grad.shape == h.shape
    assert math.isnan(linear_cross_entropy(h, w, torch.full_like(t, -100)).item())  # like F.cross_entropy
    with pytest.raises(ValueError, match="reduction"):
        linear_cross_entropy(h, w, t, reduction="none")
    with pytest.raises(ValueError, match="does not match"):
        linear_cross_entropy(h, w, t[:5])


def test_default_chunk_rows():
    assert default_chunk_rows(8192, torch.device("cpu"), 64) == 256  # 8 MiB of float32 logits
    assert default_chunk_rows(32768, torch.device("cpu"), 768) == 768  # at least d
    assert default_chunk_rows(10**9, torch.device("cpu")) == 1


def test_second_backward_is_an_error():
    h, w, t = _pair()
    h.requires_grad_()
    loss = linear_cross_entropy(h, w, t)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="twice"):
        loss.backward()


def test_model_loss_equals_logits_path_with_tied_embeddings():
    """The fused path gives the plain path's loss and gradients, including through the tied head."""
    x = torch.randint(0, 61, (2, 9))
    y = torch.randint(0, 61, (2, 9))
    y[0, :3] = -100
    grads = []
    for fused in (True, False):
        m = tiny_lm(signature="A^2B").train()
        assert m.head.weight is m.embed.weight
        if fused:
            loss = m.loss(x, y, r=2)
        else:
            loss = F.cross_entropy(m(x, r=2).float().flatten(0, 1), y.flatten(), ignore_index=-100)
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in m.parameters()]))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
