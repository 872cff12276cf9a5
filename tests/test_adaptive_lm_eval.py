"""Adaptive depth per token through lm-eval: the ``rins`` model (``adaptive=``) and lm-eval's stock ``hf`` model on
the export (``rins_exit=``)."""

from __future__ import annotations

import math
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
pytest.importorskip("lm_eval")

from tests.test_adaptive import _mixed_rule  # noqa: E402
from tests.test_lm_eval import run_dir, task_dir  # noqa: E402, F401  (the lm-eval tests' fixtures)


def test_lm_eval_adapter_adaptive_limits_and_errors(run_dir):  # noqa: F811
    from rins.lm_eval_adapter import RinsLM
    from tests.test_lm_eval import CORPUS, _Req

    texts = [_Req(t) for t in (CORPUS[0], " ".join(CORPUS[:7]))]
    fixed3 = RinsLM(run_dir=str(run_dir), r=3).loglikelihood_rolling(texts)
    fixed1 = RinsLM(run_dir=str(run_dir), r=1).loglikelihood_rolling(texts)
    zero = RinsLM(run_dir=str(run_dir), r=3, adaptive="hidden=0").loglikelihood_rolling(texts)
    inf = RinsLM(run_dir=str(run_dir), r=3, adaptive="kl=inf").loglikelihood_rolling(texts)
    assert all(math.isclose(a, b, rel_tol=1e-5) for a, b in zip(zero, fixed3))
    assert all(math.isclose(a, b, rel_tol=1e-5) for a, b in zip(inf, fixed1))
    assert not all(math.isclose(a, b, rel_tol=1e-3) for a, b in zip(fixed1, fixed3))  # the limits differ
    lm = RinsLM(run_dir=str(run_dir), r=3, adaptive="confidence=0.5")
    assert str(lm.exit_rule) == "confidence=0.5"
    with pytest.raises(ValueError, match="unknown exit rule"):
        RinsLM(run_dir=str(run_dir), adaptive="depth=2")


def test_lm_eval_adaptive_native_and_exported_agree(run_dir, task_dir, tmp_path, monkeypatch):  # noqa: F811
    """`rins lm-eval --model_args run_dir=..,adaptive=RULE` and lm-eval's stock `hf` model on the export with
    `rins_exit=RULE` score the same local tasks to the same numbers."""
    from rins.checkpoint import load_model
    from tests.test_lm_eval import assert_same_scores, native_and_hf

    m = load_model(run_dir)
    x = torch.randint(0, m.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))
    rule, _ = _mixed_rule(m, x, "hidden")  # some tokens exit early, others run all 3 rounds
    native, hf = native_and_hf(run_dir, task_dir, tmp_path, monkeypatch, f"r=3,adaptive={rule}",
                               f"rins_r=3,rins_exit={rule}")
    assert_same_scores(native, hf)
    # the Python API gives the same numbers, and the exits changed them (fixed r=3 scores differently)
    from rins.lm_eval_adapter import evaluate

    kw = dict(include_path=str(task_dir), log_samples=False, include_defaults=False)
    api = evaluate(str(run_dir), ["rins_ppl"], r=3, adaptive=rule, **kw)["results"]["rins_ppl"]
    fixed = evaluate(str(run_dir), ["rins_ppl"], r=3, **kw)["results"]["rins_ppl"]
    ppl = native["rins_ppl"]["word_perplexity,none"]
    assert math.isclose(api["word_perplexity,none"], ppl, rel_tol=1e-5)
    assert not math.isclose(fixed["word_perplexity,none"], ppl, rel_tol=1e-4)
