"""Data-parallel training on CPU (gloo, 2 processes): DDP and FSDP2 equal single-process training, the
stochastic depth draw is identical on every rank, and full checkpoints resume exactly across world sizes.

All distributed runs happen in ONE ``torch.multiprocessing.spawn`` of 2 workers (process start-up and
``import torch`` dominate the cost); the individual tests then compare the logs.
"""

from __future__ import annotations

import json
import os
import random
import socket
from pathlib import Path

import pytest
import torch
import torch._inductor.config as torch_inductor_config
import torch.multiprocessing as mp
from conftest import WORDS

from rins.checkpoint import load_checkpoint, load_model
from rins.config import load_config
from rins.runs import read_log
from rins.train import train

STEPS = 6
STOP = 3
# recursive, stochastic depth and per-round adapters: every rank must draw the same r, and the adapters
# of skipped rounds get no gradient in some steps
MODEL = {"model.signature": "A^2B", "model.p_skip": 0.5, "model.adapters": '"round"'}
CKPT = {"model.activation_checkpointing": "true"}


def _cfg(corpus: Path, cache: Path, out: Path, name: str, **over):
    ov = [f'data.corpus="{corpus}"', f'data.cache_dir="{cache}"', f'out_dir="{out}"', f'name="{name}"',
          "progress=false", f"budget.steps={STEPS}", "log_every=1", "ckpt_every=100", "n_evals=1",
          "eval_batches=1", "device=\"cpu\""]
    ov += [f"{k}={v}" for k, v in {**MODEL, **over}.items()]
    return load_config("tiny", None, ov)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, jobs: list[dict]) -> None:
    """One rank: init gloo once, then run every job (``run_distributed`` reuses the group)."""
    import torch.distributed as dist

    from rins.model import sample_depth
    from rins.train import run_distributed

    torch.set_num_threads(1)
    torch_inductor_config.compile_threads = 1  # no compile worker pool per rank on a 2-core machine
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        # the depth draw of every step is identical on every rank
        draws = torch.tensor([sample_depth(3, 0.5, 0, s) for s in range(64)])
        gathered = [torch.zeros_like(draws) for _ in range(world)]
        dist.all_gather(gathered, draws)
        assert all(torch.equal(g, gathered[0]) for g in gathered), "ranks drew different depths"
        for job in jobs:
            from rins.config import TrainConfig

            cfg = TrainConfig.from_dict(job["cfg"])
            if "sigterm" in job:  # a signal to one rank only (rank, step): every rank must stop at that step
                _run_signalled(cfg, job["kind"], rank, *job["sigterm"])
                continue
            run_distributed(cfg, job["kind"], stop_after=job.get("stop_after"), quiet=True)
    finally:
        dist.destroy_process_group()


def _run_signalled(cfg, kind: str, rank: int, to_rank: int, at_step: int) -> None:
    """Train ``cfg`` with SIGTERM sent to rank ``to_rank`` alone after step ``at_step``; the run must end with
    TrainingInterrupted on every rank."""
    import signal

    import rins.train as T
    from rins.train import run_distributed

    real = T._optimise

    def optimise(run):
        out = real(run)
        if rank == to_rank and run.step == at_step:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    T._optimise = optimise
    try:
        run_distributed(cfg, kind, quiet=True)
    except T.TrainingInterrupted as e:
        assert e.step == at_step, e
    else:
        raise AssertionError(f"rank {rank} was not interrupted")
    finally:
        T._optimise = real


def _losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_log(run, "train")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Single-process references, then all distributed jobs in one 2-process spawn, then resumes."""
    root = tmp_path_factory.mktemp("dist")
    corpus, cache, out = root / "corpus", root / "cache", root / "runs"
    corpus.mkdir()
    rng = random.Random(0)
    for i in range(3):
        (corpus / f"doc{i}.txt").write_text(
            "\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) + "." for _ in range(200)))
    torch.set_num_threads(1)
    train(_cfg(corpus, cache, out, "single"), quiet=True)
    train(_cfg(corpus, cache, out, "single_to_fsdp"), quiet=True, stop_after=STOP)  # resumed by 2 ranks
    jobs = [
        {"cfg": _cfg(corpus, cache, out, "ddp").to_dict(), "kind": "ddp"},
        {"cfg": _cfg(corpus, cache, out, "fsdp").to_dict(), "kind": "fsdp"},
        # FSDP with gradient accumulation (no_sync on all but the last micro-batch)
        {"cfg": _cfg(corpus, cache, out, "fsdp_accum", grad_accum=2).to_dict(), "kind": "fsdp"},
        # interrupted after STOP steps, resumed by the same world size
        {"cfg": _cfg(corpus, cache, out, "fsdp_resume").to_dict(), "kind": "fsdp", "stop_after": STOP},
        {"cfg": _cfg(corpus, cache, out, "fsdp_resume").to_dict(), "kind": "fsdp"},
        {"cfg": _cfg(corpus, cache, out, "ddp_resume").to_dict(), "kind": "ddp", "stop_after": STOP},
        {"cfg": _cfg(corpus, cache, out, "ddp_resume").to_dict(), "kind": "ddp"},
        # saved by 2 ranks, resumed by 1 (below) / saved by 1 rank (above), resumed by 2
        {"cfg": _cfg(corpus, cache, out, "fsdp_to_single").to_dict(), "kind": "fsdp", "stop_after": STOP},
        {"cfg": _cfg(corpus, cache, out, "single_to_fsdp").to_dict(), "kind": "fsdp"},
        # the fast paths under both engines: activation checkpointing (a shared block recomputed per
        # application), and torch.compile per block (compiled before sharding, as rins.train does)
        {"cfg": _cfg(corpus, cache, out, "fsdp_ckpt", **CKPT).to_dict(), "kind": "fsdp"},
        {"cfg": _cfg(corpus, cache, out, "ddp_ckpt", **CKPT).to_dict(), "kind": "ddp"},
        {"cfg": _cfg(corpus, cache, out, "fsdp_compile", compile="true").to_dict(), "kind": "fsdp"},
        {"cfg": _cfg(corpus, cache, out, "ddp_compile", compile="true").to_dict(), "kind": "ddp"},
        # SIGTERM (a scheduler's stop) to rank 1 alone: both ranks stop at the end of that step and checkpoint
        {"cfg": _cfg(corpus, cache, out, "ddp_sigterm").to_dict(), "kind": "ddp", "sigterm": (1, 2)},
    ]
    mp.spawn(_worker, args=(2, _free_port(), jobs), nprocs=2, join=True)
    train(_cfg(corpus, cache, out, "fsdp_to_single"), quiet=True)
    return out


def test_ddp_and_fsdp_match_single_process(runs):
    ref = _losses(runs / "single")
    assert sorted(ref) == list(range(1, STEPS + 1))
    for name in ("ddp", "fsdp", "fsdp_accum"):
        got = _losses(runs / name)
        assert sorted(got) == sorted(ref), name
        assert [got[k] for k in ref] == pytest.approx([ref[k] for k in ref], rel=1e-4, abs=1e-5), name
    # the final weights agree too (FSDP checkpoints are gathered to full tensors)
    a, b = load_model(runs / "single").state_dict(), load_model(runs / "fsdp").state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)


def test_fast_paths_under_ddp_and_fsdp_match_single_process(runs):
    """Activation checkpointing and compiled blocks give the single-process losses under DDP and FSDP2."""
    ref = _losses(runs / "single")
    for name in ("fsdp_ckpt", "ddp_ckpt", "fsdp_compile", "ddp_compile"):
        got = _losses(runs / name)
        assert sorted(got) == sorted(ref), name
        assert [got[k] for k in ref] == pytest.approx([ref[k] for k in ref], rel=1e-4, abs=1e-5), name


def test_distributed_resume_is_exact(runs):
    for kind in ("ddp", "fsdp"):
        full, res = _losses(runs / kind), _losses(runs / f"{kind}_resume")
        assert sorted(res) == sorted(full)
        assert all(res[k] == full[k] for k in full), (kind, full, res)


def test_resume_across_world_sizes(runs):
    ref = _losses(runs / "single")
    for name in ("fsdp_to_single", "single_to_fsdp"):
        got = _losses(runs / name)
        assert sorted(got) == sorted(ref), name
        assert [got[k] for k in ref] == pytest.approx([ref[k] for k in ref], rel=1e-4, abs=1e-5), name


def test_distributed_checkpoint_is_the_single_process_format(runs):
    w1, o1, m1 = load_checkpoint(runs / "single")
    w2, o2, m2 = load_checkpoint(runs / "fsdp")
    assert w1.keys() == w2.keys() and "head.weight" not in w2  # tied head stored once
    assert o1.keys() - {"rng.torch"} == o2.keys() - {"rng.torch"}
    assert m1["optimizer"]["param_groups"] == m2["optimizer"]["param_groups"]
    assert m2["world_size"] == 2 and m2["dist"] == "fsdp"
    assert json.loads((runs / "fsdp" / "summary.json").read_text())["complete"]


def test_a_stop_signal_to_one_rank_stops_every_rank_at_the_same_step(runs):
    """Rank 1 alone got SIGTERM after step 2: both ranks raised TrainingInterrupted at step 2 (checked in the
    workers) and the collective checkpoint is at step 2, resumable; the log ends there."""
    from rins.checkpoint import latest_checkpoint

    run = runs / "ddp_sigterm"
    assert latest_checkpoint(run).name == "step_00000002"
    assert sorted(_losses(run)) == [1, 2]
