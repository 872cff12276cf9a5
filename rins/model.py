"""The recursive transformer: blocks, the plan executor (recursion, stochastic depth, adapters), and
the decoder-only language model with its FLOPs counted per executed layer (matmuls only, :mod:`rins.flops`)
and a KV cache per application.

Everything about *which* layer runs *when* comes from :mod:`rins.plan`; this file only applies modules.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .arguments import bad_argument, check_int, check_number
from .fields import ConfigError, coerce_fields
from .flops import flops_for
from .losses import compute_dtype, linear_cross_entropy
from .plan import Plan, SignatureError, compile_plan, resolve_signature
from .resources import check_fits, min_weight_bytes

__all__ = [
    "LMConfig",
    "RecursiveLM",
    "RecursiveStack",
    "StackConfig",
    "StackedModelMixin",
    "Block",
    "ForwardContext",
    "KVCache",
    "init_weights",
    "sample_depth",
]


# ----------------------------------------------------------------------------------------------
# Configs


@dataclass
class StackConfig:
    """How a stack of layers is executed: the plan, stochastic depth and adapters (shared by all models).

    Attributes:
        signature: block signature or preset (``"AB"``, ``"A^2B"``, ``"rins(3)"``, ``"(AB)^2"`` ...).
        degree: nesting degree of the signature.
        block_sizes: explicit layer counts per block (default: equal).
        p_skip: stochastic RINS, probability that each extra round is skipped in training (0 = plain).
        per_sequence_depth: draw r per sequence instead of per step (rounds run to the batch max; finished
            sequences are frozen).
        adapters: ``"none"`` | ``"round"`` (after round k: h += W_k RMSNorm(h)) | ``"depth"`` (one adapter
            per inference depth r, applied at the top of the stack).
        adapter_rank: None = full d×d adapters, else rank-k (down random, up zero).
        kv_share: later applications of a layer reuse the K/V of its first application (saves KV memory).
        input_injection: ``"add"`` re-injects the recursed group's input ``e`` at the start of every later
            round (``h ← h + e``), in the spirit of Geiping et al.'s prelude/core/coda models (they
            concatenate and project; the additive form adds no parameters).
        depth_seed: seed of the depth sampler; the draw at step s depends only on (depth_seed, s).
        activation_checkpointing: recompute each block application in backward (saves memory).
    """

    signature: str = "AB"
    degree: int = 1
    block_sizes: tuple[int, ...] | None = None
    p_skip: float = 0.0
    per_sequence_depth: bool = False
    adapters: str = "none"
    adapter_rank: int | None = None
    kv_share: bool = False
    depth_seed: int = 0
    activation_checkpointing: bool = False
    input_injection: str = "none"  # "none" | "add": each round k >= 1 of the recursed group starts from h + e

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (saved into checkpoints and run configs)."""
        d = asdict(self)
        d["block_sizes"] = list(self.block_sizes) if self.block_sizes else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """Build from :meth:`to_dict` output; unknown keys are an error that lists the known ones."""
        return from_checked_dict(cls, d)

    def __post_init__(self) -> None:
        if isinstance(self.block_sizes, list):  # JSON/TOML give lists; the plan cache needs a hashable tuple
            self.block_sizes = tuple(self.block_sizes)
        try:
            self.validate()
        except ConfigError:
            raise
        except (ValueError, TypeError, OverflowError) as e:  # one documented error type (rins.arguments)
            raise ConfigError(f"{type(self).__name__}: {e}") from None

    def validate(self) -> None:
        """Raise ``ValueError`` for a stack field that is invalid whatever the layer count."""
        if isinstance(self.p_skip, bool) or not isinstance(self.p_skip, int | float) or not 0.0 <= self.p_skip <= 1.0:
            raise ValueError(f"p_skip must be in [0, 1], got {self.p_skip}")
        if self.adapters not in ("none", "round", "depth"):
            raise ValueError(f"adapters must be 'none', 'round' or 'depth', got {self.adapters!r}")
        if self.input_injection not in ("none", "add"):
            raise ValueError(f"input_injection must be 'none' or 'add', got {self.input_injection!r}")
        for name in ("per_sequence_depth", "kv_share", "activation_checkpointing"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} must be true or false")
        if isinstance(self.degree, bool) or not isinstance(self.degree, int) or self.degree < 1:
            raise ValueError(f"degree={self.degree!r} must be an integer >= 1")
        if self.adapter_rank is not None and (isinstance(self.adapter_rank, bool)
                                              or not isinstance(self.adapter_rank, int) or self.adapter_rank < 1):
            raise ValueError(f"adapter_rank must be None (full) or an integer >= 1, got {self.adapter_rank!r}")
        seed = self.depth_seed
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise ValueError(f"depth_seed={self.depth_seed!r} must be an integer in [0, 2^63)")
        if not isinstance(self.signature, str):
            raise ValueError(f"signature={self.signature!r} must be a string such as 'A^2B'")

    def validate_stack(self, n_layers: int) -> None:
        """The stack fields, and that the signature compiles over ``n_layers`` layers (raises
        ``ValueError`` / :class:`~rins.plan.SignatureError` with the fix)."""
        StackConfig.validate(self)  # not self.validate(): a subclass's validate() calls this method
        plan = self.compile(n_layers)
        if plan.r is None and (self.p_skip > 0 or self.adapters != "none"):
            raise SignatureError(
                f"signature {self.signature!r} has no recursion exponent; stochastic depth (p_skip) and "
                "adapters need one, e.g. 'A^2B'"
            )

    def compile(self, n_layers: int, r: int | None = None) -> Plan:
        """The execution plan of this stack over ``n_layers`` layers at depth ``r`` (None: trained).

        Compiled once per config object and arguments: validating the config, sizing the model and building the
        stack all ask for the same plan. The memo is keyed by the fields the plan depends on, so a config changed
        after construction compiles its new plan."""
        key = (self.signature, n_layers, self.degree, self.block_sizes, r)
        memo = self.__dict__.setdefault("_plans", {})
        if key not in memo:
            memo[key] = compile_plan(self.signature, n_layers, self.degree, self.block_sizes, r)
        return memo[key]


def from_checked_dict(cls, d: dict[str, Any]):
    """``cls(**d)`` for a dataclass, with a clear error naming unknown keys; values are parsed by their
    declared types (:func:`rins.fields.coerce_value`: only lossless conversions; ``"8"``, NaN and 4.5 for an
    integer are refused)."""
    if not isinstance(d, dict):
        raise ValueError(f"{cls.__name__} must be given as a table/dict, got {type(d).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; known: {sorted(known)}")
    return cls(**coerce_fields(cls, d))


@dataclass
class LMConfig(StackConfig):
    """A decoder-only LM (defaults: Llama-style pre-norm RMSNorm, RoPE, SwiGLU, SDPA, tied embeddings).

    The architecture switches (``norm``, ``mlp``, ``pos_embedding``, biases) exist so that GPT-2 and
    Qwen2-style checkpoints convert exactly; the defaults are the modern choices.
    """

    vocab_size: int = 8192  # embedding rows (default in training: the tokenizer's size)
    n_layers: int = 6  # distinct transformer layers (the signature's blocks share them out)
    d_model: int = 256  # hidden width
    n_heads: int = 4  # attention heads (d_model must divide by it)
    n_kv_heads: int | None = None  # grouped-query K/V heads (default: n_heads)
    d_ff: int | None = None  # default: SwiGLU 8/3·d rounded up to 64; GELU 4·d
    max_seq_len: int = 256  # longest context (default in training: data.seq_len)
    tie_embeddings: bool = True  # the LM head shares the input embedding matrix
    rope_theta: float = 10000.0  # RoPE base frequency
    norm: str = "rmsnorm"  # "rmsnorm" | "layernorm"
    norm_eps: float = 1e-6  # epsilon of the norms
    mlp: str = "swiglu"  # "swiglu" | "gelu"
    pos_embedding: str = "rope"  # "rope" | "learned"
    qkv_bias: bool = False  # bias on the Q/K/V projections (Qwen2-style)
    proj_bias: bool = False  # bias on the attention output and MLP projections
    init_std: float = 0.02  # standard deviation of the initial weights
    # "sdpa": F.scaled_dot_product_attention (flash kernels); "eager": matmul + softmax + matmul;
    # "auto": eager for bf16 forwards on CPU without a KV cache, up to 1024 keys (measured faster than the
    # CPU flash kernel, eager and compiled, see BENCHMARKS.md), SDPA everywhere else
    attn_impl: str = "auto"

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def ff_dim(self) -> int:
        if self.d_ff:
            return self.d_ff
        if self.mlp == "swiglu":
            return 64 * math.ceil(8 * self.d_model / 3 / 64)
        return 4 * self.d_model

    def validate(self) -> None:
        """Raise ``ValueError`` with the fix for any inconsistent field."""
        for name in ("n_layers", "d_model", "n_heads", "vocab_size", "max_seq_len", "n_kv_heads", "d_ff"):
            val = getattr(self, name)
            optional = name in ("n_kv_heads", "d_ff")
            if (val is None and not optional) or (val is not None and (isinstance(val, bool) or not isinstance(val, int)
                                                                       or val < 1)):
                raise ValueError(f"{name}={val!r} must be an integer >= 1")
        for name in ("rope_theta", "norm_eps", "init_std"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int | float) or not math.isfinite(val) or val <= 0:
                raise ValueError(f"{name}={val!r} must be a finite number > 0")
        if self.norm_eps > 1:  # an epsilon that outweighs the activations erases them
            raise ValueError(f"norm_eps={self.norm_eps!r} must be in (0, 1] (usual: 1e-6 to 1e-5)")
        for name in ("tie_embeddings", "qkv_bias", "proj_bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} must be true or false")
        if self.max_seq_len > MAX_SEQ_LEN:
            raise ValueError(f"max_seq_len={self.max_seq_len} exceeds the maximum {MAX_SEQ_LEN}")
        self.validate_stack(self.n_layers)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.head_dim % 2 and self.pos_embedding == "rope":
            raise ValueError(f"RoPE needs an even head_dim, got {self.head_dim}")
        if self.n_heads % self.kv_heads:
            raise ValueError(f"n_heads={self.n_heads} must be a multiple of n_kv_heads={self.kv_heads}")
        for name, val, ok in (("norm", self.norm, ("rmsnorm", "layernorm")), ("mlp", self.mlp, ("swiglu", "gelu")),
                              ("pos_embedding", self.pos_embedding, ("rope", "learned")),
                              ("attn_impl", self.attn_impl, ("auto", "sdpa", "eager"))):
            if val not in ok:
                raise ValueError(f"{name}={val!r} is not one of {ok}")
        if self.vocab_size < 2 or self.max_seq_len < 1:
            raise ValueError("vocab_size must be >= 2 and max_seq_len >= 1")


MAX_SEQ_LEN = 1 << 20  # positions (a RoPE table and a KV cache grow with it)


# ----------------------------------------------------------------------------------------------
# Depth sampling (stochastic RINS)


def sample_depth(r_max: int, p_skip: float, seed: int, step: int, n: int | None = None) -> int | list[int]:
    """Draw ``r = 1 + Binomial(r_max - 1, 1 - p_skip)`` from a generator seeded by ``(seed, step)``.

    Identical across processes, ranks and resumes. ``n`` draws one r per sequence instead.
    """
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(step)])
    draws = 1 + rng.binomial(r_max - 1, 1.0 - p_skip, size=1 if n is None else n)
    return int(draws[0]) if n is None else [int(x) for x in draws]


def depth_distribution(r_max: int, p_skip: float, batch: int | None = None) -> dict[int, float]:
    """P(r) of the training depth (of the batch max when per-sequence draws with ``batch`` sequences)."""
    from scipy.stats import binom

    ks = np.arange(r_max)
    if batch is None:
        pmf = binom.pmf(ks, r_max - 1, 1 - p_skip)
    else:
        cdf = binom.cdf(ks, r_max - 1, 1 - p_skip) ** batch
        pmf = np.diff(np.concatenate([[0.0], cdf]))
    return {int(k) + 1: float(p) for k, p in zip(ks, pmf) if p > 0}


# ----------------------------------------------------------------------------------------------
# Layers


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def make_norm(kind: str, d: int, eps: float) -> nn.Module:
    return RMSNorm(d, eps) if kind == "rmsnorm" else nn.LayerNorm(d, eps=eps)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope_tables(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype):
    """cos/sin of shape (B, 1, T, head_dim) for integer ``positions`` (B, T) — HF "rotate_half" layout."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim))
    ang = positions.float()[..., None] * inv
    emb = torch.cat((ang, ang), dim=-1)[:, None]
    return emb.cos().to(dtype), emb.sin().to(dtype)


class KVCache:
    """Pre-allocated K/V buffers, **one slot per layer application** of the plan (never per module).

    With ``kv_share`` the plan's repeated applications point at their layer's first slot, so only
    distinct layers hold memory.
    """

    def __init__(self, plan: Plan, batch: int, max_len: int, n_kv_heads: int, head_dim: int,
                 device, dtype, share: bool = False) -> None:
        self.slot_of = plan.first_application() if share else tuple(range(plan.n_applications))
        slots = sorted(set(self.slot_of))
        shape = (batch, n_kv_heads, max_len, head_dim)
        self.k = {s: torch.zeros(shape, device=device, dtype=dtype) for s in slots}
        self.v = {s: torch.zeros(shape, device=device, dtype=dtype) for s in slots}
        self.share = share
        self.length = 0  # tokens already stored
        self.max_len = max_len

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.k.values(), *self.v.values()))

    def reserve(self, n: int, limit: int | None = None) -> None:
        """Grow every slot to hold at least ``n`` positions (doubling, at most ``limit``), keeping its contents."""
        if n <= self.max_len:
            return
        new = max(n, min(2 * self.max_len, limit or n))
        for buf in (self.k, self.v):
            for s, t in buf.items():
                g = t.new_zeros(*t.shape[:2], new, t.shape[3])
                g[:, :, : self.length] = t[:, :, : self.length]
                buf[s] = g
        self.max_len = new


EAGER_ATTN_MAX_LEN = 1024  # "auto" attention: the eager path up to this many keys (its scores are T×S)


def eager_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                    causal: bool) -> torch.Tensor:
    """``softmax(q kᵀ/√d + mask) v``, like ``F.scaled_dot_product_attention``.

    The softmax runs in the inputs' dtype: the CPU and CUDA kernels accumulate in float32 (bf16 probabilities
    are what the second matmul would get anyway), which avoids two (T, S) casts and a float32 backward.
    ``mask`` is boolean (True = attend), broadcastable to (B, H, T, S); ``causal`` applies when ``mask`` is
    None (queries are the last T of the S positions). K/V with fewer heads (GQA) are repeated.
    """
    rep = q.shape[1] // k.shape[1]
    if rep > 1:
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    s = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)  # scaling q is cheaper than scaling (T, S) scores
    if mask is None and causal:
        T, S = q.shape[-2], k.shape[-2]
        mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, -1) @ v


class Attention(nn.Module):
    def __init__(self, cfg: LMConfig, causal: bool = True) -> None:
        super().__init__()
        self.n_heads, self.n_kv, self.hd = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        self.impl = cfg.attn_impl
        d = cfg.d_model
        self.q = nn.Linear(d, self.n_heads * self.hd, bias=cfg.qkv_bias)
        self.k = nn.Linear(d, self.n_kv * self.hd, bias=cfg.qkv_bias)
        self.v = nn.Linear(d, self.n_kv * self.hd, bias=cfg.qkv_bias)
        self.o = nn.Linear(self.n_heads * self.hd, d, bias=cfg.proj_bias)
        self.causal = causal

    def forward(self, x: torch.Tensor, ctx: ForwardContext, app: int) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.n_heads, self.hd).transpose(1, 2)
        shared = ctx.share_from.get(app)
        if shared is not None and shared in ctx.kv:
            k, v = ctx.kv[shared]  # already rotated and (if cached) including the past
        else:
            k = self.k(x).view(B, T, self.n_kv, self.hd).transpose(1, 2)
            v = self.v(x).view(B, T, self.n_kv, self.hd).transpose(1, 2)
            if ctx.cos is not None:
                k = k * ctx.cos + rotate_half(k) * ctx.sin
            if ctx.kv_fill is not None:
                k, v = ctx.kv_fill(app, k, v)
            if ctx.cache is not None:
                slot = ctx.cache.slot_of[app]
                p0 = ctx.cache.length
                ctx.cache.k[slot][:, :, p0:p0 + T] = k
                ctx.cache.v[slot][:, :, p0:p0 + T] = v
                k = ctx.cache.k[slot][:, :, : p0 + T]
                v = ctx.cache.v[slot][:, :, : p0 + T]
            if ctx.share_from:
                ctx.kv[app] = (k, v)
        if ctx.cos is not None:
            q = q * ctx.cos + rotate_half(q) * ctx.sin
        rep = self.n_heads // self.n_kv
        causal = self.causal and ctx.mask is None and T > 1
        if self.impl == "eager" or (self.impl == "auto" and ctx.cache is None and q.device.type == "cpu"
                                    and q.dtype != torch.float32 and k.shape[-2] <= EAGER_ATTN_MAX_LEN):
            y = eager_attention(q, k, v, ctx.mask, causal)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=ctx.mask, is_causal=causal, enable_gqa=rep > 1)
        return self.o(y.transpose(1, 2).reshape(B, T, self.n_heads * self.hd))

    def flops_per_token(self, seq_len: int, kv: bool = True) -> int:
        """Forward FLOPs per query token: Q/O (and K/V unless ``kv`` is False: reused under ``kv_share``)
        projections and QKᵀ + AV over ``seq_len`` keys (a causal mask is not discounted)."""
        d = self.q.in_features
        qo = 2 * 2 * d * self.n_heads * self.hd
        attn_seq = 2 * 2 * seq_len * self.n_heads * self.hd
        return qo + attn_seq + (2 * 2 * d * self.n_kv * self.hd if kv else 0)


class MLP(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        d, f, b = cfg.d_model, cfg.ff_dim, cfg.proj_bias
        self.kind = cfg.mlp
        if self.kind == "swiglu":
            self.gate = nn.Linear(d, f, bias=b)
        self.up = nn.Linear(d, f, bias=b)
        self.down = nn.Linear(f, d, bias=b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "swiglu":
            return self.down(F.silu(self.gate(x)) * self.up(x))
        return self.down(F.gelu(self.up(x), approximate="tanh"))

    def flops_per_token(self) -> int:
        """Forward FLOPs per token: two (GELU) or three (SwiGLU) d×f matmuls."""
        return (3 if self.kind == "swiglu" else 2) * 2 * self.up.in_features * self.up.out_features


class Block(nn.Module):
    """Pre-norm transformer block: ``h + attn(norm(h))`` then ``h + mlp(norm(h))``."""

    def __init__(self, cfg: LMConfig, causal: bool = True) -> None:
        super().__init__()
        self.norm1 = make_norm(cfg.norm, cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg, causal)
        self.norm2 = make_norm(cfg.norm, cfg.d_model, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, h: torch.Tensor, ctx: ForwardContext, app: int) -> torch.Tensor:
        h = h + self.attn(self.norm1(h), ctx, app)
        return h + self.mlp(self.norm2(h))

    def flops_per_token(self, seq_len: int, kv: bool = True) -> int:
        """Forward FLOPs per token of one application (norms and residual adds are not counted)."""
        return self.attn.flops_per_token(seq_len, kv) + self.mlp.flops_per_token()


@dataclass
class ForwardContext:
    """Per-forward state handed to every block application: RoPE tables, the attention mask, the KV cache and
    the K/V shared between applications (``kv_share``)."""

    cos: torch.Tensor | None = None
    sin: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    cache: KVCache | None = None
    share_from: dict[int, int] = field(default_factory=dict)  # application -> application whose K/V it reuses
    kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    # adaptive depth (rins.adaptive): (application, k, v) -> the K/V to use and cache, with the exited tokens'
    # K/V taken from the last round they computed
    kv_fill: Callable[[int, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None


class Adapter(nn.Module):
    """``h ← h + W · RMSNorm(h)``, zero-initialised so that a fresh adapter is the identity."""

    def __init__(self, d: int, rank: int | None, eps: float) -> None:
        super().__init__()
        self.norm = RMSNorm(d, eps)
        if rank is None:
            self.down = None
            self.up = nn.Linear(d, d, bias=False)
        else:
            self.down = nn.Linear(d, rank, bias=False)
            self.up = nn.Linear(rank, d, bias=False)
        nn.init.zeros_(self.up.weight)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = self.norm(h)
        if self.down is not None:
            z = self.down(z)
        return h + self.up(z)

    def flops_per_token(self) -> int:
        """Forward FLOPs per token of its one (d×d) or two (rank-k) matmuls."""
        return sum(2 * m.in_features * m.out_features for m in (self.down, self.up) if m is not None)


# ----------------------------------------------------------------------------------------------
# The plan executor


class RecursiveStack(nn.Module):
    """Applies ``blocks`` in the order of the compiled plan: recursion, stochastic depth, adapters.

    This is the one recursion mechanism of the library: the LM, the ViT and the text tower all wrap it.
    ``blocks`` must accept ``(h, ctx, app)``; ``d_model`` sizes the adapters.
    """

    def __init__(self, config: StackConfig, blocks: nn.ModuleList, d_model: int, norm_eps: float = 1e-6) -> None:
        super().__init__()
        config.validate_stack(len(blocks))
        self.config = config
        self.blocks = blocks
        self.base_plan = config.compile(len(blocks))
        self.r_max = self.base_plan.r  # trained exponent (None: no recursion)
        n_ad = self.r_max if (config.adapters != "none" and self.r_max) else 0
        self.adapters = nn.ModuleList(Adapter(d_model, config.adapter_rank, norm_eps) for _ in range(n_ad))
        self._auto_step = 0

    @property
    def signature(self) -> str:
        return resolve_signature(self.config.signature)

    def plan(self, r: int | None = None) -> Plan:
        """The compiled plan at inference depth ``r`` (None: the trained exponent)."""
        if r is not None and self.r_max is None:
            raise SignatureError(
                f"signature {self.signature!r} has no recursion exponent, so r={r} cannot be chosen"
            )
        if r is not None:
            check_int("RecursiveLM", "r", r, 1)
        return self.config.compile(len(self.blocks), r)

    def draw_depth(self, step: int | None, batch: int) -> int | list[int]:
        """Training depth for this step (stochastic RINS); ``step=None`` uses an internal counter."""
        if step is None:
            step = self._auto_step
            self._auto_step += 1
        n = batch if self.config.per_sequence_depth else None
        return sample_depth(self.r_max, self.config.p_skip, self.config.depth_seed, step, n)

    def resolve_r(self, r: int | None, step: int | None, batch: int) -> tuple[int | None, list[int] | None]:
        """(rounds to run, per-sequence depths or None): ``r``, else the drawn depth in training mode."""
        if r is not None or self.r_max is None:
            return r, None
        return self.training_depth(step, batch) if self.training else (None, None)

    def training_depth(self, step: int | None, batch: int) -> tuple[int | None, list[int] | None]:
        """(rounds a training forward at ``step`` runs, per-sequence depths or None): the deepest draw under
        stochastic RINS, ``(None, None)`` (the trained exponent) when the depth is not drawn."""
        if not (self.r_max and self.config.p_skip > 0):
            return None, None
        d = self.draw_depth(step, batch)
        return (max(d), d) if isinstance(d, list) else (d, None)

    def share_map(self, plan: Plan) -> dict[int, int]:
        if not self.config.kv_share:
            return {}
        first = plan.first_application()
        return {i: f for i, f in enumerate(first) if f != i}

    def forward(self, h: torch.Tensor, ctx: ForwardContext, r: int | None = None, seq_depth: list[int] | None = None
                ) -> torch.Tensor:
        plan = self.plan(r)
        ctx.share_from = self.share_map(plan)
        adapters = self.adapters
        per_round = len(adapters) > 0 and self.config.adapters == "round"
        active = None
        ends = {a: k for k, a in enumerate(plan.round_ends)}
        if seq_depth is not None:
            depth_t = torch.tensor(seq_depth, device=h.device)
        inject = self.config.input_injection == "add"
        e = None
        for i, layer_idx in enumerate(plan.layers):
            round_idx = plan.rounds[i]
            if inject and round_idx >= 0 and (i == 0 or plan.rounds[i - 1] != round_idx):  # a round starts here
                if round_idx == 0:
                    e = h
                else:
                    h = h + e if seq_depth is None else torch.where((depth_t > round_idx).view(-1, 1, 1), h + e, h)
            if seq_depth is not None and round_idx >= 0:
                active = (depth_t > round_idx).view(-1, 1, 1)
            blk = self.blocks[layer_idx]
            # the application index only addresses KV slots (cache / kv_share); a constant otherwise keeps a
            # compiled block from specialising on it (one graph for every application and every r)
            app = i if (ctx.cache is not None or ctx.share_from) else 0
            if self.config.activation_checkpointing and self.training and ctx.cache is None:
                new = checkpoint(blk, h, ctx, app, use_reentrant=False)
            else:
                new = blk(h, ctx, app)
            if i in ends and per_round:
                new = adapters[min(ends[i], len(adapters) - 1)](new)
            h = new if active is None or round_idx < 0 else torch.where(active, new, h)
        if len(adapters) and self.config.adapters == "depth":
            if seq_depth is not None:
                outs = torch.stack([a(h) for a in adapters])  # (n_ad, B, T, d)
                idx = (depth_t.clamp(max=len(adapters)) - 1).view(1, -1, 1, 1).expand(1, *h.shape)
                h = outs.gather(0, idx)[0]
            else:
                h = adapters[min(plan.r, len(adapters)) - 1](h)
        return h

    def adapter_parameters(self) -> int:
        return sum(p.numel() for p in self.adapters.parameters())

    def adapter_applications(self, r: int | None) -> int:
        """How many adapter applications a forward at depth ``r`` runs."""
        if not len(self.adapters):
            return 0
        return len(self.plan(r).round_ends) if self.config.adapters == "round" else 1

    # -- accounting shared by every model built on a stack ----------------------------------------
    def flops_per_token(self, seq_len: int, r: int | None = None) -> float:
        """Forward FLOPs per token of the stack at depth ``r``, counted per **executed** layer application.

        Each application counts its block's :meth:`Block.flops_per_token` over ``seq_len`` keys (K/V
        projections only for applications that do not reuse another's under ``kv_share``), plus the
        adapters that run. Embeddings, heads and pooling belong to the model wrapping the stack.
        """
        plan = self.plan(r)
        shared = self.share_map(plan)
        total = sum(self.blocks[layer_idx].flops_per_token(seq_len, kv=i not in shared)
                    for i, layer_idx in enumerate(plan.layers))
        if len(self.adapters):
            total += self.adapter_applications(r) * self.adapters[0].flops_per_token()
        return float(total)

    def depth_average(self, fn: Callable[[int | None], float], r: int | None = None, expected: bool = False,
                      batch_size: int | None = None) -> float:
        """``fn(r)``, or with ``expected`` at the training depth (``r=None``) of a stochastic stack, its mean
        over the drawn depth: of the batch maximum for per-sequence draws of ``batch_size`` sequences
        (None: one sequence)."""
        if expected and r is None and self.r_max and self.config.p_skip > 0:
            batch = batch_size if self.config.per_sequence_depth else None
            return sum(p * fn(k) for k, p in depth_distribution(self.r_max, self.config.p_skip, batch).items())
        return fn(r)


def init_weights(module: nn.Module, std: float, n_layers: int) -> None:
    """The initialisation of every model built on a stack: Normal(0, std) linears and embeddings, zero
    biases, the residual outputs (attention ``o``, MLP ``down``) at std/√(2·n_layers) (GPT-2), zero adapter
    outputs (a fresh adapter is the identity)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, std)
    for name, p in module.named_parameters():
        if name.endswith("attn.o.weight") or name.endswith("mlp.down.weight"):
            nn.init.normal_(p, 0.0, std / math.sqrt(2 * n_layers))
    for m in module.modules():
        if isinstance(m, Adapter):
            nn.init.zeros_(m.up.weight)


class StackedModelMixin:
    """Mixin of an ``nn.Module`` built on one or more :class:`RecursiveStack`: optimiser groups and
    parameter counts, the same for the LM, SigLIP and the ViT classifier."""

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: decay matrices (and embeddings), not norms, biases, gains or scalars (tied
        parameters appear once)."""
        decay, no_decay, seen = [], [], set()
        for p in self.parameters():  # type: ignore[attr-defined]
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            (decay if p.dim() >= 2 else no_decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def adapter_parameters(self) -> int:
        """Parameters held by the adapters of all stacks."""
        return sum(m.adapter_parameters() for m in self.modules()  # type: ignore[attr-defined]
                   if isinstance(m, RecursiveStack))

    def num_parameters(self, exclude_adapters: bool = False) -> int:
        """All parameters (tied ones once; optionally without the adapters)."""
        n = sum(p.numel() for p in self.parameters())  # type: ignore[attr-defined]
        return n - self.adapter_parameters() if exclude_adapters else n

    def adapter_fraction(self) -> float:
        """Share of all parameters held by the adapters."""
        return self.adapter_parameters() / self.num_parameters()


# ----------------------------------------------------------------------------------------------
# The language model


class RecursiveLM(StackedModelMixin, nn.Module):
    """Decoder-only transformer whose layers run in the order of a signature's plan.

    ``model(tokens, r=None)`` returns logits ``(B, T, V)``; ``r`` overrides the recursion exponent (any
    r >= 1). In training mode with ``p_skip > 0`` and ``r=None``, the depth is drawn per step from a
    generator seeded by ``(depth_seed, step)``.
    """

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        if not isinstance(config, LMConfig):
            raise bad_argument("RecursiveLM", "config", config, "must be an LMConfig (rins.LMConfig(...))")
        config.validate()
        if str(torch.get_default_device()) != "meta":  # refuse in words, not inside the allocator
            check_fits(min_weight_bytes(config), "RecursiveLM", f"{config.n_layers} layers of width {config.d_model}, "
                       f"vocabulary {config.vocab_size}: fp32 weights", "cpu", "reduce d_model, n_layers or vocab_size")
        self.config = cfg = config
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_seq_len, cfg.d_model) if cfg.pos_embedding == "learned" else None
        self.stack = RecursiveStack(cfg, nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers)),
                                    cfg.d_model, cfg.norm_eps)
        self.norm = make_norm(cfg.norm, cfg.d_model, cfg.norm_eps)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        init_weights(self, cfg.init_std, cfg.n_layers)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight

    # -- conveniences ---------------------------------------------------------------------------
    @property
    def blocks(self) -> nn.ModuleList:
        return self.stack.blocks

    @property
    def r_max(self) -> int | None:
        """The trained recursion exponent (None when the signature has none)."""
        return self.stack.r_max

    def plan(self, r: int | None = None) -> Plan:
        return self.stack.plan(r)

    # -- forward --------------------------------------------------------------------------------
    def _context(self, B: int, T: int, device, dtype, attention_mask, position_ids, cache: KVCache | None
                 ) -> tuple[ForwardContext, torch.Tensor]:
        past = cache.length if cache is not None else 0
        mask = None
        if attention_mask is not None:
            am = attention_mask.to(torch.bool)
            if am.shape[1] != past + T:
                raise ValueError(f"attention_mask has length {am.shape[1]}, expected past+new = {past + T}")
            if position_ids is None:
                position_ids = (am.long().cumsum(-1) - 1).clamp(min=0)[:, past:]
            causal = torch.ones(T, past + T, dtype=torch.bool, device=device).tril(past)
            mask = causal[None] & am[:, None, :]
            # a padded query row would attend to nothing (NaN): let it see itself; its output is unused
            diag = torch.arange(T, device=device)[:, None] + past == torch.arange(past + T, device=device)[None]
            mask = mask | diag[None]
            mask = mask[:, None]
        elif past > 0 and T > 1:
            mask = torch.ones(T, past + T, dtype=torch.bool, device=device).tril(past)[None, None]
        if position_ids is None:
            # one row shared by the batch: (1, 1, T, hd) RoPE tables broadcast over batch and heads instead
            # of B identical (B, 1, T, hd) copies
            position_ids = torch.arange(past, past + T, device=device)[None]
        if self.pos is not None and int(position_ids.max()) >= self.config.max_seq_len:  # RoPE: no limit (nor a sync)
            raise ValueError(f"position {int(position_ids.max())} >= max_seq_len={self.config.max_seq_len}")
        ctx = ForwardContext(mask=mask, cache=cache)
        if self.config.pos_embedding == "rope":
            ctx.cos, ctx.sin = rope_tables(position_ids, self.config.head_dim, self.config.rope_theta, dtype)
        return ctx, position_ids

    def forward(
        self,
        tokens: torch.Tensor,
        r: int | None = None,
        *,
        step: int | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        return_hidden: bool = False,
        targets: torch.Tensor | None = None,
        reduction: str = "mean",
        exit_rule: Any = None,
        exit_stats: Any = None,
    ) -> torch.Tensor:
        """Logits ``(B, T, V)`` for ``tokens`` ``(B, T)``, or the cross-entropy if ``targets`` is given.

        Args:
            r: recursion depth (None: trained exponent, or a stochastic draw in training mode).
            step: training step that seeds the stochastic depth draw.
            attention_mask: (B, past+T) 1 for real tokens, 0 for padding (left padding supported).
            position_ids: (B, T) explicit positions (default: from the mask, or 0..T-1).
            cache: a :class:`KVCache` to read and extend (see :meth:`generate`).
            targets: (B, T) next-token ids (-100 ignored): return the ``reduction`` ("mean" | "sum")
                cross-entropy, computed by :func:`rins.losses.linear_cross_entropy` without the full
                logits (the training path: faster and far lighter than ``F.cross_entropy(logits)``).
            exit_rule: a :class:`rins.adaptive.ExitRule` (or its text, ``"kl=0.01"``): adaptive depth per
                token, at most ``r`` rounds (default the trained exponent); inference only.
            exit_stats: a :class:`rins.adaptive.ExitStats` that accumulates the rounds, head reads and FLOPs.
        """
        B, T = tokens.shape
        past = cache.length if cache is not None else 0
        if past + T > self.config.max_seq_len and self.pos is not None:
            raise ValueError(f"sequence length {past + T} exceeds max_seq_len={self.config.max_seq_len}")
        h = self.embed(tokens)
        # RoPE tables in the dtype q and k come out of their projections (bf16 under autocast): an fp32
        # table would promote the rotation, and its backward, to fp32 and add casts around it
        ctx, pos = self._context(B, T, tokens.device, compute_dtype(h), attention_mask, position_ids, cache)
        if self.pos is not None:
            h = h + self.pos(pos)
        if exit_rule is not None:
            from .adaptive import run_adaptive_stack, to_rule

            if self.training:
                raise ValueError("exit_rule is for inference; call model.eval() first")
            h = run_adaptive_stack(self, h, ctx, r, to_rule(exit_rule), exit_stats)
        else:
            rr, seq_depth = self.stack.resolve_r(r, step, B)
            h = self.stack(h, ctx, rr, seq_depth)
        if cache is not None:
            cache.length += T
        h = self.norm(h)
        if targets is not None:
            return linear_cross_entropy(h, self.head.weight, targets, reduction=reduction)
        return h if return_hidden else self.head(h)

    def loss(self, tokens: torch.Tensor, targets: torch.Tensor, r: int | None = None, step: int | None = None
             ) -> torch.Tensor:
        """Mean next-token cross-entropy (targets of -100 are ignored), by the fused head + loss."""
        return self(tokens, r, step=step, targets=targets)

    # -- FLOPs ----------------------------------------------------------------------------------
    def flops_per_token(self, seq_len: int | None = None, r: int | None = None, training: bool = False,
                        expected: bool = False, batch_size: int | None = None) -> float:
        """Model FLOPs per token, counted per **executed** layer application.

        Forward: attention projections, the attention sequence term (QKᵀ and AV over the full
        ``seq_len``, causal mask not discounted — as ``FlopCounterMode`` and Chinchilla count),
        MLP, adapters, LM head; the embedding is a lookup (0). Norms and elementwise ops are not
        counted (:mod:`rins.flops`). ``training=True``: :func:`rins.flops.training_flops` of the forward.
        ``expected=True`` averages over the stochastic depth distribution (of the batch max with per-sequence
        draws, given ``batch_size``).
        """
        c = self.config
        T = seq_len or c.max_seq_len

        def at_depth(k: int | None) -> float:
            return float(flops_for(self.stack.flops_per_token(T, k) + 2 * c.d_model * c.vocab_size, training))

        return self.stack.depth_average(at_depth, r, expected, batch_size)

    # -- generation -----------------------------------------------------------------------------
    def new_cache(self, batch: int, max_len: int, r: int | None = None, device=None, dtype=None) -> KVCache:
        """An empty KV cache for depth ``r``: one slot per layer application (or per layer with kv_share)."""
        p = next(self.parameters())
        return KVCache(self.plan(r), batch, max_len, self.config.kv_heads, self.config.head_dim,
                       device or p.device, dtype or p.dtype, self.config.kv_share)

    def kv_cache_bytes(self, batch: int, seq_len: int, r: int | None = None, dtype=torch.float32) -> int:
        """Bytes a KV cache for ``batch`` × ``seq_len`` at depth ``r`` holds (reports the kv_share saving)."""
        plan = self.plan(r)
        slots = plan.n_applications - len(self.stack.share_map(plan))
        el = torch.empty((), dtype=dtype).element_size()
        return 2 * slots * batch * self.config.kv_heads * seq_len * self.config.head_dim * el

    @torch.no_grad()
    def generate(
        self,
        tokens: torch.Tensor,
        max_new_tokens: int,
        r: int | None = None,
        temperature: float = 0.0,
        top_k: int | None = None,
        attention_mask: torch.Tensor | None = None,
        eos_token_id: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        top_p: float | None = None,
        repetition_penalty: float = 1.0,
        callback: Callable[[torch.Tensor], bool | None] | None = None,
        exit_rule: Any = None,
        exit_stats: Any = None,
        compile: bool = False,
    ) -> torch.Tensor:
        """Autoregressive sampling with a KV cache holding one slot per layer application.

        ``temperature=0`` is greedy. ``top_k`` keeps the k most likely tokens, ``top_p`` the smallest set whose
        probability reaches p (nucleus sampling; both after temperature). ``repetition_penalty`` > 1 divides
        positive logits (multiplies negative ones) of every token already in the row, as in CTRL / HF.
        ``callback`` is called with the ``(B,)`` new tokens after each step; returning True stops early (the
        result is then shorter). ``attention_mask`` allows batched, left-padded prompts. Returns the prompt
        followed by the new tokens, ``(B, T + max_new_tokens)`` (rows that hit ``eos_token_id`` are padded
        with it). ``exit_rule`` / ``exit_stats``: adaptive depth per token, as in :meth:`forward` (``r`` is then
        the most rounds; a token that exits skips the remaining rounds, its K/V there filled from its last round).
        ``compile``: decode each new token through ``torch.compile`` (the prompt runs eager; the cache is
        allocated for every position at once, so the compiled step sees buffers of one shape). The first call at
        a depth compiles (tens of seconds on a CPU), later calls reuse it: for many tokens, not for a few.
        Tokens equal the eager ones. Ignored with ``exit_rule`` or without ``use_cache``; on a CPU without a
        C++ compiler it warns and decodes eager.
        """
        _check_generate(tokens, max_new_tokens, r, temperature, top_k, top_p, repetition_penalty, eos_token_id,
                        compile)
        if exit_rule is not None:
            from .adaptive import to_rule

            exit_rule = to_rule(exit_rule)
        was_training = self.training
        self.eval()
        B, T = tokens.shape
        total = T + max_new_tokens
        if self.pos is not None and total > self.config.max_seq_len:
            raise ValueError(f"prompt + new tokens = {total} exceeds max_seq_len={self.config.max_seq_len}")
        am = attention_mask
        out = tokens
        done = torch.zeros(B, dtype=torch.bool, device=tokens.device)
        # the cache grows with the tokens actually produced: a huge max_new_tokens (or an early EOS) does not
        # preallocate memory for positions that are never reached
        step_fn = self._compiled_step() if compile and use_cache and exit_rule is None else None
        cache = self.new_cache(B, total if step_fn else min(total, T + 256), r) if use_cache else None
        nxt_in = tokens
        for _ in range(max_new_tokens):
            if step_fn is not None and cache.length > 0:
                logits = step_fn(nxt_in, r, attention_mask=am, cache=cache)[:, -1]
            elif use_cache:
                cache.reserve(cache.length + nxt_in.shape[1], total)
                logits = self(nxt_in, r, attention_mask=am, cache=cache, exit_rule=exit_rule,
                              exit_stats=exit_stats)[:, -1]
            else:
                logits = self(out, r, attention_mask=am, exit_rule=exit_rule, exit_stats=exit_stats)[:, -1]
            logits = _penalise_repeats(logits.float(), out, repetition_penalty)
            nxt = self._sample(logits, temperature, top_k, generator, top_p)
            if eos_token_id is not None:
                nxt = torch.where(done, torch.full_like(nxt, eos_token_id), nxt)
                done |= nxt == eos_token_id
            out = torch.cat([out, nxt[:, None]], dim=1)
            nxt_in = nxt[:, None]
            if am is not None:
                am = torch.cat([am, torch.ones_like(am[:, :1])], dim=1)
            if eos_token_id is not None and bool(done.all()):
                pad = torch.full((B, total - out.shape[1]), eos_token_id, dtype=out.dtype, device=out.device)
                out = torch.cat([out, pad], dim=1)
                break
            if callback is not None and callback(nxt):
                break
        self.train(was_training)
        return out

    def _compiled_step(self) -> Callable[..., torch.Tensor] | None:
        """``torch.compile`` of :meth:`forward` for the one-token decode steps, made once per model (dynamic
        shapes: one graph for every cache length; a new one per depth r). None, with a warning, on a CPU
        without a C++ compiler (inductor builds C++ kernels there)."""
        if self.__dict__.get("_decode_step") is None:
            from .hardware import cxx_compiler

            if next(self.parameters()).device.type == "cpu" and not cxx_compiler():
                import warnings

                warnings.warn("generate(compile=True) needs a C++ compiler on CPU (set $CXX or install g++/clang++); "
                              "none found, so it decodes uncompiled (same tokens, slower)", stacklevel=4)
                return None
            self.__dict__["_decode_step"] = torch.compile(self.forward, dynamic=True)
        return self.__dict__["_decode_step"]

    @staticmethod
    def _sample(logits: torch.Tensor, temperature: float, top_k: int | None, gen,
                top_p: float | None = None) -> torch.Tensor:
        if temperature <= 0:
            return logits.argmax(-1)
        logits = logits / temperature
        if top_k is not None:
            v, _ = torch.topk(logits, min(top_k, logits.shape[-1]))
            logits = logits.masked_fill(logits < v[:, -1:], float("-inf"))
        if top_p is not None and top_p < 1:
            # nucleus: drop the tokens after the smallest prefix (by probability) whose mass reaches top_p
            srt, idx = torch.sort(logits, dim=-1, descending=True)
            probs = F.softmax(srt, -1)
            drop = probs.cumsum(-1) - probs >= top_p  # the mass before a token already reaches top_p
            logits = logits.masked_fill(torch.zeros_like(drop).scatter(1, idx, drop), float("-inf"))
        return torch.multinomial(F.softmax(logits, -1), 1, generator=gen)[:, 0]


MIN_TEMPERATURE = 1e-4  # below it logits / temperature overflow float32 (inf, then NaN probabilities)


def _check_generate(tokens: Any, max_new_tokens: Any, r: Any, temperature: Any, top_k: Any, top_p: Any,
                    repetition_penalty: Any, eos_token_id: Any, compile: Any) -> None:
    """:meth:`RecursiveLM.generate`'s arguments by type and range, before any token is produced."""
    check_sampling(max_new_tokens, top_p, repetition_penalty, temperature, top_k)
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.dtype not in (torch.long, torch.int):
        raise bad_argument("generate", "tokens", tokens, "must be a (batch, length) integer tensor of token ids")
    if eos_token_id is not None:
        check_int("generate", "eos_token_id", eos_token_id, 0, 2**63 - 1)
    if r is not None:
        check_int("generate", "r", r, 1)
    if not isinstance(compile, bool):
        raise bad_argument("generate", "compile", compile, "must be True or False")


def check_sampling(max_new_tokens: int, top_p: float | None, repetition_penalty: float, temperature: float = 0.0,
                    top_k: int | None = None, where: str = "generate") -> None:
    """The sampling arguments by type and range (:class:`~rins.fields.ConfigError` naming the argument), before
    any token is produced."""
    if top_p is not None:
        check_number(where, "top_p", top_p, 0, 1, lo_open=True)
    check_number(where, "repetition_penalty", repetition_penalty, 0, lo_open=True)
    check_int(where, "max_new_tokens", max_new_tokens, 0)
    t = check_number(where, "temperature", temperature, 0)
    if 0 < t < MIN_TEMPERATURE:
        raise bad_argument(where, "temperature", temperature, f"must be 0 (greedy) or >= {MIN_TEMPERATURE} (smaller "
                           "ones overflow the logits)")
    if top_k is not None:
        check_int(where, "top_k", top_k, 1)


def _penalise_repeats(logits: torch.Tensor, tokens: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's repetition penalty: the logits of every token already in a row divided (if positive) or
    multiplied (if negative) by ``penalty``."""
    if penalty == 1.0:
        return logits
    seen = torch.gather(logits, 1, tokens)
    seen = torch.where(seen > 0, seen / penalty, seen * penalty)
    return logits.scatter(1, tokens, seen)
