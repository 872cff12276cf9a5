"""lm-eval adapter: the three request types by hand, then local JSONL tasks through simple_evaluate."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
pytest.importorskip("lm_eval")

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

from rins import LMConfig, RecursiveLM  # noqa: E402
from rins.hf import save_run  # noqa: E402
from rins.lm_eval_adapter import RinsLM, evaluate  # noqa: E402

CORPUS = ["the cat sat on the mat", "a dog ran in the park", "two plus two is four", "red green blue"] * 5


class _Req:
    def __init__(self, *args) -> None:
        self.args = args


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return _make_run(tmp_path_factory.mktemp("lmeval") / "run", max_seq_len=32)


def _make_run(d, max_seq_len: int):
    """A tiny random A^2B run with a byte-level BPE trained on CORPUS."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    torch.manual_seed(0)
    cfg = LMConfig(vocab_size=tok.get_vocab_size(), n_layers=4, d_model=32, n_heads=4, max_seq_len=max_seq_len,
                   signature="A^2B", init_std=0.1)
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp_tok = d.parent / "tok.json"
    tok.save(str(tmp_tok))
    save_run(RecursiveLM(cfg).eval(), d, tokenizer_file=tmp_tok)
    return d


def test_registered_as_rins(run_dir):
    from lm_eval.api.registry import get_model

    cls = get_model("rins")
    assert cls is RinsLM
    assert get_model("hf").__name__ == "HFLM"  # registering "rins" keeps lm-eval's own models
    lm = cls.create_from_arg_string(f"run_dir={run_dir},r=3", {"batch_size": 1, "device": "cpu"})
    assert lm.r == 3 and lm.model.plan(lm.r).n_applications == 8


def test_requests_by_hand(run_dir):
    lm = RinsLM(run_dir=str(run_dir), r=3)
    model, ids = lm.model, lm.tok_encode("the cat sat on the mat")
    assert lm.eot_token_id == lm.tok.token_to_id("<|endoftext|>")
    # loglikelihood = sum of the continuation's token log-probs at depth 3
    ctx, cont = lm._encode_pair("the cat sat", " on the mat")
    assert ctx + cont == ids
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([ids[:-1]]), 3)[0], -1)
    want = sum(float(lp[i - 1, ids[i]]) for i in range(len(ctx), len(ids)))
    (ll, greedy), = lm.loglikelihood([_Req("the cat sat", " on the mat")])
    assert math.isclose(ll, want, rel_tol=1e-5, abs_tol=1e-5) and isinstance(greedy, bool)
    assert lm.loglikelihood([_Req("the cat sat", " on the mat")])[0][0] != RinsLM(
        run_dir=str(run_dir), r=1).loglikelihood([_Req("the cat sat", " on the mat")])[0][0]
    # rolling: one window when the text fits, conditioned on the end-of-text token
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([[lm.eot_token_id] + ids[:-1]]), 3)[0], -1)
    want = float(lp.gather(-1, torch.tensor(ids)[:, None]).sum())
    got = lm.loglikelihood_rolling([_Req("the cat sat on the mat")])[0]
    assert math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-5)
    long_text = " ".join(CORPUS[:6])
    assert len(lm.tok_encode(long_text)) > lm.max_length  # several windows
    assert math.isfinite(lm.loglikelihood_rolling([_Req(long_text)])[0])
    # generation: greedy, equal to RecursiveLM.generate, cut at the stop string
    out = lm.generate_until([_Req("the cat", {"until": ["\n"], "max_gen_toks": 5})])[0]
    ref = model.generate(torch.tensor([lm.tok_encode("the cat")]), 5, r=3, eos_token_id=lm.eot_token_id)
    new = ref[0, len(lm.tok_encode("the cat")):].tolist()
    new = new[: new.index(lm.eot_token_id)] if lm.eot_token_id in new else new
    assert out == lm.tok_decode(new).split("\n")[0]


TASKS = {
    "rins_mc": dict(output_type="multiple_choice", doc_to_text="{{question}}", doc_to_target="{{label}}",
                    doc_to_choice="{{choices}}", metric_list=[{"metric": "acc"}]),
    "rins_ppl": dict(output_type="loglikelihood_rolling", doc_to_text="", doc_to_target="{{text}}",
                     metric_list=[{"metric": "word_perplexity"}]),
    "rins_gen": dict(output_type="generate_until", doc_to_text="{{question}}", doc_to_target="{{answer}}",
                     generation_kwargs={"until": ["\n"], "max_gen_toks": 4, "do_sample": False},
                     metric_list=[{"metric": "exact_match"}]),
}


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    """Three local tasks (multiple choice, rolling perplexity, generation) over one small JSONL file."""
    d = tmp_path_factory.mktemp("tasks")
    docs = [{"question": "the cat sat on the", "choices": [" mat", " park"], "label": 0, "answer": " mat",
             "text": "a dog ran in the park"},
            {"question": "two plus two is", "choices": [" four", " blue"], "label": 0, "answer": " four",
             "text": "red green blue"}]
    data = d / "docs.jsonl"
    data.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    for name, spec in TASKS.items():
        cfg = dict(task=name, dataset_path="json", dataset_kwargs={"data_files": {"test": str(data)},
                                                                   "cache_dir": str(d / "hf_cache")},
                   test_split="test", **spec)
        (d / f"{name}.yaml").write_text(json.dumps(cfg))  # JSON is valid YAML
    return d


def test_simple_evaluate_local_tasks(run_dir, task_dir):
    res = evaluate(str(run_dir), list(TASKS), r=2, include_path=str(task_dir), log_samples=False,
                   include_defaults=False)
    results = res["results"]
    assert 0.0 <= results["rins_mc"]["acc,none"] <= 1.0
    assert results["rins_ppl"]["word_perplexity,none"] > 1.0
    assert 0.0 <= results["rins_gen"]["exact_match,none"] <= 1.0


def test_batched_scoring_equals_one_at_a_time(run_dir):
    one, many = RinsLM(run_dir=str(run_dir), r=3, batch_size=1), RinsLM(run_dir=str(run_dir), r=3, batch_size="8")
    assert many.batch_size == 8 and RinsLM(run_dir=str(run_dir), batch_size="auto").batch_size == 16
    pairs = [_Req(c, x) for c in ("the cat", "a dog ran in the", "", "two plus two is four and") for x in
             (" sat", " park on the mat", " red green blue")]
    for (a, ga), (b, gb) in zip(one.loglikelihood(pairs), many.loglikelihood(pairs)):
        assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-5) and ga == gb
    texts = [_Req(t) for t in (CORPUS[0], " ".join(CORPUS[:7]), CORPUS[2])]
    for a, b in zip(one.loglikelihood_rolling(texts), many.loglikelihood_rolling(texts)):
        assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-5)
    gens = [_Req(c, {"until": ["\n"], "max_gen_toks": 5}) for c in ("the cat", "a dog ran in the park", "red")]
    assert one.generate_until(gens) == many.generate_until(gens)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_device_is_automatic(run_dir):
    """lm-eval's CLI passes cuda:0 by default; without CUDA the adapter runs on the CPU."""
    assert RinsLM(run_dir=str(run_dir), device="cuda:0").device.type == "cpu"
    assert RinsLM(run_dir=str(run_dir)).device.type == "cpu"


def _results(out_dir) -> dict:
    (path,) = list(out_dir.rglob("results_*.json"))
    return json.loads(path.read_text())["results"]


def native_and_hf(run_dir, task_dir, tmp_path, monkeypatch, native_args: str, hf_args: str) -> tuple[dict, dict]:
    """The results of `rins lm-eval --model_args run_dir=RUN,NATIVE_ARGS` and of lm-eval's own CLI with the stock
    `hf` model on the run's export (`--model_args pretrained=EXPORT,trust_remote_code=True,HF_ARGS`) on the local
    test tasks."""
    import sys

    import lm_eval.tasks
    from lm_eval.__main__ import cli_evaluate

    from rins.cli import main as cli
    from rins.hf import export

    init = lm_eval.tasks.TaskManager.__init__
    monkeypatch.setattr(lm_eval.tasks.TaskManager, "__init__",  # skip indexing lm-eval's ~10k built-in tasks
                        lambda self, *a, **kw: init(self, *a, **{**kw, "include_defaults": False}))
    tasks = ["--tasks", ",".join(TASKS), "--include_path", str(task_dir)]
    assert cli(["lm-eval", "--model_args", f"run_dir={run_dir},{native_args}", *tasks, "--output_path",
                str(tmp_path / "native")]) == 0
    exp = export(str(run_dir), tmp_path / "exp")
    monkeypatch.setattr(sys, "argv", ["lm_eval", "--model", "hf", "--model_args",
                                      f"pretrained={exp},trust_remote_code=True,{hf_args}", "--device", "cpu",
                                      *tasks, "--output_path", str(tmp_path / "hf")])
    cli_evaluate()
    return _results(tmp_path / "native"), _results(tmp_path / "hf")


def assert_same_scores(native: dict, hf: dict) -> None:
    assert native["rins_mc"]["acc,none"] == hf["rins_mc"]["acc,none"]
    assert math.isclose(native["rins_ppl"]["word_perplexity,none"], hf["rins_ppl"]["word_perplexity,none"],
                        rel_tol=1e-4)
    assert native["rins_gen"]["exact_match,none"] == hf["rins_gen"]["exact_match,none"]


def test_lm_eval_cli_native_and_exported_agree(run_dir, task_dir, tmp_path, monkeypatch):
    """`rins lm-eval` (the rins model inside lm-eval's own CLI) and `lm_eval --model hf` on the export score the
    same local tasks to the same numbers."""
    assert_same_scores(*native_and_hf(run_dir, task_dir, tmp_path, monkeypatch, "r=2", "rins_r=2"))


def test_shipped_shakespeare_tasks(tmp_path):
    """The example tasks in examples/lm_eval load from any working directory and score through the adapter (on a
    run whose context holds their lines: a 32-token one is refused, see test_over_long_requests_same_rules_as_hf)."""
    run_dir = _make_run(tmp_path / "run", max_seq_len=256)
    from pathlib import Path

    here = Path(__file__).resolve().parents[1] / "examples" / "lm_eval"
    items = [json.loads(x) for x in (here / "shakespeare_next_line.jsonl").read_text().splitlines()]
    assert len(items) == 200 and all(len(it["choices"]) == 4 and 0 <= it["label"] < 4 for it in items)
    assert {it["work"] for it in items} == {"henry_v", "othello", "romeo_and_juliet", "sonnets",
                                            "troilus_and_cressida"}  # the default run's held-out works
    names = ["rins_shakespeare_next_line", "rins_shakespeare_passages"]
    res = evaluate(str(run_dir), names, r=1, include_path=str(here), include_defaults=False, limit=3,
                   log_samples=False)["results"]
    assert 0.0 <= res[names[0]]["acc,none"] <= 1.0 and res[names[1]]["bits_per_byte,none"] > 0


def test_over_long_requests_same_rules_as_hf(run_dir, tmp_path, monkeypatch, capsys, caplog):
    """On a run whose context (32 tokens) is shorter than the requests, `rins lm-eval` and `lm_eval --model hf` on
    the export follow the same rules: a long context is truncated from the left, with a warning, to the same
    numbers; a continuation longer than the context is refused by both (the shipped example tasks)."""
    import logging
    import sys
    from pathlib import Path

    import lm_eval.tasks
    from lm_eval.__main__ import cli_evaluate

    from rins.cli import main as cli
    from rins.hf import export

    init = lm_eval.tasks.TaskManager.__init__
    monkeypatch.setattr(lm_eval.tasks.TaskManager, "__init__",  # skip indexing lm-eval's ~10k built-in tasks
                        lambda self, *a, **kw: init(self, *a, **{**kw, "include_defaults": False}))
    long_ctx = " ".join(CORPUS[:8])  # ~40 tokens: over the 32-token context
    docs = [{"question": f"{long_ctx} the cat sat on the", "choices": [" mat", " park", " blue"], "label": 0},
            {"question": f"{long_ctx} two plus two is", "choices": [" four", " green"], "label": 0}]
    (tmp_path / "long.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tmp_path / "rins_long.yaml").write_text(json.dumps(dict(
        task="rins_long", dataset_path="json", test_split="test", output_type="multiple_choice",
        dataset_kwargs={"data_files": {"test": str(tmp_path / "long.jsonl")}, "cache_dir": str(tmp_path / "c")},
        doc_to_text="{{question}}", doc_to_target="{{label}}", doc_to_choice="{{choices}}",
        metric_list=[{"metric": "acc"}])))
    exp = export(str(run_dir), tmp_path / "exp")

    def both(tasks: list[str], out: str):
        """(`rins lm-eval` exit code, its stderr, what `lm_eval --model hf` raised or None)."""
        code = cli(["lm-eval", "--model_args", f"run_dir={run_dir},r=2", *tasks, "--output_path",
                    str(tmp_path / out / "native")])
        err = capsys.readouterr().err
        monkeypatch.setattr(sys, "argv", ["lm_eval", "--model", "hf", "--model_args",
                                          f"pretrained={exp},trust_remote_code=True,rins_r=2", "--device", "cpu",
                                          *tasks, "--output_path", str(tmp_path / out / "hf")])
        try:
            cli_evaluate()
            raised = None
        except AssertionError as e:
            raised = e
        return code, err, raised

    lm_eval_log = logging.getLogger("lm_eval")  # lm-eval's loggers do not propagate to the root's caplog
    lm_eval_log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING):
            code, _, raised = both(["--tasks", "rins_long", "--include_path", str(tmp_path), "--log_samples"],
                                   "long")
    finally:
        lm_eval_log.removeHandler(caplog.handler)
    assert code == 0 and raised is None
    warned = [r.getMessage() for r in caplog.records if "max_length=32" in r.getMessage() or
              "exceeds model's maximum length (32)" in r.getMessage()]
    assert any("truncated from the left" in w for w in warned), warned  # rins
    assert any("Truncating" in w for w in warned), warned  # lm-eval's hf
    native, hf = _results(tmp_path / "long" / "native"), _results(tmp_path / "long" / "hf")
    assert native["rins_long"]["acc,none"] == hf["rins_long"]["acc,none"]
    for a, b in zip(_samples(tmp_path / "long" / "native"), _samples(tmp_path / "long" / "hf")):
        assert all(math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-4) for x, y in zip(a, b)), (a, b)

    shipped = Path(__file__).resolve().parents[1] / "examples" / "lm_eval"
    code, err, raised = both(["--tasks", "rins_shakespeare_next_line", "--include_path", str(shipped)], "shipped")
    assert code == 2 and "continuation longer than the model's context" in err and "max_length=32" in err, err
    assert raised is not None  # lm-eval's hf: `assert len(continuation_enc) <= self.max_length`


def _samples(out_dir) -> list[list[float]]:
    """The per-choice log-likelihoods lm-eval logged, in document order."""
    (path,) = list(out_dir.rglob("samples_*.jsonl"))
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return [[float(r[0][0]) for r in row["resps"]] for row in sorted(rows, key=lambda row: row["doc_id"])]
