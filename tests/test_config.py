"""Typed model configs on load: the task's dataclass, clear errors for bad fields, old layouts migrated."""

import json
from dataclasses import replace

import pytest

from rins.config import TrainConfig, load_config
from rins.fields import ConfigError, given_fields
from rins.model import LMConfig
from rins.siglip import SigLIPConfig, ViTConfig


def test_each_task_loads_its_own_typed_model_config():
    lm = load_config("tiny", None, ["model.signature=A^2B", "model.tie_embeddings=no"])
    assert isinstance(lm.model, LMConfig) and lm.model.signature == "A^2B" and lm.model.tie_embeddings is False
    # fields the table leaves out take the trainer's defaults from the data and the seed
    assert (lm.model.vocab_size, lm.model.max_seq_len, lm.model.depth_seed) == (512, 32, 0)
    sig = load_config("siglip-cpu", None, ["model.image.signature=A^2B"])
    assert isinstance(sig.model, SigLIPConfig) and sig.model.image.signature == "A^2B"
    assert (sig.model.image.image_size, sig.model.text.max_len, sig.model.text.depth_seed) == (28, 48, 1)
    assert isinstance(load_config("vit-cpu").model, ViTConfig)


def test_config_json_records_the_named_fields_and_loads_back():
    c = load_config("tiny", None, ["model.p_skip=0.5", "model.signature=A^2B"])
    d = json.loads(json.dumps(c.to_dict()))  # what config.json holds: plain JSON
    assert d["model"] == {"n_layers": 4, "d_model": 32, "n_heads": 4, "max_seq_len": 32, "signature": "A^2B",
                          "p_skip": 0.5}
    assert TrainConfig.from_dict(d) == c and given_fields(c.model) == d["model"]
    assert replace(c, seed=3).to_dict()["model"] == d["model"]  # dataclasses.replace keeps the typed model
    built = TrainConfig(model=LMConfig(n_layers=2))  # a typed config built in code: every field is named
    assert given_fields(built.model)["n_layers"] == 2 and "vocab_size" in built.to_dict()["model"]


@pytest.mark.parametrize("preset, override, match", [
    ("tiny", "model.n_layer=3", r"unknown config keys \['model.n_layer'\]"),
    ("tiny", "model.tie_embeddings=maybe", r"config model.tie_embeddings='maybe' is invalid: must be a boolean"),
    ("tiny", "model.d_model=30", r"config \[model\] of task 'lm' is invalid: d_model=30 must be divisible"),
    ("siglip-cpu", "model.image.n_layer=3", r"unknown config keys \['model.image.n_layer'\]"),
    ("siglip-cpu", "model.text.max_len=x", r"config model.text.max_len='x' is invalid: must be an integer"),
    ("vit-cpu", "data.options.augmentt=true", r"unknown config keys \['data.options.augmentt'\]"),
    ("tiny", "data.options.augment=true", r"the lm task takes no data.options"),
])
def test_bad_model_fields_fail_at_load(preset, override, match):
    with pytest.raises(ValueError, match=match):
        load_config(preset, None, [override])


def test_unknown_task_fails_at_load():
    with pytest.raises(ConfigError, match=r"config task='nope' is invalid: must be one of lm, siglip, vit"):
        load_config("tiny", None, ["task=nope"])


def test_data_options_moved_from_the_model_section():
    """A config or run directory of the old layout (model.data_options, vit's model.n_classes) still loads, into
    data.options; the new layout is what config.json then records."""
    new = load_config("siglip-cpu")
    old = new.to_dict()
    old["model"]["data_options"] = old["data"].pop("options")
    migrated = TrainConfig.from_dict(old)
    assert migrated == new and migrated.data.options == {"augment": False, "eval_images": 1000, "eval_retrieval": 500}
    assert "data_options" not in migrated.to_dict()["model"]
    vit = load_config("vit-cpu").to_dict()
    vit["model"].update(data_options={"augment": True}, n_classes=7)
    del vit["data"]["options"]
    assert TrainConfig.from_dict(vit).data.options == {"augment": True, "n_classes": 7}
    assert load_config("vit-cpu", None, ["model.data_options.eval_images=10"]).data.options["eval_images"] == 10


def test_old_run_directory_config_resumes_with_the_same_fingerprint(tmp_path):
    """config.json of a vision run written before the move has the same resume fingerprint as today's config."""
    from rins.train import resume_fingerprint

    cfg = load_config("vit-cpu", None, [f'out_dir="{tmp_path}"'])
    old = cfg.to_dict()
    old["model"]["data_options"] = old["data"].pop("options")
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert resume_fingerprint(TrainConfig.from_dict(json.loads((tmp_path / "config.json").read_text()))) == \
        resume_fingerprint(cfg)


def test_typed_overrides_of_vision_towers():
    c = load_config("siglip-cpu", None, ["model.text.pool=last", "model.image.signature=A^2B", "model.image.p_skip=0.5",
                                         "name=123"])
    assert c.model.text.pool == "last" and c.model.image.p_skip == 0.5 and c.name == "123"


def test_preset_context_follows_the_data_length_unless_set():
    """A preset pins model.max_seq_len to its data.seq_len; changing seq_len moves it along (the help says it
    defaults to data.seq_len), setting it keeps it, and the preset alone records the same config as before."""
    assert load_config("tiny").to_dict()["model"] == {"n_layers": 4, "d_model": 32, "n_heads": 4, "max_seq_len": 32,
                                                      "signature": "AB"}
    assert load_config("tiny", overrides=["data.seq_len=128"]).to_dict()["model"]["max_seq_len"] == 128
    both = load_config("tiny", overrides=["data.seq_len=64", "model.max_seq_len=100"])
    assert both.to_dict()["model"]["max_seq_len"] == 100
    from rins.tasks.lm import LMTask

    longer = load_config("tiny", overrides=["data.seq_len=128"])
    assert LMTask.model_config_from(longer.to_dict()["model"], longer).max_seq_len == 128  # was refused (32 < 128)
    with pytest.raises(ValueError, match="max_seq_len=16 < data.seq_len=64"):  # set by hand: still checked
        load_config("tiny", overrides=["data.seq_len=64", "model.max_seq_len=16"])


def test_data_cache_is_per_user(tmp_path, monkeypatch):
    """The cache defaults to $RINS_CACHE, else $XDG_CACHE_HOME/rins, else ~/.cache/rins, wherever rins runs from;
    a .cache/rins in the current folder (the former default) is still found."""
    from rins.config import DataConfig

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RINS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert DataConfig().cache_dir == str(tmp_path / "xdg" / "rins")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert DataConfig().cache_dir == str(tmp_path / "home" / ".cache" / "rins")
    monkeypatch.setenv("RINS_CACHE", str(tmp_path / "mine"))
    assert load_config("tiny").data.cache_dir == str(tmp_path / "mine")
    monkeypatch.delenv("RINS_CACHE")
    (tmp_path / ".cache" / "rins").mkdir(parents=True)
    assert DataConfig().cache_dir == ".cache/rins"
    assert load_config("tiny", overrides=["data.cache_dir=/x"]).data.cache_dir == "/x"
