"""The language-model task: next-token prediction on a tokenised corpus (:mod:`rins.data`)."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import latest_checkpoint
from ..data import identity_change
from ..distributed import unwrap
from ..fields import given_fields
from ..model import LMConfig, RecursiveLM, StackConfig
from ..runfiles import atomic_write_json
from ..runs import data_identity_file, read_json, tokenizer_file
from .base import StepAccounting, autocast, default_depths, depth_label

__all__ = ["LMTask", "eval_batch_size", "mean_loss"]


def eval_batch_size(cfg: Any) -> int:
    """Windows per evaluation batch: ``min(batch_size, 16)`` of the run (the same windows wherever it is scored)."""
    return max(1, min(cfg.batch_size, 16))


@torch.no_grad()
def mean_loss(model: nn.Module, ds: Any, r: int | None, batch_size: int, limit: int | None, cfg: Any,
              device: torch.device) -> tuple[float, int, int]:
    """(mean loss per token, tokens, windows) of ``model`` at depth ``r`` over ``ds``'s evaluation batches (at
    most ``limit``, spread over the split; None: all), under ``cfg.dtype``'s autocast."""
    tot, n, w = 0.0, 0, 0
    for x, y in ds.iter_eval_batches(batch_size, limit):
        x, y = x.to(device), y.to(device)
        with autocast(cfg, device):
            tot += model(x, r=r, targets=y, reduction="sum").item()
        n += y.numel()
        w += x.shape[0]
    return tot / n, n, w


def _tokenizer_model(path: Path) -> Any:
    """The vocabulary and merges of a tokenizer.json (what maps text to ids; not the file's formatting)."""
    return json.loads(path.read_text(encoding="utf-8")).get("model")


class LMTask(StepAccounting):
    """Next-token prediction on a tokenised corpus (:mod:`rins.data`); a :class:`rins.tasks.Task`."""

    name = "lm"
    base_model: dict[str, Any] | None = None  # set by --init: the initialising run's model config

    def __init__(self, cfg: Any, run_dir: Path | None) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.bundle = None
        self.train_ds = self.val_ds = None

    def prepare(self) -> None:
        """Tokenise (or load the cached tokens of) the corpus; copy the tokenizer into the run directory."""
        from ..data import TokenDataset, prepare_data

        d = self.cfg.data
        self.bundle = prepare_data(d.corpus, d.cache_dir, d.vocab_size, d.val_fraction, self.cfg.seed,
                                   tokenizer=d.tokenizer)
        self.train_ds = TokenDataset(self.bundle.train_path, d.seq_len)
        self.val_ds = TokenDataset(self.bundle.val_path, d.seq_len)
        if self.run_dir is not None:
            self._keep_tokenizer(tokenizer_file(self.run_dir), Path(self.bundle.tokenizer_path))

    def _keep_tokenizer(self, kept: Path, prepared: Path) -> None:
        """Copy the prepared tokenizer and the data's identity into the run directory; a run with checkpoints
        must resume with the tokenizer it started with (else its weights would read other token ids): refuse a
        corpus that now tokenises differently, e.g. prepared on another machine that read another version of a
        source package, and say which source differs."""
        ident_file = data_identity_file(self.run_dir)
        here, started = self.data_identity(), read_json(ident_file) or None
        if kept.exists():
            change = identity_change(started, here, prepared.parent.parent.parent, prepared.parent,
                                     then="when the run started")
            if _tokenizer_model(kept) == _tokenizer_model(prepared):
                if change:  # same ids, other text: training goes on; the summary records the data read here
                    warnings.warn(f"{self.run_dir}: resuming on a corpus prepared from other sources than the run "
                                  f"started on ({change})", stacklevel=2)
                return
            if latest_checkpoint(self.run_dir) is not None:
                raise ValueError(
                    f"{self.cfg.data.corpus!r} prepared here ({prepared}) has another vocabulary than the tokenizer "
                    f"this run started with ({kept}): "
                    + (f"its sources differ ({change})" if change else
                       "the corpus's sources changed since (e.g. a package version)")
                    + f", so resuming would feed the checkpoint other token ids. Resume where the original corpus "
                    f"is prepared, or start the run over (delete {self.run_dir})")
        shutil.copyfile(prepared, kept)  # new, or left by a start that never checkpointed: this run's own
        if here is not None and started != here:  # every rank prepares: one write is enough
            atomic_write_json(ident_file, here)

    def train_units(self) -> int | None:
        """Tokens in the training split (None before :meth:`prepare`)."""
        return None if self.bundle is None else int(self.bundle.meta["n_train_tokens"])

    def data_identity(self) -> dict[str, Any] | None:
        """The prepared corpus's cache key: corpus, vocabulary, split, seed and the source versions read."""
        return None if self.bundle is None else self.bundle.meta.get("cache_key")

    config_class = LMConfig  # what TrainConfig.model holds for this task

    @classmethod
    def model_config_from(cls, model: dict[str, Any], cfg: Any, vocab: int | None = None) -> LMConfig:
        """The typed config of the ``[model]`` fields ``model``; unnamed fields default to the data's:
        ``vocab_size`` to the tokenizer's size ``vocab`` (before the data is prepared: ``data.vocab_size``),
        ``max_seq_len`` to ``data.seq_len``, ``depth_seed`` to ``seed``. The LM takes no ``data.options``."""
        options = getattr(cfg.data, "options", None)
        if options:
            raise ValueError(f"the lm task takes no data.options (got {sorted(options)})")
        m = dict(model)
        m.setdefault("vocab_size", cfg.data.vocab_size if vocab is None else vocab)
        m.setdefault("max_seq_len", cfg.data.seq_len)
        m.setdefault("depth_seed", cfg.seed)
        cls.check_against_data(m, cfg, vocab)
        return LMConfig.from_dict(m)

    @staticmethod
    def check_against_data(model: LMConfig | dict[str, Any], cfg: Any, vocab: int | None) -> None:
        """``ValueError`` when the model cannot hold the data: a vocabulary smaller than the tokenizer's
        (``vocab``; None before the data is prepared) or a context shorter than ``data.seq_len``."""
        get = model.get if isinstance(model, dict) else lambda k: getattr(model, k)
        if vocab is not None and get("vocab_size") < vocab:
            raise ValueError(f"model.vocab_size={get('vocab_size')} is smaller than the tokenizer's {vocab}")
        if get("max_seq_len") < cfg.data.seq_len:
            raise ValueError(f"model.max_seq_len={get('max_seq_len')} < data.seq_len={cfg.data.seq_len}")

    def model_config(self) -> LMConfig:
        """The LM config: the fields ``cfg.model`` names (vocab and length from the data), or with ``--init`` the
        initialising run's architecture with this config's recursion fields (signature, p_skip, …) on top.

        Built once: the typed config that loading the run's config made is used as it is, unless the prepared
        data's vocabulary differs from the one it assumed (``data.vocab_size``) and the table left it unnamed."""
        vocab = self.bundle.vocab_size if self.bundle is not None else self.cfg.data.vocab_size
        typed = self.cfg.model
        if isinstance(typed, LMConfig) and not self.base_model:
            named = given_fields(typed)
            if "vocab_size" in named or typed.vocab_size == vocab:
                self.check_against_data(typed, self.cfg, vocab)
                return typed
        given = dict(self.cfg.model) if isinstance(self.cfg.model, dict) else given_fields(self.cfg.model)
        m = given
        if self.base_model:
            recursion = {f.name for f in fields(StackConfig)}
            m = dict(self.base_model)
            for k, v in given.items():
                if k in recursion:
                    m[k] = v
                elif m.get(k, v) != v:
                    warnings.warn(f"--init: keeping the initialising model's {k}={m[k]!r} (config asks {v!r})",
                                  stacklevel=2)
        return self.model_config_from(m, self.cfg, vocab)

    def build_model(self) -> RecursiveLM:
        return RecursiveLM(self.model_config())

    def train_batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1):
        """This rank's contiguous share of the global batch of ``step`` (the global batch depends only on
        (seed, step), so any world size and any grad_accum see the same examples)."""
        x, y = self.train_ds.get_batch(step, batch_size, self.cfg.seed)
        per = batch_size // world_size
        return x[rank * per:(rank + 1) * per], y[rank * per:(rank + 1) * per]

    def loss(self, model: nn.Module, batch: Any, step: int) -> torch.Tensor:
        x, y = batch
        if self.cfg.fused_loss:
            return model(x, step=step, targets=y)
        logits = model(x, step=step)
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())

    def units_per_example(self) -> int:
        """Tokens per training sequence."""
        return self.cfg.data.seq_len

    def unit_training_flops(self, model: RecursiveLM, batch_size: int, step: int | None = None) -> float:
        """Training FLOPs per token over ``data.seq_len`` keys, at the expected depth or the one drawn at ``step``."""
        r = None if step is None else model.stack.training_depth(step, batch_size)[0]
        return model.flops_per_token(self.units_per_example(), r=r, training=True, expected=step is None,
                                     batch_size=batch_size)

    def eval_depths(self, model: nn.Module) -> list[int | None]:
        return default_depths(unwrap(model).r_max)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, depths: list[int | None]) -> dict[str, Any]:
        """Mean validation loss per token at every depth; ``val_bpb`` (bits per byte) at the trained depth."""
        from ..data import bytes_per_token

        m = unwrap(model)
        was = m.training
        m.eval()
        dev = next(m.parameters()).device
        losses: dict[str, float] = {}
        for r in depths:
            loss, _, _ = mean_loss(m, self.val_ds, r, eval_batch_size(self.cfg), self.cfg.eval_batches, self.cfg, dev)
            losses[depth_label(r)] = loss
        m.train(was)
        main = losses.get("default", losses.get(str(m.r_max)) if m.r_max else None)
        if main is None:
            main = next(iter(losses.values()))
        out: dict[str, Any] = {"val_loss": main, "val_loss_r": {k: v for k, v in losses.items() if k != "default"}}
        meta = self.bundle.meta
        if meta.get("val_bytes", 0) > 0 and meta.get("n_val_tokens", 0) > 0:
            out["val_bpb"] = main / math.log(2) / bytes_per_token(self.bundle)
        return out
