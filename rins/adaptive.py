"""Adaptive recursion depth per token: exit rules at inference, with the compute they save counted.

A model whose plan has a recursed group (``A^3B``, ``AB^2C``, ``(AB)^2`` ...) normally runs every token
through ``r`` rounds. With an :class:`ExitRule` each token runs at least one round and leaves the group as
soon as its rule fires, at most after ``r`` rounds (the trained exponent unless ``r`` is given):

- ``kl=τ``: KL(p_n ‖ p_{n-1}) < τ between the next-token distributions read through the final norm + LM
  head after round n and before it (p_0 is read from the group's input); every read is counted;
- ``hidden=τ``: relative change of the hidden state ‖h_n − h_{n-1}‖ / ‖h_n‖ < τ (no head read);
- ``confidence=τ``: max_v p_n(v) ≥ τ (read through the head after round n).

So ``kl=0`` / ``hidden=0`` (strict ``<``) never exit early and equal fixed ``r = r_max``; ``kl=inf`` /
``hidden=inf`` / ``confidence=0`` always exit after one round and equal fixed ``r = 1``. The rule is checked
after rounds 1 … r−1 (after round r every token leaves anyway).

An exited token keeps its state (it is frozen) through the remaining rounds; the layers after the group run
as usual; with per-depth adapters each token gets the adapter of the depth it ran. **K/V of exited tokens**:
later tokens still attend to an exited token in rounds it did not run. Its K/V there is the K/V of the last
round it computed, at the same place in the round (the same layer): with a KV cache those slots are filled by
copying, so a token that exited costs no compute in the rounds it skipped. Under ``kv_share`` every round
reads the first round's K/V anyway, so nothing needs filling. Uncached evaluation of a whole sequence uses
the same rule, so cached adaptive generation equals uncached adaptive evaluation (docs/method.md §6).

Counting: :class:`ExitStats` accumulates tokens, executed token-rounds, head reads and forward FLOPs per token
(per token: the fixed-depth cost at the rounds it ran, :meth:`rins.model.RecursiveLM.flops_per_token`, plus
``2·d·V`` per head read). In a batched forward, exited tokens are still computed (their result discarded)
while any token of the batch is active: the counts are what a per-token implementation executes. A forward in
which every token has exited skips the remaining rounds for real (batch-1 generation).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["EXIT_RULES", "ExitRule", "ExitStats", "parse_adaptive", "run_adaptive_stack", "to_rule"]

EXIT_RULES = ("kl", "hidden", "confidence")


@dataclass(frozen=True)
class ExitRule:
    """A per-token exit rule: ``rule`` (``"kl"`` | ``"hidden"`` | ``"confidence"``) and its ``threshold``
    (>= 0; ``inf`` allowed). ``str(rule)`` is the ``kl=0.01`` form that :func:`parse_adaptive` reads."""

    rule: str
    threshold: float

    def __post_init__(self) -> None:
        if self.rule not in EXIT_RULES:
            raise ValueError(f"unknown exit rule {self.rule!r}; use one of {', '.join(EXIT_RULES)} "
                             "(e.g. kl=0.01)")
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, int | float) or math.isnan(t) or t < 0:
            raise ValueError(f"exit threshold for {self.rule} must be a number >= 0 (inf allowed), got {t!r}")
        object.__setattr__(self, "threshold", float(t))

    @property
    def reads_head(self) -> bool:
        """Whether the rule reads the next-token distribution through the head after each round."""
        return self.rule != "hidden"

    def __str__(self) -> str:
        return f"{self.rule}={self.threshold:g}"


def parse_adaptive(text: str) -> list[ExitRule]:
    """``"kl=0.01,0.1"`` → one :class:`ExitRule` per threshold; several rules join with ``;``
    (``"kl=0.01;hidden=0.1,0.2"``). Raises ``ValueError`` naming the problem and the expected form."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty --adaptive setting; write RULE=THRESHOLD[,THRESHOLD...], e.g. kl=0.01,0.1")
    out: list[ExitRule] = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        rule, sep, values = part.partition("=")
        rule = rule.strip().lower()
        if not sep or not values.strip():
            raise ValueError(f"adaptive setting {part!r} has no threshold; write RULE=THRESHOLD[,...], e.g. "
                             f"kl=0.01,0.1 (rules: {', '.join(EXIT_RULES)})")
        for v in values.split(","):
            try:
                t = float(v)
            except ValueError:
                raise ValueError(f"threshold {v.strip()!r} of {rule}= is not a number; e.g. {rule}=0.05") from None
            out.append(ExitRule(rule, t))
    if not out:
        raise ValueError("empty --adaptive setting; write RULE=THRESHOLD[,THRESHOLD...], e.g. kl=0.01,0.1")
    return out


def to_rule(rule: ExitRule | str) -> ExitRule:
    """An :class:`ExitRule` from itself or from one ``"kl=0.01"`` setting (one threshold)."""
    if isinstance(rule, ExitRule):
        return rule
    if isinstance(rule, str):
        rules = parse_adaptive(rule)
        if len(rules) != 1:
            raise ValueError(f"one exit rule with one threshold is needed here, got {rule!r} ({len(rules)} rules)")
        return rules[0]
    raise TypeError(f"exit_rule must be an ExitRule or a string such as 'kl=0.01', got {type(rule).__name__}")


@dataclass
class ExitStats:
    """Counts accumulated over adaptive forwards: tokens, token-rounds, head reads, forward FLOPs.

    ``rounds_hist[n - 1]`` counts the tokens that ran n rounds.
    """

    tokens: int = 0
    token_rounds: int = 0
    head_reads: int = 0
    flops: float = 0.0
    rounds_hist: list[int] = field(default_factory=list)
    last_rounds: torch.Tensor | None = None  # rounds run by each token of the latest forward (B, T)

    @property
    def mean_rounds(self) -> float:
        """Mean recursion rounds run per token."""
        return self.token_rounds / self.tokens if self.tokens else float("nan")

    @property
    def flops_per_token(self) -> float:
        """Mean forward FLOPs per token (including the rule's head reads)."""
        return self.flops / self.tokens if self.tokens else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (without ``last_rounds``)."""
        return {"tokens": self.tokens, "token_rounds": self.token_rounds, "head_reads": self.head_reads,
                "mean_rounds": self.mean_rounds, "flops_per_token": self.flops_per_token,
                "rounds_hist": list(self.rounds_hist)}

    def add(self, rounds: torch.Tensor, reads: torch.Tensor, cost_at: Callable[[int], float],
            read_cost: float) -> None:
        """Record the tokens of one forward: ``rounds`` and ``reads`` per token (same shape)."""
        self.last_rounds = rounds.detach().cpu()
        r = rounds.reshape(-1).long().cpu()
        hist = torch.bincount(r, minlength=int(r.max()) + 1 if r.numel() else 1)[1:].tolist()
        if len(self.rounds_hist) < len(hist):
            self.rounds_hist.extend([0] * (len(hist) - len(self.rounds_hist)))
        for i, c in enumerate(hist):
            self.rounds_hist[i] += int(c)
        n_reads = int(reads.sum())
        self.tokens += r.numel()
        self.token_rounds += int(r.sum())
        self.head_reads += n_reads
        self.flops += sum(c * cost_at(i + 1) for i, c in enumerate(hist) if c) + n_reads * read_cost


def _round_layout(plan: Any) -> tuple[int, int]:
    """(first application of the recursed group, applications per round); errors if the rounds are not
    contiguous, equal blocks (every plan the compiler makes has them)."""
    if plan.r is None:
        raise ValueError(f"adaptive depth needs a recursed group; signature {plan.signature!r} has no exponent "
                         "(use e.g. 'A^3B')")
    if plan.degree > 1:  # r replaces the nested exponents too: exiting after n rounds is not depth n there
        raise ValueError(f"adaptive depth supports degree-1 signatures; {plan.signature!r} has degree {plan.degree}")
    idx = [i for i, round_ in enumerate(plan.rounds) if round_ >= 0]
    start, R = idx[0], plan.r
    L = len(idx) // R
    ok = len(idx) == L * R and idx == list(range(start, start + L * R)) and all(
        plan.rounds[start + k * L + j] == k and plan.layers[start + k * L + j] == plan.layers[start + j]
        for k in range(R) for j in range(L))
    if not ok:
        raise ValueError(f"plan {plan.signature!r}: the recursed group's rounds are not contiguous equal blocks; "
                         "adaptive depth cannot run it")
    return start, L


def run_adaptive_stack(model: Any, h: torch.Tensor, ctx: Any, r: int | None, rule: ExitRule,
                       stats: ExitStats | None = None, seq_len: int | None = None) -> torch.Tensor:
    """Run ``model.stack`` on ``h`` (B, T, d) with per-token exits by ``rule``, at most ``r`` rounds.

    ``model`` provides ``stack``, ``norm`` and ``head`` (a :class:`rins.model.RecursiveLM`); ``ctx`` is the
    forward's :class:`rins.model.ForwardContext` (its KV cache, if any, gets the exited tokens' K/V filled).
    ``stats`` (optional) accumulates the counts, with the attention term over ``seq_len`` keys.
    """
    stack = model.stack
    plan = stack.plan(r)
    start, L = _round_layout(plan)
    R = plan.r
    ctx.share_from = stack.share_map(plan)
    B, T, _ = h.shape
    per_round = len(stack.adapters) > 0 and stack.config.adapters == "round"
    inject = stack.config.input_injection == "add"
    blocks = stack.blocks

    for i in range(start):  # the layers before the recursed group
        h = blocks[plan.layers[i]](h, ctx, i)

    exited = torch.zeros(B, T, dtype=torch.bool, device=h.device)
    rounds = torch.zeros(B, T, dtype=torch.long, device=h.device)
    reads = torch.zeros(B, T, dtype=torch.long, device=h.device)
    ctx.kv_fill = kv_fill = _LastRoundKV(plan, start, L, exited)

    def read(x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(model.head(model.norm(x)).float(), -1)

    e = h
    prev = h
    logp_prev = read(h) if rule.rule == "kl" else None
    if rule.rule == "kl":
        reads += 1
    for k in range(R):
        if k > 0 and bool(exited.all()):
            _fill_skipped(ctx, plan, start, L, k, R, kv_fill.last)
            break
        active = ~exited
        if inject and k > 0:
            h = torch.where(active[..., None], h + e, h)
        for j in range(L):
            i = start + k * L + j
            new = blocks[plan.layers[i]](h, ctx, i)
            if j == L - 1 and per_round:
                new = stack.adapters[min(k, len(stack.adapters) - 1)](new)
            h = torch.where(active[..., None], new, h) if kv_fill.any_exited else new
        rounds += active.long()
        if k == R - 1:
            break
        # the exit rule after round k + 1, for the tokens still running
        fire, logp_prev = _rule_fires(rule, h, prev, logp_prev, read)
        if rule.rule != "hidden":  # it read the head
            reads += active.long()
        prev = h
        exited = kv_fill.exited = exited | (active & fire)
        kv_fill.any_exited = bool(exited.any())
    ctx.kv_fill = None

    for i in range(start + R * L, len(plan.layers)):  # the layers after the group, as usual
        h = blocks[plan.layers[i]](h, ctx, i)
    if len(stack.adapters) and stack.config.adapters == "depth":
        h = _depth_adapter_per_token(stack.adapters, h, rounds)
    if stats is not None:
        S = seq_len or (ctx.cache.length + T if ctx.cache is not None else T)
        c = model.config
        stats.add(rounds, reads, lambda n: model.flops_per_token(S, r=n), 2.0 * c.d_model * c.vocab_size)
    return h


class _LastRoundKV:
    """``ForwardContext.kv_fill`` under adaptive depth: in the rounds a token skips (``exited``), its K/V are
    those of the last round it ran (kept per position ``j`` in a round, in ``last``), so later tokens read them."""

    def __init__(self, plan: Any, start: int, L: int, exited: torch.Tensor) -> None:
        self.plan, self.start, self.L = plan, start, L
        self.exited = exited  # (B, T): the tokens that have exited (reassigned by the caller after each round)
        self.any_exited = False
        self.last: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # position j in a round -> newest K/V

    def __call__(self, app: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        round_of_app = self.plan.rounds[app]
        if round_of_app < 0:
            return k, v
        j = (app - self.start) % self.L
        if round_of_app > 0 and self.any_exited:
            m = self.exited[:, None, :, None]
            pk, pv = self.last[j]
            k, v = torch.where(m, pk, k), torch.where(m, pv, v)
        self.last[j] = (k, v)
        return k, v


def _rule_fires(rule: ExitRule, h: torch.Tensor, prev: torch.Tensor, logp_prev: torch.Tensor | None,
                read: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, T) whether ``rule`` fires for each token after a round took its state from ``prev`` to ``h``, and the
    log-probabilities the next round's KL compares with (``read`` reads them through the final norm and head)."""
    if rule.rule == "hidden":
        rel = (h - prev).float().norm(dim=-1) / h.float().norm(dim=-1).clamp_min(1e-30)
        return rel < rule.threshold, logp_prev
    logp = read(h)
    if rule.rule == "kl":
        kl = (logp.exp() * (logp - logp_prev)).sum(-1)
        return kl < rule.threshold, logp
    return logp.max(-1).values.exp() >= rule.threshold, logp_prev


def _depth_adapter_per_token(adapters: Any, h: torch.Tensor, rounds: torch.Tensor) -> torch.Tensor:
    """``adapters="depth"``: each token through the adapter of the rounds it ran (B, T), the last for deeper."""
    outs = torch.stack([a(h) for a in adapters])  # (n_ad, B, T, d)
    idx = (rounds.clamp(max=len(adapters)) - 1)[None, ..., None].expand(1, *h.shape)
    return outs.gather(0, idx)[0]


def _fill_skipped(ctx: Any, plan: Any, start: int, L: int, k0: int, R: int,
                  last_kv: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Every token has exited before round ``k0``: with a cache, copy each token's last K/V into the slots of
    rounds k0 … R-1 at the new positions (later tokens read them); nothing is computed."""
    cache = ctx.cache
    if cache is None:
        return
    p0 = cache.length
    for k in range(k0, R):
        for j in range(L):
            i = start + k * L + j
            if i in ctx.share_from:  # kv_share: this application reads its layer's first K/V anyway
                continue
            kk, vv = last_kv[j]
            s = cache.slot_of[i]
            cache.k[s][:, :, p0:p0 + kk.shape[2]] = kk
            cache.v[s][:, :, p0:p0 + vv.shape[2]] = vv
