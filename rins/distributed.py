"""Data-parallel training with ``torch.distributed``: DDP and FSDP2, launched by ``torchrun``.

``rins train --dist ddp|fsdp`` under ``torchrun`` calls :func:`rins.train.launch_train`, which initialises
the process group from the torchrun environment (:func:`init_from_env`: ``gloo`` on CPU, ``nccl`` on CUDA),
pins each process to its ``LOCAL_RANK`` device, builds a :class:`DistContext` and runs
:func:`rins.train.train` with it. This module holds only those parts (and :func:`unwrap`, which the tasks
use); it imports neither the config nor the trainer.

What the context guarantees:

* **Same examples, any world size.** Each rank trains on its contiguous share of a global batch that
  depends only on ``(seed, step)`` (``LMTask.train_batch``), so 1, 2 or 8 ranks see the same data.
* **Same stochastic depth on every rank.** The depth draw is seeded by ``(depth_seed, step)``; no
  communication is needed, and every rank runs the same number of rounds (tested).
* **Full checkpoints.** Weights and optimizer state are gathered with
  ``torch.distributed.checkpoint.state_dict`` (``full_state_dict=True, cpu_offload=True``) and rank 0
  writes them in the single-process safetensors format of :mod:`rins.checkpoint` (optimizer state keyed
  by parameter index in ``param_groups`` order). A checkpoint therefore resumes under any world size
  and either engine (or none): save with 2 ranks, resume with 1, or the other way round.
* **FSDP2 and shared blocks.** ``fully_shard`` wraps every block, then the root. A block that the
  plan applies several times per step (the ``A`` of ``A^rB``) is sharded with
  ``reshard_after_forward=False``: its parameters are all-gathered once in the forward and stay
  unsharded for its remaining applications, instead of one all-gather per application. Gradients of all
  applications are accumulated into the same sharded gradient (FSDP2 runs one post-backward per
  application; a test checks the result equals single-process training).
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .checkpoint import check_optimizer_state, restore_optimizer, save_checkpoint, tied_aliases, unflatten_optimizer

__all__ = ["DistContext", "unwrap", "shard_model", "init_from_env"]

_STATE_OPTS = dict(full_state_dict=True, cpu_offload=True)


def unwrap(model: nn.Module) -> nn.Module:
    """The user model inside a DDP wrapper (FSDP2 shards in place, so it is returned unchanged)."""
    return getattr(model, "module", model)


def shard_model(model: nn.Module, mesh: Any, mp_policy: Any = None) -> nn.Module:
    """Apply FSDP2 ``fully_shard`` to every block of the model's stack, then to the root (in place).

    Blocks applied more than once per step by the trained plan keep their parameters unsharded
    between applications (``reshard_after_forward=False``): one all-gather per forward instead of one
    per application. Other blocks reshard after their forward (ZeRO-3). The root (embedding, tied LM
    head, final norm, adapters) is not resharded after forward, since backward starts with the head.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    kw: dict[str, Any] = {"mesh": mesh}
    if mp_policy is not None:
        kw["mp_policy"] = mp_policy if isinstance(mp_policy, MixedPrecisionPolicy) else MixedPrecisionPolicy()
    stack = getattr(model, "stack", None)
    blocks = getattr(stack, "blocks", None)
    if blocks is not None:
        uses = Counter(stack.plan(None).layers) if hasattr(stack, "plan") else Counter()
        for i, blk in enumerate(blocks):
            fully_shard(blk, reshard_after_forward=uses.get(i, 1) <= 1, **kw)
    fully_shard(model, reshard_after_forward=False, **kw)
    return model


def _param_names(core: nn.Module) -> dict[int, str]:
    """id(parameter) -> its first (deduplicated) name, as ``named_parameters`` and DCP report it."""
    return {id(p): n for n, p in core.named_parameters()}


def _optimizer_order(core: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """Parameter names in the order ``optimizer.state_dict()`` numbers them (groups, then params)."""
    names = _param_names(core)
    out = []
    for g in optimizer.param_groups:
        for p in g["params"]:
            if id(p) not in names:
                raise RuntimeError("optimizer holds a parameter that is not in the model")
            out.append(names[id(p)])
    return out


def optimizer_fqn_to_index(osd: dict[str, Any], order: list[str]) -> dict[str, Any]:
    """Convert a DCP optimizer state dict (keyed by parameter name) to ``optimizer.state_dict()`` format."""
    index = {n: i for i, n in enumerate(order)}
    state = {index[k]: v for k, v in osd["state"].items()}
    groups = []
    for g in osd["param_groups"]:
        g = dict(g)
        g["params"] = [index[n] for n in g["params"]]
        groups.append(g)
    return {"state": state, "param_groups": groups}


def optimizer_index_to_fqn(sd: dict[str, Any], order: list[str]) -> dict[str, Any]:
    """Inverse of :func:`optimizer_fqn_to_index`."""
    state = {order[int(i)]: v for i, v in sd["state"].items()}
    groups = []
    for g in sd["param_groups"]:
        g = dict(g)
        g["params"] = [order[int(i)] for i in g["params"]]
        groups.append(g)
    return {"state": state, "param_groups": groups}


class _StateView(nn.Module):
    """Presents a gathered state dict (and model config) to :func:`rins.checkpoint.save_checkpoint`."""

    def __init__(self, state: dict[str, torch.Tensor], config: Any) -> None:
        super().__init__()
        self._state = state
        if config is not None:
            self.config = config

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return self._state


class _OptimView:
    def __init__(self, sd: dict[str, Any]) -> None:
        self._sd = sd

    def state_dict(self) -> dict[str, Any]:
        return self._sd


class DistContext:
    """What :func:`rins.train.train` needs from a distributed run (one instance per process).

    Attributes:
        rank, world_size, local_rank: this process's place in the (already initialised) process group.
        device: the device this rank computes on.
        kind: ``"ddp"`` or ``"fsdp"`` (FSDP2 ``fully_shard``).
        mixed_precision: FSDP2 only; ``None`` keeps fp32 parameters (autocast does the bf16 compute, as
            in single-process training), or a ``torch.distributed.fsdp.MixedPrecisionPolicy``.
    """

    def __init__(self, kind: str, device: torch.device, mixed_precision: Any = None) -> None:
        if kind not in ("ddp", "fsdp"):
            raise ValueError(f"kind must be 'ddp' or 'fsdp', got {kind!r}")
        if not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised; launch with torchrun "
                               "(see rins.train.launch_train)")
        self.kind = kind
        self.device = torch.device(device)
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))
        self.mixed_precision = mixed_precision
        self._core: nn.Module | None = None

    # -- collectives ----------------------------------------------------------------------------
    def barrier(self) -> None:
        """Wait for every rank."""
        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index or 0])
        else:
            dist.barrier()

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """All-reduce mean of a tensor (gloo has no AVG, so SUM / world)."""
        t = t.detach().clone().to(self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t / self.world_size

    # -- wrapping -------------------------------------------------------------------------------
    def wrap(self, model: nn.Module) -> nn.Module:
        """DDP-wrap or FSDP2-shard ``model`` (already on ``device``); returns the module to train."""
        self._core = model
        if self.kind == "ddp":
            from torch.nn.parallel import DistributedDataParallel as DDP

            cfg = getattr(model, "config", None)
            # adapters of rounds that a stochastic draw skips get no gradient in that step
            unused = bool(cfg is not None and getattr(cfg, "adapters", "none") != "none"
                          and getattr(cfg, "p_skip", 0) > 0)
            ids = [self.device.index or 0] if self.device.type == "cuda" else None
            return DDP(model, device_ids=ids, find_unused_parameters=unused)
        from torch.distributed.device_mesh import init_device_mesh

        mesh = init_device_mesh(self.device.type, (self.world_size,))
        return shard_model(model, mesh, self.mixed_precision)

    def no_sync(self, model: nn.Module) -> contextlib.AbstractContextManager:
        """Skip the gradient all-reduce / reduce-scatter (grad-accumulation micro-batches but the last)."""
        if self.kind == "ddp":
            return model.no_sync()
        return self._fsdp_no_sync(model)

    @staticmethod
    @contextlib.contextmanager
    def _fsdp_no_sync(model: nn.Module) -> Iterator[None]:
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)

    # -- checkpoints ----------------------------------------------------------------------------
    def gather_state(self, model: nn.Module, optimizer: torch.optim.Optimizer | None
                     ) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
        """Full (unsharded, CPU) model and optimizer state on rank 0 (empty elsewhere); collective.

        The optimizer state comes back in ``optimizer.state_dict()`` format (parameter indices).
        """
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        opts = StateDictOptions(**_STATE_OPTS)
        msd = get_model_state_dict(model, options=opts)
        osd = get_optimizer_state_dict(model, optimizer, options=opts) if optimizer is not None else None
        if self.rank != 0:
            return {}, None
        core = unwrap(model)
        alias = tied_aliases(core)
        msd = {k: v for k, v in msd.items() if k not in alias}
        if osd is not None:
            osd = optimizer_fqn_to_index(osd, _optimizer_order(core, optimizer))
        return msd, osd

    def save_checkpoint(self, run_dir: str | Path, step: int, wrapped_model: nn.Module,
                        optimizer: torch.optim.Optimizer, meta: dict[str, Any], keep_last: int) -> Path | None:
        """Gather the full state and write a single-process-format checkpoint from rank 0 (collective)."""
        msd, osd = self.gather_state(wrapped_model, optimizer)
        out = None
        if self.rank == 0:
            core = unwrap(wrapped_model)
            meta = {**meta, "world_size": self.world_size, "dist": self.kind}
            out = save_checkpoint(run_dir, step, _StateView(msd, getattr(core, "config", None)),
                                  _OptimView(osd) if osd is not None else None, meta, keep_last=keep_last)
        self.barrier()
        return out

    def restore_optimizer(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                          opt_tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Load a full (index-keyed) optimizer state saved by any world size into this rank's optimizer.

        DDP: a plain ``load_state_dict`` (replicated parameters). FSDP2: through
        ``set_optimizer_state_dict(full_state_dict=True)``, which shards each state tensor like its
        DTensor parameter. Every rank reads the checkpoint itself, so nothing is broadcast.
        """
        if self.kind == "ddp":
            restore_optimizer(optimizer, opt_tensors, meta)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        if "optimizer" not in meta:
            from .checkpoint import CheckpointError

            raise CheckpointError("checkpoint has no optimizer state")
        sd = unflatten_optimizer(opt_tensors, meta["optimizer"])
        # the same checks as one process: full (unsharded) shapes against the DTensors' global shapes
        check_optimizer_state(optimizer, sd)
        order = _optimizer_order(unwrap(model), optimizer)
        n_saved = sum(len(g["params"]) for g in sd["param_groups"])
        if n_saved != len(order):
            from .checkpoint import CheckpointError

            raise CheckpointError(f"checkpoint optimizer has {n_saved} parameters, this model {len(order)}")
        fqn = optimizer_index_to_fqn(sd, order)
        dev = self.device
        fqn["state"] = {k: {s: (v.to(dev) if isinstance(v, torch.Tensor) and v.dim() > 0 else v)
                            for s, v in st.items()} for k, st in fqn["state"].items()}
        set_optimizer_state_dict(model, optimizer, fqn, options=StateDictOptions(full_state_dict=True))


# ----------------------------------------------------------------------------------------------
# Launching


def init_from_env(device: str = "auto", timeout_s: float = 1800.0) -> tuple[torch.device, bool]:
    """Initialise the default process group from torchrun's environment; returns (device, we_created_it).

    ``gloo`` on CPU, ``nccl`` on CUDA (each process on ``cuda:LOCAL_RANK``). A group that is already
    initialised is reused (and then not destroyed by :func:`rins.train.run_distributed`).
    """
    missing = [k for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing and not dist.is_initialized():
        raise RuntimeError(
            f"distributed training needs torchrun's environment (missing {missing}); launch with e.g. "
            "`torchrun --nproc_per_node 2 -m rins.cli train --dist ddp ...`"
        )
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = torch.cuda.is_available() and not str(device).startswith("cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but CUDA is not available; use --device cpu")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    created = False
    if not dist.is_initialized():
        kw: dict[str, Any] = {"timeout": timedelta(seconds=timeout_s)}
        if use_cuda:
            kw["device_id"] = dev
        dist.init_process_group("nccl" if use_cuda else "gloo", **kw)
        created = True
    return dev, created
