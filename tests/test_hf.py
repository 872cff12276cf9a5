"""Hugging Face interop: exact conversion in, deeper→recursive initialisation, export out, HF generate."""

from __future__ import annotations

import copy
import json
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

from rins import LMConfig, RecursiveLM  # noqa: E402
from rins.checkpoint import load_model  # noqa: E402
from rins.cli import run_verb  # noqa: E402
from rins.hf import ConversionError, export, from_hf, save_run, source_layer_map  # noqa: E402

V = 97
ARCHS = ("llama", "qwen2", "mistral", "gpt2")


def hf_model(kind: str, n_layers: int = 4, seed: int = 0):
    """A tiny random-weight transformers causal LM (biases and norm gains perturbed so they matter)."""
    T = transformers
    common = dict(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=n_layers,
                  num_attention_heads=4, max_position_embeddings=64)
    if kind == "llama":
        cfg = T.LlamaConfig(num_key_value_heads=2, rms_norm_eps=1e-5, **common)
    elif kind == "qwen2":
        cfg = T.Qwen2Config(num_key_value_heads=2, tie_word_embeddings=True, **common)
    elif kind == "mistral":
        cfg = T.MistralConfig(num_key_value_heads=1, sliding_window=None, **common)
    else:
        cfg = T.GPT2Config(vocab_size=V, n_embd=32, n_layer=n_layers, n_head=4, n_positions=64,
                           bos_token_id=0, eos_token_id=0)
    torch.manual_seed(seed)
    m = T.AutoModelForCausalLM.from_config(cfg).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "bias" in name or "norm" in name or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    return m


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(0, V, (2, 12), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kind", ARCHS)
def test_conversion_is_exact(kind, tokens):
    src = hf_model(kind)
    ref = src(tokens).logits
    base = from_hf(src, signature="AB")
    torch.testing.assert_close(base(tokens), ref, atol=1e-5, rtol=1e-5)
    rec = from_hf(src, signature="A^2B")
    torch.testing.assert_close(rec(tokens, r=1), ref, atol=1e-5, rtol=1e-5)
    assert rec.num_parameters() == base.num_parameters()
    assert not torch.allclose(rec(tokens, r=2), ref, atol=1e-3)
    if kind == "qwen2":
        assert rec.config.qkv_bias and not rec.config.proj_bias and rec.config.tie_embeddings
    if kind == "gpt2":
        assert rec.config.pos_embedding == "learned" and rec.config.norm == "layernorm"


def test_source_layer_map():
    from rins import compile_plan

    assert source_layer_map(compile_plan("A^2B", 4), 6) == [0, 1, 2, 3, 4, 5]
    assert source_layer_map(compile_plan("A^2B", 2), 8) == [0, 4, 7]


def test_deeper_source_inits(tokens):
    src = hf_model("llama", n_layers=6)
    sd = {k: v.float() for k, v in src.state_dict().items()}
    first = from_hf(src, signature="A^2B", n_layers=4, init="first")  # A=0,1 (apps 0..3), B=2,3 (apps 4,5)
    avg = from_hf(src, signature="A^2B", n_layers=4, init="average")
    q = "model.layers.{}.self_attn.q_proj.weight"
    torch.testing.assert_close(first.blocks[0].attn.q.weight, sd[q.format(0)])
    torch.testing.assert_close(first.blocks[2].attn.q.weight, sd[q.format(4)])
    torch.testing.assert_close(avg.blocks[0].attn.q.weight, (sd[q.format(0)] + sd[q.format(2)]) / 2)
    torch.testing.assert_close(avg.blocks[1].attn.q.weight, (sd[q.format(1)] + sd[q.format(3)]) / 2)
    torch.testing.assert_close(avg.blocks[3].attn.q.weight, sd[q.format(5)])
    assert first.plan().n_applications == 6

    calib = torch.randint(0, V, (8, 32), generator=torch.Generator().manual_seed(3))
    relaxed = from_hf(src, signature="A^2B", n_layers=4, init="relaxed", calib_tokens=calib)
    low = from_hf(src, signature="A^2B", n_layers=4, init="relaxed", calib_tokens=calib, adapter_rank=4)
    assert relaxed.config.adapters == "round" and len(relaxed.stack.adapters) == 2
    ref = src(calib).logits

    def err(m):
        with torch.no_grad():
            return float((m(calib) - ref).pow(2).mean())

    assert err(relaxed) < err(avg)
    assert err(low) < err(avg)
    assert low.adapter_fraction() < relaxed.adapter_fraction()
    with pytest.raises(ConversionError):
        from_hf(src, n_layers=8)
    with pytest.raises(ConversionError):
        from_hf(src, init="bogus")


def _write_tokenizer(path, specials: dict[int, str] | None = None) -> None:
    """Word-level tokenizer "w0".."w96"; ``specials`` renames ids to special tokens (e.g. {5: "</s>"})."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    specials = specials or {}
    vocab = {specials.get(i, f"w{i}"): i for i in range(V)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok.add_special_tokens([AddedToken(t, special=True) for t in specials.values()])
    tok.save(str(path))


def test_convert_cli_and_run_dir(tmp_path, tokens):
    src = hf_model("qwen2")
    src.save_pretrained(tmp_path / "hf")
    _write_tokenizer(tmp_path / "hf" / "tokenizer.json", {1: "<s>", 2: "</s>", 3: "<unk>"})
    (tmp_path / "hf" / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": {"content": "</s>", "special": True}, "unk_token": "<unk>"}))
    assert run_verb("convert", [str(tmp_path / "hf"), "--signature", "A^2B", "--out", str(tmp_path / "run")]) == 0
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["model"]["signature"] == "A^2B"
    assert (tmp_path / "run" / "tokenizer.json").is_file()
    assert json.loads((tmp_path / "run" / "special_tokens_map.json").read_text()) == {
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    # the source's special tokens travel on through export (eos pads: the source has no pad token)
    assert run_verb("export", [str(tmp_path / "run"), "--out", str(tmp_path / "exp")]) == 0
    tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "exp"), trust_remote_code=False)
    assert (tok.bos_token, tok.eos_token, tok.unk_token, tok.pad_token) == ("<s>", "</s>", "<unk>", "</s>")
    gen = json.loads((tmp_path / "exp" / "generation_config.json").read_text())
    assert gen == {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2}
    model = load_model(tmp_path / "run")
    torch.testing.assert_close(model(tokens, r=1), src(tokens).logits, atol=1e-5, rtol=1e-5)
    run_verb("convert", [str(tmp_path / "hf"), "--out", str(tmp_path / "run2"), "--layers", "2", "--init", "average"])
    assert load_model(tmp_path / "run2").config.n_layers == 2


def _load_hf(path, **kw):
    return transformers.AutoModelForCausalLM.from_pretrained(str(path), trust_remote_code=True, **kw).eval()


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_export_round_trip(kind, tmp_path, tokens):
    src = hf_model(kind)
    rec = from_hf(src, signature="A^2B")
    save_run(rec, tmp_path / "run", tokenizer_file=None)
    _write_tokenizer(tmp_path / "run" / "tokenizer.json")
    assert run_verb("export", [str(tmp_path / "run"), "--out", str(tmp_path / "hf")]) == 0
    for f in ("config.json", "model.safetensors", "configuration_rins.py", "modeling_rins.py", "rins_plan.py",
              "tokenizer.json"):
        assert (tmp_path / "hf" / f).is_file(), f
    hf = _load_hf(tmp_path / "hf")
    with torch.no_grad():
        torch.testing.assert_close(hf(tokens, rins_r=1).logits, src(tokens).logits, atol=1e-5, rtol=1e-5)
        for r in (2, 3):
            torch.testing.assert_close(hf(tokens, rins_r=r).logits, rec(tokens, r=r), atol=1e-5, rtol=1e-5)
        # the trained exponent by default, settable at load and with the setter
        torch.testing.assert_close(hf(tokens).logits, rec(tokens), atol=1e-5, rtol=1e-5)
        hf3 = _load_hf(tmp_path / "hf", rins_r=3)
        torch.testing.assert_close(hf3(tokens).logits, rec(tokens, r=3), atol=1e-5, rtol=1e-5)
        hf3.set_rins_r(1)
        torch.testing.assert_close(hf3(tokens).logits, src(tokens).logits, atol=1e-5, rtol=1e-5)
    assert transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf")).encode("w3 w5") == [3, 5]


def _varied_lm(**kw) -> RecursiveLM:
    torch.manual_seed(0)
    base = dict(vocab_size=V, n_layers=4, d_model=32, n_heads=4, max_seq_len=48, init_std=0.3)
    base.update(kw)
    m = RecursiveLM(LMConfig(**base)).eval()
    with torch.no_grad():
        for a in m.stack.adapters:
            a.up.weight.normal_(0, 0.05)
    return m


@pytest.mark.parametrize("kw", [
    dict(signature="A^2B", n_kv_heads=2),
    dict(signature="A^2B", adapters="round", adapter_rank=4, kv_share=True),
    dict(signature="AB^2C", n_layers=6, adapters="depth", pos_embedding="learned", norm="layernorm", mlp="gelu",
         qkv_bias=True, proj_bias=True, tie_embeddings=False),
    dict(signature="A^2B", degree=2, n_layers=8),
])
def test_hf_generate_left_padded_matches_rins(kw, tmp_path):
    model = _varied_lm(**kw)
    hf = _load_hf(export(model, tmp_path / "hf"))
    g = torch.Generator().manual_seed(5)
    lens = [7, 3, 5]
    T, new, r = max(lens), 6, 3
    ids = torch.zeros(len(lens), T, dtype=torch.long)
    am = torch.zeros(len(lens), T, dtype=torch.long)
    prompts = [torch.randint(1, V, (n,), generator=g) for n in lens]
    for i, p in enumerate(prompts):
        ids[i, T - len(p):], am[i, T - len(p):] = p, 1
    with torch.no_grad():
        torch.testing.assert_close(hf(ids, attention_mask=am, rins_r=r).logits[am.bool()],
                                   model(ids, r, attention_mask=am)[am.bool()], atol=1e-5, rtol=1e-5)
    out_hf = hf.generate(input_ids=ids, attention_mask=am, max_new_tokens=new, do_sample=False, rins_r=r,
                         pad_token_id=0)
    out_rins = model.generate(ids, new, r=r, attention_mask=am)
    assert out_hf.tolist() == out_rins.tolist()
    for i, p in enumerate(prompts):
        single_hf = hf.generate(input_ids=p[None], max_new_tokens=new, do_sample=False, rins_r=r, pad_token_id=0)
        single = model.generate(p[None], new, r=r)
        assert single_hf[0, len(p):].tolist() == single[0, len(p):].tolist() == out_hf[i, T:].tolist()
    assert len({tuple(x) for x in out_hf[:, T:].tolist()}) > 1  # the test is not vacuous


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A recursed model with GQA and round adapters, exported with a word-level tokenizer."""
    d = tmp_path_factory.mktemp("exported")
    model = _varied_lm(signature="A^2B", n_kv_heads=2, adapters="round", adapter_rank=4)
    _write_tokenizer(d / "tokenizer.json")
    return model, export(model, d / "hf", tokenizer_file=d / "tokenizer.json")


def test_hf_generate_reads_the_cache(exported):
    """Every decoding step must see the cache filled by the previous ones, whatever keyword carries it."""
    from transformers.cache_utils import Cache

    _, path = exported
    hf = _load_hf(path)
    seen: list[tuple[int, int]] = []

    def spy(_mod, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        caches = [v for v in kwargs.values() if isinstance(v, Cache)]
        seen.append((ids.shape[1], caches[0].get_seq_length() if caches else -1))

    hf.register_forward_pre_hook(spy, with_kwargs=True)
    prompt = torch.tensor([[5, 9, 11, 2, 7]])
    hf.generate(input_ids=prompt, max_new_tokens=4, do_sample=False, rins_r=3, pad_token_id=0)
    assert seen == [(5, 0), (1, 5), (1, 6), (1, 7)]


def test_hf_forward_rejects_unknown_cache_keyword(exported):
    from transformers import DynamicCache

    _, path = exported
    hf = _load_hf(path)
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(TypeError, match="unknown keyword"):
        hf(ids, kv_cache=DynamicCache())
    with pytest.raises(TypeError, match="must be a transformers Cache"):
        hf(ids, past_key_values=((torch.zeros(1), torch.zeros(1)),))
    c = DynamicCache()
    out = hf(ids, cache=c)
    assert c.get_seq_length() == 3 and (out.get("cache") or out.get("past_key_values")) is c


def test_hf_decoding_modes_match_rins(exported, tmp_path):
    """Greedy (no mask), beam search, seeded sampling, bf16 and save_pretrained -> reload, all with the cache."""
    model, path = exported
    hf = _load_hf(path)
    p = torch.tensor([[5, 9, 11, 2, 7, 30, 41]])
    new, r = 8, 3
    kw = dict(max_new_tokens=new, rins_r=r, pad_token_id=0)
    greedy = hf.generate(input_ids=p, do_sample=False, **kw)
    assert greedy.tolist() == model.generate(p, new, r=r).tolist()
    # beam search and sampling: the cached decode equals the full-recompute decode (rins's own forward)
    beam = hf.generate(input_ids=p, do_sample=False, num_beams=2, **kw)
    assert beam.tolist() == hf.generate(input_ids=p, do_sample=False, num_beams=2, use_cache=False, **kw).tolist()
    samples = []
    for use_cache in (True, False):
        torch.manual_seed(7)
        samples.append(hf.generate(input_ids=p.expand(3, -1), do_sample=True, top_k=0, temperature=1.5,
                                   use_cache=use_cache, **kw).tolist())
    assert samples[0] == samples[1] and len({tuple(x) for x in samples[0]}) > 1
    # bf16 load: logits near rins's own bf16 logits, cached greedy equals uncached greedy in bf16
    hb = _load_hf(path, dtype=torch.bfloat16)
    assert next(hb.parameters()).dtype == torch.bfloat16
    with torch.no_grad():
        ref = copy.deepcopy(model).to(torch.bfloat16)(p, r).float()
        got = hb(p, rins_r=r).logits.float()
    assert got.dtype == torch.float32 and (got - ref).abs().max() < 0.05 * ref.abs().max()
    assert hb.generate(input_ids=p, do_sample=False, **kw).tolist() == hb.generate(
        input_ids=p, do_sample=False, use_cache=False, **kw).tolist()
    # save_pretrained -> reload keeps weights, custom code and depth
    hf.set_rins_r(2)
    hf.save_pretrained(tmp_path / "re")
    re = _load_hf(tmp_path / "re")
    assert re.config.rins_r == 2
    with torch.no_grad():
        torch.testing.assert_close(re(p).logits, model(p, 2), atol=1e-5, rtol=1e-5)
    assert re.generate(input_ids=p, do_sample=False, **kw).tolist() == greedy.tolist()


def test_hf_pipeline_text_generation_matches_rins(exported):
    model, path = exported
    tok = transformers.AutoTokenizer.from_pretrained(str(path))
    hf = _load_hf(path)
    pipe = transformers.pipeline("text-generation", model=hf, tokenizer=tok)
    prompt = "w5 w9 w11 w2 w7"
    out = pipe(prompt, max_new_tokens=6, do_sample=False, rins_r=3, return_full_text=False)[0]["generated_text"]
    ids = torch.tensor([tok.encode(prompt)])
    want = model.generate(ids, 6, r=3)[0, ids.shape[1]:].tolist()
    assert out.split() == [f"w{i}" for i in want]


def test_export_special_tokens_travel(tmp_path):
    """rins's own tokenizer: <|endoftext|> is eos/bos/pad in every file; AutoTokenizer needs no custom code;
    batched padding works and generate stops at eos."""
    model = _varied_lm(signature="A^2B")
    p = torch.tensor([[5, 9, 11, 2, 7]])
    free = model.generate(p, 10, r=2)[0, 5:].tolist()
    k = next(i for i in range(2, len(free)) if free[i] not in free[:i] and free[i] not in p[0].tolist())
    eos = free[k]  # the tokenizer calls this id <|endoftext|>: greedy decoding must stop right there
    _write_tokenizer(tmp_path / "tokenizer.json", {eos: "<|endoftext|>"})
    out = export(model, tmp_path / "hf", tokenizer_file=tmp_path / "tokenizer.json")
    ids = {"bos_token_id": eos, "eos_token_id": eos, "pad_token_id": eos}
    assert json.loads((out / "generation_config.json").read_text()) == ids
    smap = json.loads((out / "special_tokens_map.json").read_text())
    assert smap == {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                    "unk_token": "w0"}
    # no custom code: a stock fast tokenizer over tokenizer.json (transformers 5 still reads config.json first,
    # which would ask to run configuration_rins.py unless told either way)
    tok = transformers.AutoTokenizer.from_pretrained(str(out), trust_remote_code=False)
    assert type(tok).__module__.startswith("transformers.")
    assert (tok.eos_token_id, tok.pad_token_id, tok.bos_token_id) == (eos, eos, eos)
    batch = tok(["w5 w9 w11", "w4"], padding=True, return_tensors="pt")
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]  # left padding
    hf = _load_hf(out, rins_r=2)
    assert (hf.config.eos_token_id, hf.config.pad_token_id, hf.config.bos_token_id) == (eos, eos, eos)
    assert hf.generation_config.eos_token_id == eos and hf.generation_config.pad_token_id == eos
    got = hf.generate(input_ids=p, max_new_tokens=10, do_sample=False)[0, 5:].tolist()
    assert got == free[:k + 1]  # stopped at eos
    both = hf.generate(**batch, max_new_tokens=3, do_sample=False)  # no pad_token_id needed
    assert both.shape[0] == 2


_TOKENIZER_SCRIPT = """
import sys, transformers
kw = {} if sys.argv[2] == "bare" else {"trust_remote_code": sys.argv[2] == "True"}
tok = transformers.AutoTokenizer.from_pretrained(sys.argv[1], **kw)
print(type(tok).__module__, tok("w5 w9")["input_ids"])
"""


def _load_tokenizer_closed_stdin(path, how: str):
    """AutoTokenizer in a fresh interpreter with stdin closed, as a script would run it: (stdout, stderr)."""
    import subprocess
    import sys

    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="warning")
    p = subprocess.run([sys.executable, "-c", _TOKENIZER_SCRIPT, str(path), how], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    return p.stdout, p.stderr


def test_export_tokenizer_loads_without_prompt_or_warning(exported):
    """The load line `rins export` prints and the README shows, AutoTokenizer.from_pretrained(EXPORT,
    trust_remote_code=True), asks nothing and warns nothing on every supported transformers (5.x reads
    config.json first: without the flag it would ask to run configuration_rins.py). The tokenizer is stock.
    On 4.x the bare call is silent too (the tokenizer_config's tokenizer_class is read first)."""
    _, path = exported
    hows = ["True"] + (["bare"] if int(transformers.__version__.split(".")[0]) < 5 else [])
    for how in hows:
        out, err = _load_tokenizer_closed_stdin(path, how)
        assert out.startswith("transformers.") and out.rstrip().endswith("[5, 9]"), (how, out)  # stock, no prompt
        assert "custom code" not in err and "[y/N]" not in err and "model of type" not in err, (how, err)
        assert "warn" not in err.lower(), (how, err)


def test_convert_and_export_errors_are_one_line(tmp_path, capsys):
    """Unsupported sources and bad paths end in the CLI's one-line ``error:`` with exit code 2, not a traceback."""
    from rins.cli import main as cli

    common = dict(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  max_position_embeddings=64)
    T = transformers
    T.LlamaForCausalLM(T.LlamaConfig(**common)).save_pretrained(tmp_path / "rope")
    conf = json.loads((tmp_path / "rope" / "config.json").read_text())
    conf["rope_scaling"] = {"rope_type": "linear", "factor": 2.0}
    (tmp_path / "rope" / "config.json").write_text(json.dumps(conf))
    T.LlamaForCausalLM(T.LlamaConfig(head_dim=16, **common)).save_pretrained(tmp_path / "head_dim")
    capsys.readouterr()
    cases = [(["convert", str(tmp_path / "rope"), "--out", str(tmp_path / "o1")], "RoPE scaling 'linear'"),
             (["convert", str(tmp_path / "head_dim"), "--out", str(tmp_path / "o2")], "head_dim=16"),
             (["convert", str(tmp_path / "missing"), "--out", str(tmp_path / "o3")], "no config.json"),
             (["export", str(tmp_path / "missing"), "--out", str(tmp_path / "o4")], "not a run directory"),
             (["export", str(tmp_path / "rope"), "--out", str(tmp_path / "o5")], "no complete checkpoint")]
    for argv, msg in cases:
        assert cli(argv) == 2, argv
        err = capsys.readouterr().err  # may also hold transformers' weight-loading progress bar
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert "Traceback" not in err and len(errors) == 1 and msg in errors[0], (argv, err)


def test_converted_run_is_first_class(tmp_path, corpus, cache, capsys):
    """rins eval / generate / export / train --init all take a converted run; --init's config.json records the
    architecture actually trained (the initialising model's), not the preset's."""
    from rins.cli import main as cli

    src = hf_model("qwen2")
    src.save_pretrained(tmp_path / "hf")
    _write_tokenizer(tmp_path / "hf" / "tokenizer.json", {1: "<s>", 2: "</s>"})
    run = tmp_path / "run"
    assert cli(["convert", str(tmp_path / "hf"), "--out", str(run)]) == 0
    capsys.readouterr()
    assert cli(["generate", str(run), "--prompt", "w5 w9", "--max-new-tokens", "4", "--r", "1",
                "--temperature", "0"]) == 0
    want = src.generate(torch.tensor([[5, 9]]), max_new_tokens=4, do_sample=False, pad_token_id=0)[0].tolist()
    from tokenizers import Tokenizer

    assert capsys.readouterr().out.strip() == Tokenizer.from_file(str(run / "tokenizer.json")).decode(want)
    cfg = json.loads((run / "config.json").read_text())
    cfg["data"].update(corpus=str(corpus), cache_dir=str(cache))  # score the converted model on local text
    (run / "config.json").write_text(json.dumps(cfg))
    assert cli(["eval", str(run), "--r", "1,2", "--batches", "1"]) == 0
    assert run_verb("export", [str(run), "--out", str(tmp_path / "exp")]) == 0
    with (pytest.warns(UserWarning, match="keeping the initialising model's max_seq_len=64"),
          pytest.warns(UserWarning, match="keeping the initialising model's d_model=32")):
        assert cli(["train", "--preset", "tiny", "--init", str(run), "--signature", "A^2B", "--set",
                    "model.d_model=64", "--set", "budget.steps=2", "--set", f"data.corpus={corpus}", "--set",
                    f"data.cache_dir={cache}", "--name", "ft", "--out-dir", str(tmp_path)]) == 0
    trained = json.loads((tmp_path / "ft" / "config.json").read_text())["model"]
    assert (trained["d_model"], trained["n_layers"], trained["signature"]) == (32, 4, "A^2B")
    assert load_model(tmp_path / "ft").config.d_model == 32
