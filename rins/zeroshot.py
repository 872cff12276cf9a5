"""Zero-shot classification (prompt ensembles) and image↔text retrieval for :class:`rins.siglip.SigLIP`,
at any inference depth per tower. Every function returns plain Python numbers / dicts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .plan import default_depths
from .siglip import SigLIP
from .vision_data import ByteTokenizer, ImageTextData

__all__ = [
    "class_embeddings",
    "encode_images",
    "encode_texts",
    "evaluate_siglip",
    "retrieval_recall",
    "zeroshot_accuracy",
]


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def encode_images(model: SigLIP, images: torch.Tensor, r: int | None = None, batch_size: int = 256) -> torch.Tensor:
    """Normalised image embeddings (N, E) on the CPU, in eval mode at depth ``r``."""
    was = model.training
    model.eval()
    dev = _device(model)
    out = [model.encode_image(images[i:i + batch_size].to(dev), r).cpu() for i in range(0, len(images), batch_size)]
    model.train(was)
    return torch.cat(out)


@torch.no_grad()
def encode_texts(model: SigLIP, texts: Sequence[str], r: int | None = None, batch_size: int = 256,
                 tokenizer: ByteTokenizer | None = None) -> torch.Tensor:
    """Normalised text embeddings (N, E) of raw strings at depth ``r``."""
    tok = tokenizer or ByteTokenizer()
    was = model.training
    model.eval()
    dev = _device(model)
    L = model.config.text.max_len
    out = [model.encode_text(tok.encode(texts[i:i + batch_size], L).to(dev), r).cpu()
           for i in range(0, len(texts), batch_size)]
    model.train(was)
    return torch.cat(out)


def class_embeddings(model: SigLIP, class_names: Sequence[str], templates: Sequence[str], r: int | None = None,
                     tokenizer: ByteTokenizer | None = None) -> torch.Tensor:
    """Prompt ensemble: per class, the mean of the normalised embeddings of every template, renormalised."""
    prompts = [t.format(c) for c in class_names for t in templates]
    emb = encode_texts(model, prompts, r, tokenizer=tokenizer).view(len(class_names), len(templates), -1)
    return torch.nn.functional.normalize(emb.mean(1), dim=-1)


def zeroshot_accuracy(img_emb: torch.Tensor, labels: torch.Tensor | Sequence[int], cls_emb: torch.Tensor,
                      ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy of assigning each image the class whose ensemble embedding is most similar."""
    labels = torch.as_tensor(labels)
    sims = img_emb @ cls_emb.t()
    out = {}
    for k in ks:
        k_ = min(k, cls_emb.shape[0])
        top = sims.topk(k_, dim=1).indices
        out[f"top{k}"] = float((top == labels[:, None]).any(1).float().mean())
    return out


def retrieval_recall(img_emb: torch.Tensor, txt_emb: torch.Tensor, ks: Sequence[int] = (1, 5, 10),
                     img_ids: torch.Tensor | None = None, txt_ids: torch.Tensor | None = None) -> dict[str, float]:
    """Image→text and text→image recall@k. Image i and text j match when ``img_ids[i] == txt_ids[j]``
    (default: i == j); pass caption ids when several images share a caption (templated captions)."""
    n_i, n_t = img_emb.shape[0], txt_emb.shape[0]
    ii = torch.arange(n_i) if img_ids is None else torch.as_tensor(img_ids)
    tt = torch.arange(n_t) if txt_ids is None else torch.as_tensor(txt_ids)
    match = ii[:, None] == tt[None, :]
    sims = img_emb @ txt_emb.t()
    out = {}
    for k in ks:
        ki, kt = min(k, n_t), min(k, n_i)
        hit_i = match.gather(1, sims.topk(ki, dim=1).indices).any(1)
        hit_t = match.t().gather(1, sims.t().topk(kt, dim=1).indices).any(1)
        out[f"i2t_r@{k}"] = float(hit_i.float().mean())
        out[f"t2i_r@{k}"] = float(hit_t.float().mean())
    return out


def _depths(tower_r_max: int | None, depths: Sequence[int | None] | None) -> list[int | None]:
    if not tower_r_max:
        return [None]
    return list(depths) if depths is not None else default_depths(tower_r_max)


def evaluate_siglip(model: SigLIP, data: ImageTextData, image_depths: Sequence[int | None] | None = None,
                    text_depths: Sequence[int | None] | None = None, max_images: int = 2000,
                    max_retrieval: int = 1000, grid: bool = True) -> dict[str, Any]:
    """Zero-shot top-1/top-5 and retrieval recall@1/5/10 at every (image r, text r).

    A tower without recursion is evaluated at its only depth (key ``"-"``). With ``grid=False`` only the
    diagonal (same r for every recursed tower) is evaluated. Returns ``{"zeroshot": {"ri,rt": {...}},
    "retrieval": {"ri,rt": {...}}}`` where ``ri``/``rt`` are depths or ``"-"``.
    """
    di = _depths(model.image.r_max, image_depths)
    dt = _depths(model.text.r_max, text_depths)
    n = min(len(data), max_images)
    images = data.tensor_images(range(n))
    labels = torch.as_tensor(data.labels[:n]) if data.labels is not None else None
    m = min(len(data), max_retrieval)
    caps = [data.caption(i) for i in range(m)]
    uniq = {c: j for j, c in enumerate(dict.fromkeys(caps))}
    cap_ids = torch.tensor([uniq[c] for c in caps])
    uniq_caps = list(uniq)
    img_cache = {r: encode_images(model, images, r) for r in di}
    out: dict[str, Any] = {"zeroshot": {}, "retrieval": {}}
    pairs = [(a, b) for a in di for b in dt]
    if not grid:
        pairs = [(a, b) for a, b in pairs if a is None or b is None or a == b]
    for rt in dt:
        cls = None
        if labels is not None and data.class_names:
            cls = class_embeddings(model, data.class_names, data.prompt_templates or ["{}"], rt)
        txt = encode_texts(model, uniq_caps, rt)
        for ri in di:
            if (ri, rt) not in pairs:
                continue
            key = f"{'-' if ri is None else ri},{'-' if rt is None else rt}"
            if cls is not None:
                out["zeroshot"][key] = zeroshot_accuracy(img_cache[ri], labels, cls)
            out["retrieval"][key] = retrieval_recall(img_cache[ri][:m], txt, img_ids=cap_ids,
                                                     txt_ids=torch.arange(len(uniq_caps)))
    return out
