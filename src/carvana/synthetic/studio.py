"""The Carvana studio behind the car: white wall with huge dark lettering, grey turntable with
seams, and the car's soft shadow."""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from carvana.synthetic.camera import Camera, Pose
from carvana.synthetic.config import CarSpec
from carvana.synthetic.mesh import Mesh


@lru_cache(maxsize=8)
def lettering(width: int, height: int) -> np.ndarray:
    """Alpha map (float32, H x W) of the huge 'CARVANA' lettering on the wall."""
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 6.0, 1
    glyphs = []
    for letter in "CARVANA":  # each letter alone, then spread evenly as on the studio wall
        canvas = np.zeros((200, 200), np.uint8)
        cv2.putText(canvas, letter, (20, 170), font, scale, 255, thick, cv2.LINE_AA)
        rows = np.flatnonzero(canvas.any(1))
        cols = np.flatnonzero(canvas.any(0))
        glyphs.append(canvas[rows[0] - 1 : rows[-1] + 2, cols[0] : cols[-1] + 1])
    gh = max(g.shape[0] for g in glyphs)
    gap = 0.3 * max(g.shape[1] for g in glyphs)
    total = sum(g.shape[1] for g in glyphs) + gap * (len(glyphs) - 1)
    canvas = np.zeros((gh, int(math.ceil(total)) + 1), np.uint8)
    x = 0.0
    for g in glyphs:
        canvas[gh - g.shape[0] :, round(x) : round(x) + g.shape[1]] = g
        x += g.shape[1] + gap
    x0, x1 = round(0.065 * width), round(0.935 * width)
    y0, y1 = round(0.195 * height), round(0.372 * height)
    small = cv2.resize(canvas, (max(1, x1 - x0), max(1, y1 - y0)), interpolation=cv2.INTER_AREA)
    alpha = np.zeros((height, width), np.float32)
    alpha[y0:y1, x0:x1] = small.astype(np.float32) / 255.0
    return alpha


def horizon(width: int, height: int) -> np.ndarray:
    """Row (float) of the wall/floor boundary for each column."""
    t = (np.arange(width) + 0.5) / width * 2 - 1
    return height * (0.372 + 0.018 * t * t)


def _wall_and_floor(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(luminance H x W float32 of the bare studio with lettering, floor mask H x W)."""
    rows = np.arange(height, dtype=np.float32)[:, None]
    hz = horizon(width, height).astype(np.float32)[None, :]
    wall_v = 236.0 + 8.0 * np.clip(rows / max(hz.min(), 1.0), 0, 1)
    floor_t = np.clip((rows - hz) / (height - hz), 0, 1)
    floor_v = 146.0 + 32.0 * floor_t
    is_floor = rows >= hz
    edge = np.clip(rows - hz + 0.5, 0, 1)  # anti-aliased wall/floor edge
    lum = wall_v * (1 - edge) + floor_v * edge
    alpha = lettering(width, height)
    return lum * (1 - alpha) + 64.0 * alpha, is_floor


def _seams(cam: Camera, psi: float) -> np.ndarray:
    """Turntable rings and radial seams (uint8, full size), drawn at a reduced scale."""
    width, height = cam.width, cam.height
    ds = 2 if max(width, height) > 800 else 1
    sw, sh = (width + ds - 1) // ds, (height + ds - 1) // ds
    seam = np.zeros((sh, sw), np.uint8)
    sc = 16.0 / ds

    def proj(pts: np.ndarray) -> np.ndarray:
        return np.round((cam.project(pts) + 0.5) * sc - 0.5 * 16).astype(np.int32)

    t = np.linspace(0, 2 * np.pi, 181)
    thick = max(1, round(height / 700 / ds))
    for radius, val in ((2.95, 255), (4.7, 200)):
        ring = np.stack([radius * np.cos(t), radius * np.sin(t), np.zeros_like(t)], 1)
        cv2.polylines(seam, [proj(ring)], True, val, thick, cv2.LINE_AA, shift=4)
    for k in range(8):
        a = psi + k * np.pi / 4 + 0.3
        line = np.array(
            [[0.5 * math.cos(a), 0.5 * math.sin(a), 0], [2.95 * math.cos(a), 2.95 * math.sin(a), 0]]
        )
        cv2.polylines(seam, [proj(line)], False, 90, thick, cv2.LINE_AA, shift=4)
    return cv2.resize(seam, (width, height), interpolation=cv2.INTER_LINEAR)


def _shadow(cam: Camera, pose: Pose, mesh: Mesh) -> np.ndarray:
    """Shadow strength (float32, full size, 0..0.82): a soft footprint plus tyre contacts."""
    width, height = cam.width, cam.height
    sd = 4 if max(width, height) > 400 else 2
    shw, shh = (width + sd - 1) // sd, (height + sd - 1) // sd
    shadow = np.zeros((shh, shw), np.float32)
    ssc = 16.0 / sd

    def sproj(pts_car: np.ndarray) -> np.ndarray:
        return np.round((cam.project(pose.to_world(pts_car)) + 0.5) * ssc - 0.5 * 16).astype(
            np.int32
        )

    g = mesh.ground_pts
    cv2.fillPoly(shadow, [sproj(g * [1.05, 1.1, 1])], 0.55, cv2.LINE_AA, shift=4)
    blur = max(0.6, 0.045 * height / sd)
    shadow = cv2.GaussianBlur(shadow, (0, 0), blur)
    core = np.zeros_like(shadow)
    cv2.fillPoly(core, [sproj(g * [0.88, 0.8, 1])], 0.45, cv2.LINE_AA, shift=4)
    for c in mesh.wheels:
        tyre = np.array(
            [
                c + (dx, dy, -c[2])
                for dx, dy in ((0.22, 0.1), (-0.22, 0.1), (-0.22, -0.1), (0.22, -0.1))
            ]
        )
        cv2.fillPoly(core, [sproj(tyre)], 0.6, cv2.LINE_AA, shift=4)
    core = cv2.GaussianBlur(core, (0, 0), max(0.5, 0.012 * height / sd))
    shadow = np.clip(shadow + core, 0, 0.82)
    return cv2.resize(shadow, (width, height), interpolation=cv2.INTER_LINEAR)


def background(car: CarSpec, mesh: Mesh, cam: Camera, pose: Pose) -> np.ndarray:
    """The studio (float32 H x W x 3, 0..255) with turntable seams and the car's shadow."""
    lum, is_floor = _wall_and_floor(cam.width, cam.height)
    shadow = _shadow(cam, pose, mesh)
    seam_f = _seams(cam, pose.psi)
    dark = (1.0 - 0.22 * seam_f.astype(np.float32) / 255.0) * (1.0 - shadow)
    lum = np.where(is_floor, lum * dark, lum)
    tint_floor = np.array([0.975, 1.0, 1.025], np.float32)
    tint_wall = np.array([1.0, 1.0, 0.995], np.float32)
    col = np.where(is_floor[..., None], tint_floor, tint_wall)
    img = lum[..., None] * col * (car.exposure * np.asarray(car.tint, np.float32))
    return img.astype(np.float32)
