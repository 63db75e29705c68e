"""Memory and time requests of the training and prediction jobs, from the model and its input.

A model job's peak memory is its process (Python, torch, the package, Snakemake's preamble)
plus what one batch takes, which grows with the batch's pixels and the network's width:

    mem_mb  = BASE_MB + fixed[arch] + SAFETY x mb[arch] x width x megapixels of the batch
              + the weights' float32 copies + the training images cached in RAM
              + the batch's decoded full-size photos

(a training job: the larger of a training step and a validation forward on whole tiles). Its
time is start-up plus its steps (or batches) at ``s[arch]`` seconds per megapixel, scaled by
``(width / reference width)^2`` for wider networks than the calibrated one, plus reading the
photos, times ``TIME_SAFETY``. ``width`` is the network's channel width at full resolution
(``model_width``; for memory ``memory_width``, which differs for a Tiramisu). The weights'
copies (``WEIGHT_COPIES``) come from the network's parameter count (carvana.model_size): the
original U-Nets' 34.6 M parameters are 0.7 GB of them in training. The coefficients were
measured by ``benchmarks/memory_calibration.py`` (peak RSS and one core's CPU time of a
training step and of a prediction batch, each in a fresh process) on the CPU: on a GPU the
activations live on the device, so GPU presets set numbers.

Precedence (config ``resources:``): an integer at ``resources.<train|predict>.<mem_mb|runtime>``
is every such job's request; ``auto`` (the default) is this formula. Snakemake's
``--set-resources RULE:mem_mb=N`` wins over both. Light jobs' requests are numbers.

Nothing here imports torch: the Snakefile calls it while it builds the DAG.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carvana.host import host_native_bf16
from carvana.io import image_size
from carvana.model_size import parameter_count, tiramisu_activations, tiramisu_structure
from carvana.split import pseudo_cap
from carvana.tiling import tile_geometry

#: The Kaggle photos' size, assumed when the data folder has no readable test image yet
#: (ingest then reports the real problem).
KAGGLE_SIZE = (1918, 1280)
#: A model job's process before its batch: 300 MB measured (Python, torch, the package,
#: Snakemake's script module), plus the loop's state, the loader, figures and PNG writing.
BASE_MB = 600
#: Headroom on the activations over the calibrated (upper) line.
SAFETY = 1.15
TIME_SAFETY = 2.0
#: Start-up of a model job (Python, Snakemake's preamble, torch, the model), seconds.
STARTUP_S = 20.0
#: Reading one photo (and its mask) or writing one probability PNG, seconds per megapixel.
IO_S_PER_MPX = 0.05
MIN_RUNTIME = 5
ROUND_MB = 100
#: Caching full-size photos for a tile model: a margin of 8 bytes a full-size pixel for each
#: of at most ``CACHE_MARGIN_MAX_PHOTOS`` photos, beyond the cached items. It was first fitted
#: as heap that decoding left behind (80 photos: 2.0-2.2 GB of RSS for 0.6-0.7 GB of items);
#: caching now adds its items alone (176 photos of 1918x1280: 1,578 MB of RSS for 1,547 MB of
#: items), while a tile job's peak still varies by up to 1.3 GB between runs of the same data
#: (carvana-cpu, 80 photos: the Dice model 2.3-3.3 GB, its Lovász fine-tune 2.3-3.7 GB). So it
#: stays as a margin, capped at the 80 photos it was fitted on: a pseudo-label round's tile
#: model (112-176 photos, 2.6-4.0 GB measured) asked for 7.6 GB without the cap.
CACHE_MARGIN_B_PER_PX = 8
CACHE_MARGIN_MAX_PHOTOS = 80


@dataclass(frozen=True)
class ArchCost:
    """Per-architecture coefficients, measured by benchmarks/memory_calibration.py.

    ``train_mb``/``infer_mb``: MB per unit of ``model_width`` per megapixel of a training step
    (forward, backward, optimizer) and of a forward pass; ``train_fixed_mb``/``infer_fixed_mb``:
    what a step or a batch adds whatever its size; ``train_s``/``infer_s``: one core's CPU
    seconds per megapixel for a network of ``ref_width``; ``train_bf16_mb``/
    ``train_bf16_fixed_mb``: a training step under bfloat16 autocast (``training.cpu_bf16``),
    where measured (else the float32 line).
    """

    train_mb: float
    infer_mb: float
    train_fixed_mb: float
    infer_fixed_mb: float
    train_s: float
    infer_s: float
    ref_width: float
    train_bf16_mb: float | None = None
    train_bf16_fixed_mb: float | None = None


#: The calibration's fits (benchmarks/results/memory_calibration.json), rounded up: the largest
#: slope and intercept over the measured variants of each architecture (2 CPU cores, torch 2.13).
#: bfloat16 training (``--bf16``, the EfficientNet U-Nets only, AMD EPYC with AVX512-BF16): a
#: step keeps about half the float32 activations (Lite0 1334 against 2638 MB per width-Mpx);
#: checked with the 640x960 map's step on an Intel Xeon (``--map-point``; docs/slurm.md).
COSTS: dict[str, ArchCost] = {
    "unet": ArchCost(train_mb=140, infer_mb=48, train_fixed_mb=125, infer_fixed_mb=30,
                     train_s=1.9, infer_s=0.7, ref_width=8),
    "inception_unet": ArchCost(train_mb=195, infer_mb=75, train_fixed_mb=140, infer_fixed_mb=30,
                               train_s=2.9, infer_s=1.1, ref_width=8),
    "tiramisu": ArchCost(train_mb=1200, infer_mb=275, train_fixed_mb=170, infer_fixed_mb=135,
                         train_s=17.5, infer_s=3.9, ref_width=5),
    "efficientnet_unet": ArchCost(train_mb=2700, infer_mb=390, train_fixed_mb=230,
                                  infer_fixed_mb=80, train_s=5.3, infer_s=1.9, ref_width=1,
                                  train_bf16_mb=1500, train_bf16_fixed_mb=300),
}

#: The Tiramisu the coefficients were calibrated on (config.yaml's tiramisu64), width 5.
TIRAMISU_CALIBRATED = {"first_filters": 16, "down_blocks": [3, 3, 3], "bottleneck_layers": 3,
                       "growth_rate": 8}
#: Float32 copies of the weights a job holds beside its activations. Training: the weights,
#: their gradients, the optimizer's moments (``OPTIMIZER_MOMENTS``) and the training loop's
#: initial and best weights; prediction: the weights and the checkpoint they were loaded from.
WEIGHT_COPIES = {"train": 4, "predict": 2}
OPTIMIZER_MOMENTS = {"adam": 2, "rmsprop": 1, "sgd": 1}
#: EfficientNet-Lite encoders: training activations relative to Lite0 (Lite2 measured: 1.22;
#: Lite1, as wide as Lite0 and a little deeper, assumed between).
ENCODER_SCALE = {"lite0": 1.0, "lite1": 1.1, "lite2": 1.2}


def model_width(arch: str, params: dict[str, Any]) -> float:
    """The network's channel width at full resolution, the unit of the per-pixel costs.

    U-Net: ``initial_filters`` x (2 + ``up_convs``) / 4 (every level's channels are multiples
    of it); Inception U-Net: ``initial_filters``; Tiramisu: (first conv's maps + the first
    dense block's) / 8; EfficientNet U-Net: the last decoder block's channels / 16, by encoder.
    """
    if arch == "unet":
        return params.get("initial_filters", 64) * (2 + params.get("up_convs", 3)) / 4
    if arch == "inception_unet":
        return float(params.get("initial_filters", 32))
    if arch == "tiramisu":
        first, down, _, growth, _ = tiramisu_structure(params)
        return (first + down[0] * growth) / 8
    if arch == "efficientnet_unet":
        decoder = params.get("decoder_channels") or [256, 128, 64, 32, 16]
        return ENCODER_SCALE[params.get("encoder", "lite0")] * decoder[-1] / 16
    raise ValueError(f"no resource model for architecture {arch!r} (known: {sorted(COSTS)})")


def memory_width(arch: str, params: dict[str, Any]) -> float:
    """The width the memory coefficients are per: ``model_width``, except for a Tiramisu, whose
    backward pass keeps every dense layer's growing concatenation: its activations
    (``model_size.tiramisu_activations``) in units of the calibrated one's (width 5). Measured
    (training at 256 px): the presets' 'original' and 'fcdensenet56' take 4.3x and 2.8x the
    calibrated Tiramisu's MB per megapixel; this gives 4.8x and 2.9x, the first block's width
    2.8x and 2.4x (under-declared: 3.9 GB peak for 3.3 GB at batch 2)."""
    if arch != "tiramisu":
        return model_width(arch, params)
    return 5.0 * tiramisu_activations(params) / tiramisu_activations(TIRAMISU_CALIBRATED)


def weights_mb(spec: dict[str, Any], job: str) -> float:
    """MB of the float32 copies of the weights (``WEIGHT_COPIES``) a ``train`` or ``predict``
    job of ``spec`` holds."""
    copies = WEIGHT_COPIES[job]
    if job == "train":
        copies += OPTIMIZER_MOMENTS.get(spec["train"].get("optimizer", "adam"), 2)
    count = parameter_count(spec["arch"], spec.get("params") or {}, _channels(spec))
    return count * 4 * copies / 2**20


@dataclass(frozen=True)
class DataShape:
    """What the formulas need of the data: full image size and the number of train images."""

    width: int
    height: int
    n_train: int

    @property
    def mpx(self) -> float:
        """Megapixels of one full-size photo."""
        return self.width * self.height / 1e6


def data_shape(config: dict[str, Any]) -> DataShape:
    """The data's size, cheaply: the synthetic config's, or the first test image's header and a
    count of ``train/*.jpg``. A folder without a readable test image gives the Kaggle size."""
    if not config.get("data_dir"):
        syn = config["synthetic"]
        return DataShape(int(syn["width"]), int(syn["height"]), 16 * int(syn["train_cars"]))
    root = Path(config["data_dir"])
    width, height = KAGGLE_SIZE
    try:
        first = min((e.name for e in os.scandir(root / "test") if e.name.endswith(".jpg")),
                    default=None)
        if first is not None:
            width, height = image_size(root / "test" / first)
        n_train = sum(1 for e in os.scandir(root / "train") if e.name.endswith(".jpg"))
    except (OSError, ValueError):
        n_train = 0
    return DataShape(width, height, n_train)


def training_shape(shape: DataShape, spec: dict[str, Any], n_test: int) -> DataShape:
    """The data a model trains on: a pseudo-label round's model also trains on (and caches)
    the ``n_test`` test photos, or as many as its ``max_share`` keeps."""
    if not spec.get("pseudo"):
        return shape
    cap = pseudo_cap(shape.n_train, spec["pseudo"].get("max_share"))
    n_pseudo = n_test if cap is None else min(n_test, cap)
    return DataShape(shape.width, shape.height, shape.n_train + n_pseudo)


@dataclass(frozen=True)
class Batch:
    """One step's network inputs: ``inputs`` arrays of ``pixels`` each, ``channels`` deep, from
    ``images`` photos."""

    inputs: int
    pixels: int
    channels: int
    images: int

    @property
    def mpx(self) -> float:
        """Megapixels in the batch."""
        return self.inputs * self.pixels / 1e6


def _is_tiles(spec: dict[str, Any]) -> bool:
    return spec.get("input", "lowres") == "tiles"


def _channels(spec: dict[str, Any]) -> int:
    """Input channels: RGB, plus the low-res probabilities for a depth model."""
    return 4 if spec.get("depth_from") else 3


def _cost(spec: dict[str, Any]) -> tuple[ArchCost, float]:
    """The architecture's coefficients and the network's ``model_width``."""
    return COSTS[spec["arch"]], model_width(spec["arch"], spec.get("params") or {})


def _memory_cost(spec: dict[str, Any]) -> tuple[ArchCost, float]:
    """The architecture's coefficients and the network's ``memory_width``."""
    return COSTS[spec["arch"]], memory_width(spec["arch"], spec.get("params") or {})


def tile_side(config: dict[str, Any], shape: DataShape) -> int:
    """The tile side of config ``tiles:`` on this data (carvana.tiling.tile_geometry)."""
    tiles = config.get("tiles") or {}
    return tile_geometry(shape.width, shape.height, tiles.get("size"),
                         int(tiles.get("multiple", 32)), int(tiles.get("min_overlap", 0))).tile


def _lowres_pixels(size: int | list[int]) -> int:
    return size * size if isinstance(size, int) else int(size[0]) * int(size[1])


def train_batches(config: dict[str, Any], spec: dict[str, Any],
                  shape: DataShape) -> tuple[Batch, Batch]:
    """(training step, validation forward) of a model (``spec``: a ``workflow.model_spec``):
    low-res ``train: batch_size`` images at its size; tile models two ``train: crop`` windows
    (else whole tiles) an image, validated on whole tiles."""
    n = int(spec["train"]["batch_size"])
    if not _is_tiles(spec):
        step = Batch(n, _lowres_pixels(spec["size"]), 3, n)
        return step, step
    tile = tile_side(config, shape)
    side = int(spec["train"].get("crop") or tile)
    channels = _channels(spec)
    return Batch(2 * n, side * side, channels, n), Batch(2 * n, tile * tile, channels, n)


def predict_batch(config: dict[str, Any], spec: dict[str, Any], shape: DataShape,
                  images: int | None = None) -> Batch:
    """A prediction batch: low-res ``predict: batch_size`` images; tile models ``predict:
    tile_batch_size`` images of two tiles each (``images`` when given)."""
    if not _is_tiles(spec):
        n = images or int(config["predict"]["batch_size"])
        return Batch(n, _lowres_pixels(spec["size"]), 3, n)
    n = images or int(config["predict"]["tile_batch_size"])
    tile = tile_side(config, shape)
    return Batch(2 * n, tile * tile, _channels(spec), n)


def _round_mb(mb: float) -> int:
    return int(math.ceil(mb / ROUND_MB) * ROUND_MB)


def _cache_mb(spec: dict[str, Any], val: Batch, shape: DataShape) -> float:
    """What caching the training images costs when ``data.cache_if_small`` keeps them (all
    items fit in ``train: cache_mb``), else nothing: the items, plus (tile models) an allowance
    for the full-size photos (``CACHE_MARGIN_B_PER_PX``, ``CACHE_MARGIN_MAX_PHOTOS``; the
    low-res models' photos are decoded at a reduced scale)."""
    item = (val.channels + 1) * val.pixels * val.inputs // val.images
    if shape.n_train * item > float(spec["train"].get("cache_mb", 0)) * 2**20:
        return 0.0
    margin = CACHE_MARGIN_B_PER_PX * shape.width * shape.height if _is_tiles(spec) else 0
    return (shape.n_train * item + min(shape.n_train, CACHE_MARGIN_MAX_PHOTOS) * margin) / 2**20


def _train_line(cost: ArchCost, spec: dict[str, Any]) -> tuple[float, float]:
    """(MB per width-megapixel, fixed MB) of a training step: the bfloat16 line when the model
    trains under ``cpu_bf16`` on a host with native bfloat16 and its architecture was
    calibrated so, else float32's."""
    if (spec["train"].get("cpu_bf16") and cost.train_bf16_mb is not None
            and host_native_bf16()):
        return cost.train_bf16_mb, float(cost.train_bf16_fixed_mb or cost.train_fixed_mb)
    return cost.train_mb, cost.train_fixed_mb


def train_mem_mb(config: dict[str, Any], spec: dict[str, Any], shape: DataShape) -> int:
    """Peak memory (MB) of the training job of ``spec`` (a ``workflow.model_spec``); its
    validation forward passes run in float32."""
    cost, width = _memory_cost(spec)
    per_wmpx, fixed = _train_line(cost, spec)
    step, val = train_batches(config, spec, shape)
    activations = width * max(per_wmpx * step.mpx, cost.infer_mb * val.mpx)
    decoded = step.images * shape.mpx * 8  # a batch's photos and masks while they load
    return _round_mb(BASE_MB + fixed + SAFETY * activations
                     + weights_mb(spec, "train") + _cache_mb(spec, val, shape) + decoded)


def predict_mem_mb(config: dict[str, Any], spec: dict[str, Any], shape: DataShape,
                   images: int | None = None) -> int:
    """Peak memory (MB) of a prediction job of ``spec``: a batch's forward pass, its full-size
    photos and (tile models) their stitched float maps, and its weights. ``images``: a batch
    of that many."""
    cost, width = _memory_cost(spec)
    batch = predict_batch(config, spec, shape, images)
    decoded = batch.images * shape.mpx * 16
    return _round_mb(BASE_MB + cost.infer_fixed_mb + SAFETY * cost.infer_mb * width * batch.mpx
                     + weights_mb(spec, "predict") + decoded)


def _speed(cost: ArchCost, width: float) -> float:
    """How much slower than the calibrated network: (width / reference)^2, at least 1."""
    return max(1.0, (width / cost.ref_width) ** 2)


def _minutes(seconds: float) -> int:
    return max(MIN_RUNTIME, math.ceil(TIME_SAFETY * (STARTUP_S + seconds) / 60))


def val_images(config: dict[str, Any], shape: DataShape) -> int:
    """An upper bound on the validation fold: ``split: val_fraction`` of the cars, plus one
    (16 views a car)."""
    fraction = float((config.get("split") or {}).get("val_fraction", 0.2))
    cars = math.ceil(shape.n_train / 16)
    return min(shape.n_train, 16 * (math.ceil(cars * fraction) + 1))


def train_steps(spec: dict[str, Any], n_train: int) -> tuple[int, int]:
    """(optimizer steps, validations) of a training run: ``steps`` or ``epochs`` x steps an
    epoch, plus ``fine_tune_epochs``; a validation every ``eval_every_steps`` or epoch."""
    train = spec["train"]
    per_epoch = max(1, math.ceil(n_train / int(train["batch_size"])))
    steps = int(train.get("steps") or int(train["epochs"]) * per_epoch)
    steps += int(train.get("fine_tune_epochs") or 0) * per_epoch
    every = int(train.get("eval_every_steps") or per_epoch)
    return steps, math.ceil(steps / every) + 1


def train_runtime(config: dict[str, Any], spec: dict[str, Any], shape: DataShape) -> int:
    """Minutes of the training job of ``spec`` on a CPU like the calibration's (an upper
    bound on a GPU)."""
    cost, width = _cost(spec)
    speed = _speed(cost, width)
    step, val = train_batches(config, spec, shape)
    n_val = val_images(config, shape)
    steps, validations = train_steps(spec, max(1, shape.n_train - n_val))
    batches = math.ceil(n_val / val.images)
    compute = speed * (steps * cost.train_s * step.mpx
                       + validations * batches * cost.infer_s * val.mpx)
    cached = _cache_mb(spec, val, shape) > 0
    reads = shape.n_train if cached else steps * step.images + validations * n_val
    return _minutes(compute + reads * shape.mpx * IO_S_PER_MPX)


def predict_seconds(config: dict[str, Any], spec: dict[str, Any], shape: DataShape,
                    n_images: int) -> float:
    """Seconds to predict ``n_images`` photos with ``spec``'s model on a CPU like the
    calibration's (reading each photo and writing its map included; no start-up, no safety)."""
    cost, width = _cost(spec)
    speed = _speed(cost, width)
    batch = predict_batch(config, spec, shape)
    per_image = speed * cost.infer_s * batch.mpx / batch.images + 2 * shape.mpx * IO_S_PER_MPX
    return n_images * per_image


def _setting(config: dict[str, Any], kind: str, key: str) -> int | None:
    """Config ``resources.<kind>.<key>`` as a number, or None for ``auto`` (or unset)."""
    value = ((config.get("resources") or {}).get(kind) or {}).get(key, "auto")
    return None if value == "auto" else int(value)


def train_request(config: dict[str, Any], spec: dict[str, Any], shape: DataShape,
                  key: str) -> int:
    """A training job's ``mem_mb`` or ``runtime``: config's number, else the formula."""
    explicit = _setting(config, "train", key)
    if explicit is not None:
        return explicit
    if key == "mem_mb":
        return train_mem_mb(config, spec, shape)
    return train_runtime(config, spec, shape)


def predict_request(config: dict[str, Any], specs: list[dict[str, Any]], shape: DataShape,
                    key: str, n_images: int, images: int | None = None) -> int:
    """A prediction job's ``mem_mb`` or ``runtime`` for ``n_images`` photos through every model
    of ``specs`` (one, or a cut-out chain): config's number, else the formula (memory: the
    largest model's, in batches of ``images``; time: the sum)."""
    explicit = _setting(config, "predict", key)
    if explicit is not None:
        return explicit
    if key == "mem_mb":
        return max(predict_mem_mb(config, spec, shape, images) for spec in specs)
    return _minutes(sum(predict_seconds(config, spec, shape, n_images) for spec in specs))
