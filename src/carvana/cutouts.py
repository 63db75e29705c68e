"""Cut-outs of a person's own photos with the trained workflow: masks, RGBA photos, a contact sheet.

Each photo (any size, JPEG or PNG) is resized to the training data's geometry and run through
the same chain as a test shard, in process: low-res models on the squashed image, the box
model's band and the tile models (with their depth channel), the ensemble. The probability map
goes back to the photo's own size and is thresholded. The DAG-time helpers here (listing
photos, shards, the models a source needs) import no torch; the chain imports it when it runs.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pandas as pd
from PIL import Image, ImageOps
from tqdm import tqdm

from carvana import workflow as wf
from carvana.bbox import box_from_prob
from carvana.gates import GateError
from carvana.ingest import shards
from carvana.io import (
    DataError,
    atomic_path,
    prob_levels,
    read_json,
    resize_prob,
    write_frame,
    write_jpeg,
)
from carvana.tiling import TileGeometry, cut_tiles, geometry, stitch, tile_rows

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
STEM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SHARD_DIR = "results/cutouts_shards"
OUT_DIR = "results/cutouts"
SUMMARY_COLUMNS = ["stem", "width", "height", "mask_fraction", "empty", "box_fallback"]

ProbFn = Callable[[str, np.ndarray], np.ndarray]
"""(photo name, (H, W, 3) uint8 image at the data geometry) -> (H, W) probabilities in [0, 1]."""


# --- DAG-time helpers (no torch) -----------------------------------------------------------

def list_photos(photos_dir: str | Path) -> dict[str, str]:
    """Stem -> path of every JPEG or PNG in ``photos_dir``, sorted by stem.

    Other files, folders and hidden files are skipped. A stem must match ``STEM_RE`` (it becomes
    a file name); two photos with one stem, or a stem that is another's ``<stem>_mask``, would
    write the same output and are errors. Each error names the file and what to do.
    """
    folder = Path(photos_dir)
    if not folder.is_dir():
        raise DataError(f"photos_dir {folder}: folder does not exist (give a folder of JPEG or "
                        "PNG photos: --config photos_dir=DIR)")
    photos: dict[str, str] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        if entry.suffix.lower() not in PHOTO_SUFFIXES:
            log.info("%s: not a JPEG or PNG, skipped", entry)
            continue
        stem = entry.stem
        if not STEM_RE.fullmatch(stem):
            raise DataError(f"{entry}: the name {stem!r} cannot become an output file name; "
                            "rename the photo to letters, digits, '.', '_' or '-' (starting "
                            "with a letter or digit)")
        if stem in photos:
            raise DataError(f"{entry}: has the same name as {photos[stem]} (both would write "
                            f"{stem}.png); rename one of them")
        photos[stem] = str(entry)
    if not photos:
        raise DataError(f"photos_dir {folder}: no JPEG or PNG photos (*.jpg, *.jpeg, *.png)")
    for stem in photos:
        if stem.endswith("_mask") and stem[: -len("_mask")] in photos:
            raise DataError(f"{photos[stem]}: its cut-out {stem}.png would overwrite the mask of "
                            f"{photos[stem[: -len('_mask')]]}; rename it")
    return dict(sorted(photos.items()))


def cutout_source(config: dict[str, Any]) -> str:
    """The model (or ``ensemble``) that cuts out photos: ``cutouts.source``, else the
    submission's; ValueError naming the key when it is not a scored model."""
    source = (config.get("cutouts") or {}).get("source") or config["submission"]["source"]
    scored = wf.scored_models(config)
    if source not in scored:
        raise ValueError(f"cutouts.source {source!r} is not one of {scored} (a ladder or fullres "
                         "model, or `ensemble` when one is configured)")
    return source


def chain_models(config: dict[str, Any], source: str) -> list[str]:
    """Every trained model the source's chain runs: members, the box model and depth sources."""
    direct = list(wf.ensemble_members(config)) if source == "ensemble" else [source]
    tile_models = wf.tile_models(config)
    needed: list[str] = []
    for name in direct:
        if name in tile_models:
            needed.append(config["bbox"]["model"])
            depth_from = wf.model_spec(config, name).get("depth_from")
            if depth_from:
                needed.append(depth_from)
        needed.append(name)
    return list(dict.fromkeys(needed))


def threshold_setting(config: dict[str, Any]) -> float | str:
    """``cutouts.threshold``, else ``submission.threshold``: a number or ``best``."""
    setting = (config.get("cutouts") or {}).get("threshold")
    return config["submission"]["threshold"] if setting is None else setting


@dataclass(frozen=True)
class CutoutPlan:
    """What the cut-out rules need at DAG-build time (empty ``photos`` without photos_dir)."""

    photos: dict[str, str]
    shards: dict[str, list[str]]
    source: str
    models: list[str]
    threshold: float | str
    members: dict[str, float] = field(default_factory=dict)

    def shard_photos(self, shard: str) -> dict[str, str]:
        """Stem -> photo path of one shard."""
        return {stem: self.photos[stem] for stem in self.shards[shard]}

    def weights(self) -> dict[str, str]:
        """Model -> weights file of every model the chain needs."""
        return {m: f"results/models/{m}/weights.pt" for m in self.models}

    def outputs(self) -> list[str]:
        """Every final file: mask and RGBA per photo, the contact sheet, the summary."""
        return [*(f"{OUT_DIR}/{s}{suffix}" for s in self.photos for suffix in ("_mask.png", ".png")),
                f"{OUT_DIR}/contact_sheet.jpg", f"{OUT_DIR}/summary.csv"]

    def require_photos(self) -> None:
        """ValueError saying how to give photos when there are none."""
        if not self.photos:
            raise ValueError("the cutouts target needs a folder of photos: snakemake --cores all "
                             "cutouts --config photos_dir=DIR")


def plan(config: dict[str, Any]) -> CutoutPlan:
    """The cut-out plan of a config: photos (when ``photos_dir`` is set), shards, models."""
    settings = config.get("cutouts") or {}
    photos = list_photos(config["photos_dir"]) if config.get("photos_dir") else {}
    source = cutout_source(config)
    return CutoutPlan(
        photos=photos,
        shards=shards(list(photos), int(settings.get("shard_size", 32))),
        source=source,
        models=chain_models(config, source),
        threshold=threshold_setting(config),
        members=wf.ensemble_members(config) if source == "ensemble" else {},
    )


def resolve_threshold(setting: float | str, threshold_json: str | None, source: str) -> float:
    """A numeric threshold; ``best`` is the source's best on validation from threshold.json."""
    if setting != "best":
        return float(setting)
    if not threshold_json:
        raise ValueError("threshold 'best' needs results/metrics/threshold.json as an input")
    best = read_json(threshold_json).get("best", {})
    if source not in best:
        raise DataError(f"{threshold_json}: no best threshold for {source!r} (it has "
                        f"{sorted(best)}); set cutouts.threshold to a number")
    return float(best[source]["threshold"])


# --- photos in, cut-outs out -----------------------------------------------------------------

def read_photo(path: str | Path) -> np.ndarray:
    """An (H, W, 3) uint8 RGB photo, turned upright by its EXIF orientation; DataError naming the
    file if it cannot be decoded."""
    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except FileNotFoundError:
        raise DataError(f"{path}: photo is missing") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: cannot decode the photo ({err}); re-save it as JPEG or PNG") from None


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An image resized to (width, height): area averaging to shrink, bilinear to enlarge."""
    if image.shape[1::-1] == size:
        return image
    shrink = size[0] * size[1] < image.shape[0] * image.shape[1]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def quantize(prob: np.ndarray) -> np.ndarray:
    """Probabilities rounded to 8 bits, as the test chain stores them between stages."""
    return prob_levels(prob).astype(np.float32) / np.float32(255.0)


def _write_png(path: Path, array: np.ndarray, mode: str) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(array, mode).save(tmp, format="PNG", compress_level=4)


def cutout_photo(*, photo: np.ndarray, name: str, prob_fn: ProbFn, size: tuple[int, int],
                 threshold: float) -> np.ndarray:
    """The 0/255 uint8 mask of one photo at its own size: resized to the data geometry
    ``size`` (width, height), ``prob_fn``, back to the photo's size, thresholded."""
    prob = prob_fn(name, resize_image(photo, size))
    if prob.shape != (size[1], size[0]):
        raise ValueError(f"{name}: probability map {prob.shape}, expected {(size[1], size[0])}")
    prob = resize_prob(np.asarray(prob, np.float32), (photo.shape[1], photo.shape[0]))
    return np.where(prob >= threshold, 255, 0).astype(np.uint8)


def run_cutouts(*, photos: dict[str, str], prob_fn: ProbFn, size: tuple[int, int],
                threshold: float, out_dir: str | Path, max_empty_fraction: float = 0.5,
                label: str = "") -> pd.DataFrame:
    """Write ``<stem>_mask.png`` and ``<stem>.png`` (RGBA) per photo and ``summary.csv``.

    A photo whose mask is empty is logged; when more than ``max_empty_fraction`` of the photos
    come out empty, GateError names them (the outputs would be useless).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for stem, path in tqdm(photos.items(), desc=f"cutouts {label or out}", mininterval=5):
        photo = read_photo(path)
        mask = cutout_photo(photo=photo, name=path, prob_fn=prob_fn, size=size,
                            threshold=threshold)
        _write_png(out / f"{stem}_mask.png", mask, "L")
        _write_png(out / f"{stem}.png", np.dstack([photo, mask]), "RGBA")
        fraction = float(np.count_nonzero(mask)) / mask.size
        if fraction == 0:
            log.warning("%s: the mask is empty (no pixel >= %.3f)", path, threshold)
        rows.append((stem, photo.shape[1], photo.shape[0], round(fraction, 5), fraction == 0,
                     path in getattr(prob_fn, "fallbacks", ())))
    frame = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    write_frame(frame, out / "summary.csv")
    empty = [photos[s] for s in frame.loc[frame["empty"], "stem"]]
    if len(frame) and len(empty) / len(frame) > max_empty_fraction:
        raise GateError(
            f"{len(empty)} of {len(frame)} photos came out with an empty mask at threshold "
            f"{threshold:g}: {', '.join(empty[:10])}. The model sees no car in them: check they "
            "show one whole car as the training photos do, try a lower cutouts.threshold or a "
            "better-scoring cutouts.source (results/metrics/summary.csv).")
    return frame


# --- the model chain (torch) ------------------------------------------------------------------

@dataclass
class ModelChain:
    """The test chain of ``source`` as a ``ProbFn``: an image at the data geometry in, the
    full-size probability map the test shards would get out.

    ``models`` maps each needed model name to (module, checkpoint meta); ``members`` are the
    ensemble's weights; ``fallbacks`` collects the photos whose box fell back to a centred band.
    """

    models: dict[str, tuple[torch.nn.Module, dict[str, Any]]]
    source: str
    size: tuple[int, int]
    device: torch.device
    members: dict[str, float] = field(default_factory=dict)
    bbox: dict[str, Any] = field(default_factory=dict)
    geom: TileGeometry | None = None
    tta_hflip: bool = False
    fallbacks: set[str] = field(default_factory=set)

    def __call__(self, name: str, image: np.ndarray) -> np.ndarray:
        cache: dict[str, np.ndarray] = {}
        if self.source != "ensemble":
            return self._full(self.source, name, image, cache)
        total = sum(self.members.values())
        if total <= 0:
            raise ValueError("ensemble weights must add up to more than 0")
        acc = np.zeros(image.shape[:2], np.float32)
        for member, weight in self.members.items():
            acc += (weight / total) * self._full(member, name, image, cache)
        return quantize(acc)

    def _model(self, model: str) -> tuple[torch.nn.Module, dict[str, Any]]:
        if model not in self.models:
            raise ValueError(f"the chain of {self.source!r} needs model {model!r}, not loaded "
                             f"(loaded: {sorted(self.models)})")
        return self.models[model]

    def _predict(self, module: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
        """(N, H, W, C) uint8 -> (N, H, W) probabilities, as the prediction rules compute them."""
        import torch

        from carvana.predict import predict_probs
        from carvana.tensors import to_input

        tensor = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
        x = to_input(tensor, self.device, channels_last=True)  # as predict_to_dir does
        return predict_probs(module, x, self.tta_hflip).squeeze(1).cpu().numpy()

    def _lowres(self, model: str, image: np.ndarray, cache: dict[str, np.ndarray]) -> np.ndarray:
        """A low-res model's (8-bit) probabilities at its own input size."""
        if model not in cache:
            from carvana.data import lowres_hw

            module, meta = self._model(model)
            height, width = lowres_hw(meta["size"])
            small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            cache[model] = quantize(self._predict(module, small[None])[0])
        return cache[model]

    def _band(self, name: str, image: np.ndarray, cache: dict[str, np.ndarray],
              geom: TileGeometry) -> tuple[int, int]:
        """The tile band from the box model's prediction (centred when it finds no car)."""
        model = self.bbox["model"]
        box = box_from_prob(self._lowres(model, image, cache), float(self.bbox["threshold"]),
                            self.size)
        if box is None:
            log.warning("%s: the box model %s finds no car; using a band centred on the image",
                        name, model)
            self.fallbacks.add(name)
            return tile_rows(0, geom.height, geom, int(self.bbox["margin"]))
        return tile_rows(box.r0, box.r1, geom, int(self.bbox["margin"]))

    def _full(self, model: str, name: str, image: np.ndarray,
              cache: dict[str, np.ndarray]) -> np.ndarray:
        """A model's probabilities at the data geometry."""
        module, meta = self._model(model)
        if meta.get("input", "lowres") != "tiles":
            return resize_prob(self._lowres(model, image, cache), self.size)
        geom = self.geom
        if geom is None or meta.get("tile") != geom.tile:
            raise ValueError(f"model {model!r} was trained on {meta.get('tile')}px tiles, the "
                             f"data geometry needs {geom.tile if geom else 'no'} tiles")
        full = image
        if meta.get("depth_from"):
            depth = resize_prob(self._lowres(meta["depth_from"], image, cache), self.size)
            full = np.concatenate([image, np.rint(depth * 255).astype(np.uint8)[..., None]], 2)
        rows = self._band(name, image, cache, geom)
        prob = self._predict(module, cut_tiles(full, rows, geom))
        return quantize(stitch(prob, rows, geom))


@dataclass(frozen=True)
class ChainSpec:
    """Which chain to run and how: the models' weights (name -> weights.pt), the source
    (a model or ``ensemble``), the ensemble's weights, config ``bbox`` and ``tiles``, TTA and
    the device."""

    weights: dict[str, str]
    source: str
    members: dict[str, float] = field(default_factory=dict)
    bbox: dict[str, Any] = field(default_factory=dict)
    tiles: dict[str, Any] = field(default_factory=dict)
    tta_hflip: bool = False
    device: str = "auto"
    cpu_fallback: bool = True


def build_chain(spec: ChainSpec, ingest_json: str) -> ModelChain:
    """Load every model of the chain onto the device (each checked to be the model its name
    says) and return it as a ``ProbFn``."""
    from carvana.device import select_device
    from carvana.predict import load_model

    dev = select_device(spec.device, spec.cpu_fallback)
    models = {name: load_model(path, dev, {"name": name}) for name, path in spec.weights.items()}
    info = read_json(ingest_json)
    has_tiles = any(meta.get("input") == "tiles" for _, meta in models.values())
    log.info("cutouts with %s on %s (models %s)", spec.source, dev, ", ".join(models))
    return ModelChain(models=models, source=spec.source,
                      size=(int(info["width"]), int(info["height"])), device=dev,
                      members=dict(spec.members), bbox=dict(spec.bbox),
                      geom=geometry(ingest_json, spec.tiles) if has_tiles else None,
                      tta_hflip=spec.tta_hflip)


def cutouts_shard(*, photos: dict[str, str], spec: ChainSpec, ingest_json: str,
                  threshold: float | str, threshold_json: str | None, max_empty_fraction: float,
                  out_dir: str) -> None:
    """One shard of photos through the chain of ``spec.source`` into ``out_dir``."""
    thr = resolve_threshold(threshold, threshold_json, spec.source)
    chain = build_chain(spec, ingest_json)
    frame = run_cutouts(photos=photos, prob_fn=chain, size=chain.size, threshold=thr,
                        out_dir=out_dir, max_empty_fraction=max_empty_fraction)
    log.info("%d photos at threshold %g: %d empty masks, %d box fallbacks", len(frame), thr,
             int(frame["empty"].sum()), int(frame["box_fallback"].sum()))


# --- collect ----------------------------------------------------------------------------------

def _copy(src: Path, dest: Path) -> None:
    if not src.is_file():
        raise DataError(f"{src}: missing from its shard's outputs; rerun the cutouts_shard job")
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


def _checkerboard(height: int, width: int, square: int = 8) -> np.ndarray:
    rows, cols = np.indices((height, width)) // square
    return np.where(((rows + cols) % 2 == 0)[..., None], 204, 153).astype(np.float32)


def _text_width(text: str, scale: float) -> int:
    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]


def contact_sheet(cutouts: dict[str, str | Path], out_jpg: str | Path, cell: int = 240) -> None:
    """Thumbnails of RGBA cut-outs on a checkerboard, each labelled with its stem, as a JPEG.

    Cells are ``cell`` wide and 2/3 as tall (a car photo's shape), narrower for many photos.
    """
    n = len(cutouts)
    cols = int(np.ceil(np.sqrt(n)))
    cell = max(64, min(cell, 8192 // max(cols, 1)))
    image_h, label_h = cell * 2 // 3, max(14, cell // 10)
    sheet = np.full((int(np.ceil(n / cols)) * (image_h + label_h), cols * cell, 3), 96, np.uint8)
    scale = label_h / 36
    for k, (stem, path) in enumerate(tqdm(cutouts.items(), desc="contact sheet", mininterval=5)):
        with Image.open(path) as im:
            rgba = im.convert("RGBA")
        rgba.thumbnail((cell - 4, image_h - 4))
        thumb = np.asarray(rgba, np.float32)
        alpha = thumb[..., 3:] / 255
        h, w = thumb.shape[:2]
        tile = thumb[..., :3] * alpha + _checkerboard(h, w) * (1 - alpha)
        y, x = (k // cols) * (image_h + label_h), (k % cols) * cell
        oy, ox = y + (image_h - h) // 2, x + (cell - w) // 2
        sheet[oy:oy + h, ox:ox + w] = np.rint(tile).astype(np.uint8)
        text = stem
        while len(text) > 4 and _text_width(text, scale) > cell - 6:
            text = text[:-4] + "..."
        cv2.putText(sheet, text, (x + 3, y + image_h + label_h - 5), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, (255, 255, 255), 1, cv2.LINE_AA)
    write_jpeg(out_jpg, sheet, quality=90)


def collect_cutouts(*, shard_dirs: list[str], stems: list[str], out_dir: str,
                    contact_sheet_jpg: str, summary_csv: str) -> None:
    """Copy every shard's cut-outs into ``out_dir`` (atomically), draw the contact sheet and
    write one summary; DataError when a photo of ``stems`` is missing or found twice."""
    out = Path(out_dir)
    frames, where = [], {}
    for shard_dir in shard_dirs:
        frame = pd.read_csv(Path(shard_dir) / "summary.csv", dtype={"stem": str})
        for stem in frame["stem"]:
            if stem in where:
                raise DataError(f"{shard_dir}: photo {stem!r} is also in {where[stem]}")
            where[stem] = shard_dir
        frames.append(frame)
    missing = [s for s in stems if s not in where]
    if missing:
        raise DataError(f"no shard holds the cut-outs of {missing[:5]}; rerun the cutouts target")
    for stem in tqdm(stems, desc="collect cutouts", mininterval=5):
        for suffix in ("_mask.png", ".png"):
            _copy(Path(where[stem]) / f"{stem}{suffix}", out / f"{stem}{suffix}")
    contact_sheet({s: out / f"{s}.png" for s in stems}, contact_sheet_jpg)
    summary = pd.concat(frames, ignore_index=True).set_index("stem").loc[stems].reset_index()
    write_frame(summary, summary_csv)
    log.info("%d cut-outs in %s (%d empty masks)", len(stems), out, int(summary["empty"].sum()))
