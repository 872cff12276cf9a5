"""Adaptive depth per token through the exported HF model's stock entry points (AutoModelForCausalLM with
trust_remote_code, its forward and generate)."""

from __future__ import annotations

import json
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

from rins.adaptive import ExitStats  # noqa: E402
from rins.hf import export  # noqa: E402
from tests.test_adaptive import _mixed_rule, _model  # noqa: E402


def _load_hf(path, **kw):
    return transformers.AutoModelForCausalLM.from_pretrained(str(path), trust_remote_code=True, **kw).eval()


@pytest.mark.parametrize("kw", [
    dict(signature="A^3B", adapters="round", n_kv_heads=2),
    dict(signature="AB^2C", n_layers=6, adapters="depth"),
    dict(signature="A^3B", kv_share=True),
], ids=["round-gqa", "middle-depth", "kv_share"])
def test_exported_model_exits_like_rins(kw, tmp_path):
    m = _model(**kw)
    x = torch.randint(1, 61, (2, 14), generator=torch.Generator().manual_seed(2))
    hf = _load_hf(export(m, tmp_path / "hf"))
    with torch.no_grad():
        for rule in ("kl", "hidden", "confidence"):
            text, _ = _mixed_rule(m, x, rule)
            s = ExitStats()
            want = m(x, exit_rule=text, exit_stats=s)
            torch.testing.assert_close(hf(x, rins_exit=text).logits, want, atol=1e-5, rtol=1e-5)
            assert torch.equal(hf.last_rounds, s.last_rounds)
            # HF generate with its own cache == rins's cached adaptive generation (greedy), one row at a time
            for row in x[:, :6]:
                got = hf.generate(input_ids=row[None], max_new_tokens=6, do_sample=False, rins_exit=text,
                                  pad_token_id=0)
                assert got.tolist() == m.generate(row[None], 6, exit_rule=text).tolist(), text
        # the limits: hidden=0 is the fixed trained depth, kl=inf fixed r = 1
        torch.testing.assert_close(hf(x, rins_exit="hidden=0").logits, m(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(hf(x, rins_exit="kl=inf").logits, m(x, r=1), atol=1e-5, rtol=1e-5)


def test_exported_default_rule_at_load_and_errors(tmp_path):
    m = _model(signature="A^3B", adapters="round")
    x = torch.randint(1, 61, (1, 10), generator=torch.Generator().manual_seed(3))
    text, _ = _mixed_rule(m, x, "hidden")
    out = export(m, tmp_path / "hf", exit_rule=text)
    assert json.loads((out / "config.json").read_text())["rins_exit"] == text
    with torch.no_grad():
        want = m(x, exit_rule=text)
        torch.testing.assert_close(_load_hf(out)(x).logits, want, atol=1e-5, rtol=1e-5)
        plain = _load_hf(out, rins_exit=None)
        torch.testing.assert_close(plain(x).logits, m(x), atol=1e-5, rtol=1e-5)
        plain.set_rins_exit(text)
        torch.testing.assert_close(plain(x).logits, want, atol=1e-5, rtol=1e-5)
        with pytest.raises(ValueError, match="unknown exit rule 'entropy'"):
            plain(x, rins_exit="entropy=0.1")
        with pytest.raises(ValueError, match=">= 0"):
            plain(x, rins_exit="kl=nan")
    with pytest.raises(ValueError, match="unknown exit rule"):
        export(m, tmp_path / "bad", exit_rule="depth=2")
