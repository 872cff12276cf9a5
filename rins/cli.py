"""The ``rins`` command line, the package's one parser tree: train, eval, generate, plan, flops and demo are
defined here; sweep, fit, report, convert and export add their arguments from the module that runs them
(``add_<verb>_arguments`` + ``cmd_<verb>``), and lm-eval hands its flags to lm-evaluation-harness."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import Field
from pathlib import Path

from .fields import depths_type
from .runs import tokenizer_file

__all__ = ["VERBS", "build_parser", "main", "run_verb"]


class _HelpFormatter(argparse.HelpFormatter):
    """Shows ``(default: X)`` after every option that has a default worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if ("%(default)" not in text and "default:" not in text and action.option_strings
                and d is not None and d is not False and d is not argparse.SUPPRESS and d != []):
            text += " (default: %(default)s)"
        return text


class _Override(argparse.Action):
    """``--section.key VALUE`` (a typed config field) is ``--set section.key=VALUE``, in command-line order."""

    def __init__(self, option_strings: list[str], dest: str, key: str = "", **kw) -> None:
        self.key = key
        super().__init__(option_strings, "overrides", **kw)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        namespace.overrides = [*(getattr(namespace, "overrides", None) or []), f"{self.key}={values}"]


DEFAULT_PRESET = "cpu-small"


def _shown_default(f: Field, float_format: str = "") -> object:
    """A dataclass field's default as help text shows it: ``none``, ``true``/``false``, the value."""
    from dataclasses import MISSING

    default = f.default if f.default is not MISSING else f.default_factory()
    if default is None:
        return "none"
    if isinstance(default, bool):
        return str(default).lower()
    return format(default, float_format) if isinstance(default, float) and float_format else default


def _field_group(p: argparse.ArgumentParser, cls: type, prefix: str, title: str, description: str) -> None:
    """One typed flag per field of the config dataclass ``cls``: type, default and the field's documentation."""
    import typing
    from dataclasses import fields, is_dataclass

    from .fields import field_docs, type_name

    g = p.add_argument_group(title, description)
    hints, docs = typing.get_type_hints(cls), field_docs(cls)
    for f in fields(cls):
        tp = hints[f.name]
        if is_dataclass(tp) or f.name == "model":
            continue
        shown = _shown_default(f)
        doc = docs.get(f.name, "").replace("``", "").replace("%", "%%")
        flag = "--" + (prefix + f.name if prefix else f.name.replace("_", "-"))
        switch = tp is bool or set(typing.get_args(tp)) == {bool, str}  # a bare --flag means true
        kw: dict = {"nargs": "?", "const": "true"} if switch else {}
        g.add_argument(flag, action=_Override, key=prefix + f.name, default=argparse.SUPPRESS,
                       metavar=type_name(tp).upper().replace(" ", ""), help=f"{doc} [default: {shown}]", **kw)


def _model_keys(cls: type, prefix: str) -> list[str]:
    """``KEY=DEFAULT (type)`` for every field of the dataclass ``cls``, nested dataclasses flattened."""
    import typing
    from dataclasses import fields, is_dataclass

    from .fields import type_name

    hints, out = typing.get_type_hints(cls), []
    for f in fields(cls):
        if is_dataclass(hints[f.name]):
            out += _model_keys(hints[f.name], f"{prefix}{f.name}.")
            continue
        shown = _shown_default(f, float_format=".4g")
        out.append(f"{prefix}{f.name}={shown} ({type_name(hints[f.name])})")
    return out


def _other_task_models(p: argparse.ArgumentParser) -> None:
    """One help section per task whose model config is not the LM's: its keys, set with --set or TOML."""
    from .model import LMConfig
    from .tasks import TASKS, task_class

    for name in TASKS:
        cls = getattr(task_class(name), "config_class", None)
        if cls is None or cls is LMConfig:
            continue
        keys = ", ".join(_model_keys(cls, "model."))
        p.add_argument_group(f"model (task = {name}: {cls.__module__}.{cls.__name__})",
                             f"set with --set KEY=VALUE or a [model] TOML table: {keys}")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    from .config import PRESETS, BudgetConfig, DataConfig, OptimConfig, TrainConfig
    from .model import LMConfig

    g = p.add_argument_group("config sources", "applied in this order: --preset, --config, then --set and the "
                             "field flags below in command-line order")
    g.add_argument("--preset", default=None, metavar="NAME",
                   help=f"named config preset: {', '.join(PRESETS)} (with neither --preset nor --config: "
                   f"{DEFAULT_PRESET})")
    g.add_argument("--config", default=None, help="TOML config file (may set preset = '...')")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set model.d_model=512 (repeatable)")
    g.add_argument("--signature", action=_Override, key="model.signature", default=argparse.SUPPRESS,
                   metavar="SIG", help="shortcut for --model.signature")
    g.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    note = ("Each flag below sets one field of rins.config.TrainConfig, as --set KEY=VALUE or a TOML key does; "
            "the defaults shown are the dataclass defaults, which presets and --config files override "
            "(--print-config shows the result).")
    _field_group(p, TrainConfig, "", "run (TrainConfig)", note)
    _field_group(p, LMConfig, "model.", "model (rins.model.LMConfig, task = lm)",
                 "vocab_size and max_seq_len default to the tokenizer's size and data.seq_len. Other tasks take "
                 "their own model tables (e.g. --set model.image.signature=A^2B for siglip).")
    _other_task_models(p)
    _field_group(p, DataConfig, "data.", "data (DataConfig)", "")
    _field_group(p, OptimConfig, "optim.", "optim (OptimConfig)", "")
    _field_group(p, BudgetConfig, "budget.", "budget (BudgetConfig)",
                 "the first of flops, tokens, steps that is set is used; setting any replaces the preset's budget")


def _config_from_args(args: argparse.Namespace):
    from .config import load_config

    preset = args.preset
    if not (args.preset or args.config):
        preset = DEFAULT_PRESET
        print(f"note: neither --preset nor --config given: using preset {DEFAULT_PRESET}", file=sys.stderr)
    return load_config(preset, args.config, list(args.overrides))


def _print_config(cfg) -> int:
    print(json.dumps(cfg.to_dict(), indent=1))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train import launch_train, train

    cfg = _config_from_args(args)
    if args.print_config:
        return _print_config(cfg)
    if args.dist:
        if args.extend:
            raise SystemExit("error: --extend runs on one process; extend the run, then resume it with --dist")
        return launch_train(cfg, resume=not args.no_resume, init_from=args.init, kind=args.dist)
    s = train(cfg, resume=not args.no_resume, init_from=args.init, verify=not args.no_verify, extend=args.extend,
              force=args.force)
    print(json.dumps({k: s[k] for k in ("name", "steps", "tokens", "flops", "val_loss", "val_loss_r") if k in s},
                     indent=1))
    return 0


def _run_train_config(run_dir: Path):
    """The :class:`~rins.config.TrainConfig` a run directory was trained with."""
    from .config import load_run_config

    return load_run_config(run_dir)


def _load_run(run_dir: str, task=None, verify: bool = True):
    """(config, model in eval mode) of a run directory; non-LM tasks rebuild the model via their task."""
    from .checkpoint import load_checkpoint, load_model, load_state_into

    run_dir_path = Path(run_dir)
    cfg = _run_train_config(run_dir_path)
    if cfg.task == "lm":
        return cfg, load_model(run_dir_path, verify=verify)
    weights, _, _ = load_checkpoint(run_dir_path, verify=verify)
    model = task.build_model()
    load_state_into(model, weights, str(run_dir_path))
    return cfg, model.eval()


def _parse_adaptive(values: list[str] | None) -> list | None:
    """The exit rules of the repeatable ``--adaptive RULE=T[,T...]`` flag (None when not given)."""
    if not values:
        return None
    from .adaptive import parse_adaptive

    try:
        return [rule for v in values for rule in parse_adaptive(v)]
    except ValueError as e:
        raise SystemExit(f"error: --adaptive: {e}") from e


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_run, format_results, is_local_text
    from .tasks import get_task

    run_dir_path = Path(args.run_dir)
    cfg = _run_train_config(run_dir_path)
    if args.batches is not None and args.batches < 0:
        raise SystemExit(f"error: --batches must be >= 0 (0 = the whole split), got {args.batches}")
    if cfg.task == "lm":
        split = args.split or ("all" if is_local_text(args.data) else "val")
        try:
            res = evaluate_run(run_dir_path, data=args.data, depths=args.r, batches=args.batches, split=split,
                               verify=not args.no_verify, adaptive=_parse_adaptive(args.adaptive))
        except ValueError as e:
            if args.adaptive and ("exit" in str(e) or "adaptive" in str(e)):
                raise SystemExit(f"error: --adaptive: {e}") from e
            raise
        print(json.dumps(res, indent=1) if args.json else format_results(res))
        return 0
    if args.data:
        raise SystemExit(f"error: --data scores language models; {run_dir_path} is a {cfg.task!r} run")
    if args.adaptive:
        raise SystemExit(f"error: --adaptive scores language models; {run_dir_path} is a {cfg.task!r} run")
    if args.batches:
        cfg.eval_batches = args.batches
    task = get_task(cfg, None)
    task.prepare()
    cfg, model = _load_run(args.run_dir, task, verify=not args.no_verify)
    res = task.evaluate(model, args.r or task.eval_depths(model))
    print(json.dumps({"run": args.run_dir, "results": [res]}, indent=1))
    return 0


def _unescape(text: str) -> str:
    """``--stop`` text with its Python backslash escapes read (``--stop-escapes``); a clear error for a bad one."""
    try:
        return text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError as e:
        raise ValueError(f"--stop {text!r}: invalid backslash escape at character {e.start} ({e.reason}); write "
                         "\\\\ for a backslash, or drop --stop-escapes to take the text literally") from None


def cmd_generate(args: argparse.Namespace) -> int:
    from .data import load_tokenizer
    from .generation import generate_text

    cfg, model = _load_run(args.run_dir, verify=not args.no_verify)
    if cfg.task != "lm":
        raise SystemExit(f"error: rins generate samples text from LM runs; {args.run_dir} is a {cfg.task!r} run")
    rules = _parse_adaptive([args.adaptive] if args.adaptive else None)
    if rules and len(rules) != 1:
        raise SystemExit(f"error: rins generate takes one exit rule with one threshold, e.g. --adaptive kl=0.05; "
                         f"got {args.adaptive!r}")
    if rules and model.r_max is None:
        raise SystemExit(f"error: --adaptive needs a recursed group; {args.run_dir}'s signature "
                         f"{model.config.signature!r} has none")
    stats = None
    if rules:
        from .adaptive import ExitStats

        stats = ExitStats()
    tok = load_tokenizer(tokenizer_file(args.run_dir))
    stream = not args.no_stream

    def show(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    prompt = tok.decode(tok.encode(args.prompt).ids)  # as the tokenizer reads it (normalised)
    if stream:
        show(prompt)
    r = args.r[0] if args.r else None
    text = generate_text(model, tok, args.prompt, args.max_new_tokens, r=r, temperature=args.temperature,
                         top_k=args.top_k or None, top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                         stop=[_unescape(s) for s in args.stop] if args.stop_escapes else args.stop,
                         seed=args.seed, on_text=show if stream else None, sliding_window=args.sliding_window,
                         on_note=lambda m: print(f"note: {m}", file=sys.stderr),
                         exit_rule=rules[0] if rules else None, exit_stats=stats, compile=args.compile)
    print("" if stream else prompt + text)
    if stats is not None and stats.tokens:
        print(f"note: {rules[0]}: {stats.mean_rounds:.2f} rounds per token on average (at most "
              f"{r or model.r_max}; rounds histogram {stats.rounds_hist}, prompt included)", file=sys.stderr)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from .plan import compile_plan

    p = compile_plan(args.signature, args.layers, args.degree, _parse_block_sizes(args.block_sizes),
                     args.r[0] if args.r else None)
    if args.json:
        print(json.dumps(p.to_dict()))
    else:
        print(p.describe())
        print("rounds:", list(p.rounds))
    return 0


def _parse_block_sizes(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"--block-sizes takes comma-separated layer counts, e.g. 2,4; got {text!r}") from None


def cmd_flops(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .flops import training_flops
    from .model import RecursiveLM

    cfg = _config_from_args(args)
    if args.print_config:
        return _print_config(cfg)
    if cfg.task != "lm":
        raise SystemExit(f"error: rins flops counts language models; this config's task is {cfg.task!r}")
    # cfg.model is the typed LMConfig with the trainer's defaults (vocab and length from the data config)
    model = RecursiveLM(cfg.model)
    base = RecursiveLM(replace(cfg.model, signature="AB", adapters="none", p_skip=0.0, degree=1, block_sizes=None))
    T = cfg.data.seq_len
    rs = args.r or [None]
    rows = []
    for r in rs:
        fwd = model.flops_per_token(T, r=r)
        rows.append({"signature": model.config.signature, "r": r or model.r_max, "params": model.num_parameters(),
                     "fwd_flops_per_token": fwd, "train_flops_per_token": training_flops(fwd),
                     "expected_train_flops_per_token": model.flops_per_token(T, r=r, training=True, expected=True),
                     "ratio_to_baseline": fwd / base.flops_per_token(T)})
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for row in rows:
            print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(out_dir=args.out, budget=args.budget, preset=args.preset, corpus=args.corpus, overrides=args.overrides,
             fresh=args.fresh, procs=args.procs)
    return 0


# ----------------------------------------------------------------------------------------------
# The one parser tree: each verb's arguments are added when that verb is parsed or its help shown, so
# `rins sweep ...` imports neither torch nor scipy just to build the parsers of the other verbs.


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.usage = "rins train [--preset NAME] [--config FILE] [--set KEY=VALUE] [--FIELD VALUE ...] [options]"
    g = p.add_argument_group("run control")
    g.add_argument("--no-resume", action="store_true", help="start over even if the run dir has checkpoints")
    g.add_argument("--extend", action="store_true",
                   help="continue a finished run to a larger budget (constant or wsd schedules: from the last "
                   "checkpoint before the learning rate decayed, the decay re-run at the new end)")
    g.add_argument("--init", default=None, metavar="RUN_DIR",
                   help="initialise weights from another run dir (e.g. rins convert)")
    g.add_argument("--dist", choices=["ddp", "fsdp"], default=None,
                   help="data-parallel engine when launched with torchrun")
    g.add_argument("--no-verify", action="store_true",
                   help="resume without checking the checkpoint's SHA-256 sums (shapes, finiteness still checked)")
    g.add_argument("--force", action="store_true",
                   help="train even when the memory estimate exceeds this machine's memory (rins.resources)")
    _add_config_args(p)
    p.set_defaults(func=cmd_train)


def _add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory (holds config.json and checkpoints/)")
    p.add_argument("--r", type=depths_type(), default=None, metavar="INT[,INT...]",
                   help="inference depths, e.g. 1,2,3 (default: 1 .. r_max+1)")
    p.add_argument("--data", default=None, metavar="SPEC",
                   help="score this text instead of the run's corpus: a built-in corpus (e.g. mix-large:linux-doc), "
                   "a .txt/.md/.jsonl file, a folder or hf:NAME; encoded with the run's tokenizer")
    p.add_argument("--split", choices=("val", "train", "all"), default=None,
                   help="which documents to score, split by document as in training; all = every document "
                   "(default: all for a local file or folder given to --data, else val, the held-out documents)")
    p.add_argument("--batches", type=int, default=None,
                   help="at most this many batches of 16 windows, spread over the split (default: the run "
                   "config's eval_batches; 0 = all)")
    p.add_argument("--adaptive", action="append", default=None, metavar="RULE=T[,T...]",
                   help="also score adaptive depth per token with these exit thresholds: kl=0.01,0.1 (KL between "
                   "successive rounds' next-token distributions), hidden=0.1 (relative change of the state), "
                   "confidence=0.9 (max probability); prints loss, bpb, mean rounds and FLOPs per token "
                   "(repeatable)")
    p.add_argument("--json", action="store_true", help="print the results as JSON (depths as integers)")
    p.add_argument("--no-verify", action="store_true", help="skip the checkpoint's SHA-256 check")
    p.set_defaults(func=cmd_eval)


def _add_generate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory of an LM run")
    p.add_argument("--prompt", required=True, metavar="TEXT", help="the text to continue")
    p.add_argument("--r", type=depths_type(one=True), default=None, metavar="INT",
                   help="inference depth (default: the trained exponent)")
    p.add_argument("--max-new-tokens", type=int, default=100, metavar="INT",
                   help="tokens to generate (prompt + new tokens stop at the model's max_seq_len, with a note)")
    p.add_argument("--sliding-window", action="store_true",
                   help="go on past max_seq_len: the newest max_seq_len tokens at most are the context")
    p.add_argument("--compile", action="store_true",
                   help="decode through torch.compile: faster per token after a one-off compile of tens of seconds "
                   "(worth it for hundreds of tokens; same tokens)")
    p.add_argument("--temperature", type=float, default=0.8, metavar="FLOAT", help="sampling temperature (0: greedy)")
    p.add_argument("--top-k", type=int, default=50, metavar="INT",
                   help="sample among the k most likely tokens (0: all)")
    p.add_argument("--top-p", type=float, default=1.0, metavar="FLOAT",
                   help="nucleus sampling: among the most likely tokens holding this much probability (1: off)")
    p.add_argument("--repetition-penalty", type=float, default=1.0, metavar="FLOAT",
                   help="> 1 makes tokens already in the context less likely (1: off)")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="end at this text, which is not printed (repeatable; taken literally, see --stop-escapes)")
    p.add_argument("--stop-escapes", action="store_true",
                   help="read backslash escapes in --stop (\\n, \\t, \\xHH, \\uXXXX, \\\\), e.g. --stop '\\n\\n'")
    p.add_argument("--no-stream", action="store_true", help="print the text once at the end instead of streaming")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--adaptive", default=None, metavar="RULE=T",
                   help="adaptive depth per token: kl=0.05, hidden=0.1 or confidence=0.9 (--r is then the most "
                   "rounds; a token that exits skips the remaining rounds)")
    p.add_argument("--no-verify", action="store_true", help="skip the checkpoint's SHA-256 check")
    p.set_defaults(func=cmd_generate)


def _add_plan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("signature", help="e.g. AB, A^2B, rins(3), (AB)^2")
    p.add_argument("--layers", type=int, required=True, help="number of distinct layers (model.n_layers)")
    p.add_argument("--degree", type=int, default=1, help="nesting degree of the signature")
    p.add_argument("--r", type=depths_type(one=True), default=None, metavar="INT",
                   help="inference depth (default: the signature's exponent)")
    p.add_argument("--block-sizes", default=None, help="comma-separated layer counts per block (default: equal)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_plan)


def _add_flops_arguments(p: argparse.ArgumentParser) -> None:
    p.usage = "rins flops [--r DEPTHS] [--json] [--preset NAME] [--config FILE] [--set KEY=VALUE] [--FIELD VALUE ...]"
    p.add_argument("--r", type=depths_type(), default=None, metavar="INT[,INT...]",
                   help="inference depths, e.g. 1,2,3 (default: the trained exponent)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    _add_config_args(p)
    p.set_defaults(func=cmd_flops)


def _add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="folder of the three runs and the report")
    from .config import PRESETS, preset_dict

    lm_presets = [name for name in PRESETS if preset_dict(name).get("task", "lm") == "lm"]  # the demo trains LMs
    p.add_argument("--budget", type=float, default=None,
                   help="training FLOPs per run (default: the demo shape's, or with --preset the preset's budget)")
    p.add_argument("--preset", default=None, metavar="NAME",
                   help=f"train the three variants on this config preset as it is: {', '.join(lm_presets)} "
                   "(default: the demo's own shape, size S of configs/study-long.toml on preset cpu-small)")
    p.add_argument("--corpus", default=None, help="data.corpus (default: the preset's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field of every run (repeatable; see rins train --help)")
    p.add_argument("--fresh", action="store_true", help="retrain even if the runs exist")
    p.add_argument("--procs", type=int, default=None, metavar="N",
                   help="runs trained at once, each a process with cores/N threads (default: all three on a CPU "
                   "with 2+ cores, one at a time on a GPU)")
    p.set_defaults(func=cmd_demo)


def _add_lm_eval_arguments(p: argparse.ArgumentParser) -> None:
    # lm-eval parses its own flags (main() hands them over unparsed); this entry is only for `rins --help`
    p.add_argument("rest", nargs=argparse.REMAINDER)


# verb: (one-line help, what adds the verb's arguments and its `func`: a function here or "module:function" of
# the module that runs the verb); in `rins --help` order
VERBS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None] | str]] = {
    "train": ("train one run (compute-matched when the budget is in FLOPs)", _add_train_arguments),
    "eval": ("held-out loss / perplexity / bits per byte at each inference depth r", _add_eval_arguments),
    "generate": ("sample text from a trained run (streamed to the terminal)", _add_generate_arguments),
    "plan": ("compile a signature and show the executed layer order", _add_plan_arguments),
    "flops": ("FLOPs per token of a config (per executed layer) vs the plain model", _add_flops_arguments),
    "demo": ("the main job: baseline vs RINS vs stochastic RINS at equal training FLOPs", _add_demo_arguments),
    "sweep": ("run a grid of compute-matched runs from a TOML file", "sweep:add_sweep_arguments"),
    "fit": ("fit scaling laws to run logs", "scaling:add_fit_arguments"),
    "report": ("write a Markdown report with plots from runs", "report:add_report_arguments"),
    "convert": ("convert a Hugging Face causal LM into a rins run", "hf:add_convert_arguments"),
    "export": ("export a rins run as a Hugging Face folder (trust_remote_code)", "hf:add_export_arguments"),
    "lm-eval": ("lm-evaluation-harness's CLI with the rins model (r=DEPTH)", _add_lm_eval_arguments),
}


def _canon(flag: str) -> str:
    """A long flag with ``-`` and ``_`` taken as the same character (after the leading ``--``)."""
    return "--" + flag[2:].replace("-", "_") if flag.startswith("--") else flag


def _typed_metavars(p: argparse.ArgumentParser) -> None:
    """Every option that takes a value shows its type in the help (``--batches INT``, not ``--batches BATCHES``),
    unless it names its own placeholder or lists its choices."""
    for a in p._actions:
        if not a.option_strings or a.nargs == 0 or a.metavar is not None or a.choices is not None:
            continue
        if a.type in (int, float):
            a.metavar = a.type.__name__.upper()
        elif a.type is None:
            pathy = any(w in a.dest for w in ("out", "dir", "path", "file", "config", "tokenizer", "init"))
            a.metavar = "PATH" if pathy else "TEXT"


class _VerbParser(argparse.ArgumentParser):
    """A verb's parser that adds its arguments (``populate``) the first time it parses or shows help."""

    def __init__(self, *args, populate: Callable[[argparse.ArgumentParser], None] | str | None = None,
                 **kw) -> None:
        super().__init__(*args, **kw)
        self._populate = populate

    def _ensure_populated(self) -> None:
        populate, self._populate = self._populate, None
        if isinstance(populate, str):
            import importlib

            module, func = populate.split(":")
            populate = getattr(importlib.import_module(f".{module}", __package__), func)
        if populate is not None:
            populate(self)
            _typed_metavars(self)

    def _long_flags(self) -> list[str]:
        return [o for a in self._actions for o in a.option_strings if o.startswith("--")]

    def _respell(self, args: list[str]) -> list[str]:
        """``--batch_size`` is ``--batch-size`` and ``--model.n-kv-heads`` is ``--model.n_kv_heads``: a flag
        not known as written is looked up with ``-`` and ``_`` taken as the same character."""
        flags = self._long_flags()
        known, canon = set(flags), {_canon(f): f for f in flags}
        out = []
        for i, tok in enumerate(args):
            if tok == "--":  # everything after it is positional
                return out + args[i:]
            if tok.startswith("--"):
                flag, eq, value = tok.partition("=")
                if flag not in known and _canon(flag) in canon:
                    tok = canon[_canon(flag)] + eq + value
            out.append(tok)
        return out

    def parse_known_args(self, args=None, namespace=None):
        self._ensure_populated()
        args = self._respell(list(sys.argv[1:] if args is None else args))
        ns, extras = super().parse_known_args(args, namespace)
        unknown = [x for x in extras if x.startswith("-") and x != "-"]
        if unknown:  # argparse's "unrecognized arguments", with the nearest known flag
            import difflib

            flags = self._long_flags()
            by_canon = {_canon(f): f for f in flags}
            notes = []
            for x in unknown:
                near = difflib.get_close_matches(_canon(x.split("=")[0]), list(by_canon), n=1, cutoff=0.6)
                notes.append(f"{x}" + (f" (did you mean {by_canon[near[0]]}?)" if near else ""))
            self.error(f"unrecognized argument{'s' if len(notes) > 1 else ''}: {', '.join(notes)}")
        return ns, extras

    def format_usage(self) -> str:
        self._ensure_populated()
        return super().format_usage()

    def format_help(self) -> str:
        self._ensure_populated()
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    """The ``rins`` parser: one sub-parser per verb of :data:`VERBS` (the only parser tree of the package)."""
    from . import __version__

    ap = argparse.ArgumentParser(prog="rins", formatter_class=_HelpFormatter,
                                 description="Recursive INference Scaling: train, evaluate and compare recursive "
                                 "transformers at matched compute.",
                                 epilog="`rins VERB --help` shows a verb's options.")
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="VERB", parser_class=_VerbParser)
    for name, (help_, populate) in VERBS.items():
        sub.add_parser(name, help=help_, description=help_, formatter_class=_HelpFormatter, allow_abbrev=False,
                       add_help=name != "lm-eval", populate=populate)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run ``rins ARGV...``; returns the exit status (``--help`` and usage errors exit through argparse)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:  # every verb fails through the same one-line error
        if argv[:1] == ["lm-eval"]:  # lm-eval's own command line, handed over as it is
            from .lm_eval_adapter import main_lm_eval

            return int(main_lm_eval(argv[1:]) or 0)
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # one line, no traceback: what was kept and how to go on
        import shlex

        again = shlex.join(["rins", *[x for x in argv if x not in ("--no-resume", "--extend")]])
        worker = argv[:1] == ["sweep"] and "--worker" in argv  # a sweep's worker: its parent says how to resume
        if hasattr(e, "run_dir"):  # rins.train.TrainingInterrupted: stopped at a step end, checkpointed
            print(f"interrupted: the run was checkpointed at step {e.step}/{e.total} in {e.run_dir}"
                  + ("" if worker else f"; resume it with: {again}"), file=sys.stderr)
        elif hasattr(e, "unfinished"):  # rins.sweep.SweepInterrupted: its workers checkpointed and stopped
            print(f"interrupted: {len(e.unfinished)} selected runs not finished (each keeps its last checkpoint); "
                  f"resume with: {again}", file=sys.stderr)
        elif argv[:1] in (["train"], ["demo"], ["sweep"]) and not worker:
            what = "the run keeps its" if argv[:1] == ["train"] else "each run keeps its"
            print(f"interrupted: {what} last checkpoint, if any; resume with: {again}", file=sys.stderr)
        else:
            print("interrupted", file=sys.stderr)
        return 130


def run_verb(verb: str, argv: Sequence[str] | None = None) -> int:
    """``rins VERB ARGV...`` as a function that returns instead of exiting: ``--help`` gives 0, a usage error 2
    (for calling a verb from Python or a test); ``argv=None`` reads ``sys.argv[1:]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return main([verb, *argv])
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            return 1
        return int(e.code or 0)


if __name__ == "__main__":
    sys.exit(main())
