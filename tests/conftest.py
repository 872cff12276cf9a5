import importlib.util
import random
from pathlib import Path

import pytest
import torch

from rins import LMConfig, RecursiveLM

# Tiny models are overhead-bound: one intra-op thread is as fast and avoids oversubscription when the
# suite shares the machine with other jobs.
torch.set_num_threads(1)


ROOT = Path(__file__).resolve().parents[1]


def load_script(relpath: str):
    """A script of the repository that is not a package module (``benchmarks/x.py``, ``tools/y.py``), imported
    from its path."""
    path = ROOT / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tiny_config(**kw) -> LMConfig:
    base = dict(vocab_size=61, n_layers=4, d_model=32, n_heads=4, max_seq_len=48)
    base.update(kw)
    return LMConfig(**base)


def tiny_lm(seed: int = 0, **kw) -> RecursiveLM:
    torch.manual_seed(seed)
    return RecursiveLM(tiny_config(**kw)).eval()


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


WORDS = "the king queen castle sword love night day speak hear thou art my lord lady good ill fate star sea".split()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """A tiny five-document text corpus (a folder of .txt files)."""
    d = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    for i in range(5):
        (d / f"doc{i}.txt").write_text(
            "\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) + "." for _ in range(300))
        )
    return d


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    """A data cache shared by the tests (prepared corpora are reused)."""
    return tmp_path_factory.mktemp("cache")
