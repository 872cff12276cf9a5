"""Run loggers: ``log.jsonl`` always, plus TensorBoard and Weights & Biases (offline by default) on request.

One interface, :class:`RunLogger`, used by the trainer on rank 0: every record (``{"event": "train" | "eval" |
"start", "step": ..., ...}``) goes to the JSONL file, and its numbers to the chosen backends
(``TrainConfig.loggers``, e.g. ``"tensorboard"`` or ``"tensorboard,wandb"``; ``--loggers`` on the command line).

* TensorBoard: event files in ``RUN_DIR/tb`` (``tensorboard --logdir runs``); a resumed run drops the events
  after its checkpoint (``purge_step``), as ``log.jsonl`` is truncated.
* W&B: ``wandb.init(mode="offline")`` into ``RUN_DIR/wandb`` unless ``WANDB_MODE`` says otherwise
  (``wandb sync RUN_DIR/wandb/offline-run-*`` uploads later); a resumed run continues the same W&B run id.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path
from typing import Any

__all__ = ["LOGGERS", "RunLogger", "parse_loggers", "scalars"]

LOGGERS = ("jsonl", "tensorboard", "wandb")


def parse_loggers(text: str) -> list[str]:
    """The backends named by a comma-separated ``loggers`` value (``jsonl`` is implied and always on)."""
    names = [x.strip().lower() for x in text.split(",") if x.strip()]
    bad = [x for x in names if x not in LOGGERS]
    if bad:
        raise ValueError(f"unknown logger(s) {bad}; choose from {', '.join(LOGGERS)} (comma-separated)")
    return [x for x in dict.fromkeys(names) if x != "jsonl"]


def scalars(rec: dict[str, Any]) -> dict[str, float]:
    """A log record's numbers as ``section/name`` scalars (``eval/val_loss_r3``); config and text are left out."""
    event = rec.get("event", "log")
    out: dict[str, float] = {}
    for k, v in rec.items():
        if k in ("event", "step", "config"):
            continue
        if isinstance(v, dict):
            for kk, vv in v.items():
                if isinstance(vv, int | float) and not isinstance(vv, bool) and math.isfinite(vv):
                    out[f"{event}/{k}{kk}"] = float(vv)
        elif isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out[f"{event}/{k}"] = float(v)
    return out


class RunLogger:
    """JSONL plus the optional backends; a disabled logger (ranks > 0) does nothing.

    Args:
        path: the JSONL file (``RUN_DIR/log.jsonl``); ``None`` disables the logger.
        enabled: False on ranks other than 0.
        backends: ``"tensorboard"`` and/or ``"wandb"`` (see :func:`parse_loggers`).
        start_step: the step a resumed run continues from (later TensorBoard events of an earlier process are
            discarded).
        config: the run config, stored with the W&B run and as TensorBoard text.
    """

    def __init__(self, path: Path | None, enabled: bool, backends: list[str] | tuple[str, ...] = (),
                 start_step: int = 0, config: dict[str, Any] | None = None) -> None:
        self.enabled = enabled and path is not None
        self.f = open(path, "a", encoding="utf-8") if self.enabled else None  # noqa: SIM115
        self.tb = self.wandb = None
        if not self.enabled:
            return
        run_dir = Path(path).parent
        try:
            if "tensorboard" in backends:
                self.tb = _tensorboard_writer(run_dir / "tb", start_step)
                if config is not None and start_step == 0:
                    self.tb.add_text("config", "```\n" + json.dumps(config, indent=1) + "\n```", 0)
            if "wandb" in backends:
                self.wandb = _wandb_run(run_dir, config)
        except BaseException:
            self.close()
            raise

    def log(self, rec: dict[str, Any]) -> None:
        """Append ``rec`` to the JSONL file and send its numbers (at ``rec["step"]``) to the backends."""
        if self.f is None:
            return
        self.f.write(json.dumps(rec) + "\n")
        self.f.flush()
        step = rec.get("step")
        if not isinstance(step, int):
            return
        vals = scalars(rec)
        if self.tb is not None:
            for k, v in vals.items():
                self.tb.add_scalar(k, v, step)
            self.tb.flush()
        if self.wandb is not None and vals:
            self.wandb.log(vals, step=step)

    def close(self) -> None:
        """Flush and close every backend (idempotent)."""
        if self.f is not None:
            self.f.close()
            self.f = None
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None


def _tensorboard_writer(log_dir: Path, start_step: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ImportError("loggers=tensorboard needs the tensorboard package: pip install 'rins[tb]'") from e
    # purge_step: a resumed run re-runs the steps after its checkpoint; their old events are dropped
    return SummaryWriter(str(log_dir), purge_step=start_step + 1 if start_step else None)


def _wandb_run(run_dir: Path, config: dict[str, Any] | None):
    try:
        import wandb
    except ImportError as e:
        raise ImportError("loggers=wandb needs the wandb package: pip install 'rins[wandb]'") from e
    id_file = run_dir / "wandb_id.txt"
    run_id = id_file.read_text().strip() if id_file.is_file() else None
    if not run_id:
        run_id = secrets.token_hex(6)  # W&B run ids: lowercase letters and digits
        id_file.write_text(run_id + "\n")
    (run_dir / "wandb").mkdir(exist_ok=True)
    name = (config or {}).get("name", run_dir.name)
    return wandb.init(project=os.environ.get("WANDB_PROJECT", "rins"), name=name, id=run_id, resume="allow",
                      dir=str(run_dir), config=config, mode=os.environ.get("WANDB_MODE", "offline"),
                      settings=wandb.Settings(silent=True, console="off"))
