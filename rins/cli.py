"""The ``rins`` command line: train, eval, generate, plan, flops, demo (+ sweep, fit, report, convert, export,
lm-eval)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main"]


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, help="named config preset: tiny, cpu-small, gpu-125m, gpu-350m")
    p.add_argument("--config", default=None, help="TOML config file (may set preset = '...')")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set model.d_model=512 (repeatable)")
    p.add_argument("--signature", default=None, help="shortcut for --set model.signature=...")
    p.add_argument("--name", default=None, help="run name (folder under out_dir)")
    p.add_argument("--out-dir", default=None, help="parent folder of run directories (default runs/)")
    p.add_argument("--device", default=None, help="cpu | cuda | auto")


def _config_from_args(a: argparse.Namespace):
    from .config import load_config

    ov = list(a.overrides)
    for flag, key in (("signature", "model.signature"), ("name", "name"), ("out_dir", "out_dir"),
                      ("device", "device")):
        val = getattr(a, flag, None)
        if val is not None:
            ov.append(f"{key}={json.dumps(val) if flag != 'signature' else val}")
    preset = a.preset if (a.preset or a.config) else "cpu-small"
    return load_config(preset, a.config, ov)


def cmd_train(a: argparse.Namespace) -> int:
    from .train import train

    cfg = _config_from_args(a)
    if a.dist:
        from .distributed import launch_train

        return launch_train(cfg, resume=not a.no_resume, init_from=a.init, kind=a.dist)
    s = train(cfg, resume=not a.no_resume, init_from=a.init, verify=not a.no_verify)
    print(json.dumps({k: s[k] for k in ("name", "steps", "tokens", "flops", "val_loss", "val_loss_r") if k in s},
                     indent=1))
    return 0


def _load_run(run_dir: str, task=None, verify: bool = True):
    """(config, model in eval mode) of a run directory; non-LM tasks rebuild the model via their task."""
    from .checkpoint import load_checkpoint, load_model, load_state_into
    from .config import TrainConfig

    rd = Path(run_dir)
    if not (rd / "config.json").is_file():
        raise SystemExit(f"error: {rd} is not a run directory (no config.json)")
    cfg = TrainConfig.from_dict(json.loads((rd / "config.json").read_text()))
    if cfg.task == "lm":
        return cfg, load_model(rd, verify=verify)
    weights, _, _ = load_checkpoint(rd, verify=verify)
    model = task.build_model()
    load_state_into(model, weights, str(rd))
    return cfg, model.eval()


def _parse_rs(text: str | None) -> list[int | None] | None:
    if not text:
        return None
    try:
        rs = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise SystemExit(f"error: --r takes comma-separated integers, e.g. 1,2,3 ({e})") from e
    if any(r < 1 for r in rs):
        raise SystemExit("error: every r must be >= 1")
    return rs


def cmd_eval(a: argparse.Namespace) -> int:
    from .config import TrainConfig
    from .evaluation import evaluate_run, format_results
    from .train import get_task

    rd = Path(a.run_dir)
    if not (rd / "config.json").is_file():
        raise SystemExit(f"error: {rd} is not a run directory (no config.json)")
    cfg = TrainConfig.from_dict(json.loads((rd / "config.json").read_text()))
    if a.batches is not None and a.batches < 0:
        raise SystemExit(f"error: --batches must be >= 0 (0 = the whole split), got {a.batches}")
    if cfg.task == "lm":
        res = evaluate_run(rd, data=a.data, depths=_parse_rs(a.r), batches=a.batches, split=a.split)
        print(json.dumps(res, indent=1) if a.json else format_results(res))
        return 0
    if a.data:
        raise SystemExit(f"error: --data scores language models; {rd} is a {cfg.task!r} run")
    if a.batches:
        cfg.eval_batches = a.batches
    task = get_task(cfg, None)
    task.prepare()
    cfg, model = _load_run(a.run_dir, task)
    res = task.evaluate(model, _parse_rs(a.r) or task.eval_depths(model))
    print(json.dumps({"run": a.run_dir, "results": [res]}, indent=1))
    return 0


def cmd_generate(a: argparse.Namespace) -> int:
    import torch

    from .data import load_tokenizer

    cfg, model = _load_run(a.run_dir, verify=not a.no_verify)
    tok = load_tokenizer(Path(a.run_dir) / "tokenizer.json")
    ids = tok.encode(a.prompt).ids
    if not ids:
        raise SystemExit("error: the prompt encodes to no tokens; give a non-empty --prompt")
    if a.max_new_tokens < 0:
        raise SystemExit(f"error: --max-new-tokens must be >= 0, got {a.max_new_tokens}")
    # the trained context is the limit (memory and time grow with it): longer requests stop there
    room = model.config.max_seq_len - len(ids)
    if room < 1:
        raise SystemExit(f"error: the prompt has {len(ids)} tokens, the model's context is max_seq_len="
                         f"{model.config.max_seq_len}; shorten --prompt")
    n = min(a.max_new_tokens, room)
    if n < a.max_new_tokens:
        print(f"note: --max-new-tokens {a.max_new_tokens} capped to {n} (prompt {len(ids)} + new tokens <= "
              f"max_seq_len={model.config.max_seq_len})", file=sys.stderr)
    gen = torch.Generator().manual_seed(a.seed)
    out = model.generate(torch.tensor([ids]), n, r=a.r, temperature=a.temperature, top_k=a.top_k, generator=gen)
    print(tok.decode(out[0].tolist()))
    return 0


def cmd_plan(a: argparse.Namespace) -> int:
    from .plan import compile_plan

    p = compile_plan(a.signature, a.layers, a.degree, _sizes(a.block_sizes), a.r)
    if a.json:
        print(json.dumps(p.to_dict()))
    else:
        print(p.describe())
        print("rounds:", list(p.rounds))
    return 0


def _sizes(text: str | None) -> list[int] | None:
    return [int(x) for x in text.split(",")] if text else None


def cmd_flops(a: argparse.Namespace) -> int:
    from .model import LMConfig, RecursiveLM

    cfg = _config_from_args(a)
    m = dict(cfg.model)
    m.setdefault("vocab_size", cfg.data.vocab_size)
    m.setdefault("max_seq_len", cfg.data.seq_len)
    model = RecursiveLM(LMConfig.from_dict(m))
    base = RecursiveLM(LMConfig.from_dict({**m, "signature": "AB", "adapters": "none", "p_skip": 0.0,
                                           "degree": 1, "block_sizes": None}))
    T = cfg.data.seq_len
    rs = _parse_rs(a.r) or [None]
    rows = []
    for r in rs:
        fwd = model.flops_per_token(T, r=r)
        rows.append({"signature": model.config.signature, "r": r or model.r_max, "params": model.num_parameters(),
                     "fwd_flops_per_token": fwd, "train_flops_per_token": 3 * fwd,
                     "expected_train_flops_per_token": model.flops_per_token(T, r=r, training=True, expected=True),
                     "ratio_to_baseline": fwd / base.flops_per_token(T)})
    if a.json:
        print(json.dumps(rows, indent=1))
    else:
        for row in rows:
            print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(out_dir=a.out, budget=a.budget, preset=a.preset, corpus=a.corpus, overrides=a.overrides,
             fresh=a.fresh)
    return 0


def _delegate(module: str, func: str, argv: list[str]) -> int:
    import importlib

    mod = importlib.import_module(f".{module}", __package__)
    return int(getattr(mod, func)(argv) or 0)


DELEGATED = {
    "sweep": ("sweep", "main_sweep", "run a grid of compute-matched runs from a TOML file"),
    "fit": ("scaling", "main_fit", "fit scaling laws to run logs"),
    "report": ("report", "main_report", "write a Markdown report with plots from runs"),
    "convert": ("hf", "main_convert", "convert a Hugging Face causal LM into a rins run"),
    "export": ("hf", "main_export", "export a rins run as a Hugging Face folder (trust_remote_code)"),
    "lm-eval": ("lm_eval_adapter", "main_lm_eval", "lm-evaluation-harness's CLI with the rins model (r=DEPTH)"),
}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rins", description="Recursive INference Scaling: train, evaluate and "
                                 "compare recursive transformers at matched compute.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("train", help="train one run (compute-matched when the budget is in FLOPs)")
    _add_config_args(p)
    p.add_argument("--no-resume", action="store_true", help="start over even if the run dir has checkpoints")
    p.add_argument("--init", default=None, help="initialise weights from another run dir (e.g. rins convert)")
    p.add_argument("--dist", choices=["ddp", "fsdp"], default=None,
                   help="data-parallel engine when launched with torchrun")
    p.add_argument("--no-verify", action="store_true",
                   help="resume without checking the checkpoint's SHA-256 sums (shapes, finiteness still checked)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="held-out loss / perplexity / bits per byte at each inference depth r")
    p.add_argument("run_dir")
    p.add_argument("--r", default=None, help="comma-separated depths, e.g. 1,2,3 (default 1..r_max+1)")
    p.add_argument("--data", default=None, metavar="SPEC",
                   help="score this text instead of the run's corpus: a built-in corpus (e.g. mix-large:linux-doc), "
                   "a .txt/.md/.jsonl file, a folder or hf:NAME; encoded with the run's tokenizer")
    p.add_argument("--split", choices=("val", "train"), default="val",
                   help="which documents of the data to score (split by document as in training)")
    p.add_argument("--batches", type=int, default=None,
                   help="at most this many batches of 16 windows, spread over the split (default from the run "
                   "config; 0 = all)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("generate", help="sample text from a trained run")
    p.add_argument("run_dir")
    p.add_argument("--prompt", required=True)
    p.add_argument("--r", type=int, default=None, help="recursion depth (default: the trained exponent)")
    p.add_argument("--max-new-tokens", type=int, default=100)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-verify", action="store_true", help="skip the checkpoint's SHA-256 check")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("plan", help="compile a signature and show the executed layer order")
    p.add_argument("signature")
    p.add_argument("--layers", type=int, required=True)
    p.add_argument("--degree", type=int, default=1)
    p.add_argument("--r", type=int, default=None)
    p.add_argument("--block-sizes", default=None, help="comma-separated layer counts per block")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("flops", help="FLOPs per token of a config (per executed layer) vs the plain model")
    _add_config_args(p)
    p.add_argument("--r", default=None, help="comma-separated depths")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_flops)

    p = sub.add_parser("demo", help="the main job: baseline vs RINS vs stochastic RINS at equal training FLOPs")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--budget", type=float, default=None, help="training FLOPs per run (default: preset's)")
    p.add_argument("--preset", default="cpu-small")
    p.add_argument("--corpus", default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--fresh", action="store_true", help="retrain even if the runs exist")
    p.set_defaults(func=cmd_demo)

    for name, (_, _, help_) in DELEGATED.items():
        sp = sub.add_parser(name, help=help_, add_help=False)
        sp.add_argument("rest", nargs=argparse.REMAINDER)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    delegated = DELEGATED.get(argv[0]) if argv else None
    args = None if delegated else build_parser().parse_args(argv)
    try:  # delegated commands (convert, export, ...) fail through the same one-line error
        if delegated:
            return _delegate(delegated[0], delegated[1], argv[1:])
        return int(args.func(args) or 0)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
