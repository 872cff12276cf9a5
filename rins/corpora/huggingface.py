"""``hf:NAME[:CONFIG][:SPLIT][@FIELD]``: a Hugging Face ``datasets`` dataset as a corpus, one document per row
(``datasets`` is installed separately: ``pip install datasets``); SPLIT defaults to ``train`` and FIELD to
``text``.
"""

from __future__ import annotations

from pathlib import Path

from .documents import Document

__all__ = ["load_hf"]


def _parse_hf_spec(spec: str) -> tuple[str, str | None, str, str]:
    body = spec[len("hf:") :]
    field_name = "text"
    if "@" in body:
        body, field_name = body.rsplit("@", 1)
    parts = body.split(":")
    if not parts[0] or len(parts) > 3 or not field_name:
        raise ValueError(f"bad Hugging Face spec {spec!r}; expected 'hf:NAME[:CONFIG][:SPLIT][@FIELD]'")
    name = parts[0]
    config = parts[1] or None if len(parts) > 1 else None
    split = parts[2] if len(parts) > 2 and parts[2] else "train"
    return name, config, split, field_name


def load_hf(spec: str, cache_dir: Path) -> list[Document]:
    """The rows of the dataset ``spec`` names, downloaded into ``cache_dir/hf`` by ``datasets``."""
    name, config, split, field_name = _parse_hf_spec(spec)
    try:
        import datasets  # noqa: PLC0415 - optional dependency, imported lazily
    except ImportError as e:
        raise ImportError(
            f"corpus {spec!r} needs the Hugging Face 'datasets' package; install it with "
            "`pip install datasets` (or `pip install rins[hf]`)"
        ) from e
    ds = datasets.load_dataset(name, config, split=split, cache_dir=str(cache_dir / "hf"))
    docs = []
    for i, row in enumerate(ds):
        if field_name not in row:
            raise ValueError(
                f"corpus {spec!r}: rows have no field {field_name!r} (fields: {sorted(row)}); "
                "choose one with '@FIELD'"
            )
        docs.append(Document(f"{name}/{split}/{i}", str(row[field_name])))
    return docs
