"""Image-text data for SigLIP and the ViT classifier: built-in sets from Debian packages, local folders,
CSV/JSONL caption files, webdataset-style tar shards, a byte-level caption tokenizer and batch augmentation.

Everything is decoded once into an in-memory :class:`ImageTextData` (uint8 images at the model's size), which
suits the small sets this project trains on CPU. Corpus specs accepted by :func:`load_vision_corpus`:

* ``"fashion-mnist"``: Debian ``dataset-fashion-mnist`` (60k train / 10k test, 28×28 grey, 10 classes).
  Captions are drawn per step from templates such as ``"a photo of a {class}"``.
* ``"emoji"`` / ``"emoji:group"``: the 3,655 fully-qualified emoji of ``emoji-test.txt`` (Debian
  ``unicode-data``) rendered with Pillow from Debian ``fonts-noto-color-emoji`` (size 109, embedded colour,
  composited on white, cropped to the glyph, padded square, resized). Captions are the Unicode CLDR names
  (``"grinning face with big eyes"``); zero-shot labels are the 99 subgroups (``"emoji"``, e.g. ``face
  smiling``) or the 9 groups (``"emoji:group"``). Train/val is a seeded hash split over emoji.
* a ``.csv`` (columns ``image,caption[,label]``) or ``.jsonl`` (fields ``image``, ``caption``, optional
  ``label``) file, image paths relative to the file; a folder holding ``captions.csv``/``captions.jsonl``,
  or images with a same-stem ``.txt`` caption each; a ``.tar`` shard, a folder of shards or a glob of
  shards holding ``{key}.png|jpg|jpeg|webp`` + ``{key}.txt`` (+ optional ``{key}.cls``) members.

Debian packages are fetched with ``apt-get download`` + ``dpkg-deb -x`` (:func:`rins.corpora.packages.fetch_deb`)
and the decoded arrays are cached as ``.npy`` under ``cache_dir/vision/``, so later runs are offline.
"""

from __future__ import annotations

import csv
import glob
import gzip
import hashlib
import io
import json
import struct
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

__all__ = [
    "ByteTokenizer",
    "ImageTextData",
    "augment_batch",
    "load_emoji",
    "load_fashion_mnist",
    "load_image_text",
    "load_vision_corpus",
]

FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle boot"]
FASHION_TEMPLATES = ["a photo of a {}.", "a black and white image of a {}.", "a low resolution photo of a {}.",
                     "a picture of a {}.", "a {}.", "a small photo of the {}."]
EMOJI_TEMPLATES = ["{}", "an emoji of {}.", "a {} emoji."]
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


class VisionDataError(ValueError):
    """An empty folder, a missing caption, an unreadable image or an unknown corpus."""


# ----------------------------------------------------------------------------------------------
# Tokenizer


class ByteTokenizer:
    """A fixed byte-level tokenizer: pad = 0, end = 1, UTF-8 byte b → b + 2 (vocabulary 258).

    Chosen over a trained BPE because it needs no training, never meets an unknown token and is the same
    for every corpus, which keeps checkpoints self-describing. Texts are truncated to ``max_len - 1`` bytes,
    followed by the end token and right-padded with pad to exactly ``max_len``.
    """

    pad_id = 0
    eos_id = 1
    vocab_size = 258

    def encode(self, texts: Sequence[str], max_len: int) -> torch.Tensor:
        """(len(texts), max_len) int64 token ids."""
        out = torch.zeros(len(texts), max_len, dtype=torch.long)
        for i, t in enumerate(texts):
            b = list(t.encode("utf-8"))[: max_len - 1]
            out[i, : len(b)] = torch.tensor(b, dtype=torch.long) + 2
            out[i, len(b)] = self.eos_id
        return out

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Inverse of :meth:`encode` for one row (stops at the end token)."""
        bs = bytearray()
        for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids):
            if i == self.eos_id:
                break
            if i >= 2:
                bs.append(i - 2)
        return bs.decode("utf-8", errors="replace")


# ----------------------------------------------------------------------------------------------
# The in-memory dataset


@dataclass
class ImageTextData:
    """Images with one text each, optional class labels, and the templates that turn texts into captions.

    Attributes:
        images: (N, H, W, C) uint8.
        texts: the text of every image (a class name, an emoji name or a free caption).
        templates: caption templates (``"{}"``-style); a training caption is a random template applied to the
            image's text, the evaluation caption uses ``templates[0]``.
        labels: (N,) int class ids for zero-shot classification, or None.
        class_names: the names of the classes (zero-shot prompts fill them into ``prompt_templates``).
        prompt_templates: the zero-shot prompt ensemble (default: ``templates``).
        name: a short description.
    """

    images: np.ndarray
    texts: list[str]
    templates: list[str] = field(default_factory=lambda: ["{}"])
    labels: np.ndarray | None = None
    class_names: list[str] | None = None
    prompt_templates: list[str] | None = None
    name: str = "data"

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise VisionDataError(f"images must be (N, H, W, C) uint8, got {self.images.shape} {self.images.dtype}")
        if len(self.texts) != len(self.images):
            raise VisionDataError(f"{len(self.images)} images but {len(self.texts)} texts")
        if len(self.images) == 0:
            raise VisionDataError(f"{self.name}: no examples")
        if self.prompt_templates is None:
            self.prompt_templates = list(self.templates)

    def __len__(self) -> int:
        return len(self.images)

    def caption(self, i: int, rng: np.random.Generator | None = None) -> str:
        """The caption of image ``i``: a random template (with ``rng``) or the first one."""
        t = self.templates[0] if rng is None else self.templates[int(rng.integers(len(self.templates)))]
        return t.format(self.texts[i])

    def subset(self, idx: Sequence[int] | np.ndarray) -> ImageTextData:
        """A copy holding the examples ``idx`` (same templates and classes)."""
        idx = np.asarray(idx, dtype=np.int64)
        return ImageTextData(self.images[idx], [self.texts[i] for i in idx], list(self.templates),
                             None if self.labels is None else self.labels[idx], self.class_names,
                             self.prompt_templates, self.name)

    def with_format(self, image_size: int, channels: int) -> ImageTextData:
        """A copy resized to ``image_size`` (bilinear, antialiased) with ``channels`` (1 = luminance, 3 = RGB)."""
        x = self.images
        if x.shape[-1] != channels:
            if channels == 1:
                x = np.round(x[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
                x = x.clip(0, 255).astype(np.uint8)[..., None]
            elif channels == 3 and x.shape[-1] == 1:
                x = np.repeat(x, 3, axis=-1)
            else:
                raise VisionDataError(f"cannot convert {x.shape[-1]} channels to {channels}")
        if x.shape[1] != image_size or x.shape[2] != image_size:
            t = torch.from_numpy(x).permute(0, 3, 1, 2).float()
            t = F.interpolate(t, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
            x = t.round().clamp(0, 255).byte().permute(0, 2, 3, 1).contiguous().numpy()
        return ImageTextData(x, self.texts, self.templates, self.labels, self.class_names, self.prompt_templates,
                             self.name)

    def tensor_images(self, idx: Sequence[int] | np.ndarray | None = None) -> torch.Tensor:
        """Images as float (B, C, H, W) in [-1, 1]."""
        x = self.images if idx is None else self.images[np.asarray(idx)]
        return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def hash_split(keys: Sequence[str], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable (train_idx, val_idx) from a seeded hash of each key."""
    u = np.array([int.from_bytes(hashlib.sha256(f"{seed}:{k}".encode()).digest()[:8], "little") / 2.0 ** 64
                  for k in keys])
    val = u < val_fraction
    return np.nonzero(~val)[0], np.nonzero(val)[0]


# ----------------------------------------------------------------------------------------------
# Augmentation


def augment_batch(x: torch.Tensor, gen: torch.Generator, scale: tuple[float, float] = (0.6, 1.0),
                  ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: bool = True) -> torch.Tensor:
    """Random resized crop (area fraction in ``scale``, aspect ratio in ``ratio``) and horizontal flip,
    vectorised over the batch with one affine grid; output has the input's size. Deterministic in ``gen``."""
    B = x.shape[0]
    area = torch.empty(B).uniform_(scale[0], scale[1], generator=gen)
    logr = torch.empty(B).uniform_(np.log(ratio[0]), np.log(ratio[1]), generator=gen)
    ar = logr.exp()
    w = (area * ar).sqrt().clamp(max=1.0)
    h = (area / ar).sqrt().clamp(max=1.0)
    cx = (torch.rand(B, generator=gen) * 2 - 1) * (1 - w)
    cy = (torch.rand(B, generator=gen) * 2 - 1) * (1 - h)
    sx = w * (torch.where(torch.rand(B, generator=gen) < 0.5, -1.0, 1.0) if flip else 1.0)
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, h, cy
    grid = F.affine_grid(theta.to(x.dtype).to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


# ----------------------------------------------------------------------------------------------
# Built-in sets (Debian packages)


def _fetch(package: str, cache_dir: Path) -> Path:
    # one fetcher for the whole library (apt-get download + dpkg-deb -x, cached)
    from .corpora.packages import fetch_deb

    return fetch_deb(package, cache_dir)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a uint8 array."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise VisionDataError(f"{path}: not a uint8 IDX file")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()


def load_fashion_mnist(cache_dir: str | Path = ".cache/rins", split: str = "train") -> ImageTextData:
    """Fashion-MNIST ``train`` (60k) or ``test`` (10k) from Debian ``dataset-fashion-mnist`` (cached as .npy)."""
    if split not in ("train", "test"):
        raise VisionDataError(f"split must be 'train' or 'test', got {split!r}")
    cache = Path(cache_dir) / "vision" / "fashion-mnist"
    xi, yi = cache / f"{split}_images.npy", cache / f"{split}_labels.npy"
    if not (xi.exists() and yi.exists()):
        root = _fetch("dataset-fashion-mnist", Path(cache_dir)) / "usr/share/datasets/fashion-mnist"
        prefix = "train" if split == "train" else "t10k"
        x = read_idx(root / f"{prefix}-images-idx3-ubyte.gz")
        y = read_idx(root / f"{prefix}-labels-idx1-ubyte.gz")
        cache.mkdir(parents=True, exist_ok=True)
        np.save(xi, x)
        np.save(yi, y)
    x, y = np.load(xi), np.load(yi).astype(np.int64)
    return ImageTextData(x[..., None], [FASHION_CLASSES[k] for k in y], list(FASHION_TEMPLATES), y,
                         list(FASHION_CLASSES), None, f"fashion-mnist/{split}")


def parse_emoji_test(path: Path) -> list[dict[str, str]]:
    """Fully-qualified entries of ``emoji-test.txt``: ``{"emoji", "name", "group", "subgroup"}``."""
    out, group, sub = [], "", ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            sub = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#") and "; fully-qualified" in line:
            codes, rest = line.split(";", 1)
            emo = "".join(chr(int(c, 16)) for c in codes.split())
            name = rest.split("#", 1)[1].strip().split(" ", 2)[2]  # "😀 E1.0 grinning face"
            out.append({"emoji": emo, "name": name, "group": group, "subgroup": sub})
    return out


def render_emoji(font, emoji: str, size: int) -> np.ndarray:
    """Render one emoji (Pillow, embedded colour) on white, crop to the glyph, pad square, resize: (size, size, 3)."""
    from PIL import ImageDraw

    canvas = Image.new("RGBA", (3 * 136, 160), (255, 255, 255, 0))
    ImageDraw.Draw(canvas).text((8, 8), emoji, font=font, embedded_color=True)
    box = canvas.getbbox() or (0, 0, 136, 128)
    g = canvas.crop(box)
    side = max(g.size)
    sq = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    sq.alpha_composite(g, ((side - g.size[0]) // 2, (side - g.size[1]) // 2))
    return np.asarray(sq.convert("RGB").resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)


def load_emoji(cache_dir: str | Path = ".cache/rins", image_size: int = 32, label: str = "subgroup") -> ImageTextData:
    """All fully-qualified emoji rendered at ``image_size`` (cached), captioned by name, labelled by
    ``label`` = ``"subgroup"`` (99 classes) or ``"group"`` (9 classes)."""
    if label not in ("subgroup", "group"):
        raise VisionDataError(f"emoji label must be 'subgroup' or 'group', got {label!r}")
    cache = Path(cache_dir) / "vision" / "emoji"
    xi, mi = cache / f"images_{image_size}.npy", cache / "meta.json"
    if not (xi.exists() and mi.exists()):
        from PIL import ImageFont

        uni = _fetch("unicode-data", Path(cache_dir)) / "usr/share/unicode/emoji/emoji-test.txt"
        font_path = (_fetch("fonts-noto-color-emoji", Path(cache_dir))
                     / "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
        entries = parse_emoji_test(uni)
        font = ImageFont.truetype(str(font_path), 109)
        x = np.stack([render_emoji(font, e["emoji"], image_size) for e in entries])
        cache.mkdir(parents=True, exist_ok=True)
        np.save(xi, x)
        mi.write_text(json.dumps(entries, ensure_ascii=False))
    x = np.load(xi)
    entries = json.loads(mi.read_text(encoding="utf-8"))
    keys = [e[label].replace("-", " ").lower() for e in entries]
    classes = sorted(set(keys))
    y = np.array([classes.index(k) for k in keys], dtype=np.int64)
    return ImageTextData(x, [e["name"] for e in entries], list(EMOJI_TEMPLATES), y, classes,
                         ["an emoji of {}.", "{}", "a {} emoji."], f"emoji/{label}")


# ----------------------------------------------------------------------------------------------
# Local files


def _open_image(src: str | Path | bytes, name: str, image_size: int, channels: int) -> np.ndarray:
    """Decode, convert (L or RGB), resize the shorter side and centre-crop to ``image_size``."""
    try:
        im = Image.open(io.BytesIO(src) if isinstance(src, bytes) else src)
        im.load()
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise VisionDataError(f"cannot read image {name}: {e}") from e
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        bg.alpha_composite(im)
        im = bg
    im = im.convert("L" if channels == 1 else "RGB")
    w, h = im.size
    s = image_size / min(w, h)
    im = im.resize((max(image_size, round(w * s)), max(image_size, round(h * s))), Image.Resampling.BICUBIC)
    w, h = im.size
    left, top = (w - image_size) // 2, (h - image_size) // 2
    a = np.asarray(im.crop((left, top, left + image_size, top + image_size)), dtype=np.uint8)
    return a[..., None] if a.ndim == 2 else a


def _finish(images: list[np.ndarray], captions: list[str], labels: list[str | None], name: str) -> ImageTextData:
    if not images:
        raise VisionDataError(f"{name}: no images found")
    lab = None
    classes = None
    if all(v not in (None, "") for v in labels):
        classes = sorted(set(labels))  # type: ignore[arg-type]
        lab = np.array([classes.index(v) for v in labels], dtype=np.int64)
    return ImageTextData(np.stack(images), captions, ["{}"], lab, classes, ["{}", "a photo of a {}."], name)


def _read_rows(path: Path) -> list[dict[str, str]]:
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        if rows and not {"image", "caption"} <= set(rows[0]):
            raise VisionDataError(f"{path}: needs columns 'image' and 'caption', has {sorted(rows[0])}")
        return rows
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise VisionDataError(f"{path}:{n}: invalid JSON ({e})") from e
    return rows


def load_image_text(path: str | Path, image_size: int = 32, channels: int = 3) -> ImageTextData:
    """Load local image-text pairs: a CSV/JSONL caption file, a folder, or webdataset-style tar shards.

    Raises :class:`VisionDataError` for an empty folder, an image without a caption, or an unreadable image.
    """
    spec = str(path)
    p = Path(spec)
    if any(c in spec for c in "*?[") or p.suffix.lower() == ".tar":
        shards = sorted(glob.glob(spec)) if any(c in spec for c in "*?[") else [spec]
        return _load_tars([Path(s) for s in shards], image_size, channels, spec)
    if not p.exists():
        raise VisionDataError(f"{p} does not exist")
    if p.is_file():
        if p.suffix.lower() not in (".csv", ".jsonl"):
            raise VisionDataError(f"{p}: expected a .csv, .jsonl or .tar file")
        return _load_table(p, image_size, channels)
    for cand in ("captions.csv", "captions.jsonl"):
        if (p / cand).is_file():
            return _load_table(p / cand, image_size, channels)
    tars = sorted(p.glob("*.tar"))
    if tars:
        return _load_tars(tars, image_size, channels, str(p))
    files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise VisionDataError(f"{p}: empty folder (no images, captions.csv/.jsonl or .tar shards)")
    images, caps = [], []
    for f in files:
        txt = f.with_suffix(".txt")
        if not txt.is_file():
            raise VisionDataError(f"missing caption for {f}: expected {txt.name} beside it, or a captions.csv")
        caps.append(txt.read_text(encoding="utf-8").strip())
        images.append(_open_image(f, str(f), image_size, channels))
    return _finish(images, caps, [None] * len(caps), str(p))


def _load_table(path: Path, image_size: int, channels: int) -> ImageTextData:
    images, caps, labels = [], [], []
    for n, row in enumerate(_read_rows(path), 1):
        img, cap = row.get("image"), row.get("caption")
        if not img:
            raise VisionDataError(f"{path}: row {n} has no image")
        if cap is None or not str(cap).strip():
            raise VisionDataError(f"{path}: missing caption for image {img} (row {n})")
        f = (path.parent / img)
        if not f.is_file():
            raise VisionDataError(f"{path}: image {img} (row {n}) not found at {f}")
        images.append(_open_image(f, str(f), image_size, channels))
        caps.append(str(cap).strip())
        labels.append(row.get("label"))
    return _finish(images, caps, labels, str(path))


def _load_tars(shards: list[Path], image_size: int, channels: int, name: str) -> ImageTextData:
    if not shards:
        raise VisionDataError(f"{name}: no tar shards found")
    images, caps, labels = [], [], []
    for shard in shards:
        groups: dict[str, dict[str, bytes]] = {}
        order: list[str] = []
        try:
            with tarfile.open(shard) as tf:
                for m in tf:
                    if not m.isfile():
                        continue
                    base = m.name.rsplit("/", 1)
                    d, fname = (base[0] + "/", base[1]) if len(base) == 2 else ("", base[0])
                    if "." not in fname:
                        continue
                    stem, ext = fname.split(".", 1)  # webdataset: the key ends at the first dot
                    key = d + stem
                    if key not in groups:
                        groups[key] = {}
                        order.append(key)
                    groups[key][ext.lower()] = tf.extractfile(m).read()  # type: ignore[union-attr]
        except tarfile.TarError as e:
            raise VisionDataError(f"cannot read tar shard {shard}: {e}") from e
        for key in order:
            g = groups[key]
            img_ext = next((e for e in ("png", "jpg", "jpeg", "webp") if e in g), None)
            if img_ext is None:
                continue
            if "txt" not in g:
                raise VisionDataError(f"{shard}: missing caption for {key}.{img_ext} (no {key}.txt)")
            images.append(_open_image(g[img_ext], f"{shard}:{key}.{img_ext}", image_size, channels))
            caps.append(g["txt"].decode("utf-8").strip())
            labels.append(g["cls"].decode("utf-8").strip() if "cls" in g else None)
    return _finish(images, caps, labels, name)


# ----------------------------------------------------------------------------------------------
# One entry point


def load_vision_corpus(spec: str, cache_dir: str | Path = ".cache/rins", image_size: int = 28, channels: int = 1,
                       val_fraction: float = 0.1, seed: int = 0) -> tuple[ImageTextData, ImageTextData]:
    """(train, val) for a corpus spec (see the module docstring), at the model's size and channel count."""
    if spec == "fashion-mnist":
        tr, va = load_fashion_mnist(cache_dir, "train"), load_fashion_mnist(cache_dir, "test")
    elif spec in ("emoji", "emoji:subgroup", "emoji:group"):
        full = load_emoji(cache_dir, image_size, "group" if spec == "emoji:group" else "subgroup")
        ti, vi = hash_split(full.texts, val_fraction, seed)
        tr, va = full.subset(ti), full.subset(vi)
    else:
        full = load_image_text(spec, image_size, channels)
        ti, vi = hash_split([f"{i}:{t}" for i, t in enumerate(full.texts)], val_fraction, seed)
        if len(vi) == 0 or len(ti) == 0:
            raise VisionDataError(f"{spec}: {len(full)} examples are too few for val_fraction={val_fraction}")
        tr, va = full.subset(ti), full.subset(vi)
    return tr.with_format(image_size, channels), va.with_format(image_size, channels)
