"""Typed training configs: dataclass trees, TOML files, ``--set a.b=value`` overrides, named presets.

The config sits above the tasks (it parses a ``[model]`` table into the task's own typed config); parsing a
field by its declared type is :mod:`rins.fields`, below everything, which the model and the tasks use too.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from .fields import (
    ConfigError,
    coerce_fields,
    coerce_value,
    default_cache_dir,
    given_fields,
    invalid,
    mark_given,
    parse_fields,
    split_model_section,
)
from .plan import SignatureError
from .runs import LOCK_SUFFIX

__all__ = [
    "BudgetConfig",
    "DataConfig",
    "OptimConfig",
    "TrainConfig",
    "PRESETS",
    "apply_overrides",
    "deep_update",
    "load_config",
    "load_run_config",
    "preset_dict",
    "read_toml",
]


_DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:\d{1,4})?")  # parsed when the config is built, not at start


def _check(key: str, value: Any, ok: bool, allowed: str) -> None:
    if not ok:
        raise invalid(key, value, allowed)


def _validate_fields(obj: Any, prefix: str) -> None:
    """Parse every field of a config dataclass by its declared type, in place."""
    for k, v in coerce_fields(type(obj), {f.name: getattr(obj, f.name) for f in fields(obj)
                                          if not is_dataclass(getattr(obj, f.name))}, prefix).items():
        setattr(obj, k, v)


@dataclass
class DataConfig:
    """Where tokens come from. ``corpus``: ``shakespeare`` (default), ``mix``, a path, or ``hf:NAME``."""

    corpus: str = "shakespeare"  # shakespeare | mix | mix-large[:parts] | mix-xl[:parts] | a file or folder | hf:NAME
    cache_dir: str = field(default_factory=default_cache_dir)  # corpora/token cache: $RINS_CACHE|$XDG_CACHE_HOME/rins
    vocab_size: int = 8192  # size of the BPE vocabulary trained on the corpus
    val_fraction: float = 0.1  # share of documents held out for validation
    seq_len: int = 256  # tokens per training sequence (the context trained)
    tokenizer: str | None = None  # an existing tokenizer.json instead of training a BPE (e.g. a converted model's)
    # the task's data-side options: siglip and vit take rins.tasks.vision.VisionOptions fields (augment, ...)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """AdamW and the learning-rate schedule, laid out over the compute-matched number of steps."""

    lr: float = 3e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # final learning rate as a share of lr (cosine and wsd)
    weight_decay: float = 0.1  # AdamW decoupled weight decay (not on norms, biases, embeddings)
    beta1: float = 0.9  # AdamW first-moment decay
    beta2: float = 0.95  # AdamW second-moment decay
    eps: float = 1e-8  # AdamW epsilon
    warmup_frac: float = 0.05  # share of steps spent in linear warmup
    schedule: str = "cosine"  # "cosine" | "wsd" (warmup-stable-decay) | "constant"
    cooldown_frac: float = 0.2  # wsd: share of steps spent decaying
    grad_clip: float = 1.0  # clip the global gradient norm to this (0: no clipping)
    fused: bool | None = None  # None: fused AdamW on CUDA and CPU (where torch has the kernel)


@dataclass
class BudgetConfig:
    """The training budget. Exactly one of ``flops`` / ``tokens`` / ``steps`` is used, in that priority.

    ``flops`` is the compute-matched mode: steps = flops / (expected training FLOPs of one step).
    """

    flops: float | None = None  # training FLOPs (compute-matched: steps = flops / FLOPs per step)
    tokens: int | None = None  # training tokens (examples for vision tasks), when flops is none
    steps: int | None = None  # optimizer steps, when flops and tokens are none


@dataclass
class TrainConfig:
    """Everything a run needs; saved as ``config.json`` into every run directory."""

    name: str = "run"  # run name: the run directory is out_dir/name
    task: str = "lm"  # "lm" | "siglip" | "vit" (the names in rins.tasks.TASKS)
    # the task's typed model config (rins.LMConfig for lm, SigLIPConfig for siglip, ViTConfig for vit): a [model]
    # table is parsed into it on load, with the defaults the task derives from the data and the seed
    model: Any = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    budget: BudgetConfig = field(default_factory=lambda: BudgetConfig(steps=100))
    batch_size: int = 16  # sequences (examples) per optimizer step, over all ranks
    grad_accum: int = 1  # micro-batches per step (batch_size must divide by grad_accum × world size)
    seed: int = 0  # seed of initialisation, data order and stochastic depth
    n_evals: int = 12  # evaluation points, spaced geometrically over the run (for scaling-law fits)
    eval_batches: int = 16  # validation batches per evaluation
    eval_depths: list[int] | None = None  # None: 1 … r_max + 1 for a recursive model
    eval_all_depths: bool = False  # every eval point at every depth (default: only the final one)
    log_every: int = 10  # a train record every this many steps
    ckpt_every: int = 200  # a checkpoint every this many steps (and at the end)
    keep_last: int = 2  # checkpoints kept (0: all)
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:1" …
    dtype: str = "float32"  # "float32" | "bfloat16" (autocast)
    threads: int = 0  # CPU intra-op threads (0: torch's default); 1 is far faster on a shared, loaded machine
    # torch.compile each block (not the recursion loop): true, false, or "auto": on where it pays, i.e. on CUDA
    # or a CPU with a C++ compiler, for runs of 300 steps or more
    compile: bool | str = "auto"
    fused_loss: bool = True  # LM head + cross-entropy in chunks, without the (N, V) logits (rins.losses)
    out_dir: str = "runs"  # parent folder of run directories
    progress: bool = True  # a progress bar on a terminal (else a log line every log_every steps)
    loggers: str = "jsonl"  # also log to: tensorboard, wandb (offline), comma-separated; log.jsonl always

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Parse every field by its declared type and check its range; :class:`ConfigError` names the key."""
        for name, sec in (("data", DataConfig), ("optim", OptimConfig), ("budget", BudgetConfig)):
            if isinstance(getattr(self, name), dict):
                setattr(self, name, _from_dict(sec, getattr(self, name), name + "."))
            if not isinstance(getattr(self, name), sec):
                raise invalid(name, getattr(self, name), f"must be a [{name}] table")
            _validate_fields(getattr(self, name), name + ".")
        _validate_fields(self, "")
        _check("data.options", self.data.options, isinstance(self.data.options, dict), "must be a [data.options] table")
        # before the model: its depth_seed defaults to the seed, and the error should name the seed
        _check("seed", self.seed, 0 <= self.seed < 2**32, "must be an integer in [0, 2^32)")
        self._type_model()
        _check("name", self.name, _confined(self.name),
               "must be a relative folder name inside out_dir (no '..', not absolute, not empty)")
        _check("out_dir", self.out_dir, bool(self.out_dir.strip()), "must be a non-empty path")
        _check_paths(self.out_dir, self.name)
        for key in ("batch_size", "grad_accum", "n_evals", "eval_batches", "log_every", "ckpt_every"):
            _check(key, getattr(self, key), getattr(self, key) >= 1, "must be >= 1")
        _check("keep_last", self.keep_last, self.keep_last >= 0, "must be >= 0 (0 keeps every checkpoint)")
        _check("threads", self.threads, 0 <= self.threads <= 4096, "must be in [0, 4096] (0: torch's default)")
        _check("dtype", self.dtype, self.dtype in ("float32", "bfloat16"), "must be 'float32' or 'bfloat16'")
        _check("compile", self.compile, isinstance(self.compile, bool) or self.compile == "auto",
               "must be true, false or 'auto' (on where it pays: CUDA, or a CPU with a C++ compiler, for long runs)")
        _check("device", self.device, _DEVICE_RE.fullmatch(self.device) is not None,
               "must be auto, cpu, cuda, cuda:N or mps")
        from .loggers import LOGGERS, parse_loggers

        try:
            parse_loggers(self.loggers)
        except ValueError:
            raise invalid("loggers", self.loggers, f"must be comma-separated names from {', '.join(LOGGERS)}") from None
        if self.eval_depths is not None:
            _check("eval_depths", self.eval_depths, bool(self.eval_depths) and all(1 <= r <= 1024
                                                                                   for r in self.eval_depths),
                   "must be none or a non-empty list of depths in [1, 1024]")
        d, o, b = self.data, self.optim, self.budget
        _check("data.corpus", d.corpus, bool(d.corpus.strip()),
               "must name a corpus: shakespeare, mix, a path or hf:NAME (empty would read the current folder)")
        _check("data.cache_dir", d.cache_dir, bool(d.cache_dir.strip()), "must be a non-empty path")
        _check("data.vocab_size", d.vocab_size, d.vocab_size >= 2, "must be >= 2")
        _check("data.seq_len", d.seq_len, d.seq_len >= 1, "must be >= 1")
        _check("data.val_fraction", d.val_fraction, 0 < d.val_fraction < 1, "must be in (0, 1)")
        if d.tokenizer is not None:
            _check("data.tokenizer", d.tokenizer, bool(d.tokenizer.strip()), "must be none or a tokenizer.json path")
        _check("optim.lr", o.lr, o.lr > 0, "must be > 0")
        for key in ("min_lr_ratio", "warmup_frac", "cooldown_frac"):
            _check(f"optim.{key}", getattr(o, key), 0 <= getattr(o, key) <= 1, "must be in [0, 1]")
        for key in ("beta1", "beta2"):
            _check(f"optim.{key}", getattr(o, key), 0 <= getattr(o, key) < 1, "must be in [0, 1)")
        _check("optim.eps", o.eps, 0 < o.eps <= 1, "must be in (0, 1] (usual: 1e-8)")
        _check("optim.weight_decay", o.weight_decay, o.weight_decay >= 0, "must be >= 0")
        _check("optim.grad_clip", o.grad_clip, o.grad_clip >= 0, "must be >= 0 (0: no clipping)")
        _check("optim.schedule", o.schedule, o.schedule in ("cosine", "wsd", "constant"),
               "must be 'cosine', 'wsd' or 'constant'")
        if b.flops is not None:
            _check("budget.flops", b.flops, b.flops > 0, "must be > 0 (training FLOPs, e.g. 3e13)")
        for key in ("tokens", "steps"):
            if getattr(b, key) is not None:
                _check(f"budget.{key}", getattr(b, key), getattr(b, key) >= 1, "must be >= 1")

    def _type_model(self) -> None:
        """Parse a ``[model]`` table (old layout migrated) into the task's typed config, remembering which fields
        it named: they are what :meth:`to_dict` writes, and the rest stay free for the data to decide."""
        from .tasks import TASKS, task_class  # on first use: the tasks load torch

        try:
            cls = getattr(task_class(self.task), "config_class", None)
        except ValueError:
            raise invalid("task", self.task, f"must be one of {', '.join(sorted(TASKS))}") from None
        if cls is None:  # a user's task without a typed config keeps its table
            return
        if isinstance(self.model, cls):
            return
        if not isinstance(self.model, dict):
            raise invalid("model", self.model, f"must be a [model] table of {cls.__name__} fields (task {self.task!r})")
        model, options = split_model_section(self.task, self.model)
        if options:
            self.data.options = {**options, **self.data.options}
        given = parse_fields(cls, model, "model.")
        try:
            typed = task_class(self.task).model_config_from(given, self)
        except (ValueError, TypeError) as e:
            if isinstance(e, ConfigError) and str(e).startswith("config "):  # names its key already
                raise
            # a check of the model config itself (e.g. across fields): said as the [model] table's error
            msg = str(e).removeprefix(f"{cls.__name__}: ")
            kind = type(e) if isinstance(e, SignatureError) else ConfigError  # a signature's error keeps its type
            raise kind(f"config [model] of task {self.task!r} is invalid: {msg}") from None
        mark_given(typed, given)
        self.model = typed

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (``config.json``): every field; of the model, the fields the config named (see
        :func:`given_fields`), so that the defaults the task derives from the data stay derived on reload."""
        d = asdict(self)
        d["model"] = given_fields(self.model) if is_dataclass(self.model) else copy.deepcopy(self.model)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, d, "")

    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


_SYSTEM_DIRS = ("/proc", "/dev", "/sys")  # kernel file systems: nothing of a run belongs there
NAME_MAX = 255 - len(LOCK_SUFFIX)  # bytes of one folder name (255 on Linux, macOS), less the run's lock-file suffix


def _check_paths(out_dir: str, name: str) -> None:
    """``out_dir`` not the file-system root nor inside /proc, /dev, /sys; every folder name of ``out_dir/name``
    within the file system's limit. Checked when the config is built, before anything is written."""
    for key, value in (("out_dir", out_dir), ("name", name)):
        long = next((p for p in Path(value).parts if len(p.encode("utf-8", "surrogatepass")) > NAME_MAX), None)
        if long is not None:
            raise invalid(key, value, f"has a folder name of {len(long.encode('utf-8', 'surrogatepass'))} bytes; "
                          f"the limit is {NAME_MAX} bytes per name (255 less '.lock'): use a shorter one")
    try:
        where = Path(out_dir).expanduser().resolve()
    except (OSError, RuntimeError):  # a symlink loop: the mkdir will say so, naming the path
        return
    if where == Path(where.anchor):
        raise invalid("out_dir", out_dir, f"is the file-system root: runs would be written as {where / name} and "
                      f"{where / name}.lock; use a folder such as runs")
    inside = next((d for d in _SYSTEM_DIRS if where == Path(d) or Path(d) in where.parents), None)
    if inside is not None:
        raise invalid("out_dir", out_dir, f"is inside {inside} (resolved: {where}), a kernel file system where runs "
                      "cannot be written; use a folder such as runs")


def _confined(name: str) -> bool:
    """A run name that stays inside ``out_dir`` (deleting a run with --no-resume must not reach outside it)."""
    p = Path(name)
    return bool(name.strip()) and not p.is_absolute() and ".." not in p.parts and "\\" not in name \
        and any(part not in ("", ".") for part in p.parts)


def _from_dict(cls, d: dict[str, Any], prefix: str):
    if not isinstance(d, dict):
        raise ValueError(f"config section {prefix or '<root>'} must be a table/dict, got {type(d).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ValueError(f"unknown config keys {[prefix + k for k in unknown]}; known: {sorted(known)}")
    kw = {}
    hints = typing.get_type_hints(cls)  # TrainConfig.model is Any: the task types it (TrainConfig.validate)
    for k, v in d.items():
        if is_dataclass(hints[k]) and isinstance(v, dict):
            kw[k] = _from_dict(hints[k], v, f"{prefix}{k}.")
        else:
            kw[k] = v
    return cls(**kw)


def _parse_value(text: str) -> Any:
    low = text.strip()
    if low.lower() in ("none", "null"):
        return None
    if low.lower() in ("true", "false"):
        return low.lower() == "true"
    try:
        return json.loads(low)
    except json.JSONDecodeError:
        try:
            return float(low) if any(c in low for c in ".eE") and low[0].isdigit() else low
        except ValueError:
            return low


def apply_overrides(d: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as JSON, else kept as strings)."""
    d = copy.deepcopy(d)
    for ov in overrides:
        if "=" not in ov:
            raise ValueError(f"override {ov!r} must look like section.key=value, e.g. model.d_model=512")
        key, val = ov.split("=", 1)
        parts = key.strip().split(".")
        cur = d
        for p in parts[:-1]:
            if p not in cur or not isinstance(cur[p], dict):
                if p == "model" or p not in cur:
                    cur.setdefault(p, {})
                else:
                    raise ValueError(f"override {ov!r}: {p!r} is not a section")
            cur = cur[p]
        cur[parts[-1]] = _parse_typed(val, _declared_type(parts, d), key.strip())
    return d


def _declared_type(parts: list[str], d: dict[str, Any]) -> Any:
    """The declared type of a dotted config key (``model.*`` by the task's model config class)."""
    cls: Any = TrainConfig
    for i, p in enumerate(parts):
        if cls is TrainConfig and p == "model":
            from .tasks import task_class

            try:
                cls = getattr(task_class(d.get("task", "lm")), "config_class", None)
            except ValueError:
                return None
            if cls is None or i == len(parts) - 1:
                return None
            continue
        hints = typing.get_type_hints(cls)
        if p not in hints:
            return None
        tp = hints[p]
        if i == len(parts) - 1:
            return tp
        if not is_dataclass(tp):
            return None
        cls = tp
    return None


def _parse_typed(text: str, tp: Any, key: str = "") -> Any:
    """An override's text: string fields keep it verbatim (``name=123`` is the name "123"), the rest as JSON, and
    text that is not JSON by the field's declared type (``yes`` a boolean, ``2,4`` a list of integers)."""
    if tp in (str, str | None):
        t = text.strip()
        if tp is not str and t.lower() in ("none", "null"):
            return None
        if len(t) >= 2 and t[0] == t[-1] == '"':
            try:
                return json.loads(t)
            except json.JSONDecodeError:
                return t
        return t
    value = _parse_value(text)
    if isinstance(value, str) and tp is not None:
        return coerce_value(key, value, tp, text=True)
    return value


def _tiny() -> dict[str, Any]:
    return {
        "name": "tiny",
        "model": {"n_layers": 4, "d_model": 32, "n_heads": 4, "max_seq_len": 32, "signature": "AB"},
        "data": {"vocab_size": 512, "seq_len": 32},
        "budget": {"steps": 20},
        "batch_size": 8,
        "n_evals": 4,
        "eval_batches": 4,
        "ckpt_every": 10,
        "optim": {"lr": 3e-3},
    }


def _cpu_small() -> dict[str, Any]:
    return {
        "name": "cpu-small",
        "model": {"n_layers": 6, "d_model": 256, "n_heads": 4, "max_seq_len": 256, "signature": "AB"},
        "data": {"vocab_size": 8192, "seq_len": 256},
        "budget": {"flops": 3e13},
        "batch_size": 16,
        "dtype": "bfloat16",
        "n_evals": 8,
        "eval_batches": 8,
        "optim": {"lr": 3e-3, "warmup_frac": 0.05},
    }


def _gpu(d: int, layers: int, heads: int) -> dict[str, Any]:
    return {
        "model": {"n_layers": layers, "d_model": d, "n_heads": heads, "max_seq_len": 1024, "signature": "AB"},
        "data": {"vocab_size": 32768, "seq_len": 1024, "corpus": "mix"},
        "budget": {"flops": 1e18},
        "batch_size": 256,
        "grad_accum": 4,
        "dtype": "bfloat16",
        "compile": True,
        "device": "cuda",
        "n_evals": 16,
        "eval_batches": 50,
        "ckpt_every": 1000,
        "optim": {"lr": 1.5e-3, "warmup_frac": 0.02, "weight_decay": 0.1},
    }


def _tower(layers: int, d: int, heads: int, **kw: Any) -> dict[str, Any]:
    return {"n_layers": layers, "d_model": d, "n_heads": heads, "signature": "AB", **kw}


def _vision_cpu(name: str, task: str, model: dict[str, Any], flops: float, options: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "task": task,
        "model": model,
        "data": {"corpus": "fashion-mnist", "options": options},
        "budget": {"flops": flops},
        "batch_size": 64,
        "n_evals": 6,
        "threads": 1,
        "optim": {"lr": 1e-3, "warmup_frac": 0.1, "weight_decay": 0.0},
    }


def _siglip_cpu() -> dict[str, Any]:
    """The CPU SigLIP of RESULTS.md: Fashion-MNIST, d=48, 4+4 layers, ~250k parameters, minutes on 2 cores.
    RINS per tower: ``--set model.image.signature=A^2B`` (or ``model.text.signature``)."""
    model = {"embed_dim": 48, "loss": "sigmoid", "image": _tower(4, 48, 4, patch_size=7, pool="mean"),
             "text": _tower(4, 48, 4, pool="mean")}
    return _vision_cpu("siglip-cpu", "siglip", model, 1.87e12,
                       {"augment": False, "eval_images": 1000, "eval_retrieval": 500})


def _vit_cpu() -> dict[str, Any]:
    """The ViT-classifier control at the image-tower shape of ``siglip-cpu``."""
    return _vision_cpu("vit-cpu", "vit", _tower(4, 48, 4, patch_size=7, pool="mean"), 4.39e11, {"augment": False})


def _siglip_b16() -> dict[str, Any]:
    """SigLIP-B/16 shapes for GPUs (point ``data.corpus`` at your image-caption tar shards or CSV)."""
    return {
        "name": "siglip-b16",
        "task": "siglip",
        "model": {"embed_dim": 768, "loss": "sigmoid", "chunk_size": 1024,
                  "image": _tower(12, 768, 12, patch_size=16, image_size=224, channels=3, pool="map"),
                  "text": _tower(12, 768, 12, max_len=64, pool="last")},
        "data": {"corpus": "emoji"},
        "budget": {"flops": 1e19},
        "batch_size": 4096,
        "grad_accum": 4,
        "dtype": "bfloat16",
        "compile": True,
        "device": "cuda",
        "n_evals": 12,
        "optim": {"lr": 1e-3, "warmup_frac": 0.05, "weight_decay": 1e-4},
    }


PRESETS: dict[str, Any] = {
    "siglip-cpu": _siglip_cpu,
    "vit-cpu": _vit_cpu,
    "siglip-b16": _siglip_b16,
    "tiny": _tiny,
    "cpu-small": _cpu_small,
    "gpu-125m": lambda: {"name": "gpu-125m", **_gpu(768, 12, 12)},
    "gpu-350m": lambda: {"name": "gpu-350m", **_gpu(1024, 24, 16)},
}


def preset_dict(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    return PRESETS[name]()


def deep_update(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``new`` merged in: nested tables merge key by key, every other value replaces."""
    out = copy.deepcopy(base)
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_update(out[k], v)
        else:
            out[k] = v
    return out


def read_toml(path: str | Path, what: str = "file") -> dict[str, Any]:
    """Parse a TOML file, with clear errors for a missing file or invalid TOML."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{what} {p} is a folder; give a TOML file")
    if not p.is_file():
        raise FileNotFoundError(f"{what} {p} does not exist" if not p.exists() else f"{what} {p} is not a regular file")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{p}: invalid TOML ({e})") from e


def load_config(preset: str | None = None, toml_path: str | Path | None = None,
                overrides: list[str] | None = None) -> TrainConfig:
    """Build a :class:`TrainConfig`: preset, then a TOML file (may name ``preset = "..."``), then overrides.

    A ``[budget]`` given by the TOML file or an override replaces the preset's budget entirely, so
    ``budget.steps=50`` on top of a FLOPs preset means 50 steps.
    """
    d: dict[str, Any] = {}
    layers: list[dict[str, Any]] = []
    if toml_path is not None:
        t = read_toml(toml_path, "config file")
        preset = t.pop("preset", preset)
        layers.append(t)
    if preset:
        d = preset_dict(preset)
    # a preset pins model.max_seq_len to its data.seq_len; it follows a changed seq_len unless set as well
    pinned = d.get("model", {}).get("max_seq_len")
    follows = pinned is not None and pinned == d.get("data", {}).get("seq_len")
    if follows:
        order = list(d["model"]).index("max_seq_len")
        d["model"].pop("max_seq_len")
    for t in layers:
        if "budget" in t:
            d.pop("budget", None)
        d = deep_update(d, t)
    if overrides:
        if any(o.split("=", 1)[0].startswith("budget.") for o in overrides):
            d["budget"] = {}
        d = apply_overrides(d, overrides)
    if follows:  # put back, in its place, at the data's length: the preset's runs keep their recorded config
        m = d.setdefault("model", {})
        value = m.pop("max_seq_len", d.get("data", {}).get("seq_len", pinned))
        items = list(m.items())
        items.insert(min(order, len(items)), ("max_seq_len", value))
        d["model"] = dict(items)
    return TrainConfig.from_dict(d)


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The :class:`~rins.config.TrainConfig` of a run directory, from its ``config.json``.

    ``FileNotFoundError`` when ``run_dir`` is not a run directory; :class:`RunFileError` naming
    ``config.json`` when it is corrupt or holds a value the config refuses (the config's own message kept)."""
    from .runfiles import RunFileError
    from .runs import CONFIG_FILE, CONFIG_FIX, run_config

    raw = run_config(run_dir)
    try:
        return TrainConfig.from_dict(raw)
    except (ValueError, TypeError) as e:
        raise RunFileError(f"{Path(run_dir) / CONFIG_FILE}: holds an invalid config ({e}); {CONFIG_FIX}") from e

