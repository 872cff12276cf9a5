"""Configuration of an exported RINS (Recursive INference Scaling) causal LM.

Self-contained: shipped next to ``modeling_rins.py`` and ``rins_plan.py`` by ``rins export``; it does not
import ``rins``. The full ``rins`` ``LMConfig`` is kept under ``config.rins`` (a dict); the usual
``transformers`` fields (``hidden_size``, ``num_hidden_layers`` ...) are derived from it for tooling.

``config.rins_r`` is the recursion depth used at inference (``None`` = the trained exponent of the
signature). It can be set at load time: ``from_pretrained(dir, trust_remote_code=True, rins_r=3)``.
``config.rins_exit`` is the adaptive-depth exit rule (``"kl=0.05"``; ``None`` = fixed depth), set the same way.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig


class RinsConfig(PretrainedConfig):
    """Hugging Face config wrapping a ``rins.LMConfig`` dict (``rins``) plus the inference depth ``rins_r``."""

    model_type = "rins"
    keys_to_ignore_at_inference = ["past_key_values"]

    def __init__(self, rins: dict[str, Any] | None = None, rins_r: int | None = None, use_cache: bool = True,
                 bos_token_id: int | None = None, eos_token_id: int | None = None,
                 pad_token_id: int | None = None, rins_exit: str | None = None, **kwargs: Any) -> None:
        self.use_cache = use_cache
        self.rins_exit = rins_exit  # adaptive depth per token ("kl=0.05" ...), None = fixed depth
        self.rins = dict(rins or {})
        self.rins_r = rins_r
        c = self.rins
        if c:
            d, h = c.get("d_model", 256), c.get("n_heads", 4)
            kwargs.setdefault("vocab_size", c.get("vocab_size"))
            kwargs.setdefault("hidden_size", d)
            kwargs.setdefault("num_attention_heads", h)
            kwargs.setdefault("num_key_value_heads", c.get("n_kv_heads") or h)
            kwargs.setdefault("num_hidden_layers", c.get("n_layers"))
            kwargs.setdefault("max_position_embeddings", c.get("max_seq_len"))
            kwargs.setdefault("tie_word_embeddings", bool(c.get("tie_embeddings", True)))
        super().__init__(**kwargs)
        # set after the base __init__ (4.x resets them there; 5.x no longer gives every config these attributes)
        self.bos_token_id, self.eos_token_id, self.pad_token_id = bos_token_id, eos_token_id, pad_token_id
