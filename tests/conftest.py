import pytest
import torch

from rins import LMConfig, RecursiveLM

# Tiny models are overhead-bound: one intra-op thread is as fast and avoids oversubscription when the
# suite shares the machine with other jobs.
torch.set_num_threads(1)


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
