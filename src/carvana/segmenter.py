"""One trained chain, loaded once, that segments a photo of any size.

    seg = Segmenter.load("results")                     # or an exported bundle folder
    rgba = seg.cutout(read_photo("IMG 2031 (1).jpg"))  # carvana.photos.read_photo

The photo is resized to the data geometry the models were trained on, run through the chain
exactly as the test shards are (low-res models on the squashed photo, the box model's band,
the tile models with their depth channel, the ensemble, flips, probabilities rounded to 8 bits
between stages), and the map goes back to the photo's own size. Every forward pass runs on a
``carvana.backends`` runner: PyTorch, ONNX Runtime or OpenVINO, in fp32 or bf16. The cut-outs
rule, ``carvana-cutout``, ``carvana-serve`` and the throughput benchmark all use this class.
A Segmenter is not safe for concurrent calls: serialise them.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from carvana.backends import (
    BackendSpec,
    Runner,
    graph_runner,
    model_runner,
    probabilities,
    resolve,
)
from carvana.bbox import box_from_prob
from carvana.bundle import MANIFEST, read_bundle
from carvana.chain import Chain
from carvana.io import DataError, prob_levels, read_json, resize_prob
from carvana.tiling import (
    TileGeometry,
    band_cuts,
    cut_tiles,
    fill_box_rows,
    stitch,
    tile_rows,
)

log = logging.getLogger(__name__)

CHAIN_JSON = "chain.json"


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An image resized to (width, height): area averaging to shrink, bilinear to enlarge."""
    if image.shape[1::-1] == size:
        return image
    shrink = size[0] * size[1] < image.shape[0] * image.shape[1]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def quantize(prob: np.ndarray) -> np.ndarray:
    """Probabilities rounded to 8 bits, as the test chain stores them between stages."""
    return prob_levels(prob).astype(np.float32) / np.float32(255.0)


def _spec(chain: Chain, backend: str | None, precision: str | None,
          threads: int | None) -> BackendSpec:
    """What will run: the chain's backend and precision unless overridden, resolved for this
    machine (bf16 without native support runs fp32, with a warning)."""
    return resolve(BackendSpec(backend=backend or chain.backend,
                               precision=precision or chain.precision, threads=threads))


class Segmenter:
    """The chain ``chain`` with a runner per model; see the module docstring."""

    def __init__(self, chain: Chain, runners: dict[str, Runner], origin: str = "") -> None:
        missing = [m for m in chain.needed() if m not in runners]
        if missing:
            raise ValueError(f"the chain of {chain.source!r} needs runners for {missing}")
        self.chain, self.runners, self.origin = chain, runners, origin
        self.geom = TileGeometry(chain.size[0], chain.size[1], chain.tile) if chain.tile else None
        self.fallbacks = 0  # photos whose box model found no car (band centred instead)

    # --- loading ------------------------------------------------------------------------------

    @classmethod
    def load(cls, models: str | Path, source: str | None = None, *, backend: str | None = None,
             precision: str | None = None, threads: int | None = None) -> Segmenter:
        """A results folder (with ``chain.json``) or an exported bundle (``manifest.json``)."""
        folder = Path(models)
        if (folder / MANIFEST).is_file():
            return cls.from_bundle(folder, source, backend=backend, precision=precision,
                                   threads=threads)
        if (folder / CHAIN_JSON).is_file():
            return cls.from_results(folder, source, backend=backend, precision=precision,
                                    threads=threads)
        raise DataError(f"{folder}: neither a results folder (no {CHAIN_JSON}: run `snakemake "
                        f"--cores all submission` first) nor an exported bundle (no {MANIFEST}: "
                        "`snakemake --cores all export`)")

    @classmethod
    def from_results(cls, results: str | Path = "results", source: str | None = None, *,
                     backend: str | None = None, precision: str | None = None,
                     threads: int | None = None, device: str = "auto") -> Segmenter:
        """The chain of a workflow's ``results`` folder, its models read from their weights
        (``device``: auto, cpu or cuda, as the config's ``device``)."""
        folder = Path(results)
        chain = Chain.from_json(read_json(folder / CHAIN_JSON), str(folder / CHAIN_JSON))
        chain = chain.for_source(source)
        spec = _spec(chain, backend, precision, threads)
        runners = _live_runners(folder, chain, spec, device)
        log.info("segmenter %s from %s on %s %s", chain.source, folder, spec.backend,
                 spec.precision)
        return cls(replace(chain, backend=spec.backend, precision=spec.precision), runners,
                   origin=str(folder))

    @classmethod
    def from_bundle(cls, bundle: str | Path, source: str | None = None, *,
                    backend: str | None = None, precision: str | None = None,
                    threads: int | None = None) -> Segmenter:
        """An exported bundle: its manifest and every file's sha256 are checked first."""
        folder = Path(bundle)
        chain = read_bundle(folder).for_source(source)
        spec = _spec(chain, backend, precision, threads)
        runners: dict[str, Runner] = {}
        if spec.backend == "torch":
            runners = _live_runners(folder, chain, spec, "auto")
        else:
            for name in chain.needed():
                graph = chain.models[name].graph
                if not graph:
                    raise DataError(f"{folder / MANIFEST}: model {name!r} has no graph")
                runners[name] = graph_runner(folder / graph, spec)
        return cls(replace(chain, backend=spec.backend, precision=spec.precision), runners,
                   origin=str(folder))

    # --- use --------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """What runs: source, models, backend, precision, threshold, data size, flips."""
        chain = self.chain
        return {"source": chain.source, "models": chain.needed(), "members": chain.members,
                "backend": chain.backend, "precision": chain.precision,
                "threshold": chain.threshold, "size": list(chain.size),
                "tile": chain.tile, "tta_hflip": chain.tta_hflip, "origin": self.origin}

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """(H, W) uint8 levels 0..255 of the car, for an (H, W, 3) uint8 RGB photo of any size."""
        image = _check_image(image)
        prob = self.chain_probabilities(resize_image(image, self.chain.size))
        return prob_levels(resize_prob(prob, (image.shape[1], image.shape[0])))

    def mask(self, image: np.ndarray) -> np.ndarray:
        """(H, W) uint8 0/255: the car where the probability reaches the chain's threshold."""
        level = self.probabilities(image).astype(np.float32) / np.float32(255.0)
        return np.where(level >= np.float32(self.chain.threshold), 255, 0).astype(np.uint8)

    def cutout(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 4) uint8 RGBA: the photo with the mask as its alpha."""
        image = _check_image(image)
        return np.dstack([image, self.mask(image)])

    # --- the chain at the data geometry ---------------------------------------------------------

    def chain_probabilities(self, image: np.ndarray) -> np.ndarray:
        """(H, W) float32 probabilities (8-bit levels) of an image at the data geometry."""
        if image.shape[1::-1] != self.chain.size:
            raise ValueError(f"image {image.shape[1]}x{image.shape[0]}, the chain needs "
                             f"{self.chain.size[0]}x{self.chain.size[1]} (use probabilities())")
        cache: dict[str, np.ndarray] = {}
        if self.chain.source != "ensemble":
            return self._full(self.chain.source, image, cache)
        total = sum(self.chain.members.values())
        acc = np.zeros(image.shape[:2], np.float32)
        for member, weight in self.chain.members.items():
            if weight > 0:
                acc += (weight / total) * self._full(member, image, cache)
        return quantize(acc)

    def _predict(self, name: str, batch: np.ndarray) -> np.ndarray:
        """(N, H, W, C) uint8 -> (N, H, W) float32 probabilities, flips as configured."""
        x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255)
        return probabilities(self.runners[name], x, tta_hflip=self.chain.tta_hflip)

    def _lowres(self, name: str, image: np.ndarray, cache: dict[str, np.ndarray]) -> np.ndarray:
        """A low-res model's 8-bit probabilities at its own input size."""
        if name not in cache:
            size = self.chain.models[name].size
            assert size is not None
            small = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            cache[name] = quantize(self._predict(name, small[None])[0])
        return cache[name]

    def _band(self, image: np.ndarray, cache: dict[str, np.ndarray],
              geom: TileGeometry) -> tuple[tuple[int, int], tuple[int, int]]:
        """The tile band and the box's rows from the box model's prediction (a band centred on
        the photo and the whole photo when it finds no car), as the boxes stage makes them."""
        bbox = self.chain.bbox
        prob = self._lowres(str(bbox["model"]), image, cache)
        box = box_from_prob(prob, float(bbox["threshold"]), self.chain.size)
        margin = int(bbox["margin"])
        if box is None:
            log.warning("the box model %s finds no car; using a band centred on the photo",
                        bbox["model"])
            self.fallbacks += 1
            return tile_rows(0, geom.height, geom, margin), (0, geom.height)
        if band_cuts(box.r0, box.r1, geom, margin):
            log.warning("the car's box (rows %d-%d) is taller than the %d-row tile band: a "
                        "depth model takes the rows outside it from its low-res map, another "
                        "tile model leaves them 0", box.r0, box.r1, geom.tile)
        return tile_rows(box.r0, box.r1, geom, margin), box.rows

    def _full(self, name: str, image: np.ndarray, cache: dict[str, np.ndarray]) -> np.ndarray:
        """A model's probabilities at the data geometry."""
        entry = self.chain.models[name]
        if entry.input == "lowres":
            return resize_prob(self._lowres(name, image, cache), self.chain.size)
        assert self.geom is not None
        rows, box_rows = self._band(image, cache, self.geom)
        full, depth = image, None
        if entry.depth_from:
            depth = resize_prob(self._lowres(entry.depth_from, image, cache), self.chain.size)
            full = np.concatenate([image, np.rint(depth * 255).astype(np.uint8)[..., None]], 2)
        prob = stitch(self._predict(name, cut_tiles(full, rows, self.geom)), rows, self.geom)
        if depth is not None:  # the box's rows the band cut take the depth channel's map
            prob = fill_box_rows(prob, depth.astype(np.float32), rows, box_rows)
        return quantize(prob)


def _live_runners(folder: Path, chain: Chain, spec: BackendSpec, device: str
                  ) -> dict[str, Runner]:
    """Each model of the chain from its weights under ``folder`` (checked to be the model the
    chain names), on ``spec``'s runtime: the results folder's way, and a bundle's with torch."""
    from carvana.device import select_device
    from carvana.predict import load_model

    dev = select_device(device)
    runners: dict[str, Runner] = {}
    for name in chain.needed():
        entry = chain.models[name]
        model, _ = load_model(folder / entry.weights, dev, {
            "name": name, "input": entry.input, "in_channels": entry.in_channels})
        runners[name] = model_runner(model, spec, device=dev)
    return runners


def _check_image(image: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 array, else ValueError saying what was given."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} "
                         f"{image.shape} (read photos with carvana.photos.read_photo)")
    if min(image.shape[:2]) < 8:
        raise ValueError(f"a {image.shape[1]}x{image.shape[0]} image is too small to hold a car")
    return image
