"""Fused linear + cross-entropy: the LM head and its loss without materialising the full logits.

The plain path ``F.cross_entropy(head(h).float(), y)`` writes the ``(N, V)`` logits in bf16, a float32
copy of them, their log-softmax, and in backward a zero-filled one-hot gradient of the same size, then
casts it back to bf16 (see the profiles in BENCHMARKS.md). Here the rows are processed
in chunks small enough to stay in cache, and, because the loss is the last node of the graph, the
gradients of ``h`` and of the head weight are computed in the same pass (as Liger-Kernel's
``FusedLinearCrossEntropy`` does on GPU): backward only scales them by the incoming gradient. The same
matmuls run (3 × 2·N·d·V FLOPs), in the autocast dtype when autocast is on; the log-softmax and the
loss are float32.
"""

from __future__ import annotations

import torch

_CPU_CHUNK_BYTES = 8 << 20  # float32 logits per chunk on CPU: fits the last-level cache
_GPU_CHUNK_BYTES = 1 << 30


def default_chunk_rows(vocab_size: int, device: torch.device, d_model: int = 0) -> int:
    """Rows per chunk: 8 MiB of float32 logits on CPU (the last-level cache), 1 GiB on GPU,
    and at least ``d_model``: every chunk adds a (V, d) product into the float32 weight gradient, a
    pass that must stay small next to the chunk's own (rows, V) logits."""
    budget = _CPU_CHUNK_BYTES if device.type == "cpu" else _GPU_CHUNK_BYTES
    return max(1, budget // (4 * vocab_size), d_model)


def compute_dtype(h: torch.Tensor) -> torch.dtype:
    """The dtype matmuls on ``h`` run in: the autocast dtype when autocast is on, else ``h.dtype``."""
    dev = h.device.type
    if torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return h.dtype


def _run(h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor, ignore_index: int, chunk: int,
         cdt: torch.dtype, want_h: bool, want_w: bool
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(summed loss, number of counted targets, d sum-loss / d h, d sum-loss / d w)."""
    valid = targets != ignore_index
    masked = bool((~valid).any())  # one check per call: the common all-valid case skips a pass per chunk
    tgt = targets.clamp(min=0)[:, None]
    hc, wc = h.to(cdt), w.to(cdt)
    wt = wc.t().contiguous()  # (d, V): a transposed operand is the slower GEMM layout on CPU
    loss = torch.zeros((), dtype=torch.float32, device=h.device)
    gh = torch.empty_like(hc) if want_h else None
    gw = None  # float32 dW: the first chunk's product converted, later ones added in place (no zero pass)
    minus_one = torch.full((min(chunk, h.shape[0]), 1), -1.0, dtype=cdt, device=h.device)
    for s in range(0, h.shape[0], chunk):
        e = min(s + chunk, h.shape[0])
        logp = torch.log_softmax(hc[s:e] @ wt, -1, dtype=torch.float32)
        m = valid[s:e]
        loss -= (logp.gather(1, tgt[s:e]).squeeze(1) * m).sum()
        if not (want_h or want_w):
            continue
        # softmax written straight into the matmul dtype (one pass instead of exp + cast)
        g = logp.exp_() if cdt == torch.float32 else torch.exp(logp, out=torch.empty_like(logp, dtype=cdt))
        g.scatter_add_(1, tgt[s:e], minus_one[: e - s])
        if masked:
            g.mul_(m[:, None])  # ignored rows contribute nothing
        if want_h:
            torch.mm(g, wc, out=gh[s:e])
        if want_w:
            if gw is None:
                gw = (g.T @ hc[s:e]).float()
            elif cdt == torch.float32:
                gw.addmm_(g.T, hc[s:e])  # the GEMM accumulates in place (beta = 1): no extra pass
            else:
                gw.add_(g.T @ hc[s:e])  # no mixed-dtype GEMM on CPU: bf16 product added into float32
    return loss, valid.sum(), gh, gw


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, w, targets, ignore_index, chunk, cdt, mean):
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        loss, n, gh, gw = _run(h, w, targets, ignore_index, chunk, cdt, want_h, want_w)
        # mean over counted targets, like F.cross_entropy (0/0 = nan when every target is ignored)
        scale = 1.0 / n.float() if mean else torch.ones((), device=h.device)
        ctx.save_for_backward(gh if want_h else None, gw if want_w else None, scale)
        ctx.dtypes = (h.dtype, w.dtype)
        ctx.used = False
        return loss * scale

    @staticmethod
    def backward(ctx, grad_out):
        if ctx.used:
            raise RuntimeError("linear_cross_entropy: backward through the same loss twice (retain_graph) is "
                               "not supported; recompute the loss")
        ctx.used = True
        gh, gw, scale = ctx.saved_tensors
        g = grad_out * scale
        # in place: the saved gradients are used once (the graph is not retained through this node)
        dh = gh.mul_(g).to(ctx.dtypes[0]) if gh is not None else None
        dw = gw.mul_(g).to(ctx.dtypes[1]) if gw is not None else None
        return dh, dw, None, None, None, None, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *,
                         ignore_index: int = -100, reduction: str = "mean",
                         chunk_rows: int | None = None) -> torch.Tensor:
    """``F.cross_entropy(F.linear(h, weight).float(), targets)`` without the ``(N, V)`` logits.

    Args:
        h: hidden states ``(..., d)``; flattened to ``(N, d)``.
        weight: the head weight ``(V, d)`` (no bias).
        targets: class indices with ``h``'s leading shape; ``ignore_index`` entries are skipped.
        reduction: ``"mean"`` over counted targets or ``"sum"``.
        chunk_rows: rows per chunk (default :func:`default_chunk_rows`).

    Under autocast the matmuls run in the autocast dtype and the softmax in float32, as with the plain
    path. Double backward, and a second backward through the same loss, are not supported (an error).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if h.shape[:-1] != targets.shape:
        raise ValueError(f"targets shape {tuple(targets.shape)} does not match hidden states {tuple(h.shape)}")
    h2, t = h.reshape(-1, h.shape[-1]), targets.reshape(-1)
    chunk = chunk_rows or default_chunk_rows(weight.shape[0], h.device, weight.shape[1])
    cdt = compute_dtype(h)
    with torch.autocast(h.device.type, enabled=False):
        if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
            return _LinearCrossEntropy.apply(h2, weight, t, ignore_index, chunk, cdt, reduction == "mean")
        loss, n, _, _ = _run(h2, weight, t, ignore_index, chunk, cdt, False, False)
        return loss / n if reduction == "mean" else loss
