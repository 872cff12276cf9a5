"""`rins eval RUN --data SPEC` / `rins.evaluation.evaluate_run`: any text, every depth, bits per byte."""

import json
import math
import random

import pytest

from rins.cli import main as cli
from rins.config import load_config
from rins.data import prepare_data
from rins.evaluation import evaluate_run
from rins.train import train


@pytest.fixture(scope="module")
def run(corpus, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = load_config("tiny", None, [f'data.corpus="{corpus}"', f'data.cache_dir="{cache}"', f'out_dir="{out}"',
                                     'name="ev"', "progress=false", "budget.steps=8", 'model.signature="A^2B"'])
    train(cfg, quiet=True)
    return out / "ev"


def test_default_data_matches_the_trainer(run):
    """Without --data the run's own held-out documents are scored, as the trainer's final eval did."""
    res = evaluate_run(run, depths=[2])
    summ = json.loads((run / "summary.json").read_text())
    assert res["data"] == json.loads((run / "config.json").read_text())["data"]["corpus"]
    assert res["results"][0]["loss"] == pytest.approx(summ["val_loss_r"]["2"], rel=1e-5)
    assert res["results"][0]["bpb"] == pytest.approx(summ["val_bpb"], rel=1e-5)


def test_other_text_uses_the_runs_tokenizer(run, tmp_path, cache):
    rng = random.Random(1)
    words = "zebra quantum violin xylophone".split()  # words the tiny run never saw: a higher loss
    other = tmp_path / "other"
    other.mkdir()
    for i in range(3):
        (other / f"o{i}.txt").write_text("\n".join(" ".join(rng.choice(words) for _ in range(10))
                                                   for _ in range(200)))
    own = evaluate_run(run, depths=[1, 2, 3])
    res = evaluate_run(run, data=str(other), depths=[1, 2, 3], batches=0)
    assert [r["r"] for r in res["results"]] == [1, 2, 3]
    for mine, theirs in zip(own["results"], res["results"]):
        assert theirs["loss"] > mine["loss"]
        # bits per byte = nats/token / ln 2 × tokens/byte of the scored split
        assert theirs["bpb"] == pytest.approx(theirs["loss"] / math.log(2) / res["bytes_per_token"])
        assert theirs["ppl"] == pytest.approx(math.exp(theirs["loss"]))
    # encoded with the run's tokenizer (byte-identical copy), never a new one
    b = prepare_data(str(other), cache, tokenizer=run / "tokenizer.json")
    assert b.tokenizer_path.read_bytes() == (run / "tokenizer.json").read_bytes()
    assert res["tokens"] > 0 and res["split"] == "val"
    train_split = evaluate_run(run, data=str(other), depths=[2], split="train", batches=1)
    assert train_split["split"] == "train" and 1 <= train_split["windows"] <= 16


def test_cli_eval_data_json_and_errors(run, tmp_path, capsys):
    f = tmp_path / "one.txt"
    f.write_text("the king speaks to the queen.\n" * 400)
    assert cli(["eval", str(run), "--data", str(f), "--r", "1,3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["r"] for r in out["results"]] == [1, 3] and out["data"] == str(f)
    assert cli(["eval", str(run), "--data", str(f)]) == 0
    text = capsys.readouterr().out
    assert "bpb" in text and "bytes/token" in text
    assert cli(["eval", str(run), "--data", str(tmp_path / "missing.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--batches must be >= 0"):
        cli(["eval", str(run), "--batches", "-1"])


def test_cli_eval_scores_a_whole_file_by_default(run, tmp_path, capsys):
    """`rins eval --data FOLDER` scores every document of a local file or folder (its train and held-out shares,
    one stream); `--split val` keeps the held-out share only; the run's own corpus stays held-out by default."""
    d = tmp_path / "docs"
    d.mkdir()
    for i in range(4):
        (d / f"d{i}.txt").write_text(f"the king speaks to the queen {i}.\n" * 150)

    def scored(*extra: str) -> dict:
        assert cli(["eval", str(run), "--data", str(d), "--r", "1", "--batches", "0", "--json", *extra]) == 0
        return json.loads(capsys.readouterr().out)

    whole, val, train = scored(), scored("--split", "val"), scored("--split", "train")
    assert whole["split"] == "all" and val["split"] == "val" and train["split"] == "train"
    # all windows of one stream of every document: at least the two shares' windows, far more than val alone
    assert whole["windows"] >= train["windows"] + val["windows"] and whole["tokens"] > 3 * val["tokens"]
    loss = whole["results"][0]["loss"]
    lo, hi = sorted([train["results"][0]["loss"], val["results"][0]["loss"]])
    assert lo - 0.05 <= loss <= hi + 0.05  # about a token-weighted mix of the two shares
    assert cli(["eval", str(run), "--r", "1", "--json"]) == 0  # the run's own corpus: its held-out documents
    assert json.loads(capsys.readouterr().out)["split"] == "val"


def test_a_long_evaluation_says_how_long_before_it_starts(run, monkeypatch, capsys):
    """Issue 28 item 8: many explicit depths (or a large split) print their FLOPs and time estimate first; the
    estimate is the per-executed-layer FLOPs of every depth over the windows scored, at the measured peak."""
    import rins.evaluation as E
    from rins.checkpoint import load_model
    from rins.train import peak_flops

    depths = [1, 2, 3, 4, 5, 6]
    quick = evaluate_run(run, depths=[1], batches=1)
    assert "[rins] scoring" not in capsys.readouterr().err  # a quick one says nothing
    monkeypatch.setattr(E, "ANNOUNCE_SECONDS", 0.0)
    res = evaluate_run(run, depths=depths, batches=1)
    err = capsys.readouterr().err
    windows = res["windows"]
    assert f"[rins] scoring 6 depth(s) on {windows:,} windows of {res['seq_len']} tokens" in err
    model = load_model(run)
    flops = sum(model.flops_per_token(res["seq_len"], r) for r in depths) * windows * res["seq_len"]
    assert f"{flops:.3g} FLOPs" in err
    peak, _ = peak_flops(__import__("torch").device("cpu"), "float32")
    assert f"measured {peak / 1e9:,.0f} GFLOP/s" in err
    assert quick["windows"] == windows
