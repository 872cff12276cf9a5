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
replaced atomically afterwards, so a run killed at any moment leaves the previous checkpoint intact
(:func:`clean_stale_temp` removes what killed writers left behind).

Loads are verified: ``meta.json`` records the SHA-256 of both safetensors files and of its own content, and
:func:`load_checkpoint` refuses any mismatch (``verify=False`` / ``--no-verify`` skips the hashes, never the
structural checks); the folder name, ``meta["step"]`` and the optimizer's step counters must agree; weights
and optimizer tensors are checked for shape, dtype and finiteness against the model and optimizer they are
loaded into, before any kernel reads them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .arguments import bad_argument
from .fields import coerce_fields
from .runfiles import RunFileError, atomic_write_text, clean_stale_temps, read_json_object, temp_path
from .runs import CONFIG_FILE, is_run_dir, run_config, run_dir_of

__all__ = [
    "CHECKPOINTS",
    "CheckpointError",
    "PRE_DECAY",
    "clear_checkpoints",
    "mark_latest",
    "atomic_write_text",
    "check_rng_state",
    "clean_stale_temp",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_model",
    "load_state_into",
    "restore_optimizer",
    "save_checkpoint",
    "tied_aliases",
    "unflatten_optimizer",
    "unique_state",
]


CHECKPOINTS = "checkpoints"  # RUN_DIR/checkpoints/step_N/: the run's checkpoints, LATEST naming the newest
PRE_DECAY = "pre_decay"  # RUN_DIR/pre_decay/checkpoints/: a WSD run's state where its decay began (for --extend)


class CheckpointError(RuntimeError):
    """A missing, corrupt or mismatched checkpoint."""


def tied_aliases(tensors: torch.nn.Module | Mapping[str, torch.Tensor]) -> dict[str, str]:
    """``{name: earlier name it is tied to}`` for every tensor that is, or shares the memory of, an earlier
    one (e.g. an LM head tied to the input embedding).

    A module is read through ``state_dict(keep_vars=True)``, which lists a tied parameter under each of its
    names. Checkpoints store each tied tensor once, under its first name, and loads accept the others
    absent. Tensor subclasses (FSDP2's DTensor) are compared by identity only.
    """
    if isinstance(tensors, torch.nn.Module):
        tensors = tensors.state_dict(keep_vars=True)
    first: dict[tuple[str, int], str] = {}
    out: dict[str, str] = {}
    for name, t in tensors.items():
        keys = [("id", id(t))]
        # a tensor subclass (DTensor) may report one shared or null pointer for every tensor
        if type(t) in (torch.Tensor, torch.nn.Parameter) and t.numel() and t.device.type != "meta" and t.data_ptr():
            keys.append(("ptr", t.data_ptr()))
        hit = next((first[k] for k in keys if k in first), None)
        if hit is not None:
            out[name] = hit
        else:
            first.update((k, name) for k in keys)
    return out


def unique_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict with tied tensors kept once (the first name wins), contiguous, on CPU: what
    ``model.safetensors`` holds."""
    state = model.state_dict(keep_vars=True)
    alias = tied_aliases(state)
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items() if k not in alias}


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


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """The ``optimizer.state_dict()`` saved by :func:`save_checkpoint`, from ``optimizer.safetensors``'s
    tensors and ``meta.json``'s ``optimizer`` entry (not yet checked against an optimizer)."""
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
    ckdir = Path(run_dir) / CHECKPOINTS
    ckdir.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    final = ckdir / name
    tmp = temp_path(ckdir / name)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(unique_state(model), str(tmp / "model.safetensors"))
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
    _fault_point()
    full_meta = json.loads(json.dumps(full_meta, default=_json_default))  # the form a reader will see
    full_meta["sha256"] = {f: _file_sha256(tmp / f) for f in TENSOR_FILES}
    full_meta["sha256"]["meta"] = _meta_sha256(full_meta)
    (tmp / "meta.json").write_text(json.dumps(full_meta, indent=1))
    for f in tmp.iterdir():  # make the bytes durable before the rename publishes them
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    mark_latest(final)
    for old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


TENSOR_FILES = ("model.safetensors", "optimizer.safetensors")
HALF_DTYPES = (torch.bfloat16, torch.float16)  # the lower precisions a float weight may be stored in


def _fault_point() -> None:
    """Test hook: ``RINS_FAULT_SLEEP`` seconds of sleep inside a checkpoint write (tests land kills there)."""
    delay = os.environ.get("RINS_FAULT_SLEEP")
    if delay:
        import time

        time.sleep(float(delay))


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _meta_sha256(meta: dict[str, Any]) -> str:
    """SHA-256 of the meta's content, without its own "sha256" entry (canonical JSON)."""
    body = {k: v for k, v in meta.items() if k != "sha256"}
    sig = {k: v for k, v in meta.get("sha256", {}).items() if k != "meta"}
    return hashlib.sha256(json.dumps({**body, "sha256": sig}, sort_keys=True).encode()).hexdigest()


def clean_stale_temp(run_dir: str | Path) -> list[Path]:
    """Remove the temporary checkpoint folders and files (``.NAME.tmp-PID``) that killed writers left in a run
    directory and its ``checkpoints/``; returns what was removed. Those of live processes are left alone."""
    return [p for d in (Path(run_dir), Path(run_dir) / CHECKPOINTS) for p in clean_stale_temps(d, keep_own=False)]


def _json_default(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, tuple | set):
        return list(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def mark_latest(ck: Path) -> None:
    """Make the complete checkpoint folder ``ck`` the one its run resumes from (``LATEST``, replaced atomically)."""
    atomic_write_text(ck.parent / "LATEST", ck.name)


def clear_checkpoints(run_dir: str | Path) -> None:
    """Remove every checkpoint of a run (a run started over must not resume from the old one)."""
    for sub in (CHECKPOINTS, PRE_DECAY):
        shutil.rmtree(Path(run_dir) / sub, ignore_errors=True)


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders are ignored)."""
    ckdir = Path(run_dir) / CHECKPOINTS
    if not ckdir.is_dir():
        return []
    return sorted(p for p in ckdir.iterdir() if p.is_dir() and p.name.startswith("step_"))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint (LATEST if valid, else the newest intact folder), or None."""
    ckdir = Path(run_dir) / CHECKPOINTS
    cands = list_checkpoints(run_dir)
    latest = ckdir / "LATEST"
    if latest.is_file():
        p = ckdir / latest.read_text(errors="replace").strip()  # a garbled LATEST: the newest intact folder wins
        if p in cands and _is_complete(p):
            return p
    for p in reversed(cands):
        if _is_complete(p):
            return p
    return None


def _is_complete(p: Path) -> bool:
    return all((p / f).is_file() for f in ("model.safetensors", "optimizer.safetensors", "meta.json"))


def load_checkpoint(path: str | Path, verify: bool = True
                    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """Read (model tensors, optimizer tensors, meta) of a checkpoint folder or run directory.

    With ``verify`` (the default) the SHA-256 sums recorded in ``meta.json`` are checked (checkpoints written
    before they were recorded load unverified, with a warning). Always: the step in the folder name,
    ``meta["step"]`` and the optimizer's step counters must agree. Raises :class:`CheckpointError` with the fix."""
    path = Path(path)
    if (path / CHECKPOINTS).is_dir() or is_run_dir(path):
        ck = latest_checkpoint(path)
        if ck is None:
            raise CheckpointError(f"no complete checkpoint under {path}/checkpoints; train first or check the path")
        path = ck
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist")
    fix = "delete it to fall back to the previous one, or retrain"
    try:
        meta = read_json_object(path / "meta.json", fix)
        sums = meta.get("sha256")
        if verify and sums is None:
            warnings.warn(f"checkpoint {path} records no SHA-256 sums (written before rins recorded them, or its "
                          "meta.json was edited): loaded unverified; train on from it (or --extend) to write a "
                          "verified checkpoint", stacklevel=2)
        if verify and sums is not None:
            if not isinstance(sums, dict) or sums.get("meta") != _meta_sha256(meta):
                raise CheckpointError(f"checkpoint {path}: meta.json was modified after it was written (SHA-256 "
                                      f"mismatch); {fix} (or pass --no-verify to load it anyway)")
            for f in TENSOR_FILES:
                if (path / f).exists() and _file_sha256(path / f) != sums.get(f):
                    raise CheckpointError(f"checkpoint {path}: {f} fails its SHA-256 check (corrupt or modified); "
                                          f"{fix} (or pass --no-verify to load it anyway)")
        weights = load_file(str(path / "model.safetensors"))
        opt = load_file(str(path / "optimizer.safetensors")) if (path / "optimizer.safetensors").exists() else {}
    except RunFileError as e:
        raise CheckpointError(f"checkpoint {e}") from e
    except (SafetensorError, OSError, json.JSONDecodeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({e}); {fix}") from e
    _check_step(path, meta, opt)
    _check_meta(path, meta)
    return weights, opt, meta


def _check_meta(path: Path, meta: dict[str, Any]) -> None:
    """The counters and tables of ``meta.json`` by type and range. The hash proves who wrote the file, not that
    its values are sane (a meta.json rewritten with its SHA-256 recomputed must still be refused)."""
    def bad(key: str, allowed: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {path}: meta.json {key}={meta[key]!r} is invalid ({allowed}); the "
                               "checkpoint is corrupt, delete it to fall back to the previous one")

    tokens = meta.get("tokens")
    if "tokens" in meta and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0):
        raise bad("tokens", "must be an integer >= 0")
    flops = meta.get("flops")
    if "flops" in meta and (isinstance(flops, bool) or not isinstance(flops, int | float)
                            or not math.isfinite(flops) or flops < 0):
        raise bad("flops", "must be a finite number >= 0")
    if "name" in meta and not isinstance(meta["name"], str):
        raise bad("name", "must be a string")
    for key in ("model_config", "optimizer", "sha256"):
        if key in meta and not isinstance(meta[key], dict):
            raise bad(key, "must be a JSON object")


def _check_step(path: Path, meta: dict[str, Any], opt: dict[str, torch.Tensor]) -> None:
    """The step is stated three times (folder name, meta, optimizer counters): they must agree."""
    step = meta.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"checkpoint {path}: meta.json step={step!r} is not a step number; the checkpoint "
                              "is corrupt, delete it")
    m = re.fullmatch(r"step_(\d+)", path.name)
    if m and int(m.group(1)) != step:
        raise CheckpointError(f"checkpoint {path}: meta.json says step {step} but the folder is step "
                              f"{int(m.group(1))}; the checkpoint was modified, delete it")
    for name, t in opt.items():
        if name.startswith("state.") and name.endswith(".step"):
            if t.numel() != 1 or not bool(torch.isfinite(t.float()).all()) or float(t) != step:
                raise CheckpointError(f"checkpoint {path}: optimizer {name}={t.flatten()[:1].tolist()} does not "
                                      f"match meta.json step {step}; the checkpoint was modified, delete it")
            return  # one counter is enough: every parameter steps together


def check_rng_state(t: torch.Tensor, source: str = "checkpoint") -> None:
    """Refuse a saved CPU RNG state of the wrong dtype or size before ``torch.set_rng_state`` reads it."""
    ref = torch.get_rng_state()
    if t.dtype != ref.dtype or t.shape != ref.shape:
        raise CheckpointError(f"{source}: rng.torch has dtype {t.dtype} and shape {tuple(t.shape)}, expected "
                              f"{ref.dtype} {tuple(ref.shape)}; the checkpoint is corrupt, delete it")


def load_state_into(model: torch.nn.Module, weights: dict[str, torch.Tensor], source: str = "checkpoint",
                    allow_missing: tuple[str, ...] = ()) -> None:
    """Load weights strictly (tied names may be absent), with a clear error on any mismatch.

    Names starting with a prefix in ``allow_missing`` may be absent and keep their initial values (e.g.
    zero-initialised adapters added when continuing from a model trained without them)."""
    own = model.state_dict()
    root = {k: k for k in own} | tied_aliases(model)
    stored = {root[k] for k in weights if k in root}
    tied = {k for k in own if k not in weights and root[k] in stored}  # another name of the tensor was saved
    missing = [k for k in own if k not in weights and k not in tied and not k.startswith(allow_missing)]
    unexpected = [k for k in weights if k not in own]
    shape_bad = [f"{k}: {tuple(weights[k].shape)} vs model {tuple(own[k].shape)}"
                 for k in weights if k in own and weights[k].shape != own[k].shape]
    # a float weight may be stored in a 16-bit float (bf16/fp16, e.g. a converted model) and is widened on
    # load; any other dtype (float64, ints for floats) must match the model's exactly
    shape_bad += [f"{k}: dtype {weights[k].dtype} vs model {own[k].dtype}" for k in weights if k in own and
                  weights[k].dtype != own[k].dtype and not (weights[k].dtype in HALF_DTYPES and
                                                            own[k].is_floating_point())]
    if missing or unexpected or shape_bad:
        raise CheckpointError(
            f"{source} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"shape mismatches {shape_bad[:5]}; build the model with the checkpoint's config "
            "(see its meta.json / config.json)"
        )
    bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{source} holds non-finite (NaN/inf) values in {len(bad)} tensor(s), e.g. "
                              f"{bad[:3]}; it is unusable: delete it to fall back to the previous checkpoint")
    model.load_state_dict(weights, strict=False)


def load_model(path: str | Path, device: str | torch.device = "cpu", verify: bool = True):
    """Rebuild a ``RecursiveLM`` from a run directory or checkpoint folder (weights + config).

    The architecture comes from the checkpoint's ``meta.json``; in a run directory its recursion fields
    (signature, degree, adapters, ...) must agree with the run's ``config.json``."""
    from .model import LMConfig, RecursiveLM

    check_load_args("load_model", path, device, verify)
    weights, _, meta = load_checkpoint(path, verify=verify)
    cfg = meta.get("model_config")
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: meta.json has no model_config; not a rins LM checkpoint")
    try:
        lm_cfg = LMConfig.from_dict(cfg)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: meta.json holds an invalid model_config ({e}); the checkpoint is "
                              "corrupt") from e
    run_arch, run_config_file = _run_architecture(Path(path))
    check_architecture(path, lm_cfg.to_dict(), run_arch, run_config_file, keys=run_arch)
    model = RecursiveLM(lm_cfg)
    load_state_into(model, weights, str(path))
    return model.to(device).eval()


def check_load_args(where: str, path: Any, device: Any, verify: Any) -> None:
    """``path``, ``device`` and ``verify`` of a public loader by type (:class:`rins.ConfigError` naming them)."""
    if not isinstance(path, str | os.PathLike):
        raise bad_argument(where, "path", path, "must be a run directory or checkpoint folder (str or Path)")
    if not isinstance(verify, bool):
        raise bad_argument(where, "verify", verify, "must be True or False")
    if not isinstance(device, str | torch.device):
        raise bad_argument(where, "device", device, "must be a device such as 'cpu' or 'cuda:0'")
    check_device(where, "device", device)


def check_device(where: str, name: str, device: Any) -> torch.device:
    """``device`` parsed (cpu, cuda, cuda:N, mps), and present on this machine; :class:`rins.ConfigError`
    naming ``where`` and ``name`` otherwise."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise bad_argument(where, name, device, "is not a device: use cpu, cuda, cuda:N or mps")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise bad_argument(where, name, device, "CUDA is not available on this machine; use cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise bad_argument(where, name, device, "MPS is not available on this machine; use cpu")
    return dev


def check_architecture(path: str | Path, saved: dict[str, Any] | None, expected: dict[str, Any] | None,
                       against: str, keys: Iterable[str] | None = None) -> None:
    """A checkpoint's model config (``saved``, from its meta.json) against the architecture it is loaded as
    (``expected``: its run's config.json, or the model a resumed run built; ``against`` names it in the error), so
    that a checkpoint from another run, or an edited meta.json, cannot run another architecture under a run's
    name. With ``keys`` only those fields are compared, where both sides have them; else every field."""
    if saved is None or expected is None:
        return
    if keys is None:
        diff = sorted(k for k in set(saved) | set(expected) if saved.get(k) != expected.get(k))
    else:
        diff = sorted(k for k in keys if k in saved and k in expected and saved[k] != expected[k])
    if diff:
        shown = ", ".join(f"{k}={saved.get(k)!r} vs {expected.get(k)!r}" for k in diff[:4])
        raise CheckpointError(f"checkpoint {path}: its model config differs from {against} in {diff} ({shown}); "
                              "the checkpoint belongs to another run or was modified (delete it, or --no-resume)")


def _run_architecture(path: Path) -> tuple[dict[str, Any] | None, str]:
    """The recursion fields (those of ``StackConfig``) of the LM run that ``path`` is or belongs to, from its
    config.json, and that file's name; (None, "") outside a run directory or when its config cannot be read
    (the caller reports an unreadable config.json its own way)."""
    from .model import LMConfig, StackConfig

    run = run_dir_of(path)
    if run is None:
        return None, ""
    try:
        run_cfg = run_config(run)
        model = run_cfg.get("model") or {} if run_cfg.get("task", "lm") == "lm" else {}
        model = coerce_fields(LMConfig, model)
    except (OSError, ValueError, AttributeError):
        return None, ""
    stack = {f.name for f in fields(StackConfig)}
    return ({k: list(v) if isinstance(v, tuple) else v for k, v in model.items() if k in stack},
            str(run / CONFIG_FILE))


def restore_optimizer(optimizer: torch.optim.Optimizer, opt_tensors: dict[str, torch.Tensor],
                      meta: dict[str, Any]) -> None:
    """Load the optimizer state saved by :func:`save_checkpoint`, after checking every tensor's shape, dtype
    and finiteness against the parameter it belongs to (a wrong shape would be read out of bounds by the fused
    kernels)."""
    if "optimizer" not in meta:
        raise CheckpointError("checkpoint has no optimizer state")
    try:
        sd = unflatten_optimizer(opt_tensors, meta["optimizer"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"checkpoint optimizer state is malformed ({e}); the checkpoint is corrupt, "
                              "delete it") from e
    check_optimizer_state(optimizer, sd)
    optimizer.load_state_dict(sd)


def check_optimizer_state(optimizer: torch.optim.Optimizer, sd: dict[str, Any]) -> None:
    """Raise :class:`CheckpointError` unless ``sd`` (an index-keyed optimizer state dict) fits ``optimizer``:
    the same groups and sizes, every moment tensor shaped and typed like its parameter, all finite."""
    fix = "the checkpoint is corrupt or from another model; delete it to fall back to the previous one"
    groups, saved = optimizer.param_groups, sd.get("param_groups")
    if (not isinstance(saved, list) or len(saved) != len(groups)
            or any(not isinstance(s, dict) or len(s.get("params", ())) != len(g["params"])
                   for s, g in zip(saved, groups))):
        raise CheckpointError(f"optimizer state has parameter groups of sizes "
                              f"{[len(s.get('params', ())) if isinstance(s, dict) else '?' for s in saved or []]}, "
                              f"the model has {[len(g['params']) for g in groups]}; {fix}")
    param_of = dict(zip((i for s in saved for i in s["params"]), (p for g in groups for p in g["params"])))
    for idx, st in sd["state"].items():
        p = param_of.get(idx)
        if p is None:
            raise CheckpointError(f"optimizer state for parameter {idx}, which no group holds; {fix}")
        for key, t in st.items():
            if not isinstance(t, torch.Tensor):
                continue
            name = f"state.{idx}.{key}"
            if key == "step":
                if t.numel() != 1:
                    raise CheckpointError(f"optimizer {name} has shape {tuple(t.shape)}, dtype {t.dtype}; "
                                          f"expected one number; {fix}")
                continue
            if tuple(t.shape) != tuple(p.shape) or t.dtype != p.dtype:
                raise CheckpointError(f"optimizer {name} has shape {tuple(t.shape)} and dtype {t.dtype}, its "
                                      f"parameter {tuple(p.shape)} and {p.dtype}; {fix}")
            if not bool(torch.isfinite(t).all()) or (key == "exp_avg_sq" and bool((t < 0).any())):
                raise CheckpointError(f"optimizer {name} holds non-finite or negative values; {fix}")
