"""Argument checks of the public API (issue #28): types and ranges checked up front, one error type.

Every public function and config of rins (``compile_plan``, ``LMConfig`` / ``TrainConfig`` and the other
configs, ``RecursiveLM``, ``generate``, ``load_model``, ``evaluate_run``, ``from_hf``) raises
:class:`rins.ConfigError` (a ``ValueError``; :class:`rins.SignatureError` is one) for an argument of the wrong
type or out of range, with a message naming the function, the argument, the value and what is allowed. Nothing
is coerced silently: ``4.9`` is not an integer, ``True`` is not a number, ``"4"`` is not an int (the config
*files* and the command line parse text into typed values; the Python API takes them typed). Standard library
only.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

from .fields import ConfigError

__all__ = ["ConfigError", "bad_argument", "check_int", "check_number", "check_str", "check_choice"]

SEED_LIMIT = 2**64  # generators take 64-bit seeds


def bad_argument(where: str, name: str, value: Any, allowed: str, error: type[ConfigError] = ConfigError
                 ) -> ConfigError:
    """The error for ``where(name=value)``: ``"where: name=value is invalid: allowed"``."""
    try:
        shown = repr(value)
    except Exception:  # a hostile __repr__ must not hide the real problem
        shown = f"<{type(value).__name__}>"
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return error(f"{where}: {name}={shown} is invalid: {allowed}")


def check_int(where: str, name: str, value: Any, lo: int | None = None, hi: int | None = None,
              error: type[ConfigError] = ConfigError) -> int:
    """``value`` as an ``int`` when it is an integer (not a bool, not a float: 4.0 and 4.9 alike) within
    ``[lo, hi]``; else ``error`` naming ``where`` and ``name``."""
    rng = (f" in [{lo}, {hi}]" if lo is not None and hi is not None else f" >= {lo}" if lo is not None
           else f" <= {hi}" if hi is not None else "")
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise bad_argument(where, name, value, f"must be an integer{rng} (got {type(value).__name__})", error)
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise bad_argument(where, name, value, f"must be an integer{rng}", error)
    return v


def check_number(where: str, name: str, value: Any, lo: float | None = None, hi: float | None = None,
                 lo_open: bool = False, hi_open: bool = False, error: type[ConfigError] = ConfigError) -> float:
    """``value`` as a finite ``float`` (ints accepted, bools and NaN/inf not) within the given bounds."""
    parts = [f"> {lo}" if lo_open else f">= {lo}"] if lo is not None else []
    parts += [f"< {hi}" if hi_open else f"<= {hi}"] if hi is not None else []
    allowed = "must be a finite number" + (" " + " and ".join(parts) if parts else "")
    if isinstance(value, bool) or not isinstance(value, Real):
        raise bad_argument(where, name, value, f"{allowed} (got {type(value).__name__})", error)
    try:
        v = float(value)
    except (OverflowError, ValueError):
        raise bad_argument(where, name, value, allowed, error) from None
    if (not math.isfinite(v) or (lo is not None and (v <= lo if lo_open else v < lo))
            or (hi is not None and (v >= hi if hi_open else v > hi))):
        raise bad_argument(where, name, value, allowed, error)
    return v


def check_str(where: str, name: str, value: Any, error: type[ConfigError] = ConfigError) -> str:
    """``value`` when it is a ``str``; else ``error`` naming ``where`` and ``name``."""
    if not isinstance(value, str):
        raise bad_argument(where, name, value, f"must be a string (got {type(value).__name__})", error)
    return value


def check_choice(where: str, name: str, value: Any, choices: tuple[Any, ...],
                 error: type[ConfigError] = ConfigError) -> Any:
    """``value`` when it is one of ``choices`` (compared by type and value); else ``error``."""
    if not any(type(value) is type(c) and value == c for c in choices):
        raise bad_argument(where, name, value, f"must be one of {', '.join(map(repr, choices))}", error)
    return value
