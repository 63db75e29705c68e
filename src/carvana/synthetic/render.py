"""Render one car at one turntable angle: shading, a 2x z-buffer rasteriser and compositing.

Faces are rasterised at twice the resolution and averaged down, so the image edges are
anti-aliased and the mask (coverage >= 0.5) agrees with the image pixel for pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from carvana.synthetic.build import car_mesh
from carvana.synthetic.camera import Camera, Pose, studio_camera, turntable_pose
from carvana.synthetic.config import N_ANGLES, CarSpec
from carvana.synthetic.mesh import Mesh
from carvana.synthetic.studio import background

GRAIN = 1.6  # standard deviation of the sensor noise (grey levels)


@dataclass(frozen=True, eq=False)
class _Placed:
    """A mesh posed in the world and projected: what the rasteriser needs."""

    starts: np.ndarray  # (F + 1,) first vertex of each face
    u2: np.ndarray  # (N, 2) vertices in 2x pixel coordinates (pixel centres at integers)
    centroids: np.ndarray  # (F, 3) world
    normals: np.ndarray  # (F, 3) world
    visible: np.ndarray  # (F,) front-facing or double-sided


@dataclass(frozen=True)
class _Box:
    """The car's bounding box in 1x pixels: columns x0..x1, rows y0..y1 (end exclusive)."""

    x0: int
    x1: int
    y0: int
    y1: int


def shade(mesh: Mesh, pose: Pose, cw: np.ndarray, cam: Camera, car: CarSpec) -> np.ndarray:
    """Per-face colour (F x 3, 0..255): Lambert + studio environment reflection + specular."""
    n = mesh.shade_normals @ pose.rot.T
    v = cam.pos - cw
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ndv = np.sum(n * v, axis=1)
    flip = ndv < 0  # double-sided faces seen from behind
    n[flip] *= -1
    ndv = np.abs(ndv)
    lights = [(np.array([0.15, -0.55, 0.82]), 0.42), (np.array([0.0, 0.0, 1.0]), 0.18)]
    diffuse = np.full(len(n), 0.62)
    spec = np.zeros(len(n))
    for lv, k in lights:
        lv = lv / np.linalg.norm(lv)
        diffuse += k * np.clip(n @ lv, 0, None)
        h = lv + v
        h /= np.linalg.norm(h, axis=1, keepdims=True)
        spec += k * np.clip(np.sum(n * h, axis=1), 0, None) ** mesh.shininess
    r = -v + 2 * ndv[:, None] * n
    rz = r[:, 2]
    env = 0.58 + (0.93 - 0.58) * np.clip((rz + 0.06) / 0.1, 0, 1)
    env = env + (0.80 - 0.93) * np.clip((rz - 0.45) / 0.35, 0, 1)
    fres = mesh.refl + (1 - mesh.refl) * 0.35 * (1 - ndv) ** 5
    col = mesh.albedo * (diffuse * (1 - fres))[:, None] + (fres * env)[:, None]
    col = col + (mesh.spec * spec)[:, None] * 1.2
    col = col * car.exposure * np.asarray(car.tint)
    return np.clip(col * 255.0, 0, 255).astype(np.float32)


def _bbox(uv: np.ndarray, width: int, height: int) -> _Box:
    """The projected vertices' bounding box with a small margin, clipped to the image."""
    return _Box(
        x0=max(0, int(math.floor(uv[:, 0].min())) - 2),
        x1=min(width, int(math.ceil(uv[:, 0].max())) + 3),
        y0=max(0, int(math.floor(uv[:, 1].min())) - 2),
        y1=min(height, int(math.ceil(uv[:, 1].max())) + 3),
    )


def _rasterise(placed: _Placed, cam: Camera, box: _Box) -> np.ndarray:
    """Face index (-1 for none) of every 2x pixel of ``box``: nearest face wins, first on ties."""
    h2, w2 = 2 * (box.y1 - box.y0), 2 * (box.x1 - box.x0)
    ox, oy = 2 * box.x0, 2 * box.y0
    zbuf = np.zeros((h2, w2), np.float32)
    idbuf = np.full((h2, w2), -1, np.int32)
    # plane of each face in camera coordinates: 1/z is affine in pixel coordinates
    nc = placed.normals @ cam.rot.T
    cc = cam.to_cam(placed.centroids)
    d = np.sum(nc * cc, axis=1)
    f2, cx2, cy2 = 2 * cam.f, 2 * cam.cx + 0.5, 2 * cam.cy + 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        ka = nc[:, 0] / (f2 * d)
        kb = nc[:, 1] / (f2 * d)
        kc = (nc[:, 2] - nc[:, 0] * cx2 / f2 - nc[:, 1] * cy2 / f2) / d
    starts = placed.starts
    for fi in np.flatnonzero(placed.visible & (np.abs(d) > 1e-9)):
        p = placed.u2[starts[fi] : starts[fi + 1]] - (ox, oy)
        fx0 = max(0, int(math.floor(p[:, 0].min())))
        fx1 = min(w2, int(math.ceil(p[:, 0].max())) + 1)
        fy0 = max(0, int(math.floor(p[:, 1].min())))
        fy1 = min(h2, int(math.ceil(p[:, 1].max())) + 1)
        if fx1 <= fx0 or fy1 <= fy0:
            continue
        local = np.zeros((fy1 - fy0, fx1 - fx0), np.uint8)
        pts = np.round((p - (fx0, fy0)) * 16).astype(np.int32)
        cv2.fillPoly(local, [pts], 1, cv2.LINE_8, shift=4)
        xs = np.arange(fx0 + ox, fx1 + ox, dtype=np.float32) * np.float32(ka[fi])
        ys = np.arange(fy0 + oy, fy1 + oy, dtype=np.float32) * np.float32(kb[fi])
        iz = ys[:, None] + (xs + np.float32(kc[fi]))[None, :]
        zsub = zbuf[fy0:fy1, fx0:fx1]
        upd = (local != 0) & (iz > zsub)
        zsub[upd] = iz[upd]
        idbuf[fy0:fy1, fx0:fx1][upd] = fi
    return idbuf


def _composite(
    img: np.ndarray, mask: np.ndarray, idbuf: np.ndarray, colors: np.ndarray, box: _Box
) -> None:
    """Average the 2x face colours down over ``img`` in place; set ``mask`` where covered."""
    table = np.zeros((len(colors) + 1, 3), np.float32)
    table[1:] = colors
    col2 = table[idbuf + 1]
    cov2 = (idbuf >= 0).astype(np.float32)
    size = (box.x1 - box.x0, box.y1 - box.y0)
    premult = cv2.resize(col2, size, interpolation=cv2.INTER_AREA)
    cov = cv2.resize(cov2, size, interpolation=cv2.INTER_AREA)
    region = img[box.y0 : box.y1, box.x0 : box.x1]
    img[box.y0 : box.y1, box.x0 : box.x1] = region * (1.0 - cov[..., None]) + premult
    mask[box.y0 : box.y1, box.x0 : box.x1] = cov >= 0.5


def render_car(
    car: CarSpec, angle: int, width: int, height: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(image H x W x 3 uint8 RGB, mask H x W uint8 {0,1}) of one car at turntable angle 1..16."""
    if not 1 <= angle <= N_ANGLES:
        raise ValueError(f"angle must be 1..{N_ANGLES}, got {angle}")
    if width < 16 or height < 16:
        raise ValueError(f"image size {width}x{height} is too small")
    mesh = car_mesh(car)
    cam = studio_camera(width, height)
    pose = turntable_pose(car, angle, rng)
    vw = pose.to_world(mesh.verts)
    cw = pose.to_world(mesh.centroids)
    nw = mesh.normals @ pose.rot.T
    visible = mesh.double | (np.sum(nw * (cam.pos - cw), axis=1) > 1e-9)
    colors = shade(mesh, pose, cw, cam, car)
    uv = cam.project(vw)
    placed = _Placed(starts=mesh.starts, u2=2 * uv + 0.5, centroids=cw, normals=nw, visible=visible)
    box = _bbox(uv, width, height)
    img = background(car, mesh, cam, pose)
    mask = np.zeros((height, width), np.uint8)
    if box.x1 > box.x0 and box.y1 > box.y0:
        _composite(img, mask, _rasterise(placed, cam, box), colors, box)
    grain = rng.standard_normal((height, width), dtype=np.float32) * np.float32(GRAIN)
    img += grain[..., None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask
