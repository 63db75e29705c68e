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
    """config.yaml with a preset merged over it, as `--configfile` does, then validated."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    if preset:
        config = wf.deep_merge(config, yaml.safe_load((REPO / "configs" / preset).read_text()))
    validate(config, SCHEMA)
    return config


@pytest.mark.parametrize("preset", [None, "tiny.yaml", "carvana-full.yaml"])
def test_presets_validate_and_hold_together(preset: str | None) -> None:
    config = merged(preset)
    wf.check_config(config)
    for name in config["ladder"] + wf.tile_models(config):
        spec = wf.model_spec(config, name)
        assert spec["train"]["epochs"] >= 1


def test_merge_gives_the_intended_models() -> None:
    tiny = merged("tiny.yaml")
    assert wf.model_spec(tiny, "depth")["init_from"] is None
    assert wf.model_spec(tiny, "depth")["train"]["epochs"] == 2
    full = merged("carvana-full.yaml")
    for name in ("fullres", "depth"):
        assert wf.model_spec(full, name)["train"]["lr"] == 0.0001
    assert wf.model_spec(full, "depth")["init_from"] is None
    assert wf.ensemble_members(full) == {"unet512": 0.5, "fullres": 0.5}


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


def test_schema_rejects_unknown_keys(tmp_path: Path) -> None:
    config = merged(None)
    config["trainign"] = {}
    with pytest.raises(Exception, match="trainign"):
        validate(config, SCHEMA)
