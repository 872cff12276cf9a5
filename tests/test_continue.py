"""Continue pretraining a converted Hugging Face model with `rins train --init RUN_DIR`."""

import os
import random

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

from rins.checkpoint import load_model  # noqa: E402
from rins.cli import run_verb  # noqa: E402
from rins.config import load_config  # noqa: E402
from rins.data import train_tokenizer  # noqa: E402
from rins.train import train  # noqa: E402

WORDS = "the king queen castle sword love night day speak hear thou art my lord lady good".split()


def test_train_init_from_converted_hf_model(tmp_path):
    rng = random.Random(0)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(4):
        (corpus / f"d{i}.txt").write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(10))
                                                    for _ in range(200)))
    hf = tmp_path / "hf"
    hf.mkdir()
    tok = train_tokenizer([p.read_text() for p in corpus.iterdir()], vocab_size=300, path=hf / "tokenizer.json")
    cfg = transformers.LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=64)
    torch.manual_seed(0)
    src = transformers.LlamaForCausalLM(cfg).eval()
    src.save_pretrained(hf)
    assert run_verb("convert", [str(hf), "--signature", "A^2B", "--out", str(tmp_path / "conv")]) == 0

    run = load_config("tiny", None, [f'data.corpus="{corpus}"', f'data.cache_dir="{tmp_path}/cache"',
                                     f'out_dir="{tmp_path}"', 'name="cont"', "progress=false",
                                     'model.adapters="round"', "model.signature=A^2B", "budget.steps=2",
                                     "optim.lr=1e-12", "optim.weight_decay=0"])
    with pytest.warns(UserWarning, match="keeping the initialising model's max_seq_len=64"):
        s = train(run, init_from=str(tmp_path / "conv"), quiet=True)
    assert s["complete"] and s["val_loss"] > 0
    cont = load_model(tmp_path / "cont")
    # the converted architecture and tokenizer were used, with the new recursion options on top
    assert cont.config.d_model == 32 and cont.config.n_kv_heads == 2 and cont.config.adapters == "round"
    assert (tmp_path / "cont" / "tokenizer.json").read_text() == (hf / "tokenizer.json").read_text()
    x = torch.randint(0, tok.get_vocab_size(), (2, 10))
    torch.testing.assert_close(cont(x, r=1), src(x).logits, atol=1e-4, rtol=1e-4)
