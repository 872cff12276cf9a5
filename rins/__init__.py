"""rins — Recursive INference Scaling for PyTorch.

Quick tour::

    import rins
    plan = rins.compile_plan("A^2B", n_layers=4)       # layers (0, 1, 0, 1, 2, 3)
    model = rins.RecursiveLM(rins.LMConfig(signature="A^2B", n_layers=4, p_skip=0.5, adapters="round"))
    logits = model(tokens, r=3)                          # any inference depth r >= 1
    model.flops_per_token(256, r=3, training=True)       # exact, per executed layer
"""

from .model import KVCache, LMConfig, RecursiveLM, RecursiveStack, StackConfig, sample_depth
from .plan import PRESETS, Plan, SignatureError, compile_plan, enumerate_variants, parse_signature, preset

__version__ = "0.1.0"

__all__ = [
    "KVCache",
    "LMConfig",
    "PRESETS",
    "Plan",
    "RecursiveLM",
    "RecursiveStack",
    "SignatureError",
    "StackConfig",
    "compile_plan",
    "enumerate_variants",
    "parse_signature",
    "preset",
    "sample_depth",
]
