"""Held-out evaluation of a trained LM run on any text: loss, perplexity and bits per byte at each depth r.

``evaluate_run(RUN, data=SPEC)`` encodes ``SPEC`` (a built-in corpus such as ``shakespeare`` or
``mix-large:linux-doc``, a ``.txt``/``.md`` file, a folder, a ``.jsonl`` file, ``hf:...``) with the run's own
tokenizer, splits it by document exactly as training does (the run's ``val_fraction`` and seed, so the
run's own corpus gives its own held-out documents), and scores the chosen split at every requested
depth; ``split="all"`` scores every document (``rins eval --data FILE`` does so by default for a
local file or folder, which no run was trained on). **Bits per byte** (``loss / ln 2 × tokens / UTF-8
bytes``) does not depend on the tokenizer, so runs with different vocabularies compare. ``rins eval RUN
--data SPEC`` is the command-line form.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["adaptive_loss", "evaluate_run", "format_results", "is_local_text"]


def is_local_text(spec: str | None) -> bool:
    """Whether a ``--data`` spec names a local file or folder (not a built-in corpus or ``hf:``): text no run was
    trained on, scored whole by default."""
    if not spec or spec == "shakespeare" or spec.startswith("hf:"):
        return False
    from .corpora.mixes import parse_corpus_parts

    return parse_corpus_parts(spec) is None and Path(spec).expanduser().exists()


@torch.no_grad()
def evaluate_run(run_dir: str | Path, data: str | None = None, depths: list[int] | None = None,
                 batches: int | None = None, batch_size: int | None = None, split: str = "val",
                 device: str | torch.device = "cpu", verify: bool = True,
                 adaptive: list[Any] | str | None = None) -> dict[str, Any]:
    """Score a trained LM run on ``data`` (default: the corpus it was trained on).

    Args:
        run_dir: a run directory written by ``rins train``.
        data: a corpus spec (see :func:`rins.corpora.load_corpus`); ``None`` = the run's ``data.corpus``.
        depths: inference depths r; default 1 … r_max + 1 (a plain model: its one depth, reported as r=None).
        batches: at most this many batches of ``batch_size`` windows, spread evenly over the split
            (default: the run's ``eval_batches``; 0 = the whole split).
        batch_size: windows per batch (default: as the trainer evaluates, ``min(batch_size, 16)`` of the run).
        split: ``"val"`` (held-out documents), ``"train"`` or ``"all"`` (every document: the train split's tokens
            then the held-out ones, one stream).
        verify: check the checkpoint's SHA-256 hashes (``rins eval --no-verify`` skips it).
        adaptive: exit rules (:class:`rins.adaptive.ExitRule` or their text, ``"kl=0.01,0.1"``) to score too:
            adaptive depth per token, at most r_max rounds (docs/method.md §6).

    Returns ``{"run", "data", "split", "windows", "tokens", "bytes_per_token", "seq_len", "results": [{"r",
    "loss", "ppl", "bpb", "mean_rounds", "flops_per_token"}, ...], "adaptive": [{"rule", "r_max", "loss",
    "ppl", "bpb", "mean_rounds", "flops_per_token", "head_reads_per_token", "rounds_hist"}, ...]}``; ``r`` is
    an int, or ``None`` for a model without recursion. ``flops_per_token`` is the forward cost over windows of
    ``seq_len`` tokens (:meth:`rins.model.RecursiveLM.flops_per_token`); adaptive rows add the rule's head reads.
    """
    from .adaptive import parse_adaptive
    from .checkpoint import load_model
    from .config import load_run_config
    from .data import TokenDataset, bytes_per_token, load_tokenizer, prepare_data
    from .runs import tokenizer_file
    from .tasks.lm import eval_batch_size

    _check_types(run_dir, data, depths, batches, batch_size, split, device, verify)
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    _check_args(run_dir, cfg, split, batches, batch_size)
    rules = _rules(adaptive, parse_adaptive)
    if batch_size is None:
        batch_size = eval_batch_size(cfg)  # the trainer's choice: the same windows as its evals
    tok_path = tokenizer_file(run_dir)
    if not tok_path.is_file():
        raise FileNotFoundError(f"{run_dir} has no tokenizer.json; it is needed to encode {data or cfg.data.corpus!r}")
    load_tokenizer(tok_path)  # a corrupt one fails here, naming the file, before any corpus is read
    spec = data or cfg.data.corpus
    # the run's own tokenizer (never a new one), the run's split of documents
    bundle = prepare_data(spec, cfg.data.cache_dir, cfg.data.vocab_size, cfg.data.val_fraction, cfg.seed,
                          tokenizer=tok_path)
    model = load_model(run_dir, device, verify=verify)
    dev = next(model.parameters()).device
    meta = bundle.meta
    with tempfile.TemporaryDirectory() as tmp:
        if split == "all":  # both token files, each a run of whole documents: one stream of every document
            path = Path(tmp) / "all.bin"
            with open(path, "wb") as f:
                for part in (bundle.train_path, bundle.val_path):
                    f.write(Path(part).read_bytes())
            bpt = (meta["train_bytes"] + meta["val_bytes"]) / max(1, meta["n_train_tokens"] + meta["n_val_tokens"])
        else:
            path = bundle.val_path if split == "val" else bundle.train_path
            bpt = bytes_per_token(bundle) if split == "val" else meta["train_bytes"] / max(1, meta["n_train_tokens"])
        ds = TokenDataset(path, cfg.data.seq_len)
        return _score(run_dir, spec, split, model, ds, depths, batches, batch_size, cfg, dev, bpt, rules)


def _score(run_dir: Path, spec: str, split: str, model: Any, ds: Any, depths: list[int] | None, batches: int | None,
           batch_size: int, cfg: Any, dev: torch.device, bpt: float, rules: list[Any]) -> dict[str, Any]:
    from .plan import default_depths
    from .tasks.lm import mean_loss

    limit = cfg.eval_batches if batches is None else (batches or None)
    depths = depths or default_depths(model.r_max)
    if any(r is not None and r < 1 for r in depths):
        raise ValueError(f"every depth r must be >= 1, got {depths}")
    if rules and model.r_max is None:
        raise ValueError(f"{run_dir} has no recursed group (signature {model.config.signature!r}); adaptive depth "
                         "needs one, e.g. A^3B")
    S = cfg.data.seq_len
    announce_cost(model, depths, ds, batch_size, limit, S, cfg.dtype, dev, rules)
    results, windows, tokens = [], 0, 0
    for r in depths:
        loss, tokens, windows = mean_loss(model, ds, r, batch_size, limit, cfg, dev)
        results.append({"r": r, "loss": loss, "ppl": math.exp(min(loss, 700.0)), "bpb": loss / math.log(2) / bpt,
                        "mean_rounds": r if r is not None else model.r_max,
                        "flops_per_token": model.flops_per_token(S, r)})
    out_adaptive = []
    for rule in rules:
        loss, stats = adaptive_loss(model, ds, rule, batch_size, limit, cfg, dev, S)
        out_adaptive.append({"rule": str(rule), "r_max": model.r_max, "loss": loss,
                             "ppl": math.exp(min(loss, 700.0)), "bpb": loss / math.log(2) / bpt,
                             "mean_rounds": stats.mean_rounds, "flops_per_token": stats.flops_per_token,
                             "head_reads_per_token": stats.head_reads / stats.tokens,
                             "rounds_hist": stats.rounds_hist})
    out = {"run": str(run_dir), "data": spec, "split": split, "windows": windows, "tokens": tokens,
           "bytes_per_token": bpt, "seq_len": S, "results": results}
    if rules:
        out["adaptive"] = out_adaptive
    return out


ANNOUNCE_SECONDS = 60.0  # an evaluation expected to take longer says so, with its estimate, before it starts
EVAL_EFFICIENCY = 0.5  # the share of the measured matmul peak an evaluation forward is assumed to reach


def eval_cost(model: Any, depths: list[int | None], n_tokens: int, seq_len: int, rules: list[Any] = ()) -> float:
    """Forward FLOPs of scoring ``n_tokens`` tokens at every depth of ``depths`` (and once at r_max for each exit
    rule, their upper bound), counted per executed layer as training counts them."""
    per_token = sum(model.flops_per_token(seq_len, r) for r in depths)
    per_token += len(rules) * model.flops_per_token(seq_len, model.r_max)
    return per_token * n_tokens


def announce_cost(model: Any, depths: list[int | None], ds: Any, batch_size: int, limit: int | None, seq_len: int,
                  dtype: str, device: torch.device, rules: list[Any] = ()) -> float:
    """Estimate how long scoring ``depths`` (and ``rules``) on ``ds`` takes, from its FLOPs and this machine's
    measured matmul peak (:func:`rins.train.peak_flops`, at :data:`EVAL_EFFICIENCY`), and print the estimate to
    stderr when it exceeds :data:`ANNOUNCE_SECONDS` (a long explicit depth list, a large split), so that a user
    can stop it and ask for fewer depths or batches. Returns the estimated seconds."""
    import sys

    from .train import peak_flops

    n = ds.n_eval_windows()
    windows = n if limit is None else min(n, limit * batch_size)
    flops = eval_cost(model, depths, windows * seq_len, seq_len, rules)
    peak, _ = peak_flops(device, dtype)
    seconds = flops / (peak * EVAL_EFFICIENCY)
    if seconds > ANNOUNCE_SECONDS:
        mins = seconds / 60
        print(f"[rins] scoring {len(depths)} depth(s){f' and {len(rules)} exit rule(s)' if rules else ''} on "
              f"{windows:,} windows of {seq_len} tokens: {flops:.3g} FLOPs, about {mins:,.0f} min at this machine's "
              f"measured {peak / 1e9:,.0f} GFLOP/s (fewer depths with --r, fewer windows with --batches)",
              file=sys.stderr, flush=True)
    return seconds


def _rules(adaptive: Any, parse: Any) -> list[Any]:
    """The exit rules of ``adaptive``: a string (``"kl=0.01,0.1;hidden=0.1"``), rules, or strings."""
    from .adaptive import to_rule

    if adaptive is None:
        return []
    if isinstance(adaptive, str):
        return parse(adaptive)
    out = []
    for a in adaptive:
        out.extend(parse(a) if isinstance(a, str) else [to_rule(a)])
    return out


@torch.no_grad()
def adaptive_loss(model: Any, ds: Any, rule: Any, batch_size: int, limit: int | None, cfg: Any,
                  device: torch.device, seq_len: int) -> tuple[float, Any]:
    """(mean loss per token, :class:`rins.adaptive.ExitStats`) of ``model`` with the exit ``rule`` over the same
    evaluation batches as :func:`rins.tasks.lm.mean_loss`."""
    from .adaptive import ExitStats
    from .tasks.base import autocast

    stats = ExitStats()
    tot, n = 0.0, 0
    for x, y in ds.iter_eval_batches(batch_size, limit):
        x, y = x.to(device), y.to(device)
        with autocast(cfg, device):
            tot += model(x, targets=y, reduction="sum", exit_rule=rule, exit_stats=stats).item()
        n += y.numel()
    # FLOPs over full windows (as the fixed rows count them), not over each forward's own length
    hist = stats.rounds_hist
    c = model.config
    stats.flops = (sum(k * model.flops_per_token(seq_len, i + 1) for i, k in enumerate(hist))
                   + stats.head_reads * 2.0 * c.d_model * c.vocab_size)
    return tot / n, stats


def _check_types(run_dir: Any, data: Any, depths: Any, batches: Any, batch_size: Any, split: Any, device: Any,
                 verify: Any) -> None:
    """evaluate_run's arguments by type (rins.ConfigError naming the argument; nothing coerced)."""
    from .arguments import bad_argument, check_int, check_str
    from .checkpoint import check_load_args
    from .plan import MAX_EXPONENT

    w = "evaluate_run"
    check_load_args(w, run_dir, device, verify)
    if data is not None:
        check_str(w, "data", data)
    if depths is not None:
        if isinstance(depths, str | bytes) or not isinstance(depths, list | tuple):
            raise bad_argument(w, "depths", depths, "must be None or a list of depths r >= 1")
        for i, r in enumerate(depths):
            if r is not None:
                check_int(w, f"depths[{i}]", r, 1, MAX_EXPONENT)
    if batches is not None:
        check_int(w, "batches", batches, 0)
    if batch_size is not None:
        check_int(w, "batch_size", batch_size, 1)
    if not isinstance(split, str) or split not in ("val", "train", "all"):
        raise bad_argument(w, "split", split, "must be 'val', 'train' or 'all'")


def _check_args(run_dir: Path, cfg: Any, split: str, batches: int | None, batch_size: int | None) -> None:
    if cfg.task != "lm":
        raise ValueError(f"{run_dir} is a {cfg.task!r} run; evaluate_run scores language models")
    if split not in ("val", "train", "all"):
        raise ValueError(f"split must be 'val', 'train' or 'all', got {split!r}")
    if batches is not None and batches < 0:
        raise ValueError(f"batches must be >= 0 (0 = the whole split), got {batches}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def format_results(res: dict[str, Any]) -> str:
    """A small text table of :func:`evaluate_run`'s results."""
    what = "every document" if res["split"] == "all" else f"{res['split']} split"
    lines = [f"{res['run']} on {res['data']} ({what}, {res['tokens']:,} tokens, "
             f"{res['bytes_per_token']:.3f} bytes/token)"]
    adaptive = res.get("adaptive") or []
    if not adaptive:
        lines.append(f"{'r':>4} {'loss':>8} {'ppl':>10} {'bpb':>7}")
        for row in res["results"]:
            r = "-" if row["r"] is None else str(row["r"])
            lines.append(f"{r:>4} {row['loss']:8.4f} {row['ppl']:10.2f} {row['bpb']:7.4f}")
        return "\n".join(lines)
    # with exit rules: every depth and rule with its mean rounds and forward FLOPs per token
    w = max(14, *(len(a["rule"]) for a in adaptive))
    lines.append(f"{'depth':>{w}} {'loss':>8} {'ppl':>10} {'bpb':>7} {'rounds':>6} {'MFLOP/token':>11}")
    for row in res["results"]:
        r = "-" if row["r"] is None else f"r={row['r']}"
        lines.append(f"{r:>{w}} {row['loss']:8.4f} {row['ppl']:10.2f} {row['bpb']:7.4f} "
                     f"{row['mean_rounds']:6.2f} {row['flops_per_token'] / 1e6:11.3f}")
    for a in adaptive:
        lines.append(f"{a['rule']:>{w}} {a['loss']:8.4f} {a['ppl']:10.2f} {a['bpb']:7.4f} "
                     f"{a['mean_rounds']:6.2f} {a['flops_per_token'] / 1e6:11.3f}")
    lines.append(f"(adaptive: at most r={adaptive[0]['r_max']} rounds per token; FLOPs per token of the forward "
                 f"over {res['seq_len']}-token windows, head reads of the exit rule included)")
    return "\n".join(lines)
