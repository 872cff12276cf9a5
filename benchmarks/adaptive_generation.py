"""Adaptive depth per token in batch-1 cached generation: does a token that exits skip the remaining rounds'
compute? Wall-clock per decoded token at fixed r = 1 … r_max and with exit rules, and the mean rounds run.

The limits say whether the skip is real: ``hidden=inf`` exits every token after one round (no head read), so it
must cost about what fixed r = 1 costs, not r_max; ``hidden=0`` never exits, so it costs fixed r_max plus the
rule's overhead; ``kl=inf`` adds two reads through the LM head per token. With ``--run`` a trained run's model
is used and ``--rules`` adds real thresholds. Decode time = (time for N new tokens − time for 1) / (N − 1),
i.e. prefill excluded, greedy, best of ``--repeats``. Usage::

    flock /tmp/rins-cpu.lock .venv/bin/python benchmarks/adaptive_generation.py [--run runs/x --rules kl=0.05]
"""

from __future__ import annotations

import argparse
import sys
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

    def per_token(**kw) -> tuple[float, float]:
        t1 = common.time_fn(lambda: model.generate(x, 1, **kw), 1, 1, repeats=a.repeats)
        tn = common.time_fn(lambda: model.generate(x, a.new, **kw), 0, 1, repeats=a.repeats)
        ms = (tn - t1) / (a.new - 1) * 1e3
        if "exit_rule" not in kw:
            return ms, float(kw["r"])
        s = ExitStats()
        model.generate(x, a.new, exit_stats=s, **kw)
        return ms, (s.token_rounds - _prompt_rounds(model, x, kw["exit_rule"])) / (a.new - 1)

    rows = []
    with torch.no_grad():
        for r in range(1, R + 1):
            ms, rd = per_token(r=r)
            rows.append([f"fixed r={r}", f"{ms:.2f}", f"{rd:.2f}"])
        rules = parse_adaptive("hidden=inf;hidden=0;kl=inf" + (";" + a.rules if a.rules else ""))
        for rule in rules:
            ms, rd = per_token(exit_rule=rule)
            rows.append([str(rule), f"{ms:.2f}", f"{rd:.2f}"])
    body = (f"Batch-1 greedy decoding with the KV cache, {what}, prompt {a.prompt_len} tokens, {a.new} new tokens, "
            f"float32, best of {a.repeats}. {common.machine()}; load average before: {load0}.\n\n"
            + common.table(["depth", "ms / new token", "mean rounds (decoded tokens)"], rows))
    print(body)
    if not a.no_write:
        common.update_section("adaptive-generation", "Adaptive depth per token: batch-1 decoding", body)


def _prompt_rounds(model: RecursiveLM, x: torch.Tensor, rule) -> int:
    """Token-rounds of the prompt's forward in ``generate``'s stats (then N - 1 steps run one new token each)."""
    s = ExitStats()
    model(x, exit_rule=rule, exit_stats=s)
    return s.token_rounds


if __name__ == "__main__":
    main()
