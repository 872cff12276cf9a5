"""The command line: help generated from the typed configs, typed field flags, --version, preset fallback notes,
the run-directory lock, the Python API exports, and the README's command-line section against the real help."""

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest

import rins
from rins.cli import build_parser
from rins.cli import main as cli
from rins.config import BudgetConfig, DataConfig, OptimConfig, TrainConfig, load_config
from rins.fields import field_docs
from rins.model import LMConfig

ROOT = Path(__file__).resolve().parents[1]


def help_of(*verb: str, width: int = 200) -> str:
    os.environ["COLUMNS"] = str(width)
    try:
        p = build_parser()
        for v in verb:
            p = next(a for a in p._actions if a.dest == "cmd").choices[v]
        return p.format_help()
    finally:
        del os.environ["COLUMNS"]


def test_train_help_lists_every_field_with_type_default_and_doc():
    text = help_of("train")
    line = next(x for x in text.splitlines() if "--model.d_model" in x)
    assert "INT" in line and "[default: 256]" in line and "hidden width" in line
    sections = {"": TrainConfig, "model.": LMConfig, "data.": DataConfig, "optim.": OptimConfig,
                "budget.": BudgetConfig}
    for prefix, cls in sections.items():
        docs = field_docs(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]) or f.name == "model":
                continue
            flag = "--" + (prefix + f.name if prefix else f.name.replace("_", "-"))
            assert re.search(rf"^\s+{re.escape(flag)}\b", text, re.M), flag
            assert docs.get(f.name), f"{cls.__name__}.{f.name} has no documentation line"
    assert "[default: 0.003]" in next(x for x in text.splitlines() if "--optim.lr" in x)
    for name in ("tiny", "cpu-small", "gpu-125m", "gpu-350m", "siglip-cpu", "vit-cpu", "siglip-b16"):
        assert name in text  # every preset is listed
    assert "with neither --preset nor --config: cpu-small" in text


def test_version_and_defaults_shown(capsys):
    with pytest.raises(SystemExit) as e:
        cli(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"rins {rins.__version__}"
    gen = help_of("generate")
    for flag, default in (("--max-new-tokens", "100"), ("--temperature", "0.8"), ("--top-k", "50"),
                          ("--top-p", "1.0"), ("--repetition-penalty", "1.0")):
        assert re.search(rf"{flag} \S+\s+.*\(default: {re.escape(default)}\)", gen), flag
    assert "(default: 1)" in help_of("plan")  # --degree
    for verb, flag in (("eval", "--json"), ("generate", "--prompt"), ("plan", "--layers"), ("plan", "--r")):
        line = next(x for x in help_of(verb).splitlines() if x.strip().startswith(flag))
        assert len(line.split()) > 2, f"{verb} {flag} has no help text"


def test_field_flags_are_typed_overrides_in_command_line_order(capsys):
    def resolved(*args: str) -> dict:
        assert cli(["train", "--preset", "tiny", "--print-config", *args]) == 0
        return json.loads(capsys.readouterr().out)

    assert resolved("--model.d_model", "48", "--set", "model.d_model=64")["model"]["d_model"] == 64
    assert resolved("--set", "model.d_model=64", "--model.d_model", "48")["model"]["d_model"] == 48
    c = resolved("--compile", "--optim.fused", "no", "--batch-size", "4", "--signature", "A^2B", "--name", "123",
                 "--eval-depths", "1,3", "--budget.steps", "7", "--loggers", "tensorboard")
    assert c["compile"] is True and c["optim"]["fused"] is False and c["batch_size"] == 4
    assert c["model"]["signature"] == "A^2B" and c["name"] == "123" and c["eval_depths"] == [1, 3]
    assert c["budget"] == {"flops": None, "tokens": None, "steps": 7} and c["loggers"] == "tensorboard"
    assert cli(["train", "--preset", "tiny", "--print-config", "--optim.lr", "fast"]) == 2
    err = capsys.readouterr().err
    assert "optim.lr='fast'" in err and "number" in err


def test_verbs_that_fall_back_on_a_preset_say_so(capsys):
    assert cli(["flops", "--json"]) == 0
    assert "using preset cpu-small" in capsys.readouterr().err
    assert cli(["flops", "--preset", "tiny", "--json"]) == 0
    assert "using preset" not in capsys.readouterr().err


def _readme_block(after: str) -> str:
    text = (ROOT / "README.md").read_text()
    i = text.index(after)
    start = text.index("```", i)
    start = text.index("\n", start) + 1
    return text[start:text.index("```", start)]


def test_readme_command_line_section_matches_the_real_help():
    block = _readme_block("<!-- rins --help -->")
    assert block.strip() == help_of(width=100).strip()
    train = _readme_block("<!-- rins train --help (excerpt) -->")
    full = help_of("train", width=100)
    for line in train.splitlines():
        if line.strip() and line.strip() != "...":
            assert line in full, line
    # every `rins VERB --flag` of the section names a real flag of that verb
    section = (ROOT / "README.md").read_text().split("## Command line", 1)[1].split("\n## ", 1)[0]
    spans = re.findall(r"`rins ([a-z][a-z-]*)\b([^`]*)`", section)
    assert len(spans) >= 8
    for verb, rest in spans:
        if verb in ("sweep", "fit", "report", "convert", "export", "lm-eval"):
            continue
        known = help_of(verb, width=100)
        for flag in re.findall(r"(?<![\w-])(--[a-z][\w.-]*)", rest):
            assert flag in known, f"README: rins {verb} {flag} is not an option"


def test_python_api_exports(corpus, cache, tmp_path):
    code = "import rins, sys; assert 'rins.train' not in sys.modules and 'rins.config' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    assert rins.TrainConfig is TrainConfig and rins.load_config is load_config
    cfg = rins.load_config("tiny", overrides=[f'data.corpus="{corpus}"', f'data.cache_dir="{cache}"',
                                              f'out_dir="{tmp_path}"', "budget.steps=2", "progress=false"])
    s = rins.train(cfg, quiet=True)  # the submodule, callable
    assert s["steps"] == 2 and s["complete"]
    import rins.train as mod

    assert mod is rins.train and mod.train(cfg, quiet=True)["complete"]


def test_top_level_api_is_listed_and_covers_the_readme():
    """Every public name is in dir(rins) (the lazily loaded ones too), and every rins.NAME the README uses exists
    at the top level, e.g. rins.load_model."""
    import importlib

    from rins.checkpoint import load_model
    from rins.evaluation import evaluate_run

    assert set(rins.__all__) <= set(dir(rins)) and {"load_model", "evaluate_run", "generate_text"} <= set(dir(rins))
    assert rins.load_model is load_model and rins.evaluate_run is evaluate_run
    used = set(re.findall(r"(?<![\w/])rins\.([A-Za-z_]\w*)", (ROOT / "README.md").read_text()))
    missing = []
    for name in sorted(used):
        try:
            getattr(rins, name)
        except AttributeError:
            try:
                importlib.import_module(f"rins.{name}")  # a submodule (rins.hf, rins.evaluation ...)
            except ImportError:
                missing.append(name)
    assert not missing, f"the README uses rins.{missing} that do not exist"


# ----------------------------------------------------------------------------------------------
# The run-directory lock

HOLD = """
import sys, time
from rins.runs import run_lock
with run_lock(sys.argv[1]) as got:
    print("held" if got else "busy", flush=True)
    time.sleep(60)
"""


def test_a_second_train_on_a_live_run_dir_stops_at_once(corpus, cache, tmp_path, capsys):
    run_dir = tmp_path / "r"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        args = ["train", "--preset", "tiny", "--data.corpus", str(corpus), "--data.cache_dir", str(cache),
                "--out-dir", str(tmp_path), "--name", "r", "--budget.steps", "2", "--progress", "false"]
        t0 = time.time()
        assert cli(args) == 2
        err = capsys.readouterr().err.strip()
        assert time.time() - t0 < 10 and len(err.splitlines()) == 1
        assert f"in use by process {holder.pid}" in err and str(run_dir) in err
        assert not (run_dir / "log.jsonl").exists()  # nothing was written into the live run
    finally:
        holder.kill()
        holder.wait()
    # the holder is dead: its lock file (with its PID) is stale and taken over
    assert (tmp_path / "r.lock").read_text().split()[0] == str(holder.pid)
    assert cli(args) == 0
    assert json.loads((run_dir / "summary.json").read_text())["complete"]


def test_convert_and_export_help_explain_every_flag(capsys):
    from rins.cli import main as cli

    for verb, flags in (("convert", ("--init", "--degree", "--layers", "--name")), ("export", ("--r", "--tokenizer"))):
        with pytest.raises(SystemExit) as e:
            cli([verb, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        out = out[out.index("options:"):]
        for flag in flags:
            line = out[out.index(flag + " "):].split("\n  -")[0]
            assert "(default:" in line, (verb, flag, line)


# ----------------------------------------------------------------------------------------------
# One parser tree


def test_only_the_cli_builds_an_argument_parser():
    """Every verb is a sub-parser of `rins`: no other module of the package constructs an ArgumentParser."""
    import ast

    found = []
    for path in sorted((ROOT / "rins").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name == "ArgumentParser":
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found and all(f.startswith("rins/cli.py:") for f in found), found


def test_every_verb_has_help_and_run_verb_returns_the_status(capsys):
    from rins.cli import VERBS, run_verb

    top = help_of()
    for verb, (summary, _) in VERBS.items():
        assert re.search(rf"^\s+{re.escape(verb)}\s+{re.escape(summary)}$", top, re.M), verb
        if verb != "lm-eval":  # lm-eval shows lm-eval's own help
            assert help_of(verb).startswith(f"usage: rins {verb}"), verb
    assert run_verb("fit", ["--help"]) == 0 and capsys.readouterr().out.startswith("usage: rins fit")
    assert run_verb("report", []) == 2 and "required" in capsys.readouterr().err  # a usage error returns 2
    # the verbs run from `rins` / `python -m rins.cli` only: the modules behind them are no entry points
    for module in ("sweep", "report", "scaling", "hf"):
        assert "__main__" not in (ROOT / "rins" / f"{module}.py").read_text(), module


def test_analysis_verbs_run_without_torch(tmp_path):
    """`rins plan`, `rins fit` and `rins report` build only their own parser: no torch (nor the trainer) needed."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from rins.cli import main\n"
            "assert main(['plan', 'A^2B', '--layers', '4']) == 0\n"
            "for verb in ('fit', 'report'):\n"
            "    try:\n"
            "        main([verb, '--help'])\n"
            "    except SystemExit as e:\n"
            "        assert e.code == 0\n"
            f"assert main(['report', {str(tmp_path)!r}, '--out', {str(tmp_path / 'o')!r}]) == 2\n"
            "assert 'rins.train' not in sys.modules and 'rins.model' not in sys.modules\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "no complete run found" in res.stderr


def test_train_help_lists_the_other_tasks_model_keys_and_each_one_sets():
    """siglip and vit type their own [model] tables: `rins train --help` lists every key, and each listed
    ``KEY=DEFAULT`` is accepted by --set on that task's preset and lands in the typed config."""
    from rins.config import load_config

    text = help_of("train", width=100000)
    for task, preset in (("siglip", "siglip-cpu"), ("vit", "vit-cpu")):
        line = next(x for x in text.splitlines() if "set with --set KEY=VALUE" in x and
                    text.splitlines()[text.splitlines().index(x) - 1].startswith(f"model (task = {task}:"))
        pairs = re.findall(r"(model\.[\w.]+)=(\S+) \(", line)
        assert len(pairs) >= 15, pairs
        for key, value in pairs:
            cfg = load_config(preset, None, [f"{key}={value}"])
            obj = cfg
            for part in key.split("."):
                obj = getattr(obj, part)
            shown = ("none" if obj is None else str(obj).lower() if isinstance(obj, bool)
                     else f"{obj:.4g}" if isinstance(obj, float) else str(obj))
            assert shown == value, (task, key, value, obj)


def test_flags_take_dashes_or_underscores_and_typos_get_a_suggestion(capsys):
    def resolved(*args: str) -> dict:
        assert cli(["train", "--preset", "tiny", "--print-config", *args]) == 0
        return json.loads(capsys.readouterr().out)

    c = resolved("--batch_size", "4", "--model.n-kv-heads", "2", "--optim.warmup-frac=0.2", "--print_config")
    assert c["batch_size"] == 4 and c["model"]["n_kv_heads"] == 2 and c["optim"]["warmup_frac"] == 0.2
    assert resolved("--batch-size", "4", "--model.n_kv_heads", "2")["model"]["n_kv_heads"] == 2
    with pytest.raises(SystemExit) as e:
        cli(["train", "--preset", "tiny", "--model.signture", "A^2B"])
    assert e.value.code == 2
    assert "unrecognized argument: --model.signture (did you mean --model.signature?)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["generate", "run", "--prompt", "x", "--max_new_token", "3"])
    assert "(did you mean --max-new-tokens?)" in capsys.readouterr().err


def test_every_verb_help_shows_types_and_defaults():
    """No bare placeholder (argparse's `--batches BATCHES`): every option that takes a value shows its type or
    its choices, and every option with a default shows it."""
    from rins.cli import VERBS, _HelpFormatter

    ap = build_parser()
    sub = next(a for a in ap._actions if a.dest == "cmd").choices
    for verb in VERBS:
        if verb == "lm-eval":
            continue
        p = sub[verb]
        p.format_help()  # populates the verb's arguments
        fmt = _HelpFormatter(verb)
        for a in p._actions:
            if not a.option_strings or a.nargs == 0 or a.dest == "help":
                continue
            assert a.choices is not None or a.metavar not in (None, a.dest.upper()), (verb, a.option_strings)
            if a.default not in (None, False, [], "==SUPPRESS=="):
                assert "default" in fmt._get_help_string(a), (verb, a.option_strings)


def test_r_is_a_list_of_depths_in_every_verb(capsys):
    def parse(*argv: str):
        return build_parser().parse_args(list(argv))

    assert parse("eval", "run", "--r", "1,2,3").r == [1, 2, 3] and parse("eval", "run", "--r", "2").r == [2]
    assert parse("flops", "--r", "2").r == [2]
    single = (("plan", "A^2B", "--layers", "4"), ("generate", "run", "--prompt", "x"), ("export", "run", "--out", "o"),
              ("fit", "run"))
    for argv in single:
        assert parse(*argv, "--r", "3").r == [3]
        with pytest.raises(SystemExit):
            parse(*argv, "--r", "2,3")
        assert "runs at one depth; got 2 (2,3): pass one, e.g. --r 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse("eval", "run", "--r", "0,x")
    assert "comma-separated integers >= 1" in capsys.readouterr().err
    assert cli(["plan", "A^2B", "--layers", "4", "--r", "3"]) == 0
    assert "rounds: [" in capsys.readouterr().out
