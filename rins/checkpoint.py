"""Checkpoints: safetensors weights + JSON metadata, written atomically, never pickled.

Layout of a run directory::

    RUN_DIR/config.json                      the full training config (model config under "model")
    RUN_DIR/tokenizer.json                   the tokenizer (LM runs)
    RUN_DIR/log.jsonl                        metrics, one JSON object per line
    RUN_DIR/checkpoints/step_00000100/       one checkpoint:
        model.safetensors                    weights (tied tensors stored once)
        optimizer.safetensors                optimizer tensors + RNG state
        meta.json                            step, counters, optimizer scalars, model config
    RUN_DIR/checkpoints/LATEST               name of the newest complete checkpoint

A checkpoint folder is written under a temporary name and renamed when complete, and LATEST is
replaced atomically afterwards, so a run killed at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

__all__ = [
    "CheckpointError",
    "atomic_write_text",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_model",
    "load_state_into",
    "save_checkpoint",
]


class CheckpointError(RuntimeError):
    """A missing, corrupt or mismatched checkpoint."""


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace`` (atomic on POSIX)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _unique_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict with tied tensors kept once (the first name wins), contiguous, on CPU."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for k, v in model.state_dict().items():
        key = v.data_ptr() if v.numel() else id(v)
        if key in seen:
            continue
        seen.add(key)
        out[k] = v.detach().to("cpu").contiguous()
    return out


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"state.{idx}.{key}"] = val.detach().to("cpu").contiguous()
            else:
                scalars[f"{idx}.{key}"] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if not name.startswith("state."):
            continue
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = t
    for name, val in meta.get("scalars", {}).items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = val
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    meta: dict[str, Any] | None = None,
    keep_last: int = 3,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint atomically and prune all but the newest ``keep_last``; returns its folder."""
    ckdir = Path(run_dir) / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    final = ckdir / name
    tmp = ckdir / f".{name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(_unique_state(model), str(tmp / "model.safetensors"))
    full_meta: dict[str, Any] = {"step": step, **(meta or {})}
    if hasattr(model, "config") and hasattr(model.config, "to_dict"):
        full_meta.setdefault("model_config", model.config.to_dict())
    opt_tensors: dict[str, torch.Tensor] = dict(extra_tensors or {})
    if optimizer is not None:
        t, m = _flatten_optimizer(optimizer)
        opt_tensors.update(t)
        full_meta["optimizer"] = m
    opt_tensors["rng.torch"] = torch.get_rng_state()
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "meta.json").write_text(json.dumps(full_meta, indent=1, default=_json_default))
    for f in tmp.iterdir():  # make the bytes durable before the rename publishes them
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_text(ckdir / "LATEST", name)
    for old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _json_default(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, tuple | set):
        return list(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders are ignored)."""
    ckdir = Path(run_dir) / "checkpoints"
    if not ckdir.is_dir():
        return []
    return sorted(p for p in ckdir.iterdir() if p.is_dir() and p.name.startswith("step_"))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint (LATEST if valid, else the newest intact folder), or None."""
    ckdir = Path(run_dir) / "checkpoints"
    cands = list_checkpoints(run_dir)
    latest = ckdir / "LATEST"
    if latest.exists():
        p = ckdir / latest.read_text().strip()
        if p in cands and _is_complete(p):
            return p
    for p in reversed(cands):
        if _is_complete(p):
            return p
    return None


def _is_complete(p: Path) -> bool:
    return all((p / f).is_file() for f in ("model.safetensors", "optimizer.safetensors", "meta.json"))


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """Read (model tensors, optimizer tensors, meta) of a checkpoint folder or run directory."""
    path = Path(path)
    if (path / "checkpoints").is_dir() or (path / "config.json").is_file():
        ck = latest_checkpoint(path)
        if ck is None:
            raise CheckpointError(f"no complete checkpoint under {path}/checkpoints; train first or check the path")
        path = ck
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        weights = load_file(str(path / "model.safetensors"))
        opt = load_file(str(path / "optimizer.safetensors")) if (path / "optimizer.safetensors").exists() else {}
        meta = json.loads((path / "meta.json").read_text())
    except (SafetensorError, OSError, json.JSONDecodeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({e}); delete it to fall back "
                              "to the previous one, or retrain") from e
    return weights, opt, meta


def load_state_into(model: torch.nn.Module, weights: dict[str, torch.Tensor], source: str = "checkpoint",
                    allow_missing: tuple[str, ...] = ()) -> None:
    """Load weights strictly (tied names may be absent), with a clear error on any mismatch.

    Names starting with a prefix in ``allow_missing`` may be absent and keep their initial values (e.g.
    zero-initialised adapters added when continuing from a model trained without them)."""
    own = model.state_dict()
    tied = {k for k in own if k not in weights and _is_tied_alias(model, k, weights)}
    missing = [k for k in own if k not in weights and k not in tied and not k.startswith(allow_missing)]
    unexpected = [k for k in weights if k not in own]
    shape_bad = [f"{k}: {tuple(weights[k].shape)} vs model {tuple(own[k].shape)}"
                 for k in weights if k in own and weights[k].shape != own[k].shape]
    if missing or unexpected or shape_bad:
        raise CheckpointError(
            f"{source} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"shape mismatches {shape_bad[:5]}; build the model with the checkpoint's config "
            "(see its meta.json / config.json)"
        )
    model.load_state_dict(weights, strict=False)


def _is_tied_alias(model: torch.nn.Module, key: str, weights: dict[str, torch.Tensor]) -> bool:
    own = model.state_dict()
    ptr = own[key].data_ptr()
    return any(k in weights and k != key and own[k].data_ptr() == ptr for k in own)


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """Rebuild a ``RecursiveLM`` from a run directory or checkpoint folder (weights + config)."""
    from .model import LMConfig, RecursiveLM

    weights, _, meta = load_checkpoint(path)
    cfg = meta.get("model_config")
    if cfg is None:
        raise CheckpointError(f"{path}: meta.json has no model_config; not a rins LM checkpoint")
    model = RecursiveLM(LMConfig.from_dict(cfg))
    load_state_into(model, weights, str(path))
    return model.to(device).eval()


def restore_optimizer(optimizer: torch.optim.Optimizer, opt_tensors: dict[str, torch.Tensor],
                      meta: dict[str, Any]) -> None:
    """Load the optimizer state saved by :func:`save_checkpoint`."""
    if "optimizer" not in meta:
        raise CheckpointError("checkpoint has no optimizer state")
    optimizer.load_state_dict(_unflatten_optimizer(opt_tensors, meta["optimizer"]))
