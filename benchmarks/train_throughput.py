"""Training throughput and MFU of a preset's shape (default cpu-small): fp32 / bf16, plain or fused loss,
eager or compiled.

MFU = model FLOPs per token (per *executed* layer, ``model.flops_per_token(T, training=True)``) ×
tokens/s / peak, where the peak is a bf16 matmul peak measured in this script on CPU (before and after
the timings; the higher one is used) or the datasheet bf16 peak on GPU.

Variants are timed round-robin (``--repeats`` rounds of ``--steps`` steps each, best round kept), and
the peak is re-measured after every round (highest kept), so that load changes on a shared machine hit
all of them alike. It also counts the graphs that
``torch.compile`` builds per block when the depth r varies (it must not recompile), and can profile
one step (``--profile``). Usage::

    flock /tmp/rins-cpu.lock .venv/bin/python benchmarks/train_throughput.py [--signature AB] [--profile]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from rins.model import LMConfig, RecursiveLM  # noqa: E402


def preset_shape(name: str) -> tuple[dict, int, int]:
    """(model kwargs, micro-batch, sequence length) of a training preset (``rins.config``)."""
    from rins.config import load_config
    from rins.fields import given_fields

    cfg = load_config(name)
    model = {k: v for k, v in given_fields(cfg.model).items() if k != "signature"}
    model.update(vocab_size=cfg.data.vocab_size, max_seq_len=cfg.data.seq_len)
    return model, cfg.batch_size // cfg.grad_accum, cfg.data.seq_len


def build(signature: str, compile_blocks: bool, seed: int = 0, shape: dict | None = None, **over) -> RecursiveLM:
    """A model of ``shape`` (default cpu-small); ``compile_blocks``: ``torch.compile`` each block, as
    ``rins.train`` does."""
    torch.manual_seed(seed)
    m = RecursiveLM(LMConfig(**{**(shape or common.CPU_SMALL), "signature": signature, **over}))
    if compile_blocks:
        for blk in m.stack.blocks:
            blk.compile(dynamic=False)
    return m


def count_graphs(signature: str, depths: list[int]) -> list[int]:
    """Cumulative dynamo graph count after a training forward/backward at each depth in ``depths``."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    m = build(signature, True, n_layers=4, d_model=64, max_seq_len=32, vocab_size=256).train()
    x = torch.randint(0, 256, (2, 32))
    out = []
    for r in depths:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m(x, r)
        y.float().sum().backward()
        out.append(int(counters["stats"]["unique_graphs"]))
    torch._dynamo.reset()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signature", default="AB")
    ap.add_argument("--preset", default="cpu-small", help="model shape of this training preset (e.g. gpu-125m)")
    ap.add_argument("--batch", type=int, default=0, help="sequences per step (default: the preset's micro-batch)")
    ap.add_argument("--steps", type=int, default=5, help="steps per timed round")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds (best kept)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--profile", action="store_true", help="torch.profiler table of one bf16 step")
    ap.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    a = ap.parse_args()
    dev = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if a.device == "auto" else a.device))
    shape, B, T = preset_shape(a.preset)
    B, V = a.batch or B, shape["vocab_size"]
    load0 = common.loadavg()
    peak0, how = common.peak_flops(dev)
    print(f"[bench] peak {peak0 / 1e9:.0f} GFLOP/s ({how}); load {load0}", flush=True)

    variants = [  # (label, dtype, compile per block, fused AdamW, fused head + loss)
        ("fp32 eager, plain cross-entropy", "float32", False, False, False),
        ("fp32 eager, fused loss", "float32", False, False, True),
        ("bf16 autocast eager, plain cross-entropy", "bfloat16", False, False, False),
        ("bf16 autocast eager, fused loss", "bfloat16", False, False, True),
        ("bf16 eager + fused loss + fused AdamW (rins.train defaults)", "bfloat16", False, True, True),
        ("bf16 + compile per block + fused loss + fused AdamW", "bfloat16", True, True, True),
    ]
    if dev.type == "cuda":
        variants = [v for v in variants if v[3] or v[1] == "float32"]
    steppers, flops_tok = {}, None
    for label, dt, comp, fused, fused_loss in variants:
        m = build(a.signature, comp, shape=shape)
        flops_tok = m.flops_per_token(T, training=True)
        steppers[label] = common.make_train_step(m, dt, dev, B, T, V, fused=fused, fused_loss=fused_loss)
        t0 = common.time_fn(steppers[label], 1, 1, common.sync_fn(dev))
        common.time_fn(steppers[label], a.warmup - 1, 1, common.sync_fn(dev))
        print(f"[bench] {label}: first step {t0:.1f} s", flush=True)
    best = {k: float("inf") for k in steppers}
    peaks = [peak0]
    for _ in range(a.repeats):
        for label, fn in steppers.items():
            best[label] = min(best[label], common.time_fn(fn, 0, a.steps, common.sync_fn(dev)))
        if dev.type == "cpu":  # the peak is re-measured in every round, under the same load as the steps
            peaks.append(common.matmul_peak(torch.bfloat16, seconds=0.5))
    peak = max(peaks)
    load1 = common.loadavg()
    rows = []
    for label, *_ in variants:
        s = best[label]
        tps = B * T / s
        rows.append([label, f"{s * 1e3:.0f}", f"{tps:,.0f}", f"{flops_tok * tps / 1e9:.1f}",
                     f"{100 * flops_tok * tps / peak:.1f}%"])
        print(f"[bench] {rows[-1]}", flush=True)

    graphs = count_graphs("A^2B", [2, 1, 2, 3, 4])
    print(f"[bench] dynamo graphs (A^2B, r = 2,1,2,3,4): {graphs}")

    prof_txt = ""
    if a.profile:
        from torch.profiler import ProfilerActivity, profile

        for label in ("bf16 autocast eager, plain cross-entropy", "bf16 autocast eager, fused loss"):
            with profile(activities=[ProfilerActivity.CPU]) as p:
                for _ in range(2):
                    steppers[label]()
            t = p.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
            prof_txt += f"{label}:\n{t.strip()}\n\n"
            print(label, t, sep="\n")

    mfu_best = max(flops_tok * B * T / best[k] / peak for k in best)
    target = 0.40 if dev.type == "cuda" else 0.35  # issue 7: gpu-125m on a GPU, cpu-small on this CPU
    body = [
        f"Shape: {a.preset} (`{a.signature}`, L={m.config.n_layers}, d={m.config.d_model}, {m.config.n_heads} heads, "
        f"SwiGLU {m.config.ff_dim}, V={V}, T={T}, batch {B}); full "
        f"optimizer step (autocast forward, fp32 softmax cross-entropy, backward, grad clip, AdamW). "
        f"\"Plain cross-entropy\": `F.cross_entropy(logits.float())`; \"fused loss\": `rins.losses."
        f"linear_cross_entropy` (chunked head + loss, gradients in the same pass). Model FLOPs/token "
        f"(training, per executed layer) = {flops_tok / 1e6:.2f} M.",
        f"Peak: {how}, measured before and after every round: "
        f"{', '.join(f'{p / 1e9:.0f}' for p in peaks)} GFLOP/s (used: the highest, {peak / 1e9:.0f}). "
        f"Machine: {common.machine()}. Load average before / after: {load0} / {load1}.",
        "",
        common.table(["variant", "ms/step", "tokens/s", "achieved GFLOP/s", "MFU (vs bf16 peak)"], rows),
        "",
        f"Target MFU ≥ {target:.0%} of the {'datasheet' if dev.type == 'cuda' else 'measured'} bf16 peak: "
        f"**{'met' if mfu_best >= target else 'not met'}** (best {100 * mfu_best:.1f}%).",
        "",
        f"Recompiles when r varies (`torch._dynamo` `unique_graphs`, cumulative after training steps at "
        f"r = 2, 1, 2, 3, 4 of an `A^2B` model, 4 layers, compiled per block as `rins.train` does it): "
        f"{graphs}.",
    ]
    if prof_txt:
        body += ["", "Profiles of two bf16 eager steps (self CPU time):", "", "```", prof_txt.strip(), "```"]
    if not a.no_write:
        tag = "" if a.preset == "cpu-small" else f"{a.preset}-"  # cpu-small keeps its section's old name
        common.update_section(f"train-throughput-{tag}{a.signature}-{dev.type}",
                              f"Training throughput and MFU ({tag}{a.signature}, {dev.type})", "\n".join(body))


if __name__ == "__main__":
    main()
