"""Adaptive depth per token (rins.adaptive): exit rules, their limits, cached == uncached, counted compute."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from rins.adaptive import ExitRule, ExitStats, parse_adaptive
from tests.conftest import tiny_lm

CONFIGS = [
    dict(signature="A^3B", adapters="round"),
    dict(signature="AB^2C", n_layers=6, adapters="depth"),
    dict(signature="A^3B", kv_share=True),
    dict(signature="A^3B", input_injection="add", p_skip=0.5, adapters="round", adapter_rank=4),
]


def _model(**kw):
    m = tiny_lm(**kw)
    with torch.no_grad():  # zero-initialised adapters would make the rounds' adapters identical: randomise them
        for name, p in m.named_parameters():
            if "adapters" in name and (p == 0).all():
                p.normal_(0.0, 0.1)
    return m


def _mixed_rule(m, x, rule: str) -> tuple[str, ExitStats]:
    """A threshold of ``rule`` at which about half the tokens exit after round 1 (bisection in log space)."""
    lo, hi = -12.0, 2.0
    for _ in range(40):
        mid = (lo + hi) / 2
        s = ExitStats()
        m(x, exit_rule=f"{rule}={10 ** mid!r}", exit_stats=s)
        frac = s.rounds_hist[0] / s.tokens
        if 0.25 <= frac <= 0.75:
            return f"{rule}={10 ** mid!r}", s
        # more early exits with a larger kl/hidden threshold, fewer with a larger confidence one
        if (frac < 0.25) == (rule != "confidence"):
            lo = mid
        else:
            hi = mid
    raise AssertionError(f"no threshold of {rule} gives mixed exits")


def test_parse_adaptive_and_its_errors():
    assert parse_adaptive("kl=0.01,0.1") == [ExitRule("kl", 0.01), ExitRule("kl", 0.1)]
    assert parse_adaptive("KL=inf; hidden=0.2") == [ExitRule("kl", math.inf), ExitRule("hidden", 0.2)]
    assert str(ExitRule("confidence", 0.9)) == "confidence=0.9"
    with pytest.raises(ValueError, match="unknown exit rule 'entropy'.*kl, hidden, confidence"):
        parse_adaptive("entropy=0.1")
    with pytest.raises(ValueError, match=">= 0"):
        parse_adaptive("kl=-0.1")
    with pytest.raises(ValueError, match=">= 0"):
        parse_adaptive("kl=nan")
    with pytest.raises(ValueError, match="no threshold.*kl=0.01"):
        parse_adaptive("kl")
    with pytest.raises(ValueError, match="'x' of kl= is not a number"):
        parse_adaptive("kl=0.1,x")
    with pytest.raises(ValueError, match="empty"):
        parse_adaptive(" ")
    m = tiny_lm(signature="A^2B")
    x = torch.randint(0, 61, (1, 5))
    with pytest.raises(ValueError, match="one exit rule"):
        m(x, exit_rule="kl=0.1,0.2")
    with pytest.raises(ValueError, match="has no exponent"):
        tiny_lm(signature="AB")(x, exit_rule="kl=0.1")
    with pytest.raises(ValueError, match="degree-1"):
        tiny_lm(signature="A^2B", degree=2, n_layers=8)(x, exit_rule="kl=0.1")
    with pytest.raises(ValueError, match="model.eval"):
        m.train()(x, exit_rule="kl=0.1")


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_zero_threshold_is_fixed_r_max_and_infinite_is_r1(kw):
    m = _model(**kw)
    x = torch.randint(0, 61, (2, 12))
    R, T = m.r_max, x.shape[1]
    full, one = m(x), m(x, r=1)
    assert (full - one).abs().max() > 1e-3  # the depths differ, so the equalities below say something
    head = 2 * m.config.d_model * m.config.vocab_size
    for text, ref, rounds in (("kl=0", full, R), ("hidden=0", full, R), ("confidence=2", full, R),
                              ("kl=inf", one, 1), ("hidden=inf", one, 1), ("confidence=0", one, 1)):
        s = ExitStats()
        out = m(x, exit_rule=text, exit_stats=s)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-5, msg=text)
        assert s.mean_rounds == rounds and s.tokens == x.numel()
        # FLOPs per token: the fixed depth's, plus 2·d·V per head read (KL also reads the group's input)
        reads = {"kl": 1 + min(rounds, R - 1), "hidden": 0, "confidence": min(rounds, R - 1)}[text.split("=")[0]]
        assert s.head_reads == reads * x.numel()
        assert s.flops_per_token == pytest.approx(m.flops_per_token(T, r=rounds) + reads * head)
    # deeper caps work too: hidden=0 at r=4 is fixed r=4
    torch.testing.assert_close(m(x, r=4, exit_rule="hidden=0"), m(x, r=4), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_cached_adaptive_generation_equals_uncached_adaptive_evaluation(kw):
    m = _model(**kw)
    x = torch.randint(0, 61, (2, 16))
    for rule in ("kl", "hidden", "confidence"):
        text, s_full = _mixed_rule(m, x, rule)[0], ExitStats()
        full = m(x, exit_rule=text, exit_stats=s_full)
        cache, s = m.new_cache(2, 16), ExitStats()
        parts, rounds = [m(x[:, :5], cache=cache, exit_rule=text, exit_stats=s)], [s.last_rounds]
        for t in range(5, 16):  # a prompt, then one token at a time
            parts.append(m(x[:, t:t + 1], cache=cache, exit_rule=text, exit_stats=s))
            rounds.append(s.last_rounds)
        torch.testing.assert_close(torch.cat(parts, 1), full, rtol=0, atol=1e-5, msg=text)
        assert torch.equal(torch.cat(rounds, 1), s_full.last_rounds), text
        assert s.rounds_hist == s_full.rounds_hist and s.flops < s_full.flops  # shorter contexts: fewer FLOPs
        if not m.config.kv_share:  # the documented fill: an exited token's later slots hold its last round's K/V
            plan = m.plan()
            L = (len(plan.layers) - plan.rounds.count(-1)) // plan.r
            first = plan.rounds.index(0)
            ex = s_full.last_rounds == 1
            for k in range(1, plan.r):
                for j in range(L):
                    a, b = cache.k[first + j], cache.k[first + k * L + j]
                    assert torch.equal(a.transpose(1, 2)[ex], b.transpose(1, 2)[ex])


def test_loss_path_and_generate_match_the_logits():
    m = _model(signature="A^3B", adapters="round")
    x = torch.randint(0, 61, (2, 16))
    text, _ = _mixed_rule(m, x, "hidden")
    y = torch.randint(0, 61, (2, 16))
    logits = m(x, exit_rule=text)
    loss = m(x, targets=y, exit_rule=text)
    assert loss.item() == pytest.approx(F.cross_entropy(logits.flatten(0, 1), y.flatten()).item(), abs=1e-5)
    a = m.generate(x[:, :4], 10, exit_rule=text)
    b = m.generate(x[:, :4], 10, exit_rule=text, use_cache=False)
    assert torch.equal(a, b)
    assert torch.equal(m.generate(x[:, :4], 10, exit_rule="hidden=0"), m.generate(x[:, :4], 10))
    assert torch.equal(m.generate(x[:, :4], 10, exit_rule="hidden=inf"), m.generate(x[:, :4], 10, r=1))


def test_batch1_generation_skips_the_rounds_of_exited_tokens():
    """A token that exits runs no block of the later rounds: the recursed layer runs once per executed round."""
    m = _model(signature="A^3B", adapters="round")
    x = torch.randint(0, 61, (1, 16))
    text, _ = _mixed_rule(m, x, "hidden")
    calls: list[int] = []
    hook = m.blocks[0].register_forward_hook(lambda *_: calls.append(1))
    cache, s = m.new_cache(1, 16), ExitStats()
    m(x[:, :4], cache=cache, exit_rule=text, exit_stats=s)
    per_step = []
    for t in range(4, 16):
        before = len(calls)
        m(x[:, t:t + 1], cache=cache, exit_rule=text, exit_stats=s)
        per_step.append((len(calls) - before, int(s.last_rounds[0, 0])))
    hook.remove()
    assert all(c == rounds for c, rounds in per_step), per_step  # block calls == the token's own rounds
    assert min(r for _, r in per_step) < m.r_max  # some step exited early and skipped compute


@pytest.fixture(scope="module")
def run(corpus, cache, tmp_path_factory):
    from rins.config import load_config
    from rins.train import train

    out = tmp_path_factory.mktemp("runs")
    cfg = load_config("tiny", None, [f'data.corpus="{corpus}"', f'data.cache_dir="{cache}"', f'out_dir="{out}"',
                                     'name="ad"', "progress=false", "budget.steps=8", 'model.signature="A^2B"'])
    train(cfg, quiet=True)
    return out / "ad"


def test_rins_eval_adaptive_rows_next_to_every_fixed_r(run, capsys):
    from rins.cli import main as cli

    assert cli(["eval", str(run), "--r", "1,2", "--adaptive", "hidden=0,inf", "--adaptive", "kl=0.01",
                "--batches", "2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    fixed = {row["r"]: row for row in res["results"]}
    rows = {a["rule"]: a for a in res["adaptive"]}
    assert list(rows) == ["hidden=0", "hidden=inf", "kl=0.01"]
    for rule, r in (("hidden=0", 2), ("hidden=inf", 1)):
        assert rows[rule]["loss"] == pytest.approx(fixed[r]["loss"], rel=1e-5)
        assert rows[rule]["bpb"] == pytest.approx(fixed[r]["bpb"], rel=1e-5)
        assert rows[rule]["mean_rounds"] == fixed[r]["mean_rounds"] == r
        assert rows[rule]["flops_per_token"] == fixed[r]["flops_per_token"]  # no head reads for "hidden"
    kl = rows["kl=0.01"]
    assert 1 <= kl["mean_rounds"] <= 2 and kl["head_reads_per_token"] >= 2 and sum(kl["rounds_hist"]) == res["tokens"]
    assert cli(["eval", str(run), "--adaptive", "confidence=0.5", "--batches", "1"]) == 0
    text = capsys.readouterr().out
    assert "confidence=0.5" in text and "MFLOP/token" in text and "r=3" in text
    for bad, msg in (("entropy=0.1", "unknown exit rule 'entropy'"), ("kl=-1", ">= 0"), ("kl=nan", ">= 0"),
                     ("kl", "no threshold")):
        with pytest.raises(SystemExit, match=f"--adaptive: .*{msg}"):
            cli(["eval", str(run), "--adaptive", bad])


def test_rins_generate_adaptive(run, capsys):
    from rins.cli import main as cli

    args = ["generate", str(run), "--prompt", "the king", "--max-new-tokens", "12", "--temperature", "0", "--no-stream"]
    assert cli(args) == 0
    plain = capsys.readouterr().out
    assert cli(args + ["--adaptive", "hidden=0"]) == 0  # never exits early: the fixed trained depth
    out = capsys.readouterr()
    assert out.out == plain and "2.00 rounds per token" in out.err
    assert cli(args + ["--adaptive", "kl=1e9"]) == 0
    assert "1.00 rounds per token" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="one exit rule"):
        cli(args + ["--adaptive", "kl=0.1,0.2"])
    with pytest.raises(SystemExit, match="unknown exit rule"):
        cli(args + ["--adaptive", "depth=2"])


def test_frontier_interpolates_between_fixed_depths():
    from rins.adaptive_report import frontier_gap

    fixed = [(3.0, 2.7), (1.0, 3.0), (2.0, 2.8)]
    assert frontier_gap(fixed, 1.5) == pytest.approx(2.9)
    assert frontier_gap(fixed, 3.0) == pytest.approx(2.7)
    assert frontier_gap(fixed, 0.5) is None and frontier_gap(fixed, 3.5) is None  # no extrapolation
    # a deeper r that is worse than a shallower one: at its cost fixed depth still offers the shallower one's loss
    rising = [(1.0, 3.0), (2.0, 2.5), (3.0, 2.8)]
    assert frontier_gap(rising, 2.5) == pytest.approx(2.5) and frontier_gap(rising, 3.0) == pytest.approx(2.5)
    assert frontier_gap(rising, 1.5) == pytest.approx(2.75)


def test_a_rule_that_costs_more_than_r_max_is_compared_with_the_best_fixed_depth(tmp_path):
    """Past the fixed-depth range (head reads make a rule dearer than r_max) the table says whether the rule is
    dominated (more FLOPs and a higher loss than a fixed depth) or below every fixed depth, by how much."""
    from rins.adaptive_report import adaptive_section

    ev = tmp_path / "eval.json"
    ev.write_text(json.dumps({"run": str(tmp_path / "A2B-s0"), "data": "val", "results": [
        {"r": 1, "flops_per_token": 1e6, "loss": 3.0}, {"r": 2, "flops_per_token": 2e6, "loss": 2.5}], "adaptive": [
        {"rule": "kl=0.1", "r_max": 2, "flops_per_token": 2.5e6, "loss": 2.6, "mean_rounds": 1.9},
        {"rule": "kl=0.01", "r_max": 2, "flops_per_token": 2.6e6, "loss": 2.4, "mean_rounds": 2.0}]}))
    md, data = adaptive_section([ev], tmp_path)
    assert "| kl=0.1 | 2.6000 | 1.90 | 2.500 | more FLOPs than r = 2; dominated: +0.1000 vs the best fixed depth" in md
    assert "| kl=0.01 | 2.4000 | 2.00 | 2.600 | more FLOPs than r = 2; below every fixed depth: -0.1000 vs" in md
    assert data["groups"][0]["rules"]["kl=0.1"]["beyond"] == pytest.approx(0.1)


def test_rins_report_draws_loss_against_flops_for_adaptive_depth(run, tmp_path, capsys):
    from rins.cli import main as cli

    assert cli(["eval", str(run), "--adaptive", "hidden=0,0.3,inf", "--adaptive", "kl=0.001", "--batches", "2",
                "--json"]) == 0
    ev = tmp_path / "eval.json"
    ev.write_text(capsys.readouterr().out)
    assert cli(["report", str(run), "--out", str(tmp_path / "rep"), "--adaptive-evals", str(ev)]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Adaptive depth per token: loss against compute" in md and "Verdict:" in md.split("Adaptive depth")[1]
    data = json.loads((tmp_path / "rep" / "report.json").read_text())["adaptive"]["groups"][0]
    assert (tmp_path / "rep" / data["png"]).stat().st_size > 10_000
    # the limits sit on the fixed-depth frontier: hidden=0 is fixed r_max, hidden=inf fixed r = 1
    assert abs(data["rules"]["hidden=0"]["delta"]) < 1e-6 and abs(data["rules"]["hidden=inf"]["delta"]) < 1e-6
    assert data["rules"]["hidden=0"]["flops_per_token"] == data["fixed"]["2"]["flops_per_token"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"run": str(run), "results": []}))
    assert cli(["report", str(run), "--out", str(tmp_path / "rep2"), "--adaptive-evals", str(bad)]) == 2
    assert "no adaptive rows" in capsys.readouterr().err
