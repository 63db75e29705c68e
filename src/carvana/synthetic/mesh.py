"""Polygon mesh primitives: a builder of planar faces with materials, and the finished mesh."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from carvana.synthetic.config import CarSpec

RGB = tuple[float, float, float]

# material: (reflectance, specular strength, shininess)
MATERIALS = {
    "paint": (0.06, 0.30, 40.0),
    "glass": (0.10, 0.45, 80.0),
    "tire": (0.015, 0.03, 8.0),
    "rim": (0.30, 0.35, 30.0),
    "dark": (0.03, 0.05, 10.0),
    "light": (0.30, 0.60, 60.0),
    "plate": (0.04, 0.10, 20.0),
}
DARK: RGB = (0.05, 0.05, 0.055)
BLACK_TRIM: RGB = (0.07, 0.07, 0.075)


class MeshBuilder:
    """Collects planar polygons (car coordinates: x forward, y left, z up) with materials."""

    def __init__(self) -> None:
        self.faces: list[np.ndarray] = []
        self.normals: list[np.ndarray] = []
        self.albedo: list[RGB] = []
        self.mats: list[str] = []
        self.double: list[bool] = []
        self.nz_bias: list[float] = []

    def add(
        self,
        pts: Iterable,
        rgb: RGB,
        mat: str,
        ref: Iterable,
        *,
        double: bool = False,
        nz_bias: float = 0.0,
    ) -> None:
        """Add a polygon; its normal is oriented away from the interior point ``ref``."""
        p = np.asarray(pts, dtype=np.float64)
        n = np.zeros(3)
        q = np.roll(p, -1, axis=0)
        n[0] = np.sum((p[:, 1] - q[:, 1]) * (p[:, 2] + q[:, 2]))
        n[1] = np.sum((p[:, 2] - q[:, 2]) * (p[:, 0] + q[:, 0]))
        n[2] = np.sum((p[:, 0] - q[:, 0]) * (p[:, 1] + q[:, 1]))
        norm = np.linalg.norm(n)
        if norm < 1e-12:
            return
        n /= norm
        if np.dot(n, p.mean(axis=0) - np.asarray(ref, dtype=np.float64)) < 0:
            n = -n
        self.faces.append(p)
        self.normals.append(n)
        self.albedo.append(rgb)
        self.mats.append(mat)
        self.double.append(double)
        self.nz_bias.append(nz_bias)

    def box(
        self, origin: Iterable, ex: Iterable, ey: Iterable, ez: Iterable, rgb: RGB, mat: str
    ) -> None:
        """A parallelepiped spanned by three edge vectors from ``origin``."""
        o, a, b, c = (np.asarray(v, dtype=np.float64) for v in (origin, ex, ey, ez))
        centre = o + (a + b + c) / 2
        quads = [
            [o, o + b, o + b + c, o + c],  # -x
            [o + a, o + a + b, o + a + b + c, o + a + c],  # +x
            [o, o + a, o + a + c, o + c],  # -y
            [o + b, o + a + b, o + a + b + c, o + b + c],  # +y
            [o, o + a, o + a + b, o + b],  # -z
            [o + c, o + a + c, o + a + b + c, o + b + c],  # +z
        ]
        for quad in quads:
            self.add(quad, rgb, mat, centre)


@dataclass(frozen=True)
class Mesh:
    """A finished car model: flat vertex list, per-face normals, materials and shadow anchors."""

    verts: np.ndarray  # (N, 3)
    starts: np.ndarray  # (F + 1,)
    normals: np.ndarray  # (F, 3)
    shade_normals: np.ndarray  # (F, 3)
    centroids: np.ndarray  # (F, 3)
    albedo: np.ndarray  # (F, 3)
    refl: np.ndarray
    spec: np.ndarray
    shininess: np.ndarray
    double: np.ndarray
    ground_pts: np.ndarray  # footprint polygon for the shadow (car coordinates)
    wheels: np.ndarray  # (4, 3) wheel centres


def smooth(t: np.ndarray | float) -> np.ndarray | float:
    """Ease-out ramp on [0, 1]: 1 - (1 - t)^2 of t clipped to [0, 1]."""
    return 1.0 - (1.0 - np.clip(t, 0.0, 1.0)) ** 2


def disc(x: float, y: float, z: float, radius: float, m: int) -> np.ndarray:
    """An m-gon of ``radius`` around (x, y, z) in the plane y = const."""
    a = np.linspace(0, 2 * np.pi, m, endpoint=False)
    return np.stack([x + radius * np.cos(a), np.full(m, y), z + radius * np.sin(a)], 1)


def finish(mb: MeshBuilder, car: CarSpec, wheels: list[np.ndarray]) -> Mesh:
    """Pack the builder's faces into a :class:`Mesh` with material constants and a footprint."""
    faces = mb.faces
    starts = np.cumsum([0] + [len(f) for f in faces])
    normals = np.array(mb.normals)
    sn = normals.copy()
    sn[:, 2] += np.array(mb.nz_bias)
    sn /= np.linalg.norm(sn, axis=1, keepdims=True)
    mats = [MATERIALS[m] for m in mb.mats]
    hx, hy = car.length / 2 + 0.12, car.width / 2 + 0.08
    return Mesh(
        verts=np.concatenate(faces),
        starts=starts,
        normals=normals,
        shade_normals=sn,
        centroids=np.array([f.mean(axis=0) for f in faces]),
        albedo=np.array(mb.albedo, dtype=np.float64),
        refl=np.array([m[0] for m in mats])
        * np.where(np.array(mb.mats) == "paint", 1.0 + 2.0 * car.metallic, 1.0),
        spec=np.array([m[1] for m in mats]),
        shininess=np.array([m[2] for m in mats]),
        double=np.array(mb.double),
        ground_pts=np.array([(hx, hy, 0), (-hx, hy, 0), (-hx, -hy, 0), (hx, -hy, 0)]),
        wheels=np.array(wheels),
    )
