"""config.yaml and the presets: valid against the schema, and merged as intended."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate
from wfutil import REPO

from carvana import workflow as wf

SCHEMA = str(REPO / "schemas" / "config.schema.yaml")


def merged(preset: str | None) -> dict:
    """A preset as the Snakefile reads it: config.yaml without --configfile, else the preset
    file alone (no merge over config.yaml), validated."""
    path = REPO / "configs" / preset if preset else REPO / "config.yaml"
    config = yaml.safe_load(path.read_text())
    validate(config, SCHEMA)
    return config


@pytest.mark.parametrize("preset", [None, "tiny.yaml", "carvana-full.yaml", "carvana-cpu.yaml"])
def test_presets_validate_and_hold_together(preset: str | None) -> None:
    config = merged(preset)
    wf.check_config(config)
    for name in config["ladder"] + wf.tile_models(config):
        spec = wf.model_spec(config, name)
        assert spec["train"]["epochs"] >= 1


def test_presets_inherit_nothing() -> None:
    """The two bugs of the key-by-key merge cannot come back: tiny's depth model does not start
    from config.yaml's unet128, carvana-full's tile models keep their own learning rates."""
    tiny = merged("tiny.yaml")
    assert wf.model_spec(tiny, "depth").get("init_from") is None
    assert wf.model_spec(tiny, "depth")["train"]["steps"] == 60
    assert "unet128" not in tiny["models"]
    full = merged("carvana-full.yaml")
    for name in ("fullres", "depth"):
        assert wf.model_spec(full, name)["train"]["lr"] == 0.0001
    assert wf.model_spec(full, "depth")["init_from"] is None
    assert wf.ensemble_members(full) == {"effl2_tiles": 0.5, "effl2_depth": 0.5}
    assert "unet32" not in full["models"]


def test_a_ladder_model_starts_only_from_an_earlier_rung() -> None:
    """`init_from` on a ladder model names a model listed before it in the ladder (a size ladder
    warm-started rung by rung): itself, a later rung or a full-resolution model is an error, and
    so are out-of-fold copies of a model whose starting weights saw every car."""
    config = merged("tiny.yaml")  # ladder: unet32, unet64
    warm = wf.deep_merge(config, {"models": {"unet64": {"init_from": "unet32"}}})
    wf.check_config(warm)
    assert wf.init_weights(warm, "unet64") == {"init": "results/models/unet32/weights.pt"}
    assert wf.init_weights(warm, "unet32") == {}
    for name, start in (("unet64", "unet64"), ("unet64", "tiles"), ("unet32", "unet64")):
        bad = wf.deep_merge(config, {"models": {name: {"init_from": start}}})
        with pytest.raises(ValueError, match=f"models.{name}.init_from: '{start}' is not a "
                                             "ladder model listed before it"):
            wf.check_config(bad)
    folds = wf.deep_merge(warm, {"models": {"depth": {"depth_from": "unet64", "depth_folds": 2}}})
    with pytest.raises(ValueError, match="models.depth.depth_folds: 'unet64' starts from another "
                                         "model's weights"):
        wf.check_config(folds)


def test_cross_field_errors() -> None:
    config = merged(None)
    bad = wf.deep_merge(config, {"bbox": {"model": "nope"}})
    with pytest.raises(ValueError, match="bbox.model"):
        wf.check_config(bad)
    bad = wf.deep_merge(config, {"ensemble": {"members": ["fullres"], "weights": [1, 2]}})
    with pytest.raises(ValueError, match="1 members but 2 weights"):
        wf.check_config(bad)
    bad = wf.deep_merge(config, {"submission": {"source": "unet999"}})
    with pytest.raises(ValueError, match="submission.source"):
        wf.check_config(bad)
    bad = wf.deep_merge(config, {"models": {"fullres": {"depth_folds": 2}}})
    with pytest.raises(ValueError, match="models.fullres.depth_folds: out-of-fold maps need "
                                         "depth_from"):
        wf.check_config(bad)
    wf.check_config(wf.deep_merge(config, {"models": {"depth": {"depth_folds": 2}}}))
    one = wf.deep_merge(config, {"models": {"depth": {"depth_folds": 1}}})
    with pytest.raises(Exception, match="depth_folds"):
        validate(one, SCHEMA)
    refit = wf.deep_merge(config, {"training": {"train_on_val": True}})
    wf.check_config(refit)  # fixed weights and threshold: a refit is allowed
    bad = wf.deep_merge(refit, {"submission": {"threshold": "best"}})
    with pytest.raises(ValueError, match="submission.threshold: best would choose on validation "
                                         "cars that unet32, .* trained on"):
        wf.check_config(bad)
    bad = wf.deep_merge(refit, {"ensemble": {"weights": "validation"}})
    with pytest.raises(ValueError, match="ensemble.weights: validation would choose"):
        wf.check_config(bad)


def test_schema_rejects_unknown_keys(tmp_path: Path) -> None:
    config = merged(None)
    config["trainign"] = {}
    with pytest.raises(Exception, match="trainign"):
        validate(config, SCHEMA)


def test_a_models_own_seed_overrides_the_top_level_one() -> None:
    config = merged(None)
    name = next(iter(config["models"]))
    assert wf.model_seed(config, name) == config["seed"]
    config["models"][name]["seed"] = 5
    validate(config, SCHEMA)
    assert wf.model_seed(config, name) == 5
    config["models"][name]["seed"] = -1
    with pytest.raises(Exception, match="-1"):
        validate(config, SCHEMA)
    config["models"][name]["seed"] = "5"
    with pytest.raises(Exception, match="'5'"):
        validate(config, SCHEMA)


BAD_NAME = "../../../tmp/x"


@pytest.mark.parametrize("where", ["models", "ladder", "fullres", "ensemble", "bbox", "source",
                                   "init_from", "depth_from", "worst_models"])
def test_schema_rejects_path_like_model_names(where: str) -> None:
    config = merged(None)
    if where == "models":
        config["models"][BAD_NAME] = config["models"]["unet32"]
    elif where in ("ladder", "fullres"):
        config[where] = [*config[where], BAD_NAME]
    elif where == "ensemble":
        config["ensemble"] = {"members": ["fullres", BAD_NAME], "weights": [0.5, 0.5]}
    elif where == "bbox":
        config["bbox"]["model"] = BAD_NAME
    elif where == "source":
        config["submission"]["source"] = BAD_NAME
    elif where == "worst_models":
        config["analysis"] = {"worst_models": [BAD_NAME]}
    else:
        config["models"]["depth"][where] = BAD_NAME
    with pytest.raises(Exception, match="does not match|is not valid under any") as err:
        validate(config, SCHEMA)
    assert BAD_NAME in str(err.value)


@pytest.mark.parametrize("name", ["unet\n", "-unet", "_x", "a b", "a/b", "", "a.b"])
def test_schema_model_name_pattern(name: str) -> None:
    config = merged(None)
    config["models"][name] = config["models"]["unet32"]
    with pytest.raises(Exception, match="Failed validating"):
        validate(config, SCHEMA)
    config = merged(None)
    config["models"]["Unet_2-b"] = config["models"]["unet32"]
    validate(config, SCHEMA)


def test_test_shard_size_auto_by_default(tmp_path: Path) -> None:
    config = merged(None)
    assert config["test_shard_size"] == "auto"
    del config["test_shard_size"]
    validate(config, SCHEMA)
    assert config["test_shard_size"] == "auto"  # the schema's default
    assert [len(v) for v in wf.test_shards(config).values()] == [32, 32, 32]  # 96 synthetic ids
    assert merged("carvana-full.yaml")["test_shard_size"] == "auto"
    tiny = merged("tiny.yaml")
    assert [len(v) for v in wf.test_shards(tiny).values()] == [6, 6, 4]  # an explicit number wins
    ids = [f"{car:012x}_{angle:02d}" for car in range(6254) for angle in range(1, 17)]
    (tmp_path / "sample_submission.csv").write_text(
        "img,rle_mask\n" + "".join(f"{i}.jpg,1 1\n" for i in ids))
    parts = wf.test_shards({**config, "data_dir": str(tmp_path)})
    assert len(ids) == 100_064 and len(parts) == 200
    assert {len(v) for v in list(parts.values())[:-1]} == {501}
    for bad in (0, "big", 2.5):
        with pytest.raises(Exception, match="test_shard_size"):
            validate({**config, "test_shard_size": bad}, SCHEMA)


@pytest.mark.parametrize(("source", "encode_group"), [
    ("ensemble", "shard_tail"), ("unet128", "shard_head"), ("fullres", "shard_tiles")])
def test_shard_groups_follow_the_submission_source(source: str, encode_group: str) -> None:
    """The encoding joins the group of the job that makes its input; tile predictions form a
    group only when a tile model is the source (else they would group with nothing)."""
    config = merged(None)
    config["submission"]["source"] = source
    assert wf.shard_group(config, "encode_shard") == encode_group
    assert wf.shard_group(config, "predict_lowres_test") == "shard_head"
    assert wf.shard_group(config, "boxes_test") == "shard_head"
    assert wf.shard_group(config, "ensemble_test") == "shard_tail"
    tiles = wf.shard_group(config, "predict_tiles_test")
    assert tiles == ("shard_tiles" if source == "fullres" else None)


def test_first_try_note_only_for_the_demo_config_on_real_photos(tmp_path: Path) -> None:
    demo = str(REPO / "config.yaml")
    real = {"data_dir": "/data/real"}
    note = wf.first_try_note(real, [], demo)
    assert note and "synthetic demo" in note and "configs/carvana-cpu.yaml" in note
    assert "data_dir=/data/real" in note and wf.DEMO_ON_REAL in note and wf.CPU_PRESET_ON_REAL in note
    assert wf.first_try_note(real, [demo, str(tmp_path / "extra.yaml")], demo) is not None
    assert wf.first_try_note(real, [str(REPO / "configs/carvana-cpu.yaml")], demo) is None
    assert wf.first_try_note({"data_dir": None}, [], demo) is None  # the synthetic demo itself
