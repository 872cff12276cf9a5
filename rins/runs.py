"""Run directories and the small summaries that outlive them.

A run directory (written by :func:`rins.train.train`) holds ``config.json``, ``log.jsonl``, ``summary.json``
and checkpoints: too large to commit, and tied to the machine that trained it. A **run summary** is one
small JSON file per finished run (config, parameters, FLOPs, tokens, final loss at every inference depth,
bits per byte, the held-out learning curve, extra evaluations), meant to be committed into the repository
as a study goes (``results/<study>/<run>.json``). ``rins sweep`` writes them and skips runs whose summary
exists; ``rins report`` builds tables, fits and plots from summaries alone.

This module is the one reader and writer of a run directory's own files (the checkpoints under ``checkpoints/``
belong to :mod:`rins.checkpoint`): the config (:func:`run_config`, :func:`write_run_config`), the log
(:func:`log_path`, :func:`read_log`, :func:`start_record`, :func:`truncate_log`), the run's ``summary.json``
(:func:`read_run_summary`, :func:`write_run_summary_file`, :func:`archive_run_summary`, :func:`is_complete`), its
tokenizer's place (:func:`tokenizer_file`), and the lock beside it (:func:`run_lock`, taken by ``rins train`` and
by sweep workers). It also finds runs and their committed summaries under folders (:func:`find_runs`,
:func:`read_run`). It imports neither torch nor the trainer (parameter counts come from the run's own records).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import subprocess
import time
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .runfiles import atomic_write_json, atomic_write_text, read_json_object

__all__ = ["SUMMARY_FORMAT", "RunRecord", "read_log", "log_path", "start_record", "read_json", "run_config",
           "is_complete", "run_lock", "lock_holder", "lock_pid", "find_runs", "read_run", "run_summary",
           "write_run_summary",
           "load_summary", "summary_path", "atomic_write_json", "CONFIG_FILE", "LOG_FILE", "SUMMARY_FILE",
           "TOKENIZER_FILE", "LOCK_SUFFIX", "is_run_dir", "run_dir_of", "write_run_config", "truncate_log",
           "tokenizer_file", "read_run_summary", "write_run_summary_file", "archive_run_summary", "clear_run_files",
           "lock_file", "DATA_IDENTITY_FILE", "data_identity_file"]

SUMMARY_FORMAT = "rins-run-summary/1"
# the files of a run directory (besides checkpoints/): their names are written here and nowhere else
CONFIG_FILE = "config.json"  # the TrainConfig, written when the run starts
LOG_FILE = "log.jsonl"  # one JSON record per line: start, train, eval events
SUMMARY_FILE = "summary.json"  # the run's result, written when it ends (or stops)
TOKENIZER_FILE = "tokenizer.json"  # the tokenizer it trained with (LM runs)
DATA_IDENTITY_FILE = "data_identity.json"  # the prepared corpus it started on: corpus, settings, source versions
LOCK_SUFFIX = ".lock"  # RUN_DIR.lock, beside the run directory: held while a process trains it
MAX_TRAIN_POINTS = 120  # the train-loss curve is thinned to at most this many points


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object from ``path``, or ``{}`` when it is missing or unreadable."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return obj if isinstance(obj, dict) else {}


CONFIG_FIX = "restore it (it is written once when the run starts) or retrain the run"


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a run directory (it holds a ``config.json``)."""
    return (Path(path) / CONFIG_FILE).is_file()


def run_dir_of(path: str | Path) -> Path | None:
    """The run directory that ``path`` is or whose checkpoint it is (``RUN_DIR/checkpoints/step_N``), or None."""
    path = Path(path)
    return next((p for p in (path, path.parent.parent) if is_run_dir(p)), None)


def run_config(run_dir: str | Path) -> dict[str, Any]:
    """The config (``config.json``, a ``TrainConfig`` as a dict) of a run directory; ``FileNotFoundError`` when
    ``run_dir`` is not one, :class:`~rins.runfiles.RunFileError` naming the file when it is corrupt."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {CONFIG_FILE}); pass the folder that "
                                "`rins train` wrote (OUT_DIR/NAME)")
    return read_json_object(path, CONFIG_FIX)


def write_run_config(run_dir: str | Path, config: dict[str, Any]) -> None:
    """Record a run's config (a ``TrainConfig`` as a dict) as its ``config.json``, atomically."""
    atomic_write_text(Path(run_dir) / CONFIG_FILE, json.dumps(config, indent=1))


def tokenizer_file(run_dir: str | Path) -> Path:
    """Where a run directory keeps its tokenizer (``RUN_DIR/tokenizer.json``; it may not exist)."""
    return Path(run_dir) / TOKENIZER_FILE


def data_identity_file(run_dir: str | Path) -> Path:
    """Where a run directory keeps the identity of the data it started on (``RUN_DIR/data_identity.json``: the
    prepared corpus's cache key; it may not exist, e.g. in runs started before it was recorded)."""
    return Path(run_dir) / DATA_IDENTITY_FILE


def clear_run_files(run_dir: str | Path) -> None:
    """Remove a run directory's log, summary, tokenizer and data identity (a run started over must not inherit
    them)."""
    for f in (LOG_FILE, SUMMARY_FILE, TOKENIZER_FILE, DATA_IDENTITY_FILE):
        (Path(run_dir) / f).unlink(missing_ok=True)


def read_run_summary(run_dir: str | Path) -> dict[str, Any]:
    """The run's own ``RUN_DIR/summary.json`` (written when it ended), or ``{}`` when it has none (or it is
    unreadable)."""
    return read_json(Path(run_dir) / SUMMARY_FILE)


def write_run_summary_file(run_dir: str | Path, summary: dict[str, Any]) -> None:
    """Write the run's ``RUN_DIR/summary.json``, atomically."""
    atomic_write_text(Path(run_dir) / SUMMARY_FILE, json.dumps(summary, indent=1))


def archive_run_summary(run_dir: str | Path, steps: int) -> None:
    """Keep a finished run's summary as ``summary_step{steps}.json`` when the run is extended to a larger budget
    (its own ``summary.json`` will be the longer run's)."""
    p = Path(run_dir) / SUMMARY_FILE
    if p.exists():
        p.replace(p.with_name(f"summary_step{steps}.json"))


def log_path(run_dir: str | Path) -> Path:
    """``RUN_DIR/log.jsonl``, or ``run_dir`` itself when it is a file (a log given directly)."""
    p = Path(run_dir)
    return p if p.is_file() else p / LOG_FILE


def truncate_log(run_dir: str | Path, step: int) -> None:
    """Keep the log records up to ``step`` (the checkpoint a run resumes from): steps that a killed run logged
    after its last checkpoint are run again and must not appear twice. A torn last line is dropped too."""
    path = Path(run_dir) / LOG_FILE
    if not path.exists():
        return
    if step == 0:
        path.unlink()
        return
    keep = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and not (isinstance(rec.get("step"), int) and rec["step"] > step):
            keep.append(line)
    atomic_write_text(path, "".join(x + "\n" for x in keep))


def read_log(run_dir: str | Path, event: str = "eval", warn_malformed: bool = False) -> list[dict[str, Any]]:
    """Records of one kind from ``RUN_DIR/log.jsonl`` (or a log file given directly), one per step (the last
    record of a step wins, for resumed runs), in step order; ``[]`` without a log. Lines that are not JSON
    (a torn last line of a killed run) are skipped, with a warning when ``warn_malformed``."""
    path = log_path(run_dir)
    by_step: dict[int, dict[str, Any]] = {}
    first: dict[str, Any] | None = None
    bad = 0
    if path.exists():
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    bad += line.strip() != ""
                    continue
                if not isinstance(rec, dict) or rec.get("event") != event:
                    continue
                if "step" in rec:
                    by_step[int(rec["step"])] = rec
                elif first is None:
                    first = rec
    if bad and warn_malformed:
        warnings.warn(f"{path}: skipped {bad} malformed line(s)", stacklevel=2)
    if event == "start":
        return [first] if first is not None else [by_step[k] for k in sorted(by_step)][:1]
    return [by_step[k] for k in sorted(by_step)]


def start_record(run_dir: str | Path) -> dict[str, Any]:
    """The ``{"event": "start"}`` record of a run's log (parameters, planned steps, FLOPs per step), or ``{}``."""
    return (read_log(run_dir, "start") or [{}])[0]


def is_complete(run_dir: str | Path) -> bool:
    """True when ``RUN_DIR/summary.json`` says ``"complete": true``."""
    return bool(read_run_summary(run_dir).get("complete"))


def lock_file(run_dir: str | Path) -> Path:
    """The lock file of a run directory: ``RUN_DIR.lock``, beside it (so that clearing the run keeps it)."""
    return Path(str(Path(run_dir)) + LOCK_SUFFIX)


_HELD: set[str] = set()  # lock files this process holds (run_lock is re-entrant within a process)


@contextlib.contextmanager
def run_lock(run_dir: str | Path, reentrant: bool = False) -> Iterator[bool]:
    """Try to take the exclusive lock ``RUN_DIR.lock`` without waiting; yields whether it was taken.

    The lock is an ``fcntl.flock`` on an open file, so it is released when the holder exits, even if
    it is killed: a stale lock file never blocks a later sweep (or ``rins train``). A holder that ends normally
    removes the file. ``reentrant``: taken at once
    when this process holds it already (``train()`` takes its run directory's lock so, inside a sweep worker's).
    """
    lock = lock_file(run_dir)
    lock.parent.mkdir(parents=True, exist_ok=True)
    key = str(lock.resolve())
    if reentrant and key in _HELD:
        yield True
        return
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        try:  # the holder before us may have removed the file after we opened it: lock the file now there
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _HELD.add(key)
        try:
            yield True
        finally:
            _HELD.discard(key)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)  # no lock file left beside a finished run (removed while still locked)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _recorded_pid(run_dir: str | Path) -> int | None:
    """The pid written into ``RUN_DIR.lock`` by its holder (None: no lock file, or none written yet)."""
    try:
        return int(lock_file(run_dir).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def lock_pid(run_dir: str | Path) -> int | None:
    """The process that holds ``RUN_DIR.lock``, read without taking the lock (a probe that took it could make a
    starting worker skip the run): the pid the holder wrote, if that process is alive; None for no lock file or
    a killed holder's stale one."""
    pid = _recorded_pid(run_dir)
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        pass
    return pid


def lock_holder(run_dir: str | Path) -> str:
    """Who holds ``RUN_DIR.lock``, for error messages: ``process 1234 (rins train ...)`` as far as known."""
    pid = _recorded_pid(run_dir)
    if pid is None:
        return "another process"
    try:
        cmd = " ".join(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split())
    except OSError:
        cmd = ""
    return f"process {pid}" + (f" ({cmd[:100]})" if cmd else "")


def summary_path(results_dir: str | Path, name: str) -> Path:
    """Where the summary of run ``name`` lives in ``results_dir``."""
    return Path(results_dir) / f"{name}.json"


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def _git_commit() -> str | None:
    """``git describe --always --dirty`` of the checkout this module was loaded from (None outside git)."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=10"], capture_output=True,
                             text=True, timeout=10, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


# taken when the module is imported: a long sweep worker keeps running the code it started with, so this,
# not the checkout's HEAD when a summary is written hours later, is the code that trained the run
CODE_VERSION = _git_commit()


def run_summary(run_dir: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The small summary of a finished run (see the module docstring); ``extra`` adds fields (e.g.
    ``{"evals": {...}}`` with evaluations on other data, ``{"grid": ..., "size": ...}``).

    Raises ``ValueError`` when the run is not complete.
    """
    rd = Path(run_dir)
    summ = read_run_summary(rd)
    if not summ.get("complete"):
        raise ValueError(f"{rd} is not a complete run (no summary.json with complete=true); finish it first")
    cfg = read_json(rd / CONFIG_FILE)
    start = start_record(rd)
    model = cfg.get("model", {})
    d_model = int(model.get("d_model", 0))
    vocab = int(model.get("vocab_size", cfg.get("data", {}).get("vocab_size", 0)))
    params = int(summ.get("params", start.get("params", 0)))
    tied = bool(model.get("tie_embeddings", True))
    embedding = vocab * d_model * (1 if tied else 2)
    if model.get("pos_embedding") == "learned":
        embedding += int(model.get("max_seq_len", 0)) * d_model
    curve = [{"step": e["step"], "tokens": e.get("tokens"), "flops": e.get("flops"), "val_loss": e.get("val_loss")}
             for e in read_log(rd, "eval")]
    train = read_log(rd, "train")
    stride = max(1, math.ceil(len(train) / MAX_TRAIN_POINTS))
    train_curve = [[e["step"], round(float(e["loss"]), 5)] for i, e in enumerate(train)
                   if i % stride == 0 or i == len(train) - 1]
    speed = [e.get("units_per_s") for e in train if e.get("units_per_s")]
    keys = ("val_loss", "val_loss_r", "val_bpb", "bytes_per_token", "val_ppl", "train_units", "passes",
            "data_identity")
    out: dict[str, Any] = {
        "format": SUMMARY_FORMAT,
        "name": str(cfg.get("name", rd.name)),
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": CODE_VERSION,
        "config": cfg,
        "params": params,
        "embedding_params": embedding,
        "non_embedding_params": params - embedding if params else None,
        "steps": int(summ.get("steps", 0)),
        "tokens": int(summ.get("tokens", 0)),
        "flops": float(summ.get("flops", 0.0)),
        "flops_per_step": summ.get("flops_per_step", start.get("flops_per_step")),
        "seconds": summ.get("seconds"),
        "tokens_per_s": speed[-1] if speed else None,
        **{k: summ[k] for k in keys if k in summ},
        "curve": curve,
        "train_curve": train_curve,
    }
    if params:
        out["tokens_per_param"] = out["tokens"] / params
    if extra:
        out.update(extra)
    return _finite(out)


def write_run_summary(run_dir: str | Path, results_dir: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the summary of a finished run to ``results_dir/<name>.json``; returns its path."""
    s = run_summary(run_dir, extra)
    p = summary_path(results_dir, s["name"])
    atomic_write_json(p, s)
    return p


def load_summary(path: str | Path) -> dict[str, Any]:
    """A run summary written by :func:`write_run_summary`; ``ValueError`` if the file is not one."""
    s = read_json(path)
    if s.get("format") != SUMMARY_FORMAT:
        raise ValueError(f"{path} is not a rins run summary (format {s.get('format')!r}, expected {SUMMARY_FORMAT!r})")
    return s


# ----------------------------------------------------------------------------------------------
# Finding and reading runs: run directories and committed summaries alike


@dataclass
class RunRecord:
    """What one run left behind, read alike from a run directory and from a committed run summary.

    Attributes:
        path: the run directory or the summary file.
        config: the run's config (a ``TrainConfig`` as a dict).
        summary: the run directory's ``summary.json`` (``{}`` before the run ends), or the run summary itself.
        curve: held-out eval records (step, tokens, flops, val_loss, ...) in step order.
        start: the log's start record (parameters, planned steps); ``{}`` for a run summary.
    """

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    curve: list[dict[str, Any]] = field(default_factory=list)
    start: dict[str, Any] = field(default_factory=dict)

    @property
    def is_summary(self) -> bool:
        """Read from a committed run summary (complete by construction), not a run directory."""
        return self.path.is_file()

    @property
    def complete(self) -> bool:
        return bool(self.summary.get("complete", self.is_summary))


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories and run-summary files named by ``paths`` or directly inside them (a sweep's ``out_dir``
    or ``results_dir``), each once, in the order given (sorted within a folder). ``FileNotFoundError`` for a
    path that does not exist."""
    found: list[Path] = []
    seen: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist")
        if p.is_file() or is_run_dir(p):
            cands = [p]
        else:
            cands = sorted(q for q in p.iterdir() if is_run_dir(q) or
                           (q.suffix == ".json" and q.is_file()))
        for c in cands:
            if c.resolve() not in seen:
                seen.add(c.resolve())
                found.append(c)
    return found


def read_run(path: str | Path) -> RunRecord | None:
    """The :class:`RunRecord` of a run directory or a run-summary file; ``None`` when ``path`` is neither."""
    p = Path(path)
    if p.is_file():
        s = read_json(p)
        if s.get("format") != SUMMARY_FORMAT:
            return None
        return RunRecord(p, dict(s.get("config") or {}), s, list(s.get("curve") or []))
    cfg = read_json(p / CONFIG_FILE)
    if not cfg:
        return None
    return RunRecord(p, cfg, read_run_summary(p), read_log(p), start_record(p))


# ----------------------------------------------------------------------------------------------
# Runs as the report reads them: RunInfo and load_runs (moved here from rins.report, issue 26)

__all__ += ["LM_CONFIG_DEFAULTS", "RunInfo", "family", "group_runs", "load_runs"]

# The language model's defaults (rins.model.LMConfig) of the fields a report reads, for a config.json that leaves
# one out (it records only the fields a config named). Written here because this layer imports no model (nor
# torch); tests/test_runs.py checks that they equal LMConfig's.
LM_CONFIG_DEFAULTS: dict[str, Any] = {"n_layers": 6, "d_model": 256, "max_seq_len": 256, "tie_embeddings": True,
                                      "pos_embedding": "rope"}

_FAMILY_RE = [
    ("baseline", re.compile(r"^AB$")),
    ("RINS", re.compile(r"^A\^(\d+)B$")),
    ("RAO", re.compile(r"^\(AB\)\^(\d+)$")),
    ("middle", re.compile(r"^AB\^(\d+)C$")),
    ("cycle", re.compile(r"^\(ABC\)\^(\d+)$")),
]


def family(signature: str, degree: int = 1) -> str:
    """Family of a layout: ``baseline`` (AB), ``RINS`` (A^rB), ``RAO`` ((AB)^r), ``middle`` (AB^rC),
    ``cycle`` ((ABC)^k) or ``other``; degree > 1 is always ``other`` (a nested variant)."""
    if degree != 1:
        return "other"
    for name, rx in _FAMILY_RE:
        if rx.match(signature):
            return name
    return "other"


@dataclass
class RunInfo:
    """What the report needs from one run (a run directory or a committed run summary)."""

    name: str
    run_dir: Path
    signature: str
    degree: int
    p_skip: float
    adapters: str
    size: str
    budget: float | None
    seed: int
    n_layers: int
    complete: bool
    params: int = 0
    steps: int = 0
    tokens: int = 0
    flops: float = 0.0
    val_loss: float = math.nan
    val_loss_r: dict[str, float] = field(default_factory=dict)
    warmup_steps: int = 0
    vocab_size: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list)  # held-out eval records (step, tokens, flops, loss)
    lr: float = math.nan
    lr_scan: bool = False  # from a learning-rate scan grid: reported in its own section, not in the claims
    holdout: bool = False  # from an out-of-sample grid: compared with the main runs' fitted curve, not fitted
    non_embedding_params: int | None = None  # None: unknown (printed "n/a", never a made-up 0)
    val_bpb: float = math.nan
    evals: dict[str, Any] = field(default_factory=dict)  # extra evaluations: {data spec: {"results": [...]}}
    n_seeds: int = 1  # > 1: a mean over seeds (see rins.report's seed means); seed is then the lowest of them

    @property
    def family(self) -> str:
        return family(self.signature, self.degree)

    @property
    def deterministic(self) -> bool:
        """A plain layout: no stochastic depth, no adapters."""
        return self.p_skip == 0 and self.adapters == "none"

    @property
    def r(self) -> int | None:
        """The trained recursion exponent (None without one)."""
        from .plan import compile_plan

        return compile_plan(self.signature, self.n_layers, self.degree).r

    @property
    def cost(self) -> float:
        """Executed layers per distinct layer."""
        from .plan import compile_plan

        return compile_plan(self.signature, self.n_layers, self.degree).cost_ratio()

    @property
    def layout(self) -> str:
        """Label of the layout: signature (+ degree, p_s, adapters)."""
        s = self.signature + (f" (degree {self.degree})" if self.degree != 1 else "")
        if self.p_skip:
            s += f" p_s={self.p_skip:g}"
        if self.adapters != "none":
            s += f" +{self.adapters} adapters"
        return s

    @property
    def key(self) -> tuple:
        return (self.size, self.signature, self.degree, self.p_skip, self.adapters, self.seed)


def _model_field(model: dict[str, Any], key: str) -> Any:
    """A field of a run's model config; one that ``config.json`` left out is the model's default."""
    return model[key] if key in model else LM_CONFIG_DEFAULTS[key]


def _size_label(model: dict[str, Any]) -> str:
    """``L6-d64``: a run's model size (distinct layers, width)."""
    return f"L{_model_field(model, 'n_layers')}-d{_model_field(model, 'd_model')}"


def _non_embedding_params(cfg: dict[str, Any], summ: dict[str, Any], params: int) -> int | None:
    """A run summary's ``non_embedding_params``; for a run directory (whose summary lacks it) computed from its
    config as :func:`run_summary` does; ``None`` when the parameter count or vocabulary is unknown."""
    if summ.get("non_embedding_params") is not None:
        return int(summ["non_embedding_params"])
    model = cfg.get("model", {})
    vocab = model.get("vocab_size", cfg.get("data", {}).get("vocab_size"))
    if not params or not vocab:
        return None
    d = int(_model_field(model, "d_model"))
    emb = int(vocab) * d * (1 if _model_field(model, "tie_embeddings") else 2)
    if _model_field(model, "pos_embedding") == "learned":
        emb += int(_model_field(model, "max_seq_len")) * d
    return params - emb


def _run_info(rec: RunRecord) -> RunInfo | None:
    """A :class:`RunInfo` from a run's record (a run directory's or a committed summary's); ``None`` for a run
    of another task than the language model."""
    from .plan import resolve_signature

    cfg, summ, start_rec = rec.config, rec.summary, rec.start
    if cfg.get("task", "lm") != "lm":
        return None
    model = cfg.get("model", {})
    steps = int(summ.get("steps", start_rec.get("steps", 0)))
    optim = cfg.get("optim", {})
    return RunInfo(
        name=str(cfg.get("name", rec.path.name)), run_dir=rec.path,
        signature=resolve_signature(str(model.get("signature", "AB"))),
        degree=int(model.get("degree", 1)), p_skip=float(model.get("p_skip", 0.0)),
        adapters=str(model.get("adapters", "none")), size=_size_label(model),
        budget=(cfg.get("budget") or {}).get("flops"), seed=int(cfg.get("seed", 0)),
        n_layers=int(_model_field(model, "n_layers")), complete=rec.complete,
        params=int(summ.get("params", start_rec.get("params", 0))), steps=steps, tokens=int(summ.get("tokens", 0)),
        flops=float(summ.get("flops", 0.0)), val_loss=float(summ.get("val_loss", math.nan) or math.nan),
        val_loss_r={str(k): float(v) for k, v in (summ.get("val_loss_r") or {}).items()},
        warmup_steps=int(round(float(optim.get("warmup_frac", 0.05)) * steps)),
        vocab_size=int(model.get("vocab_size", cfg.get("data", {}).get("vocab_size", 0))),
        curve=rec.curve, lr=float(optim.get("lr", math.nan)), lr_scan=bool(summ.get("lr_scan", False)),
        holdout=bool(summ.get("holdout", False)),
        non_embedding_params=_non_embedding_params(cfg, summ, int(summ.get("params", start_rec.get("params", 0)))),
        val_bpb=float(summ.get("val_bpb", math.nan) or math.nan), evals=dict(summ.get("evals") or {}),
    )


def load_runs(paths: list[str | Path]) -> tuple[list[RunInfo], list[str]]:
    """Runs found under ``paths`` (:func:`find_runs`): run directories, committed run summaries (``<run>.json``
    written by ``rins sweep`` into its ``results_dir``), or folders of either. Also returns the incomplete run
    directories that were left out. A run found both ways is taken once (its summary wins)."""
    runs: dict[str, RunInfo] = {}
    skipped: list[str] = []
    for path in find_runs(paths):
        rec = read_run(path)
        info = _run_info(rec) if rec is not None else None
        if info is None:
            continue
        if not info.complete:
            skipped.append(str(path))
        elif info.name not in runs or rec.is_summary:
            runs[info.name] = info
    return list(runs.values()), skipped


def group_runs(runs: list[RunInfo], *keys: str) -> dict[tuple, list[RunInfo]]:
    """``runs`` grouped by the values of their attributes ``keys`` (in the runs' order within a group)."""
    groups: dict[tuple, list[RunInfo]] = defaultdict(list)
    for r in runs:
        groups[tuple(getattr(r, k) for k in keys)].append(r)
    return groups
