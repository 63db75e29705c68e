"""Config helpers the Snakefile calls at DAG-build time (kept here so they are unit-tested)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from carvana.chain import Chain, ChainModel, lowres_hw
from carvana.ingest import read_submission_ids, shards

SYNTHETIC_DIR = "results/data/synthetic/kaggle"
SYNTHETIC_TRUTH = "results/data/synthetic/truth/test_masks.csv"
#: With kept test truth: the test photos' Dice per photo and per car, the worst test photos.
TEST_PER_IMAGE = "results/metrics/test_per_image.csv"
TEST_PER_CAR = "results/metrics/test_per_car.csv"
WORST_TEST = "results/analysis/worst/test"
#: Names a model cannot have: the ensemble's, and the worst test photos' figure's.
RESERVED = ("ensemble", "test")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``override`` merged in, recursively for nested mappings."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def is_synthetic(config: dict[str, Any]) -> bool:
    """True when the workflow generates its own data."""
    return not config.get("data_dir")


def data_dir(config: dict[str, Any]) -> str:
    """The Kaggle-layout folder the workflow reads."""
    return SYNTHETIC_DIR if is_synthetic(config) else str(config["data_dir"])


def truth_csv(config: dict[str, Any]) -> str | None:
    """The kept test masks to score the submission against: the synthetic set's, config
    `truth` for real data, or None."""
    if is_synthetic(config):
        return SYNTHETIC_TRUTH
    return str(config["truth"]) if config.get("truth") else None


def model_spec(config: dict[str, Any], name: str) -> dict[str, Any]:
    """A model's definition with its training settings merged over the defaults."""
    models = config.get("models", {})
    if name not in models:
        raise ValueError(f"model {name!r} is not defined under `models:` (defined: {sorted(models)})")
    spec = copy.deepcopy(models[name])
    spec["train"] = deep_merge(config["training"], spec.get("train", {}))
    spec.setdefault("params", {})
    return spec


def model_seed(config: dict[str, Any], name: str) -> int:
    """A model's training seed (its initial weights, crops and augmentations): its own
    ``seed``, else the top-level one; two models that differ only in it are a seed ensemble."""
    return int(model_spec(config, name).get("seed", config["seed"]))


def init_weights(config: dict[str, Any], name: str) -> dict[str, str]:
    """``{"init": weights}`` of the model ``name`` starts from (``init_from``), or ``{}``."""
    start = model_spec(config, name).get("init_from")
    return {"init": f"results/models/{start}/weights.pt"} if start else {}


def depth_train_maps(config: dict[str, Any], name: str) -> str:
    """The folder of low-res maps a depth model trains on: its source's maps of the train
    photos, or with ``depth_folds: k`` their out-of-fold maps (carvana.oof)."""
    spec = model_spec(config, name)
    k = int(spec.get("depth_folds") or 0)
    suffix = f"train_oof_k{k}" if k else "train_all"
    return f"results/predict/{spec['depth_from']}/{suffix}"


def fold_spec(config: dict[str, Any], name: str) -> dict[str, Any]:
    """A low-res model's spec for its fold copies: the same, except that its validation
    (held-out) cars never train."""
    spec = model_spec(config, name)
    spec["train"]["train_on_val"] = False
    return spec


def test_ids(config: dict[str, Any]) -> list[str]:
    """Test image ids in submission order: from the synthetic seed, or the sample submission."""
    if is_synthetic(config):
        from carvana.synthetic import SyntheticConfig, synthetic_ids

        return synthetic_ids(SyntheticConfig(**config["synthetic"]))[1]
    return read_submission_ids(Path(config["data_dir"]) / "sample_submission.csv")


def test_shards(config: dict[str, Any]) -> dict[str, list[str]]:
    """Shard name -> test ids, ``test_shard_size`` each: an integer, or ``auto`` (the default),
    which bounds the shards per model at 200 of at least 32 images (``ingest.auto_shard_size``)."""
    size = config.get("test_shard_size", "auto")
    return shards(test_ids(config), size if size == "auto" else int(size))


def tile_models(config: dict[str, Any]) -> list[str]:
    """Names of the models trained on full-resolution tiles."""
    return list(config.get("fullres", []))


def shard_group(config: dict[str, Any], rule: str) -> str | None:
    """Rule ``rule``'s cluster group (Snakemake ``group:``; local runs ignore groups): on SLURM
    the short per-shard jobs run in one cluster job with the job that makes their input.
    ``shard_head``: a ladder model's prediction of a shard and the boxes from it;
    ``shard_tail``: a shard's ensemble; the encoding joins its source's group (a tile model's:
    ``shard_tiles``). Boxes and the ensemble cannot share a group: the tile predictions lie
    between them, and a group must not reach itself through an outside job. None: alone."""
    source = config["submission"]["source"]
    if rule == "encode_shard":
        rule = ("ensemble_test" if source == "ensemble" else
                "predict_lowres_test" if source in config["ladder"] else "predict_tiles_test")
    groups = {"predict_lowres_test": "shard_head", "boxes_test": "shard_head",
              "ensemble_test": "shard_tail",
              "predict_tiles_test": "shard_tiles" if source in tile_models(config) else None}
    return groups[rule]


#: ``ensemble: weights:`` that asks for weights chosen on the validation images.
CHOSEN = "validation"
ENSEMBLE_WEIGHTS = "results/metrics/ensemble_weights.json"


def ensemble_members(config: dict[str, Any]) -> dict[str, float | None]:
    """Model name -> weight of the ensemble (empty when there is none); every weight is None
    when the weights are chosen on validation (``weights: validation``)."""
    ens = config.get("ensemble", {})
    members, weights = list(ens.get("members", [])), ens.get("weights", [])
    if len(set(members)) != len(members):
        raise ValueError(f"ensemble: a member is listed twice in {members}")
    if weights == CHOSEN:
        return dict.fromkeys(members)
    if len(members) != len(weights):
        raise ValueError(f"ensemble: {len(members)} members but {len(weights)} weights")
    return dict(zip(members, weights, strict=True))


def weights_chosen(config: dict[str, Any]) -> bool:
    """True when the ensemble's weights are chosen on validation (``ENSEMBLE_WEIGHTS``)."""
    return bool(ensemble_members(config)) and (config.get("ensemble") or {}).get(
        "weights") == CHOSEN


def pseudo_name(base: str, round_: int) -> str:
    """The name of ``base`` fine-tuned in pseudo-label round ``round_`` (0: ``base`` itself)."""
    return base if round_ == 0 else f"{base}_pl{round_}"


def with_pseudo_rounds(config: dict[str, Any]) -> dict[str, Any]:
    """The config with its pseudo-label rounds as models: ``pseudo_labels: models`` (ladder or
    fullres) fine-tuned in round r as ``<model>_pl<r>`` (from round r-1's weights, on train
    plus the test photos labelled by round r-1's ensemble, with ``train`` and then its own
    ``train_by_model`` entry over its training settings); a round's depth model reads the same
    round's copy of its map when that map is listed too. The ensemble and the source use the
    last round's."""
    pl = config.get("pseudo_labels") or {}
    rounds = int(pl.get("rounds", 0))
    if rounds == 0:
        return config
    out = copy.deepcopy(config)
    if not ensemble_members(config):
        raise ValueError("pseudo_labels: rounds > 0 needs an ensemble to label the test photos")
    bases, ladder = list(pl.get("models", [])), list(config["ladder"])
    for base in bases:
        if base not in ladder + tile_models(config):
            raise ValueError(f"pseudo_labels.models: {base!r} is not a ladder or fullres model")
    for base in pl.get("train_by_model") or {}:
        if base not in bases:
            raise ValueError(f"pseudo_labels.train_by_model: {base!r} is not in "
                             f"pseudo_labels.models {bases}")
    for base in bases:
        for r in range(1, rounds + 1):
            name = pseudo_name(base, r)
            if name in config.get("models", {}):
                raise ValueError(f"models.{name}: the name is taken by pseudo-label round {r}")
            out["models"][name] = _pseudo_spec(config, base, r)
            key = "ladder" if base in ladder else "fullres"
            out[key] = [*out[key], name]
    last = {b: pseudo_name(b, rounds) for b in bases}
    out["ensemble"]["members"] = [last.get(m, m) for m in config["ensemble"]["members"]]
    source = config["submission"]["source"]
    out["submission"] = {**config["submission"], "source": last.get(source, source)}
    return out


def _pseudo_spec(config: dict[str, Any], base: str, round_: int) -> dict[str, Any]:
    """Model ``base``'s spec in pseudo-label round ``round_``: from the round before's
    weights, with the round's training settings and, for a depth model whose map is
    fine-tuned in the same rounds, that round's map."""
    pl = config["pseudo_labels"]
    spec = copy.deepcopy(config["models"][base])
    train = deep_merge(spec.get("train", {}), pl.get("train", {}))
    train = deep_merge(train, (pl.get("train_by_model") or {}).get(base, {}))
    share = pl.get("max_share")
    spec.update(init_from=pseudo_name(base, round_ - 1), train=train,
                pseudo={"round": round_, "base": base,
                        **({"max_share": share} if share is not None else {})})
    if spec.get("depth_from") in pl.get("models", []):
        spec["depth_from"] = pseudo_name(spec["depth_from"], round_)
    return spec


def pseudo_sources(config: dict[str, Any], round_: int) -> dict[str, float | None]:
    """The models whose test average labels round ``round_`` (the ensemble of round
    ``round_ - 1``) and their weights: None when chosen on validation, as the final ones."""
    pl = config["pseudo_labels"]
    base_of = {pseudo_name(b, int(pl["rounds"])): b for b in pl.get("models", [])}
    return {(pseudo_name(base_of[m], round_ - 1) if m in base_of else m): w
            for m, w in ensemble_members(config).items()}


def scored_models(config: dict[str, Any]) -> list[str]:
    """Every model with validation metrics: the ladder, the tile models, the ensemble."""
    return [*config["ladder"], *tile_models(config),
            *(["ensemble"] if ensemble_members(config) else [])]


def shard_pred(source: str, shard: str) -> str:
    """Where a model's (or the ensemble's) test probabilities of a shard are."""
    return f"results/predict/{source}/test/{shard}"


def scored_test_sources(config: dict[str, Any]) -> list[str]:
    """What the test photos are scored for against kept truth: every ensemble member, the
    ensemble, and the submission's source (all have test predictions)."""
    members = list(ensemble_members(config))
    sources = [*members, *(["ensemble"] if members else [])]
    source = config["submission"]["source"]
    return sources if source in sources else [*sources, source]


def score_test_input(config: dict[str, Any], shards: list[str]) -> dict[str, Any]:
    """The score_test rule's inputs: the kept truth and every source's shard folders, source
    by source; an error when there is no truth to score against."""
    truth = truth_csv(config)
    if not truth:
        raise ValueError("scoring the test photos needs their true masks: set `truth:` "
                         "(carvana-subset writes truth/test_masks.csv)")
    return {"truth": truth,
            "preds": [shard_pred(s, shard) for s in scored_test_sources(config) for shard in shards]}


def truth_outputs(config: dict[str, Any], kind: str) -> list[str]:
    """What kept test truth adds (none without it): ``scores``, the per-photo and per-car Dice
    tables; ``analysis``, the figure and table of the worst test photos."""
    if not truth_csv(config):
        return []
    return {"scores": [TEST_PER_IMAGE, TEST_PER_CAR],
            "analysis": [f"{WORST_TEST}.png", f"{WORST_TEST}.csv"]}[kind]


def check_config(config: dict[str, Any]) -> None:
    """Cross-field checks the JSON schema cannot express; each error names the key."""
    ladder, tiles = list(config["ladder"]), tile_models(config)
    for name in ladder:
        spec = model_spec(config, name)
        if "size" not in spec or spec.get("input", "lowres") != "lowres":
            raise ValueError(f"ladder model {name!r} needs a `size` and input: lowres")
        start = spec.get("init_from")
        if start and start not in ladder[:ladder.index(name)]:
            raise ValueError(f"models.{name}.init_from: {start!r} is not a ladder model listed "
                             f"before it (ladder: {ladder})")
    for name in tiles:
        spec = model_spec(config, name)
        if spec.get("input") != "tiles":
            raise ValueError(f"fullres model {name!r} needs input: tiles")
        if spec.get("depth_from") and spec["depth_from"] not in ladder:
            raise ValueError(f"models.{name}.depth_from: {spec['depth_from']!r} is not in the "
                             "ladder")
        if spec.get("depth_folds") and not spec.get("depth_from"):
            raise ValueError(f"models.{name}.depth_folds: out-of-fold maps need depth_from")
        if spec.get("depth_folds") and model_spec(config, spec["depth_from"]).get("init_from"):
            raise ValueError(f"models.{name}.depth_folds: {spec['depth_from']!r} starts from "
                             "another model's weights (init_from), which saw every car; its "
                             "out-of-fold copies cannot")
        if spec.get("init_from") and spec["init_from"] not in ladder + tiles:
            raise ValueError(f"models.{name}.init_from: {spec['init_from']!r} is not a ladder "
                             "or fullres model")
        if config.get("bbox", {}).get("model") not in ladder:
            raise ValueError(f"bbox.model must name a ladder model (one of {ladder})")
    for name in RESERVED:
        if name in ladder + tiles:
            raise ValueError(f"{name!r} is a reserved name (the ensemble, the worst test "
                             "photos); rename that model")
    for member in ensemble_members(config):
        if member not in ladder + tiles:
            raise ValueError(f"ensemble member {member!r} is not a ladder or fullres model")
    source = config["submission"]["source"]
    if source not in scored_models(config):
        raise ValueError(f"submission.source {source!r} is not one of {scored_models(config)}")
    _check_refit(config, ladder + tiles)


def _check_refit(config: dict[str, Any], models: list[str]) -> None:
    """Nothing is chosen on validation cars that a model trained on (``train_on_val``)."""
    refit = [m for m in models if model_spec(config, m)["train"].get("train_on_val")]
    chosen = [key for key, on in (("ensemble.weights: validation", weights_chosen(config)),
                                  ("submission.threshold: best",
                                   config["submission"]["threshold"] == "best")) if on]
    if refit and chosen:
        raise ValueError(f"{' and '.join(chosen)} would choose on validation cars that "
                         f"{', '.join(refit)} trained on (train_on_val): fix the weights and "
                         "the threshold, or refit only once they are chosen")


CHAIN_KEYS = ("input", "size", "depth_from")


def chain_settings(config: dict[str, Any], source: str, threshold: float | str) -> dict[str, Any]:
    """Exactly the config keys the prediction chain depends on (the ``chain`` rule's params, so
    a changed training setting does not rewrite the chain): models' inputs, sizes and depth
    sources, boxes, flips and backend, the ensemble, the source and its threshold setting."""
    models = config.get("models", {})
    return {
        "ladder": list(config["ladder"]), "fullres": tile_models(config),
        "models": {n: {k: models[n][k] for k in CHAIN_KEYS if k in models[n]}
                   for n in [*config["ladder"], *tile_models(config)]},
        "bbox": {k: v for k, v in (config.get("bbox") or {}).items()
                 if k in ("model", "threshold", "margin")},
        "predict": {k: v for k, v in (config.get("predict") or {}).items()
                    if k in ("tta_hflip", "backend", "precision")},
        "ensemble": config.get("ensemble") or {}, "source": source, "threshold": threshold,
    }


def chain_from_settings(settings: dict[str, Any], *, size: tuple[int, int], tile: int | None,
                        thresholds: dict[str, float],
                        weights: dict[str, float] | None = None) -> Chain:
    """The prediction chain of ``chain_settings``: every ladder and tile model (weights under
    ``models/<name>/weights.pt``), the ensemble, boxes and flips. ``size`` is the data geometry
    (width, height), ``tile`` the tile side (None without tile models), ``thresholds`` each
    source's threshold (the settings' source must be among them), ``weights`` the ensemble's
    (when chosen on validation; else the settings')."""
    chain_models: dict[str, ChainModel] = {}
    for name, spec in settings["models"].items():
        lowres = spec.get("input", "lowres") == "lowres"
        chain_models[name] = ChainModel(
            name=name, input="lowres" if lowres else "tiles",
            in_channels=4 if spec.get("depth_from") else 3,
            weights=f"models/{name}/weights.pt",
            size=lowres_hw(spec["size"]) if lowres else None,
            tile=None if lowres else tile, depth_from=spec.get("depth_from"))
    source, predict = settings["source"], settings["predict"]
    return Chain(
        source=source, size=size, models=chain_models, threshold=float(thresholds[source]),
        thresholds={k: float(v) for k, v in thresholds.items() if k != source},
        tta_hflip=bool(predict.get("tta_hflip", False)),
        tile=tile if settings["fullres"] else None,
        members=weights or ensemble_members(settings), bbox=dict(settings["bbox"]),
        backend=str(predict.get("backend", "torch")),
        precision=str(predict.get("precision", "fp32")))


#: What config.yaml was measured to do on real photos (issue 18: 4 train cars, 6 unseen cars),
#: and the real-photo preset on the shared sample (docs/real-photos.md).
DEMO_ON_REAL = "0.948 mean Dice (4 train cars, 6 unseen cars; about 15 min on 2 cores)"
CPU_PRESET_ON_REAL = ("0.9928 on unseen cars over 3 splits; 45 min for 96 test photos on 2 "
                      "cores of an AMD EPYC")


def first_try_note(config: dict[str, Any], configfiles: list[str], demo_config: str) -> str | None:
    """The note for a user who runs the synthetic demo's config (``demo_config``: no
    ``--configfile``, or that file among them) on real photos (``data_dir`` set); else None."""
    demo = Path(demo_config).resolve()
    uses_demo = not configfiles or any(Path(f).resolve() == demo for f in configfiles)
    if not uses_demo or is_synthetic(config):
        return None
    return (f"note: {Path(demo_config).name} is the synthetic demo's config. On real photos it "
            f"was measured at {DEMO_ON_REAL}. For real photos use the real-photo preset "
            f"(measured: {CPU_PRESET_ON_REAL}):\n"
            "  snakemake --cores all submission --configfile configs/carvana-cpu.yaml "
            f"--config data_dir={config['data_dir']}")
