"""Memory estimates before allocating (issue #28): a model or a training run that cannot fit this machine is
refused up front, in words, instead of failing inside the allocator (``alloc_cpu.cpp``) minutes later.

:func:`min_weight_bytes` is a lower bound of an LM's fp32 weights from its config alone (no allocation);
:func:`training_bytes` estimates a training run (weights, gradients, AdamW moments, activations of one
micro-batch); :func:`check_fits` compares either with the memory of the device (physical RAM for the CPU, the
GPU's memory for CUDA) and raises :class:`rins.ConfigError` above it. ``rins train --force`` skips the check.
The estimates are deliberately low (they leave out the allocator, the data and the framework), so a refusal
means the run certainly does not fit; a run under the limit may still be too big.
"""

from __future__ import annotations

import os
from typing import Any

from .fields import ConfigError

__all__ = ["check_fits", "device_memory_bytes", "min_weight_bytes", "training_bytes"]

GIB = 1 << 30


def device_memory_bytes(device: Any = "cpu") -> int | None:
    """Total memory of ``device``: the machine's physical RAM for the CPU, the GPU's memory for CUDA (None when
    unknown)."""
    kind = str(device).split(":")[0]
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            return None
        index = int(str(device).split(":")[1]) if ":" in str(device) else 0
        return int(torch.cuda.get_device_properties(index).total_memory)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _lm_counts(cfg: Any) -> tuple[int, int]:
    """(parameters at least, layer applications) of an ``LMConfig``, from its fields (exact up to norms,
    biases and adapters, which are left out: a lower bound)."""
    d, v = cfg.d_model, cfg.vocab_size
    kv = cfg.kv_heads * cfg.head_dim
    ff = cfg.ff_dim * (3 if cfg.mlp == "swiglu" else 2)
    per_layer = 2 * d * d + 2 * d * kv + d * ff
    params = v * d * (1 if cfg.tie_embeddings else 2) + cfg.n_layers * per_layer
    if cfg.pos_embedding == "learned":
        params += cfg.max_seq_len * d
    return params, cfg.compile(cfg.n_layers).n_applications


def min_weight_bytes(cfg: Any) -> int:
    """A lower bound of the fp32 weights of an ``LMConfig``'s model, in bytes (nothing is allocated)."""
    return 4 * _lm_counts(cfg)[0]


def training_bytes(cfg: Any) -> tuple[int, str]:
    """(estimated bytes, what they are in words) of training ``cfg`` (a ``TrainConfig`` whose model is an
    ``LMConfig``): fp32 weights + gradients + two AdamW moments (16 bytes a parameter) and the activations of
    one micro-batch (at least 16 bytes per token, width and layer application; one application when
    activation checkpointing recomputes them)."""
    m = cfg.model
    params, apps = _lm_counts(m)
    micro = max(1, cfg.batch_size // max(1, cfg.grad_accum))
    kept = 1 if m.activation_checkpointing else apps
    act = 16 * micro * cfg.data.seq_len * m.d_model * kept
    total = 16 * params + act
    return total, (f"{params / 1e6:,.2f} M parameters × 16 bytes (weights, gradients, AdamW) = "
                   f"{16 * params / GIB:,.1f} GiB + activations of {micro} × {cfg.data.seq_len} tokens over {kept} "
                   f"layer application(s) ≈ {act / GIB:,.1f} GiB")


def check_fits(needed: int, what: str, detail: str, device: Any = "cpu", fix: str = "") -> None:
    """:class:`rins.ConfigError` when ``needed`` bytes exceed the memory of ``device`` (nothing when unknown)."""
    have = device_memory_bytes(device)
    if have is None or needed <= have:
        return
    raise ConfigError(f"{what} needs at least {needed / GIB:,.1f} GiB ({detail}) but this machine's {device} memory is "
                      f"{have / GIB:,.1f} GiB; {fix or 'make the model smaller'}")
