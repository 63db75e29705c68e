"""Job resource requests (issue 11.2): the formula of carvana.resources, its inputs, the
precedence of a preset's numbers, and what the rules declare in a dry run."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from PIL import Image
from snakemake.utils import validate
from wfutil import REPO, copy_workflow, snakemake

from carvana import model_size as ms
from carvana import resources as rs
from carvana import workflow as wf


def preset(name: str) -> dict:
    """A preset as the Snakefile sees it (schema defaults filled)."""
    config = yaml.safe_load((REPO / name).read_text())
    validate(config, str(REPO / "schemas/config.schema.yaml"))
    return config


TINY = preset("configs/tiny.yaml")
CPU = preset("configs/carvana-cpu.yaml")
REAL = rs.DataShape(1918, 1280, 80)  # the shared real sample's size, 5 train cars


def test_model_width_follows_the_parameters() -> None:
    assert rs.model_width("unet", {"initial_filters": 8, "up_convs": 2}) == 8
    assert rs.model_width("unet", {"initial_filters": 16, "up_convs": 2}) == 16
    assert rs.model_width("inception_unet", {"initial_filters": 8}) == 8
    assert rs.model_width("efficientnet_unet", {"encoder": "lite0"}) == 1
    assert rs.model_width("efficientnet_unet", {"encoder": "lite0",
                                                "decoder_channels": [64, 32, 32, 32, 32]}) == 2
    assert rs.model_width("efficientnet_unet", {"encoder": "lite2"}) > 1
    assert rs.model_width("tiramisu", {"first_filters": 16, "down_blocks": [3, 3],
                                       "growth_rate": 8}) == 5
    with pytest.raises(ValueError, match="no resource model"):
        rs.model_width("resnet", {})


def test_tiramisu_presets_match_the_architecture() -> None:
    """model_size keeps its own copy (no torch at DAG-build time); it must equal the model's."""
    from carvana.models.tiramisu import COMMON, PRESETS

    assert set(ms.TIRAMISU_PRESETS) == set(PRESETS)
    for name, (first, down, bottleneck, growth) in ms.TIRAMISU_PRESETS.items():
        assert (first, list(down), bottleneck, growth) == (
            COMMON["first_filters"], PRESETS[name]["down_blocks"],
            PRESETS[name]["bottleneck_layers"], PRESETS[name]["growth_rate"])


def every_preset_model() -> list[tuple[str, str, dict, int]]:
    """(label, arch, params, input channels) of every model of every preset, and variants."""
    out = []
    for name in ("config.yaml", "configs/tiny.yaml", "configs/carvana-cpu.yaml",
                 "configs/carvana-full.yaml"):
        config = preset(name)
        for model in config["models"]:
            spec = wf.model_spec(config, model)
            out.append((f"{name}:{model}", spec["arch"], spec["params"],
                        4 if spec.get("depth_from") else 3))
    return out + [
        ("unet transpose, capped", "unet", {"initial_filters": 8, "depth": 3,
                                            "upsample": "transpose", "max_filters": 32}, 3),
        ("inception transpose", "inception_unet", {"initial_filters": 8, "depth": 3,
                                                   "upsample": "transpose"}, 4),
        ("fcdensenet67, short up path", "tiramisu", {"preset": "fcdensenet67",
                                                     "up_blocks": [2, 2, 2, 2, 2]}, 4),
        ("lite1", "efficientnet_unet", {"encoder": "lite1"}, 3),
        ("lite0, full-resolution skip", "efficientnet_unet", {"full_res_skip": 16}, 4)]


@pytest.mark.parametrize(("label", "arch", "params", "channels"), every_preset_model())
def test_parameter_counts_equal_the_built_networks(label: str, arch: str, params: dict,
                                                   channels: int) -> None:
    from carvana.models import count_parameters, create_model

    built = create_model(arch, in_channels=channels,
                         **{**params, **({"pretrained": False} if "encoder" in params else {})})
    assert ms.parameter_count(arch, params, channels) == count_parameters(built), label


def test_weights_count_in_the_memory_request() -> None:
    """The original 34.6 M-parameter U-Nets: weights, gradients, RMSprop's moment and the
    loop's two copies in training (measured: 1.25 GB peak at 128 px for 1.0 GB declared
    without them), two copies in prediction."""
    full = preset("configs/carvana-full.yaml")
    spec = wf.model_spec(full, "unet128")
    assert rs.weights_mb(spec, "train") == pytest.approx(34527041 * 4 * 5 / 2**20)
    assert rs.weights_mb(spec, "predict") == pytest.approx(34527041 * 4 * 2 / 2**20)
    adam = copy.deepcopy(spec)
    adam["train"]["optimizer"] = "adam"
    assert rs.weights_mb(adam, "train") == pytest.approx(34527041 * 4 * 6 / 2**20)
    spec["train"]["batch_size"] = 1  # as tests/test_full_preset.py ran it: 1249 MiB peak
    assert rs.train_mem_mb(full, spec, rs.DataShape(1918, 1280, 1)) >= 1249 * 2**20 / 1e6


def test_bf16_training_declares_its_own_measured_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """configs/carvana-cpu.yaml trains under bfloat16 autocast, which keeps about half the
    activations: its 640x960 map's training peaked at 3991 MB (AMD EPYC, 80 real photos) and
    was declared 8.9 GB on the float32 line: a SLURM job asked a node for that, and a run
    under `--resources mem_mb=N` kept room for it. Every training job of the preset, its
    pseudo-label round's too (on 96 test photos), now asks for at most 6 GB and none for less
    than its largest measured peak (max_rss over the nineteenth to twenty-second passes' runs,
    Intel Xeon, 80 train photos); the same model in float32 still declares the float32 line."""
    monkeypatch.setattr(rs, "host_native_bf16", lambda: True)  # the Xeon's (AMX) requests
    measured = {"effl0_320": 1702, "effl0_640": 4505, "effl0_depth": 3267,
                "effl0_depth_lv": 3682, "effl0_640_pl1": 4678, "effl0_depth_lv_pl1": 3956}
    rounds = {**CPU, **wf.with_pseudo_rounds(CPU)}
    for name, peak in measured.items():
        spec = wf.model_spec(rounds, name)
        assert spec["train"]["cpu_bf16"]
        shape = rs.training_shape(REAL, spec, 96)
        assert peak <= rs.train_mem_mb(rounds, spec, shape) <= 6000, name
    spec = wf.model_spec(CPU, "effl0_640")
    fp32 = copy.deepcopy(spec)
    fp32["train"]["cpu_bf16"] = False
    assert rs.train_mem_mb(CPU, fp32, REAL) >= rs.train_mem_mb(CPU, spec, REAL) + 3000
    default = preset("config.yaml")
    tiramisu = wf.model_spec(default, "tiramisu64")  # no bfloat16 line measured: float32's
    bf16 = copy.deepcopy(tiramisu)
    bf16["train"]["cpu_bf16"] = True
    assert rs.train_mem_mb(default, bf16, REAL) == rs.train_mem_mb(default, tiramisu, REAL)


def test_a_host_without_native_bf16_declares_float32s_line(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """There ``cpu_bf16`` trains in float32 (carvana.device), so the job asks for float32's
    memory: the 640x960 map's request 3 GB larger than on a host with native bfloat16."""
    spec = wf.model_spec(CPU, "effl0_640")
    monkeypatch.setattr(rs, "host_native_bf16", lambda: True)
    native = rs.train_mem_mb(CPU, spec, REAL)
    monkeypatch.setattr(rs, "host_native_bf16", lambda: False)
    fp32 = copy.deepcopy(spec)
    fp32["train"]["cpu_bf16"] = False
    assert rs.train_mem_mb(CPU, spec, REAL) == rs.train_mem_mb(CPU, fp32, REAL) >= native + 3000


def test_tiramisu_memory_width_counts_its_dense_blocks() -> None:
    """The calibrated Tiramisu keeps its width; the presets' deeper ones weigh more than their
    first block says (measured 4.3x and 2.8x the calibrated MB per megapixel)."""
    assert rs.memory_width("tiramisu", rs.TIRAMISU_CALIBRATED) == pytest.approx(5.0)
    assert rs.model_width("tiramisu", rs.TIRAMISU_CALIBRATED) == 5.0
    assert 4.3 <= rs.memory_width("tiramisu", {"preset": "original"}) / 5 <= 5.0
    assert 2.8 <= rs.memory_width("tiramisu", {"preset": "fcdensenet56"}) / 5 <= 3.2
    assert rs.memory_width("unet", {"initial_filters": 8}) == rs.model_width(
        "unet", {"initial_filters": 8})


def test_data_shape_of_synthetic_and_real_folders(tmp_path: Path) -> None:
    assert rs.data_shape(TINY) == rs.DataShape(96, 64, 48)  # 3 train cars x 16 views
    for folder in ("test", "train"):
        (tmp_path / folder).mkdir()
    for name in ("b_01", "a_01"):  # the first by name is read
        Image.new("RGB", (120 if name == "a_01" else 50, 80)).save(tmp_path / f"test/{name}.jpg")
    for i in range(3):
        (tmp_path / f"train/c_{i:02d}.jpg").write_bytes(b"")  # only counted
    assert rs.data_shape({"data_dir": str(tmp_path)}) == rs.DataShape(120, 80, 3)
    (tmp_path / "test/a_01.jpg").write_bytes(b"not a jpeg")  # ingest reports it; no crash here
    assert rs.data_shape({"data_dir": str(tmp_path)}).width == rs.KAGGLE_SIZE[0]
    assert rs.data_shape({"data_dir": str(tmp_path / "missing")}) == rs.DataShape(
        *rs.KAGGLE_SIZE, 0)


def test_batches_follow_the_config() -> None:
    """Low-res: batch_size images at the model's size; tiles: two crops (or tiles) an image,
    validated and predicted on whole tiles; the depth channel counts."""
    lowres = wf.model_spec(CPU, "effl0_640")
    step, val = rs.train_batches(CPU, lowres, REAL)
    assert step == val == rs.Batch(4, 640 * 960, 3, 4)
    tiles = wf.model_spec(CPU, "effl0_depth")
    step, val = rs.train_batches(CPU, tiles, REAL)
    assert rs.tile_side(CPU, REAL) == 960
    assert step == rs.Batch(4, 384 * 384, 4, 2)  # batch 2, crop 384
    assert val == rs.Batch(4, 960 * 960, 4, 2)
    assert rs.predict_batch(CPU, tiles, REAL) == rs.Batch(4, 960 * 960, 4, 2)  # tile_batch 2
    assert rs.predict_batch(CPU, lowres, REAL) == rs.Batch(4, 640 * 960, 3, 4)
    whole = copy.deepcopy(tiles)
    whole["train"]["crop"] = None
    assert rs.train_batches(CPU, whole, REAL)[0].pixels == 960 * 960


def test_memory_grows_with_batch_crop_and_width() -> None:
    spec = wf.model_spec(CPU, "effl0_tiles")
    base = rs.train_mem_mb(CPU, spec, REAL)
    bigger = copy.deepcopy(spec)
    bigger["train"]["batch_size"] = 8
    assert rs.train_mem_mb(CPU, bigger, REAL) > base
    bigger = copy.deepcopy(spec)
    bigger["train"]["crop"] = 768
    assert rs.train_mem_mb(CPU, bigger, REAL) > base
    wider = copy.deepcopy(spec)
    wider["params"]["decoder_channels"] = [256, 128, 64, 64, 64]
    assert rs.train_mem_mb(CPU, wider, REAL) > base
    config = copy.deepcopy(CPU)
    config["predict"]["tile_batch_size"] = 8
    assert rs.predict_mem_mb(config, spec, REAL) > rs.predict_mem_mb(CPU, spec, REAL)
    # the case: the default tile U-Net on 8 real 960-px tiles took 7.7 GB
    default = preset("config.yaml")
    assert rs.train_mem_mb(default, wf.model_spec(default, "fullres"),
                           rs.DataShape(1918, 1280, 5088)) >= 7700


def test_cached_training_images_count_only_when_they_fit() -> None:
    """data.cache_if_small keeps every image's two tiles and masks in RAM when all fit in
    cache_mb (3072 here: up to 416 real photos), else none; a full-size photo's allowance
    beyond its items counts for at most CACHE_MARGIN_MAX_PHOTOS (80) of them."""
    spec = wf.model_spec(CPU, "effl0_tiles")
    _, val = rs.train_batches(CPU, spec, REAL)
    item = 2 * 960 * 960 * 4  # two RGB tiles and their masks, uint8
    allowance = rs.CACHE_MARGIN_B_PER_PX * 1918 * 1280
    shapes = {n: rs.DataShape(1918, 1280, n) for n in (16, 80, 400, 1000)}
    assert rs._cache_mb(spec, val, shapes[16]) == pytest.approx(16 * (item + allowance) / 2**20)
    assert rs._cache_mb(spec, val, shapes[80]) == pytest.approx(80 * (item + allowance) / 2**20)
    assert rs._cache_mb(spec, val, shapes[400]) == pytest.approx((400 * item + 80 * allowance)
                                                                 / 2**20)
    assert rs._cache_mb(spec, val, shapes[1000]) == 0  # 7 GB of items > cache_mb
    mem = {n: rs.train_mem_mb(CPU, spec, shape) for n, shape in shapes.items()}
    assert mem[16] < mem[400] and mem[1000] < mem[400]


def test_runtime_grows_with_steps_and_images() -> None:
    spec = wf.model_spec(CPU, "effl0_tiles")
    longer = copy.deepcopy(spec)
    longer["train"]["steps"] = 100 * spec["train"]["steps"]
    assert rs.train_runtime(CPU, longer, REAL) > rs.train_runtime(CPU, spec, REAL)
    budget = copy.deepcopy(spec)
    budget["train"].update(steps=120, eval_every_steps=60, fine_tune_epochs=0)
    assert rs.train_steps(budget, 64) == (120, 3)  # validations at 60 and 120, + the last
    budget["train"].update(steps=None, epochs=3, eval_every_steps=None, fine_tune_epochs=1)
    assert rs.train_steps(budget, 64) == (4 * 32, 5)  # 64 images in batches of 2: 32 a epoch
    assert rs.predict_request(CPU, [spec], REAL, "runtime", 5000) > rs.predict_request(
        CPU, [spec], REAL, "runtime", 32) >= rs.MIN_RUNTIME
    assert rs.val_images(CPU, REAL) == 32  # 5 cars x 0.2 -> 1, plus one: 2 cars


def test_a_number_in_the_preset_wins_over_the_formula() -> None:
    spec = wf.model_spec(CPU, "effl0_tiles")
    assert CPU["resources"]["train"] == {"mem_mb": "auto", "runtime": "auto"}
    assert rs.train_request(CPU, spec, REAL, "mem_mb") == rs.train_mem_mb(CPU, spec, REAL)
    fixed = copy.deepcopy(CPU)
    fixed["resources"]["train"]["mem_mb"] = 12345
    fixed["resources"]["predict"]["runtime"] = 77
    assert rs.train_request(fixed, spec, REAL, "mem_mb") == 12345
    assert rs.train_request(fixed, spec, REAL, "runtime") == rs.train_runtime(CPU, spec, REAL)
    assert rs.predict_request(fixed, [spec], REAL, "runtime", 32) == 77
    # a chain (cut-outs) asks for its largest model's memory
    lowres = wf.model_spec(CPU, "effl0_640")
    assert rs.predict_request(CPU, [lowres, spec], REAL, "mem_mb", 4) == max(
        rs.predict_mem_mb(CPU, lowres, REAL), rs.predict_mem_mb(CPU, spec, REAL))


def declared(proc) -> dict[tuple[str, str], dict[str, int]]:
    """(rule, wildcards) -> the mem_mb and runtime a dry run's job listing shows."""
    out, rule, wildcards = {}, "", ""
    for line in (proc.stdout + proc.stderr).splitlines():
        line = line.strip()
        if m := re.fullmatch(r"(?:local)?rule (\w+):", line):
            rule, wildcards = m[1], ""
        elif line.startswith("wildcards: "):
            wildcards = line.removeprefix("wildcards: ")
        elif line.startswith("resources: "):
            values = dict(kv.split("=", 1) for kv in line.removeprefix("resources: ").split(", "))
            if "mem_mb" in values:
                out[rule, wildcards] = {k: int(values[k]) for k in ("mem_mb", "runtime")}
    return out


def test_rules_declare_the_formula_and_the_presets_numbers(tmp_path: Path) -> None:
    """A dry run of the tiny preset: each model job declares carvana.resources' figure for its
    model and images; with numbers in `resources:` every such job declares them."""
    work = copy_workflow(tmp_path / "wf")
    proc = snakemake(work, "-n", "all")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = declared(proc)
    shape = rs.data_shape(TINY)
    for model in ("unet32", "unet64", "tiles", "depth"):
        spec = wf.model_spec(TINY, model)
        rule = "train_tiles" if spec.get("input") == "tiles" else "train_lowres"
        assert jobs[rule, f"model={model}"] == {
            "mem_mb": rs.train_mem_mb(TINY, spec, shape),
            "runtime": rs.train_runtime(TINY, spec, shape)}
    assert jobs["predict_tiles_test", "model=tiles, shard=0000"]["mem_mb"] == (
        rs.predict_mem_mb(TINY, wf.model_spec(TINY, "tiles"), shape))
    assert jobs["predict_tiles_val", "model=depth"]["mem_mb"] == (
        rs.predict_mem_mb(TINY, wf.model_spec(TINY, "depth"), shape))
    assert jobs["ensemble_test", "shard=0000"] == TINY["resources"]["light"]
    (work / "numbers.yaml").write_text(
        "resources: {train: {mem_mb: 2345, runtime: 42}, predict: {mem_mb: 1234},"
        " light: {mem_mb: 1000, runtime: 10}}\n")
    proc = snakemake(work, "-n", "all", "--configfile", "configs/tiny.yaml", "numbers.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = declared(proc)
    assert jobs["train_tiles", "model=depth"] == {"mem_mb": 2345, "runtime": 42}
    assert jobs["predict_lowres_test", "model=unet32, shard=0001"]["mem_mb"] == 1234
    assert jobs["predict_lowres_test", "model=unet32, shard=0001"]["runtime"] == (
        rs.predict_request(TINY, [wf.model_spec(TINY, "unet32")], shape, "runtime", 6))
