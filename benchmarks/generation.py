"""Generation: decode tokens/s with the KV cache at r = 1, 2, 3 and batch 1 / 8, vs transformers
``generate`` at the same shape, and KV-cache memory with and without ``kv_share``.

Ours: an ``A^3B`` model of the cpu-small shape (6 layers, A = 3 layers), decoded at depth r (3r + 3
executed layers). transformers: a ``LlamaForCausalLM`` with as many layers as ours executes at that r
(same widths), greedy ``generate`` with its KV cache. Decode rate = batch × (N − 1) new tokens over
(time for N new tokens − time for 1 new token), i.e. prefill excluded. ``--compile`` adds ours with
``generate(compile=True)`` (decode steps through ``torch.compile``; compiled before timing). Usage::

    flock /tmp/rins-cpu.lock .venv/bin/python benchmarks/generation.py [--compile]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from rins.model import LMConfig, RecursiveLM  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--new", type=int, default=48)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--rs", default="1,2,3")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-hf", action="store_true")
    ap.add_argument("--compile", action="store_true", help="also time ours with generate(compile=True)")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    from vs_transformers import hf_llama

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dt = torch.float32 if a.dtype == "float32" else torch.bfloat16
    load0 = common.loadavg()
    cfgs = {share: LMConfig(**{**common.CPU_SMALL, "signature": "A^3B", "kv_share": share}) for share in (False, True)}
    torch.manual_seed(0)
    ours = RecursiveLM(cfgs[False]).to(dev, dt).eval()
    shared = RecursiveLM(cfgs[True]).to(dev, dt).eval()
    shared.load_state_dict(ours.state_dict())
    sync = common.sync_fn(dev)
    V = cfgs[False].vocab_size

    def rate(fn_n) -> float:
        t1 = common.time_fn(lambda: fn_n(1), 1, 1, sync, repeats=a.repeats)
        tn = common.time_fn(lambda: fn_n(a.new), 0, 1, sync, repeats=a.repeats)
        return (a.new - 1) / max(tn - t1, 1e-9)

    rows, mem_rows = [], []
    for B in (int(b) for b in a.batches.split(",")):
        x = torch.randint(0, V, (B, a.prompt_len), generator=torch.Generator().manual_seed(B)).to(dev)
        for r in (int(v) for v in a.rs.split(",")):
            n_exec = 3 * r + 3
            steps_ours = rate(lambda n, r=r, x=x: ours.generate(x, n, r=r))
            steps_share = rate(lambda n, r=r, x=x: shared.generate(x, n, r=r))
            steps_comp = None
            if a.compile:
                want = ours.generate(x, 4, r=r)
                assert torch.equal(ours.generate(x, 4, r=r, compile=True), want)  # compiles; same tokens
                steps_comp = rate(lambda n, r=r, x=x: ours.generate(x, n, r=r, compile=True))
            steps_hf = None
            if not a.no_hf:
                hf_cfg = LMConfig(**{**common.CPU_SMALL, "n_layers": n_exec,
                                     "block_sizes": (n_exec - n_exec // 2, n_exec // 2)})
                hf = hf_llama(hf_cfg).to(dev, dt).eval()
                hf.config.use_cache = True
                hf.generation_config.pad_token_id = 0
                hf.generation_config.eos_token_id = None

                def hf_gen(n, hf=hf, x=x):
                    with torch.no_grad():
                        return hf.generate(x, max_new_tokens=n, min_new_tokens=n, do_sample=False, use_cache=True)

                steps_hf = rate(hf_gen)
                # sanity: same shape of output
                assert hf_gen(2).shape == ours.generate(x, 2, r=r).shape
            row = [B, r, n_exec, f"{B * steps_ours:,.0f}", f"{B * steps_share:,.0f}",
                   f"{B * steps_hf:,.0f}" if steps_hf else "-",
                   f"{steps_ours / steps_hf:.2f}×" if steps_hf else "-"]
            if a.compile:
                row[5:5] = [f"{B * steps_comp:,.0f}"]
                row.append(f"{steps_comp / steps_hf:.2f}×" if steps_hf else "-")
            rows.append(row)
            print("[bench]", row, flush=True)
            T = a.prompt_len + a.new
            el = torch.empty((), dtype=dt).element_size()
            full = ours.kv_cache_bytes(B, T, r, dt)
            sh = shared.kv_cache_bytes(B, T, r, dt)
            real_full = ours.new_cache(B, T, r).nbytes()
            real_sh = shared.new_cache(B, T, r).nbytes()
            assert (full, sh) == (real_full, real_sh), (full, sh, real_full, real_sh)
            mem_rows.append([B, r, T, f"{full / 2**20:.2f}", f"{sh / 2**20:.2f}", f"{full / sh:.2f}×"])
            del el
    load1 = common.loadavg()
    body = "\n".join([
        f"Ours: `A^3B`, cpu-small widths (6 layers, d=256, V={V}), {a.dtype}, greedy, prompt {a.prompt_len}, "
        f"{a.new} new tokens, decode rate excludes the prefill (best of {a.repeats}). transformers: "
        f"`LlamaForCausalLM` with 3r+3 layers (= our executed layers), same widths, `generate` with its KV cache"
        + (" (eager, its default). \"compiled\": ours with `generate(compile=True)`, compiled before timing "
           "(same tokens, checked)." if a.compile else "."),
        f"Machine: {common.machine()}. Load average before / after: {load0} / {load1}.",
        "",
        common.table(["batch", "r", "executed layers", "ours tok/s", "ours kv_share tok/s"]
                     + (["ours compiled tok/s"] if a.compile else [])
                     + ["transformers tok/s", "ours / transformers"]
                     + (["compiled / transformers"] if a.compile else []), rows),
        "",
        "KV-cache memory (one K/V slot per layer application; `kv_share` keeps one per distinct layer; "
        "`model.kv_cache_bytes` equals the allocated `KVCache.nbytes()`):",
        "",
        common.table(["batch", "r", "tokens", "MiB", "MiB with kv_share", "saving"], mem_rows),
    ])
    if not a.no_write:
        common.update_section(f"generation-{dev.type}", f"Generation with the KV cache ({dev.type})", body)


if __name__ == "__main__":
    main()
