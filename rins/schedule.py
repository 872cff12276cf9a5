"""A run's schedule, from its config: how many optimizer steps the budget buys (:func:`plan_steps`, compute-matched
when the budget is in FLOPs), the learning rate at each step (:func:`lr_at`: warmup, then cosine, warmup-stable-decay
or constant; :func:`decay_start`) and the steps at which it is evaluated (:func:`eval_schedule`)."""

from __future__ import annotations

import math

from .config import OptimConfig, TrainConfig

__all__ = ["BudgetError", "decay_start", "eval_schedule", "lr_at", "plan_steps"]


class BudgetError(ValueError):
    """The budget cannot buy a single optimizer step."""


def plan_steps(cfg: TrainConfig, flops_per_step: float, units_per_step: int) -> int:
    """Number of optimizer steps the budget buys (compute-matched when given in FLOPs)."""
    b = cfg.budget
    if b.flops is not None:
        if b.flops <= 0:
            raise BudgetError(f"budget.flops must be > 0, got {b.flops}")
        steps = int(b.flops // flops_per_step)
        if steps < 1:
            raise BudgetError(
                f"budget of {b.flops:.3g} FLOPs is too small for one step ({flops_per_step:.3g} FLOPs per step); "
                "raise budget.flops or lower batch_size / data.seq_len"
            )
        return steps
    if b.tokens is not None:
        steps = int(b.tokens // units_per_step)
        if steps < 1:
            raise BudgetError(f"budget of {b.tokens} tokens is less than one step ({units_per_step} tokens)")
        return steps
    if b.steps is not None:
        if b.steps < 1:
            raise BudgetError(f"budget.steps must be >= 1, got {b.steps}")
        return int(b.steps)
    raise BudgetError("no budget: set budget.flops, budget.tokens or budget.steps")


def lr_at(step: int, total: int, o: OptimConfig) -> float:
    """Learning rate at ``step`` (0-based) of ``total``: linear warmup, then cosine / WSD / constant."""
    warm = max(1, int(round(o.warmup_frac * total))) if o.warmup_frac > 0 else 0
    if step < warm:
        return o.lr * (step + 1) / warm
    lo = o.lr * o.min_lr_ratio
    if o.schedule == "constant":
        return o.lr
    if o.schedule == "cosine":
        t = (step - warm) / max(1, total - warm - 1)
        return lo + 0.5 * (o.lr - lo) * (1 + math.cos(math.pi * min(1.0, t)))
    if o.schedule == "wsd":
        decay = max(1, int(round(o.cooldown_frac * total)))
        start = total - decay
        if step < start:
            return o.lr
        return o.lr + (lo - o.lr) * (step - start + 1) / decay
    raise ValueError(f"unknown schedule {o.schedule!r}; use cosine, wsd or constant")


def decay_start(total: int, o: OptimConfig) -> int:
    """Steps done when a WSD schedule's decay begins (the learning rate of step index ``start`` decays)."""
    return total - max(1, int(round(o.cooldown_frac * total)))


def eval_schedule(total: int, n: int) -> list[int]:
    """Steps (1-based, after the update) at which to evaluate: geometric spacing, always incl. the last."""
    if n <= 1 or total <= 1:
        return [total]
    pts = {max(1, int(round(total ** (i / (n - 1))))) for i in range(n)}
    pts |= {total}
    return sorted(p for p in pts if p <= total)
