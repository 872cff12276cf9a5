"""Trainer tasks for images: ``"siglip"`` (two-tower contrastive) and ``"vit"`` (the classifier control).

Both follow :class:`rins.tasks.Task` (the table :data:`rins.tasks.TASKS` names them). ``cfg.data.corpus`` names the data
(``fashion-mnist``, ``emoji``, ``emoji:group``, or a local CSV/JSONL/folder/tar path, see
:mod:`rins.vision_data`); ``cfg.data.cache_dir`` and ``cfg.data.val_fraction`` are used, the LM fields
(``vocab_size``, ``seq_len``) are not.

``cfg.model`` is the typed model config: :class:`rins.siglip.SigLIPConfig` (nested ``image`` / ``text``
tower configs) for ``"siglip"``, :class:`rins.siglip.ViTConfig` for ``"vit"`` (a plain dict of their fields is
accepted too). Defaults filled in when absent: image size / channels / text length from the corpus
(Fashion-MNIST 28×28×1, 48 bytes; emoji and local files 32×32×3, 64 bytes), each tower's ``depth_seed`` from
``cfg.seed`` (text: ``cfg.seed + 1``, so the two towers draw independent depths). ``cfg.data.options`` holds
the data-side options of :class:`VisionOptions` (``model.data_options`` in configs written before).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import unwrap
from ..fields import given_fields, parse_fields, split_model_section
from ..siglip import SigLIP, SigLIPConfig, ViTClassifier, ViTConfig
from ..vision_data import ByteTokenizer, ImageTextData, augment_batch, load_vision_corpus
from ..zeroshot import class_embeddings, encode_images, encode_texts, retrieval_recall, zeroshot_accuracy
from .base import StepAccounting, default_depths, depth_label

__all__ = ["SigLIPTask", "ViTClassifierTask", "VisionOptions"]

_CORPUS_DEFAULTS = {
    "fashion-mnist": {"image_size": 28, "channels": 1, "patch_size": 4, "max_len": 48},
    "emoji": {"image_size": 32, "channels": 3, "patch_size": 4, "max_len": 64},
}


@dataclass
class VisionOptions:
    """Data-side options of the vision tasks (``cfg.data.options``).

    Attributes:
        augment: random resized crop (+ flip) on training images.
        crop_scale: area range of the random crop.
        flip: random horizontal flips (off for emoji by default: names say "facing right").
        positives: ``"diagonal"`` (SigLIP: only the pair itself) or ``"same_caption"`` (pairs whose captions are
            identical are positives too — useful for templated class captions).
        eval_images: images used for zero-shot accuracy; eval_retrieval: pairs used for retrieval recall.
        n_classes: classes of the ViT classifier (None: from the data's labels).
    """

    augment: bool = True
    crop_scale: tuple[float, float] = (0.6, 1.0)
    flip: bool | None = None  # None: True except for emoji
    positives: str = "diagonal"
    eval_images: int = 2000
    eval_retrieval: int = 1000
    n_classes: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> VisionOptions:
        """The options of a ``[data.options]`` table; unknown keys and wrong types are a ConfigError."""
        d = parse_fields(cls, dict(d or {}), "data.options.")
        if "crop_scale" in d:
            d["crop_scale"] = tuple(d["crop_scale"])
        o = cls(**d)
        if o.positives not in ("diagonal", "same_caption"):
            raise ValueError(f"positives must be 'diagonal' or 'same_caption', got {o.positives!r}")
        return o


def _corpus_key(corpus: str) -> str:
    return "emoji" if corpus.startswith("emoji") else corpus if corpus in _CORPUS_DEFAULTS else "local"


def _defaults(corpus: str) -> dict[str, int]:
    return _CORPUS_DEFAULTS.get(_corpus_key(corpus), {"image_size": 32, "channels": 3, "patch_size": 4,
                                                      "max_len": 64})


class _VisionTask(StepAccounting):
    """Shared data handling: loading, deterministic batches, augmentation."""

    name = "vision"

    def __init__(self, cfg: Any, run_dir: Path | None) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        model = dict(cfg.model) if isinstance(cfg.model, dict) else given_fields(cfg.model)
        model, old_options = split_model_section(self.name, model)
        self.options = VisionOptions.from_dict({**old_options, **(getattr(cfg.data, "options", None) or {})})
        self._model_dict = model
        self._config: Any = None  # the typed model config, built on first use (model_config)
        self.corpus = cfg.data.corpus
        self.train_data: ImageTextData | None = None
        self.val_data: ImageTextData | None = None
        self._perms: dict[int, np.ndarray] = {}
        self.tokenizer = ByteTokenizer()

    # -- data ------------------------------------------------------------------------------------
    def _image_format(self) -> tuple[int, int]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Load (and on first use download and cache) the corpus at the model's image size."""
        if self.train_data is not None:
            return
        size, ch = self._image_format()
        d = self.cfg.data
        self.train_data, self.val_data = load_vision_corpus(
            self.corpus, getattr(d, "cache_dir", ".cache/rins"), size, ch, getattr(d, "val_fraction", 0.1),
            self.cfg.seed)
        self._check_lengths()

    def train_units(self) -> int | None:
        """Examples in the training split (None before :meth:`prepare`)."""
        return None if self.train_data is None else len(self.train_data)

    def _check_lengths(self) -> None:
        """Warn when captions or zero-shot prompts are cut by the text tower's ``max_len`` (bytes + end token)."""
        L = getattr(getattr(self, "model_config", lambda: None)(), "text", None)
        if L is None:
            return
        d = self.train_data
        texts = [t.format(x) for t in d.templates for x in dict.fromkeys(d.texts)]
        texts += [t.format(c) for t in (d.prompt_templates or []) for c in (d.class_names or [])]
        cut = sum(len(t.encode("utf-8")) > L.max_len - 1 for t in texts)
        if cut:
            warnings.warn(f"{cut} of {len(texts)} captions/prompts are longer than text.max_len - 1 = "
                          f"{L.max_len - 1} bytes and will be truncated; raise model.text.max_len", stacklevel=2)

    def _indices(self, step: int, batch_size: int, rank: int, world_size: int) -> np.ndarray:
        """This rank's contiguous share of the global batch of ``step`` (``batch_size`` is global): epoch-wise
        shuffled indices where position g of the global stream depends only on (seed, g), so any world size
        sees the same examples."""
        n = len(self.train_data)
        per = batch_size // world_size
        start = step * batch_size + rank * per
        g = np.arange(start, start + per)
        epochs, pos = np.divmod(g, n)
        out = np.empty(per, dtype=np.int64)
        for e in np.unique(epochs):
            if e not in self._perms:
                if len(self._perms) > 4:
                    self._perms.pop(min(self._perms))
                self._perms[int(e)] = np.random.default_rng([self.cfg.seed & 0xFFFFFFFF, int(e), 7]).permutation(n)
            sel = epochs == e
            out[sel] = self._perms[int(e)][pos[sel]]
        return out

    def _images(self, idx: np.ndarray, step: int, rank: int) -> torch.Tensor:
        x = self.train_data.tensor_images(idx)
        o = self.options
        if o.augment:
            gen = torch.Generator().manual_seed(int(np.random.default_rng([self.cfg.seed & 0xFFFFFFFF, step, rank, 1])
                                                    .integers(2 ** 62)))
            flip = o.flip if o.flip is not None else _corpus_key(self.corpus) != "emoji"
            x = augment_batch(x, gen, o.crop_scale, flip=flip)
        return x

    def units_per_example(self) -> int:
        """An example (an image-text pair or an image) is the unit."""
        return 1

    def eval_depths(self, model: nn.Module) -> list[int | None]:
        """1 … r_max + 1 for the recursed tower(s) (the largest r_max when both), else the single depth."""
        return default_depths(unwrap(model).r_max)

    def _eval_batch_size(self) -> int:
        return max(2, min(int(self.cfg.batch_size), 512))


# ----------------------------------------------------------------------------------------------


class SigLIPTask(_VisionTask):
    """Image-text contrastive training of :class:`SigLIP` (sigmoid or softmax loss)."""

    name = "siglip"

    config_class = SigLIPConfig  # what TrainConfig.model holds for this task

    @classmethod
    def model_config_from(cls, model: dict[str, Any], cfg: Any) -> SigLIPConfig:
        """The typed config of the ``[model]`` fields ``model``, with the corpus's image and text sizes and
        per-tower depth seeds where unnamed; checks ``cfg.data.options`` too."""
        VisionOptions.from_dict(getattr(cfg.data, "options", None))
        d = dict(model)
        defs = _defaults(cfg.data.corpus)
        img = dict(d.get("image") or {})
        txt = dict(d.get("text") or {})
        for k in ("image_size", "channels", "patch_size"):
            img.setdefault(k, defs[k])
        txt.setdefault("max_len", defs["max_len"])
        img.setdefault("depth_seed", cfg.seed)
        txt.setdefault("depth_seed", cfg.seed + 1)
        d["image"], d["text"] = img, txt
        out = SigLIPConfig.from_dict(d)
        if out.text.vocab_size < ByteTokenizer.vocab_size:
            raise ValueError(f"model.text.vocab_size={out.text.vocab_size} < the byte tokenizer's "
                             f"{ByteTokenizer.vocab_size}")
        return out

    def model_config(self) -> SigLIPConfig:
        """The SigLIP config with corpus defaults and per-tower depth seeds filled in
        (built once: the typed config that loading the run's config made, when there is one)."""
        if self._config is None:
            typed = self.cfg.model
            ok = isinstance(typed, SigLIPConfig)
            self._config = typed if ok else self.model_config_from(self._model_dict, self.cfg)
        return self._config

    def _image_format(self) -> tuple[int, int]:
        c = self.model_config().image
        return c.image_size, c.channels

    def build_model(self) -> SigLIP:
        return SigLIP(self.model_config())

    def train_batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> dict[str, torch.Tensor]:
        """``{"images", "texts"[, "groups"]}``; deterministic in (seed, step, rank)."""
        self.prepare()
        idx = self._indices(step, batch_size, rank, world_size)
        rng = np.random.default_rng([self.cfg.seed & 0xFFFFFFFF, step, rank, 2])
        caps = [self.train_data.caption(int(i), rng) for i in idx]
        batch = {"images": self._images(idx, step, rank),
                 "texts": self.tokenizer.encode(caps, self.model_config().text.max_len)}
        if self.options.positives == "same_caption":
            ids = {c: j for j, c in enumerate(dict.fromkeys(caps))}
            batch["groups"] = torch.tensor([ids[c] for c in caps])
        return batch

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        img, txt = model(batch["images"], batch["texts"], step=step)
        return unwrap(model).pair_loss(img, txt, batch.get("groups"))

    def unit_training_flops(self, model: SigLIP, batch_size: int, step: int | None = None) -> float:
        """Training FLOPs per pair (both towers per executed layer + the B×B similarity), at the expected depths
        or each tower's depth drawn at ``step``."""
        ri, rt = (None if step is None else tower.stack.training_depth(step, batch_size)[0]
                  for tower in (model.image, model.text))
        return model.flops_per_example(ri, rt, training=True, expected=step is None, batch_size=batch_size)

    def _val_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if getattr(self, "_val_cache", None) is None:
            bs = self._eval_batch_size()
            n = min(len(self.val_data), bs * max(1, int(getattr(self.cfg, "eval_batches", 8))))
            n = (n // bs) * bs or n
            rng = np.random.default_rng([self.cfg.seed & 0xFFFFFFFF, 3])
            L = self.model_config().text.max_len
            out = []
            for s in range(0, n, bs):
                idx = np.arange(s, min(n, s + bs))
                caps = [self.val_data.caption(int(i), rng) for i in idx]
                out.append((self.val_data.tensor_images(idx), self.tokenizer.encode(caps, L)))
            self._val_cache = out
        return self._val_cache

    @torch.no_grad()
    def evaluate(self, model: nn.Module, depths: list[int | None]) -> dict[str, Any]:
        """Validation loss, zero-shot top-1/top-5 and retrieval recall@1/5/10 at every depth in ``depths``
        (each applied to every recursed tower; None = the trained depth)."""
        self.prepare()
        m = unwrap(model)
        was = m.training
        m.eval()
        dev = next(m.parameters()).device
        o, data = self.options, self.val_data
        ni, nr = min(len(data), o.eval_images), min(len(data), o.eval_retrieval)
        images = data.tensor_images(np.arange(ni))
        caps = [data.caption(i) for i in range(nr)]
        uniq = list(dict.fromkeys(caps))
        cap_ids = torch.tensor([uniq.index(c) for c in caps]) if len(uniq) < 5000 else torch.arange(nr)
        res: dict[str, dict[str, Any]] = {k: {} for k in ("loss", "top1", "top5", "ret")}
        for r in [*depths, *([None] if None not in depths else [])]:  # None: the trained depths (main)
            ri = r if m.image.r_max else None
            rt = r if m.text.r_max else None
            key = depth_label(r)
            tot, cnt = 0.0, 0
            for x, t in self._val_batches():
                img, txt = m(x.to(dev), t.to(dev), ri, rt)
                tot += float(m.pair_loss(img, txt)) * len(x)
                cnt += len(x)
            res["loss"][key] = tot / max(cnt, 1)
            img_emb = encode_images(m, images, ri)
            if data.labels is not None and data.class_names:
                cls = class_embeddings(m, data.class_names, data.prompt_templates or ["{}"], rt, self.tokenizer)
                acc = zeroshot_accuracy(img_emb, torch.as_tensor(data.labels[:ni]), cls)
                res["top1"][key], res["top5"][key] = acc["top1"], acc["top5"]
            txt_emb = encode_texts(m, uniq, rt, tokenizer=self.tokenizer)
            res["ret"][key] = retrieval_recall(img_emb[:nr], txt_emb, img_ids=cap_ids, txt_ids=torch.arange(len(uniq)))
        m.train(was)
        main_key = "default"
        strip = {k: {d: v for d, v in res[k].items() if d != "default"} for k in res}
        out: dict[str, Any] = {"val_loss": res["loss"][main_key], "val_loss_r": strip["loss"]}
        if res["top1"]:
            out.update(zeroshot_top1=res["top1"][main_key], zeroshot_top1_r=strip["top1"],
                       zeroshot_top5_r=strip["top5"])
        out.update(retrieval=res["ret"][main_key], retrieval_r=strip["ret"])
        return out


# ----------------------------------------------------------------------------------------------


class ViTClassifierTask(_VisionTask):
    """Supervised classification with :class:`ViTClassifier` (the control: the image tower alone, trained on labels)."""

    name = "vit"

    config_class = ViTConfig  # what TrainConfig.model holds for this task

    @classmethod
    def model_config_from(cls, model: dict[str, Any], cfg: Any) -> ViTConfig:
        """The typed config of the ``[model]`` fields ``model``, with the corpus's image size and the depth seed
        where unnamed; checks ``cfg.data.options`` too."""
        VisionOptions.from_dict(getattr(cfg.data, "options", None))
        d = dict(model)
        defs = _defaults(cfg.data.corpus)
        for k in ("image_size", "channels", "patch_size"):
            d.setdefault(k, defs[k])
        d.setdefault("depth_seed", cfg.seed)
        return ViTConfig.from_dict(d)

    def model_config(self) -> ViTConfig:
        """The ViT config with corpus defaults and the depth seed filled in
        (built once: the typed config that loading the run's config made, when there is one)."""
        if self._config is None:
            typed = self.cfg.model
            self._config = typed if isinstance(typed, ViTConfig) else self.model_config_from(self._model_dict, self.cfg)
        return self._config

    def _image_format(self) -> tuple[int, int]:
        c = self.model_config()
        return c.image_size, c.channels

    def n_classes(self) -> int:
        """Number of classes (``data.options.n_classes``, else from the data)."""
        if self.options.n_classes is not None:
            return self.options.n_classes
        self.prepare()
        if self.train_data.class_names is None:
            raise ValueError(f"{self.corpus}: the vit task needs class labels (a 'label' column / .cls members)")
        return len(self.train_data.class_names)

    def build_model(self) -> ViTClassifier:
        return ViTClassifier(self.model_config(), self.n_classes())

    def train_batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> dict[str, torch.Tensor]:
        """``{"images", "labels"}``; deterministic in (seed, step, rank)."""
        self.prepare()
        idx = self._indices(step, batch_size, rank, world_size)
        return {"images": self._images(idx, step, rank), "labels": torch.as_tensor(self.train_data.labels[idx])}

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        return F.cross_entropy(model(batch["images"], step=step).float(), batch["labels"])

    def unit_training_flops(self, model: ViTClassifier, batch_size: int, step: int | None = None) -> float:
        """Training FLOPs per image, at the expected depth or the one drawn at ``step``."""
        r = None if step is None else model.vit.stack.training_depth(step, batch_size)[0]
        return model.flops_per_example(r, training=True, expected=step is None, batch_size=batch_size)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, depths: list[int | None]) -> dict[str, Any]:
        """Validation cross-entropy and top-1 accuracy at every depth."""
        self.prepare()
        m = unwrap(model)
        was = m.training
        m.eval()
        dev = next(m.parameters()).device
        n = min(len(self.val_data), max(self.options.eval_images, self._eval_batch_size()))
        bs = self._eval_batch_size()
        loss, acc = {}, {}
        for r in [*depths, *([None] if None not in depths else [])]:  # None: the trained depth (main)
            tot, hit = 0.0, 0
            for s in range(0, n, bs):
                idx = np.arange(s, min(n, s + bs))
                logits = m(self.val_data.tensor_images(idx).to(dev), r).float()
                y = torch.as_tensor(self.val_data.labels[idx]).to(dev)
                tot += float(F.cross_entropy(logits, y, reduction="sum"))
                hit += int((logits.argmax(-1) == y).sum())
            loss[depth_label(r)], acc[depth_label(r)] = tot / n, hit / n
        m.train(was)
        main = "default"
        strip = lambda d: {k: v for k, v in d.items() if k != "default"}  # noqa: E731
        return {"val_loss": loss[main], "val_loss_r": strip(loss), "val_acc": acc[main], "val_acc_r": strip(acc)}

