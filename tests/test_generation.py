"""Generation controls: top-p, repetition penalty, stop strings, streaming, the sliding window past max_seq_len."""

import math
from types import SimpleNamespace

import pytest
import torch

from rins.generation import generate_text
from rins.model import RecursiveLM
from tests.conftest import tiny_lm


class CharTokenizer:
    """Token i is the character chr(ord('a') + i % 26) (a stand-in for the run's BPE tokenizer)."""

    def encode(self, text: str):
        return SimpleNamespace(ids=[ord(c) - ord("a") for c in text])

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(ord("a") + i % 26) for i in ids)


def test_top_p_samples_only_from_the_nucleus():
    logits = torch.tensor([[math.log(0.5), math.log(0.3), math.log(0.15), math.log(0.05)]]).repeat(4000, 1)
    gen = torch.Generator().manual_seed(0)
    full = RecursiveLM._sample(logits, 1.0, None, gen).bincount(minlength=4)
    assert (full > 0).all()  # without top-p every token is drawn
    gen = torch.Generator().manual_seed(0)
    nucleus = RecursiveLM._sample(logits, 1.0, None, gen, top_p=0.7).bincount(minlength=4)
    # the smallest set reaching 0.7 is {0.5, 0.3}: the others are never drawn, and 0 : 1 stays 5 : 3
    assert nucleus[2] == nucleus[3] == 0 and nucleus[0] + nucleus[1] == 4000
    assert nucleus[0] / nucleus[1] == pytest.approx(5 / 3, rel=0.1)
    gen = torch.Generator().manual_seed(0)
    assert (RecursiveLM._sample(logits, 1.0, None, gen, top_p=0.01) == 0).all()  # a tiny p is greedy
    m = tiny_lm(signature="A^2B")
    x = torch.randint(0, 61, (2, 5))
    a = m.generate(x, 8, temperature=1.0, generator=torch.Generator().manual_seed(3))
    b = m.generate(x, 8, temperature=1.0, top_p=1.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)  # top_p=1 is off
    assert torch.equal(m.generate(x, 8, temperature=1.0, top_p=1e-6, generator=torch.Generator().manual_seed(3)),
                       m.generate(x, 8))
    with pytest.raises(ValueError, match="top_p"):
        m.generate(x, 2, top_p=0.0)


def test_repetition_penalty_discourages_tokens_already_in_the_row():
    m = tiny_lm(signature="A^2B")
    x = torch.randint(0, 61, (1, 4))
    plain = m.generate(x, 20)[0].tolist()
    assert len(set(plain)) < len(plain)  # greedy on an untrained model repeats itself
    out = m.generate(x, 20, repetition_penalty=1e6)[0].tolist()
    new = out[4:]
    assert len(set(new)) == len(new) and not set(new) & set(x[0].tolist())
    assert torch.equal(m.generate(x, 20, repetition_penalty=1.0), torch.tensor([plain]))


def test_stop_strings_cut_the_text_and_streaming_shows_the_same_text():
    m, tok = tiny_lm(signature="A^2B", vocab_size=26), CharTokenizer()
    kw = {"temperature": 1.0, "top_k": None, "seed": 5}
    full = generate_text(m, tok, "abc", 30, **kw)
    assert len(full) == 30
    stop = full[12:15]
    assert full.index(stop) >= 8
    cut = generate_text(m, tok, "abc", 30, stop=[stop, "zzzzzzzz"], **kw)
    assert cut == full[:full.index(stop)] and stop not in cut
    pieces: list[str] = []
    streamed = generate_text(m, tok, "abc", 30, stop=[stop], on_text=pieces.append, **kw)
    assert "".join(pieces) == streamed == cut and len(pieces) > 1  # streamed piece by piece
    pieces.clear()
    assert generate_text(m, tok, "abc", 30, on_text=pieces.append, **kw) == "".join(pieces) == full


@pytest.mark.parametrize("pos", ["rope", "learned"])
def test_prompt_plus_new_tokens_past_max_seq_len_stop_or_slide(pos):
    m, tok = tiny_lm(signature="A^2B", vocab_size=26, max_seq_len=16, pos_embedding=pos), CharTokenizer()
    notes: list[str] = []
    with pytest.raises(ValueError, match="the prompt has 20 tokens.*max_seq_len=16.*sliding window"):
        generate_text(m, tok, "abcdefghij" * 2, 40)
    assert len(generate_text(m, tok, "abcdefghij", 40, on_note=notes.append)) == 6  # capped at the context
    assert "capped to 6" in notes.pop()
    out = generate_text(m, tok, "abcdefghij" * 2, 40, temperature=0.0, on_note=notes.append, sliding_window=True)
    assert len(out) == 40 and len(notes) == 1 and "max_seq_len=16" in notes[0]
    # the first tokens are those of a plain generation from the prompt's newest tokens
    ctx = tok.encode(("abcdefghij" * 2)[-12:]).ids
    ref = m.generate(torch.tensor([ctx]), 4)[0, 12:].tolist()
    assert tok.encode(out[:4]).ids == ref


def test_compiled_decode_gives_the_eager_tokens(monkeypatch):
    """generate(compile=True): the one-token steps run through torch.compile (one graph for every cache length),
    with the eager tokens for a left-padded batch with a mask, and the graph is made once per model. Dynamo
    captures the graph as always (one graph, no break, for every step), run by its "eager" backend: inductor's
    C++ builds would take minutes here (benchmarks/generation.py --compile checks inductor's tokens too)."""
    import functools

    from torch._dynamo.utils import counters

    from rins import hardware

    monkeypatch.setattr(hardware, "cxx_compiler", lambda: "c++")
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    counters.clear()
    m = tiny_lm(signature="A^2B").eval()
    x = torch.randint(1, 61, (2, 6), generator=torch.Generator().manual_seed(0))
    am = torch.ones_like(x)
    am[0, :2] = 0  # the first row is left-padded
    want = m.generate(x, 7, r=3, attention_mask=am)
    got = m.generate(x, 7, r=3, attention_mask=am, compile=True)
    assert torch.equal(got, want)
    step = m.__dict__["_decode_step"]
    assert torch.equal(m.generate(x, 3, r=3, attention_mask=am, compile=True), want[:, :9])
    assert m.__dict__["_decode_step"] is step  # made once, reused
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]


def test_compiled_decode_without_a_cxx_compiler_warns_and_decodes_eager(monkeypatch):
    import shutil

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    m = tiny_lm(signature="A^2B").eval()
    x = torch.randint(1, 61, (1, 4), generator=torch.Generator().manual_seed(1))
    with pytest.warns(UserWarning, match=r"needs a C\+\+ compiler"):
        got = m.generate(x, 5, compile=True)
    assert torch.equal(got, m.generate(x, 5))
    assert m.__dict__.get("_decode_step") is None
