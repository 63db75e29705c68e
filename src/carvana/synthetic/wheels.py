"""Wheels: a tyre cylinder with a rim, spoke holes and a hub cap as decals on its outer face."""

from __future__ import annotations

import math

import numpy as np

from carvana.synthetic.frame import Frame
from carvana.synthetic.mesh import MeshBuilder, disc

N_SIDES = 20  # polygon sides of a tyre


def _tyre(mb: MeshBuilder, fr: Frame, *, xw: float, yo: float, yi: float, c: np.ndarray) -> None:
    """Outer and inner tyre walls and the tread between them."""
    n, rw = N_SIDES, fr.rw
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.stack([xw + rw * np.cos(th), np.zeros(n), rw + rw * np.sin(th)], 1)
    outer = ring.copy()
    outer[:, 1] = yo
    inner = ring.copy()
    inner[:, 1] = yi
    mb.add(outer, (0.07, 0.07, 0.075), "tire", c)
    mb.add(inner, (0.05, 0.05, 0.055), "tire", c)
    for k in range(n):
        k2 = (k + 1) % n
        mb.add([outer[k], outer[k2], inner[k2], inner[k]], (0.045, 0.045, 0.048), "tire", c)


def _rim(mb: MeshBuilder, fr: Frame, *, xw: float, yo: float, sign: float, c: np.ndarray) -> None:
    """Rim disc, dark holes between the spokes, and the hub cap, stacked outwards."""
    car, rw = fr.car, fr.rw
    rr = rw * car.rim_ratio
    mb.add(disc(xw, yo + sign * 0.006, rw, rr, N_SIDES), car.rim_color, "rim", c)
    step = 2 * np.pi / car.spokes
    hole_w = step * (0.62 if car.spokes < 10 else 0.45)
    phase0 = (xw * 7.3) % step
    y = yo + sign * 0.011
    for k in range(car.spokes):
        a = np.linspace(0, hole_w, 5) + phase0 + k * step
        r_in, r_out = 0.38 * rr, 0.9 * rr
        pts = [(xw + r_out * math.cos(t), y, rw + r_out * math.sin(t)) for t in a]
        pts += [(xw + r_in * math.cos(t), y, rw + r_in * math.sin(t)) for t in a[::-1]]
        mb.add(pts, (0.06, 0.06, 0.065), "dark", c)
    cap_rgb = tuple(x * 0.8 for x in car.rim_color)
    mb.add(disc(xw, yo + sign * 0.016, rw, 0.22 * rr, 8), cap_rgb, "rim", c)


def add_wheels(mb: MeshBuilder, fr: Frame) -> list[np.ndarray]:
    """The four wheels; return their centres (front left, front right, rear left, rear right)."""
    centres = []
    for xw in fr.arches:
        for sign in (1.0, -1.0):
            yo = sign * (fr.w - 0.045)
            yi = yo - sign * fr.car.tire_width
            c = np.array([xw, (yo + yi) / 2, fr.rw])
            centres.append(c)
            _tyre(mb, fr, xw=xw, yo=yo, yi=yi, c=c)
            _rim(mb, fr, xw=xw, yo=yo, sign=sign, c=c)
    return centres
