"""Hugging Face interop: convert ``transformers`` causal LMs into RINS models, export RINS runs back.

Convert in — :func:`from_hf` maps a Llama / Qwen2 / Mistral (Llama-style) or GPT-2 checkpoint onto a
:class:`rins.RecursiveLM` with the same numerics (the plain signature ``AB``, or ``r=1`` of a recursed
signature, reproduces the source logits when ``n_layers`` equals the source depth). With fewer layers
than the source, the recursive model is *initialised* from the deeper one:

* The trained plan (``A^2B`` at its exponent) has ``n_applications`` layer applications. Application ``i``
  stands for source layer ``src(i) = round(i · (L_src − 1) / (n_applications − 1))`` (the identity when
  ``n_applications == L_src``, e.g. ``A^2B`` on 4 layers from a 6-layer source).
* ``init="first"``: each shared layer takes the weights of the source layer of its *first* application
  (A ← the first source layers of the region it replaces, B ← the last ones).
* ``init="average"``: each shared layer is the mean of the source layers of all its applications (the
  Relaxed Recursive Transformers "average" initialisation, Bae et al. 2024).
* ``init="relaxed"``: ``average`` plus the core's per-round adapters (``adapters="round"``,
  ``h ← h + W_k·RMSNorm(h)`` after round k). The core has no per-application LoRA on the weights, so the
  weight-space SVD of Bae et al. cannot be expressed; instead each ``W_k`` is fitted on calibration
  tokens so that the residual stream after round k approaches the source model's residual stream after
  the corresponding source layer: a ridge least-squares fit, truncated to ``adapter_rank`` by the SVD of
  the fitted correction (reduced-rank regression). Rounds are fitted in order, each on the stream the
  previous adapters produce. Default calibration: random tokens (pass real text for a better start).

Export out — :func:`export` writes a folder loadable with
``AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)``: ``config.json`` (with
``auto_map``, the ``rins`` LMConfig under ``"rins"`` and the depth ``"rins_r"``), ``model.safetensors``
(the RecursiveLM weights unchanged), ``configuration_rins.py``, ``modeling_rins.py`` and ``rins_plan.py``
(a verbatim copy of :mod:`rins.plan`, stdlib only: the exported model compiles plans for any r itself).

CLI: ``rins convert HF_DIR --signature A^2B --out RUN_DIR [--init first|average|relaxed] [--layers N]``
(:func:`cmd_convert`) and ``rins export RUN_DIR --out HF_DIR [--r R]`` (:func:`cmd_export`).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .arguments import bad_argument, check_int, check_number, check_str
from .checkpoint import load_model, save_checkpoint, tied_aliases, unique_state
from .fields import ConfigError, depths_type
from .model import LMConfig, RecursiveLM
from .plan import Plan
from .runs import tokenizer_file as run_tokenizer_file
from .runs import write_run_config

__all__ = [
    "ConversionError",
    "export",
    "from_hf",
    "hf_architecture",
    "add_convert_arguments",
    "add_export_arguments",
    "cmd_convert",
    "cmd_export",
    "save_run",
    "infer_special_tokens",
    "read_special_tokens",
    "source_layer_map",
]

INITS = ("first", "average", "relaxed")
_EXPORT_FILES = ("configuration_rins.py", "modeling_rins.py")


class ConversionError(ConfigError):
    """A source model (or option) that cannot be converted exactly (a :class:`rins.ConfigError`)."""


# ----------------------------------------------------------------------------------------------
# Reading a transformers model into a neutral form


def _cfg_get(cfg: Any, *names: str, default: Any = None) -> Any:
    for n in names:
        v = getattr(cfg, n, None)
        if v is not None:
            return v
    return default


def hf_architecture(model: Any) -> str:
    """``"llama"`` (Llama, Qwen2, Mistral and other Llama-style models) or ``"gpt2"``; raises otherwise."""
    if hasattr(model, "transformer") and hasattr(model.transformer, "h") and hasattr(model.transformer, "wpe"):
        return "gpt2"
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is not None and len(layers) and hasattr(layers[0], "self_attn") and hasattr(layers[0], "mlp"):
        at, mlp = layers[0].self_attn, layers[0].mlp
        if all(hasattr(at, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")) and all(
            hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj")
        ):
            return "llama"
    raise ConversionError(
        f"unsupported source model {type(model).__name__}: supported are Llama-style causal LMs "
        "(LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM: q/k/v/o, gate/up/down, RMSNorm) and GPT2LMHeadModel"
    )


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", torch.float32).clone()


def _embeddings(model: Any, arch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The source's input embedding and LM head; records in ``arch`` whether they are tied."""
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    arch["tie_embeddings"] = bool(tied_aliases({"embed": emb, "head": head}))
    return emb, head


def _read_llama(model: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
    cfg = model.config
    inner = model.model
    act = _cfg_get(cfg, "hidden_act", default="silu")
    if act not in ("silu", "swish"):
        raise ConversionError(f"hidden_act={act!r}: only SiLU-gated (SwiGLU) MLPs convert exactly")
    rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    if isinstance(rope, dict) and rope and "rope_type" not in rope and all(isinstance(v, dict) for v in rope.values()):
        raise ConversionError("per-layer-type RoPE parameters are not supported")
    rope_type = (rope.get("rope_type") or rope.get("type") or "default") if isinstance(rope, dict) else "default"
    if rope_type != "default":
        raise ConversionError(f"RoPE scaling {rope_type!r} is not supported (only plain RoPE converts exactly)")
    if float(rope.get("partial_rotary_factor", _cfg_get(cfg, "partial_rotary_factor", default=1.0))) != 1.0:
        raise ConversionError("partial rotary embeddings are not supported")
    theta = float(rope.get("rope_theta") or _cfg_get(cfg, "rope_theta", default=10000.0))
    d = cfg.hidden_size
    nh = cfg.num_attention_heads
    hd = _cfg_get(cfg, "head_dim", default=d // nh)
    if hd * nh != d:
        raise ConversionError(f"head_dim={hd} × heads={nh} != hidden_size={d}; rins needs head_dim = d_model / n_heads")
    layers0 = inner.layers[0]
    if hasattr(layers0.self_attn, "q_norm") or hasattr(layers0.self_attn, "k_norm"):
        raise ConversionError("QK-norm attention (Qwen3-style) is not supported")
    sw = _cfg_get(cfg, "sliding_window")
    use_sw = _cfg_get(cfg, "use_sliding_window", default=True)
    max_len = int(_cfg_get(cfg, "max_position_embeddings", default=2048))
    if sw is not None and use_sw and int(sw) < max_len:
        warnings.warn(f"source uses sliding-window attention (window {sw}); the converted model attends to the full "
                      f"context, so it matches the source only on sequences of <= {sw} tokens", stacklevel=3)
    at, mlp = layers0.self_attn, layers0.mlp
    qkv_bias = at.q_proj.bias is not None
    proj_bias = at.o_proj.bias is not None or mlp.down_proj.bias is not None
    arch = dict(
        vocab_size=cfg.vocab_size, d_model=d, n_heads=nh, n_kv_heads=_cfg_get(cfg, "num_key_value_heads", default=nh),
        d_ff=cfg.intermediate_size, max_seq_len=max_len, rope_theta=theta, norm="rmsnorm",
        norm_eps=float(_cfg_get(cfg, "rms_norm_eps", default=1e-6)), mlp="swiglu", pos_embedding="rope",
        qkv_bias=qkv_bias, proj_bias=proj_bias,
    )
    emb, head = _embeddings(model, arch)
    glob = {"embed.weight": _f32(emb), "norm.weight": _f32(inner.norm.weight), "head.weight": _f32(head)}

    def lin(prefix: str, m: torch.nn.Module, bias: bool, out: dict[str, torch.Tensor]) -> None:
        out[prefix + ".weight"] = _f32(m.weight)
        if bias:
            out[prefix + ".bias"] = _f32(m.bias) if m.bias is not None else torch.zeros(m.weight.shape[0])

    layers = []
    for layer in inner.layers:
        a, m, o = layer.self_attn, layer.mlp, {}
        o["norm1.weight"] = _f32(layer.input_layernorm.weight)
        o["norm2.weight"] = _f32(layer.post_attention_layernorm.weight)
        for ours, theirs in (("q", a.q_proj), ("k", a.k_proj), ("v", a.v_proj)):
            lin(f"attn.{ours}", theirs, qkv_bias, o)
        lin("attn.o", a.o_proj, proj_bias, o)
        for ours, theirs in (("gate", m.gate_proj), ("up", m.up_proj), ("down", m.down_proj)):
            lin(f"mlp.{ours}", theirs, proj_bias, o)
        layers.append(o)
    return arch, glob, layers


def _read_gpt2(model: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
    cfg = model.config
    act = _cfg_get(cfg, "activation_function", default="gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        raise ConversionError(f"activation_function={act!r}: only the tanh GELU (gelu_new) converts exactly")
    if not _cfg_get(cfg, "scale_attn_weights", default=True) or _cfg_get(cfg, "scale_attn_by_inverse_layer_idx"):
        raise ConversionError("GPT-2 variants with non-standard attention scaling are not supported")
    tr = model.transformer
    d = cfg.n_embd
    arch = dict(
        vocab_size=cfg.vocab_size, d_model=d, n_heads=cfg.n_head, n_kv_heads=None,
        d_ff=_cfg_get(cfg, "n_inner", default=4 * d), max_seq_len=cfg.n_positions, norm="layernorm",
        norm_eps=float(cfg.layer_norm_epsilon), mlp="gelu", pos_embedding="learned", qkv_bias=True, proj_bias=True,
    )
    emb, head = _embeddings(model, arch)
    glob = {"embed.weight": _f32(emb), "pos.weight": _f32(tr.wpe.weight), "norm.weight": _f32(tr.ln_f.weight),
            "norm.bias": _f32(tr.ln_f.bias), "head.weight": _f32(head)}
    layers = []
    for blk in tr.h:
        o: dict[str, torch.Tensor] = {}
        o["norm1.weight"], o["norm1.bias"] = _f32(blk.ln_1.weight), _f32(blk.ln_1.bias)
        o["norm2.weight"], o["norm2.bias"] = _f32(blk.ln_2.weight), _f32(blk.ln_2.bias)
        w = _f32(blk.attn.c_attn.weight).t()  # Conv1D stores (in, out)
        b = _f32(blk.attn.c_attn.bias)
        for j, name in enumerate("qkv"):
            o[f"attn.{name}.weight"] = w[j * d:(j + 1) * d].contiguous()
            o[f"attn.{name}.bias"] = b[j * d:(j + 1) * d].contiguous()
        o["attn.o.weight"], o["attn.o.bias"] = _f32(blk.attn.c_proj.weight).t().contiguous(), _f32(blk.attn.c_proj.bias)
        o["mlp.up.weight"], o["mlp.up.bias"] = _f32(blk.mlp.c_fc.weight).t().contiguous(), _f32(blk.mlp.c_fc.bias)
        o["mlp.down.weight"] = _f32(blk.mlp.c_proj.weight).t().contiguous()
        o["mlp.down.bias"] = _f32(blk.mlp.c_proj.bias)
        layers.append(o)
    return arch, glob, layers


def _load_source(model_or_path: Any) -> Any:
    if isinstance(model_or_path, str | Path):
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(str(model_or_path), dtype=torch.float32, local_files_only=True)
    return model_or_path


# ----------------------------------------------------------------------------------------------
# Layer mapping


def source_layer_map(plan: Plan, n_source: int) -> list[int]:
    """Source layer standing for every application of ``plan``: ``round(i (L_src-1) / (n_apps-1))``."""
    n = plan.n_applications
    if n == 1:
        return [0]
    return [int(math.floor(i * (n_source - 1) / (n - 1) + 0.5)) for i in range(n)]


def from_hf(
    model_or_path: Any,
    signature: str = "A^2B",
    degree: int = 1,
    init: str = "first",
    n_layers: int | None = None,
    *,
    calib_tokens: torch.Tensor | None = None,
    ridge: float = 1e-3,
    **lm_overrides: Any,
) -> RecursiveLM:
    """Convert a ``transformers`` causal LM (or a local folder) into a :class:`~rins.RecursiveLM`.

    Args:
        model_or_path: a ``LlamaForCausalLM`` / ``Qwen2ForCausalLM`` / ``MistralForCausalLM`` /
            ``GPT2LMHeadModel`` (or another Llama-style model), or a local folder holding one.
        signature: the recursion signature of the new model (``"AB"`` keeps the source exactly).
        degree: nesting degree of the signature.
        init: how shared layers are built when ``n_layers`` < source depth: ``"first"``, ``"average"`` or
            ``"relaxed"`` (average + fitted per-round adapters; see the module docstring).
        n_layers: distinct layers of the new model (default: the source depth, an exact copy).
        calib_tokens: ``(B, T)`` token ids for the ``"relaxed"`` fit (default: 8×64 random tokens, seed 0).
        ridge: ridge strength (relative to the mean feature energy) of the ``"relaxed"`` fit.
        **lm_overrides: any other :class:`~rins.LMConfig` field (``block_sizes``, ``p_skip``, ``adapters``,
            ``adapter_rank``, ``max_seq_len`` ...). Architecture fields are taken from the source.

    Returns:
        The converted model in eval mode (fp32, CPU).
    """
    if not isinstance(init, str) or init not in INITS:
        raise ConversionError(f"init={init!r}; choose one of {INITS}")
    err, where = ConversionError, "from_hf"
    check_str(where, "signature", signature, err)
    check_int(where, "degree", degree, 1, error=err)
    if n_layers is not None:
        check_int(where, "n_layers", n_layers, 1, error=err)
    check_number(where, "ridge", ridge, 0, lo_open=True, error=err)
    if calib_tokens is not None and (not isinstance(calib_tokens, torch.Tensor) or calib_tokens.dim() != 2
                                     or calib_tokens.dtype not in (torch.long, torch.int)):
        raise bad_argument(where, "calib_tokens", calib_tokens, "must be None or a (B, T) integer tensor", err)
    unknown = sorted(set(lm_overrides) - {f.name for f in fields(LMConfig)})
    if unknown:
        raise ConversionError(f"from_hf: unknown LMConfig field(s) {unknown}; known: "
                              f"{sorted(f.name for f in fields(LMConfig))}")
    if not isinstance(model_or_path, str | Path | torch.nn.Module):
        raise bad_argument(where, "model_or_path", model_or_path, "must be a transformers model or a local folder",
                           err)
    src = _load_source(model_or_path)
    kind = hf_architecture(src)
    arch, glob, layers = _read_llama(src) if kind == "llama" else _read_gpt2(src)
    n_src = len(layers)
    n = n_src if n_layers is None else int(n_layers)
    if not 1 <= n <= n_src:
        raise ConversionError(f"n_layers={n}: must be between 1 and the source depth {n_src}")
    kw: dict[str, Any] = dict(arch)
    if init == "relaxed":
        kw["adapters"] = "round"
    kw.update(signature=signature, degree=degree, n_layers=n)
    kw.update(lm_overrides)
    cfg = LMConfig(**kw)
    if init == "relaxed" and cfg.adapters != "round":
        raise ConversionError("init='relaxed' needs adapters='round'")
    model = RecursiveLM(cfg).eval()
    plan = model.plan()
    state = _converted_state(cfg, arch["max_seq_len"], glob, layers, _source_groups(plan, n_src, init))
    own = model.state_dict()
    missing = [k for k in state if k not in own]
    if missing:
        raise ConversionError(f"internal mapping error: {missing[:5]} not in the RINS model")
    with torch.no_grad():
        for k, v in state.items():
            if k == "head.weight" and cfg.tie_embeddings:
                continue
            own[k].copy_(v.to(own[k].dtype))
    if init == "relaxed" and n < n_src:
        _fit_relaxed_adapters(model, src, kind, plan, source_layer_map(plan, n_src), calib_tokens, ridge)
    return model.eval()


def _source_groups(plan: Plan, n_src: int, init: str) -> list[list[int]]:
    """For every layer of the new model, the source layers it is built from (averaged; ``"first"``: one)."""
    n = plan.n_layers
    if n == n_src:
        return [[layer] for layer in range(n)]
    smap = source_layer_map(plan, n_src)
    groups = [[smap[i] for i, layer in enumerate(plan.layers) if layer == j] for j in range(n)]
    return [g[:1] for g in groups] if init == "first" else groups


def _converted_state(cfg: LMConfig, src_max_len: int, glob: dict[str, torch.Tensor],
                     layers: list[dict[str, torch.Tensor]], groups: list[list[int]]) -> dict[str, torch.Tensor]:
    """The new model's weights: the source's global tensors and every layer as the mean of its group."""
    state = dict(glob)
    if cfg.max_seq_len != src_max_len and "pos.weight" in state:
        if cfg.max_seq_len > src_max_len:
            raise ConversionError(f"max_seq_len={cfg.max_seq_len} exceeds the source's {src_max_len} positions")
        state["pos.weight"] = state["pos.weight"][: cfg.max_seq_len]
    for j, g in enumerate(groups):
        for name in layers[0]:
            state[f"stack.blocks.{j}.{name}"] = torch.stack([layers[s][name] for s in g]).mean(0)
    return state


@torch.no_grad()
def _fit_relaxed_adapters(model: RecursiveLM, src: Any, kind: str, plan: Plan, smap: list[int],
                          calib: torch.Tensor | None, ridge: float) -> None:
    cfg = model.config
    if calib is None:
        g = torch.Generator().manual_seed(0)
        calib = torch.randint(0, cfg.vocab_size, (8, min(64, cfg.max_seq_len)), generator=g)
    src_layers = src.transformer.h if kind == "gpt2" else src.model.layers
    p = next(src.parameters())
    captured: dict[int, torch.Tensor] = {}

    def grab(idx: int):
        def hook(_m, _inp, out):
            captured[idx] = (out[0] if isinstance(out, tuple) else out).detach().to("cpu", torch.float32)
        return hook

    targets = [smap[a] for a in plan.round_ends]
    handles = [src_layers[t].register_forward_hook(grab(t)) for t in set(targets)]
    try:
        was = src.training
        src.eval()
        src(input_ids=calib.to(p.device))
        src.train(was)
    finally:
        for hd in handles:
            hd.remove()
    d = cfg.d_model
    for k, ad in enumerate(model.stack.adapters):
        seen: dict[str, torch.Tensor] = {}
        hdl = ad.register_forward_pre_hook(lambda _m, args, _s=seen: _s.setdefault("h", args[0].detach()))
        try:
            model(calib)
        finally:
            hdl.remove()
        h = seen["h"].reshape(-1, d)
        x = ad.norm(h)
        y = captured[targets[k]].reshape(-1, d) - h
        gram = x.T @ x
        lam = ridge * gram.diagonal().mean()
        w_t = torch.linalg.solve(gram + lam * torch.eye(d), x.T @ y)  # (d_in, d_out): y ≈ x @ w_t
        if ad.down is None:
            ad.up.weight.copy_(w_t.T)
        else:
            rank = ad.down.weight.shape[0]
            _, _, vh = torch.linalg.svd(x @ w_t, full_matrices=False)
            v = vh[:rank].T  # (d_out, rank): top output directions of the fitted correction
            ad.down.weight.copy_((w_t @ v).T)
            ad.up.weight.copy_(v)


# ----------------------------------------------------------------------------------------------
# Special tokens

SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")
# Names a tokenizer's vocabulary may use for each role (rins's own tokenizer has only "<|endoftext|>").
_CANDIDATES = {
    "eos_token": ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "<|eos|>", "[EOS]"),
    "bos_token": ("<s>", "<bos>", "<|begin_of_text|>", "<|startoftext|>", "[BOS]"),
    "unk_token": ("<unk>", "[UNK]", "<|unk|>"),
    "pad_token": ("<pad>", "[PAD]", "<|pad|>", "<|padding|>"),
}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def _content(v: Any) -> str | None:
    """A special token as written by transformers: a string or an AddedToken dict ``{"content": ...}``."""
    if isinstance(v, dict):
        v = v.get("content")
    return v if isinstance(v, str) and v else None


def read_special_tokens(folder: str | Path, tokenizer_file: str | Path | None = None) -> dict[str, str]:
    """Special tokens a ``transformers`` folder declares, as ``{"eos_token": "</s>", ...}``.

    Read from ``special_tokens_map.json`` and ``tokenizer_config.json``, then (for roles still missing) the
    ``*_token_id`` of ``generation_config.json`` / ``config.json`` looked up in the tokenizer. Only tokens
    present in the tokenizer's vocabulary (``tokenizer_file``, default ``folder/tokenizer.json``) are kept.
    """
    from tokenizers import Tokenizer

    folder = Path(folder)
    tf = Path(tokenizer_file) if tokenizer_file else folder / "tokenizer.json"
    if not tf.is_file():
        return {}
    tok = Tokenizer.from_file(str(tf))
    found: dict[str, str] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        d = _read_json(folder / name)
        for role in SPECIAL_TOKENS:
            if role not in found and (t := _content(d.get(role))):
                found[role] = t
    for name in ("generation_config.json", "config.json"):
        d = _read_json(folder / name)
        for role in SPECIAL_TOKENS:
            i = d.get(f"{role}_id")
            i = i[0] if isinstance(i, list) and i else i
            if role not in found and isinstance(i, int) and (t := tok.id_to_token(i)) is not None:
                found[role] = t
    return {k: v for k, v in found.items() if tok.token_to_id(v) is not None}


def infer_special_tokens(tokenizer_file: str | Path) -> dict[str, str]:
    """Special tokens of a bare ``tokenizer.json`` (e.g. rins's own), found by their usual names.

    rins's tokenizer has one special token, the end-of-document ``<|endoftext|>``; its training streams put it
    before every document, so it also serves as the beginning-of-sequence token (as in GPT-2). The
    tokenizer model's own ``unk_token`` is the unknown token.
    """
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    vocab = tok.get_vocab(with_added_tokens=True)
    out = {role: next((t for t in names if t in vocab), None) for role, names in _CANDIDATES.items()}
    unk = _read_json(Path(tokenizer_file)).get("model", {}).get("unk_token")
    if out["unk_token"] is None and isinstance(unk, str) and unk in vocab:
        out["unk_token"] = unk
    if out["bos_token"] is None:
        out["bos_token"] = out["eos_token"]
    return {k: v for k, v in out.items() if v is not None}


def _special_token_ids(tokens: dict[str, str], tokenizer_file: Path) -> dict[str, int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    return {f"{role}_id": i for role, t in tokens.items() if (i := tok.token_to_id(t)) is not None}


# ----------------------------------------------------------------------------------------------
# Run directories


def save_run(model: RecursiveLM, run_dir: str | Path, name: str | None = None,
             tokenizer_file: str | Path | None = None, extra: dict[str, Any] | None = None,
             special_tokens: dict[str, str] | None = None) -> Path:
    """Write ``model`` as a rins run directory that every ``rins`` command accepts.

    ``config.json`` is a full :class:`~rins.config.TrainConfig` (``model``: the architecture; ``data``: its
    vocabulary, a context of at most 1024 tokens and, when ``tokenizer_file`` is given, the run's copy of it
    as ``data.tokenizer``), the weights are checkpoint step 0, ``special_tokens_map.json`` records
    ``special_tokens`` (``{"eos_token": ...}``) and ``source.json`` records ``extra`` (provenance, e.g. the
    converted folder and the init). ``rins eval``, ``generate``, ``export`` and ``train --init`` accept it.
    """
    from .config import DataConfig, TrainConfig

    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    tok = None
    if tokenizer_file is not None and Path(tokenizer_file).is_file():
        tok = run_tokenizer_file(run)
        shutil.copyfile(tokenizer_file, tok)
    m = model.config
    data = DataConfig(vocab_size=m.vocab_size, seq_len=min(m.max_seq_len, 1024),
                      tokenizer=str(tok.resolve()) if tok else None)
    cfg = TrainConfig(name=name or run.name, model=m.to_dict(), data=data)
    write_run_config(run, cfg.to_dict())
    save_checkpoint(run, 0, model, meta={"source": (extra or {}).get("source")})
    if special_tokens:
        (run / "special_tokens_map.json").write_text(json.dumps(special_tokens, indent=1))
    if extra:
        (run / "source.json").write_text(json.dumps(extra, indent=1))
    return run


def add_convert_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``rins convert`` (on the sub-parser :mod:`rins.cli` builds), run by :func:`cmd_convert`."""
    p.description = "Convert a transformers causal LM to a rins run dir"
    p.add_argument("hf_dir", help="local folder of a Llama/Qwen2/Mistral/GPT-2 checkpoint")
    p.add_argument("--signature", default="A^2B", help="recursion signature of the new model")
    p.add_argument("--degree", type=int, default=1, help="nesting degree of the signature (docs/method.md §2)")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--init", choices=INITS, default="first",
                   help="how a shared layer is built from the source layers of its applications (when --layers "
                   "is below the source depth): the first one, their average, or the average plus fitted "
                   "per-round adapters")
    p.add_argument("--layers", type=int, default=None,
                   help="distinct layers of the new model (default: the source's)")
    p.add_argument("--adapter-rank", type=int, default=None, help="rank of the relaxed adapters (default: full d×d)")
    p.add_argument("--name", default=None, help="run name recorded in config.json (default: the --out folder name)")
    p.set_defaults(func=cmd_convert)


def cmd_convert(a: argparse.Namespace) -> int:
    """``rins convert HF_DIR --signature A^2B --out RUN_DIR [--init first|average|relaxed] [--layers N]``."""
    src = Path(a.hf_dir)
    if not (src / "config.json").is_file():
        raise ConversionError(f"{src} is not a local transformers model folder (no config.json)")
    over = {"adapter_rank": a.adapter_rank} if a.adapter_rank is not None else {}
    model = from_hf(src, signature=a.signature, degree=a.degree, init=a.init, n_layers=a.layers, **over)
    tok = src / "tokenizer.json"
    run = save_run(model, a.out, a.name, tok, extra={"source": str(src), "init": a.init},
                   special_tokens=read_special_tokens(src))
    print(f"wrote {run}: {model.plan().describe()}")
    return 0


# ----------------------------------------------------------------------------------------------
# Export to a transformers folder


def export(run_dir_or_model: str | Path | RecursiveLM, out_dir: str | Path, r: int | None = None,
           tokenizer_file: str | Path | None = None, special_tokens: dict[str, str] | None = None,
           exit_rule: str | None = None) -> Path:
    """Write a ``trust_remote_code`` Hugging Face folder for a run directory (or a model).

    ``exit_rule`` (``"kl=0.05"``, ``"hidden=0.1"``, ``"confidence=0.9"``) becomes ``config.rins_exit``, the
    default adaptive depth per token (:mod:`rins.adaptive`; ``None``: fixed depth, settable at load).

    ``r`` becomes ``config.rins_r``, the default inference depth (``None``: the trained exponent). The
    tokenizer (``tokenizer_file``, default ``RUN_DIR/tokenizer.json``) is shipped as a plain fast tokenizer
    (``AutoTokenizer`` loads it without custom code) with its special tokens: ``special_tokens``, else the
    run's ``special_tokens_map.json`` (written by ``rins convert`` from the source), else those found in the
    vocabulary (rins's own tokenizer: ``<|endoftext|>`` as eos and bos). Without a pad token, eos pads
    (left padding; the model masks it). The ids go into ``config.json`` and ``generation_config.json``, so
    ``generate`` stops at eos.
    """
    if isinstance(run_dir_or_model, RecursiveLM):
        model, run = run_dir_or_model, None
    else:
        run = Path(run_dir_or_model)
        if not run.is_dir():
            raise FileNotFoundError(f"{run} is not a run directory")
        model = load_model(run)
    cfg = model.config
    if r is not None:
        model.plan(r)  # validates
    if exit_rule is not None:
        from .adaptive import to_rule

        to_rule(exit_rule)  # validates: one rule, one threshold
        if model.r_max is None:
            raise ValueError(f"exit_rule needs a recursed group; signature {cfg.signature!r} has none")
    if cfg.input_injection != "none":
        raise ValueError("export does not support input_injection yet (the exported modeling code would "
                         "compute a different function); export a model trained without it")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).resolve().parent
    for f in _EXPORT_FILES:
        shutil.copyfile(here / "hf_export" / f, out / f)
    shutil.copyfile(here / "plan.py", out / "rins_plan.py")
    tok = Path(tokenizer_file) if tokenizer_file is not None else (run_tokenizer_file(run) if run else None)
    if tokenizer_file is not None and not tok.is_file():
        raise FileNotFoundError(f"tokenizer file {tok} does not exist")
    ids: dict[str, int] = {}
    if tok is not None and tok.is_file():
        if special_tokens is None and run is not None and (run / "special_tokens_map.json").is_file():
            special_tokens = read_special_tokens(run, tok)
        ids = _export_tokenizer(tok, special_tokens, out, cfg.max_seq_len)
    (out / "config.json").write_text(json.dumps(_hf_config(cfg, r) | {"rins_exit": exit_rule} | ids, indent=1))
    (out / "generation_config.json").write_text(json.dumps(
        {k: v for k, v in ids.items() if k != "unk_token_id"}, indent=1))
    state = unique_state(model)
    save_file({k: v.float() for k, v in state.items()}, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def _hf_config(cfg: LMConfig, r: int | None) -> dict[str, Any]:
    """The exported ``config.json`` (without the special token ids): the rins config and the usual HF fields."""
    return {
        "architectures": ["RinsForCausalLM"],
        "model_type": "rins",
        "auto_map": {"AutoConfig": "configuration_rins.RinsConfig",
                     "AutoModelForCausalLM": "modeling_rins.RinsForCausalLM"},
        "rins": cfg.to_dict(),
        "rins_r": r,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.kv_heads,
        "num_hidden_layers": cfg.n_layers,
        "max_position_embeddings": cfg.max_seq_len,
        "tie_word_embeddings": bool(cfg.tie_embeddings),
        "dtype": "float32",
    }


def _export_tokenizer(tok: Path, special_tokens: dict[str, str] | None, out: Path, max_len: int) -> dict[str, int]:
    """Ship ``tok`` as a plain fast tokenizer with its special tokens (eos pads when there is no pad token);
    returns their ids (``{"eos_token_id": ...}``)."""
    tokens = dict(special_tokens) if special_tokens is not None else infer_special_tokens(tok)
    if "pad_token" not in tokens and "eos_token" in tokens:
        tokens["pad_token"] = tokens["eos_token"]
    ids = _special_token_ids(tokens, tok)
    tokens = {k: v for k, v in tokens.items() if f"{k}_id" in ids}
    shutil.copyfile(tok, out / "tokenizer.json")
    tok_conf = {"tokenizer_class": "PreTrainedTokenizerFast", **tokens, "model_max_length": max_len,
                "padding_side": "left", "clean_up_tokenization_spaces": False,
                "model_input_names": ["input_ids", "attention_mask"]}  # no token_type_ids for generate()
    (out / "tokenizer_config.json").write_text(json.dumps(tok_conf, indent=1))
    (out / "special_tokens_map.json").write_text(json.dumps(tokens, indent=1))
    return ids


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``rins export`` (on the sub-parser :mod:`rins.cli` builds), run by :func:`cmd_export`."""
    p.description = "Export a rins run dir as a transformers folder"
    p.add_argument("run_dir", help="a run directory (rins train or rins convert)")
    p.add_argument("--out", required=True, help="folder to write (loads with trust_remote_code=True)")
    p.add_argument("--r", type=depths_type(one=True), default=None, metavar="INT",
                   help="default inference depth, config.rins_r (default: the trained exponent)")
    p.add_argument("--tokenizer", default=None, help="tokenizer.json to ship (default: RUN_DIR/tokenizer.json)")
    p.add_argument("--adaptive", default=None, metavar="RULE=T",
                   help="default adaptive depth per token, config.rins_exit (kl=0.05, hidden=0.1, confidence=0.9)")
    p.set_defaults(func=cmd_export)


def cmd_export(a: argparse.Namespace) -> int:
    """``rins export RUN_DIR --out HF_DIR [--r R]``."""
    out = export(a.run_dir, a.out, a.r[0] if a.r else None, a.tokenizer, exit_rule=a.adaptive)
    # trust_remote_code=True for the tokenizer too: transformers 5 reads config.json (custom code) before the
    # tokenizer's files and would otherwise stop at an interactive "run the custom code? [y/N]" prompt
    print(f"wrote {out}; load with\n  AutoModelForCausalLM.from_pretrained({str(out)!r}, trust_remote_code=True)"
          f"\n  AutoTokenizer.from_pretrained({str(out)!r}, trust_remote_code=True)")
    return 0
