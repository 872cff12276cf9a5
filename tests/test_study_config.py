"""The long-training study's TOML meets what it is for, and the demo's shape follows it.

configs/study-long.toml must train the small size to >= 50 tokens per parameter and the next to >= 20 at
the largest budget, compare the six layouts over >= 4 budgets spanning >= 1.5 decades, and give every
layout >= 3 seeds at the largest budget (error bars). The demo uses the study's size S.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from conftest import load_script

from rins.config import TrainConfig, load_config
from rins.demo import DEMO_PRESET, DEMO_SHAPE, DEMO_VARIANTS, demo_overrides
from rins.sweep import load_sweep
from rins.tasks import get_task

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "configs" / "study-long.toml"
LAYOUTS = {"AB", "A^2B", "A^3B", "(AB)^2", "AB^2C", "A^3B p_s=0.5 + adapters"}


def _task_and_model(cfg: TrainConfig):
    task = get_task(cfg, None)
    with torch.device("meta"):
        return task, task.build_model()


def _tokens_and_params(config: dict) -> tuple[float, int]:
    cfg = TrainConfig.from_dict(config)
    task, model = _task_and_model(cfg)
    per_step = task.flops_per_step(model, cfg.batch_size)
    tokens = math.floor(cfg.budget.flops / per_step) * task.units_per_step(cfg.batch_size)
    return tokens, sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def _layout(spec) -> str:
    return spec.signature + (f" p_s={spec.p_skip:g} + adapters" if spec.p_skip else "")


@pytest.fixture(scope="module")
def study():
    return load_sweep(STUDY)


def _main(spec) -> bool:
    """A main run: neither a learning-rate scan nor an out-of-sample check."""
    return not (spec.scan or spec.holdout)


def test_study_covers_layouts_budgets_and_seeds(study):
    main = [s for s in study.runs if _main(s)]
    by_size = defaultdict(list)
    for s in main:
        by_size[s.size].append(s)
    assert set(by_size) == {"S", "M"}
    for size, specs in by_size.items():
        budgets = sorted({s.budget for s in specs})
        assert len(budgets) >= 4 and math.log10(budgets[-1] / budgets[0]) >= 1.5, (size, budgets)
        for layout in LAYOUTS:
            mine = [s for s in specs if _layout(s) == layout]
            assert {s.budget for s in mine if s.seed == 0} == set(budgets), (size, layout)
            assert {s.seed for s in mine if s.budget == budgets[-1]} >= {0, 1, 2}, (size, layout)
    # an out-of-sample check past M's largest budget, for the plain model and RINS
    past = {(s.signature, s.budget) for s in study.runs if s.holdout and s.size == "M"}
    top_m = max(s.budget for s in by_size["M"])
    assert {sig for sig, b in past if b > top_m} >= {"AB", "A^2B"}, past


def test_study_trains_long_enough(study):
    """S: >= 50 tokens per parameter at its largest budget; M: >= 20 (AB, which sees the most tokens)."""
    need = {"S": 50, "M": 20}
    for size, floor in need.items():
        top = max((s for s in study.runs if s.size == size and s.signature == "AB" and _main(s)),
                  key=lambda s: s.budget)
        tokens, params = _tokens_and_params(top.config)
        assert tokens / params >= floor, (size, tokens, params)


def _field(section, key):  # the model section as a dict (LMConfig's defaults fill the gaps) or a dataclass
    from rins.model import LMConfig

    return section.get(key, getattr(LMConfig, key)) if isinstance(section, dict) else getattr(section, key)


def test_demo_is_the_study_size_s_at_one_of_its_budgets(study, monkeypatch):
    monkeypatch.setattr("rins.demo.native_bf16", lambda dev: True)  # a CPU with bf16 (see the test below)
    for label, kw in DEMO_VARIANTS:
        layout = kw["signature"] + (f" p_s={kw['p_skip']:g} + adapters" if kw.get("p_skip") else "")
        twin = next(s for s in study.runs if s.size == "S" and _layout(s) == layout and _main(s)
                    and s.seed == 0 and s.budget == DEMO_SHAPE["budget.flops"])
        want = TrainConfig.from_dict(twin.config)
        got = load_config(DEMO_PRESET, None, demo_overrides(None, kw))
        for key in ("n_layers", "d_model", "n_heads", "max_seq_len", "adapter_rank", "signature", "p_skip",
                    "adapters"):
            assert _field(got.model, key) == _field(want.model, key), (label, key)
        for field in ("batch_size", "dtype", "compile"):
            assert getattr(got, field) == getattr(want, field), (label, field)
        assert (got.data.vocab_size, got.data.seq_len) == (want.data.vocab_size, want.data.seq_len), label
        assert got.budget.flops == want.budget.flops, label
        assert got.optim.lr == want.optim.lr, label  # each layout at the rate the study trains it with


def test_demo_trains_in_float32_where_bf16_would_be_emulated(monkeypatch, capsys):
    monkeypatch.setattr("rins.demo.native_bf16", lambda dev: False)
    assert load_config(DEMO_PRESET, None, demo_overrides(None, DEMO_VARIANTS[0][1])).dtype == "float32"
    monkeypatch.setattr("rins.demo.native_bf16", lambda dev: True)
    assert load_config(DEMO_PRESET, None, demo_overrides(None, DEMO_VARIANTS[0][1])).dtype == "bfloat16"


def test_demo_trains_well_past_the_first_steps():
    cfg = load_config(DEMO_PRESET, None, demo_overrides(None, DEMO_VARIANTS[0][1]))
    task, model = _task_and_model(cfg)
    steps = cfg.budget.flops / task.flops_per_step(model, cfg.batch_size)
    assert steps > 1000


def _seed0_losses(study, which):
    """(size, layout, budget) -> {rate: seed-0 loss} of the runs ``which`` selects, from committed summaries."""
    import json

    loss = defaultdict(dict)
    for s in study.runs:
        f = study.results_dir / f"{s.name}.json"
        if s.seed == 0 and which(s) and f.is_file():
            loss[(s.size, _layout(s), s.budget)][TrainConfig.from_dict(s.config).optim.lr] = \
                json.loads(f.read_text())["val_loss"]
    return loss


def test_main_runs_are_at_the_best_rate_tried(study):
    """One rate per (size, layout, budget) among the main runs (every seed). S: each layout at the best rate of
    the scan at the smallest budget, except where more rates were tried at a larger budget; there, and at
    every point of M, the best rate tried at that point (main and scan runs, seed 0). Checked against the
    committed summaries: the TOML's choice follows the measurements. (S's smallest-budget scan ran before
    compiled blocks became the study's setting, so its runs are compared with each other, not with the main
    runs.)"""
    rates = defaultdict(set)
    for s in study.runs:
        if _main(s):
            rates[(s.size, _layout(s), s.budget)].add(TrainConfig.from_dict(s.config).optim.lr)
    assert all(len(v) == 1 for v in rates.values()), {k: v for k, v in rates.items() if len(v) > 1}
    scan_s = _seed0_losses(study, lambda s: s.scan and s.size == "S" and s.budget == 2.2e12)
    best_small = {layout: min(by_rate, key=by_rate.get) for (_, layout, _), by_rate in scan_s.items()}
    assert len(best_small) == len(LAYOUTS)
    checked = {"S": 0, "M": 0}
    for point, by_rate in _seed0_losses(study, lambda s: True).items():
        if point not in rates:  # a scan-only point
            continue
        (main_rate,) = rates[point]
        if point[::2] == ("S", 2.2e12):  # S's own scan: its best rate, its losses not mixed with the main runs'
            assert main_rate == best_small[point[1]], point
        elif len(by_rate) > 1 and main_rate in by_rate:  # (a main run still to train is not checked)
            assert by_rate[main_rate] == min(by_rate.values()), (point, main_rate, by_rate)
            checked[point[0]] += 1
        elif point[0] == "S":
            assert main_rate == best_small[point[1]], point
    assert checked["M"] >= 6 and checked["S"] >= 1  # the scanned points are covered


def test_results_md_tables_match_the_committed_summaries():
    """RESULTS.md's generated tables are what tools/results_tables.py makes from results/study-long now:
    committing new summaries without regenerating the tables fails here."""
    mod = _tool("results_tables")
    text = (ROOT / "RESULTS.md").read_text(encoding="utf-8")
    new, blocks = mod.render(text, str(ROOT / "results" / "study-long"))
    assert "| `A^2B` |" in blocks and "| M |" in blocks  # the blocks hold both sizes' rows
    assert new == text, "RESULTS.md's tables are stale: run .venv/bin/python tools/results_tables.py"


def _tool(name: str):
    """The script tools/NAME.py as a module."""
    return load_script(f"tools/{name}.py")


def _results_block(name: str) -> str | None:
    """The generated block ``name`` of RESULTS.md (tools/blocks.py)."""
    return _tool("blocks").read_block((ROOT / "RESULTS.md").read_text(encoding="utf-8"), name)


def test_results_md_wsd_check_matches_its_summaries():
    """RESULTS.md's WSD-vs-cosine tables are what tools/wsd_check.py makes from results/wsd-check now."""
    mod = _tool("wsd_check")
    data = mod.load()
    want = mod.table(data) + "\n\n" + mod.gap_table(data)
    assert "| `AB` | 7e12 | 3 |" in want and "| `A^2B` | 7e12 |" in want  # every cosine point has its seeds
    got = _results_block("wsd_check")
    assert got is not None, "RESULTS.md has no wsd_check block"
    assert got == want + "\n", "RESULTS.md's WSD check is stale: run .venv/bin/python tools/wsd_check.py --write"


@pytest.mark.parametrize("size,name", [("S", "crossing_fp32"), ("M", "crossing_fp32_M")])
def test_results_md_crossing_fp32_matches_its_summaries(size, name):
    """RESULTS.md's float32 crossing tables (S, M) are what tools/crossing_fp32.py makes from results/crossing-fp32."""
    got = _results_block(name)
    assert got is not None, f"RESULTS.md has no {name} block"
    want = _tool("crossing_fp32").block(size)
    assert got == want, "RESULTS.md is stale: run .venv/bin/python tools/crossing_fp32.py --write"


def test_crossing_fp32_takes_each_layout_at_its_best_rate(tmp_path, monkeypatch):
    """Size M's grids train each layout at two rates: the table keeps each layout's best (seed-0 loss), lists the
    rates tried, and pairs seeds within the kept rate."""
    mod = _tool("crossing_fp32")

    def write(sig: str, lr: float, seed: int, loss: float) -> None:
        cfg = {"model": {"signature": sig}, "optim": {"lr": lr}, "seed": seed}
        summary = {"format": "rins-run-summary/1", "size": "M", "config": cfg, "val_loss": loss, "val_loss_r": {},
                   "budget": 8e14, "tokens": 1.26e8}
        (tmp_path / f"M_{sig}_{lr}_{seed}.json").write_text(json.dumps(summary))

    write("AB", 8e-3, 0, 2.30)
    write("AB", 4e-3, 0, 2.28)
    write("AB", 4e-3, 1, 2.31)
    write("A^2B", 8e-3, 0, 2.27)
    write("A^2B", 8e-3, 1, 2.29)
    write("A^2B", 4e-3, 0, 2.35)
    seeds = mod.load_seeds(tmp_path, "M")
    assert float(seeds["AB"][0]["val_loss"]) == 2.28 and float(seeds["A^2B"][0]["val_loss"]) == 2.27
    assert mod.load_seeds(tmp_path, "S") == {}
    note = mod.rates_note(tmp_path, "M")
    assert "- `AB`: 0.004: 2.2800, 0.008: 2.3000 → 0.004" in note
    assert "- `A^2B`: 0.004: 2.3500, 0.008: 2.2700 → 0.008" in note
    assert "| `A^2B` | 0, 1 | -0.0100, -0.0200 | -0.0150 ± 0.0100 |" in mod.paired_block(seeds)
    monkeypatch.setattr(mod, "RESULTS", tmp_path)
    text = mod.block("M")
    assert "| `A^2B` |" in text and "| -0.0100 |" in text and "Learning rates tried" in text


def test_results_blocks_are_rewritten_in_place_with_their_begin_line_kept():
    blocks = _tool("blocks")
    doc = "a\n<!-- begin:t (generated by x) -->\nold\n<!-- end:t -->\nb\n"
    assert blocks.read_block(doc, "t") == "old\n"
    assert blocks.write_block(doc, "t", "new\n") == "a\n<!-- begin:t (generated by x) -->\nnew\n<!-- end:t -->\nb\n"
    assert blocks.read_block(doc, "u") is None
    # a block whose name extends another's, placed first, is not taken for it
    two = "<!-- begin:t_M (note) -->\nm\n<!-- end:t_M -->\n" + doc
    assert blocks.read_block(two, "t") == "old\n" and blocks.read_block(two, "t_M") == "m\n"
    assert blocks.write_block(two, "t", "new\n").startswith("<!-- begin:t_M (note) -->\nm\n<!-- end:t_M -->\n")
    with pytest.raises(SystemExit, match="RESULTS.md has no u block"):
        blocks.write_block(doc, "u", "x")


def test_crossing_fp32_pairs_each_layout_with_ab_of_the_same_seed(tmp_path, monkeypatch):
    """The paired table: Δ per seed against `AB` of that seed, mean ± 2 SE, in domain, out of domain and at equal
    tokens (against that seed's own `AB` curve: the study's runs of that seed and its float32 run); nothing while only
    one seed pairs."""
    mod = _tool("crossing_fp32")
    monkeypatch.setattr(mod, "STUDY", tmp_path)

    def run(loss: float, ood: float, tokens: float = 4e7) -> dict:
        return {"val_loss": loss, "val_loss_r": {"2": loss}, "evals": {mod.OOD: {"results": [{"r": 2, "loss": ood}]}},
                "tokens": tokens, "size": "S"}

    for seed, loss in ((0, 2.60), (1, 2.90)):  # each seed's smaller bf16 `AB` run: its own curve
        s = {"config": {"model": {"signature": "AB"}}, "size": "S", "tokens": 2e7, "val_loss": loss}
        (tmp_path / f"S_AB_C7e13_s{seed}.json").write_text(json.dumps(s))
    seeds = {"AB": {0: run(2.40, 3.30, 8e7), 1: run(2.50, 3.20, 8e7), 2: run(2.45, 3.25, 8e7)},
             "A^2B": {0: run(2.41, 3.28), 1: run(2.53, 3.19)}, "A^3B": {0: run(2.6, 3.4)}}
    text = mod.paired_block(seeds)
    # 4e7 tokens lie half way between 2e7 and 8e7 in log tokens: `AB` there is 2.50 (seed 0) and 2.70 (seed 1)
    assert ("| `A^2B` | 0, 1 | +0.0100, +0.0300 | +0.0200 ± 0.0200 | -0.0200, -0.0100 | -0.0150 ± 0.0100 | "
            "-0.0900, -0.1700 | -0.1300 ± 0.0800 |") in text
    seeds["AB"][1]["tokens"] = 1e7  # seed 1's `AB` curve now ends below the layout's tokens: no gap for it
    assert "| -0.0900, n/a | -0.0900 (1 seed) |" in mod.paired_block(seeds)
    assert "A^3B" not in text  # one seed: no pair to average
    assert mod.paired_block({"AB": seeds["AB"], "A^3B": seeds["A^3B"]}) == ""


def test_crossing_fp32_gap_at_equal_tokens(tmp_path, monkeypatch):
    """The equal-tokens column: a layout's loss minus `AB`'s final loss interpolated in log tokens between `AB`'s
    runs (the study's, scans left out, and this study's own); outside their range it says so."""
    mod = _tool("crossing_fp32")
    study, res = tmp_path / "study", tmp_path / "res"
    study.mkdir()
    res.mkdir()

    def write(folder: Path, name: str, sig: str, tokens: float, loss: float, **extra) -> None:
        cfg = {"model": {"signature": sig}, "optim": {"lr": 4e-3}, "seed": 0}
        s = {"format": "rins-run-summary/1", "size": "M", "config": cfg, "val_loss": loss, "val_loss_r": {},
             "budget": tokens * 1e7, "tokens": tokens, **extra}
        (folder / f"{name}.json").write_text(json.dumps(s))

    write(study, "M_AB_C1e13_s0", "AB", 1e6, 4.0)
    write(study, "M_AB_C1e14_s0", "AB", 1e8, 3.0, holdout=True)  # a held-out budget is a measured point too
    write(study, "M_AB_C1e14_lr9_s0", "AB", 1e7, 9.0, lr_scan=True)  # a rate scan is not
    write(res, "M_AB", "AB", 1e9, 2.0, budget=8e14)  # one budget: equal compute, different tokens
    write(res, "M_A2B", "A^2B", 1e7, 3.4, budget=8e14)
    write(res, "M_A3B", "A^3B", 1e10, 1.9, budget=8e14)
    monkeypatch.setattr(mod, "STUDY", study)
    monkeypatch.setattr(mod, "RESULTS", res)
    assert mod.ab_token_points("M") == [(1e6, 4.0), (1e8, 3.0), (1e9, 2.0)]
    rows = {line.split(" | ")[0]: line.split(" | ") for line in mod.block("M").splitlines() if line.startswith("| `")}
    assert rows["| `A^2B`"][7] == "-0.1000"  # 3.4 − 3.5, half way between 1e6 and 1e8 in log tokens
    assert rows["| `A^3B`"][7] == "outside `AB`'s tokens"
    assert rows["| `AB`"][7] == ""


def test_crossing_fp32_keeps_budgets_apart(tmp_path, monkeypatch):
    """Two budgets of one size (8e14 on the study's corpus, 1.6e15 on mix-xl): one table each, headed by budget and
    corpus; seeds pair within a budget; a run on another corpus gets no bf16 prediction nor equal-tokens gap."""
    mod = _tool("crossing_fp32")

    def write(sig: str, budget: float, seed: int, loss: float, corpus: str) -> None:
        cfg = {"model": {"signature": sig}, "optim": {"lr": 8e-3}, "seed": seed, "data": {"corpus": corpus}}
        s = {"format": "rins-run-summary/1", "size": "M", "config": cfg, "val_loss": loss, "val_loss_r": {},
             "budget": budget, "tokens": budget / 6e6, "passes": budget / 2e20}
        (tmp_path / f"M_{sig}_{budget:g}_{seed}.json").write_text(json.dumps(s))

    for seed, (ab, rins) in enumerate([(2.30, 2.31), (2.35, 2.37)]):
        write("AB", 8e14, seed, ab, "mix-large:-linux-doc")
        write("A^2B", 8e14, seed, rins, "mix-large:-linux-doc")
    write("AB", 1.6e15, 0, 2.50, "mix-xl:-linux-doc")
    write("A^2B", 1.6e15, 0, 2.45, "mix-xl:-linux-doc")
    monkeypatch.setattr(mod, "RESULTS", tmp_path)
    assert mod.budgets(tmp_path, "M") == [8e14, 1.6e15]
    assert float(mod.load(tmp_path, "M", 1.6e15)["AB"]["val_loss"]) == 2.50
    assert float(mod.load(tmp_path, "M")["AB"]["val_loss"]) == 2.30  # default: the smallest budget
    text = mod.block("M")
    first, second = text.split("**M at 1.6e+15 FLOPs** (`mix-xl:-linux-doc`):")
    assert first.startswith("**M at 8e+14 FLOPs** (`mix-large:-linux-doc`):")
    assert "| `A^2B` | 0, 1 | +0.0100, +0.0200 | +0.0150 ± 0.0100 |" in first  # 8e14's seeds only
    row = next(line for line in second.splitlines() if line.startswith("| `A^2B`")).split(" | ")
    assert row[3] == "-0.0500" and row[7] == "other corpus" and row[8] == "other corpus"
    assert "Paired" not in second  # one seed at 1.6e15


def test_results_md_crossing_answer_matches_its_summaries():
    """RESULTS.md's answer tables are what tools/crossing_answer.py makes from the committed summaries now."""
    got = _results_block("crossing_answer")
    assert got is not None, "RESULTS.md has no crossing_answer block"
    assert got == _tool("crossing_answer").block(), \
        "RESULTS.md is stale: run .venv/bin/python tools/crossing_answer.py --write"


def test_readme_crossing_answer_matches_its_summaries():
    """The README's short answer (headline, one row per size and layout) is what tools/crossing_answer.py makes from
    the committed summaries now."""
    got = _tool("blocks").read_block((ROOT / "README.md").read_text(encoding="utf-8"), "crossing_answer_short")
    assert got is not None, "README.md has no crossing_answer_short block"
    assert got == _tool("crossing_answer").summary(), \
        "README.md is stale: run .venv/bin/python tools/crossing_answer.py --write"


def test_crossing_answer_verdicts(tmp_path):
    """Paired gaps per budget and the verdict: below `AB` only when the paired interval is (or, on one seed, the
    gap is) below zero; a tie named as such; study budgets (bf16, scans left out) before float32 ones."""
    mod = _tool("crossing_answer")
    study, fp32 = tmp_path / "study", tmp_path / "fp32"
    study.mkdir()
    fp32.mkdir()

    def write(folder, sig: str, budget: float, seed: int, loss: float, scan: bool = False) -> None:
        cfg = {"model": {"signature": sig}, "optim": {"lr": 4e-3}, "seed": seed}
        s = {"format": "rins-run-summary/1", "size": "S", "config": cfg, "val_loss": loss, "val_loss_r": {},
             "budget": budget, "tokens": 1e7, "lr_scan": scan}
        (folder / f"S_{sig}_{budget:g}_{seed}_{scan}.json").write_text(json.dumps(s))

    for k, (ab, a2, ab2c) in enumerate([(3.0, 3.2, 3.10), (3.1, 3.3, 3.15), (3.2, 3.45, 3.30)]):
        write(study, "AB", 7e13, k, ab)
        write(study, "A^2B", 7e13, k, a2)
        write(study, "AB^2C", 7e13, k, ab2c)
    write(study, "A^2B", 7e13, 0, 1.0, scan=True)  # a rate scan: left out
    for k, (ab, a2, ab2c) in enumerate([(2.5, 2.40, 2.49), (2.6, 2.52, 2.62)]):
        write(fp32, "AB", 2.2e14, k, ab)
        write(fp32, "A^2B", 2.2e14, k, a2)
        write(fp32, "AB^2C", 2.2e14, k, ab2c)
    write(fp32, "A^3B", 2.2e14, 0, 2.45)
    text = mod.block(study, fp32)
    assert "| layout | 7e13 | 2.2e14 fp32 | verdict |" in text
    assert ("| `A^2B` | +0.217 ± 0.033 (3) | -0.090 ± 0.020 (2) | **below `AB` from 2.2e14 fp32** (-0.090 ± 0.020, "
            "2 seeds) |") in text
    assert "below `AB` at no budget; at 2.2e14 fp32 +0.005 ± 0.030 (2 seeds): a tie not excluded" in text
    assert "**below `AB` at 2.2e14 fp32 on one seed** (-0.050); more seeds to confirm" in text
    assert text.startswith("**Measured below `AB`** (over seeds): `A^2B` at size S. **Below `AB` on one seed**: "
                           "`A^3B` at size S.\n")  # A^3B: one seed and no seed spread known at all
    short = mod.summary(study, fp32)  # the README's: the gap at each layout's largest budget, the verdict in brief
    assert short.startswith("**Measured below `AB`** (over seeds)")
    assert "| S | `A^2B` | 2.2e14 fp32: -0.090 ± 0.020 (2) | **below `AB` from 2.2e14 fp32** |" in short
    assert "| S | `AB^2C` | 2.2e14 fp32: +0.005 ± 0.030 (2) | behind, a tie not excluded |" in short
    assert "| S | `A^3B` | 2.2e14 fp32: -0.050 (1) | **below `AB` on one seed**: more seeds to confirm |" in short
    assert mod.gap({0: 2.0}, {1: 2.0}) is None  # no common seed: no gap
    assert mod.verdict([("1e14", (0.1, None, 1))]) == (
        "behind at every budget measured, up to 1e14 (+0.100, 1 seed)", "behind")
    # one seed is judged against the seed spread of the nearest smaller budget with 2+ seeds: 2 SD = 2 SE × √n
    three = ("1e14", (0.05, 0.02, 3))  # 2 SD = 0.0346
    assert mod.verdict([three, ("8e14", (-0.001, None, 1))]) == (
        "**level with `AB` at 8e14** on one seed (-0.001, within the ±0.035 seed spread measured at 1e14): a tie, "
        "not yet a crossing; more seeds to decide", "level")
    assert mod.verdict([three, ("8e14", (-0.05, None, 1))]) == (
        "**below `AB` at 8e14 on one seed** (-0.050, beyond the ±0.035 seed spread measured at 1e14); more seeds to "
        "confirm", "one seed")
    assert mod.verdict([three, ("8e14", (0.02, None, 1))]) == (
        "below `AB` at no budget; at 8e14 +0.020 on one seed, within the ±0.035 seed spread measured at 1e14: a tie "
        "not excluded", "behind")
    # level at one budget, behind again at the largest: where it stands now decides
    assert mod.verdict([("4e14", (-0.01, None, 1)), three, ("8e14", (0.06, None, 1))])[1] == "behind"
