"""lm-evaluation-harness adapter: evaluate a rins run directory at any recursion depth r.

Registered with lm-eval as ``"rins"`` when this module is imported::

    import rins.lm_eval_adapter  # registers "rins"
    lm_eval.simple_evaluate(model="rins", model_args="run_dir=runs/x,r=3", tasks=[...])

or build it directly: ``RinsLM(run_dir="runs/x", r=3)`` (``model=`` a ``RecursiveLM`` also works). The
tokenizer is ``RUN_DIR/tokenizer.json`` (HF ``tokenizers`` format) unless ``tokenizer=`` names another
file. :func:`evaluate` wraps ``simple_evaluate`` with an optional ``include_path`` for local task YAMLs.

Requests are scored one at a time (no padding, so logits are exactly those of an unbatched forward);
contexts longer than ``max_seq_len`` are truncated from the left. Generation is greedy unless the task
asks for ``do_sample`` with a temperature.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tokenizers import Tokenizer

from .checkpoint import load_model
from .model import RecursiveLM

__all__ = ["RinsLM", "evaluate"]

_EOT_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "<|eos|>", "[EOS]", "<|end_of_text|>")


@register_model("rins")
class RinsLM(LM):
    """``lm_eval.api.model.LM`` for a :class:`~rins.RecursiveLM` at inference depth ``r``.

    Args:
        run_dir: a rins run directory (or checkpoint folder); ignored when ``model`` is given.
        r: recursion depth (None: the trained exponent).
        tokenizer: path to a ``tokenizer.json`` (default ``RUN_DIR/tokenizer.json``), or a ``tokenizers.Tokenizer``.
        model: an in-memory :class:`~rins.RecursiveLM` instead of ``run_dir``.
        device: torch device.
        max_length: context limit (default: the model's ``max_seq_len``).
        max_gen_toks: default generation length for ``generate_until``.
        eot_token_id: end-of-text id (default: looked up among common EOS tokens, else 0).
        add_bos: prepend ``eot_token_id`` to every context (lm-eval always does so for empty contexts).
    """

    def __init__(
        self,
        run_dir: str | None = None,
        r: int | str | None = None,
        tokenizer: str | Tokenizer | None = None,
        model: RecursiveLM | None = None,
        device: str = "cpu",
        max_length: int | None = None,
        max_gen_toks: int = 64,
        eot_token_id: int | None = None,
        add_bos: bool = False,
        **_: Any,
    ) -> None:
        super().__init__()
        if model is None:
            if run_dir is None:
                raise ValueError("RinsLM needs run_dir=... (a rins run directory) or model=...")
            model = load_model(run_dir, device)
        self.model = model.to(device).eval()
        self._device = torch.device(device)
        self.r = None if r in (None, "", "None") else int(r)
        self.model.plan(self.r)  # validate r early
        if isinstance(tokenizer, Tokenizer):
            self.tok = tokenizer
        else:
            path = Path(tokenizer) if tokenizer else (Path(run_dir) / "tokenizer.json" if run_dir else None)
            if path is None or not path.is_file():
                raise FileNotFoundError(f"no tokenizer file {path}; pass tokenizer=PATH/tokenizer.json")
            self.tok = Tokenizer.from_file(str(path))
        if eot_token_id is None:
            ids = [self.tok.token_to_id(t) for t in _EOT_CANDIDATES]
            eot_token_id = next((i for i in ids if i is not None), 0)
        self.eot_token_id = int(eot_token_id)
        self.max_length = int(max_length or self.model.config.max_seq_len)
        self.max_gen_toks = int(max_gen_toks)
        self.add_bos = bool(add_bos)

    # -- helpers ----------------------------------------------------------------------------------
    def tok_encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        return self.tok.encode(text, add_special_tokens=False).ids

    def tok_decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=False)

    @torch.no_grad()
    def _logprobs(self, ids: list[int]) -> torch.Tensor:
        x = torch.tensor([ids], dtype=torch.long, device=self._device)
        return F.log_softmax(self.model(x, self.r)[0].float(), dim=-1)

    def _score(self, context: list[int], continuation: list[int]) -> tuple[float, bool]:
        """Sum log p(continuation | context) and whether it is the greedy continuation."""
        if not continuation:
            return 0.0, True
        full = (context + continuation)[-(self.max_length + 1):]
        inp = full[:-1]
        n = len(continuation)
        lp = self._logprobs(inp)[-n:]
        tgt = torch.tensor(full[-n:], device=lp.device)
        ll = float(lp.gather(-1, tgt[:, None]).sum())
        greedy = bool((lp.argmax(-1) == tgt).all())
        return ll, greedy

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole = self.tok_encode(context + continuation)
        ctx = self.tok_encode(context)
        return ctx, whole[len(ctx):]

    # -- the LM API -------------------------------------------------------------------------------
    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        """``(log p(continuation | context), is_greedy)`` for each ``(context, continuation)`` request."""
        out = []
        for req in requests:
            context, continuation = req.args[:2]
            if context == "":
                ctx, cont = [self.eot_token_id], self.tok_encode(continuation)
            else:
                ctx, cont = self._encode_pair(context, continuation)
                if self.add_bos:
                    ctx = [self.eot_token_id] + ctx
            out.append(self._score(ctx, cont))
        return out

    def loglikelihood_rolling(self, requests: list[Any]) -> list[float]:
        """Full-text log-likelihood with disjoint rolling windows of ``max_length`` tokens."""
        out = []
        for req in requests:
            (text,) = req.args[:1]
            windows = map(make_disjoint_window, get_rolling_token_windows(
                self.tok_encode(text), self.eot_token_id, self.max_length, 1))
            out.append(sum(self._score(a, b)[0] for a, b in windows))
        return out

    @torch.no_grad()
    def generate_until(self, requests: list[Any]) -> list[str]:
        """Greedy (or sampled) continuation of each context, cut at the first stop sequence."""
        out = []
        for req in requests:
            context, gen_kwargs = req.args[0], dict(req.args[1] if len(req.args) > 1 else {})
            until = gen_kwargs.pop("until", None) or []
            if isinstance(until, str):
                until = [until]
            max_new = int(gen_kwargs.pop("max_gen_toks", self.max_gen_toks))
            temp = float(gen_kwargs.pop("temperature", 0.0) or 0.0) if gen_kwargs.pop("do_sample", False) else 0.0
            ids = ([self.eot_token_id] if self.add_bos or not context else []) + self.tok_encode(context)
            if self.model.pos is not None:  # learned positions: keep room for the new tokens
                ids = ids[-max(1, self.max_length - max_new):]
            else:
                ids = ids[-self.max_length:]
            x = torch.tensor([ids], dtype=torch.long, device=self._device)
            y = self.model.generate(x, max_new, r=self.r, temperature=temp, eos_token_id=self.eot_token_id)
            new = [t for t in y[0, len(ids):].tolist()]
            if self.eot_token_id in new:
                new = new[: new.index(self.eot_token_id)]
            text = self.tok_decode(new)
            for s in until:
                if s and s in text:
                    text = text[: text.index(s)]
            out.append(text)
        return out

    @property
    def tokenizer_name(self) -> str:
        return "rins-tokenizer"


def evaluate(run_dir: str | None, tasks: list[str], r: int | None = None, include_path: str | None = None,
             limit: int | None = None, model: RecursiveLM | None = None, tokenizer: str | None = None,
             include_defaults: bool = True, **kwargs: Any) -> dict[str, Any]:
    """Run ``lm_eval.simple_evaluate`` on a rins run dir at depth ``r``; returns the results dict.

    ``include_path`` adds a folder of task YAMLs; ``include_defaults=False`` skips indexing lm-eval's
    built-in tasks (much faster when only local tasks are used).
    """
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    lm = RinsLM(run_dir=run_dir, r=r, tokenizer=tokenizer, model=model)
    tm = TaskManager(include_path=include_path, include_defaults=include_defaults) if include_path else None
    return simple_evaluate(model=lm, tasks=tasks, task_manager=tm, limit=limit, **kwargs)
