import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from rins.model import SignatureError, sample_depth
from rins.siglip import (
    SigLIP,
    SigLIPConfig,
    TextTowerConfig,
    ViTClassifier,
    ViTConfig,
    sigmoid_loss,
    softmax_loss,
)
from rins.vision_data import ByteTokenizer, ImageTextData
from rins.zeroshot import class_embeddings, encode_images, evaluate_siglip, retrieval_recall, zeroshot_accuracy


def tiny_siglip(img=None, txt=None, **kw) -> SigLIP:
    image = dict(n_layers=2, d_model=32, n_heads=2, image_size=8, patch_size=4, channels=3)
    text = dict(n_layers=2, d_model=32, n_heads=2, max_len=24)
    image.update(img or {})
    text.update(txt or {})
    return SigLIP(SigLIPConfig(image=ViTConfig(**image), text=TextTowerConfig(**text), embed_dim=16, **kw))


def _inputs(B=3, L=24):
    return torch.randn(B, 3, 8, 8), torch.randint(0, 258, (B, L))


def test_forward_shapes_normalised_and_depths():
    m = tiny_siglip({"signature": "A^2B"}).eval()
    x, t = _inputs()
    i, e = m(x, t)
    assert i.shape == (3, 16) and e.shape == (3, 16)
    assert torch.allclose(i.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert not torch.allclose(m(x, t, r_image=1)[0], i)  # a different inference depth
    assert torch.allclose(m(x, t, r_image=2)[0], i, atol=1e-6)  # trained depth = default
    with pytest.raises(SignatureError):
        m(x, t, r_text=2)  # the text tower has no recursion
    with pytest.raises(ValueError, match="images must be"):
        m(torch.randn(2, 1, 8, 8), t[:2])


def test_r_max_is_the_deepest_tower_like_every_model():
    m = tiny_siglip({"signature": "A^2B"}, {"signature": "A^3B"})
    assert m.r_max == 3 and m.tower_r_max == {"image": 2, "text": 3}
    plain = tiny_siglip()
    assert plain.r_max is None and plain.tower_r_max == {"image": None, "text": None}
    assert tiny_siglip(txt={"signature": "A^2B"}).r_max == 2


def test_config_roundtrip_and_validation():
    c = SigLIPConfig.from_dict({"image": {"signature": "A^3B", "block_sizes": [1, 1], "n_layers": 2,
                                          "adapters": "round"}, "text": {"pool": "mean"}, "loss": "softmax"})
    assert isinstance(c.image, ViTConfig) and c.image.block_sizes == (1, 1)
    assert SigLIPConfig.from_dict(c.to_dict()) == c
    assert "image=A^3B" in c.signature
    with pytest.raises(ValueError, match="unknown"):
        SigLIPConfig.from_dict({"imgae": {}})
    with pytest.raises(ValueError):
        ViTConfig(image_size=10, patch_size=4)
    with pytest.raises(ValueError):
        TextTowerConfig(pool="cls")
    with pytest.raises(SignatureError):
        ViTConfig(signature="AB", p_skip=0.5)


@pytest.mark.parametrize("img,txt", [
    ({}, {}),
    ({"signature": "A^3B", "adapters": "round", "pool": "mean"}, {"signature": "A^2B", "pool": "mean"}),
    ({"signature": "A^2B", "kv_share": True, "adapters": "depth", "adapter_rank": 4}, {"mlp": "swiglu"}),
    ({"n_kv_heads": 1, "mlp": "swiglu", "norm": "rmsnorm"}, {"signature": "(AB)^2", "n_kv_heads": 1}),
])
def test_flops_match_flop_counter(img, txt):
    m = tiny_siglip(img, txt).eval()
    x, t = _inputs(B=4)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        m(x, t)
    assert fc.get_total_flops() == pytest.approx(4 * m.flops_per_example(), rel=0.02)
    if m.image.r_max:
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
            m(x, t, r_image=4)
        assert fc.get_total_flops() == pytest.approx(4 * m.flops_per_example(r_image=4), rel=0.02)
    # the loss's B×B similarity is counted when batch_size is given
    m.train()
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        m.loss(x, t, r_image=m.image.r_max, r_text=m.text.r_max)
    assert fc.get_total_flops() == pytest.approx(4 * m.flops_per_example(m.image.r_max, m.text.r_max,
                                                                         batch_size=4), rel=0.02)


def test_flops_training_and_expected():
    m = tiny_siglip({"signature": "A^3B", "p_skip": 0.5})
    f = [m.flops_per_example(r_image=k) for k in (1, 2, 3)]
    assert f[0] < f[1] < f[2]
    exp = m.flops_per_example(expected=True)
    assert exp == pytest.approx(0.25 * f[0] + 0.5 * f[1] + 0.25 * f[2])
    assert m.flops_per_example(training=True) == pytest.approx(3 * m.flops_per_example())
    c = ViTClassifier(ViTConfig(n_layers=2, d_model=32, n_heads=2, image_size=8, channels=3), 5).eval()
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        c(torch.randn(2, 3, 8, 8))
    assert fc.get_total_flops() == pytest.approx(2 * c.flops_per_example(), rel=0.02)


def _reference_sigmoid(img, txt, tp, b):
    B = img.shape[0]
    total = 0.0
    for i in range(B):
        for j in range(B):
            z = 1.0 if i == j else -1.0
            total += -math.log(1 / (1 + math.exp(-z * (math.exp(tp) * float(img[i] @ txt[j]) + b))))
    return total / B


def test_sigmoid_loss_reference_and_chunking():
    torch.manual_seed(0)
    img = F.normalize(torch.randn(7, 5, dtype=torch.float64), dim=-1)
    txt = F.normalize(torch.randn(7, 5, dtype=torch.float64), dim=-1)
    tp = torch.tensor(math.log(10.0), dtype=torch.float64)
    b = torch.tensor(-10.0, dtype=torch.float64)
    full = sigmoid_loss(img, txt, tp, b)
    assert float(full) == pytest.approx(_reference_sigmoid(img, txt, float(tp), float(b)), rel=1e-10)
    grads = []
    for cs in (None, 3, 1):
        a, t_, s, bb = (v.clone().requires_grad_() for v in (img, txt, tp, b))
        loss = sigmoid_loss(a, t_, s, bb, chunk_size=cs)
        loss.backward()
        assert loss.item() == pytest.approx(float(full), rel=1e-12)
        grads.append([v.grad for v in (a, t_, s, bb)])
    for g in grads[1:]:
        for x, y in zip(g, grads[0]):
            assert torch.allclose(x, y, atol=1e-12)
    # groups: identical ids are positives
    g = torch.tensor([0, 0, 1, 2, 3, 4, 5])
    lg = sigmoid_loss(img, txt, tp, b, groups=g)
    logits = img @ txt.t() * tp.exp() + b
    z = torch.where(g[:, None] == g[None], 1.0, -1.0).double()
    assert float(lg) == pytest.approx(float(-F.logsigmoid(z * logits).sum() / 7), rel=1e-10)
    assert float(sigmoid_loss(img, txt, tp, b, chunk_size=2, groups=g)) == pytest.approx(float(lg), rel=1e-12)


def test_softmax_loss_reference():
    torch.manual_seed(1)
    img = F.normalize(torch.randn(6, 4), dim=-1)
    txt = F.normalize(torch.randn(6, 4), dim=-1)
    s = torch.tensor(math.log(10.0))
    logits = 10.0 * img @ txt.t()
    ref = 0.5 * (F.cross_entropy(logits, torch.arange(6)) + F.cross_entropy(logits.t(), torch.arange(6)))
    assert float(softmax_loss(img, txt, s)) == pytest.approx(float(ref), rel=1e-5)
    m = tiny_siglip(loss="softmax")
    x, t = _inputs(B=4)
    assert torch.isfinite(m.loss(x, t))


def test_stochastic_depth_deterministic_in_step():
    m = tiny_siglip({"signature": "A^3B", "p_skip": 0.5, "depth_seed": 5}).train()
    x, t = _inputs()
    a = m(x, t, step=11)[0]
    assert torch.equal(a, m(x, t, step=11)[0])
    r = sample_depth(3, 0.5, 5, 11)
    m.eval()
    assert torch.allclose(a, m(x, t, r_image=r)[0], atol=1e-6)


def test_zero_init_adapters_do_not_change_r1():
    torch.manual_seed(0)
    plain = tiny_siglip({"signature": "A^2B"}).eval()
    torch.manual_seed(0)
    ad = tiny_siglip({"signature": "A^2B", "adapters": "round"}).eval()
    ad.load_state_dict(plain.state_dict(), strict=False)
    x, t = _inputs()
    assert torch.allclose(plain(x, t, r_image=1)[0], ad(x, t, r_image=1)[0], atol=1e-6)
    assert 0 < ad.adapter_fraction() < 0.2


def test_retrieval_and_zeroshot_metrics():
    e = F.normalize(torch.eye(4) + 0.01, dim=-1)
    r = retrieval_recall(e, e, ks=(1, 5))
    assert r["i2t_r@1"] == 1.0 and r["t2i_r@1"] == 1.0 and r["i2t_r@5"] == 1.0
    shuffled = e[[1, 0, 2, 3]]
    assert retrieval_recall(e, shuffled, ks=(1,))["i2t_r@1"] == 0.5
    # caption ids: images 0 and 1 share caption 0
    r = retrieval_recall(e[:2], e[:1], ks=(1,), img_ids=torch.tensor([0, 0]), txt_ids=torch.tensor([0]))
    assert r["i2t_r@1"] == 1.0
    acc = zeroshot_accuracy(e[[0, 1, 2, 2]], torch.tensor([0, 1, 2, 0]), e[:3], ks=(1, 5))
    assert acc["top1"] == 0.75 and acc["top5"] == 1.0


def _synthetic(n: int, seed: int) -> ImageTextData:
    """4 classes: a bright quadrant (which one = the class) on a noisy grey 8×8 image."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(90, 25, (n, 8, 8, 3))
    for k in range(4):
        r0, c0 = (k // 2) * 4, (k % 2) * 4
        x[y == k, r0:r0 + 4, c0:c0 + 4] += 140
    names = ["apple", "boat", "cloud", "dog"]
    return ImageTextData(x.clip(0, 255).astype(np.uint8), [names[k] for k in y], ["a photo of a {}."], y, names)


def test_tiny_siglip_learns_zero_shot_above_chance():
    """A tiny two-tower model trained for a few seconds classifies a held-out synthetic set zero-shot far above
    chance. The softmax loss is used: at this scale (4 captions in all, 64 pairs a batch) the sigmoid loss stays at
    the collapsed stationary point for hundreds of steps (see RESULTS.md)."""
    torch.manual_seed(0)
    tr, va = _synthetic(512, 0), _synthetic(256, 1)
    m = tiny_siglip({"signature": "A^2B", "pool": "mean"}, {"pool": "mean"}, loss="softmax")
    tok = ByteTokenizer()
    opt = torch.optim.AdamW(m.param_groups(0.0), lr=1e-3)
    for step in range(150):
        idx = np.random.default_rng(step).choice(len(tr), 64, replace=False)
        loss = m.loss(tr.tensor_images(idx), tok.encode([tr.caption(int(i)) for i in idx], 24), step=step)
        loss.backward()
        opt.step()
        opt.zero_grad()
    cls = class_embeddings(m, va.class_names, va.prompt_templates)
    acc = zeroshot_accuracy(encode_images(m, va.tensor_images()), torch.as_tensor(va.labels), cls)
    assert acc["top1"] > 0.6, acc  # chance is 0.25
    res = evaluate_siglip(m, va, max_images=256, max_retrieval=64)
    assert set(res["zeroshot"]) == {"1,-", "2,-", "3,-"}


def _write_colour_squares(folder, size: int, n: int = 24) -> None:
    """A tiny captioned, labelled image set: red / green / blue squares with a captions.csv."""
    from PIL import Image

    rows = ["image,caption,label"]
    for i in range(n):
        k = i % 3
        Image.new("RGB", (size, size), ["red", "green", "blue"][k]).save(folder / f"{i}.png")
        rows.append(f"{i}.png,a {['red', 'green', 'blue'][k]} square,{k}")
    (folder / "captions.csv").write_text("\n".join(rows) + "\n")


def test_tasks_interface(tmp_path):
    """Both tasks on a tiny local CSV corpus: deterministic batches, loss, FLOPs, evaluation keys."""

    from rins.tasks.vision import SigLIPTask, ViTClassifierTask

    _write_colour_squares(tmp_path, 10)
    model = {"embed_dim": 16, "image": {"n_layers": 2, "d_model": 16, "n_heads": 2, "image_size": 8,
                                        "signature": "A^2B", "p_skip": 0.5},
             "text": {"n_layers": 2, "d_model": 16, "n_heads": 2, "max_len": 16},
             "data_options": {"eval_images": 16, "eval_retrieval": 8}}
    cfg = SimpleNamespace(model=model, data=SimpleNamespace(corpus=str(tmp_path), cache_dir=str(tmp_path / "c"),
                                                           val_fraction=0.25), seed=3, batch_size=4, eval_batches=2)
    task = SigLIPTask(cfg, None)
    task.prepare()
    m = task.build_model()
    b1, b2 = task.train_batch(5, 4), task.train_batch(5, 4)
    assert torch.equal(b1["images"], b2["images"]) and torch.equal(b1["texts"], b2["texts"])
    halves = [task.train_batch(5, 4, rank=k, world_size=2) for k in (0, 1)]  # ranks share the global batch
    assert torch.equal(torch.cat([h["texts"] for h in halves]), b1["texts"])
    loss = task.loss(m, b1, 5)
    loss.backward()
    assert torch.isfinite(loss) and task.units_per_step(4) == 4
    fps = task.flops_per_step(m, 4)
    assert fps == pytest.approx(4 * m.flops_per_example(training=True, expected=True, batch_size=4))
    assert task.realised_flops(m, 5, 4) > 0
    assert task.eval_depths(m) == [1, 2, 3]
    ev = task.evaluate(m, task.eval_depths(m))
    assert set(ev["val_loss_r"]) == {"1", "2", "3"} and "zeroshot_top1_r" in ev and "retrieval_r" in ev
    assert math.isfinite(ev["val_loss"])

    cfg.model = {"n_layers": 2, "d_model": 16, "n_heads": 2, "image_size": 8, "signature": "A^2B",
                 "data_options": {"eval_images": 16}}
    vt = ViTClassifierTask(cfg, None)
    vt.prepare()
    c = vt.build_model()
    assert c.n_classes == 3
    b = vt.train_batch(0, 4)
    assert b["labels"].shape == (4,)
    vt.loss(c, b, 0).backward()
    ev = vt.evaluate(c, vt.eval_depths(c))
    assert set(ev["val_acc_r"]) == {"1", "2", "3"} and 0.0 <= ev["val_acc"] <= 1.0


def test_tasks_registered():
    from rins.tasks import TASKS, get_task

    cfg = SimpleNamespace(task="siglip", model={}, data=SimpleNamespace(corpus="fashion-mnist"), seed=0)
    assert type(get_task(cfg, None)).__name__ == "SigLIPTask"
    assert "vit" in TASKS


def test_presets_and_cli_train_eval_on_local_images(tmp_path, capsys):
    """`rins train --preset siglip-cpu / vit-cpu` then `rins eval` on a tiny local caption CSV."""
    import json

    from rins.cli import main as cli
    from rins.config import load_config
    from rins.tasks import get_task

    for preset in ("siglip-cpu", "vit-cpu", "siglip-b16"):
        with torch.device("meta"):
            get_task(load_config(preset), None).build_model()  # the preset's model config is valid
    _write_colour_squares(tmp_path, 8)
    common = ["--set", f'data.corpus="{tmp_path}"', "--set", f'data.cache_dir="{tmp_path}/c"', "--out-dir",
              str(tmp_path / "runs"), "--set", "budget.steps=2", "--set", "batch_size=4", "--set", "progress=false"]
    assert cli(["train", "--preset", "siglip-cpu", "--name", "sig", *common, "--set", "model.image.patch_size=8",
                "--set", "model.image.signature=A^2B"]) == 0
    assert cli(["train", "--preset", "vit-cpu", "--name", "vit", *common, "--set", "model.patch_size=8"]) == 0
    capsys.readouterr()
    assert cli(["eval", str(tmp_path / "runs" / "sig"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)["results"][0]
    assert set(res["zeroshot_top1_r"]) >= {"1", "2", "3"}
    assert cli(["eval", str(tmp_path / "runs" / "vit"), "--json"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["results"][0]["val_acc"] <= 1.0


@pytest.mark.parametrize("stack", [
    {"signature": "A^2B"},
    {"signature": "A^3B", "kv_share": True, "adapters": "round"},
    {"signature": "AB^2C", "n_layers": 6, "adapters": "depth", "adapter_rank": 4, "p_skip": 0.5},
])
def test_lm_and_text_tower_share_the_stack_flops(stack):
    """One FLOP count for a stack shape: the LM (minus its head) and a text tower over as many tokens agree."""
    from rins.model import LMConfig, RecursiveLM

    shape = dict(n_layers=4, d_model=32, n_heads=4, mlp="gelu", norm="layernorm") | stack
    T, V = 16, 61
    lm = RecursiveLM(LMConfig(vocab_size=V, max_seq_len=T, **shape))
    tower = SigLIP(SigLIPConfig(image=ViTConfig(n_layers=2, d_model=32, n_heads=2, image_size=8, channels=3),
                                text=TextTowerConfig(max_len=T, **shape), embed_dim=16)).text
    for r in (None, 1, 3):
        lm_stack = lm.flops_per_token(T, r=r) - 2 * 32 * V
        assert lm_stack == lm.stack.flops_per_token(T, r) == tower.stack.flops_per_token(T, r)
        assert tower.flops_per_example(r, seq_len=T) - 2 * 32 * 16 == T * lm_stack  # minus the tower's projection head
    exp = lm.flops_per_token(T, expected=True) - 2 * 32 * V
    assert tower.flops_per_example(expected=True, seq_len=T) - 2 * 32 * 16 == pytest.approx(T * exp)
