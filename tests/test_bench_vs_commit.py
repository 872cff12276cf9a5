"""benchmarks/vs_commit.py times the run the sweep trains, on both sides, from the same --set lines."""

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import load_script

from rins.config import load_config
from rins.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    return load_script("benchmarks/vs_commit.py")


@pytest.mark.parametrize("sweep", ["study-long.toml", "crossing-fp32.toml"])
def test_vs_commit_builds_the_sweeps_own_run(sweep):
    mod = _bench()
    path = ROOT / "configs" / sweep
    preset, ov = mod.study_overrides(path, "S", "A^2B", [])
    got = load_config(preset, None, ov)
    runs = [r for r in load_sweep(path).runs if r.size == "S" and r.signature == "A^2B" and r.p_skip == 0]
    assert runs, f"{sweep} has no plain S A^2B run"
    want = runs[0].train_config()
    assert got.model == want.model
    assert (got.dtype, got.compile, got.batch_size) == (want.dtype, want.compile, want.batch_size)
    assert got.data.corpus == want.data.corpus and got.data.seq_len == want.data.seq_len
    assert got.data.vocab_size == want.data.vocab_size
    # FLOPs per token: this tree's per-executed-layer count, as the trainer's
    assert mod._flops_per_token(path, "S", "A^2B") > mod._flops_per_token(path, "S", "AB")


def test_vs_commit_names_an_unknown_size():
    mod = _bench()
    with pytest.raises(SystemExit, match=r"size 'XL' is not in .*its sizes: S, M"):
        mod.study_overrides(ROOT / "configs" / "crossing-fp32.toml", "XL", "AB", [])


def test_vs_commit_extra_sets_come_last():
    mod = _bench()
    _, ov = mod.study_overrides(ROOT / "configs" / "crossing-fp32.toml", "M", "AB", ['dtype="bfloat16"'])
    assert ov[-1] == 'dtype="bfloat16"' and 'model.d_model=96' in ov
    assert load_config("cpu-small", None, ov).dtype == "bfloat16"  # the last one wins


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_vs_commit_extracts_a_commit_that_imports_from_its_own_folder(tmp_path):
    mod = _bench()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    tree = mod.old_tree(head, tmp_path)
    assert (tree / "rins" / "train.py").is_file() and not (tree / ".git").exists()
    env = mod.side_env(tree, 1)
    assert env["PYTHONPATH"] == str(tree) and env["OMP_NUM_THREADS"] == "1"
