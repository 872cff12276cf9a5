"""Compute-matched SigLIP and ViT-classifier study on CPU (docs/method.md §9 claim 7, at toy scale).

Variants (same parameters up to adapters, same training FLOPs; a recursive variant takes fewer steps):

* SigLIP baseline (both towers ``AB``), RINS on the image tower (``A^2B``), RINS on the text tower,
  stochastic RINS on the image tower (``A^2B``, p_s = 0.5, round adapters);
* ViT classifier baseline (``AB``) and RINS (``A^2B``), the control.

The budget is ``steps × flops_per_step(baseline)``; every variant trains for ``budget / flops_per_step``
steps with the same schedule shape, through the library's trainer (:func:`rins.train.train`). Writes
``study.json``, ``study.md`` and ``study.png`` into ``--out``.

Example (about 8 min per seed with one thread on a shared 2-core machine)::

    flock /tmp/rins-cpu.lock .venv/bin/python benchmarks/siglip_cpu_study.py --out runs/siglip_study
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, loadavg, machine, table  # noqa: E402

from rins.config import TrainConfig  # noqa: E402
from rins.tasks.vision import SigLIPTask, ViTClassifierTask  # noqa: E402
from rins.train import train  # noqa: E402


def tower(d: int, layers: int, **kw) -> dict:
    return {"n_layers": layers, "d_model": d, "n_heads": 4, "pool": "mean", **kw}


def variants(d: int, layers: int, patch: int, loss: str) -> dict[str, tuple[str, dict]]:
    img = dict(patch_size=patch)
    rins = {"signature": "A^2B"}
    stoch = {"signature": "A^2B", "p_skip": 0.5, "adapters": "round"}
    sig = lambda i, t: {"embed_dim": d, "loss": loss, "image": tower(d, layers, **img, **i),  # noqa: E731
                        "text": tower(d, layers, **t)}
    return {
        "siglip-baseline": ("siglip", sig({}, {})),
        "siglip-rins-image": ("siglip", sig(rins, {})),
        "siglip-rins-text": ("siglip", sig({}, rins)),
        "siglip-stoch-rins-image": ("siglip", sig(stoch, {})),
        "vit-baseline": ("vit", tower(d, layers, **img)),
        "vit-rins": ("vit", tower(d, layers, **img, **rins)),
    }


def make_cfg(name: str, task: str, model: dict, args, flops: float | None, steps: int | None) -> TrainConfig:
    return TrainConfig.from_dict({
        "name": name, "task": task,
        "model": model,
        "seed": args.seed, "batch_size": args.batch_size,
        "data": {"corpus": args.corpus, "cache_dir": args.cache_dir,
                 "options": {"augment": False, "eval_images": 1000, "eval_retrieval": 500}},
        "budget": {"flops": flops} if flops else {"steps": steps},
        "optim": {"lr": args.lr, "warmup_frac": 0.1, "weight_decay": 0.0, "min_lr_ratio": 0.1},
        "n_evals": 1, "eval_batches": 4, "ckpt_every": 10 ** 9, "keep_last": 1, "log_every": 50,
        "out_dir": str(args.out / "runs"), "progress": False, "device": "cpu",
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/siglip_study"))
    ap.add_argument("--corpus", default="fashion-mnist")
    ap.add_argument("--cache-dir", default=".cache/rins")
    ap.add_argument("--baseline-steps", type=int, default=600, help="steps the SigLIP baseline gets (sets the budget)")
    ap.add_argument("--vit-baseline-steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--d-model", type=int, default=48)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--patch", type=int, default=7)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--loss", default="sigmoid", choices=("sigmoid", "softmax"),
                    help="contrastive loss of every SigLIP variant (sigmoid = the paper's)")
    ap.add_argument("--only", nargs="*", help="run only these variants")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)

    vs = variants(args.d_model, args.layers, args.patch, args.loss)
    # budgets from each family's baseline
    budgets = {}
    for fam, base, steps in (("siglip", "siglip-baseline", args.baseline_steps),
                             ("vit", "vit-baseline", args.vit_baseline_steps)):
        cfg = make_cfg(base, fam, vs[base][1], args, None, steps)
        task = (SigLIPTask if fam == "siglip" else ViTClassifierTask)(cfg, None)
        task.prepare()
        budgets[fam] = steps * task.flops_per_step(task.build_model(), args.batch_size)
    results = []
    t_all = time.time()
    for name, (fam, model) in vs.items():
        if args.only and name not in args.only:
            continue
        cfg = make_cfg(name, fam, model, args, budgets[fam], None)
        t0 = time.time()
        s = train(cfg, resume=False, quiet=True)
        rec = {"name": name, "task": fam, "model": model, "seconds": time.time() - t0, **{
            k: s.get(k) for k in ("params", "steps", "tokens", "flops", "flops_per_step", "val_loss", "val_loss_r",
                                  "zeroshot_top1", "zeroshot_top1_r", "zeroshot_top5_r", "retrieval", "retrieval_r",
                                  "val_acc", "val_acc_r")}}
        results.append(rec)
        print(f"[study] {name}: steps={rec['steps']} flops={rec['flops']:.3g} val_loss={rec['val_loss']:.4f} "
              f"zs={rec.get('zeroshot_top1')} acc={rec.get('val_acc')} ({rec['seconds']:.0f}s)", flush=True)
    meta = {"command": command_line(), "machine": machine(), "loadavg_end": loadavg(), "budgets": budgets,
            "seconds": time.time() - t_all, "args": {k: str(v) for k, v in vars(args).items()}}
    (args.out / "study.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    md = render_markdown(results, meta)
    (args.out / "study.md").write_text(md)
    plot(results, args.out / "study.png")
    print(md)


def _fmt(x, p=3) -> str:
    return "–" if x is None else f"{x:.{p}f}"


def render_markdown(results: list[dict], meta: dict) -> str:
    rows = []
    for r in results:
        depth = r.get("zeroshot_top1_r") or r.get("val_acc_r") or {}
        per_r = " / ".join(f"r{k}: {v:.3f}" for k, v in depth.items()) or "–"
        ret = (r.get("retrieval") or {}).get("i2t_r@1")
        metric = r.get("zeroshot_top1") if r["task"] == "siglip" else r.get("val_acc")
        rows.append([r["name"], f"{r['params']:,}", f"{r['flops_per_step']:.3g}", r["steps"], r["tokens"],
                     f"{r['flops']:.3g}", _fmt(r["val_loss"]), _fmt(metric), per_r, _fmt(ret), f"{r['seconds']:.0f}"])
    head = ["variant", "params", "FLOPs/step", "steps", "examples", "train FLOPs", "val loss",
            "0-shot top-1 / val acc", "per inference r", "i2t R@1", "s"]
    return (f"Compute-matched (same training FLOPs within a family; recursive variants take fewer steps).\n"
            f"Machine: {meta['machine']}; load average at the end {meta['loadavg_end']}; "
            f"total {meta['seconds'] / 60:.1f} min.\n\n" + table(head, rows) +
            f"\n\nCommand: `{meta['command']}`\n")


def plot(results: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return
    from matplotlib.ticker import MaxNLocator

    from rins.plots import model_color, style_axes

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, fam, key, label in ((axes[0], "siglip", "zeroshot_top1_r", "zero-shot top-1"),
                                (axes[1], "vit", "val_acc_r", "val accuracy")):
        for r in results:
            if r["task"] != fam:
                continue
            t, on_text = _recursed_tower(r.get("model") or {})
            color = model_color(t)
            d = r.get(key) or {}
            if d:  # the text tower's recursion dashed: same layout (colour), other tower
                ax.plot([int(k) for k in d], list(d.values()), marker="o", ls="--" if on_text else "-", color=color,
                        label=r["name"], zorder=3)
            else:  # no recursion: a thin line under the curves, so that it hides none of them
                main = r.get("zeroshot_top1") if fam == "siglip" else r.get("val_acc")
                ax.axhline(main, ls=":", lw=0.9, color=color, zorder=1, label=f"{r['name']} (no recursion)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # depths are whole rounds: no 1.25 ticks
        ax.set_xlabel("inference depth r of the recursed tower")
        ax.set_ylabel(label)
        style_axes(ax, f"{fam}: compute-matched")  # the look of the report and demo plots (legend beside)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _recursed_tower(model: dict) -> tuple[dict, bool]:
    """The tower that recurses (SigLIP: image or text; ViT: itself) and whether it is the text tower."""
    for name in ("image", "text"):
        if (model.get(name) or {}).get("signature", "AB") != "AB":
            return model[name], name == "text"
    return (model if "image" not in model else {}), False


if __name__ == "__main__":
    main()
