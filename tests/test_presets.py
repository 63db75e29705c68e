"""Every preset is a complete config: validated on its own, and its fully resolved form (every
model's spec with the training defaults merged in) is compared with a checked-in snapshot, so
that any inherited or changed value shows in review.

After an intended change: CARVANA_UPDATE_SNAPSHOTS=1 python -m pytest tests/test_presets.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate
from wfutil import REPO

from carvana import workflow as wf

PRESETS = {"config": REPO / "config.yaml",
           **{p.stem: p for p in sorted((REPO / "configs").glob("*.yaml"))}}
SNAPSHOTS = Path(__file__).parent / "snapshots"


def resolved(path: Path) -> dict:
    """The preset alone (as the Snakefile reads it), schema defaults filled, every model's spec
    resolved as the rules see it."""
    config = yaml.safe_load(path.read_text())
    validate(config, str(REPO / "schemas/config.schema.yaml"))
    wf.check_config(config)
    config["models"] = {name: wf.model_spec(config, name) for name in sorted(config["models"])}
    return config


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_matches_its_snapshot(name: str) -> None:
    text = yaml.safe_dump(resolved(PRESETS[name]), sort_keys=True, width=100)
    snapshot = SNAPSHOTS / f"{name}.yaml"
    if os.environ.get("CARVANA_UPDATE_SNAPSHOTS"):
        snapshot.write_text(text)
    assert snapshot.exists(), f"no snapshot {snapshot}: run with CARVANA_UPDATE_SNAPSHOTS=1"
    assert text == snapshot.read_text(), (
        f"{PRESETS[name].name} resolves differently from {snapshot}; if intended, update it "
        "with CARVANA_UPDATE_SNAPSHOTS=1 and review the diff")


def test_every_preset_trains_only_models_it_defines() -> None:
    """No preset relies on config.yaml: every model it names is defined in the preset itself."""
    for name, path in PRESETS.items():
        config = yaml.safe_load(path.read_text())
        named = set(config["ladder"]) | set(config.get("fullres", []))
        named |= set(config.get("ensemble", {}).get("members", []))
        assert named <= set(config["models"]), (name, named - set(config["models"]))


def test_snakefile_reads_config_yaml_only_without_a_preset() -> None:
    snakefile = (REPO / "Snakefile").read_text()
    assert "if not workflow.overwrite_configfiles:" in snakefile
