"""rins.runs, the one reader of run directories: logs, configs, start records, and finding runs and run
summaries under folders (what ``rins report`` and ``rins fit`` read)."""

import json
from pathlib import Path

import pytest

from rins.runs import SUMMARY_FORMAT, find_runs, log_path, read_log, read_run, run_config, start_record


def _run_dir(root: Path, name: str, complete: bool = True) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"name": name, "model": {"signature": "AB"}}))
    recs = [{"event": "start", "params": 123, "steps": 2},
            {"event": "eval", "step": 1, "flops": 1.0, "val_loss": 3.0},
            {"event": "eval", "step": 2, "flops": 2.0, "val_loss": 2.5},
            {"event": "eval", "step": 1, "flops": 1.0, "val_loss": 2.9}]  # step 1 again (a resume): it wins
    (d / "log.jsonl").write_text("\n".join(map(json.dumps, recs)) + '\n{"event": "eval", "st')  # torn last line
    (d / "summary.json").write_text(json.dumps({"complete": complete, "val_loss": 2.5}))
    return d


def test_read_log_run_config_and_start_record(tmp_path):
    d = _run_dir(tmp_path, "a")
    evals = read_log(d)
    assert [(e["step"], e["val_loss"]) for e in evals] == [(1, 2.9), (2, 2.5)]
    assert read_log(log_path(d)) == evals and log_path(d / "log.jsonl") == d / "log.jsonl"
    with pytest.warns(UserWarning, match="1 malformed line"):
        read_log(d, warn_malformed=True)
    assert start_record(d)["params"] == 123 and start_record(tmp_path) == {}
    assert read_log(tmp_path / "nothing") == []
    assert run_config(d)["name"] == "a"
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        run_config(tmp_path)


def test_find_and_read_runs_and_summaries(tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    a, b = _run_dir(runs, "a"), _run_dir(runs, "b", complete=False)
    results.mkdir()
    (results / "a.json").write_text(json.dumps({"format": SUMMARY_FORMAT, "config": {"name": "a"},
                                                "curve": [{"step": 2, "val_loss": 2.5}]}))
    (results / "notes.json").write_text("{}")  # a JSON file that is not a run summary
    found = find_runs([runs, results, a])  # `a` twice: once
    assert found == [a, b, results / "a.json", results / "notes.json"]
    ra, rb, rs = read_run(a), read_run(b), read_run(results / "a.json")
    assert ra.complete and not ra.is_summary and ra.start["params"] == 123 and len(ra.curve) == 2
    assert not rb.complete
    assert rs.is_summary and rs.complete and rs.config == {"name": "a"} and rs.curve[0]["val_loss"] == 2.5
    assert read_run(results / "notes.json") is None and read_run(tmp_path) is None
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_runs([tmp_path / "missing"])


def test_lm_config_defaults_are_the_model_defaults():
    """rins.runs reads a field that config.json leaves out as the model's default without importing the model
    (nor torch): its copy of those defaults must be LMConfig's."""
    from rins.model import LMConfig
    from rins.runs import LM_CONFIG_DEFAULTS

    assert LM_CONFIG_DEFAULTS == {k: LMConfig.__dataclass_fields__[k].default for k in LM_CONFIG_DEFAULTS}
