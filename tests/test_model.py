"""The recursive LM: shapes, recursion, stochastic depth, adapters, FLOPs, KV cache, generation."""

import pytest
import torch
from conftest import tiny_config, tiny_lm
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from rins import LMConfig, RecursiveLM, SignatureError, sample_depth
from rins.model import depth_distribution


def test_forward_shapes_and_any_r():
    m = tiny_lm(signature="A^2B")
    x = torch.randint(0, 61, (2, 10))
    for r in (None, 1, 2, 3, 7):
        assert m(x, r=r).shape == (2, 10, 61)
    assert not torch.allclose(m(x, r=1), m(x, r=2))


def test_r_equals_trained_exponent_by_default():
    m = tiny_lm(signature="A^3B")
    x = torch.randint(0, 61, (2, 8))
    torch.testing.assert_close(m(x), m(x, r=3))


def test_r_without_exponent_is_an_error():
    m = tiny_lm(signature="AB")
    with pytest.raises(SignatureError, match="no recursion exponent"):
        m(torch.zeros(1, 4, dtype=torch.long), r=2)


def test_r1_of_rins_equals_baseline_with_same_weights():
    base, rec = tiny_lm(signature="AB"), tiny_lm(signature="A^2B")
    rec.load_state_dict(base.state_dict())
    x = torch.randint(0, 61, (2, 9))
    torch.testing.assert_close(rec(x, r=1), base(x))


@pytest.mark.parametrize("sig", ["AB", "A^2B", "A^3B", "(AB)^2", "AB^2C", "ABCCBA", "AABBCC"])
def test_parameter_count_is_identical_across_signatures(sig):
    n_layers = 6
    ref = tiny_lm(signature="AB", n_layers=n_layers).num_parameters()
    assert tiny_lm(signature=sig, n_layers=n_layers).num_parameters() == ref


@pytest.mark.parametrize("adapters", ["round", "depth"])
@pytest.mark.parametrize("rank", [None, 4])
def test_zero_initialised_adapters_do_not_change_logits(adapters, rank):
    plain = tiny_lm(signature="A^2B")
    ad = tiny_lm(signature="A^2B", adapters=adapters, adapter_rank=rank)
    missing, unexpected = ad.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all("adapters" in k for k in missing)
    x = torch.randint(0, 61, (2, 9))
    for r in (1, 2, 3):
        torch.testing.assert_close(ad(x, r=r), plain(x, r=r))
    assert 0 < ad.adapter_fraction() < 0.2
    assert ad.num_parameters(exclude_adapters=True) == plain.num_parameters()


def test_adapters_change_output_once_trained_and_per_round():
    m = tiny_lm(signature="A^2B", adapters="round")
    x = torch.randint(0, 61, (1, 6))
    before = m(x, r=2)
    with torch.no_grad():
        m.stack.adapters[1].up.weight.normal_()
    torch.testing.assert_close(m(x, r=1), tiny_lm(signature="A^2B", adapters="round")(x, r=1))
    assert not torch.allclose(m(x, r=2), before)


def test_adapter_fraction_below_one_percent_at_realistic_width():
    m = RecursiveLM(LMConfig(vocab_size=8192, n_layers=6, d_model=256, n_heads=4, signature="A^2B",
                             adapters="round", adapter_rank=16))
    assert m.adapter_fraction() < 0.01


def test_bad_config_values():
    with pytest.raises(ValueError, match="p_skip"):
        tiny_config(signature="A^2B", p_skip=1.5)
    with pytest.raises(ValueError, match="adapters"):
        tiny_config(signature="A^2B", adapters="bogus")
    with pytest.raises(SignatureError, match="no recursion exponent"):
        tiny_config(signature="AB", adapters="round")
    with pytest.raises(ValueError, match="divisible by n_heads"):
        tiny_config(d_model=30)
    with pytest.raises(SignatureError):
        tiny_config(signature="A^2X(")


def test_depth_sampler_is_seeded_by_seed_and_step():
    a = [sample_depth(4, 0.5, seed=3, step=s) for s in range(200)]
    b = [sample_depth(4, 0.5, seed=3, step=s) for s in range(200)]
    c = [sample_depth(4, 0.5, seed=4, step=s) for s in range(200)]
    assert a == b and a != c
    assert set(a) <= {1, 2, 3, 4}
    mean = sum(a) / len(a)
    assert abs(mean - (1 + 3 * 0.5)) < 0.3  # E[r] = 1 + (r_max-1)(1-p)
    assert set(sample_depth(3, 0.0, 0, s) for s in range(20)) == {3}
    assert set(sample_depth(3, 1.0, 0, s) for s in range(20)) == {1}
    dist = depth_distribution(3, 0.5)
    assert dist == pytest.approx({1: 0.25, 2: 0.5, 3: 0.25})


def test_training_forward_uses_drawn_depth():
    m = tiny_lm(signature="A^3B", p_skip=0.5, depth_seed=7).train()
    x = torch.randint(0, 61, (2, 8))
    for step in range(6):
        r = sample_depth(3, 0.5, 7, step)
        torch.testing.assert_close(m(x, step=step), m(x, r=r))
    m.eval()
    torch.testing.assert_close(m(x), m(x, r=3))  # eval: the trained exponent


def test_per_sequence_depth_matches_per_sequence_forward():
    m = tiny_lm(signature="A^3B", p_skip=0.5, per_sequence_depth=True, adapters="depth").train()
    with torch.no_grad():
        for a in m.stack.adapters:
            a.up.weight.normal_(0, 0.1)
    x = torch.randint(0, 61, (6, 8))
    depths = sample_depth(3, 0.5, 0, 11, n=6)
    out = m(x, step=11)
    for i, r in enumerate(depths):
        torch.testing.assert_close(out[i : i + 1], m(x[i : i + 1], r=r), atol=1e-5, rtol=1e-5)


def test_activation_checkpointing_same_gradients():
    x = torch.randint(0, 61, (2, 8))
    grads = []
    for ckpt in (False, True):
        m = tiny_lm(signature="A^2B", activation_checkpointing=ckpt).train()
        m.loss(x, x).backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1])


def _measured_flops(m: RecursiveLM, T: int, r=None, training=False) -> float:
    x = torch.randint(0, m.config.vocab_size, (2, T))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        if training:
            m.train()
            m.loss(x, x, r=r).backward()
        else:
            m(x, r=r)
    return fc.get_total_flops() / x.numel()


@pytest.mark.parametrize(
    "kw",
    [
        dict(signature="AB"),
        dict(signature="A^2B"),
        dict(signature="A^3B"),
        dict(signature="(AB)^2"),
        dict(signature="AB^2C", n_layers=6),
        dict(signature="AAB", degree=2, n_layers=8),
        dict(signature="A^2B", adapters="round"),
        dict(signature="A^2B", adapters="depth", adapter_rank=4),
        dict(signature="A^3B", kv_share=True),
        dict(signature="A^2B", n_kv_heads=2, mlp="gelu", norm="layernorm", pos_embedding="learned",
             qkv_bias=True, proj_bias=True, tie_embeddings=False),
    ],
)
def test_flops_match_flop_counter(kw):
    m = tiny_lm(**kw)
    T = 16
    for r in ([None, 1, 3] if m.r_max else [None]):
        analytic = m.flops_per_token(T, r=r)
        measured = _measured_flops(m, T, r=r)
        assert analytic == pytest.approx(measured, rel=0.02), (kw, r)


def test_training_flops_are_three_times_forward_and_match_counter():
    m = tiny_lm(signature="A^2B")
    T = 16
    assert m.flops_per_token(T, training=True) == 3 * m.flops_per_token(T)
    # backward of the tied embedding is an index_add (not counted by either), so compare within 2%
    assert m.flops_per_token(T, training=True) == pytest.approx(_measured_flops(m, T, training=True), rel=0.02)


def test_recursion_costs_per_executed_layer():
    m1, m2 = tiny_lm(signature="AB"), tiny_lm(signature="A^2B")
    head = 2 * 32 * 61
    per_layer = (m1.flops_per_token(16) - head) / 4
    assert m2.flops_per_token(16) == pytest.approx(head + 6 * per_layer)


def test_expected_flops_for_stochastic_depth():
    m = tiny_lm(signature="A^3B", p_skip=0.5)
    exp = m.flops_per_token(16, expected=True)
    manual = 0.25 * m.flops_per_token(16, r=1) + 0.5 * m.flops_per_token(16, r=2) + 0.25 * m.flops_per_token(16, r=3)
    assert exp == pytest.approx(manual)
    assert m.flops_per_token(16, r=1) < exp < m.flops_per_token(16, r=3)


def _greedy_uncached(m, x, n, r):
    out = x
    for _ in range(n):
        out = torch.cat([out, m(out, r=r)[:, -1].argmax(-1, keepdim=True)], 1)
    return out


@pytest.mark.parametrize(
    "sig,rs,kw",
    [
        ("A^2B", (1, 2, 3), {}),
        ("(AB)^2", (1, 2, 3), {}),
        ("AB^2C", (1, 2, 3), {"n_layers": 6}),
        ("A^2B", (1, 3), {"kv_share": True}),
        ("A^2B", (2,), {"adapters": "round", "n_kv_heads": 2}),
        ("A^2B", (2,), {"pos_embedding": "learned", "mlp": "gelu", "norm": "layernorm"}),
    ],
)
def test_cached_greedy_generation_equals_uncached(sig, rs, kw):
    m = tiny_lm(signature=sig, **kw)
    x = torch.randint(0, 61, (2, 5))
    for r in rs:
        cached = m.generate(x, 12, r=r)
        assert torch.equal(cached, _greedy_uncached(m, x, 12, r)), r
        assert torch.equal(cached, m.generate(x, 12, r=r, use_cache=False))


def test_cache_has_one_slot_per_application_and_kv_share_saves_memory():
    m = tiny_lm(signature="A^3B")
    c = m.new_cache(1, 16, r=3)
    assert len(c.k) == m.plan(3).n_applications == 8
    s = tiny_lm(signature="A^3B", kv_share=True)
    assert len(s.new_cache(1, 16, r=3).k) == 4
    assert s.kv_cache_bytes(1, 16, r=3) * 2 == m.kv_cache_bytes(1, 16, r=3)
    assert s.new_cache(1, 16, r=3).nbytes() == s.kv_cache_bytes(1, 16, r=3)


def test_batched_left_padded_generation_equals_per_sequence():
    m = tiny_lm(signature="A^2B")
    prompts = [torch.randint(1, 61, (n,)) for n in (3, 7, 5)]
    L = max(len(p) for p in prompts)
    x = torch.zeros(len(prompts), L, dtype=torch.long)
    am = torch.zeros_like(x)
    for i, p in enumerate(prompts):
        x[i, L - len(p):] = p
        am[i, L - len(p):] = 1
    batched = m.generate(x, 6, r=2, attention_mask=am)
    for i, p in enumerate(prompts):
        single = m.generate(p[None], 6, r=2)
        assert torch.equal(batched[i, L:], single[0, len(p):])


def test_sampling_with_generator_is_reproducible():
    m = tiny_lm(signature="A^2B")
    x = torch.randint(0, 61, (1, 4))
    a = m.generate(x, 8, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(1))
    b = m.generate(x, 8, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_input_injection_re_adds_the_group_input_each_round():
    plain = tiny_lm(signature="AB^2C", n_layers=3)
    inj = tiny_lm(signature="AB^2C", n_layers=3, input_injection="add")
    inj.load_state_dict(plain.state_dict())
    x = torch.randint(0, 61, (2, 7))
    torch.testing.assert_close(inj(x, r=1), plain(x, r=1))  # one round: nothing to re-inject
    assert not torch.allclose(inj(x, r=2), plain(x, r=2))
    cached = inj.generate(x[:, :3], 6, r=3)
    assert torch.equal(cached, _greedy_uncached(inj, x[:, :3], 6, 3))
    with pytest.raises(ValueError, match="input_injection"):
        tiny_config(signature="A^2B", input_injection="concat")


def test_compiled_blocks_do_not_recompile_when_r_varies():
    import torch._dynamo

    torch._dynamo.reset()
    m = tiny_lm(signature="A^2B")
    for blk in m.blocks:
        blk.compile(backend="eager", dynamic=False)
    x = torch.randint(0, 61, (2, 8))
    m(x, r=2)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for r in (1, 3, 4, 2):
        m(x, r=r)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs
    torch._dynamo.reset()


@pytest.mark.parametrize("kw", [{}, {"n_kv_heads": 2}])
def test_eager_attention_equals_sdpa(kw):
    """attn_impl="eager" gives SDPA's logits: causal, left-padded masks, GQA, and cached generation."""
    sdpa = tiny_lm(signature="A^2B", attn_impl="sdpa", **kw)
    eager = tiny_lm(signature="A^2B", attn_impl="eager", **kw)
    eager.load_state_dict(sdpa.state_dict())
    x = torch.randint(0, 61, (3, 11))
    torch.testing.assert_close(eager(x), sdpa(x), atol=1e-5, rtol=1e-5)
    am = torch.ones(3, 11, dtype=torch.long)
    am[0, :4] = 0
    am[2, :1] = 0
    got, want = eager(x, attention_mask=am), sdpa(x, attention_mask=am)
    torch.testing.assert_close(got[am.bool()], want[am.bool()], atol=1e-5, rtol=1e-5)
    assert torch.equal(eager.generate(x[:, :4], 6, r=3), sdpa.generate(x[:, :4], 6, r=3))
    with pytest.raises(ValueError, match="attn_impl"):
        tiny_config(attn_impl="flash")


def test_auto_attention_takes_the_eager_path_for_bf16_cpu_forwards(monkeypatch):
    """attn_impl="auto": bf16 forwards on CPU without a KV cache use the eager path, eager or compiled (no
    SDPA call / no SDPA op in the traced graph); float32 and cached decoding keep SDPA; results agree."""
    import torch._dynamo
    import torch.nn.functional as F

    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    x = torch.randint(0, 61, (2, 8))

    def run(impl: str, bf16: bool) -> torch.Tensor:
        calls.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return tiny_lm(signature="A^2B", attn_impl=impl)(x).float()

    y_auto = run("auto", True)
    assert not calls
    y_sdpa = run("sdpa", True)
    assert calls
    torch.testing.assert_close(y_auto, y_sdpa, atol=0.05, rtol=0.05)
    run("auto", False)
    assert calls  # float32: SDPA
    calls.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tiny_lm(signature="A^2B").generate(x[:, :3], 2)
    assert calls  # KV-cached decoding: SDPA

    def sdpa_in_graphs(bf16: bool) -> list[bool]:
        torch._dynamo.reset()
        seen: list[bool] = []

        def backend(gm, _inputs):
            seen.append(any("scaled_dot_product" in str(n.target) for n in gm.graph.nodes))
            return gm.forward

        m = tiny_lm(signature="A^2B")
        for blk in m.blocks:
            blk.compile(backend=backend, dynamic=False)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            m(x)
        torch._dynamo.reset()
        return seen

    seen = sdpa_in_graphs(True)
    assert seen and not any(seen)
    seen = sdpa_in_graphs(False)
    assert seen and all(seen)


def test_training_depth_is_the_drawn_depth():
    per_seq = tiny_lm(signature="A^3B", p_skip=0.5, per_sequence_depth=True, depth_seed=7).stack
    draws = sample_depth(3, 0.5, 7, 5, 4)
    assert per_seq.training_depth(5, 4) == (max(draws), draws)
    per_step = tiny_lm(signature="A^3B", p_skip=0.5, depth_seed=7).stack
    assert per_step.training_depth(5, 4) == (sample_depth(3, 0.5, 7, 5), None)
    assert tiny_lm(signature="A^3B").stack.training_depth(5, 4) == (None, None)  # not drawn: trained r
    assert tiny_lm(signature="AB").stack.training_depth(5, 4) == (None, None)
