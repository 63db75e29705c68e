"""Import layers (issue 10.3): every import in src/carvana goes downward, the light modules
load neither torch nor matplotlib, and each script calls exactly one stage module."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "carvana"
STAGE_MODULES = ("carvana.stages", "carvana.model_stages", "carvana.figure_stages")

#: The package's layers, bottom first. A module may import only from layers below its own
#: (never from its own layer or above). Subpackages (models, synthetic, analysis) count as one
#: module each; imports inside a subpackage are not checked here. "carvana" is the package root.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    # no carvana imports at all: ids, formats and checks on plain numbers and strings, the CPU
    ("base", frozenset({"carvana", "ids", "metrics", "rle", "gates", "split", "snake",
                        "model_size", "host"})),
    # reading and writing files (images, masks, probabilities, tables, JSON)
    ("io", frozenset({"io"})),
    # descriptions built on io: a person's photos, the prediction chain as data
    ("descriptions", frozenset({"photos", "chain"})),
    # one kind of thing each: light (tiles, the data folder, scores, figures' drawing) and
    # torch (device, tensors, checkpoints, schedules, architectures, datasets)
    ("parts", frozenset({
        "augment", "tiling", "ingest", "oof", "comparison", "ensemble", "evaluation", "synthetic", "subset",
        "plots", "device", "tensors", "checkpoint", "schedule", "models", "data", "bundle", "losses",
    })),
    # what combines parts: boxes, the submission, figures, job resources, training, and the
    # runtimes that run a model's forward passes (torch, ONNX Runtime, OpenVINO)
    ("domain", frozenset({"bbox", "submission", "analysis", "resources", "training",
                          "backends", "pseudo"})),
    # the submission checker, the config's file lists, prediction by a trained model (scoring:
    # test photos), and the plan's projected time (from the resource formula)
    ("use", frozenset({"validate", "scoring", "workflow", "predict", "projection"})),
    # one trained chain on any photo, and its export as a bundle (both load models to predict)
    ("chain", frozenset({"segmenter", "export"})),
    # full-resolution tiles and the cut-outs rule (both predict)
    ("full resolution", frozenset({"fullres", "cutouts"})),
    # the only modules scripts/ call: light, torch and matplotlib stages
    ("stages", frozenset({"stages", "model_stages", "figure_stages"})),
    # what a person runs on a trained chain: the carvana-cutout command and the web server
    ("apps", frozenset({"cutout_cli", "serve"})),
)
LAYER_OF = {name: index for index, (_, names) in enumerate(LAYERS) for name in names}

#: Modules that must import neither torch nor matplotlib (the light rules' whole import chain).
LIGHT_MODULES = (
    "carvana.stages", "carvana.rle", "carvana.submission", "carvana.validate", "carvana.ingest",
    "carvana.scoring",
    "carvana.bbox", "carvana.workflow", "carvana.split", "carvana.tiling", "carvana.gates",
    "carvana.ensemble", "carvana.evaluation", "carvana.comparison", "carvana.ids", "carvana.io",
    "carvana.metrics", "carvana.snake", "carvana.synthetic", "carvana.subset",
    "carvana.resources", "carvana.chain", "carvana.photos", "carvana.bundle", "carvana.pseudo",
    "carvana.oof",
    "carvana.model_size", "carvana.host", "carvana.projection",
)
#: The light rules' scripts: they must call carvana.stages.
LIGHT_SCRIPTS = (
    "ingest", "split", "synthetic_data", "boxes", "bbox_cuts", "ensemble", "evaluate",
    "score_test",
    "thresholds", "encode_shard", "gather_submission", "check_submission", "summary",
    "ensemble_weights", "pseudo_labels",
)


def module_name(path: Path) -> str:
    """``src/carvana/a/b.py`` -> ``carvana.a.b``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    """Whether ``dotted`` (carvana.x.y) is a module or package in src/carvana."""
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(tree: ast.AST, module: str, *, is_package: bool) -> list[tuple[int, str]]:
    """Every carvana module ``tree`` imports, anywhere (function bodies and TYPE_CHECKING
    blocks too), as (line, dotted name); relative and ``from carvana import x`` resolved."""
    found: list[tuple[int, str]] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if is_module(sub) else base))
    return list(dict.fromkeys((line, name) for line, name in found
                              if name.split(".")[0] == "carvana"))


def layer_key(dotted: str) -> str:
    """The table's name of a module: ``carvana.models.unet`` -> ``models``."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "carvana"


def package_imports() -> list[tuple[str, int, str]]:
    """(importing module, line, imported module) for every carvana import in src/carvana."""
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, target in imported_modules(tree, name, is_package=path.name == "__init__.py"):
            edges.append((name, line, target))
    return edges


def test_resolver_sees_every_kind_of_import() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import numpy\n"
        "from carvana import workflow as wf\n"
        "from .base import SegmentationModel\n"
        "if TYPE_CHECKING:\n"
        "    from carvana.training import TrainConfig\n"
        "def f():\n"
        "    import carvana.io\n"
        "    from carvana.synthetic import SyntheticConfig\n"
    )
    found = imported_modules(ast.parse(source), "carvana.models.unet", is_package=False)
    assert found == [(3, "carvana.workflow"), (4, "carvana.models.base"),
                     (6, "carvana.training"), (8, "carvana.io"), (9, "carvana.synthetic")]
    assert [layer_key(name) for _, name in found] == [
        "workflow", "models", "training", "io", "synthetic"]


def test_every_module_has_a_layer() -> None:
    present = {layer_key(module_name(path)) for path in PACKAGE.rglob("*.py")}
    unplaced = sorted(present - set(LAYER_OF))
    stale = sorted(set(LAYER_OF) - present)
    assert not unplaced, f"place these modules in LAYERS (tests/test_layers.py): {unplaced}"
    assert not stale, f"LAYERS names modules that no longer exist: {stale}"


def test_imports_go_downward() -> None:
    edges = package_imports()
    assert len(edges) > 50  # the scan sees the package's imports
    bad = []
    for source, line, target in edges:
        src_key, dst_key = layer_key(source), layer_key(target)
        if src_key == dst_key or src_key not in LAYER_OF or dst_key not in LAYER_OF:
            continue  # inside one subpackage; unplaced modules fail the test above
        if LAYER_OF[dst_key] >= LAYER_OF[src_key]:
            bad.append(f"{source} (line {line}) imports {target}: layer "
                       f"{LAYERS[LAYER_OF[dst_key]][0]!r} is not below "
                       f"{LAYERS[LAYER_OF[src_key]][0]!r}")
    assert not bad, "upward or sideways imports:\n" + "\n".join(bad)


def heavy_after_import(module: str) -> list[str]:
    """Which of torch, matplotlib a fresh interpreter holds after importing ``module``."""
    code = (f"import importlib, json, sys; importlib.import_module({module!r}); "
            "print(json.dumps([m for m in ('torch', 'matplotlib') if m in sys.modules]))")
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_light_module_loads_neither_torch_nor_matplotlib(module: str) -> None:
    assert heavy_after_import(module) == [], f"importing {module} loads them"


def test_figure_stages_load_no_torch() -> None:
    assert "torch" not in heavy_after_import("carvana.figure_stages")


def test_the_heavy_check_sees_torch() -> None:
    assert heavy_after_import("carvana.tensors") == ["torch"]


def script_imports(path: Path) -> set[str]:
    """The carvana modules a script imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return {name for _, name in imported_modules(tree, "scripts", is_package=False)}


def test_each_script_calls_exactly_one_stage_module() -> None:
    scripts = sorted((REPO / "scripts").glob("*.py"))
    assert len(scripts) >= len(LIGHT_SCRIPTS)
    bad = []
    for path in scripts:
        imported = script_imports(path)
        stages = sorted(imported & set(STAGE_MODULES))
        others = sorted(imported - set(STAGE_MODULES) - {"carvana.snake"})
        if len(stages) != 1 or others:
            bad.append(f"{path.name}: stage modules {stages}, other carvana imports {others}")
    assert not bad, "each script imports one stage module (and carvana.snake):\n" + "\n".join(bad)


@pytest.mark.parametrize("name", LIGHT_SCRIPTS)
def test_light_rule_scripts_call_the_light_stages(name: str) -> None:
    path = REPO / "scripts" / f"{name}.py"
    assert path.is_file(), f"{path} is gone: update LIGHT_SCRIPTS"
    assert script_imports(path) & set(STAGE_MODULES) == {"carvana.stages"}
