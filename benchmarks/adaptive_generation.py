"""Adaptive depth per token in batch-1 cached generation: does a token that exits skip the remaining rounds'
compute? Wall-clock per decoded token at fixed r = 1 … r_max and with exit rules, and the mean rounds run.

The limits say whether the skip is real: ``hidden=inf`` exits every token after one round (no head read), so it
must cost about what fixed r = 1 costs, not r_max; ``hidden=0`` never exits, so it costs fixed r_max plus the
rule's overhead; ``kl=inf`` adds two reads through the LM head per token. With ``--run`` a trained run's model
is used and ``--rules`` adds real thresholds. Each variant decodes the same tokens one forward at a time (prefill
excluded), interleaved with the others step by step; the median and 10th-percentile step times are reported. Usage::

    flock /tmp/rins-cpu.lock .venv/bin/python benchmarks/adaptive_generation.py [--run runs/x --rules kl=0.05]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from rins.adaptive import ExitStats, parse_adaptive  # noqa: E402
from rins.model import LMConfig, RecursiveLM  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=None, help="a trained run directory (default: a random cpu-small A^3B)")
    ap.add_argument("--rules", default="", help="extra exit rules, e.g. 'kl=0.05;hidden=0.1'")
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    if a.run:
        from rins.checkpoint import load_model

        model = load_model(a.run).eval()
        what = f"the model of {a.run}"
    else:
        model = RecursiveLM(LMConfig(**{**common.CPU_SMALL, "signature": "A^3B"})).eval()
        what = "a random-weight cpu-small A^3B (d = 256, 6 layers, V = 8192)"
    R = model.r_max
    V = model.config.vocab_size
    x = torch.randint(0, V, (1, a.prompt_len), generator=torch.Generator().manual_seed(1))
    load0 = common.loadavg()
    variants = [(f"fixed r={r}", {"r": r}) for r in range(1, R + 1)]
    rules = parse_adaptive("hidden=inf;hidden=0;kl=inf" + (";" + a.rules if a.rules else ""))
    variants += [(str(rule), {"exit_rule": rule}) for rule in rules]
    # decode the same greedy continuation (the fixed-r_max one) under every variant, one step at a time and
    # interleaved (step i of every variant, then step i + 1 ...), so that load changes hit all of them alike
    with torch.no_grad():
        seq = model.generate(x, a.new)[0, a.prompt_len:].tolist()
        states = []
        for _, kw in variants:
            cache, s = model.new_cache(1, a.prompt_len + a.new, kw.get("r")), ExitStats()
            model(x, cache=cache, exit_stats=s if "exit_rule" in kw else None, **kw)
            states.append((cache, ExitStats(), []))
        for _ in range(a.repeats):
            for i in range(a.new):
                for (_, kw), (cache, s, times) in zip(variants, states):
                    tok = torch.tensor([[seq[i]]])
                    stats = {"exit_stats": s} if "exit_rule" in kw else {}
                    t0 = time.perf_counter()
                    model(tok, cache=cache, **kw, **stats)
                    times.append(time.perf_counter() - t0)
            for cache, _, _ in states:  # decode the same tokens again in the next repeat
                cache.length = a.prompt_len
    rows = []
    for (name, kw), (_, s, times) in zip(variants, states):
        times.sort()
        rounds = s.mean_rounds if "exit_rule" in kw else float(kw["r"])
        rows.append([name, f"{times[len(times) // 2] * 1e3:.2f}", f"{times[len(times) // 10] * 1e3:.2f}",
                     f"{rounds:.2f}"])
    body = (f"Batch-1 decoding with the KV cache, {what}: {a.new} tokens after a {a.prompt_len}-token prompt, one "
            f"forward per token, the variants interleaved step by step, {a.repeats} passes; float32. "
            f"{common.machine()}; load average before: {load0}.\n\n"
            + common.table(["depth", "median ms / token", "10th-percentile ms / token", "mean rounds"], rows))
    print(body)
    if not a.no_write:
        common.update_section("adaptive-generation", "Adaptive depth per token: batch-1 decoding", body)


if __name__ == "__main__":
    main()
