"""lm-evaluation-harness adapter: evaluate a rins run directory at any recursion depth r.

Three ways in:

* lm-eval's own command line, with the ``rins`` model registered first::

      rins lm-eval --model_args run_dir=runs/x,r=3 --tasks rins_shakespeare_cloze --include_path tasks/

  takes every ``lm_eval run`` flag (``--model rins`` is the default; ``--batch_size``, ``--limit``,
  ``--output_path`` ...). ``python -m rins.lm_eval_adapter ...`` is the same.
* Python: ``import rins.lm_eval_adapter`` registers ``"rins"``, then
  ``lm_eval.simple_evaluate(model="rins", model_args="run_dir=runs/x,r=3", tasks=[...])``; or
  :func:`evaluate` (with ``include_path`` for local task YAMLs); or ``RinsLM(run_dir=..., r=3)`` directly.
* An exported folder (``rins export``) through lm-eval's stock ``hf`` model:
  ``lm_eval --model hf --model_args pretrained=EXPORT,trust_remote_code=True ...`` (depth: ``rins_r=3``).

Adaptive depth per token (:mod:`rins.adaptive`): ``adaptive=kl=0.05`` in ``--model_args`` (``r`` is then the
most rounds); through the stock ``hf`` model of an export: ``rins_exit=kl=0.05``.

The tokenizer is ``RUN_DIR/tokenizer.json`` (HF ``tokenizers`` format) unless ``tokenizer=`` names another
file; the end-of-text token is the run's ``special_tokens_map.json`` eos (converted runs) or the first
usual EOS name in the vocabulary. Requests are scored ``batch_size`` at a time (longest first, right-padded:
with causal attention the padding cannot reach the scored positions). Over-long requests follow lm-eval's
``hf`` model, so both give the same numbers on an export: contexts are truncated from the left (with a
warning) and continuations longer than ``max_seq_len`` are refused (``hf`` stops at an AssertionError).
Generation is greedy unless the task asks for ``do_sample`` with a temperature; requests with the same
generation settings are decoded together (left-padded, masked). The device is CUDA when
available, else CPU (lm-eval's CLI passes ``cuda:0`` by default; without CUDA that becomes the CPU).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lm_eval.models  # noqa: F401  (lm-eval fills in its own models only while the registry is empty: before "rins")
import torch
import torch.nn.functional as F
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tokenizers import Tokenizer

from .checkpoint import load_model
from .model import RecursiveLM
from .runfiles import read_json_object, read_tokenizer
from .runs import tokenizer_file

__all__ = ["RinsLM", "evaluate", "main_lm_eval", "resolve_device"]

log = logging.getLogger(__name__)

_EOT_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "<|eos|>", "[EOS]", "<|end_of_text|>")
DEFAULT_BATCH = 16


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` / ``"auto"``: CUDA when available, else CPU; a CUDA device without CUDA falls back to CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        log.warning("device %s requested but CUDA is not available; using the CPU", device)
        return torch.device("cpu")
    return dev


def _batch_size(value: int | str | None) -> int:
    """lm-eval passes an int, a numeric string or ``"auto"`` / ``"auto:N"`` (here: the default batch)."""
    if value is None or str(value).startswith("auto"):
        return DEFAULT_BATCH
    n = int(value)
    if n < 1:
        raise ValueError(f"batch_size must be >= 1, got {value}")
    return n


@register_model("rins")
class RinsLM(LM):
    """``lm_eval.api.model.LM`` for a :class:`~rins.RecursiveLM` at inference depth ``r``.

    Args:
        run_dir: a rins run directory (or checkpoint folder); ignored when ``model`` is given.
        r: recursion depth (None: the trained exponent).
        tokenizer: path to a ``tokenizer.json`` (default ``RUN_DIR/tokenizer.json``), or a ``tokenizers.Tokenizer``.
        model: an in-memory :class:`~rins.RecursiveLM` instead of ``run_dir``.
        device: torch device; ``None`` / ``"auto"`` picks CUDA when available, else CPU.
        batch_size: requests per forward pass (``"auto"``: 16).
        max_length: context limit (default: the model's ``max_seq_len``).
        max_gen_toks: default generation length for ``generate_until``.
        eot_token_id: end-of-text id (default: the run's eos, else a usual EOS name in the vocabulary, else 0).
        add_bos: prepend ``eot_token_id`` to every context (lm-eval always does so for empty contexts).
        adaptive: an exit rule (``"kl=0.05"``, ``"hidden=0.1"``, ``"confidence=0.9"``): adaptive depth per
            token in scoring and generation, at most ``r`` rounds.
    """

    def __init__(
        self,
        run_dir: str | None = None,
        r: int | str | None = None,
        tokenizer: str | Tokenizer | None = None,
        model: RecursiveLM | None = None,
        device: str | None = None,
        batch_size: int | str | None = DEFAULT_BATCH,
        max_length: int | None = None,
        max_gen_toks: int = 64,
        eot_token_id: int | None = None,
        add_bos: bool = False,
        adaptive: str | None = None,
        **_: Any,
    ) -> None:
        super().__init__()
        self._device = resolve_device(device)
        if model is None:
            if run_dir is None:
                raise ValueError("RinsLM needs run_dir=... (a rins run directory) or model=...")
            model = load_model(run_dir, self._device)
        self.model = model.to(self._device).eval()
        self.r = None if r in (None, "", "None") else int(r)
        self.model.plan(self.r)  # validate r early
        self.exit_rule = None
        if adaptive not in (None, "", "None"):
            from .adaptive import to_rule

            self.exit_rule = to_rule(str(adaptive))
            if self.model.r_max is None:
                raise ValueError(f"adaptive={adaptive!r} needs a recursed group; signature "
                                 f"{self.model.config.signature!r} has none")
        if isinstance(tokenizer, Tokenizer):
            self.tok = tokenizer
        else:
            path = Path(tokenizer) if tokenizer else (tokenizer_file(run_dir) if run_dir else None)
            if path is None or not path.is_file():
                raise FileNotFoundError(f"no tokenizer file {path}; pass tokenizer=PATH/tokenizer.json")
            self.tok = read_tokenizer(path)
        if eot_token_id is None:
            names = list(_EOT_CANDIDATES)
            smap = Path(run_dir) / "special_tokens_map.json" if run_dir else None
            if smap is not None and smap.is_file():
                eos = read_json_object(smap, "delete it or write the eos_token there").get("eos_token")
                names.insert(0, eos.get("content") if isinstance(eos, dict) else eos)
            ids = [self.tok.token_to_id(t) for t in names if isinstance(t, str)]
            eot_token_id = next((i for i in ids if i is not None), 0)
        self.eot_token_id = int(eot_token_id)
        self.max_length = int(max_length or self.model.config.max_seq_len)
        self.max_gen_toks = int(max_gen_toks)
        self.add_bos = str(add_bos).lower() in ("true", "1", "yes")
        self.batch_size = _batch_size(batch_size)

    @property
    def device(self) -> torch.device:
        return self._device

    # -- helpers ----------------------------------------------------------------------------------
    def tok_encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        return self.tok.encode(text, add_special_tokens=False).ids

    def tok_decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=False)

    @torch.no_grad()
    def _score_batch(self, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """``(sum log p(continuation | context), is_greedy)`` for each pair, in one right-padded forward."""
        rows = []
        for context, continuation in pairs:
            full = (context + continuation)[-(self.max_length + 1):]
            rows.append((full[:-1], full[-min(len(continuation), len(full) - 1):]))
        T = max(len(inp) for inp, _ in rows)
        x = torch.zeros(len(rows), T, dtype=torch.long)
        for i, (inp, _) in enumerate(rows):
            x[i, :len(inp)] = torch.tensor(inp)
        logits = self.model(x.to(self._device), self.r, exit_rule=self.exit_rule)
        out = []
        for i, (inp, tgt) in enumerate(rows):
            n = len(tgt)
            lp = F.log_softmax(logits[i, len(inp) - n:len(inp)].float(), dim=-1)
            t = torch.tensor(tgt, device=lp.device)
            out.append((float(lp.gather(-1, t[:, None]).sum()), bool((lp.argmax(-1) == t).all())))
        return out

    def _check_lengths(self, pairs: list[tuple[list[int], list[int]]]) -> None:
        """lm-eval's ``hf`` model's rules, so that both give the same numbers: a continuation longer than the
        context window is refused (``hf`` stops there with a bare AssertionError); a longer context is cut from
        the left, with a warning."""
        long = [len(c) for _, c in pairs if len(c) > self.max_length]
        if long:
            raise ValueError(
                f"{len(long)} lm-eval request(s) have a continuation longer than the model's context "
                f"(up to {max(long)} tokens > max_length={self.max_length}); they cannot be scored (lm-eval's hf "
                f"model refuses them too). Use a model with a longer context (model.max_seq_len) or tasks with "
                f"shorter continuations")
        cut = [len(a) + len(c) - self.max_length - 1 for a, c in pairs if len(a) + len(c) > self.max_length + 1]
        if cut:
            log.warning("%d of %d lm-eval requests exceed the model's max_length=%d: their contexts are truncated "
                        "from the left (up to %d tokens cut), as lm-eval's hf model does", len(cut), len(pairs),
                        self.max_length, max(cut))

    def _score_all(self, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """Score every pair, ``batch_size`` at a time, longest first (similar lengths share a batch)."""
        self._check_lengths(pairs)
        res: list[tuple[float, bool]] = [(0.0, True)] * len(pairs)
        order = sorted((i for i, (_, c) in enumerate(pairs) if c), key=lambda i: -len(pairs[i][0] + pairs[i][1]))
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            for i, v in zip(idx, self._score_batch([pairs[i] for i in idx])):
                res[i] = v
        return res

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
        pairs = []
        for req in requests:
            context, continuation = req.args[:2]
            if context == "":
                ctx, cont = [self.eot_token_id], self.tok_encode(continuation)
            else:
                ctx, cont = self._encode_pair(context, continuation)
                if self.add_bos:
                    ctx = [self.eot_token_id] + ctx
            pairs.append((ctx, cont))
        return self._score_all(pairs)

    def loglikelihood_rolling(self, requests: list[Any]) -> list[float]:
        """Full-text log-likelihood with disjoint rolling windows of ``max_length`` tokens (batched over windows)."""
        pairs, owner = [], []
        for k, req in enumerate(requests):
            (text,) = req.args[:1]
            for w in map(make_disjoint_window, get_rolling_token_windows(
                    self.tok_encode(text), self.eot_token_id, self.max_length, 1)):
                pairs.append(w)
                owner.append(k)
        out = [0.0] * len(requests)
        for k, (ll, _) in zip(owner, self._score_all(pairs)):
            out[k] += ll
        return out

    @torch.no_grad()
    def generate_until(self, requests: list[Any]) -> list[str]:
        """Greedy (or sampled) continuation of each context, cut at the first stop sequence.

        Requests with the same settings are decoded ``batch_size`` at a time, left-padded with a mask.
        """
        jobs: dict[tuple, list[tuple[int, list[int]]]] = {}
        settings = []
        for k, req in enumerate(requests):
            context, gen_kwargs = req.args[0], dict(req.args[1] if len(req.args) > 1 else {})
            until = gen_kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(gen_kwargs.pop("max_gen_toks", self.max_gen_toks))
            temp = float(gen_kwargs.pop("temperature", 0.0) or 0.0) if gen_kwargs.pop("do_sample", False) else 0.0
            ids = ([self.eot_token_id] if self.add_bos or not context else []) + self.tok_encode(context)
            if self.model.pos is not None:  # learned positions: keep room for the new tokens
                ids = ids[-max(1, self.max_length - max_new):]
            else:
                ids = ids[-self.max_length:]
            settings.append(until)
            jobs.setdefault((max_new, temp), []).append((k, ids))
        out = [""] * len(requests)
        for (max_new, temp), items in jobs.items():
            items.sort(key=lambda it: -len(it[1]))
            for s in range(0, len(items), self.batch_size):
                chunk = items[s:s + self.batch_size]
                T = max(len(ids) for _, ids in chunk)
                x = torch.full((len(chunk), T), self.eot_token_id, dtype=torch.long)
                am = torch.zeros(len(chunk), T, dtype=torch.long)
                for i, (_, ids) in enumerate(chunk):
                    x[i, T - len(ids):], am[i, T - len(ids):] = torch.tensor(ids), 1
                y = self.model.generate(x.to(self._device), max_new, r=self.r, temperature=temp,
                                        attention_mask=am.to(self._device), eos_token_id=self.eot_token_id,
                                        exit_rule=self.exit_rule)
                for i, (k, _) in enumerate(chunk):
                    new = y[i, T:].tolist()
                    if self.eot_token_id in new:
                        new = new[: new.index(self.eot_token_id)]
                    text = self.tok_decode(new)
                    for stop in settings[k]:
                        if stop and stop in text:
                            text = text[: text.index(stop)]
                    out[k] = text
        return out

    @property
    def tokenizer_name(self) -> str:
        return "rins-tokenizer"


def evaluate(run_dir: str | None, tasks: list[str], r: int | None = None, include_path: str | None = None,
             limit: int | None = None, model: RecursiveLM | None = None, tokenizer: str | None = None,
             include_defaults: bool = True, batch_size: int | str | None = DEFAULT_BATCH,
             device: str | None = None, adaptive: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run ``lm_eval.simple_evaluate`` on a rins run dir at depth ``r`` (with an ``adaptive`` exit rule such as
    ``"kl=0.05"``, at most ``r`` rounds per token); returns the results dict.

    ``include_path`` adds a folder of task YAMLs; ``include_defaults=False`` skips indexing lm-eval's
    built-in tasks (much faster when only local tasks are used).
    """
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    lm = RinsLM(run_dir=run_dir, r=r, tokenizer=tokenizer, model=model, batch_size=batch_size, device=device,
                adaptive=adaptive)
    tm = TaskManager(include_path=include_path, include_defaults=include_defaults) if include_path else None
    return simple_evaluate(model=lm, tasks=tasks, task_manager=tm, limit=limit, **kwargs)


_LM_EVAL_HELP = f"""usage: rins lm-eval [lm_eval run flags]

lm-evaluation-harness's own command line with the rins model registered, e.g.
  rins lm-eval --model_args run_dir=runs/NAME,r=3 --tasks TASKS [--include_path DIR] [--limit N]

Without --model, rins lm-eval adds --model rins --device auto --batch_size {DEFAULT_BATCH} (CUDA when available,
else the CPU). The rins model's arguments (--model_args, comma-separated): run_dir=PATH (required), r=INT
(inference depth; default the trained exponent), tokenizer=PATH (default RUN_DIR/tokenizer.json),
max_length=INT (default the model's max_seq_len). With --model given (e.g. --model hf on a rins export),
nothing is added. lm_eval's own help follows; its defaults (--model hf, --batch_size 1) are those of lm_eval
itself, not of rins lm-eval.
"""


def main_lm_eval(argv: Sequence[str] | None = None) -> int:
    """``rins lm-eval [lm_eval run flags]``: lm-eval's own CLI with the ``rins`` model registered.

    ``--model rins`` is the default, ``--device`` defaults to ``auto`` (CUDA when available, else CPU) and
    ``--batch_size`` to 16; e.g. ``rins lm-eval --model_args run_dir=runs/x,r=3 --tasks T --include_path DIR``.
    """
    from lm_eval.__main__ import cli_evaluate  # lm-eval's console entry point, reads sys.argv

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "run":
        args = args[1:]
    if args and args[0] in ("-h", "--help"):
        print(_LM_EVAL_HELP)
    flags = {a.split("=", 1)[0] for a in args}
    if "--model" not in flags:
        args = ["--model", "rins", *args]
        if "--device" not in flags:
            args += ["--device", "auto"]
        if not flags & {"--batch_size", "-b"}:
            args += ["--batch_size", str(DEFAULT_BATCH)]
    saved = sys.argv
    sys.argv = ["rins lm-eval", *args]
    try:
        cli_evaluate()
    finally:
        sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main_lm_eval())
