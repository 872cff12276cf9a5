"""rins.hardware: native bf16 detection (torch's CPU probes first, /proc/cpuinfo flags without them)."""

import pytest
import torch

from rins import hardware


@pytest.fixture(autouse=True)
def fresh_caches():
    hardware._cpu_native_bf16.cache_clear()
    hardware._cpu_flags.cache_clear()
    yield
    hardware._cpu_native_bf16.cache_clear()
    hardware._cpu_flags.cache_clear()


@pytest.mark.parametrize(("avx512_bf16", "amx", "want"), [(True, False, True), (False, True, True),
                                                          (False, False, False)])
def test_torch_probes_decide(monkeypatch, avx512_bf16, amx, want):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert hardware.native_bf16("cpu") is want


@pytest.mark.parametrize(("flags", "want"), [({"avx2", "avx512f", "avx512_bf16"}, True), ({"avx2", "fma"}, False),
                                             (set(), True)])
def test_cpuinfo_flags_without_the_probes(monkeypatch, flags, want):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    monkeypatch.setattr(hardware, "_cpu_flags", lambda: frozenset(flags))
    assert hardware.native_bf16(torch.device("cpu")) is want  # unknown (no flags): assume fine, never warn falsely


def test_this_machine_agrees_with_its_cpuinfo():
    flags = hardware._cpu_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo flags here")
    # torch's probe and the kernel's flags describe the same CPU
    assert hardware.native_bf16("cpu") == bool({"avx512_bf16", "amx_bf16"} & flags)
