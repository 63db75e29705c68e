"""Cut-outs of a person's own photos with the trained workflow: masks, RGBA photos, a contact sheet.

Each photo (any size, JPEG or PNG, any file name) goes through ``carvana.segmenter.Segmenter``,
the one chain that the CLI and the server run too. The DAG-time helpers here (listing photos,
shards, the models a source needs) import no torch; the segmenter imports it when it runs.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from carvana import workflow as wf
from carvana.chain import needed_models
from carvana.gates import GateError
from carvana.ingest import shards
from carvana.io import DataError, atomic_path, write_frame, write_jpeg
from carvana.photos import PHOTO_SUFFIXES, output_stems, read_photo

if TYPE_CHECKING:
    from carvana.segmenter import Segmenter

log = logging.getLogger(__name__)

SHARD_DIR = "results/cutouts_shards"
OUT_DIR = "results/cutouts"
SUMMARY_COLUMNS = ["stem", "width", "height", "mask_fraction", "empty", "box_fallback"]


# --- DAG-time helpers (no torch) -----------------------------------------------------------

def list_photos(photos_dir: str | Path) -> dict[str, str]:
    """Stem -> path of every JPEG or PNG in ``photos_dir``, sorted by stem.

    Other files, folders and hidden files are skipped. Any name works (spaces, parentheses,
    unicode); two photos that would write one output file are an error naming both
    (``carvana.photos.output_stems``). Job ids are shard numbers, never photo names.
    """
    folder = Path(photos_dir)
    if not folder.is_dir():
        raise DataError(f"photos_dir {folder}: folder does not exist (give a folder of JPEG or "
                        "PNG photos: --config photos_dir=DIR)")
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        if entry.suffix.lower() not in PHOTO_SUFFIXES:
            log.info("%s: not a JPEG or PNG, skipped", entry)
            continue
        found.append(entry)
    if not found:
        raise DataError(f"photos_dir {folder}: no JPEG or PNG photos (*.jpg, *.jpeg, *.png)")
    return dict(sorted(output_stems(found).items()))


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
    tiles = {n: wf.model_spec(config, n).get("depth_from") for n in wf.tile_models(config)}
    return needed_models(source, members=wf.ensemble_members(config), tile_models=tiles,
                         box_model=(config.get("bbox") or {}).get("model"))


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

    def shard_photos(self, shard: str) -> dict[str, str]:
        """Stem -> photo path of one shard."""
        return {stem: self.photos[stem] for stem in self.shards[shard]}

    def weights(self) -> dict[str, str]:
        """Model -> weights file of every model the chain needs."""
        return {m: f"results/models/{m}/weights.pt" for m in self.models}

    def photo_files(self) -> list[str]:
        """Each photo's mask and RGBA cut-out."""
        return [f"{OUT_DIR}/{s}{suffix}" for s in self.photos for suffix in ("_mask.png", ".png")]

    def outputs(self) -> list[str]:
        """Every final file: mask and RGBA per photo, the contact sheet, the summary."""
        return [*self.photo_files(), f"{OUT_DIR}/contact_sheet.jpg", f"{OUT_DIR}/summary.csv"]

    def require_photos(self) -> None:
        """ValueError saying how to give photos when there are none."""
        if not self.photos:
            raise ValueError("the cutouts target needs a folder of photos: snakemake --cores all "
                             "cutouts --config photos_dir=DIR")


def plan(config: dict[str, Any]) -> CutoutPlan:
    """The cut-out plan of a config: photos (when ``photos_dir`` is set), shards, models."""
    settings = config.get("cutouts") or {}
    photos = list_photos(config["photos_dir"]) if config.get("photos_dir") else {}
    braces = [path for stem, path in photos.items() if "{" in stem or "}" in stem]
    if braces:  # Snakemake reads braces in an output file's name as a wildcard
        raise DataError(f"{braces[0]}: the cutouts rule cannot name an output after a photo "
                        "whose name holds '{' or '}'; rename it, or cut the folder out with "
                        "`carvana-cutout DIR -o OUT`, which takes any name")
    source = cutout_source(config)
    return CutoutPlan(
        photos=photos,
        shards=shards(list(photos), int(settings.get("shard_size", 32))),
        source=source,
        models=chain_models(config, source),
        threshold=threshold_setting(config),
    )


# --- photos in, cut-outs out -----------------------------------------------------------------

def _write_png(path: Path, array: np.ndarray, mode: str) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(array, mode).save(tmp, format="PNG", compress_level=4)


def run_cutouts(*, photos: dict[str, str], segmenter: Segmenter, out_dir: str | Path,
                max_empty_fraction: float = 0.5, label: str = "") -> pd.DataFrame:
    """Write ``<stem>_mask.png`` and ``<stem>.png`` (RGBA) per photo and ``summary.csv``.

    A photo whose mask is empty is logged; when more than ``max_empty_fraction`` of the photos
    come out empty, GateError names them (the outputs would be useless).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    threshold = segmenter.chain.threshold
    for stem, path in tqdm(photos.items(), desc=f"cutouts {label or out}", mininterval=5):
        photo = read_photo(path)
        before = segmenter.fallbacks
        mask = segmenter.mask(photo)
        _write_png(out / f"{stem}_mask.png", mask, "L")
        _write_png(out / f"{stem}.png", np.dstack([photo, mask]), "RGBA")
        fraction = float(np.count_nonzero(mask)) / mask.size
        if fraction == 0:
            log.warning("%s: the mask is empty (no pixel >= %.3f)", path, threshold)
        rows.append((stem, photo.shape[1], photo.shape[0], round(fraction, 5), fraction == 0,
                     segmenter.fallbacks > before))
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


def cutouts_shard(*, photos: dict[str, str], chain_json: str, device: str,
                  max_empty_fraction: float, out_dir: str) -> None:
    """One shard of photos through the chain of ``chain_json`` (``results/chain.json``)."""
    from carvana.segmenter import Segmenter

    segmenter = Segmenter.from_results(Path(chain_json).parent, device=device)
    frame = run_cutouts(photos=photos, segmenter=segmenter, out_dir=out_dir,
                        max_empty_fraction=max_empty_fraction)
    log.info("%d photos with %s: %d empty masks, %d box fallbacks", len(frame),
             segmenter.describe(), int(frame["empty"].sum()), int(frame["box_fallback"].sum()))


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
