"""The whole car model, assembled part by part (the order fixes the face order, and so ties)."""

from __future__ import annotations

from functools import lru_cache

from carvana.synthetic.body import add_doors, add_ends, add_loft, add_side_panels, add_wheel_wells
from carvana.synthetic.cabin import (
    add_antenna,
    add_cabin,
    add_mirrors,
    add_roof_rails,
    add_spoiler,
)
from carvana.synthetic.config import CarSpec
from carvana.synthetic.frame import body_frame
from carvana.synthetic.mesh import Mesh, MeshBuilder, finish
from carvana.synthetic.wheels import add_wheels

# Every part in drawing order. The rasteriser keeps the first face on a depth tie, so this
# order is part of the output: reordering changes pixels.
PARTS = (
    add_loft,
    add_ends,
    add_side_panels,
    add_doors,
    add_wheel_wells,
    add_cabin,
    add_mirrors,
    add_antenna,
    add_roof_rails,
    add_spoiler,
)


@lru_cache(maxsize=32)
def car_mesh(car: CarSpec) -> Mesh:
    """Build the polygon model of a car (cached: the 16 angles share it)."""
    mb = MeshBuilder()
    fr = body_frame(car)
    for part in PARTS:
        part(mb, fr)
    return finish(mb, car, add_wheels(mb, fr))
