"""Loaders for the example tasks (``custom_dataset: !function rins_shakespeare_data.load_...``).

They read the JSONL files next to this module, so the tasks work from any working directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets

HERE = Path(__file__).resolve().parent


def _load(name: str) -> dict[str, datasets.Dataset]:
    rows = [json.loads(line) for line in (HERE / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    return {"test": datasets.Dataset.from_list(rows)}


def load_next_line(**_: Any) -> dict[str, datasets.Dataset]:
    """The 200 next-line multiple-choice items."""
    return _load("shakespeare_next_line.jsonl")


def load_passages(**_: Any) -> dict[str, datasets.Dataset]:
    """The 40 held-out passages for rolling perplexity."""
    return _load("shakespeare_passages.jsonl")
