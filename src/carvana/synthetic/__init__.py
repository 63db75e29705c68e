"""A deterministic synthetic Carvana data set in the exact Kaggle layout.

Each car is a small 3-D model (lofted body with wheel arches, cabin with glass and pillars,
wheels with rims, mirrors, antenna, optional spoiler, lights) rendered with a perspective camera
at the 16 turntable angles in front of the Carvana studio (white wall with huge dark lettering
at roof height, grey turntable with seams, soft shadow). Faces are rasterised with a z-buffer at
twice the resolution and averaged down, so the image edges are anti-aliased and the mask (the
union of all car parts, coverage >= 0.5) agrees with the image pixel for pixel.

Modules, each importing only those above it:

- ``config``: :class:`SyntheticConfig` and :class:`CarSpec`;
- ``specs``: car and image ids, and the random car specifications;
- ``mesh``: the polygon builder and the finished :class:`~carvana.synthetic.mesh.Mesh`;
- ``frame``: a car's body frame (stations, heights, body-side profile);
- ``body``, ``cabin``, ``wheels``: one function per car part;
- ``build``: the whole car model, part by part;
- ``camera``, ``studio``, ``render``: camera and pose, background, rasteriser;
- ``dataset``: writing the Kaggle layout; ``cli``: the ``carvana-synthetic`` command.

Output is byte-identical for the same seed (``tests/test_synthetic.py`` holds checksums).
"""

from carvana.synthetic.cli import main
from carvana.synthetic.config import N_ANGLES, CarSpec, SyntheticConfig
from carvana.synthetic.dataset import generate
from carvana.synthetic.render import render_car
from carvana.synthetic.specs import car_specs, make_car, synthetic_ids

__all__ = [
    "N_ANGLES",
    "CarSpec",
    "SyntheticConfig",
    "car_specs",
    "generate",
    "main",
    "make_car",
    "render_car",
    "synthetic_ids",
]
