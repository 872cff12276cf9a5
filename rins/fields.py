"""Config fields from untyped tables: values parsed by their dataclass field's declared type, a
:class:`ConfigError` naming the key, the fields a ``[model]`` table named, and the fields' documentation.

The bottom of the package (standard library only): the model, the checkpoints and the tasks parse their
typed configs with it, and :mod:`rins.config` builds ``TrainConfig`` on it.
"""

from __future__ import annotations

import copy
import math
import os
import re
import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any

__all__ = [
    "ConfigError",
    "coerce_fields",
    "default_cache_dir",
    "coerce_value",
    "field_docs",
    "given_fields",
    "invalid",
    "mark_given",
    "depths_type",
    "parse_depths",
    "parse_fields",
    "split_model_section",
    "type_name",
]


class ConfigError(ValueError):
    """A config value of the wrong type or out of range; the message names the key, the value and what is allowed."""


def invalid(key: str, value: Any, allowed: str) -> ConfigError:
    """The :class:`ConfigError` of ``key=value``, saying what is ``allowed``."""
    shown = repr(value) if not isinstance(value, str) or len(value) <= 80 else repr(value[:80] + "...")
    return ConfigError(f"config {key}={shown} is invalid: {allowed}")


_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}
_INT_RE = re.compile(r"[+-]?\d{1,19}")
_INT_LIMIT = 2**63


def coerce_value(key: str, value: Any, tp: Any, text: bool = False) -> Any:
    """``value`` checked against the declared type ``tp`` (bool, int, float, str, ``X | None``, ``list[int]``,
    ``tuple[int, ...]``); other types pass through. Only lossless conversions are made: an integral float to an
    int, an int to a float, 0/1 to a boolean, a list to a tuple; integers reject fractions and bools, floats must
    be finite. Text is parsed (``"8"`` as 8, ``"yes"`` as true, ``"1,2"`` as [1, 2]) only with ``text=True``, for
    values that come from a command line; anywhere else (a dict, JSON, TOML) a string where a number or boolean
    belongs is refused. Raises :class:`ConfigError` naming ``key``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if text and type(None) in args and isinstance(value, str) and value.strip().lower() in ("none", "null"):
            return None
        rest = [a for a in args if a is not type(None)]
        if set(rest) == {bool, str}:  # a switch with named settings (compile: true / false / "auto"): the
            try:                      # boolean spellings are a boolean, any other text is left to the field's check
                return coerce_value(key, value, bool, text)
            except ConfigError:
                if isinstance(value, str) and value.strip().lower() not in _TRUE | _FALSE:
                    return value.strip()  # a setting's name ("auto"): the field's own check has the last word
                raise  # a boolean in words outside a command line, or not text at all
        if len(rest) == 1:
            try:
                return coerce_value(key, value, rest[0], text)
            except ConfigError:
                if type(None) in args:
                    raise invalid(key, value, f"must be {_describe(rest[0])} or none{_not_text(value, text)}") from None
                raise
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if text and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise invalid(key, value, "must be a boolean (true/false/1/0/yes/no)" if text else
                      "must be true or false" + _not_text(value, text))
    if tp is int:
        if text and isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
            value = int(value)
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and -_INT_LIMIT < value < _INT_LIMIT:
            return value
        raise invalid(key, value, "must be an integer (within ±2^63)" + _not_text(value, text))
    if tp is float:
        if text and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise invalid(key, value, "must be a number") from None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise invalid(key, value, "must be a finite number" + _not_text(value, text))
    if tp is str:
        if isinstance(value, str):
            return value
        raise invalid(key, value, "must be a string")
    if origin in (list, tuple) and args and args[0] is int:
        if text and isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise invalid(key, value, "must be a list of integers, e.g. [1, 2, 3]" + _not_text(value, text))
        out = [coerce_value(key, v, int, text) for v in value]
        return tuple(out) if origin is tuple else out
    return value


def _not_text(value: Any, text: bool) -> str:
    """The hint for a string where a number, boolean or list belongs (outside a command line's text)."""
    return " (it is a string: write the value itself, e.g. 8 not '8')" if isinstance(value, str) and not text else ""


def _describe(tp: Any) -> str:
    return {bool: "a boolean (true/false/1/0/yes/no)", int: "an integer", float: "a finite number",
            str: "a string"}.get(tp, "a list of integers")


def coerce_fields(cls: type, d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A copy of ``d`` with every key that is a field of the dataclass ``cls`` parsed by its declared type
    (unknown keys are kept, for the caller to report)."""
    hints = typing.get_type_hints(cls)
    return {k: coerce_value(prefix + k, v, hints[k]) if k in hints else v for k, v in d.items()}


_GIVEN = "_rins_given"  # instance attribute of a typed model config: the fields its table named


def parse_fields(cls: type, d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``d`` checked against the dataclass ``cls`` (unknown keys are a :class:`ConfigError` naming them) and
    parsed by the declared types, nested config tables included (``model.image.n_layers``)."""
    if not isinstance(d, dict):
        raise invalid(prefix.rstrip(".") or "config", d, "must be a table")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"unknown config keys {[prefix + k for k in unknown]}; known: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    return {k: parse_fields(hints[k], v, f"{prefix}{k}.") if is_dataclass(hints[k]) and isinstance(v, dict)
            else coerce_value(prefix + k, v, hints[k]) for k, v in d.items()}


def mark_given(obj: Any, given: dict[str, Any]) -> None:
    """Remember on the typed config ``obj`` which fields its table named (``given``, nested configs likewise),
    for :func:`given_fields`."""
    object.__setattr__(obj, _GIVEN, tuple(given))
    for k, v in given.items():
        if isinstance(v, dict) and is_dataclass(getattr(obj, k, None)):
            mark_given(getattr(obj, k), v)


def given_fields(obj: Any) -> dict[str, Any]:
    """The fields of a typed model config that its config table named, as plain data (nested configs likewise);
    every field for a config built in code. This is the ``[model]`` table ``config.json`` records."""
    names = getattr(obj, _GIVEN, None)
    out: dict[str, Any] = {}
    for k in names if names is not None else [f.name for f in fields(obj)]:
        v = getattr(obj, k)
        out[k] = given_fields(v) if is_dataclass(v) and not isinstance(v, type) else copy.deepcopy(v)
    return out


def split_model_section(task: str, model: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ``[model]`` table of the old layout split into (model fields, data options): ``model.data_options``
    (siglip, vit) and vit's ``model.n_classes`` are ``data.options`` now, and configs and run directories
    written before still load."""
    model, options = dict(model), {}
    if task in ("siglip", "vit"):
        old = model.pop("data_options", None)
        if old is not None:
            if not isinstance(old, dict):
                raise invalid("model.data_options", old, "must be a table (it is data.options now)")
            options.update(old)
        if task == "vit" and "n_classes" in model:
            options["n_classes"] = model.pop("n_classes")
    return model, options


def type_name(tp: Any) -> str:
    """A short name of a declared field type for help texts: ``int``, ``float | none``, ``list[int] | none``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join("none" if a is type(None) else type_name(a) for a in args)
    if origin in (list, tuple):
        return f"list[{type_name(args[0])}]" if args else "list"  # a TOML array or --set 1,2,3 either way
    return getattr(tp, "__name__", str(tp)).lower()


def field_docs(cls: type) -> dict[str, str]:
    """One line of documentation per field of the dataclass ``cls`` (and its bases), read from the source: the
    field's trailing ``# comment``, else the comment lines right above it, else its entry in the class
    docstring's ``Attributes:`` section. Fields without any are missing from the result."""
    import ast
    import inspect
    import io
    import tokenize

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not is_dataclass(klass) or klass is object:
            continue
        try:
            src = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        src = inspect.cleandoc("\n" + src) if src[:1].isspace() else src
        lines = src.splitlines()
        comments = {t.start[0]: t.string.lstrip("#").strip()
                    for t in tokenize.generate_tokens(io.StringIO(src).readline) if t.type == tokenize.COMMENT}
        attrs: dict[str, str] = {}
        doc = inspect.getdoc(klass) or ""
        if "Attributes:" in doc:
            cur = None
            for line in doc.split("Attributes:", 1)[1].splitlines():
                m = re.match(r"\s{4}(\w+):\s*(.*)", line)
                if m:
                    cur = m.group(1)
                    attrs[cur] = m.group(2).strip()
                elif cur and line.startswith("        ") and line.strip():
                    attrs[cur] += " " + line.strip()
                elif line.strip():
                    cur = None
        body = ast.parse(src).body[0]
        for node in getattr(body, "body", []):
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            name, text = node.target.id, comments.get(node.end_lineno, "")
            if not text or not lines[node.end_lineno - 1].split("#")[0].strip():
                above, ln = [], node.lineno - 1
                while ln >= 1 and lines[ln - 1].strip().startswith("#"):
                    above.insert(0, lines[ln - 1].strip().lstrip("#").strip())
                    ln -= 1
                text = " ".join(above)
            text = text or attrs.get(name, "") or docs.get(name, "")
            if text:
                docs[name] = text
    return docs


def parse_depths(text: str, one: bool = False) -> list[int]:
    """The value of ``--r`` in every verb: comma-separated inference depths ``1,2,3``; one depth is a list of one
    (``3`` → ``[3]``). ``one=True``: a verb that runs at a single depth refuses more. ``ValueError`` otherwise."""
    try:
        rs = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--r takes comma-separated integers >= 1, e.g. 2 or 1,2,3; got {text!r}") from None
    if not rs or any(r < 1 for r in rs):
        raise ValueError(f"--r takes comma-separated integers >= 1, e.g. 2 or 1,2,3; got {text!r}")
    if one and len(rs) > 1:
        raise ValueError(f"--r: this verb runs at one depth; got {len(rs)} ({text}): pass one, e.g. --r {rs[0]}")
    return rs


def depths_type(one: bool = False) -> typing.Callable[[str], list[int]]:
    """:func:`parse_depths` as an argparse ``type=`` (its message becomes the usage error)."""
    import argparse

    def depths(text: str) -> list[int]:
        try:
            return parse_depths(text, one)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix("--r: ")) from None

    return depths


def default_cache_dir() -> str:
    """Where corpora, tokenizers and token files are cached unless ``data.cache_dir`` says otherwise: ``$RINS_CACHE``,
    else ``$XDG_CACHE_HOME/rins``, else ``~/.cache/rins`` — one per user, not per working folder, so a corpus is
    fetched once whichever folder ``rins`` runs from. A ``.cache/rins`` in the current folder (the default of
    earlier versions) is still used where it exists, so existing setups find their data."""
    if os.environ.get("RINS_CACHE"):
        return os.environ["RINS_CACHE"]
    if os.path.isdir(os.path.join(".cache", "rins")):  # the former default, in the current folder: keep using it
        return os.path.join(".cache", "rins")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "rins")
