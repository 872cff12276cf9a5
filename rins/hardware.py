"""What this machine computes fast: native bf16 matmuls on CPU.

PyTorch runs bf16 matmuls on a CPU without AVX-512-BF16 or AMX (e.g. AMD EPYC before Zen 4, most laptops) through
a slow fallback: on a 2-core AMD EPYC (Zen 3, AVX2) a 1024² bf16 matmul ran at 0.8 GFLOP/s on one thread against
77 GFLOP/s in float32, so a bf16 study run that takes an hour elsewhere would take days there. The trainer warns
about it, and the demo trains in float32 on such CPUs.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import torch

__all__ = ["native_bf16", "BF16_EMULATED", "cxx_compiler"]

BF16_EMULATED = ("this CPU has no native bf16 matmul (neither AVX-512-BF16 nor AMX), so PyTorch emulates bf16 "
                 "at about 1% of its float32 speed here; train with --dtype float32 (the same model, its losses "
                 "differ from a bf16 run's by rounding), or on a CPU or GPU with bf16")


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@functools.cache
def _cpu_native_bf16() -> bool:
    probes = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    known = False
    for probe in probes:
        if probe is None:
            continue
        try:
            if probe():
                return True
            known = True
        except (RuntimeError, AttributeError):
            continue
    if known:
        return False
    flags = _cpu_flags()
    if not flags:  # not Linux, or unreadable: assume nothing is wrong rather than warn on every run
        return True
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def native_bf16(device: torch.device | str) -> bool:
    """Whether bf16 matmuls run natively (fast) on ``device``: on CPU, AVX-512-BF16 or AMX; on CUDA, an Ampere or
    newer GPU (``torch.cuda.is_bf16_supported``); other devices are assumed to."""
    dev = torch.device(device)
    if dev.type == "cpu":
        return _cpu_native_bf16()
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return True


def cxx_compiler() -> str | None:
    """The C++ compiler torch.compile's CPU backend would use (``$CXX``, g++, clang++), or None."""
    return next(filter(None, (shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "clang++") if c)), None)
