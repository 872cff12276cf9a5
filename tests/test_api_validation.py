"""Issue #28: every public function of the API checks its arguments' types and ranges and raises one documented
error type, :class:`rins.ConfigError` (a ``ValueError``), naming the argument; nothing is coerced silently.

One property-based test per function: each argument in turn gets a hostile value (fractions, bools, NaN/inf,
numbers as text or bytes, None, lists, dicts, huge and negative integers) while the others stay valid; the call
must either succeed with a value of the declared type or raise ``ConfigError`` naming that argument."""

import math
from pathlib import Path

import pytest
import torch
from conftest import tiny_config, tiny_lm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rins import ConfigError, LMConfig, RecursiveLM, compile_plan
from rins.config import TrainConfig

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

HOSTILE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.integers(min_value=-2**70, max_value=2**70),
    st.sampled_from(["4", "", "nan", "A^2B", b"4", [4], (2, 2), {"n": 4}, {4}, 4.0, 2.7, -1, 0, 2**64, object()]),
    st.text(max_size=8),
)


def _fails_clearly(call, name: str) -> Exception | None:
    """Run ``call``; None when it succeeds, the ConfigError when it raises one naming ``name`` (else the test
    fails with the raw exception)."""
    try:
        call()
    except ConfigError as e:
        assert name in str(e), f"{e!r} does not name {name!r}"
        assert "\n" not in str(e) or name == "signature"  # a signature's error points at the bad character
        return e
    return None


def _is_int(v) -> bool:
    return type(v) is int


@FUZZ
@given(arg=st.sampled_from(["signature", "n_layers", "degree", "block_sizes", "r"]), value=HOSTILE)
def test_compile_plan_validates_every_argument(arg, value):
    kw = {"signature": "A^2B", "n_layers": 4, "degree": 1, "block_sizes": None, "r": None} | {arg: value}
    if _fails_clearly(lambda: compile_plan(**kw), arg) is None:  # accepted: only a value of the declared type
        assert {"signature": isinstance(value, str), "n_layers": _is_int(value), "degree": _is_int(value),
                "r": value is None or _is_int(value),
                "block_sizes": value is None or (isinstance(value, list | tuple)
                                                 and all(_is_int(x) for x in value))}[arg], (arg, value)


def test_compile_plan_truncates_nothing():
    """The issue's cases: 4.9 layers built 4, r=2.7 gave 2, degree=1.9 gave 1, True/'4'/b'4' were accepted."""
    for kw in ({"n_layers": 4.9}, {"r": 2.7}, {"degree": 1.9}, {"n_layers": True}, {"n_layers": "4"},
               {"n_layers": b"4"}, {"n_layers": math.nan}, {"n_layers": math.inf}, {"n_layers": None},
               {"n_layers": [4]}):
        name = next(iter(kw))
        with pytest.raises(ConfigError, match=f"compile_plan: {name}="):
            compile_plan(**({"signature": "A^2B", "n_layers": 4} | kw))


LM_FIELDS = ["vocab_size", "n_layers", "d_model", "n_heads", "max_seq_len", "norm_eps", "rope_theta", "init_std",
             "p_skip", "degree", "adapter_rank", "depth_seed", "signature", "tie_embeddings", "adapters"]


@FUZZ
@given(arg=st.sampled_from(LM_FIELDS), value=HOSTILE)
def test_lm_config_validates_every_field(arg, value):
    base = dict(vocab_size=61, n_layers=4, d_model=32, n_heads=4, max_seq_len=48, signature="A^2B")
    if _fails_clearly(lambda: LMConfig(**(base | {arg: value})), arg) is None:
        declared = {"norm_eps": float, "rope_theta": float, "init_std": float, "p_skip": float,
                    "signature": str, "tie_embeddings": bool, "adapters": str}.get(arg, int)
        ok = (isinstance(value, int | float) and not isinstance(value, bool) if declared is float
              else type(value) is declared or (arg == "adapter_rank" and value is None))
        assert ok, (arg, value)


@FUZZ
@given(key=st.sampled_from(["optim.eps", "optim.lr", "seed", "batch_size", "model.norm_eps", "model.depth_seed",
                            "device", "budget.steps"]), value=HOSTILE)
def test_train_config_from_dict_validates(key, value):
    sec, _, name = key.rpartition(".")
    d = {"model": {"n_layers": 2, "d_model": 32, "n_heads": 4}}
    if sec:
        d.setdefault(sec, {})[name] = value
    else:
        d[name] = value
    _fails_clearly(lambda: TrainConfig.from_dict(d), name)


def test_from_dict_converts_nothing_silently():
    """Issue #28 item 2: a dict (the Python API, JSON, TOML) is taken as typed. Text is parsed only on a command
    line: a string where a number, a boolean or a list of integers belongs is refused, naming the key and the fix;
    only lossless conversions remain (an integral float to an int, 0/1 to a boolean)."""
    for key, value in (("batch_size", "8"), ("optim.lr", "1e-3"), ("compile", "yes"), ("compile", "1"),
                       ("eval_depths", "1,2"), ("seed", "0"), ("budget.flops", "3e13"), ("model.n_layers", "2"),
                       ("model.kv_share", "no"), ("model.block_sizes", "1,1")):
        sec, _, name = key.rpartition(".")
        d = {"model": {"n_layers": 2, "d_model": 32, "n_heads": 4}}
        (d.setdefault(sec, {}) if sec else d)[name] = value
        with pytest.raises(ConfigError, match=rf"{name}=.*it is a string: write the value itself"):
            TrainConfig.from_dict(d)
    c = TrainConfig.from_dict({"batch_size": 8.0, "compile": 1, "optim": {"lr": 1}, "eval_depths": [1, 2]})
    assert (c.batch_size, c.compile, c.optim.lr, c.eval_depths) == (8, True, 1.0, [1, 2])
    assert type(c.batch_size) is int and type(c.optim.lr) is float
    # the same text on a command line is parsed by the field's type
    from rins.config import load_config

    c = load_config("tiny", overrides=["batch_size=8", "optim.lr=1e-3", "compile=yes", "eval_depths=1,2",
                                       "model.signature=A^2B", "model.block_sizes=2,2", "model.kv_share=no"])
    assert (c.batch_size, c.optim.lr, c.compile, c.eval_depths) == (8, 1e-3, True, [1, 2])
    assert c.model.block_sizes == (2, 2) and c.model.kv_share is False


def test_absurd_settings_are_refused():
    """Issue #28 item 6: eps and norm_eps of 1e308, a negative depth_seed, a device that is not one."""
    for d, match in (({"optim": {"eps": 1e308}}, "optim.eps"), ({"model": {"norm_eps": 1e308}}, "norm_eps"),
                     ({"model": {"depth_seed": -1}}, "depth_seed"), ({"device": "nonsense"}, "device")):
        with pytest.raises(ConfigError, match=match):
            TrainConfig.from_dict(d)
    for ok in ("auto", "cpu", "cuda", "cuda:1", "mps"):
        assert TrainConfig.from_dict({"device": ok}).device == ok


@FUZZ
@given(value=HOSTILE)
def test_recursive_lm_takes_only_a_config(value):
    assert _fails_clearly(lambda: RecursiveLM(value), "config") is not None


MODEL = tiny_lm(signature="A^2B")
X = torch.randint(0, 61, (1, 4))


@FUZZ
@given(arg=st.sampled_from(["max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "r",
                            "eos_token_id", "compile"]), value=HOSTILE)
def test_generate_validates_every_argument(arg, value):
    if arg == "max_new_tokens" and _is_int(value) and value > 8:
        return  # a valid long generation (the API does not cap it): not run here
    if arg == "compile" and value is True:
        return  # valid, and an inductor build takes minutes (tests/test_generation.py covers it)
    kw = {"max_new_tokens": 2} | {arg: value}
    out = _fails_clearly(lambda: MODEL.generate(X, **kw), arg)
    if out is None:
        num = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        assert (num and arg != "compile") or (value is None and arg in ("top_k", "top_p", "r", "eos_token_id")) \
            or (arg == "compile" and value is False), (arg, value)


class _Tok:
    """A stand-in tokenizer: one id per character (mod the vocabulary)."""

    def encode(self, text):
        return type("E", (), {"ids": [ord(c) % 61 for c in text]})()

    def decode(self, ids):
        return "".join(chr(97 + i % 26) for i in ids)


@FUZZ
@given(arg=st.sampled_from(["prompt", "seed", "temperature", "stop", "max_new_tokens"]), value=HOSTILE)
def test_generate_text_validates_every_argument(arg, value):
    from rins.generation import generate_text

    kw = {"prompt": "ab", "max_new_tokens": 2} | {arg: value}
    prompt = kw.pop("prompt")
    _fails_clearly(lambda: generate_text(MODEL, _Tok(), prompt, **kw), arg)


def test_generation_ranges_from_the_issue():
    from rins.generation import generate_text

    for kw, match in (({"temperature": -1.0}, "temperature"), ({"temperature": math.inf}, "temperature"),
                      ({"temperature": math.nan}, "temperature"), ({"temperature": 1e-308}, "temperature"),
                      ({"seed": 2**64}, "seed"), ({"seed": -1}, "seed")):
        with pytest.raises(ConfigError, match=f"generate_text: {match}="):
            generate_text(MODEL, _Tok(), "ab", 2, **kw)
    # stop strings are literal: a backslash sequence is just text
    assert isinstance(generate_text(MODEL, _Tok(), "ab", 2, stop=["\\x"], temperature=0.0), str)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> Path:
    from rins.hf import save_run

    return save_run(tiny_lm(signature="A^2B"), tmp_path_factory.mktemp("api") / "run")


@FUZZ
@given(arg=st.sampled_from(["path", "device", "verify"]), value=HOSTILE)
def test_load_model_validates_its_arguments(saved_run, arg, value):
    from rins.checkpoint import load_model

    kw = {"path": saved_run, "device": "cpu", "verify": True} | {arg: value}
    if arg == "path" and isinstance(value, str):
        return  # any string is a path: a missing one is a CheckpointError naming it (tested elsewhere)
    _fails_clearly(lambda: load_model(**kw), arg)


def _valid_eval_value(arg, value) -> bool:
    """Values evaluate_run accepts (they would score the run: not run here)."""
    if arg == "depths":
        return value is None or (isinstance(value, list | tuple) and all(
            r is None or _is_int(r) and 1 <= r <= 1024 for r in value))
    if arg == "batches":
        return value is None or _is_int(value) and value >= 0
    if arg == "batch_size":
        return value is None or _is_int(value) and value >= 1
    return {"split": value in ("val", "train") and isinstance(value, str), "verify": isinstance(value, bool),
            "data": value is None or isinstance(value, str), "device": value in ("cpu",)}[arg]


@FUZZ
@given(arg=st.sampled_from(["depths", "batches", "batch_size", "split", "data", "verify", "device"]), value=HOSTILE)
def test_evaluate_run_validates_its_arguments(saved_run, arg, value):
    from rins.evaluation import evaluate_run

    if _valid_eval_value(arg, value):
        return
    valid = {"depths": None, "batches": 1, "batch_size": 1, "split": "val", "data": None, "verify": True,
             "device": "cpu"}
    assert _fails_clearly(lambda: evaluate_run(saved_run, **(valid | {arg: value})), arg) is not None


@FUZZ
@given(arg=st.sampled_from(["signature", "degree", "n_layers", "ridge", "calib_tokens", "model_or_path"]),
       value=HOSTILE)
def test_from_hf_validates_its_arguments(arg, value):
    """Every argument is checked before the source is read: with a source that is not a model, a valid value
    of ``arg`` ends at the check of model_or_path, an invalid one at its own."""
    from rins.hf import from_hf

    if arg == "model_or_path" and isinstance(value, str):
        return  # a folder name: transformers' loader reports a missing one
    kw = {"model_or_path": object(), "signature": "A^2B"} | {arg: value}
    with pytest.raises(ConfigError) as info:
        from_hf(**kw)
    msg = str(info.value)
    valid = {"signature": isinstance(value, str), "degree": _is_int(value) and value >= 1,
             "n_layers": value is None or _is_int(value) and value >= 1,
             "ridge": isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
             and value > 0, "calib_tokens": value is None, "model_or_path": False}[arg]
    assert f"from_hf: {'model_or_path' if valid else arg}=" in msg, (arg, value, msg)


def test_tiny_config_still_builds():
    assert RecursiveLM(tiny_config(signature="A^2B")).config.n_layers == 4
