"""``rins demo``: the baseline ``AB``, RINS ``A^2B`` and stochastic RINS ``A^3B`` + adapters, trained at the
same training FLOPs on the default corpus, evaluated at every inference depth; a table, a plot and a
JSON summary, reported as measured whichever variant wins.

Its shape is size S of the long-training study (``configs/study-long.toml``: L = 6, d = 64, BPE 1024,
bf16, compiled blocks, each layout at its scanned learning rate) at one of the study's budgets, 2.2e13
FLOPs: ``AB`` takes ~1,500 steps, so the comparison is between trained models, not first steps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .config import load_config
from .hardware import BF16_EMULATED, native_bf16
from .plots import model_color, plot_curves
from .runfiles import atomic_write_text
from .runs import read_log
from .tables import format_table
from .train import train

__all__ = ["DEMO_VARIANTS", "run_demo"]

DEMO_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("baseline AB", {"signature": "AB"}),
    ("RINS A^2B", {"signature": "A^2B"}),
    ("stoch. RINS A^3B p_s=0.5 + adapters", {"signature": "A^3B", "p_skip": 0.5, "adapters": "round"}),
]

# The demo's default shape: size S of the long-training study (configs/study-long.toml) on preset
# cpu-small, at the study's 2.2e13-FLOPs budget. A test keeps the two in step.
DEMO_PRESET = "cpu-small"
DEMO_SHAPE: dict[str, Any] = {
    "model.n_layers": 6, "model.d_model": 64, "model.n_heads": 2, "model.max_seq_len": 256, "model.adapter_rank": 4,
    "data.vocab_size": 1024, "data.seq_len": 256, "batch_size": 16, "dtype": "bfloat16", "compile": True,
    "n_evals": 12, "eval_batches": 16, "optim.lr": 4e-3, "optim.warmup_frac": 0.05, "budget.flops": 2.2e13,
}
# Each signature trains at its own optimum from the study's learning-rate scan (deterministic recursion
# prefers half of AB's rate: its weights are applied, and updated through, r times); demo shape only.
DEMO_LR: dict[str, float] = {"A^2B": 2e-3}


def demo_dtype() -> str:
    """The demo's dtype: bf16 (the study's) where matmuls run it natively, float32 on a CPU that would emulate it
    at ~1% of float32 speed (:mod:`rins.hardware`)."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    return str(DEMO_SHAPE["dtype"]) if native_bf16(dev) else "float32"


def demo_overrides(preset: str | None, model_kw: dict[str, Any]) -> list[str]:
    """``--set`` lines for one demo variant: the study's shape and learning rate when no preset is named."""
    ov = [f"model.{k}={v}" for k, v in model_kw.items()]
    if preset is None:
        ov = [f"{k}={json.dumps(v)}" for k, v in {**DEMO_SHAPE, "dtype": demo_dtype()}.items()] + ov
        if model_kw.get("p_skip", 0) == 0 and model_kw.get("signature") in DEMO_LR:
            ov.append(f"optim.lr={DEMO_LR[model_kw['signature']]}")
    return ov


def run_demo(out_dir: str | Path = "runs/demo", budget: float | None = None, preset: str | None = None,
             corpus: str | None = None, overrides: list[str] | None = None, fresh: bool = False,
             variants: list[tuple[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Train every variant at the same training-FLOPs budget; write table.md, summary.json, curves.png.

    ``preset=None``: the demo's own shape (:data:`DEMO_SHAPE`, size S of the long-training study); a named
    preset is used as it is. ``overrides`` (``KEY=VALUE``) apply to every run, after the shape."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    runs = []
    variants = variants or DEMO_VARIANTS
    base_preset = preset or DEMO_PRESET
    if budget is None:  # every demo is compute-matched: a preset's step/token budget becomes the FLOPs of AB
        budget = _flops_budget(load_config(base_preset, None, [*demo_overrides(preset, variants[0][1]),
                                                                *(overrides or [])]))
    if preset is None and demo_dtype() != DEMO_SHAPE["dtype"]:
        print(f"[rins demo] float32 instead of the study's bf16: {BF16_EMULATED.split(';')[0]}", flush=True)
    for label, model_kw in variants:
        ov = [*demo_overrides(preset, model_kw), *(overrides or [])]
        ov += [f"out_dir={json.dumps(str(out))}", f"name={_slug(label)}"]
        if corpus:
            ov.append(f"data.corpus={json.dumps(corpus)}")
        ov.append(f"budget.flops={budget}")
        cfg = load_config(base_preset, None, ov)
        print(f"\n=== {label} ===", flush=True)
        s = train(cfg, resume=not fresh)
        s["variant"] = label
        rows.append(s)
        model = cfg.model if isinstance(cfg.model, dict) else cfg.model.to_dict()
        runs.append((label, cfg.run_dir(), model_color(model)))
    depths = sorted({int(k) for row in rows for k in row.get("val_loss_r", {})})
    table = format_table(rows, depths)
    base = rows[0]
    verdict = []
    for row in rows[1:]:
        best_r = min(row["val_loss_r"], key=lambda k: row["val_loss_r"][k]) if row["val_loss_r"] else None
        best = row["val_loss_r"][best_r] if best_r else row["val_loss"]
        delta = best - base["val_loss"]
        verdict.append(f"- {row['variant']}: best held-out loss {best:.4f} at r={best_r} vs baseline "
                       f"{base['val_loss']:.4f} ({'better' if delta < 0 else 'WORSE'} by {abs(delta):.4f} nats) "
                       f"at {row['flops'] / base['flops']:.3f}× the baseline's training FLOPs")
    text = ("## rins demo: compute-matched comparison\n\n" + table + "\n\n" + "\n".join(verdict) + "\n")
    print("\n" + text)
    atomic_write_text(out / "table.md", text)
    summary = {"rows": rows, "depths": depths}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=str))
    plot_curves([(label, read_log(run_dir), color) for label, run_dir, color in runs], out / "curves.png")
    print(f"wrote {out / 'table.md'}, {out / 'summary.json'}, {out / 'curves.png'}")
    return summary


def _flops_budget(cfg) -> float:
    """The training FLOPs of ``cfg``'s budget (for a budget in steps or tokens: what the model spends)."""
    import torch

    from .schedule import plan_steps
    from .tasks import get_task

    if cfg.budget.flops is not None:
        return float(cfg.budget.flops)
    task = get_task(cfg, None)
    with torch.device("meta"):
        model = task.build_model()
    fps = task.flops_per_step(model, cfg.batch_size)
    return float(plan_steps(cfg, fps, task.units_per_step(cfg.batch_size)) * fps)


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-").replace("--", "-")
