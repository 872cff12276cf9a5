"""What a FLOPs count means in rins, and the one place the training factor is written.

**What is counted.** Every count is *model FLOPs per executed layer application*: 2 FLOPs per multiply-add of
each matmul a forward pass runs — the attention projections (K/V not recomputed where ``kv_share`` reuses
them), QKᵀ and AV over the full sequence (a causal mask is not discounted, as ``FlopCounterMode`` and Chinchilla
count), the MLPs, adapters, patch embedding, pooling, output heads and (SigLIP, given the batch size) the
loss's B×B similarity matmul. Norms, softmax, activations, bias and residual adds and embedding lookups are not
counted. Under recursion a shared layer counts once per application.

**The names, by what they are per** (forward FLOPs unless ``training=True``; ``expected=True`` averages over the
stochastic depth distribution):

- ``flops_per_token`` — one token of the language model (:meth:`rins.model.RecursiveLM.flops_per_token`), of its
  stack and of its blocks;
- ``flops_per_example`` — one example of a vision model (:meth:`rins.siglip.SigLIP.flops_per_example`, an
  (image, text) pair; :meth:`rins.siglip.ViTClassifier.flops_per_example`, an image) and of their towers;
- ``flops_per_step`` — a task's expected training FLOPs of one optimizer step, what a FLOPs budget is divided by
  (:class:`rins.tasks.base.StepAccounting`); ``realised_flops`` the same at the depth drawn at a given step;
- ``flops`` — in logs and summaries, the training FLOPs a run has executed so far.

Pure Python: the analysis modules may import it without torch.
"""

from __future__ import annotations

__all__ = ["TRAINING_FACTOR", "flops_for", "training_flops"]

# forward + backward: the backward pass computes the gradients of the activations and of the weights, each
# one forward's worth of matmuls
TRAINING_FACTOR = 3


def training_flops(forward_flops: float) -> float:
    """The FLOPs of training on work whose forward pass costs ``forward_flops``: :data:`TRAINING_FACTOR` × it."""
    return forward_flops * TRAINING_FACTOR


def flops_for(forward_flops: float, training: bool = False) -> float:
    """``forward_flops`` for inference, its :func:`training_flops` with ``training``."""
    return training_flops(forward_flops) if training else forward_flops
