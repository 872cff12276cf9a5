"""Text generation from a trained LM run: sampling controls, stop strings, streaming, a sliding window.

:func:`generate_text` is what ``rins generate`` runs; the token-level sampler is
:meth:`rins.model.RecursiveLM.generate` (temperature, top-k, top-p, repetition penalty, KV cache).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .arguments import SEED_LIMIT, ConfigError, bad_argument, check_int, check_str
from .model import check_sampling

__all__ = ["generate_text"]


def generate_text(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int = 100, *, r: int | None = None,
                  temperature: float = 0.8, top_k: int | None = 50, top_p: float | None = None,
                  repetition_penalty: float = 1.0, stop: Sequence[str] = (), seed: int = 0,
                  on_text: Callable[[str], None] | None = None, on_note: Callable[[str], None] | None = None,
                  sliding_window: bool = False, exit_rule: Any = None, exit_stats: Any = None,
                  compile: bool = False) -> str:
    """The text generated after ``prompt`` (the prompt itself is not included; ``tokenizer.decode`` of the
    prompt's tokens followed by this text is the decoded whole).

    ``stop``: generation ends at the first occurrence of any of these strings in the new text, which is cut
    before it (the stop string is not returned). ``on_text`` receives the new text piece by piece as it is
    produced (streaming; text that could still turn into a stop string is held back until it cannot).
    The model's context (``max_seq_len``) bounds prompt + new tokens: longer requests stop there (``on_note``
    is told), a prompt that fills it is an error; with ``sliding_window`` generation goes on past it, the
    newest tokens (at most ``max_seq_len``) being the context (a long prompt keeps its end).
    ``exit_rule`` / ``exit_stats``: adaptive depth per token (:mod:`rins.adaptive`), ``r`` being the most rounds.
    ``compile``: the decode steps through ``torch.compile`` (:meth:`rins.model.RecursiveLM.generate`).
    """
    # every argument checked before the prompt is encoded (rins.ConfigError naming it; nothing coerced)
    where = "generate_text"
    check_sampling(max_new_tokens, top_p, repetition_penalty, temperature, top_k, where)
    check_str(where, "prompt", prompt)
    check_int(where, "seed", seed, 0, SEED_LIMIT - 1)
    if r is not None:
        check_int(where, "r", r, 1)
    if not isinstance(stop, list | tuple) or not all(isinstance(s, str) for s in stop):
        raise bad_argument(where, "stop", stop, "must be a list of strings (taken literally)")
    ids = tokenizer.encode(prompt).ids
    if not ids:
        raise ConfigError("generate_text: the prompt encodes to no tokens; give a non-empty prompt")
    ctx_len = model.config.max_seq_len
    max_new_tokens = _fit_to_context(len(ids), max_new_tokens, ctx_len, sliding_window, on_note)
    gen = torch.Generator().manual_seed(seed)
    out = _StopStream(tokenizer, ids, [s for s in stop if s], on_text)
    context = ids
    while len(out.new) < max_new_tokens and not out.stopped:
        # a sliding window: keep the newest tokens, leaving a quarter of the context free to generate into
        if len(context) >= ctx_len:
            context = context[-max(1, ctx_len - max(1, ctx_len // 4)):]
        n = min(max_new_tokens - len(out.new), ctx_len - len(context))
        before = len(out.new)
        model.generate(torch.tensor([context]), n, r=r, temperature=temperature, top_k=top_k, top_p=top_p,
                       repetition_penalty=repetition_penalty, generator=gen, callback=out.push,
                       exit_rule=exit_rule, exit_stats=exit_stats, compile=compile)
        context = context + out.new[before:]
    if not out.stopped:
        out.emit(final=True)
    return out.text


def _fit_to_context(n_prompt: int, max_new_tokens: int, ctx_len: int, sliding_window: bool,
                    on_note: Callable[[str], None] | None) -> int:
    """How many tokens to generate after a prompt of ``n_prompt`` tokens in a context of ``ctx_len``."""
    if not sliding_window and n_prompt >= ctx_len:
        raise ConfigError(f"generate_text: the prompt has {n_prompt} tokens, the model's context is "
                          f"max_seq_len={ctx_len}; shorten the prompt or generate with a sliding window "
                          "(--sliding-window)")
    if n_prompt + max_new_tokens <= ctx_len:
        return max_new_tokens
    if sliding_window:
        if on_note is not None:
            on_note(f"prompt ({n_prompt} tokens) + {max_new_tokens} new tokens exceed the model's context "
                    f"max_seq_len={ctx_len}: generating with a sliding window over the newest tokens")
        return max_new_tokens
    n = ctx_len - n_prompt
    if on_note is not None:
        on_note(f"--max-new-tokens {max_new_tokens} capped to {n} (prompt {n_prompt} + new tokens <= "
                f"max_seq_len={ctx_len}; --sliding-window goes on past it)")
    return n


class _StopStream:
    """The new tokens after a prompt, decoded, cut before the first stop string and streamed to ``on_text``
    as far as is safe (text that could still become a stop string, or an incomplete character, waits)."""

    def __init__(self, tokenizer: Any, ids: list[int], stops: list[str],
                 on_text: Callable[[str], None] | None) -> None:
        self.tokenizer, self.ids, self.stops, self.on_text = tokenizer, ids, stops, on_text
        self.new: list[int] = []
        self.text = ""
        self.shown = 0  # characters of the new text passed to on_text
        self.stopped = False
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.base = tokenizer.decode(ids)

    def push(self, tok: torch.Tensor) -> bool:
        """The sampler's per-step callback: record the token; True (stop) once a stop string appeared."""
        self.new.append(int(tok[0]))
        self.stopped = self.emit(final=False)
        return self.stopped

    def emit(self, final: bool) -> bool:
        """Decode the new tokens, stream what is safe to show; True when a stop string has appeared."""
        # decoded with the prompt, so that word-level tokenizers put their separator between the two
        whole = self.tokenizer.decode(self.ids + self.new)
        text = whole[len(self.base):] if whole.startswith(self.base) else self.tokenizer.decode(self.new)
        hit = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if hit >= 0:
            text = text[:hit]
        self.text = text
        # an incomplete multi-byte character decodes to U+FFFD: wait for its remaining bytes
        end = len(text) if (final or hit >= 0) else max(self.shown, len(text.rstrip("\ufffd")) - self.hold)
        if self.on_text is not None and end > self.shown:
            self.on_text(text[self.shown:end])
            self.shown = end
        return hit >= 0
