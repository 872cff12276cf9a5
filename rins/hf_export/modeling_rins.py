"""A self-contained ``transformers`` implementation of an exported RINS causal LM.

Shipped next to the weights by ``rins export`` (with ``configuration_rins.py`` and ``rins_plan.py``, the
``rins`` signature compiler copied verbatim), so ``AutoModelForCausalLM.from_pretrained(folder,
trust_remote_code=True)`` works without ``rins`` installed. Parameter names equal those of
``rins.RecursiveLM``, so the weights are saved unchanged.

Recursion depth: ``config.rins_r`` (``None`` = the trained exponent), settable at load
(``from_pretrained(..., rins_r=3)``), with :meth:`RinsForCausalLM.set_rins_r`, per call
(``model(input_ids, rins_r=3)``) or per generation (``model.generate(..., rins_r=3)``).

Adaptive depth per token (as ``rins.adaptive``): ``config.rins_exit`` (``None`` = fixed depth), e.g.
``"kl=0.05"``, ``"hidden=0.1"`` or ``"confidence=0.9"``, settable in the same four ways (``rins_exit=``).
Each token runs at least one round of the recursed group and at most ``rins_r`` (default the trained
exponent); it exits when KL(p_n ‖ p_{n-1}) between successive rounds' next-token distributions (read through
the final norm and head; p_0 from the group's input) < τ, the relative change of its hidden state < τ, or
its max probability ≥ τ. An exited token keeps its state; in the rounds it skips, later tokens read its K/V of
the last round it ran (the cache slots are filled by copying), so cached generation equals the uncached
forward; with a batch of one, the skipped rounds are not computed.

KV cache: a ``transformers`` :class:`~transformers.Cache` (``DynamicCache`` by default) with **one
layer slot per layer application** of the compiled plan (the application index is the cache
``layer_idx``); with ``kv_share`` repeated applications of a layer reuse its first application's slot.
A cache is only valid for the depth it was filled at. Inference only: stochastic depth (``p_skip``) is
not sampled here.

Cache protocol across ``transformers`` versions: ``generate`` hands the cache to ``forward`` as
``past_key_values`` (4.x, early 5.x) or ``cache`` (5.24+); ``forward`` reads either (and the singular
``past_key_value``) and returns it under the field the installed ``CausalLMOutputWithPast`` declares.
Any other keyword carrying a ``Cache`` is an error, so a future rename fails loudly instead of silently
decoding every step from an empty cache.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache, GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache, DynamicLayer
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_rins import RinsConfig
from .rins_plan import compile_plan

# Keywords under which transformers versions pass the KV cache to ``forward``, and the output field.
_CACHE_KWARGS = ("cache", "past_key_values", "past_key_value")
_OUT_FIELDS = getattr(CausalLMOutputWithPast, "__dataclass_fields__", {})
_OUT_CACHE_FIELD = "cache" if "cache" in _OUT_FIELDS else "past_key_values"


def _take_cache(named: dict[str, object], kwargs: dict[str, object]) -> Cache | None:
    """The one cache passed under any known keyword; errors on conflicts, legacy tuples or unknown keywords."""
    for k in _CACHE_KWARGS[2:]:
        if k in kwargs:
            named[k] = kwargs.pop(k)
    given = {k: v for k, v in named.items() if v is not None}
    stray = sorted(k for k, v in kwargs.items() if isinstance(v, Cache))
    if stray:
        raise TypeError(f"RinsForCausalLM.forward got a Cache under the unknown keyword(s) {stray}; this transformers "
                        f"version passes the KV cache differently from {_CACHE_KWARGS} (update modeling_rins.py)")
    if len({id(v) for v in given.values()}) > 1:
        raise ValueError(f"two different caches passed ({sorted(given)}); pass one")
    cache = next(iter(given.values()), None)
    if cache is not None and not isinstance(cache, Cache):
        raise TypeError(f"the KV cache must be a transformers Cache (e.g. DynamicCache), got {type(cache).__name__}")
    return cache


_EXIT_RULES = ("kl", "hidden", "confidence")


def _parse_exit(text: str) -> tuple[str, float]:
    """``"kl=0.05"`` -> ("kl", 0.05); errors name the problem and the expected form."""
    if not isinstance(text, str):
        raise ValueError(f"rins_exit must be a string such as 'kl=0.05', got {type(text).__name__}")
    rule, sep, val = text.partition("=")
    rule = rule.strip().lower()
    if rule not in _EXIT_RULES:
        raise ValueError(f"unknown exit rule {rule!r} in rins_exit={text!r}; use one of {', '.join(_EXIT_RULES)}, "
                         "e.g. 'kl=0.05'")
    try:
        thr = float(val)
    except ValueError:
        raise ValueError(f"rins_exit={text!r}: the threshold must be one number, e.g. '{rule}=0.05'") from None
    if not thr >= 0:  # also NaN
        raise ValueError(f"rins_exit={text!r}: the threshold must be >= 0 (inf allowed)")
    return rule, thr


def _ff_dim(c: dict) -> int:
    if c.get("d_ff"):
        return int(c["d_ff"])
    if c.get("mlp", "swiglu") == "swiglu":
        return 64 * -(-8 * c["d_model"] // (3 * 64))
    return 4 * c["d_model"]


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned gain (``F.rms_norm``)."""

    def __init__(self, d: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def _norm(c: dict, d: int) -> nn.Module:
    eps = float(c.get("norm_eps", 1e-6))
    return RMSNorm(d, eps) if c.get("norm", "rmsnorm") == "rmsnorm" else nn.LayerNorm(d, eps=eps)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def _mask_and_positions(attention_mask: torch.Tensor | None, position_ids: torch.LongTensor | None, B: int, T: int,
                        past: int, dev: torch.device) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The attention mask of ``T`` new tokens after ``past`` cached ones (None: plain causal) and their positions.

    A 2-D padding mask (batch, past + T) becomes a boolean causal mask that hides padding (each row still sees
    itself) and, when ``position_ids`` is not given, positions counted over the real tokens (left padding); a
    4-D mask is used as it is; with a cache and several new tokens the causal mask is offset by ``past``.
    """
    mask = None
    if attention_mask is not None and attention_mask.dim() == 2:
        am = attention_mask.to(torch.bool)
        if am.shape[1] != past + T:
            raise ValueError(f"attention_mask has length {am.shape[1]}, expected past+new = {past + T}")
        if position_ids is None:
            position_ids = (am.long().cumsum(-1) - 1).clamp(min=0)[:, past:]
        causal = torch.ones(T, past + T, dtype=torch.bool, device=dev).tril(past)
        diag = torch.arange(T, device=dev)[:, None] + past == torch.arange(past + T, device=dev)[None]
        mask = ((causal[None] & am[:, None, :]) | diag[None])[:, None]
    elif attention_mask is not None:
        mask = attention_mask.to(torch.bool) if attention_mask.dtype == torch.bool else attention_mask
    elif past > 0 and T > 1:
        mask = torch.ones(T, past + T, dtype=torch.bool, device=dev).tril(past)[None, None]
    if position_ids is None:
        position_ids = torch.arange(past, past + T, device=dev)[None].expand(B, T)
    return mask, position_ids.clamp(min=0)


class _Ctx:
    def __init__(self, cos, sin, mask, cache, slot_of, share_from) -> None:
        self.cos, self.sin, self.mask, self.cache = cos, sin, mask, cache
        self.slot_of, self.share_from = slot_of, share_from
        self.kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.kv_fill = None  # adaptive depth: (application, k, v) -> the K/V with exited tokens' filled in


class Attention(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        d = c["d_model"]
        self.n_heads = c["n_heads"]
        self.n_kv = c.get("n_kv_heads") or self.n_heads
        self.hd = d // self.n_heads
        qb, pb = bool(c.get("qkv_bias")), bool(c.get("proj_bias"))
        self.q = nn.Linear(d, self.n_heads * self.hd, bias=qb)
        self.k = nn.Linear(d, self.n_kv * self.hd, bias=qb)
        self.v = nn.Linear(d, self.n_kv * self.hd, bias=qb)
        self.o = nn.Linear(self.n_heads * self.hd, d, bias=pb)

    def forward(self, x: torch.Tensor, ctx: _Ctx, app: int) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.n_heads, self.hd).transpose(1, 2)
        src = ctx.share_from.get(app)
        if src is not None and src in ctx.kv:
            k, v = ctx.kv[src]
        else:
            k = self.k(x).view(B, T, self.n_kv, self.hd).transpose(1, 2)
            v = self.v(x).view(B, T, self.n_kv, self.hd).transpose(1, 2)
            if ctx.cos is not None:
                k = k * ctx.cos + _rotate_half(k) * ctx.sin
            if ctx.kv_fill is not None:
                k, v = ctx.kv_fill(app, k, v)
            if ctx.cache is not None:
                k, v = ctx.cache.update(k, v, ctx.slot_of[app])
            ctx.kv[app] = (k, v)
        if ctx.cos is not None:
            q = q * ctx.cos + _rotate_half(q) * ctx.sin
        rep = self.n_heads // self.n_kv
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=ctx.mask, is_causal=ctx.mask is None and T > 1)
        return self.o(y.transpose(1, 2).reshape(B, T, self.n_heads * self.hd))


class MLP(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        d, f, b = c["d_model"], _ff_dim(c), bool(c.get("proj_bias"))
        self.kind = c.get("mlp", "swiglu")
        if self.kind == "swiglu":
            self.gate = nn.Linear(d, f, bias=b)
        self.up = nn.Linear(d, f, bias=b)
        self.down = nn.Linear(f, d, bias=b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "swiglu":
            return self.down(F.silu(self.gate(x)) * self.up(x))
        return self.down(F.gelu(self.up(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-norm block: ``h + attn(norm1(h))`` then ``h + mlp(norm2(h))``."""

    def __init__(self, c: dict) -> None:
        super().__init__()
        self.norm1 = _norm(c, c["d_model"])
        self.attn = Attention(c)
        self.norm2 = _norm(c, c["d_model"])
        self.mlp = MLP(c)

    def forward(self, h: torch.Tensor, ctx: _Ctx, app: int) -> torch.Tensor:
        h = h + self.attn(self.norm1(h), ctx, app)
        return h + self.mlp(self.norm2(h))


class Adapter(nn.Module):
    """``h <- h + W RMSNorm(h)`` (full or low rank)."""

    def __init__(self, d: int, rank: int | None, eps: float) -> None:
        super().__init__()
        self.norm = RMSNorm(d, eps)
        self.down = nn.Linear(d, rank, bias=False) if rank else None
        self.up = nn.Linear(rank or d, d, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = self.norm(h)
        if self.down is not None:
            z = self.down(z)
        return h + self.up(z)


class Stack(nn.Module):
    """Runs ``blocks`` in the order of the compiled plan, applying the adapters."""

    def __init__(self, c: dict) -> None:
        super().__init__()
        self.c = c
        self.blocks = nn.ModuleList(Block(c) for _ in range(c["n_layers"]))
        base = self.plan(None)
        self.r_max = base.r
        n_ad = base.r if (c.get("adapters", "none") != "none" and base.r) else 0
        eps = float(c.get("norm_eps", 1e-6))
        self.adapters = nn.ModuleList(Adapter(c["d_model"], c.get("adapter_rank"), eps) for _ in range(n_ad))

    def plan(self, r: int | None):
        c = self.c
        bs = tuple(c["block_sizes"]) if c.get("block_sizes") else None
        return compile_plan(c["signature"], c["n_layers"], c.get("degree", 1), bs, r)

    def run(self, h: torch.Tensor, ctx: _Ctx, plan) -> torch.Tensor:
        """``h`` through every layer application of ``plan`` at a fixed depth, with the adapters (a plain method,
        not ``forward``: the model calls it, so no module hooks are added around it)."""
        ends = {a: k for k, a in enumerate(plan.round_ends)}
        ads, mode = self.adapters, self.c.get("adapters", "none")
        for i, lay in enumerate(plan.layers):
            h = self.blocks[lay](h, ctx, i)
            if len(ads) and mode == "round" and i in ends:
                h = ads[min(ends[i], len(ads) - 1)](h)
        if len(ads) and mode == "depth":
            h = ads[min(plan.r, len(ads)) - 1](h)
        return h


class RinsPreTrainedModel(PreTrainedModel):
    """Base class (config class, weight init)."""

    config_class = RinsConfig
    base_model_prefix = "rins_model"
    supports_gradient_checkpointing = False
    _no_split_modules = ["Block"]


class RinsForCausalLM(RinsPreTrainedModel, GenerationMixin):
    """Recursive decoder-only LM: the ``rins.RecursiveLM`` forward, with a ``transformers`` cache and generate."""

    _tied_weights_keys = {"head.weight": "embed.weight"}

    def __init__(self, config: RinsConfig) -> None:
        super().__init__(config)
        c = dict(config.rins)
        self.c = c
        d = c["d_model"]
        self.embed = nn.Embedding(c["vocab_size"], d)
        self.pos = nn.Embedding(c["max_seq_len"], d) if c.get("pos_embedding", "rope") == "learned" else None
        self.stack = Stack(c)
        self.norm = _norm(c, d)
        self.head = nn.Linear(d, c["vocab_size"], bias=False)
        self._call_r: int | None = None
        self._call_exit: str | None = None
        self.post_init()

    # -- depth ----------------------------------------------------------------------------------
    def set_rins_r(self, r: int | None) -> None:
        """Set the default recursion depth (``None``: the trained exponent)."""
        if r is not None and int(r) < 1:
            raise ValueError(f"rins_r must be >= 1, got {r}")
        self.config.rins_r = None if r is None else int(r)

    def set_rins_exit(self, rule: str | None) -> None:
        """Set the default exit rule (``"kl=0.05"``, ``"hidden=0.1"``, ``"confidence=0.9"``; ``None``: fixed)."""
        if rule is not None:
            _parse_exit(rule)
        self.config.rins_exit = rule

    def _exit(self, rule: str | None) -> tuple[str, float] | None:
        rule = rule if rule is not None else (self._call_exit if self._call_exit is not None
                                              else getattr(self.config, "rins_exit", None))
        if rule is None:
            return None
        if self.stack.r_max is None:
            raise ValueError(f"signature {self.c['signature']!r} has no recursed group; rins_exit must be None")
        if int(self.c.get("degree", 1)) > 1:
            raise ValueError("adaptive depth (rins_exit) supports degree-1 signatures only")
        return _parse_exit(rule)

    def _depth(self, r: int | None) -> int | None:
        r = r if r is not None else (self._call_r if self._call_r is not None else self.config.rins_r)
        if r is not None and self.stack.r_max is None:
            raise ValueError(f"signature {self.c['signature']!r} has no recursion exponent; rins_r must be None")
        return r

    def get_input_embeddings(self) -> nn.Module:
        return self.embed

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embed = value

    def get_output_embeddings(self) -> nn.Module:
        return self.head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.head = value

    # -- forward --------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        rins_r: int | None = None,
        cache: Cache | None = None,
        rins_exit: str | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Logits for ``input_ids`` at recursion depth ``rins_r`` (default ``config.rins_r``).

        ``attention_mask`` is the 2-D (batch, past + new) padding mask (left padding supported). The KV
        cache may come as ``cache`` or ``past_key_values`` (whichever the transformers version uses).
        ``rins_exit`` (default ``config.rins_exit``): an adaptive-depth exit rule, ``rins_r`` then the most rounds.
        """
        past_key_values = _take_cache({"cache": cache, "past_key_values": past_key_values}, kwargs)
        plan = self.stack.plan(self._depth(rins_r))
        h = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        if use_cache is None:
            use_cache = bool(getattr(self.config, "use_cache", True)) and not self.training
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache()
        cache = past_key_values if use_cache or past_key_values is not None else None
        past = cache.get_seq_length() if cache is not None else 0
        mask, position_ids = _mask_and_positions(attention_mask, position_ids, h.shape[0], h.shape[1], past, h.device)
        if self.pos is not None:
            h = h + self.pos(position_ids)
        ctx = self._context(plan, position_ids, h, mask, cache)
        rule = self._exit(rins_exit)
        h = self.stack.run(h, ctx, plan) if rule is None else self._adaptive(h, ctx, plan, rule)
        logits, loss = self._logits_and_loss(h, labels, logits_to_keep)
        return CausalLMOutputWithPast(loss=loss, logits=logits, **{_OUT_CACHE_FIELD: cache if use_cache else None})

    def _rope(self, position_ids: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """RoPE cos/sin tables for ``position_ids`` in ``h``'s dtype and device ((None, None) without RoPE)."""
        c = self.c
        if c.get("pos_embedding", "rope") != "rope":
            return None, None
        hd = c["d_model"] // c["n_heads"]
        theta = float(c.get("rope_theta", 10000.0))
        inv = 1.0 / (theta ** (torch.arange(0, hd, 2, device=h.device, dtype=torch.float32) / hd))
        ang = position_ids.float()[..., None] * inv
        emb = torch.cat((ang, ang), dim=-1)[:, None]
        return emb.cos().to(h.dtype), emb.sin().to(h.dtype)

    def _context(self, plan, position_ids: torch.Tensor, h: torch.Tensor, mask: torch.Tensor | None,
                 cache: Cache | None) -> _Ctx:
        """The per-forward state of every block application: RoPE tables, mask, cache slots (one per layer
        application; with ``kv_share`` a repeated layer's applications share its first one's) and K/V sharing."""
        cos, sin = self._rope(position_ids, h)
        first = plan.first_application()
        share = bool(self.c.get("kv_share"))
        slot_of = first if share else tuple(range(plan.n_applications))
        share_from = {i: f for i, f in enumerate(first) if f != i} if share else {}
        if cache is not None and getattr(cache, "layers", None) is not None:
            while len(cache.layers) < max(slot_of) + 1:  # one slot per application (generate() sizes by layers)
                cache.layers.append(DynamicLayer())
        return _Ctx(cos, sin, mask, cache, slot_of, share_from)

    def _logits_and_loss(self, h: torch.Tensor, labels: torch.LongTensor | None, logits_to_keep: int
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits of the last ``logits_to_keep`` positions (0: all) and, with ``labels``, the next-token loss."""
        h = self.norm(h)
        if logits_to_keep:
            h = h[:, -logits_to_keep:]
        logits = self.head(h)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
        return logits, loss

    def _adaptive(self, h: torch.Tensor, ctx: _Ctx, plan, rule: tuple[str, float]) -> torch.Tensor:
        """The stack with per-token exits (the same computation as ``rins.adaptive.run_adaptive_stack``)."""
        kind, thr = rule
        R = plan.r
        idx = [i for i, rd in enumerate(plan.rounds) if rd >= 0]
        start, L = idx[0], len(idx) // R
        blocks, ads, mode = self.stack.blocks, self.stack.adapters, self.c.get("adapters", "none")
        B, T = h.shape[:2]
        for i in range(start):
            h = blocks[plan.layers[i]](h, ctx, i)
        exited = torch.zeros(B, T, dtype=torch.bool, device=h.device)
        rounds = torch.zeros(B, T, dtype=torch.long, device=h.device)
        last: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        st = {"any": False}

        def fill(app: int, k: torch.Tensor, v: torch.Tensor):
            rd = plan.rounds[app]
            if rd < 0:
                return k, v
            j = (app - start) % L
            if rd > 0 and st["any"]:
                m = exited[:, None, :, None]
                k, v = torch.where(m, last[j][0], k), torch.where(m, last[j][1], v)
            last[j] = (k, v)
            return k, v

        def read(x: torch.Tensor) -> torch.Tensor:
            return F.log_softmax(self.head(self.norm(x)).float(), -1)

        ctx.kv_fill = fill
        prev, logp_prev = h, (read(h) if kind == "kl" else None)
        for k in range(R):
            if k > 0 and bool(exited.all()):
                if ctx.cache is not None:  # every token has exited: fill the remaining rounds' slots, compute nothing
                    for kk in range(k, R):
                        for j in range(L):
                            i = start + kk * L + j
                            if i not in ctx.share_from:
                                ctx.cache.update(last[j][0], last[j][1], ctx.slot_of[i])
                break
            active = ~exited
            for j in range(L):
                i = start + k * L + j
                new = blocks[plan.layers[i]](h, ctx, i)
                if j == L - 1 and len(ads) and mode == "round":
                    new = ads[min(k, len(ads) - 1)](new)
                h = torch.where(active[..., None], new, h) if st["any"] else new
            rounds += active.long()
            if k == R - 1:
                break
            if kind == "hidden":
                fire = (h - prev).float().norm(dim=-1) / h.float().norm(dim=-1).clamp_min(1e-30) < thr
            else:
                logp = read(h)
                if kind == "kl":
                    fire = (logp.exp() * (logp - logp_prev)).sum(-1) < thr
                    logp_prev = logp
                else:
                    fire = logp.max(-1).values.exp() >= thr
            prev = h
            exited = exited | (active & fire)
            st["any"] = bool(exited.any())
        ctx.kv_fill = None
        for i in range(start + R * L, len(plan.layers)):
            h = blocks[plan.layers[i]](h, ctx, i)
        if len(ads) and mode == "depth":
            outs = torch.stack([a(h) for a in ads])
            sel = (rounds.clamp(max=len(ads)) - 1)[None, ..., None].expand(1, *h.shape)
            h = outs.gather(0, sel)[0]
        self.last_rounds = rounds
        return h

    def generate(self, *args, rins_r: int | None = None, rins_exit: str | None = None, **kwargs):
        """``GenerationMixin.generate`` with an optional recursion depth ``rins_r`` and exit rule ``rins_exit``
        for this call."""
        prev, prev_exit = self._call_r, self._call_exit
        self._call_r = self._depth(rins_r) if rins_r is not None else prev
        if rins_exit is not None:
            _parse_exit(rins_exit)
            self._call_exit = rins_exit
        try:
            return super().generate(*args, **kwargs)
        finally:
            self._call_r, self._call_exit = prev, prev_exit
