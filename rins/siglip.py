"""SigLIP with recursive towers: a ViT image encoder, a transformer text encoder, the sigmoid (or softmax)
contrastive loss, a ViT classifier control, and FLOPs counted per executed layer (matmuls only,
:mod:`rins.flops`).

Both towers and the classifier wrap :class:`rins.model.RecursiveStack` around non-causal
:class:`rins.model.Block` layers, so RINS (``A^rB``), stochastic depth and adapters are per-tower options
of :class:`ViTConfig` / :class:`TextTowerConfig` (they subclass :class:`rins.model.StackConfig`).

Choices (all configurable, documented here once):

* image tower: patch embedding by a stride-``patch_size`` Conv2d, learned position embeddings, pre-norm
  blocks (LayerNorm + GELU MLP by default, as ViT/SigLIP), a final norm, pooling ``"map"`` (multihead
  attention pooling with one learned probe followed by a residual MLP, as SigLIP/big_vision) or
  ``"mean"``, then a linear head to ``embed_dim``;
* text tower: token + learned position embeddings, the same blocks with **full (non-causal) attention
  over the fixed-length padded sequence** (no padding mask, as SigLIP), a final norm, pooling
  ``"last"`` (the last position, SigLIP's default) or ``"mean"`` (mean over non-pad tokens), then a
  linear head;
* loss ``"sigmoid"``: ``-1/|B| Σ_i Σ_j log σ(z_ij (t x_i·y_j + b))``, ``t = exp(t')``, init ``t' = log 10``,
  ``b = -10``, computed in chunks over the text side (each chunk recomputed in backward, so memory is
  O(B·chunk) instead of O(B²)); ``"softmax"``: the symmetric CLIP cross-entropy with the same ``t``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .flops import flops_for
from .model import (
    MLP,
    Block,
    ForwardContext,
    LMConfig,
    RecursiveStack,
    StackConfig,
    StackedModelMixin,
    from_checked_dict,
    init_weights,
    make_norm,
)
from .plan import resolve_signature

__all__ = [
    "SigLIP",
    "SigLIPConfig",
    "TextTower",
    "TextTowerConfig",
    "ViT",
    "ViTClassifier",
    "ViTConfig",
    "sigmoid_loss",
    "softmax_loss",
]


# ----------------------------------------------------------------------------------------------
# Configs


@dataclass
class _TowerConfig(StackConfig):
    """Fields shared by the image and the text tower (the stack fields come from ``StackConfig``)."""

    n_layers: int = 4
    d_model: int = 64
    n_heads: int = 4
    n_kv_heads: int | None = None
    d_ff: int | None = None  # default 4·d (GELU) or SwiGLU 8/3·d rounded up to 64
    norm: str = "layernorm"  # "layernorm" | "rmsnorm"
    norm_eps: float = 1e-6
    mlp: str = "gelu"  # "gelu" | "swiglu"
    qkv_bias: bool = True
    proj_bias: bool = True
    init_std: float = 0.02

    def block_config(self, seq_len: int) -> LMConfig:
        """The :class:`LMConfig` handed to :class:`Block` (its attention/MLP/norm fields, learned positions)."""
        return LMConfig(
            signature=self.signature, degree=self.degree, block_sizes=self.block_sizes, vocab_size=2,
            n_layers=self.n_layers, d_model=self.d_model, n_heads=self.n_heads, n_kv_heads=self.n_kv_heads,
            d_ff=self.d_ff, max_seq_len=max(1, seq_len), norm=self.norm, norm_eps=self.norm_eps, mlp=self.mlp,
            pos_embedding="learned", qkv_bias=self.qkv_bias, proj_bias=self.proj_bias, init_std=self.init_std,
        )

    def validate(self) -> None:
        """Raise ``ValueError`` with the fix for any inconsistent field."""
        self.validate_stack(self.n_layers)
        self.block_config(1)  # LMConfig checks the block fields (widths, heads, norm, MLP) as for the LM


@dataclass
class ViTConfig(_TowerConfig):
    """A ViT image tower: ``image_size``/``patch_size`` patches of ``channels`` channels; pool ``map``|``mean``."""

    image_size: int = 28
    patch_size: int = 4
    channels: int = 1
    pool: str = "map"

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def validate(self) -> None:
        super().validate()
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size={self.image_size} must be divisible by patch_size={self.patch_size}")
        if self.pool not in ("map", "mean"):
            raise ValueError(f"pool={self.pool!r} is not one of ('map', 'mean')")


@dataclass
class TextTowerConfig(_TowerConfig):
    """A text tower over ``max_len`` tokens (padded with ``pad_id``); pool ``last``|``mean``.

    The default vocabulary (258) is :class:`rins.vision_data.ByteTokenizer`'s: pad 0, end 1, bytes 2-257.
    """

    vocab_size: int = 258
    max_len: int = 32
    pad_id: int = 0
    pool: str = "last"

    def validate(self) -> None:
        super().validate()
        if self.pool not in ("last", "mean"):
            raise ValueError(f"pool={self.pool!r} is not one of ('last', 'mean')")
        if self.vocab_size < 2 or self.max_len < 1:
            raise ValueError("vocab_size must be >= 2 and max_len >= 1")


@dataclass
class SigLIPConfig:
    """Two towers, a shared embedding width, the loss and its temperature/bias initialisation."""

    image: ViTConfig = field(default_factory=ViTConfig)
    text: TextTowerConfig = field(default_factory=TextTowerConfig)
    embed_dim: int = 64
    loss: str = "sigmoid"  # "sigmoid" | "softmax"
    init_logit_scale: float = math.log(10.0)  # t' (t = exp(t'))
    init_logit_bias: float = -10.0  # b (sigmoid loss only)
    chunk_size: int | None = None  # text-side chunk of the sigmoid loss (None: whole batch)

    def __post_init__(self) -> None:
        if isinstance(self.image, dict):
            self.image = ViTConfig.from_dict(self.image)
        if isinstance(self.text, dict):
            self.text = TextTowerConfig.from_dict(self.text)
        self.validate()

    def validate(self) -> None:
        if self.loss not in ("sigmoid", "softmax"):
            raise ValueError(f"loss={self.loss!r} is not one of ('sigmoid', 'softmax')")
        if self.embed_dim < 1:
            raise ValueError("embed_dim must be >= 1")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError("chunk_size must be None or >= 1")

    @property
    def signature(self) -> str:
        """Both towers' signatures, e.g. ``"image=A^2B text=AB"`` (for logs)."""
        return f"image={resolve_signature(self.image.signature)} text={resolve_signature(self.text.signature)}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["image"], d["text"] = self.image.to_dict(), self.text.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SigLIPConfig:
        return from_checked_dict(cls, d)


# ----------------------------------------------------------------------------------------------
# Layers


class MAPHead(nn.Module):
    """Multihead attention pooling (SigLIP's "map"): one learned probe attends over the tokens, then a
    residual MLP: ``y = attn(probe, x); y = y + mlp(norm(y))``."""

    def __init__(self, bc: LMConfig) -> None:
        super().__init__()
        d = bc.d_model
        self.n_heads, self.hd = bc.n_heads, bc.head_dim
        self.probe = nn.Parameter(torch.zeros(1, 1, d))
        self.q = nn.Linear(d, d, bias=bc.qkv_bias)
        self.k = nn.Linear(d, d, bias=bc.qkv_bias)
        self.v = nn.Linear(d, d, bias=bc.qkv_bias)
        self.o = nn.Linear(d, d, bias=bc.proj_bias)
        self.norm = make_norm(bc.norm, d, bc.norm_eps)
        self.mlp = MLP(bc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, d = x.shape
        q = self.q(self.probe.expand(B, 1, d)).view(B, 1, self.n_heads, self.hd).transpose(1, 2)
        k = self.k(x).view(B, N, self.n_heads, self.hd).transpose(1, 2)
        v = self.v(x).view(B, N, self.n_heads, self.hd).transpose(1, 2)
        y = self.o(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, 1, d))
        y = y + self.mlp(self.norm(y))
        return y[:, 0]

    def flops_per_example(self, n_tokens: int, bc: LMConfig) -> float:
        """Forward FLOPs per example of pooling ``n_tokens`` tokens."""
        d = bc.d_model
        proj = 2 * d * d * (2 + 2 * n_tokens)  # q and o on one token, k and v on every token
        attn = 2 * 2 * n_tokens * d  # QKᵀ and AV for one query
        return float(proj + attn + self.mlp.flops_per_token())


class _Tower(nn.Module):
    """Shared parts: the recursive stack of non-causal blocks and the final norm."""

    def __init__(self, cfg: _TowerConfig, seq_len: int) -> None:
        super().__init__()
        self.config = cfg
        self.bc = cfg.block_config(seq_len)
        blocks = nn.ModuleList(Block(self.bc, causal=False) for _ in range(cfg.n_layers))
        self.stack = RecursiveStack(cfg, blocks, cfg.d_model, cfg.norm_eps)
        self.norm = make_norm(cfg.norm, cfg.d_model, cfg.norm_eps)

    @property
    def r_max(self) -> int | None:
        """The trained recursion exponent (None: no recursion)."""
        return self.stack.r_max

    def _encode(self, h: torch.Tensor, r: int | None, step: int | None) -> torch.Tensor:
        rr, seq_depth = self.stack.resolve_r(r, step, h.shape[0])
        return self.norm(self.stack(h, ForwardContext(), rr, seq_depth))


class ViT(_Tower):
    """Vision transformer: ``forward(images (B, C, H, W), r=None, step=None) -> (B, out_dim)``.

    ``out_dim=None`` returns the pooled features (width ``d_model``) without a head.
    """

    def __init__(self, cfg: ViTConfig, out_dim: int | None = None) -> None:
        super().__init__(cfg, cfg.n_patches)
        d = cfg.d_model
        self.patch = nn.Conv2d(cfg.channels, d, cfg.patch_size, cfg.patch_size)
        self.pos = nn.Parameter(torch.zeros(1, cfg.n_patches, d))
        self.map = MAPHead(self.bc) if cfg.pool == "map" else None
        self.head = nn.Linear(d, out_dim) if out_dim else None
        init_weights(self, cfg.init_std, cfg.n_layers)
        nn.init.normal_(self.pos, 0.0, cfg.init_std)
        if self.map is not None:
            nn.init.normal_(self.map.probe, 0.0, cfg.init_std)

    def forward(self, images: torch.Tensor, r: int | None = None, step: int | None = None) -> torch.Tensor:
        c = self.config
        if images.shape[1:] != (c.channels, c.image_size, c.image_size):
            raise ValueError(f"images must be (B, {c.channels}, {c.image_size}, {c.image_size}), "
                             f"got {tuple(images.shape)}")
        h = self.patch(images).flatten(2).transpose(1, 2) + self.pos
        h = self._encode(h, r, step)
        h = self.map(h) if self.map is not None else h.mean(1)
        return self.head(h) if self.head is not None else h

    def flops_per_example(self, r: int | None = None, expected: bool = False, batch_size: int | None = None
                          ) -> float:
        """Forward FLOPs per image: patch embedding, the executed layers, pooling, head."""
        c, n = self.config, self.config.n_patches
        fixed = 2 * n * c.channels * c.patch_size ** 2 * c.d_model
        if self.map is not None:
            fixed += self.map.flops_per_example(n, self.bc)
        if self.head is not None:
            fixed += 2 * c.d_model * self.head.out_features
        return fixed + self.stack.depth_average(lambda k: n * self.stack.flops_per_token(n, k), r, expected,
                                                batch_size)


class TextTower(_Tower):
    """Text transformer: ``forward(tokens (B, T), r=None, step=None) -> (B, out_dim)`` (T <= max_len)."""

    def __init__(self, cfg: TextTowerConfig, out_dim: int | None = None) -> None:
        super().__init__(cfg, cfg.max_len)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Parameter(torch.zeros(1, cfg.max_len, cfg.d_model))
        self.head = nn.Linear(cfg.d_model, out_dim) if out_dim else None
        init_weights(self, cfg.init_std, cfg.n_layers)
        nn.init.normal_(self.pos, 0.0, cfg.init_std)

    def forward(self, tokens: torch.Tensor, r: int | None = None, step: int | None = None) -> torch.Tensor:
        c = self.config
        T = tokens.shape[1]
        if T > c.max_len:
            raise ValueError(f"text length {T} exceeds max_len={c.max_len}")
        h = self._encode(self.embed(tokens) + self.pos[:, :T], r, step)
        if c.pool == "last":
            h = h[:, -1]
        else:
            keep = (tokens != c.pad_id).unsqueeze(-1).to(h.dtype)
            h = (h * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return self.head(h) if self.head is not None else h

    def flops_per_example(self, r: int | None = None, expected: bool = False, batch_size: int | None = None,
                          seq_len: int | None = None) -> float:
        """Forward FLOPs per text of ``seq_len`` tokens (default ``max_len``); the embedding is a lookup (0)."""
        c = self.config
        T = seq_len or c.max_len
        fixed = 2 * c.d_model * self.head.out_features if self.head is not None else 0
        return fixed + self.stack.depth_average(lambda k: T * self.stack.flops_per_token(T, k), r, expected,
                                                batch_size)


# ----------------------------------------------------------------------------------------------
# Losses


def _sigmoid_chunk(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor,
                   gi: torch.Tensor, gj: torch.Tensor) -> torch.Tensor:
    logits = img @ txt.t() * scale.exp() + bias
    z = torch.where(gi[:, None] == gj[None, :], 1.0, -1.0).to(logits.dtype)
    return -F.logsigmoid(z * logits).sum()


def sigmoid_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor, logit_bias: torch.Tensor,
                 chunk_size: int | None = None, groups: torch.Tensor | None = None) -> torch.Tensor:
    """SigLIP's loss ``-1/|B| Σ_i Σ_j log σ(z_ij (exp(t') x_i·y_j + b))``.

    Args:
        img, txt: (B, E) embeddings (L2-normalised by the caller).
        logit_scale: t' (the temperature is exp(t')); logit_bias: b.
        chunk_size: texts per chunk; each chunk's logits are recomputed in backward (activation
            checkpointing), so the B×B matrix never lives in memory at once. None = one chunk.
        groups: optional (B,) ids; z_ij = +1 where ``groups[i] == groups[j]`` (e.g. identical captions),
            default: the diagonal only (z_ii = +1).
    """
    B = img.shape[0]
    if txt.shape[0] != B:
        raise ValueError(f"sigmoid_loss needs as many texts as images, got {B} and {txt.shape[0]}")
    g = torch.arange(B, device=img.device) if groups is None else groups.to(img.device)
    cs = B if chunk_size is None else max(1, int(chunk_size))
    total = img.new_zeros(())
    for s in range(0, B, cs):
        args = (img, txt[s:s + cs], logit_scale, logit_bias, g, g[s:s + cs])
        if cs < B and torch.is_grad_enabled():
            total = total + checkpoint(_sigmoid_chunk, *args, use_reentrant=False)
        else:
            total = total + _sigmoid_chunk(*args)
    return total / B


def softmax_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor,
                 groups: torch.Tensor | None = None) -> torch.Tensor:
    """CLIP's symmetric InfoNCE: mean of image→text and text→image cross-entropy at temperature exp(t').

    With ``groups``, every same-group text counts as a positive (the target is spread uniformly over them).
    """
    logits = img @ txt.t() * logit_scale.exp()
    if groups is None:
        tgt = torch.arange(img.shape[0], device=img.device)
        return 0.5 * (F.cross_entropy(logits, tgt) + F.cross_entropy(logits.t(), tgt))
    pos = (groups[:, None] == groups[None, :]).to(logits.dtype)
    pos = pos / pos.sum(1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, pos) + F.cross_entropy(logits.t(), pos.t()))


# ----------------------------------------------------------------------------------------------
# Models


class SigLIP(StackedModelMixin, nn.Module):
    """Two-tower contrastive model; ``forward(images, texts, r_image, r_text, step) -> (img_emb, txt_emb)``.

    ``r_image`` / ``r_text`` pick each tower's inference depth (None: the trained exponent, or a stochastic
    draw seeded by ``(depth_seed, step)`` in training mode); a tower without recursion takes only None.
    """

    def __init__(self, config: SigLIPConfig) -> None:
        super().__init__()
        self.config = config
        self.image = ViT(config.image, config.embed_dim)
        self.text = TextTower(config.text, config.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.init_logit_scale)))
        self.logit_bias = nn.Parameter(torch.tensor(float(config.init_logit_bias)))

    def encode_image(self, images: torch.Tensor, r: int | None = None, step: int | None = None) -> torch.Tensor:
        """L2-normalised image embeddings (B, embed_dim)."""
        return F.normalize(self.image(images, r, step).float(), dim=-1)

    def encode_text(self, tokens: torch.Tensor, r: int | None = None, step: int | None = None) -> torch.Tensor:
        """L2-normalised text embeddings (B, embed_dim)."""
        return F.normalize(self.text(tokens, r, step).float(), dim=-1)

    def forward(self, images: torch.Tensor, texts: torch.Tensor, r_image: int | None = None,
                r_text: int | None = None, step: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_image(images, r_image, step), self.encode_text(texts, r_text, step)

    def loss(self, images: torch.Tensor, texts: torch.Tensor, r_image: int | None = None,
             r_text: int | None = None, step: int | None = None, groups: torch.Tensor | None = None,
             chunk_size: int | None = None) -> torch.Tensor:
        """The configured contrastive loss of a batch of aligned (image, text) pairs."""
        img, txt = self(images, texts, r_image, r_text, step)
        return self.pair_loss(img, txt, groups, chunk_size)

    def pair_loss(self, img: torch.Tensor, txt: torch.Tensor, groups: torch.Tensor | None = None,
                  chunk_size: int | None = None) -> torch.Tensor:
        """The loss from already computed embeddings."""
        if self.config.loss == "softmax":
            return softmax_loss(img, txt, self.logit_scale, groups)
        return sigmoid_loss(img, txt, self.logit_scale, self.logit_bias, chunk_size or self.config.chunk_size,
                            groups)

    @property
    def r_max(self) -> int | None:
        """The largest trained recursion exponent of the two towers (None: neither recurses), as the other
        models' ``r_max``; each tower's own: :attr:`tower_r_max`."""
        recursed = [r for r in self.tower_r_max.values() if r]
        return max(recursed) if recursed else None

    @property
    def tower_r_max(self) -> dict[str, int | None]:
        """The trained recursion exponent of each tower, ``{"image": ..., "text": ...}`` (None: no recursion)."""
        return {"image": self.image.r_max, "text": self.text.r_max}

    def flops_per_example(self, r_image: int | None = None, r_text: int | None = None, training: bool = False,
                          expected: bool = False, batch_size: int | None = None) -> float:
        """Model FLOPs per (image, text) pair, counted per **executed** layer of both towers.

        Image: patch embedding, blocks (attention over the patch sequence), MAP head, projection; text:
        blocks over ``max_len`` tokens, projection. With ``batch_size`` the B×B similarity matmul of the
        loss is included (2·B·E per pair). ``training=True``: :func:`rins.flops.training_flops` of the forward;
        ``expected`` averages each tower over its stochastic depth distribution (per-sequence draws need
        ``batch_size``). What is and is not counted: :mod:`rins.flops`.
        """
        fwd = (self.image.flops_per_example(r_image, expected, batch_size)
               + self.text.flops_per_example(r_text, expected, batch_size))
        if batch_size:
            fwd += 2 * batch_size * self.config.embed_dim
        return float(flops_for(fwd, training))


class ViTClassifier(StackedModelMixin, nn.Module):
    """The control: a ViT (same recursion options) with a linear head to ``n_classes`` (zero-initialised)."""

    def __init__(self, config: ViTConfig, n_classes: int) -> None:
        super().__init__()
        self.config = config
        self.n_classes = n_classes
        self.vit = ViT(config, n_classes)
        nn.init.zeros_(self.vit.head.weight)
        nn.init.zeros_(self.vit.head.bias)

    @property
    def r_max(self) -> int | None:
        return self.vit.r_max

    def forward(self, images: torch.Tensor, r: int | None = None, step: int | None = None) -> torch.Tensor:
        """Logits (B, n_classes)."""
        return self.vit(images, r, step)

    def loss(self, images: torch.Tensor, labels: torch.Tensor, r: int | None = None, step: int | None = None
             ) -> torch.Tensor:
        """Mean cross-entropy."""
        return F.cross_entropy(self(images, r, step).float(), labels)

    def flops_per_example(self, r: int | None = None, training: bool = False, expected: bool = False,
                          batch_size: int | None = None) -> float:
        """Model FLOPs per image, per executed layer (forward, or with ``training`` its
        :func:`rins.flops.training_flops`)."""
        return float(flops_for(self.vit.flops_per_example(r, expected, batch_size), training))
