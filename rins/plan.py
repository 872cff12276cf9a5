"""Signatures → execution plans. Pure Python, no tensors: the one source of truth.

A *signature* such as ``A^2B``, ``(AB)^2`` or ``AB^2C`` names the order in which blocks of layers run.
Each distinct letter is a contiguous group of layers with its own weights (numbered by first
appearance); a repeated letter re-applies that block's weights; ``X^k`` repeats the preceding letter
or parenthesised group k times. Compiling a signature for ``n_layers`` layers gives a :class:`Plan`:
the ordered tuple of executed layer indices plus, for every application, the round of the recursed
group it belongs to. Parameter sharing, FLOPs, KV-cache slots, adapters and depth sampling all read
the plan.

The **recursion exponent** is the first explicit ``^k`` in the signature (textual order). The
inference depth ``r`` and stochastic RINS replace that exponent. At degree d > 1 the same pattern is
nested inside every block (docs/method.md §2); ``r`` then replaces the exponent at every level, and
*rounds* refer to the top level.
"""

from __future__ import annotations

import importlib
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from numbers import Integral

__all__ = [
    "Plan",
    "SignatureError",
    "compile_plan",
    "default_depths",
    "enumerate_variants",
    "parse_signature",
    "preset",
    "resolve_signature",
    "SIGNATURE_PRESETS",
    "MAX_APPLICATIONS",
    "MAX_DEFAULT_DEPTHS",
    "MAX_DEGREE",
    "MAX_EXPONENT",
    "MAX_NESTING",
    "MAX_SIGNATURE_CHARS",
]

# Hard limits, so that no signature or depth request can exhaust memory or the stack (checked before any
# expansion): a plan is a Python tuple per application, and a model runs one block per application.
MAX_EXPONENT = 1024  # largest ``^k`` and largest inference depth ``r``
MAX_APPLICATIONS = 65536  # total executed layer applications of a plan (all exponents and degrees together)
MAX_NESTING = 32  # parenthesis depth of a signature
MAX_SIGNATURE_CHARS = 1000
MAX_DEGREE = 8


def _error_base() -> type[ValueError]:
    """:class:`rins.ConfigError` inside the package; ``ValueError`` where this file ships alone (``rins export``
    copies it as ``rins_plan.py``, which must import nothing but the standard library)."""
    if __package__ != "rins":
        return ValueError
    return importlib.import_module("rins.fields").ConfigError


class SignatureError(_error_base()):  # type: ignore[misc]
    """A signature string, preset or plan request that cannot be compiled (a :class:`rins.ConfigError`, so a
    ``ValueError``: the one error type of bad arguments to the public API)."""


# ----------------------------------------------------------------------------------------------
# Parsing


@dataclass(frozen=True)
class _Node:
    """A parsed item: a block letter (``letter`` set) or a group (``children`` set), repeated."""

    letter: str | None = None
    children: tuple[_Node, ...] = ()
    repeat: int = 1
    exp_id: int | None = None  # textual order of this node's explicit ^k, None when implicit


@dataclass(frozen=True)
class Signature:
    """A parsed signature: the item tree, the letters in order of first appearance, the exponent."""

    text: str
    items: tuple[_Node, ...]
    letters: tuple[str, ...]
    exponent: int | None  # value of the first explicit ^k, if any

    @property
    def n_blocks(self) -> int:
        return len(self.letters)


_DIGITS = re.compile(r"\d+")


def parse_signature(text: str) -> Signature:
    """Parse a signature string into a :class:`Signature` (raises :class:`SignatureError`)."""
    if not isinstance(text, str):
        raise SignatureError(f"signature must be a string, got {type(text).__name__}")
    s = "".join(text.split())
    if not s:
        raise SignatureError("empty signature; use block letters such as 'AB' or 'A^2B'")
    if len(s) > MAX_SIGNATURE_CHARS:
        raise SignatureError(f"signature of {len(s)} characters is too long (max {MAX_SIGNATURE_CHARS})")
    parser = _Parser(s)
    items = parser.sequence(0)
    letters: list[str] = []

    def visit(n: _Node) -> None:
        if n.letter is not None and n.letter not in letters:
            letters.append(n.letter)
        for ch in n.children:
            visit(ch)

    for it in items:
        visit(it)
    return Signature(s, items, tuple(letters), parser.first_exponent)


class _Parser:
    """Recursive descent over a whitespace-free signature: ``sequence := (letter | '(' sequence ')') ['^' k]*``."""

    def __init__(self, s: str) -> None:
        self.s = s
        self.pos = 0
        self.n_exponents = 0  # explicit ^k read so far (their textual order is a node's exp_id)
        self.first_exponent: int | None = None

    def fail(self, msg: str) -> SignatureError:
        """The error for ``msg``, with the signature and a caret under the current position."""
        return SignatureError(f"{msg} in signature {self.s!r}\n  {self.s}\n  {' ' * self.pos}^")

    def sequence(self, depth: int) -> tuple[_Node, ...]:
        """Items up to the ``)`` closing this level (``depth`` > 0) or the end of the text."""
        s, items = self.s, []
        while self.pos < len(s):
            c = s[self.pos]
            if "A" <= c <= "Z":
                self.pos += 1
                items.append(_Node(letter=c))
            elif c == "(":
                items.append(self.group(depth))
            elif c == ")":
                if depth == 0:
                    raise self.fail("unbalanced ')': no matching '('")
                return tuple(items)
            elif c == "^":
                if not items:
                    raise self.fail("'^' must follow a block letter or a ')' group")
                items[-1] = self.exponent(items[-1])
            else:
                raise self.fail(f"unknown character {c!r}: use block letters A-Z, '(', ')' and '^k'")
        if depth > 0:
            raise self.fail("unbalanced '(': missing ')'")
        return tuple(items)

    def group(self, depth: int) -> _Node:
        """A parenthesised group starting at ``(``."""
        if depth >= MAX_NESTING:
            raise self.fail(f"parentheses nested deeper than {MAX_NESTING} levels")
        self.pos += 1
        children = self.sequence(depth + 1)
        if self.pos >= len(self.s) or self.s[self.pos] != ")":
            raise self.fail("unbalanced '(': missing ')'")
        if not children:
            raise self.fail("empty group '()'")
        self.pos += 1
        return _Node(children=children)

    def exponent(self, prev: _Node) -> _Node:
        """``prev`` repeated by the ``^k`` starting at ``^``."""
        self.pos += 1
        m = _DIGITS.match(self.s, self.pos)
        if not m:
            raise self.fail("'^' must be followed by a positive integer exponent, e.g. 'A^2B'")
        digits = m.group(0).lstrip("0") or "0"
        k = int(digits) if len(digits) <= 6 else MAX_EXPONENT + 1  # no int() of a huge digit string
        if k < 1:
            raise self.fail("exponent must be >= 1 (got ^0)")
        if k > MAX_EXPONENT:
            raise self.fail(f"exponent {m.group(0)[:12]} is too large (max {MAX_EXPONENT})")
        if prev.exp_id is not None:
            raise self.fail("double exponent such as 'A^2^3'; use parentheses '(A^2)^3'")
        eid = self.n_exponents
        self.n_exponents += 1
        if eid == 0:
            self.first_exponent = k
        self.pos = m.end()
        return _Node(prev.letter, prev.children, k, eid)


# ----------------------------------------------------------------------------------------------
# Presets

# named signatures, ``name(x)`` taking the exponent x (not the training-config presets of rins.config.PRESETS)
SIGNATURE_PRESETS: dict[str, str] = {
    "baseline": "AB",
    "rins(r)": "A^rB",
    "rao(r)": "(AB)^r",
    "middle(r)": "AB^rC",
    "cycle(k)": "(ABC)^k",
    "sequence": "AABBCC",
    "cycle_rev": "ABCCBA",
}


def preset(name: str, r: int | None = None) -> str:
    """Signature of a named preset: ``baseline``, ``rins``, ``rao``, ``middle``, ``cycle``,
    ``sequence``, ``cycle_rev``. ``r`` is the exponent for the parametric ones (default 2)."""
    if not isinstance(name, str):
        raise _bad_arg("name", name, "must be a preset name (a string)", "preset")
    k = 2 if r is None else _int_arg("r", r, "preset")
    if k < 1:
        raise SignatureError(f"preset {name!r}: r must be >= 1, got {k}")
    entries = {key.partition("(")[0]: (key, sig) for key, sig in SIGNATURE_PRESETS.items()}
    if name not in entries:
        raise SignatureError(f"unknown preset {name!r}; known presets: {', '.join(entries)}")
    key, sig = entries[name]
    if "(" not in key:
        if r is not None:
            raise SignatureError(f"preset {name!r} takes no r")
        return sig
    return sig.replace("^" + key[-2], f"^{k}")  # "rins(r)": "A^rB" -> "A^3B"


_PRESET_RE = re.compile(r"^([a-z_]+)(?:\((\d*)\))?$")


def resolve_signature(text: str) -> str:
    """Return the signature for ``text``: a signature string or a preset expression (``rins(3)``)."""
    if isinstance(text, str) and len(text) > MAX_SIGNATURE_CHARS:
        raise SignatureError(f"signature of {len(text)} characters is too long (max {MAX_SIGNATURE_CHARS})")
    m = _PRESET_RE.match(text.strip()) if isinstance(text, str) else None
    if m:
        arg = m.group(2)
        return preset(m.group(1), int(arg) if arg else None)
    return text


# ----------------------------------------------------------------------------------------------
# Plans


@dataclass(frozen=True)
class Plan:
    """An execution plan: which layer runs at every step, and which recursion round it belongs to.

    Attributes:
        signature: the signature it was compiled from (presets resolved).
        n_layers: number of distinct layers (weights).
        degree: nesting degree.
        r: the recursion exponent used (``None`` when the signature has none).
        layers: executed layer indices, in order (one entry per *application*).
        rounds: for every application, the top-level round of the recursed group (0-based), or -1.
        round_ends: application indices after which round k of the recursed group ends (len == r).
        block_bounds: ``(start, stop)`` layer range of every top-level block, in letter order.
    """

    signature: str
    n_layers: int
    degree: int
    r: int | None
    layers: tuple[int, ...]
    rounds: tuple[int, ...]
    round_ends: tuple[int, ...]
    block_bounds: tuple[tuple[int, int], ...]

    @property
    def n_applications(self) -> int:
        """Number of executed layer applications (= KV-cache slots)."""
        return len(self.layers)

    @property
    def recursed_layers(self) -> tuple[int, ...]:
        """Sorted distinct layers that run inside the recursed group."""
        return tuple(sorted({lay for lay, rd in zip(self.layers, self.rounds) if rd >= 0}))

    def cost_ratio(self) -> float:
        """Executed layers per distinct layer (1.0 for the plain model)."""
        return self.n_applications / self.n_layers

    def first_application(self) -> tuple[int, ...]:
        """For every application, the index of the first application of the same layer."""
        first: dict[int, int] = {}
        return tuple(first.setdefault(lay, i) for i, lay in enumerate(self.layers))

    def describe(self) -> str:
        """Human-readable one-liner."""
        rr = f", r={self.r}" if self.r is not None else ""
        return (
            f"{self.signature} (degree {self.degree}{rr}) on {self.n_layers} layers: "
            f"{self.n_applications} applications, cost x{self.cost_ratio():.2f}: {list(self.layers)}"
        )

    def to_dict(self) -> dict:
        return {
            "signature": self.signature,
            "n_layers": self.n_layers,
            "degree": self.degree,
            "r": self.r,
            "layers": list(self.layers),
            "rounds": list(self.rounds),
            "round_ends": list(self.round_ends),
            "block_bounds": [list(b) for b in self.block_bounds],
            "n_applications": self.n_applications,
            "cost_ratio": self.cost_ratio(),
        }


def _split(start: int, stop: int, n: int, sizes: Sequence[int] | None, where: str) -> list[tuple[int, int]]:
    total = stop - start
    if sizes is not None:
        if len(sizes) != n:
            raise SignatureError(f"block_sizes has {len(sizes)} entries but the signature has {n} blocks")
        if any(int(x) < 1 for x in sizes):
            raise SignatureError(f"block_sizes must all be >= 1, got {list(sizes)}")
        if sum(sizes) != total:
            raise SignatureError(f"block_sizes {list(sizes)} sum to {sum(sizes)}, but there are {total} layers")
        out, a = [], start
        for x in sizes:
            out.append((a, a + int(x)))
            a += int(x)
        return out
    if n > total:
        raise SignatureError(
            f"{where}: {n} blocks but only {total} layers; use fewer letters or more layers"
        )
    if total % n:
        raise SignatureError(
            f"{where}: {total} layers are not divisible into {n} equal blocks; "
            f"pass block_sizes=... (e.g. {[total // n + (1 if i < total % n else 0) for i in range(n)]})"
        )
    w = total // n
    return [(start + i * w, start + (i + 1) * w) for i in range(n)]


def _bad_arg(name: str, value: object, allowed: str, where: str = "compile_plan") -> SignatureError:
    shown = repr(value)
    return SignatureError(f"{where}: {name}={shown[:77] + '...' if len(shown) > 80 else shown} is invalid: {allowed}")


def _int_arg(name: str, value: object, where: str = "compile_plan") -> int:
    """``value`` as an int when it is an integer: not a bool, not a float (4.0 and 4.9 alike), not text."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise _bad_arg(name, value, f"must be an integer (got {type(value).__name__})", where)
    return int(value)


def compile_plan(
    signature: str,
    n_layers: int,
    degree: int = 1,
    block_sizes: Sequence[int] | None = None,
    r: int | None = None,
) -> Plan:
    """Compile ``signature`` (or a preset expression such as ``"rins(3)"``) for ``n_layers`` layers.

    Args:
        signature: e.g. ``"AB"``, ``"A^3B"``, ``"(AB)^2"``, ``"AB^2C"``, ``"rins(2)"``.
        n_layers: number of distinct layers.
        degree: nesting degree d >= 1 (the pattern is applied again inside every block).
        block_sizes: explicit layer counts of the top-level blocks (default: equal); nested levels split equally.
        r: replace the recursion exponent (first explicit ``^k``) by ``r`` (any r >= 1).

    Raises:
        SignatureError: on any malformed input, with the fix in the message, and beyond the hard limits:
            ``r`` and every exponent <= :data:`MAX_EXPONENT`, ``degree`` <= :data:`MAX_DEGREE`; a
            plan may hold at most :data:`MAX_APPLICATIONS` layer applications.
    """
    # types first, nothing coerced (4.9 layers is an error, not 4); the ranges below keep their own messages
    if not isinstance(signature, str):
        raise _bad_arg("signature", signature, f"must be a string (got {type(signature).__name__})")
    n_layers, degree = _int_arg("n_layers", n_layers), _int_arg("degree", degree)
    r = None if r is None else _int_arg("r", r)
    bs = None
    if block_sizes is not None:
        if isinstance(block_sizes, str | bytes) or not isinstance(block_sizes, Sequence):
            raise _bad_arg("block_sizes", block_sizes, "must be None or a sequence of integers")
        if len(block_sizes) > MAX_APPLICATIONS:
            raise _bad_arg("block_sizes", block_sizes, f"has more than {MAX_APPLICATIONS} entries")
        bs = tuple(_int_arg(f"block_sizes[{i}]", x) for i, x in enumerate(block_sizes))
    sig_text = resolve_signature(signature)
    if n_layers > MAX_APPLICATIONS:
        raise SignatureError(f"n_layers={n_layers} exceeds the maximum {MAX_APPLICATIONS}")
    if degree > MAX_DEGREE:
        raise SignatureError(f"degree={degree} exceeds the maximum {MAX_DEGREE}")
    if r is not None and int(r) > MAX_EXPONENT:
        raise SignatureError(f"r={r} exceeds the maximum recursion depth {MAX_EXPONENT}")
    return _compile_cached(sig_text, n_layers, degree, bs, None if r is None else int(r))


# plans are at most MAX_APPLICATIONS long, so the cache holds at most ~256 × 64k applications
@lru_cache(maxsize=256)
def _compile_cached(
    sig_text: str, n_layers: int, degree: int, block_sizes: tuple[int, ...] | None, r: int | None
) -> Plan:
    sig = parse_signature(sig_text)
    if n_layers < 1:
        raise SignatureError(f"n_layers must be >= 1, got {n_layers}")
    if degree < 1:
        raise SignatureError(f"degree must be >= 1, got {degree}")
    if r is not None:
        if sig.exponent is None:
            raise SignatureError(
                f"signature {sig.text!r} has no explicit exponent, so r cannot be set; "
                "write the recursion as '^k', e.g. 'A^2B'"
            )
        if r < 1:
            raise SignatureError(f"r must be >= 1, got {r}")
    eff_r = r if r is not None else sig.exponent

    layers: list[int] = []
    rounds: list[int] = []
    round_ends: list[int] = []

    def emit(items: tuple[_Node, ...], start: int, stop: int, level: int, rnd: int, sizes) -> None:
        bounds = _split(start, stop, sig.n_blocks, sizes, f"degree-{level} level on layers {start}-{stop - 1}")
        block_of = {letter: bounds[i] for i, letter in enumerate(sig.letters)}

        def run(node: _Node, rnd: int) -> None:
            reps = node.repeat
            is_rec = node.exp_id == 0
            if is_rec:
                reps = eff_r
            for k in range(reps):
                cur = k if (is_rec and level == 1) else rnd
                if node.letter is not None:
                    a, b = block_of[node.letter]
                    if level < degree:
                        emit(sig.items, a, b, level + 1, cur, None)
                    else:
                        if len(layers) + b - a > MAX_APPLICATIONS:  # stop before the expansion outgrows memory
                            raise SignatureError(
                                f"plan of {sig.text!r} on {n_layers} layers (degree {degree}, r={eff_r}) has more "
                                f"than {MAX_APPLICATIONS} layer applications (the maximum); use smaller "
                                "exponents, a smaller r or fewer layers")
                        for lay in range(a, b):
                            layers.append(lay)
                            rounds.append(cur)
                else:
                    for ch in node.children:
                        run(ch, cur)
                if is_rec and level == 1:
                    round_ends.append(len(layers) - 1)

        for it in items:
            run(it, rnd)

    emit(sig.items, 0, n_layers, 1, -1, block_sizes)
    top_bounds = tuple(_split(0, n_layers, sig.n_blocks, block_sizes, "top level"))
    return Plan(
        signature=sig.text,
        n_layers=n_layers,
        degree=degree,
        r=eff_r,
        layers=tuple(layers),
        rounds=tuple(rounds),
        round_ends=tuple(round_ends),
        block_bounds=top_bounds,
    )


# ----------------------------------------------------------------------------------------------
# The taxonomy family


def _compress(word: str) -> str:
    """Write a letter word compactly: a whole-word period becomes ``(..)^k``, runs become ``X^k``."""
    n = len(word)
    for p in range(1, n):
        if n % p == 0 and word[:p] * (n // p) == word and p > 1:
            return f"({_compress_runs(word[:p])})^{n // p}"
    return _compress_runs(word)


def _compress_runs(word: str) -> str:
    out = []
    for letter, grp in itertools.groupby(word):
        k = len(list(grp))
        out.append(letter if k == 1 else f"{letter}^{k}")
    return "".join(out)


MAX_DEFAULT_DEPTHS = 16  # depths evaluated by default; a deeper recursion gets a log-spaced choice of them


def default_depths(r_max: int | None) -> list[int | None]:
    """Inference depths evaluated by default: 1 … r_max + 1 (or the single plain depth). Beyond
    :data:`MAX_DEFAULT_DEPTHS` depths (``r_max >= 16``) it is a log-spaced choice of that many that keeps 1,
    r_max and r_max + 1, so that ``A^1024B`` is not scored 1025 times (ask for more with explicit depths)."""
    if not r_max:
        return [None]
    if r_max + 1 <= MAX_DEFAULT_DEPTHS:
        return list(range(1, r_max + 2))
    k = MAX_DEFAULT_DEPTHS - 1
    beyond = {r_max + 1} if r_max < MAX_EXPONENT else set()  # no depth past the plan's limit
    return sorted({round(r_max ** (i / (k - 1))) for i in range(k)} | beyond)


def enumerate_variants(
    n_layers: int = 12,
    max_letters: int = 3,
    max_length: int = 6,
    degrees: Sequence[int] = (1, 2),
    max_r: int = 4,
) -> Iterator[tuple[str, int]]:
    """Yield ``(signature, degree)`` for the taxonomy family of docs/method.md §2, one per distinct plan.

    The family: every word over 2..``max_letters`` letters (letters in order of first appearance) of
    length <= ``max_length`` in which no letter runs more than ``max_r`` times in a row, written
    compactly (``AAB`` → ``A^2B``, ``ABAB`` → ``(AB)^2``), at every degree in ``degrees`` that compiles
    for ``n_layers``. Variants whose plan equals one already yielded are skipped, so every yielded
    variant is a distinct layer order; the plain model (``AB``, degree 1) comes first.
    """
    seen: set[tuple[int, ...]] = set()
    for degree in degrees:
        for length in range(2, max_length + 1):
            for word in _restricted_words(length, max_letters):
                if len(set(word)) < 2:
                    continue
                if any(len(list(g)) > max_r for _, g in itertools.groupby(word)):
                    continue
                sig = _compress(word)
                try:
                    plan = compile_plan(sig, n_layers, degree=degree)
                except SignatureError:
                    continue
                if plan.layers in seen:
                    continue
                seen.add(plan.layers)
                yield sig, degree


def _restricted_words(length: int, max_letters: int) -> Iterator[str]:
    """Words whose letters appear first in alphabetical order (A before B before C)."""

    def rec(prefix: list[int], used: int) -> Iterator[str]:
        if len(prefix) == length:
            yield "".join(chr(65 + i) for i in prefix)
            return
        for i in range(min(used + 1, max_letters)):
            yield from rec(prefix + [i], max(used, i + 1))

    yield from rec([], 0)
