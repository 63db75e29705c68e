"""The prediction chain of a trained workflow, as data: which models run, how they connect,
the data geometry, the ensemble's weights, the box settings, flips and the threshold.

``results/chain.json`` (written by the ``chain`` rule from the config) and an exported bundle's
``manifest.json`` both hold one ``Chain``; ``carvana.segmenter`` runs it. Light: no torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from carvana.io import DataError

CHAIN_FORMAT = "carvana-chain/1"
INPUTS = ("lowres", "tiles")


def lowres_hw(size: int | list[int] | tuple[int, int]) -> tuple[int, int]:
    """A low-res model's input (height, width): ``size`` is a side (square) or [height, width].

    >>> lowres_hw(128), lowres_hw([320, 480])
    ((128, 128), (320, 480))
    """
    if isinstance(size, int) and not isinstance(size, bool):
        return size, size
    height, width = (int(s) for s in size)
    return height, width


def needed_models(source: str, *, members: dict[str, float | None],
                  tile_models: dict[str, str | None], box_model: str | None) -> list[str]:
    """Every model the chain of ``source`` (a model, or ``ensemble`` of ``members``) runs, in
    run order: for a tile model (``tile_models`` maps each to its depth source or None) the box
    model and its depth source first. A member of weight 0 does not run (None: not chosen
    yet, so it may). The one rule for the DAG's plan and the segmenter."""
    direct = ([m for m, w in members.items() if w is None or w > 0] if source == "ensemble"
              else [source])
    needed: list[str] = []
    for name in direct:
        if name in tile_models:
            needed += [m for m in (box_model, tile_models[name]) if m]
        needed.append(name)
    return list(dict.fromkeys(needed))


@dataclass(frozen=True)
class ChainModel:
    """One trained model of a chain: its input kind, channels, low-res size (height, width)
    or tile side, the low-res model that feeds its depth channel, and its weights file
    (relative to the results folder or the bundle)."""

    name: str
    input: str
    in_channels: int
    weights: str
    size: tuple[int, int] | None = None
    tile: int | None = None
    depth_from: str | None = None
    params_hash: str | None = None
    graph: str | None = None

    def __post_init__(self) -> None:
        if self.input not in INPUTS:
            raise ValueError(f"model {self.name!r}: input {self.input!r} is not one of {INPUTS}")
        if self.input == "lowres" and not self.size:
            raise ValueError(f"low-res model {self.name!r} needs its size (height, width)")
        if self.input == "tiles" and not self.tile:
            raise ValueError(f"tile model {self.name!r} needs its tile side")

    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one input of this model."""
        if self.input == "lowres":
            assert self.size is not None
            return self.in_channels, int(self.size[0]), int(self.size[1])
        assert self.tile is not None
        return self.in_channels, int(self.tile), int(self.tile)


@dataclass(frozen=True)
class Chain:
    """What turns a photo at the data geometry ``size`` (width, height) into probabilities.

    ``source`` is a model name or ``ensemble`` (then ``members`` maps model -> weight);
    ``bbox`` holds the box model, its threshold and margin (tile models only); ``tile`` is the
    tile side at the data geometry (None without tile models). ``thresholds`` holds other
    sources' thresholds (each one's best on validation) when the setting is ``best``;
    ``backend`` and ``precision`` are the ones the workflow predicted with.
    """

    source: str
    size: tuple[int, int]
    models: dict[str, ChainModel]
    threshold: float
    tta_hflip: bool = False
    tile: int | None = None
    members: dict[str, float] = field(default_factory=dict)
    bbox: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    backend: str = "torch"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        missing = [m for m in self.needed() if m not in self.models]
        if missing:
            raise ValueError(f"the chain of {self.source!r} needs model(s) {missing}, which it "
                             f"does not describe (it has {sorted(self.models)})")
        if self.source == "ensemble" and sum(self.members.values()) <= 0:
            raise ValueError("ensemble weights must add up to more than 0")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"threshold {self.threshold} is not in [0, 1]")

    def sources(self) -> list[str]:
        """Every source this chain can run: its models, and ``ensemble`` when it has members."""
        return [*self.models, *(["ensemble"] if self.members else [])]

    def needed(self, source: str | None = None) -> list[str]:
        """Every model the chain of ``source`` (default: this chain's) runs, in run order."""
        tiles = {n: m.depth_from for n, m in self.models.items() if m.input == "tiles"}
        return needed_models(source or self.source, members=self.members, tile_models=tiles,
                             box_model=self.bbox.get("model"))

    def for_source(self, source: str | None, threshold: float | None = None) -> Chain:
        """This chain narrowed to ``source`` (None: unchanged) and its models; ValueError
        naming the sources there are when ``source`` is not one of them."""
        if source is None or source == self.source:
            return self if threshold is None else replace(self, threshold=threshold)
        if source not in self.sources():
            raise ValueError(f"source {source!r} is not in this chain; choose one of "
                             f"{self.sources()}")
        keep = self.needed(source)
        chosen = self.thresholds.get(source, self.threshold) if threshold is None else threshold
        return replace(self, source=source, models={m: self.models[m] for m in keep},
                       members=self.members if source == "ensemble" else {},
                       threshold=chosen)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (``from_json`` reads it back)."""
        out = asdict(self)
        out["format"] = CHAIN_FORMAT
        out["size"] = list(self.size)
        for model in out["models"].values():
            model["size"] = list(model["size"]) if model["size"] else None
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> Chain:
        """A Chain from ``to_json``'s dict; DataError naming ``where`` when it is not one."""
        if not isinstance(data, dict) or data.get("format") != CHAIN_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise DataError(f"{where}: not a {CHAIN_FORMAT} chain (format {found!r}); rewrite "
                            "it with this version (snakemake --forcerun chain, or export again)")
        try:
            models = {name: ChainModel(**{**m, "size": tuple(m["size"]) if m.get("size")
                                          else None})
                      for name, m in data["models"].items()}
            fields = {k: v for k, v in data.items() if k not in ("format", "models", "size")}
            return cls(models=models, size=(int(data["size"][0]), int(data["size"][1])),
                       **fields)
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{where}: not a valid chain ({type(err).__name__}: {err})") from None
