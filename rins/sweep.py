"""``rins sweep``: a grid of compute-matched runs from one TOML file, resumable, optionally in parallel.

A sweep file has a ``[base]`` table (a training config: ``preset = "..."`` plus any TrainConfig
tables), optional named model sizes, and one or more ``[[grid]]`` tables. Each grid is the product

    layouts × budgets (training FLOPs) × sizes × p_skip × adapters × seeds

and every grid point becomes one run, trained with ``budget.flops`` set to its budget, so all runs of
a budget are **compute-matched** (docs/method.md §3). Example::

    [sweep]
    out_dir = "runs/study"      # parent folder of the run directories
    threads = 1                 # torch threads per worker (0: leave torch's default)
    results_dir = "results/study"   # optional: one small JSON summary per finished run (commit these)
    order = "budget"            # optional: per size, smallest budget first across grids (default "grid")
    evals = ["mix-large:linux-doc"] # optional: extra data each finished run is scored on, at every depth

    [base]
    preset = "cpu-small"
    n_evals = 12
    [base.model]
    n_layers = 6

    [sizes.d96]                 # named dicts of model overrides (default: one size "base", no overrides)
    d_model = 96

    [[grid]]
    name = "main"
    layouts = ["AB", "rins(2)", "A^3B", "(AB)^2", "AB^2C"]
    budgets = [1e12, 2e12]
    p_skip = [0.0]              # default [0.0]
    adapters = ["none"]         # default ["none"]
    seeds = [0]                 # default [0]
    lr = [1e-3, 3e-3]           # optional: a learning-rate axis (run names get _lr<value>)
    scan = true                 # optional: a learning-rate scan, reported apart from the claims (default:
                                # true with an lr axis); scan = false with one lr names a main run by its lr
    holdout = false             # optional: an out-of-sample check, left out of the fits and claims; the
                                # report predicts each such run from the main runs' fitted curve

    [[grid]]
    name = "taxonomy"
    layouts = ["taxonomy"]      # every variant of plan.enumerate_variants() that compiles
    taxonomy = { limit = 12 }   # optional: max_letters, max_length, degrees, max_r, limit, stride
    budgets = [1e12]

A layout is a signature (``"A^3B"``), a preset expression (``"rins(3)"``, resolved before naming, so
the two name the same run), ``"SIG@d"`` for degree d, or ``"taxonomy"``. Run names are derived from
the grid point only (see :func:`run_name`). A run whose summary is in ``results_dir`` (or, without
one, whose ``summary.json`` says ``"complete": true``) is skipped; an interrupted one resumes from its
last checkpoint. Every run directory is guarded by a lock file (``RUN_DIR.lock``, ``fcntl.flock``), so
``--procs N`` workers that walk the same list never train the same run twice.
After moving runs between grids (a rate check won, so a point's main run changes rate), ``--relabel``
rewrites the ``grid``/``grids``/``lr_scan``/``holdout`` labels of the committed summaries to match the TOML.

A run longer than one machine's life moves with the results: ``--park`` copies the newest checkpoint of each
unfinished run (with its config, tokenizer, log and a WSD run's pre-decay state) to
``results_dir/inflight/<run>/``; commit that folder, and a sweep on another machine resumes each run from it
(when it is newer than what the machine has). The parked copy is deleted when the run's summary is written.
``--park`` does not stop a worker: a run being trained is parked from its newest complete checkpoint as it goes.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import fnmatch
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import TrainConfig, deep_update, preset_dict, read_toml
from .plan import SignatureError, compile_plan, enumerate_variants, resolve_signature
from .runs import (
    CONFIG_FILE,
    DATA_IDENTITY_FILE,
    LOCK_SUFFIX,
    LOG_FILE,
    TOKENIZER_FILE,
    atomic_write_json,
    is_complete,
    load_summary,
    lock_holder,
    lock_pid,
    read_json,
    run_lock,
    summary_path,
    write_run_summary,
)
from .stopping import forward_stop_signals

__all__ = ["RunSpec", "Sweep", "load_sweep", "expand_grid", "run_name", "is_complete", "run_lock", "lock_holder",
           "dry_run_table", "run_sweep", "add_sweep_arguments", "cmd_sweep", "train_spec", "TrunkBusy", "park_run",
           "unpark_run", "parked_dir", "PARKED"]

GRID_KEYS = {"name", "layouts", "budgets", "sizes", "p_skip", "adapters", "seeds", "taxonomy", "set", "lr", "scan",
             "holdout", "branches"}
SWEEP_KEYS = {"out_dir", "threads", "procs", "name", "results_dir", "evals", "eval_batches", "order"}
TAXONOMY_KEYS = {"max_letters", "max_length", "degrees", "max_r", "limit", "stride", "include_baseline"}


@dataclass(frozen=True)
class RunSpec:
    """One grid point: the fully resolved configuration of one run.

    Attributes:
        name: the run name (directory under ``out_dir``), derived by :func:`run_name`.
        grid: name of the ``[[grid]]`` table it came from (the first one, when several produce it).
        grids: names of every ``[[grid]]`` table that produces it.
        signature: resolved signature (presets expanded).
        degree: nesting degree.
        budget: training FLOPs.
        size: name of the model size.
        p_skip: stochastic-RINS skip probability.
        adapters: ``"none"`` | ``"round"`` | ``"depth"``.
        seed: training seed.
        lr: the learning rate of a grid with an ``lr`` axis (``None``: the base config's).
        scan: from a learning-rate scan grid (``scan = true``, the default with an ``lr`` axis): its summary
            says ``lr_scan`` and reports keep it out of the study's claims.
        holdout: from an out-of-sample grid (``holdout = true``): its summary says ``holdout``; reports leave
            it out of the fits and claims and compare it with the main runs' fitted curve instead.
        config: the TrainConfig as a plain dict (``name`` / ``out_dir`` / ``budget`` already set).
        follows: in a grid with ``branches = true``, the run of the next smaller budget whose WSD trunk this
            one continues (``None``: the first branch, or not a branched grid).
    """

    name: str
    grid: str
    signature: str
    degree: int
    budget: float
    size: str
    p_skip: float
    adapters: str
    seed: int
    config: dict[str, Any] = field(compare=False, hash=False)
    grids: tuple[str, ...] = ()
    lr: float | None = None  # set by a grid with an ``lr`` axis
    scan: bool = False
    holdout: bool = False
    follows: str | None = None

    def train_config(self) -> TrainConfig:
        """The :class:`~rins.config.TrainConfig` of this run."""
        return TrainConfig.from_dict(copy.deepcopy(self.config))

    @property
    def run_dir(self) -> Path:
        return Path(self.config["out_dir"]) / self.name


@dataclass
class Sweep:
    """A parsed sweep file: where runs go, how workers run, and the expanded list of runs."""

    path: Path
    out_dir: Path
    threads: int
    procs: int
    runs: list[RunSpec]
    results_dir: Path | None = None  # where each finished run's small summary is written (committed)
    evals: list[str] = field(default_factory=list)  # extra data specs each finished run is scored on
    eval_batches: int | None = None  # batches of those extra evaluations (default: the run's eval_batches)


# ----------------------------------------------------------------------------------------------
# Naming


def _sig_slug(sig: str) -> str:
    """Filesystem-safe, unambiguous slug of a signature: ``^k`` → ``xk``, ``(`` → ``o``, ``)`` → ``c``.

    Block letters are upper case, so the lower-case replacements can never collide with them.
    """
    return sig.replace("^", "x").replace("(", "o").replace(")", "c")


def _num_slug(v: float) -> str:
    """Short exact-enough text for a number: ``2e12``, ``1.5e13``, ``0.25``."""
    v = float(v)
    if v == 0:
        return "0"
    if abs(v) >= 1e4:
        m, e = f"{v:.6e}".split("e")
        m = m.rstrip("0").rstrip(".")
        return f"{m}e{int(e)}"
    return f"{v:g}"


def run_name(size: str, signature: str, degree: int, budget: float, p_skip: float, adapters: str,
             seed: int, lr: float | None = None, tag: str = "") -> str:
    """Deterministic run name of a grid point, e.g. ``d96_Ax3B_C2e12_s0`` or
    ``d96_Ax3B_C2e12_ps0.5_adround_s0`` (``_d2`` after the signature for degree 2, ``_lr0.002`` before
    the seed for a grid with an ``lr`` axis, ``tag`` before those: the schedule when it is not the default cosine,
    e.g. ``wsd``, and ``wsd_br`` for the branches of a WSD trunk)."""
    parts = [size, _sig_slug(resolve_signature(signature)) + (f"_d{degree}" if degree != 1 else ""),
             f"C{_num_slug(budget)}"]
    if p_skip:
        parts.append(f"ps{_num_slug(p_skip)}")
    if adapters and adapters != "none":
        parts.append(f"ad{adapters}")
    if tag:
        parts.append(tag)
    if lr is not None:
        parts.append(f"lr{_num_slug(lr)}")
    parts.append(f"s{seed}")
    return "_".join(parts)


# ----------------------------------------------------------------------------------------------
# Loading and expanding


def _as_list(v: Any, key: str) -> list[Any]:
    if v is None:
        return []
    return list(v) if isinstance(v, list | tuple) else [v]


def _parse_layout(text: str) -> tuple[str, int]:
    if not isinstance(text, str):
        raise ValueError(f"layout {text!r} must be a string such as 'A^2B', 'rins(3)' or 'AB^2C@2'")
    sig, _, deg = text.partition("@")
    try:
        degree = int(deg) if deg else 1
    except ValueError as e:
        raise ValueError(f"layout {text!r}: the degree after '@' must be an integer, e.g. 'A^2B@2'") from e
    return resolve_signature(sig.strip()), degree


def _taxonomy(n_layers: int, opts: dict[str, Any]) -> list[tuple[str, int]]:
    unknown = set(opts) - TAXONOMY_KEYS
    if unknown:
        raise ValueError(f"unknown taxonomy options {sorted(unknown)}; known: {sorted(TAXONOMY_KEYS)}")
    kw = {k: opts[k] for k in ("max_letters", "max_length", "max_r") if k in opts}
    if "degrees" in opts:
        kw["degrees"] = tuple(int(d) for d in opts["degrees"])
    variants = list(enumerate_variants(n_layers, **kw))
    stride = int(opts.get("stride", 1))
    if stride > 1:  # an even cut through the family, keeping the plain model first
        variants = variants[:1] + variants[1::stride]
    if "limit" in opts:
        variants = variants[: int(opts["limit"])]
    return variants


def load_sweep(path: str | Path, out_dir: str | None = None) -> Sweep:
    """Parse a sweep TOML file and expand its grid (raises ``ValueError`` naming the bad key)."""
    p = Path(path)
    t = read_toml(p, "sweep file")
    unknown = set(t) - {"sweep", "base", "sizes", "grid"}
    if unknown:
        raise ValueError(f"{p}: unknown top-level tables {sorted(unknown)}; use [sweep], [base], [sizes.*], [[grid]]")
    meta = dict(t.get("sweep", {}))
    bad = set(meta) - SWEEP_KEYS
    if bad:
        raise ValueError(f"{p}: unknown [sweep] keys {sorted(bad)}; known: {', '.join(sorted(SWEEP_KEYS))}")
    out = Path(out_dir or meta.get("out_dir") or f"runs/{meta.get('name', p.stem)}")
    runs = expand_grid(t.get("base", {}), t.get("sizes", {}), t.get("grid", []), out)
    evals = _as_list(meta.get("evals"), "evals")
    if not all(isinstance(e, str) and e for e in evals):
        raise ValueError(f"{p}: [sweep] evals must be a list of data specs (strings), got {meta.get('evals')!r}")
    eb = meta.get("eval_batches")
    if eb is not None and (not isinstance(eb, int) or isinstance(eb, bool) or eb < 0):
        raise ValueError(f"{p}: [sweep] eval_batches must be an integer >= 0 (0 = whole split), got {eb!r}")
    order = meta.get("order", "grid")
    if order not in ("grid", "budget"):
        raise ValueError(f"{p}: [sweep] order must be 'grid' (grid by grid) or 'budget' (per size, smallest "
                         f"budget first across all grids), got {order!r}")
    if order == "budget":  # comparable runs of a budget finish together: a partial study already compares
        size_rank = {s: i for i, s in enumerate(dict.fromkeys(r.size for r in runs))}
        runs = sorted(runs, key=lambda r: (size_rank[r.size], r.budget))  # stable: grid order within
    res = meta.get("results_dir")
    if res is not None and (not isinstance(res, str) or not res):
        raise ValueError(f"{p}: [sweep] results_dir must be a folder path, e.g. 'results/{p.stem}'")
    return Sweep(p, out, int(meta.get("threads", 0)), int(meta.get("procs", 1)), runs,
                 Path(res) if res else None, list(evals), eb)


def expand_grid(base: dict[str, Any], sizes: dict[str, dict[str, Any]], grids: list[dict[str, Any]],
                out_dir: str | Path) -> list[RunSpec]:
    """Expand ``[[grid]]`` tables into an ordered, de-duplicated list of :class:`RunSpec`.

    Order: grid by grid, then seeds, sizes, budgets (small first), layouts, p_skip, adapters — so a
    partial sweep already holds whole budget slices. The same grid point reached from two grids is
    one run; two different configs under one name are an error.
    """
    base = dict(base)
    preset = base.pop("preset", None)
    base_cfg = deep_update(preset_dict(preset) if preset else {}, base)
    if "budget" in base:
        base_cfg["budget"] = dict(base["budget"])
    sizes = dict(sizes) or {"base": {}}
    if not grids:
        raise ValueError("the sweep has no [[grid]] table; add one with layouts and budgets")
    runs: dict[str, RunSpec] = {}
    for gi, g in enumerate(grids):
        gname = str(g.get("name", f"grid{gi}"))
        ax = _grid_axes(g, gname, sizes)
        trunk_of: dict[tuple[Any, ...], str] = {}  # a branched grid: each point's run at the last (smaller) budget
        for seed, size, budget in itertools.product(ax["seeds"], ax["sizes"], sorted(ax["budgets"])):
            cfg0 = deep_update(deep_update(base_cfg, {"model": dict(sizes[size])}), g.get("set", {}))
            if ax["branches"]:
                cfg0 = _branch_config(cfg0, gname)
            n_layers = int(cfg0.get("model", {}).get("n_layers", 6))
            for (sig, degree), ps, ad, lr in itertools.product(_grid_layouts(g, ax["layouts"], n_layers),
                                                               ax["p_skip"], ax["adapters"], ax["lr"]):
                try:
                    plan = compile_plan(sig, n_layers, degree)
                except SignatureError as e:
                    raise ValueError(f"[[grid]] {gname!r}: layout {sig!r}@{degree} does not compile for "
                                     f"{n_layers} layers: {e}") from e
                if plan.r is None and (ps > 0 or ad != "none"):
                    continue  # stochastic depth / adapters need a recursion exponent: not a grid point
                sched = cfg0.get("optim", {}).get("schedule", "cosine")
                tag = "_".join(t for t in (sched if sched != "cosine" else "", "br" if ax["branches"] else "") if t)
                name = run_name(size, sig, degree, budget, ps, ad, seed, lr, tag)
                point = (seed, size, sig, degree, ps, ad, lr)
                follows = trunk_of.get(point) if ax["branches"] else None
                trunk_of[point] = name
                cfg = copy.deepcopy(cfg0)
                cfg["model"] = {**cfg.get("model", {}), "signature": sig, "degree": degree, "p_skip": ps,
                                "adapters": ad}
                if lr is not None:
                    cfg["optim"] = {**cfg.get("optim", {}), "lr": lr}
                cfg.update(name=name, out_dir=str(out_dir), seed=seed, budget={"flops": budget})
                TrainConfig.from_dict(copy.deepcopy(cfg))  # validate early, with the config's own errors
                _add_run(runs, RunSpec(name, gname, sig, degree, budget, size, ps, ad, seed, cfg, (gname,), lr,
                                       ax["scan"], ax["holdout"], follows))
    return list(runs.values())


def _branch_config(cfg: dict[str, Any], gname: str) -> dict[str, Any]:
    """The config of a branch of a WSD trunk: ``optim.schedule = "wsd"`` (any other schedule is refused)."""
    sched = cfg.get("optim", {}).get("schedule", "wsd")
    if sched != "wsd":
        raise ValueError(f"[[grid]] {gname!r}: branches = true trains one warmup-stable-decay trunk per point and "
                         f"decays a branch off it at each budget, so it needs optim.schedule = 'wsd', not {sched!r} "
                         "(drop the schedule from the grid's set, or drop branches)")
    return deep_update(cfg, {"optim": {"schedule": "wsd"}})


def _grid_axes(g: dict[str, Any], gname: str, sizes: dict[str, dict[str, Any]]) -> dict[str, list[Any]]:
    """The checked axes of one ``[[grid]]`` table: layouts (as written), budgets, sizes, p_skip, adapters,
    seeds, lr (``[None]`` without an lr axis), scan (whether the grid is a learning-rate scan) and holdout
    (whether it is an out-of-sample check)."""
    bad = set(g) - GRID_KEYS
    if bad:
        raise ValueError(f"[[grid]] {gname!r}: unknown keys {sorted(bad)}; known: {sorted(GRID_KEYS)}")
    layouts = _as_list(g.get("layouts"), "layouts")
    budgets = [float(b) for b in _as_list(g.get("budgets"), "budgets")]
    if not layouts or not budgets:
        raise ValueError(f"[[grid]] {gname!r} needs non-empty 'layouts' and 'budgets' (training FLOPs)")
    if any(not (b > 0 and math.isfinite(b)) for b in budgets):
        raise ValueError(f"[[grid]] {gname!r}: budgets must be finite FLOPs > 0, got {budgets}")
    size_names = _as_list(g.get("sizes"), "sizes") or list(sizes)
    for s in size_names:
        if s not in sizes:
            raise ValueError(f"[[grid]] {gname!r}: unknown size {s!r}; defined: {sorted(sizes)}")
    lrs = [float(x) for x in _as_list(g.get("lr"), "lr")] or [None]
    if any(x is not None and not (x > 0 and math.isfinite(x)) for x in lrs):
        raise ValueError(f"[[grid]] {gname!r}: lr must be finite numbers > 0, got {g.get('lr')}")
    holdout = g.get("holdout", False)
    if not isinstance(holdout, bool):
        raise ValueError(f"[[grid]] {gname!r}: holdout must be true or false (an out-of-sample check or not), "
                         f"got {holdout!r}")
    scan = g.get("scan", "lr" in g and not holdout)
    if not isinstance(scan, bool):
        raise ValueError(f"[[grid]] {gname!r}: scan must be true or false (a learning-rate scan or not), got "
                         f"{scan!r}")
    if scan and holdout:
        raise ValueError(f"[[grid]] {gname!r}: a grid is a learning-rate scan or an out-of-sample check "
                         "(holdout), not both; drop one of scan = true / holdout = true")
    branches = g.get("branches", False)
    if not isinstance(branches, bool):
        raise ValueError(f"[[grid]] {gname!r}: branches must be true or false (one WSD trunk per point with a "
                         f"cooldown branch at each budget, or independent runs), got {branches!r}")
    return {"branches": branches, "layouts": layouts, "budgets": budgets, "sizes": size_names,
            "p_skip": [float(x) for x in _as_list(g.get("p_skip", [0.0]), "p_skip")],
            "adapters": [str(x) for x in _as_list(g.get("adapters", ["none"]), "adapters")],
            "seeds": [int(x) for x in _as_list(g.get("seeds", [0]), "seeds")], "lr": lrs, "scan": scan,
            "holdout": holdout}


def _grid_layouts(g: dict[str, Any], layouts: list[Any], n_layers: int) -> list[tuple[str, int]]:
    """(signature, degree) of every layout of a grid for ``n_layers`` layers, ``"taxonomy"`` expanded."""
    points: list[tuple[str, int]] = []
    for lay in layouts:
        if isinstance(lay, str) and lay.strip() == "taxonomy":
            points += _taxonomy(n_layers, dict(g.get("taxonomy", {})))
        else:
            points.append(_parse_layout(lay))
    return points


def _add_run(runs: dict[str, RunSpec], spec: RunSpec) -> None:
    """Add ``spec`` to ``runs`` by name; a run that another grid produced already is one run of both grids."""
    old = runs.get(spec.name)
    if old is None:
        runs[spec.name] = spec
        return
    if old.config != spec.config:
        raise ValueError(f"run {spec.name!r} is produced with two different configs (grids "
                         f"{old.grid!r} and {spec.grid!r}); give the grids different sizes")
    if spec.grid not in old.grids:  # a run of any main grid is a main run
        runs[spec.name] = dataclasses.replace(old, grids=(*old.grids, spec.grid), scan=old.scan and spec.scan,
                                              holdout=old.holdout and spec.holdout)


def select(runs: list[RunSpec], only: list[str] | None) -> list[RunSpec]:
    """Runs whose name or grid matches any of the glob patterns in ``only`` (all when empty)."""
    if not only:
        return runs
    return [r for r in runs if any(fnmatch.fnmatchcase(r.name, pat) or pat in r.name
                                   or any(fnmatch.fnmatchcase(g, pat) for g in r.grids) for pat in only)]


# ----------------------------------------------------------------------------------------------
# Dry run


def plan_run(spec: RunSpec, results_dir: Path | None = None) -> dict[str, Any]:
    """Parameters, FLOPs per step, steps and tokens of a run, without data or weights.

    The model is built on the ``meta`` device (no memory), and the vocabulary is the configured one
    (the trainer uses the tokenizer's, which equals it unless the corpus is too small).
    """
    import torch

    from .schedule import plan_steps
    from .tasks import get_task

    cfg = spec.train_config()
    task = get_task(cfg, None)
    with torch.device("meta"):
        model = task.build_model()
    flops_per_step = task.flops_per_step(model, cfg.batch_size)
    units_per_step = task.units_per_step(cfg.batch_size)
    try:
        steps = plan_steps(cfg, flops_per_step, units_per_step)
    except ValueError as e:
        steps, err = 0, str(e)
    else:
        err = ""
    params = sum(p.numel() for p in model.parameters())
    return {"name": spec.name, "grid": spec.grid, "signature": spec.signature, "degree": spec.degree,
            "size": spec.size, "budget": spec.budget, "p_skip": spec.p_skip, "adapters": spec.adapters,
            "seed": spec.seed, "params": params, "flops_per_step": flops_per_step, "steps": steps,
            "tokens": steps * units_per_step, "flops": steps * flops_per_step, "error": err,
            "complete": _trained(spec, results_dir), **_progress(spec, results_dir)}


def _progress(spec: RunSpec, results_dir: Path | None) -> dict[str, Any]:
    """``at_step``: the newest checkpoint's step here; ``parked_step``: its parked copy's (None: none);
    ``units_per_s``: the run's last logged training speed here (None: not trained here); ``training_pid``: the
    process training it now (None: none)."""
    from .checkpoint import latest_checkpoint
    from .runs import read_log

    here = _step_of(latest_checkpoint(spec.run_dir))
    parked = -1 if results_dir is None else _step_of(latest_checkpoint(parked_dir(results_dir, spec.name)))
    speed = [e["units_per_s"] for e in read_log(spec.run_dir, "train") if e.get("units_per_s")] if here >= 0 else []
    return {"at_step": here if here >= 0 else None, "parked_step": parked if parked >= 0 else None,
            "units_per_s": speed[-1] if speed else None, "training_pid": lock_pid(spec.run_dir)}


def _status(row: dict[str, Any]) -> str:
    if row["complete"]:
        return "complete"
    if row["error"]:
        return "ERROR: " + row["error"]
    here, parked = row["at_step"] or 0, row["parked_step"] or 0
    now = f"training (process {row['training_pid']}), " if row.get("training_pid") else ""
    if parked > here:
        return f"{now}parked at step {parked:,}"
    if not here:
        return f"{now}no checkpoint yet" if now else "todo"
    status = f"{now}at step {here:,}"
    if row["units_per_s"] and row["steps"]:  # at the last speed logged here: a rough guide on a shared machine
        left = (row["steps"] - here) * row["tokens"] / row["steps"] / row["units_per_s"]
        status += f", ~{left / 3600:.1f} h left"
    return status


def dry_run_table(runs: list[RunSpec], results_dir: Path | None = None) -> tuple[str, list[dict[str, Any]]]:
    """A plain-text table of the grid (one line per run) and the rows behind it."""
    rows = [plan_run(r, results_dir) for r in runs]
    head = f"{'#':>3}  {'run':<44} {'params':>11} {'budget':>9} {'steps':>7} {'tokens':>12} {'FLOPs':>9}  status"
    lines = [head, "-" * len(head)]
    for i, row in enumerate(rows):
        status = _status(row)
        lines.append(f"{i:>3}  {row['name']:<44} {row['params']:>11,} {row['budget']:>9.3g} {row['steps']:>7,} "
                     f"{row['tokens']:>12,} {row['flops']:>9.3g}  {status}")
    tot_f = sum(r["flops"] for r in rows if not r["complete"])
    lines.append(f"{len(rows)} runs ({sum(r['complete'] for r in rows)} complete); "
                 f"{tot_f:.3g} training FLOPs still to run; "
                 f"{sum(r['tokens'] for r in rows):,} tokens in all")
    lines += _data_check(runs, rows, results_dir)
    return "\n".join(lines), rows


def _data_check(runs: list[RunSpec], rows: list[dict[str, Any]], results_dir: Path | None) -> list[str]:
    """One line per corpus still to train on that is not the text the sweep's recorded runs read (what
    :func:`check_same_data` would refuse), so a new machine's stale package versions show before hours start."""
    out, seen = [], set()
    for spec, row in zip(runs, rows, strict=True):
        if row["complete"] or row["error"]:
            continue
        corpus = spec.train_config().data.corpus
        if corpus in seen:
            continue
        seen.add(corpus)
        try:
            check_same_data(spec, results_dir)
        except ValueError as e:
            out.append(f"data: {e}")
        except Exception as e:  # noqa: BLE001 - a source that cannot be fetched here: training would say so too
            out.append(f"data: {spec.name}: cannot check the corpus here ({type(e).__name__}: {e})")
    return out


# ----------------------------------------------------------------------------------------------
# Running


def _set_threads(threads: int) -> None:
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)


def _summarised(spec: RunSpec, results_dir: Path | None) -> bool:
    return results_dir is not None and summary_path(results_dir, spec.name).is_file()


def _trained(spec: RunSpec, results_dir: Path | None) -> bool:
    """The run finished training: its run directory is complete or its summary is in ``results_dir``."""
    return is_complete(spec.run_dir) or _summarised(spec, results_dir)


def _done(spec: RunSpec, results_dir: Path | None) -> bool:
    """Nothing left for a worker: summarised into ``results_dir`` (or, without one, complete). A complete run
    without its summary still needs :func:`finish_run`."""
    return _summarised(spec, results_dir) or (results_dir is None and is_complete(spec.run_dir))


def finish_run(spec: RunSpec, results_dir: Path, evals: list[str] | None = None,
               eval_batches: int | None = None) -> Path:
    """Score a complete run on the extra data ``evals`` (at every depth) and write its summary into
    ``results_dir`` (``<name>.json``); returns the summary's path."""
    from .evaluation import evaluate_run

    extra: dict[str, Any] = {"grid": spec.grid, "grids": list(spec.grids), "size": spec.size, "budget": spec.budget,
                             "lr_scan": spec.scan, "holdout": spec.holdout}
    if spec.follows:  # a cooldown branch: it continued this run's WSD trunk (its FLOPs include the trunk's)
        extra["follows"] = spec.follows
    if evals:
        extra["evals"] = {}
        for data in evals:
            res = evaluate_run(spec.run_dir, data=data, batches=eval_batches)
            extra["evals"][data] = {"tokens": res["tokens"], "bytes_per_token": res["bytes_per_token"],
                                    "results": res["results"]}
    return write_run_summary(spec.run_dir, results_dir, extra)


def relabel_summaries(runs: list[RunSpec], results_dir: Path) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Rewrite the grid labels (``grid``, ``grids``, ``lr_scan``, ``holdout``) of the committed summaries of ``runs`` to
    what the sweep TOML says now, e.g. after a rate check won and its point's main run moved to a new rate
    (the old main run becomes a scan run). Only those keys change, each file atomically; summaries of runs
    not in ``runs`` are left alone. Returns ``(name, old, new)`` for each summary changed."""
    changed = []
    for spec in runs:
        p = summary_path(results_dir, spec.name)
        if not p.is_file():
            continue
        s = load_summary(p)
        new = {"grid": spec.grid, "grids": list(spec.grids), "lr_scan": spec.scan, "holdout": spec.holdout}
        old = {k: s.get(k, False if k == "holdout" else None) for k in new}  # holdout: absent in older ones
        if old != new:
            s.update(new)
            atomic_write_json(p, s)
            changed.append((spec.name, old, new))
    return changed


PARKED = "inflight"  # results_dir/inflight/<run>/: an unfinished run's newest state, committed to change machines


def parked_dir(results_dir: str | Path, name: str) -> Path:
    """Where ``--park`` puts the run ``name``'s newest state: ``results_dir/inflight/<name>/``."""
    return Path(results_dir) / PARKED / name


def _step_of(ck: Path | None) -> int:
    """The step of a checkpoint folder (``step_00001234``), -1 for none."""
    return -1 if ck is None else int(ck.name.removeprefix("step_"))


def _copy_run_state(src: Path, dst: Path, ck: Path) -> None:
    """Copy a run's files, its checkpoint ``ck`` (as its only one, marked LATEST) and its pre-decay state from
    ``src`` to ``dst``, through a temporary folder renamed at the end: a kill leaves the old ``dst`` intact."""
    from .checkpoint import CHECKPOINTS, PRE_DECAY, mark_latest

    tmp = dst.parent / f".{dst.name}.copy-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in (CONFIG_FILE, TOKENIZER_FILE, DATA_IDENTITY_FILE, LOG_FILE):
        if (src / f).is_file():
            shutil.copy2(src / f, tmp / f)
    shutil.copytree(ck, tmp / CHECKPOINTS / ck.name)
    mark_latest(tmp / CHECKPOINTS / ck.name)
    if (src / PRE_DECAY).is_dir():  # a WSD run past its decay's start: what --extend (a later branch) continues
        # hidden names are a live writer's temporary folders (runfiles.temp_path): not state
        shutil.copytree(src / PRE_DECAY, tmp / PRE_DECAY, ignore=shutil.ignore_patterns(".*"))
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)


def park_run(spec: RunSpec, results_dir: str | Path) -> Path | None:
    """Copy the newest checkpoint of ``spec``'s unfinished run to :func:`parked_dir` (replacing an older parked
    copy), so that committing ``results_dir`` carries the run to another machine. Returns the parked folder,
    or ``None`` when the run has no checkpoint here or is already summarised.

    A run that a worker is training (its lock is held) is parked live: its newest complete checkpoint is copied
    while training goes on (checkpoints are published by an atomic rename, and a folder is pruned only after newer
    ones are published, ``keep_last``: the copy reads a finished folder, and one that loses a race with the pruning
    is retried on the newer one). The log may hold steps past that checkpoint: a resume drops them
    (:func:`rins.runs.truncate_log`)."""
    return _park(spec, Path(results_dir))[0]


def _park(spec: RunSpec, res: Path) -> tuple[Path | None, bool]:
    """:func:`park_run`, and whether the run was being trained (parked live)."""
    from .checkpoint import latest_checkpoint

    with run_lock(spec.run_dir) as idle:
        for attempt in range(3):
            ck = latest_checkpoint(spec.run_dir)
            if ck is None or _summarised(spec, res):
                return None, not idle
            dst = parked_dir(res, spec.name)
            if _step_of(latest_checkpoint(dst)) >= _step_of(ck):
                return dst, not idle
            try:
                _copy_run_state(spec.run_dir, dst, ck)
            except (FileNotFoundError, shutil.Error):
                if idle or attempt == 2:  # nothing else writes an idle run: a missing file is a real fault
                    raise
                continue  # the worker pruned the folder mid-copy: take its newer one
            if not idle and _summarised(spec, res):  # the run finished meanwhile: its summary replaces the copy
                shutil.rmtree(dst, ignore_errors=True)
                return None, True
            return dst, not idle
    return None, not idle


def unpark_run(spec: RunSpec, results_dir: str | Path | None) -> int | None:
    """Resume from a parked copy (:func:`park_run`, e.g. committed on another machine) when it is newer than
    the run directory's newest checkpoint: the run directory is replaced by it after the parked checkpoint's
    hashes were verified. Returns the step restored, or ``None`` (nothing parked, or nothing newer)."""
    from .checkpoint import latest_checkpoint, load_checkpoint

    if results_dir is None or is_complete(spec.run_dir):
        return None
    src = parked_dir(results_dir, spec.name)
    pk = latest_checkpoint(src)
    if pk is None or _step_of(pk) <= _step_of(latest_checkpoint(spec.run_dir)):
        return None
    load_checkpoint(pk)  # CheckpointError on a corrupt or truncated copy, before the run directory is touched
    _copy_run_state(src, spec.run_dir, pk)
    return _step_of(pk)


def _drop_parked(spec: RunSpec, results_dir: Path) -> None:
    """The run is summarised: its parked copy is no longer needed (delete it with the summary's commit)."""
    d = parked_dir(results_dir, spec.name)
    if d.is_dir():
        shutil.rmtree(d)
        with contextlib.suppress(OSError):
            d.parent.rmdir()  # the last one: no empty inflight/ left behind


class TrunkBusy(Exception):
    """The trunk a branch continues is being trained by another worker: the branch waits for a later walk."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a sweep's worker processes; each checkpointed the run it was training.
    ``unfinished``: the selected runs without a summary; rerunning the same command resumes them."""

    def __init__(self, unfinished: list[str]) -> None:
        super().__init__(f"interrupted; {len(unfinished)} runs not finished")
        self.unfinished = unfinished


def _copy_trunk(src: Path, dst: Path) -> None:
    """Copy the finished run ``src`` (its checkpoints, pre-decay state, log, config, tokenizer) to ``dst``, the
    branch that continues it; through a temporary folder renamed at the end, so a kill leaves no half copy."""
    tmp = dst.parent / f".{dst.name}.trunk-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(f"*{LOCK_SUFFIX}", "tb", "wandb", "*.tmp*"))
    shutil.rmtree(dst, ignore_errors=True)  # no checkpoint there (the caller checked): nothing is lost
    tmp.rename(dst)


# the keys of a data identity (rins.data.data_identity) that name the text itself: runs of one sweep on the same
# corpus must agree on them whatever their vocabulary, split or seed
_CONTENT_KEYS = ("source", "content_sha256")


def recorded_identities(results_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(file, data identity)`` of what a sweep's runs read: each summary's ``data_identity`` in
    ``results_dir`` and each parked copy's ``data_identity.json`` (older records without one are left out)."""
    out = []
    for f in [*sorted(results_dir.glob("*.json")), *sorted(results_dir.glob(f"{PARKED}/*/{DATA_IDENTITY_FILE}"))]:
        obj = read_json(f)
        ident = obj.get("data_identity") if f.name != DATA_IDENTITY_FILE else obj
        if isinstance(ident, dict) and ident.get("corpus") is not None:
            out.append((str(f.relative_to(results_dir)), ident))
    return out


def check_same_data(spec: RunSpec, results_dir: Path | None) -> None:
    """Refuse to train ``spec`` on other text than the sweep's runs on the same corpus read (summaries and
    parked copies in ``results_dir``): e.g. a machine whose apt lists are older reads other package versions,
    and its runs would be compared with the others on a different corpus. The error names what differs and
    the fix. Language-model runs only."""
    from .data import data_identity, identity_change
    from .fields import default_cache_dir

    cfg = spec.train_config()
    if results_dir is None or cfg.task != "lm" or not results_dir.is_dir():
        return
    d = cfg.data
    names = {d.corpus, str(Path(d.corpus).resolve())}  # a built-in corpus's spec, or a local one's resolved path
    recorded = [(f, i) for f, i in recorded_identities(results_dir) if i["corpus"] in names]
    if not recorded:  # nothing to compare with: the sources are not even fetched
        return
    here = data_identity(d.corpus, d.cache_dir, d.vocab_size, d.val_fraction, cfg.seed, d.tokenizer)
    here_text = {k: here.get(k) for k in _CONTENT_KEYS}
    for f, ident in recorded:
        then = {k: ident.get(k) for k in _CONTENT_KEYS}
        if then != here_text:
            change = identity_change(then, here_text, d.cache_dir or default_cache_dir(), then=f"in {f}")
            raise ValueError(
                f"{spec.name}: the corpus {d.corpus!r} prepared here is not the text the sweep's other runs read "
                f"({change}), so this run would be compared with them on other data. Prepare the same sources "
                f"here, or give this sweep another results_dir")


def train_spec(spec: RunSpec, by_name: dict[str, RunSpec], quiet: bool = True,
               say: Any = None, results_dir: Path | None = None) -> dict[str, Any]:
    """Train one grid point (resuming it). A branch of a WSD trunk (``spec.follows``) starts as a copy of the
    finished run of the next smaller budget and continues it with ``--extend``: back to where that run's decay
    began, on at the stable rate, and its own decay at its own budget. A trunk that is missing here (its summary
    was committed on another machine) is trained first; one locked by another worker raises :class:`TrunkBusy`.
    With ``results_dir``, a newer parked copy of the run there (:func:`park_run`) is restored first.
    """
    from .checkpoint import latest_checkpoint
    from .train import train

    check_same_data(spec, results_dir)
    step = unpark_run(spec, results_dir)
    if step is not None and say:
        say(f"[sweep] {spec.name}: resuming from its parked copy at step {step} ({parked_dir(results_dir, spec.name)})")
    if spec.follows is None:
        return train(spec.train_config(), resume=True, quiet=quiet)
    if latest_checkpoint(spec.run_dir) is None:
        pred = by_name.get(spec.follows)
        if pred is None:
            raise ValueError(f"{spec.name} continues {spec.follows}, which is not in the sweep")
        if not is_complete(pred.run_dir):
            with run_lock(pred.run_dir) as got:
                if not got:
                    raise TrunkBusy(pred.name)
                if not is_complete(pred.run_dir):
                    if say:
                        say(f"[sweep] {spec.name}: training the trunk it continues first: {pred.name}")
                    train_spec(pred, by_name, quiet, say, results_dir)
        _copy_trunk(pred.run_dir, spec.run_dir)
    return train(spec.train_config(), resume=True, quiet=quiet, extend=True)


def run_worker(runs: list[RunSpec], worker: int = 0, quiet: bool = False, log: Any = None,
               results_dir: str | Path | None = None, evals: list[str] | None = None,
               eval_batches: int | None = None, all_runs: list[RunSpec] | None = None) -> dict[str, list[str]]:
    """Walk ``runs`` in order; train each run that is not done and not locked by another worker.

    A run is done when its summary is in ``results_dir`` (when given) or its run directory is complete.
    With ``results_dir``, each run that completes (or was complete without a summary) is scored on
    ``evals`` and summarised there (:func:`finish_run`), so a study's results can be committed as it goes
    and a study moved to another machine skips what it already has.
    A branch of a WSD trunk (``branches = true``) continues its trunk (:func:`train_spec`), looked up in
    ``all_runs`` (default ``runs``): a branch whose trunk another worker is training is reported busy.

    Returns ``{"trained": [...], "skipped": [...], "busy": [...], "failed": [...]}`` (run names).
    A failing run (bad budget, NaN) is reported and the walk goes on.
    """
    by_name = {r.name: r for r in (all_runs if all_runs is not None else runs)}
    res_dir = Path(results_dir) if results_dir is not None else None
    out: dict[str, list[str]] = {"trained": [], "skipped": [], "busy": [], "failed": []}
    say = log or (lambda msg: print(msg, flush=True))
    for i, spec in enumerate(runs):
        tag = f"[sweep w{worker}] ({i + 1}/{len(runs)}) {spec.name}"
        if _done(spec, res_dir):
            out["skipped"].append(spec.name)
            say(f"{tag}: complete, skipped")
            continue
        with run_lock(spec.run_dir) as got:
            if not got:
                out["busy"].append(spec.name)
                say(f"{tag}: locked by another worker, skipped")
                continue
            if _done(spec, res_dir):
                out["skipped"].append(spec.name)  # finished by another worker meanwhile
                continue
            t0 = time.time()
            try:
                if not is_complete(spec.run_dir):
                    say(f"{tag}: training (budget {spec.budget:.3g} FLOPs"
                        + (f", continuing {spec.follows})" if spec.follows else ")"))
                    s = train_spec(spec, by_name, quiet, say, res_dir)
                    out["trained"].append(spec.name)
                    say(f"{tag}: done in {time.time() - t0:.0f}s, {s.get('steps')} steps, {s.get('tokens'):,} "
                        f"tokens, val_loss {s.get('val_loss', float('nan')):.4f}")
                if res_dir is not None:
                    p = finish_run(spec, res_dir, evals, eval_batches)
                    _drop_parked(spec, res_dir)
                    say(f"{tag}: summary {p}")
            except TrunkBusy as e:
                out["busy"].append(spec.name)
                say(f"{tag}: its trunk {e} is being trained by another worker, skipped")
                continue
            except Exception as e:  # noqa: BLE001 - one bad run must not stop the sweep
                out["failed"].append(spec.name)
                say(f"{tag}: FAILED: {type(e).__name__}: {e}")
                continue
    return out


def run_sweep(sweep: Sweep, runs: list[RunSpec] | None = None, procs: int | None = None,
              quiet: bool = True, gpus: list[str] | None = None) -> dict[str, list[str]]:
    """Train every run of ``sweep`` (or ``runs``): in this process, or with ``procs`` > 1 worker
    subprocesses that each walk the whole list (the per-run lock shares the work out). ``gpus``: device
    ids; worker k sees only ``gpus[k % len(gpus)]`` (``CUDA_VISIBLE_DEVICES``)."""
    runs = sweep.runs if runs is None else runs
    procs = sweep.procs if procs is None else procs
    sweep.out_dir.mkdir(parents=True, exist_ok=True)
    (sweep.out_dir / "sweep.json").write_text(json.dumps(
        {"sweep_file": str(sweep.path), "runs": [r.name for r in sweep.runs]}, indent=1))
    if procs <= 1:
        _set_threads(sweep.threads)
        res = run_worker(runs, 0, quiet, results_dir=sweep.results_dir, evals=sweep.evals,
                         eval_batches=sweep.eval_batches, all_runs=sweep.runs)
    else:
        names = [r.name for r in runs]
        cmd = [sys.executable, "-m", "rins.cli", "sweep", str(sweep.path), "--out-dir", str(sweep.out_dir),
               "--worker", "--threads", str(sweep.threads)]
        for n in names:
            cmd += ["--only", n]
        workers = []
        for k in range(procs):
            env = dict(os.environ)
            if gpus:  # pin worker k to one GPU (round robin)
                env["CUDA_VISIBLE_DEVICES"] = str(gpus[k % len(gpus)])
            # their own process group: stop signals reach them once, forwarded (rins.stopping)
            workers.append(subprocess.Popen(cmd + ["--worker-id", str(k)], env=env, process_group=0))
        with forward_stop_signals(lambda: [w.pid for w in workers if w.poll() is None], "sweep") as stopped:
            rcs = [w.wait() for w in workers]
        if stopped():
            raise SweepInterrupted([r.name for r in runs if not _trained(r, sweep.results_dir)])
        res = {"trained": [], "skipped": [], "busy": [], "failed": []}
        for r in runs:
            if not _trained(r, sweep.results_dir):
                res["failed"].append(r.name)
        if any(rcs):
            print(f"[sweep] worker exit codes: {rcs}", flush=True)
    done = sum(_trained(r, sweep.results_dir) for r in runs)
    print(f"[sweep] {done}/{len(runs)} runs complete in {sweep.out_dir}" +
          (f"; failed: {', '.join(res['failed'])}" if res["failed"] else ""), flush=True)
    return res


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``rins sweep`` (on the sub-parser :mod:`rins.cli` builds), run by :func:`cmd_sweep`."""
    p.description = "Run a grid of compute-matched runs (TOML)."
    p.add_argument("sweep", help="sweep TOML file ([base], [sizes.*], [[grid]])")
    p.add_argument("--only", action="append", default=[], metavar="PATTERN",
                   help="only runs whose name or grid matches this glob (or contains it); repeatable")
    mode = p.add_mutually_exclusive_group()  # each of these trains nothing: one at a time
    mode.add_argument("--dry-run", action="store_true",
                      help="print the grid with params/steps/tokens and each run's progress; train nothing")
    p.add_argument("--procs", type=int, default=None, help="worker processes (default [sweep] procs or 1)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker (0: torch default)")
    p.add_argument("--gpus", default=None, help="comma-separated GPU ids; worker k uses gpus[k %% n], e.g. 0,1,2,3")
    p.add_argument("--out-dir", default=None, help="parent folder of the runs (default [sweep] out_dir)")
    p.add_argument("--json", action="store_true", help="with --dry-run: print JSON rows")
    mode.add_argument("--relabel", action="store_true",
                      help="rewrite the grid labels (grid, grids, lr_scan, holdout) of the selected runs' summaries "
                           "in [sweep] results_dir to match this TOML (after moving runs between grids); train nothing")
    mode.add_argument("--park", action="store_true",
                      help="copy the newest checkpoint of each selected unfinished run to [sweep] results_dir/"
                           "inflight/ (commit it: a sweep on another machine resumes from it), runs being trained "
                           "too, without stopping them; train nothing")
    p.add_argument("--verbose", action="store_true", help="show the trainer's per-step output")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker-id", type=int, default=0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_sweep)


def _cmd_park(sw: Sweep, runs: list[RunSpec]) -> int:
    """``rins sweep SWEEP.toml --park``: park every selected unfinished run that has a checkpoint here."""
    from .checkpoint import latest_checkpoint

    if sw.results_dir is None:
        print(f"rins sweep: error: --park needs [sweep] results_dir in {sw.path}", file=sys.stderr)
        return 2
    parked = []
    for spec in runs:
        d, live = _park(spec, sw.results_dir)
        if d is not None:
            size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
            parked.append(d)
            note = " (live: its worker goes on training; park again for a newer step)" if live else ""
            print(f"{spec.name}: step {_step_of(latest_checkpoint(d))} -> {d} ({size / 1e6:.1f} MB){note}")
    print(f"rins sweep: {len(parked)} run{'' if len(parked) == 1 else 's'} parked in {sw.results_dir / PARKED}"
          + (": commit it; `rins sweep` on any machine resumes them from there" if parked else ""))
    return 0


def cmd_sweep(a: argparse.Namespace) -> int:
    """``rins sweep SWEEP.toml [--only PATTERN]... [--dry-run | --relabel] [--procs N] [--gpus IDS]
    [--out-dir DIR] [--threads T]``.

    Returns 0 when every selected run is complete, 1 when some failed, 2 on a usage/config error.
    """
    try:
        sw = load_sweep(a.sweep, a.out_dir)
    except (ValueError, FileNotFoundError, SignatureError) as e:
        print(f"rins sweep: error: {e}", file=sys.stderr)
        return 2
    if a.threads is not None:
        sw.threads = a.threads
    runs = select(sw.runs, a.only)
    if not runs:
        print(f"rins sweep: error: no run matches --only {a.only}", file=sys.stderr)
        return 2
    if a.relabel:
        if sw.results_dir is None:
            print(f"rins sweep: error: --relabel needs [sweep] results_dir in {a.sweep}", file=sys.stderr)
            return 2
        try:
            changed = relabel_summaries(runs, sw.results_dir)
        except ValueError as e:
            print(f"rins sweep: error: {e}", file=sys.stderr)
            return 2
        for name, old, new in changed:
            print(f"{name}: {old} -> {new}")
        print(f"rins sweep: relabelled {len(changed)} summaries in {sw.results_dir}")
        return 0
    if a.park:
        return _cmd_park(sw, runs)
    if a.dry_run:
        text, rows = dry_run_table(runs, sw.results_dir)
        print(json.dumps(rows, indent=1) if a.json else text)
        return 0
    if a.worker:
        _set_threads(sw.threads)
        res = run_worker(runs, a.worker_id, quiet=not a.verbose, results_dir=sw.results_dir, evals=sw.evals,
                         eval_batches=sw.eval_batches, all_runs=sw.runs)
        return 1 if res["failed"] else 0
    gpus = [g.strip() for g in a.gpus.split(",") if g.strip()] if a.gpus else None
    res = run_sweep(sw, runs, a.procs, quiet=not a.verbose, gpus=gpus)
    return 1 if res["failed"] or not all(_trained(r, sw.results_dir) for r in runs) else 0
