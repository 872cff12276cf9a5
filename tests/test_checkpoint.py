"""Checkpoint helpers: tied-weight detection, stored once and loaded back under either name."""

import torch
from conftest import tiny_lm

from rins.checkpoint import load_checkpoint, load_state_into, save_checkpoint, tied_aliases, unique_state


def test_tied_aliases_of_a_tied_and_an_untied_lm():
    assert tied_aliases(tiny_lm()) == {"head.weight": "embed.weight"}
    assert tied_aliases(tiny_lm(tie_embeddings=False)) == {}
    w = torch.randn(3, 4)
    # detached copies of one tensor (what state_dict() returns) share its memory
    assert tied_aliases({"a": w, "b": w.detach(), "c": w.clone()}) == {"b": "a"}


def test_tied_head_is_stored_once_and_loads_under_either_name(tmp_path):
    m = tiny_lm()
    state = unique_state(m)
    assert "head.weight" not in state and "embed.weight" in state
    save_checkpoint(tmp_path, 1, m)
    weights, _, _ = load_checkpoint(tmp_path)
    fresh = tiny_lm(seed=1)
    load_state_into(fresh, weights)
    torch.testing.assert_close(fresh.head.weight, m.embed.weight)
    # a checkpoint that names the head instead of the embedding loads too
    renamed = {("head.weight" if k == "embed.weight" else k): v for k, v in weights.items()}
    load_state_into(tiny_lm(seed=2), renamed)
