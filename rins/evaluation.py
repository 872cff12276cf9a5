"""Held-out evaluation of a trained LM run on any text: loss, perplexity and bits per byte at each depth r.

``evaluate_run(RUN, data=SPEC)`` encodes ``SPEC`` (a built-in corpus such as ``shakespeare`` or
``mix-large:linux-doc``, a ``.txt``/``.md`` file, a folder, a ``.jsonl`` file, ``hf:...``) with the run's own
tokenizer, splits it by document exactly as training does (the run's ``val_fraction`` and seed, so the
run's own corpus gives its own held-out documents), and scores the chosen split at every requested
depth. **Bits per byte** (``loss / ln 2 × tokens / UTF-8 bytes``) does not depend on the tokenizer, so
runs with different vocabularies compare. ``rins eval RUN --data SPEC`` is the command-line form.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

__all__ = ["evaluate_run", "format_results"]


@torch.no_grad()
def evaluate_run(run_dir: str | Path, data: str | None = None, depths: list[int] | None = None,
                 batches: int | None = None, batch_size: int | None = None, split: str = "val",
                 device: str | torch.device = "cpu", verify: bool = True) -> dict[str, Any]:
    """Score a trained LM run on ``data`` (default: the corpus it was trained on).

    Args:
        run_dir: a run directory written by ``rins train``.
        data: a corpus spec (see :func:`rins.data.load_corpus`); ``None`` = the run's ``data.corpus``.
        depths: inference depths r; default 1 … r_max + 1 (a plain model: its one depth, reported as r=None).
        batches: at most this many batches of ``batch_size`` windows, spread evenly over the split
            (default: the run's ``eval_batches``; 0 = the whole split).
        batch_size: windows per batch (default: as the trainer evaluates, ``min(batch_size, 16)`` of the run).
        split: ``"val"`` (held-out documents) or ``"train"``.
        verify: check the checkpoint's SHA-256 hashes (``rins eval --no-verify`` skips it).

    Returns ``{"run", "data", "split", "windows", "tokens", "bytes_per_token", "results": [{"r", "loss",
    "ppl", "bpb"}, ...]}``; ``r`` is an int, or ``None`` for a model without recursion.
    """
    from .checkpoint import load_model
    from .config import load_run_config
    from .data import TokenDataset, bytes_per_token, load_tokenizer, prepare_data
    from .tasks import default_depths
    from .tasks.lm import eval_batch_size, mean_loss

    _check_types(run_dir, data, depths, batches, batch_size, split, device, verify)
    rd = Path(run_dir)
    cfg = load_run_config(rd)
    _check_args(rd, cfg, split, batches, batch_size)
    if batch_size is None:
        batch_size = eval_batch_size(cfg)  # the trainer's choice: the same windows as its evals
    tok_path = rd / "tokenizer.json"
    if not tok_path.is_file():
        raise FileNotFoundError(f"{rd} has no tokenizer.json; it is needed to encode {data or cfg.data.corpus!r}")
    load_tokenizer(tok_path)  # a corrupt one fails here, naming the file, before any corpus is read
    spec = data or cfg.data.corpus
    # the run's own tokenizer (never a new one), the run's split of documents
    bundle = prepare_data(spec, cfg.data.cache_dir, cfg.data.vocab_size, cfg.data.val_fraction, cfg.seed,
                          tokenizer=tok_path)
    model = load_model(rd, device, verify=verify)
    dev = next(model.parameters()).device
    ds = TokenDataset(bundle.val_path if split == "val" else bundle.train_path, cfg.data.seq_len)
    limit = cfg.eval_batches if batches is None else (batches or None)
    depths = depths or default_depths(model.r_max)
    if any(r is not None and r < 1 for r in depths):
        raise ValueError(f"every depth r must be >= 1, got {depths}")
    meta = bundle.meta
    bpt = bytes_per_token(bundle) if split == "val" else meta["train_bytes"] / max(1, meta["n_train_tokens"])
    results, windows, tokens = [], 0, 0
    for r in depths:
        loss, tokens, windows = mean_loss(model, ds, r, batch_size, limit, cfg, dev)
        results.append({"r": r, "loss": loss, "ppl": math.exp(min(loss, 700.0)), "bpb": loss / math.log(2) / bpt})
    return {"run": str(rd), "data": spec, "split": split, "windows": windows, "tokens": tokens,
            "bytes_per_token": bpt, "results": results}


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
    if not isinstance(split, str) or split not in ("val", "train"):
        raise bad_argument(w, "split", split, "must be 'val' or 'train'")


def _check_args(rd: Path, cfg: Any, split: str, batches: int | None, batch_size: int | None) -> None:
    if cfg.task != "lm":
        raise ValueError(f"{rd} is a {cfg.task!r} run; evaluate_run scores language models")
    if split not in ("val", "train"):
        raise ValueError(f"split must be 'val' or 'train', got {split!r}")
    if batches is not None and batches < 0:
        raise ValueError(f"batches must be >= 0 (0 = the whole split), got {batches}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def format_results(res: dict[str, Any]) -> str:
    """A small text table of :func:`evaluate_run`'s results."""
    lines = [f"{res['run']} on {res['data']} ({res['split']} split, {res['tokens']:,} tokens, "
             f"{res['bytes_per_token']:.3f} bytes/token)",
             f"{'r':>4} {'loss':>8} {'ppl':>10} {'bpb':>7}"]
    for row in res["results"]:
        r = "-" if row["r"] is None else str(row["r"])
        lines.append(f"{r:>4} {row['loss']:8.4f} {row['ppl']:10.2f} {row['bpb']:7.4f}")
    return "\n".join(lines)
