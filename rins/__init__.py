"""rins — Recursive INference Scaling for PyTorch.

Quick tour::

    import rins
    plan = rins.compile_plan("A^2B", n_layers=4)       # layers (0, 1, 0, 1, 2, 3)
    model = rins.RecursiveLM(rins.LMConfig(signature="A^2B", n_layers=4, p_skip=0.5, adapters="round"))
    logits = model(tokens, r=3)                          # any inference depth r >= 1
    model.flops_per_token(256, r=3, training=True)       # matmul FLOPs per executed layer (rins.flops)

    cfg = rins.load_config("tiny", overrides=["model.signature=A^2B", "budget.steps=50"])
    summary = rins.train(cfg)                            # what `rins train` runs (rins.TrainConfig: the fields)
    model = rins.load_model("runs/tiny")                 # a trained run's model (rins.checkpoint.load_model)
    rins.evaluate_run("runs/tiny", data="notes.txt")     # loss / ppl / bits per byte at every depth (rins eval)
    rins.generate_text(model, tokenizer, "ROMEO.", 40)   # what `rins generate` runs

A bad argument to any public function or config (wrong type, out of range; nothing is coerced: 4.9 layers is
an error, not 4) raises :class:`rins.ConfigError`, a ``ValueError`` naming the function, the argument and what
is allowed (:class:`rins.SignatureError` is one); corrupt files raise ``CheckpointError`` / ``RunFileError``
naming the file.
"""

import importlib
from typing import Any

# the plan is pure Python: always loaded; everything that needs torch is loaded on first use, so that
# `import rins.scaling` / `rins.report` / `rins.plan` work without torch
from .fields import ConfigError
from .plan import SIGNATURE_PRESETS, Plan, SignatureError, compile_plan, enumerate_variants, parse_signature, preset

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "KVCache",
    "TrainConfig",
    "LMConfig",
    "SIGNATURE_PRESETS",
    "Plan",
    "RecursiveLM",
    "RecursiveStack",
    "SignatureError",
    "StackConfig",
    "compile_plan",
    "enumerate_variants",
    "evaluate_run",
    "generate_text",
    "load_model",
    "parse_signature",
    "preset",
    "load_config",
    "sample_depth",
    "train",
]

# loaded on first use, so that `import rins` stays light: (module, attribute or None for the module itself)
_LAZY = {"train": (".train", None), "adaptive": (".adaptive", None), "TrainConfig": (".config", "TrainConfig"),
         "load_config": (".config", "load_config"), "load_model": (".checkpoint", "load_model"),
         "evaluate_run": (".evaluation", "evaluate_run"), "generate_text": (".generation", "generate_text"),
         **{name: (".model", name) for name in ("KVCache", "LMConfig", "RecursiveLM", "RecursiveStack", "StackConfig",
                                                "sample_depth")}}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'rins' has no attribute {name!r}")
    mod, attr = _LAZY[name]
    m = importlib.import_module(mod, __name__)
    # rins.train is the submodule, callable as rins.train.train (importing it binds rins.train to it anyway)
    return m if attr is None else getattr(m, attr)


def __dir__() -> list[str]:
    # the lazily loaded names too, so that tab completion and dir(rins) show the whole public API
    return sorted(set(globals()) | set(__all__) | set(_LAZY))
