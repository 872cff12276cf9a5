"""Text generation from a trained LM run: sampling controls, stop strings, streaming, a sliding window.

:func:`generate_text` is what ``rins generate`` runs; the token-level sampler is
:meth:`rins.model.RecursiveLM.generate` (temperature, top-k, top-p, repetition penalty, KV cache).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["generate_text"]


def generate_text(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int = 100, *, r: int | None = None,
                  temperature: float = 0.8, top_k: int | None = 50, top_p: float | None = None,
                  repetition_penalty: float = 1.0, stop: Sequence[str] = (), seed: int = 0,
                  on_text: Callable[[str], None] | None = None, on_note: Callable[[str], None] | None = None,
                  sliding_window: bool = False) -> str:
    """The text generated after ``prompt`` (the prompt itself is not included; ``tokenizer.decode`` of the
    prompt's tokens followed by this text is the decoded whole).

    ``stop``: generation ends at the first occurrence of any of these strings in the new text, which is cut
    before it (the stop string is not returned). ``on_text`` receives the new text piece by piece as it is
    produced (streaming; text that could still turn into a stop string is held back until it cannot).
    The model's context (``max_seq_len``) bounds prompt + new tokens: longer requests stop there (``on_note``
    is told), a prompt that fills it is an error; with ``sliding_window`` generation goes on past it, the
    newest tokens (at most ``max_seq_len``) being the context (a long prompt keeps its end).
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    stops = [s for s in stop if s]
    ids = tokenizer.encode(prompt).ids
    if not ids:
        raise ValueError("the prompt encodes to no tokens; give a non-empty prompt")
    ctx_len = model.config.max_seq_len
    if not sliding_window and len(ids) >= ctx_len:
        raise ValueError(f"the prompt has {len(ids)} tokens, the model's context is max_seq_len={ctx_len}; shorten "
                         "the prompt or generate with a sliding window (--sliding-window)")
    if len(ids) + max_new_tokens > ctx_len:
        if not sliding_window:
            n = ctx_len - len(ids)
            if on_note is not None:
                on_note(f"--max-new-tokens {max_new_tokens} capped to {n} (prompt {len(ids)} + new tokens <= "
                        f"max_seq_len={ctx_len}; --sliding-window goes on past it)")
            max_new_tokens = n
        elif on_note is not None:
            on_note(f"prompt ({len(ids)} tokens) + {max_new_tokens} new tokens exceed the model's context "
                    f"max_seq_len={ctx_len}: generating with a sliding window over the newest tokens")
    gen = torch.Generator().manual_seed(seed)
    new: list[int] = []
    shown = 0  # characters of the new text passed to on_text
    text = ""
    hold = max((len(s) for s in stops), default=1) - 1
    base = tokenizer.decode(ids)

    def emit(final: bool) -> bool:
        """Decode the new tokens, stream what is safe to show; True when a stop string has appeared."""
        nonlocal shown, text
        # decoded with the prompt, so that word-level tokenizers put their separator between the two
        whole = tokenizer.decode(ids + new)
        text = whole[len(base):] if whole.startswith(base) else tokenizer.decode(new)
        hit = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
        if hit >= 0:
            text = text[:hit]
        # an incomplete multi-byte character decodes to U+FFFD: wait for its remaining bytes
        end = len(text) if (final or hit >= 0) else max(shown, len(text.rstrip("\ufffd")) - hold)
        if on_text is not None and end > shown:
            on_text(text[shown:end])
            shown = end
        return hit >= 0

    stopped = False

    def step(tok: torch.Tensor) -> bool:
        nonlocal stopped
        new.append(int(tok[0]))
        stopped = emit(False)
        return stopped

    context = ids
    while len(new) < max_new_tokens and not stopped:
        # a sliding window: keep the newest tokens, leaving a quarter of the context free to generate into
        if len(context) >= ctx_len:
            context = context[-max(1, ctx_len - max(1, ctx_len // 4)):]
        n = min(max_new_tokens - len(new), ctx_len - len(context))
        before = len(new)
        model.generate(torch.tensor([context]), n, r=r, temperature=temperature, top_k=top_k, top_p=top_p,
                       repetition_penalty=repetition_penalty, generator=gen, callback=step)
        context = context + new[before:]
    if not stopped:
        emit(True)
    return text
