import csv
import gzip
import io
import json
import struct
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from rins import vision_data as vd
from rins.vision_data import (
    ByteTokenizer,
    ImageTextData,
    VisionDataError,
    augment_batch,
    hash_split,
    load_image_text,
    load_vision_corpus,
)


def _png(path, color, size=(12, 10)):
    Image.new("RGB", size, color).save(path)


def _png_bytes(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return buf.getvalue()


def test_byte_tokenizer_roundtrip_and_truncation():
    tok = ByteTokenizer()
    ids = tok.encode(["a cat", "é" * 10], 8)
    assert ids.shape == (2, 8) and ids.dtype == torch.long
    assert tok.decode(ids[0]) == "a cat"
    assert ids[0, 5] == tok.eos_id and (ids[0, 6:] == tok.pad_id).all()
    assert ids.max() < tok.vocab_size
    assert ids[1, -1] == tok.eos_id  # truncated to max_len - 1 bytes + end token


def test_csv_folder(tmp_path):
    for i, c in enumerate(["red", "green", "blue"]):
        _png(tmp_path / f"{i}.png", c)
    with open(tmp_path / "captions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "caption", "label"])
        for i, c in enumerate(["red", "green", "blue"]):
            w.writerow([f"{i}.png", f"a {c} square", c])
    d = load_image_text(tmp_path, image_size=8, channels=3)
    assert d.images.shape == (3, 8, 8, 3) and d.images.dtype == np.uint8
    assert d.texts[1] == "a green square" and d.class_names == ["blue", "green", "red"]
    assert list(d.labels) == [2, 1, 0]
    assert d.images[0, 4, 4, 0] > 200 and d.images[0, 4, 4, 2] < 50  # red stayed red
    grey = load_image_text(tmp_path / "captions.csv", image_size=8, channels=1)
    assert grey.images.shape == (3, 8, 8, 1)


def test_jsonl_and_sidecar_folder(tmp_path):
    (tmp_path / "a").mkdir()
    _png(tmp_path / "a" / "x.png", "red")
    (tmp_path / "a" / "x.txt").write_text("a red thing\n")
    d = load_image_text(tmp_path / "a", image_size=6)
    assert d.texts == ["a red thing"] and d.labels is None
    _png(tmp_path / "y.jpg", "blue")
    (tmp_path / "c.jsonl").write_text(json.dumps({"image": "y.jpg", "caption": "blue"}) + "\n\n")
    d = load_image_text(tmp_path / "c.jsonl", image_size=6)
    assert d.texts == ["blue"] and d.images.shape == (1, 6, 6, 3)


def test_tar_shards(tmp_path):
    for s in range(2):
        with tarfile.open(tmp_path / f"shard-{s}.tar", "w") as tf:
            for k, (col, cap) in enumerate([("red", "a red one"), ("blue", "a blue one")]):
                for name, data in ((f"s{s}_{k}.png", _png_bytes(col)), (f"s{s}_{k}.txt", cap.encode()),
                                   (f"s{s}_{k}.cls", col.encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
    d = load_image_text(str(tmp_path / "shard-*.tar"), image_size=8)
    assert len(d) == 4 and d.texts[:2] == ["a red one", "a blue one"] and d.class_names == ["blue", "red"]
    assert len(load_image_text(tmp_path / "shard-0.tar", image_size=8)) == 2
    assert len(load_image_text(tmp_path, image_size=8)) == 4  # a folder of shards


def test_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(VisionDataError, match="empty folder"):
        load_image_text(tmp_path / "empty")
    (tmp_path / "nocap").mkdir()
    _png(tmp_path / "nocap" / "x.png", "red")
    with pytest.raises(VisionDataError, match="missing caption for .*x.png"):
        load_image_text(tmp_path / "nocap")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"not a png")
    (tmp_path / "bad" / "x.txt").write_text("cap")
    with pytest.raises(VisionDataError, match="cannot read image .*x.png"):
        load_image_text(tmp_path / "bad")
    _png(tmp_path / "z.png", "red")
    (tmp_path / "c.csv").write_text("image,caption\nz.png,\n")
    with pytest.raises(VisionDataError, match="missing caption for image z.png"):
        load_image_text(tmp_path / "c.csv")
    (tmp_path / "d.csv").write_text("image,caption\nnope.png,hello\n")
    with pytest.raises(VisionDataError, match="not found"):
        load_image_text(tmp_path / "d.csv")
    with tarfile.open(tmp_path / "t.tar", "w") as tf:
        info = tarfile.TarInfo("k.png")
        data = _png_bytes("red")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(VisionDataError, match="missing caption for k.png"):
        load_image_text(tmp_path / "t.tar")
    with pytest.raises(VisionDataError, match="does not exist"):
        load_image_text(tmp_path / "missing")


def _write_idx(path, arr: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_from_fake_package(tmp_path, monkeypatch):
    root = tmp_path / "pkg"
    d = root / "usr/share/datasets/fashion-mnist"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 10)):
        _write_idx(d / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    calls = []
    monkeypatch.setattr(vd, "_fetch", lambda pkg, cache: calls.append(pkg) or root)
    tr, va = load_vision_corpus("fashion-mnist", tmp_path / "cache", image_size=16, channels=3)
    assert calls == ["dataset-fashion-mnist"] * 2
    assert tr.images.shape == (20, 16, 16, 3) and len(va) == 10 and va.labels[3] == 3
    assert tr.class_names[9] == "ankle boot" and "ankle boot" in tr.caption(9)
    assert (tmp_path / "cache/vision/fashion-mnist/train_images.npy").exists()
    calls.clear()
    vd.load_fashion_mnist(tmp_path / "cache", "test")  # cached: no fetch
    assert calls == []


def test_parse_emoji_test(tmp_path):
    p = tmp_path / "emoji-test.txt"
    p.write_text(
        "# group: Smileys & Emotion\n\n# subgroup: face-smiling\n"
        "1F600                                                  ; fully-qualified     # 😀 E1.0 grinning face\n"
        "263A                                                   ; unqualified         # ☺ E0.6 smiling face\n"
        "# group: Flags\n# subgroup: country-flag\n"
        "1F1EB 1F1F7                                            ; fully-qualified     # 🇫🇷 E2.0 flag: France\n",
        encoding="utf-8",
    )
    e = vd.parse_emoji_test(p)
    assert [x["name"] for x in e] == ["grinning face", "flag: France"]
    assert e[1]["group"] == "Flags" and e[1]["subgroup"] == "country-flag" and e[1]["emoji"] == "🇫🇷"


def test_augment_deterministic_and_identity():
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    a = augment_batch(x, torch.Generator().manual_seed(1))
    b = augment_batch(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    same = augment_batch(x, torch.Generator().manual_seed(1), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    assert torch.allclose(same, x, atol=1e-5)


def test_dataset_helpers():
    imgs = np.zeros((5, 4, 4, 3), np.uint8)
    d = ImageTextData(imgs, list("abcde"), ["x {}", "y {}"], np.arange(5), list("abcde"))
    assert d.caption(1) == "x b"
    assert d.caption(1, np.random.default_rng(0)) in ("x b", "y b")
    s = d.subset([4, 0])
    assert s.texts == ["e", "a"] and list(s.labels) == [4, 0]
    g = d.with_format(8, 1)
    assert g.images.shape == (5, 8, 8, 1)
    t = d.tensor_images([0])
    assert t.shape == (1, 3, 4, 4) and float(t.min()) == -1.0
    tr, va = hash_split([str(i) for i in range(200)], 0.25, seed=3)
    tr2, va2 = hash_split([str(i) for i in range(200)], 0.25, seed=3)
    assert np.array_equal(va, va2) and 20 < len(va) < 80 and len(tr) + len(va) == 200
    with pytest.raises(VisionDataError):
        ImageTextData(imgs, ["a"])
