"""The lower body: lofted nose and tail, end panels with lights, side panels, doors, wheel wells."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from carvana.synthetic.frame import SHOULDER_DROP, Frame
from carvana.synthetic.mesh import DARK, RGB, MeshBuilder

BAND_BIAS = [-0.45, -0.12, 0.18, 0.6, 0.0]  # shading-normal lift of the five bands, bottom up


def _band_rgb(fr: Frame) -> list[RGB]:
    """Colour of the five bands of a cross-section, bottom up: trim, then paint."""
    return [fr.trim, fr.paint, fr.paint, fr.paint, fr.paint]


def _band_mat(fr: Frame, j: int) -> str:
    """Material of band ``j``: the lowest band is plastic on black-trim cars."""
    return "dark" if (j == 0 and fr.car.black_trim) else "paint"


def add_loft(mb: MeshBuilder, fr: Frame) -> None:
    """Nose and tail lofts in full, and the upper (deck) bands of the main body."""
    stations = fr.nose[::-1] + [(x, 1.0, fr.zb) for x in fr.main_x[1:-1]] + fr.tail
    sections = [fr.section(x, s, z) for x, s, z in stations]
    band_rgb = _band_rgb(fr)
    main_lo, main_hi = fr.x_t, fr.x_f
    for i in range(len(stations) - 1):
        xa, xb_ = stations[i][0], stations[i + 1][0]
        in_main = main_lo - 1e-9 <= min(xa, xb_) and max(xa, xb_) <= main_hi + 1e-9
        sa, sb = sections[i], sections[i + 1]
        for j in range(5):
            if in_main and j < 3:
                continue  # the side bands of the main body are single planar polygons
            for sign in (1.0, -1.0):
                quad = [
                    (xa, sign * sa[j][0], sa[j][1]),
                    (xa, sign * sa[j + 1][0], sa[j + 1][1]),
                    (xb_, sign * sb[j + 1][0], sb[j + 1][1]),
                    (xb_, sign * sb[j][0], sb[j][1]),
                ]
                mb.add(quad, band_rgb[j], _band_mat(fr, j), fr.ref_body, nz_bias=BAND_BIAS[j])


@dataclass(frozen=True)
class _End:
    """Where the decals of one end panel go: two depths in front of it, its width and heights."""

    xd: float  # lights, grille and strips
    xd2: float  # inner headlight, plate
    wn: float  # half width at the middle band
    zt: float  # deck height
    zb: float  # bottom


def _quad(x: float, corners: list[tuple[float, float]]) -> list[tuple[float, float, float]]:
    """A polygon in the plane x = const from (y, z) corners."""
    return [(x, y, z) for y, z in corners]


def _headlights(mb: MeshBuilder, fr: Frame, e: _End) -> None:
    """Two headlights, each an outer lens with a brighter inner lamp."""
    wn, zt = e.wn, e.zt
    for sy in (1.0, -1.0):
        outer = [(0.52, -0.20), (0.94, -0.13), (0.94, -0.035), (0.50, -0.05)]
        inner = [(0.60, -0.16), (0.86, -0.11), (0.86, -0.06), (0.60, -0.07)]
        mb.add(
            _quad(e.xd, [(sy * a * wn, zt + dz) for a, dz in outer]),
            (0.55, 0.57, 0.60),
            "light",
            fr.ref_body,
        )
        mb.add(
            _quad(e.xd2, [(sy * a * wn, zt + dz) for a, dz in inner]),
            (0.85, 0.87, 0.9),
            "light",
            fr.ref_body,
        )


def _tail_lights(mb: MeshBuilder, fr: Frame, e: _End) -> None:
    """Two red tail lights."""
    wn, zt = e.wn, e.zt
    for sy in (1.0, -1.0):
        corners = [(0.55, -0.19), (0.97, -0.17), (0.97, -0.03), (0.55, -0.06)]
        mb.add(
            _quad(e.xd, [(sy * a * wn, zt + dz) for a, dz in corners]),
            (0.55, 0.04, 0.05),
            "light",
            fr.ref_body,
        )


def _grille(mb: MeshBuilder, fr: Frame, e: _End) -> float:
    """Grille and lower intake; return the plate's bottom height."""
    wn, zt, zbe = e.wn, e.zt, e.zb
    grille = [
        (-0.42 * wn, zt - 0.27),
        (0.42 * wn, zt - 0.27),
        (0.45 * wn, zt - 0.06),
        (-0.45 * wn, zt - 0.06),
    ]
    intake = [
        (-0.62 * wn, zbe + 0.05),
        (0.62 * wn, zbe + 0.05),
        (0.58 * wn, zbe + 0.15),
        (-0.58 * wn, zbe + 0.15),
    ]
    mb.add(_quad(e.xd, grille), DARK, "dark", fr.ref_body)
    mb.add(_quad(e.xd, intake), DARK, "dark", fr.ref_body)
    return zbe + 0.17


def _rear_strip(mb: MeshBuilder, fr: Frame, e: _End) -> float:
    """The rear bumper strip; return the plate's bottom height."""
    wn, zt, zbe = e.wn, e.zt, e.zb
    strip = [
        (-0.8 * wn, zbe + 0.02),
        (0.8 * wn, zbe + 0.02),
        (0.8 * wn, zbe + 0.09),
        (-0.8 * wn, zbe + 0.09),
    ]
    mb.add(_quad(e.xd, strip), fr.trim, "dark" if fr.car.black_trim else "paint", fr.ref_body)
    return max(zbe + 0.2, zt - 0.32)


def add_ends(mb: MeshBuilder, fr: Frame) -> None:
    """Front fascia and rear panel with lights, grille, bumper strip and number plates."""
    for (xe, s, zbe), sign_x in ((fr.nose[-1][:3], 1.0), (fr.tail[-1][:3], -1.0)):
        sec = fr.section(xe, s, zbe)
        poly = [(xe, p[0], p[1]) for p in sec] + [(xe, -p[0], p[1]) for p in sec[::-1]]
        mb.add(poly, fr.paint, "paint", fr.ref_body)
        e = _End(
            xd=xe + sign_x * 0.006, xd2=xe + sign_x * 0.012, wn=sec[2][0], zt=sec[-2][1], zb=zbe
        )
        if sign_x > 0:
            _headlights(mb, fr, e)
            zp = _grille(mb, fr, e)
        else:
            _tail_lights(mb, fr, e)
            zp = _rear_strip(mb, fr, e)
        plate = [(-0.16, zp), (0.16, zp), (0.16, zp + 0.15), (-0.16, zp + 0.15)]
        mb.add(_quad(e.xd2, plate), (0.88, 0.88, 0.9), "plate", fr.ref_body)


def _arch_top(fr: Frame, x: np.ndarray) -> np.ndarray:
    """Height of the wheel-arch cut-out at each x (-inf where there is no arch)."""
    out = np.full(x.shape, -np.inf)
    for xw in fr.arches:
        dx = x - xw
        inside = np.abs(dx) < fr.ra
        out[inside] = np.maximum(out[inside], fr.zc_arch + np.sqrt(fr.ra * fr.ra - dx[inside] ** 2))
    return out


def _side_xs(fr: Frame) -> np.ndarray:
    """Sorted x samples of the main-body side: stations, arch outlines, band/arch crossings."""
    ra, zc = fr.ra, fr.zc_arch
    xs = [np.linspace(fr.x_t, fr.x_f, 9), np.asarray(fr.main_x)]
    for xw in fr.arches:
        xs.append(xw + ra * np.cos(np.linspace(0, np.pi, 25)))
        for zl in (fr.zb, fr.z1, fr.z2):
            if abs(zl - zc) < ra:
                dx = math.sqrt(ra * ra - (zl - zc) ** 2)
                xs.append(np.array([xw - dx, xw + dx]))
    return np.unique(np.clip(np.concatenate(xs), fr.x_t, fr.x_f))


def _runs(ok: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True, widened by one sample on both sides."""
    runs = []
    i = 0
    while i < len(ok):
        if ok[i]:
            k = i
            while k + 1 < len(ok) and ok[k + 1]:
                k += 1
            runs.append((max(i - 1, 0), min(k + 1, len(ok) - 1)))
            i = k + 1
        else:
            i += 1
    return runs


def add_side_panels(mb: MeshBuilder, fr: Frame) -> None:
    """The three side bands of the main body: planar polygons with the wheel arches cut out."""
    xs_all = _side_xs(fr)
    zs_top = fr.deck(xs_all) - SHOULDER_DROP
    cz = _arch_top(fr, xs_all)
    band_rgb = _band_rgb(fr)
    bands = [
        (fr.zb, np.full_like(xs_all, fr.z1)),
        (fr.z1, np.full_like(xs_all, fr.z2)),
        (fr.z2, zs_top),
    ]
    for j, (zlo, upper) in enumerate(bands):
        lower = np.maximum(zlo, cz)
        for a, b in _runs(upper - lower > 1e-6):
            idx = np.arange(a, b + 1)
            lo = np.minimum(lower[idx], upper[idx])
            pts_xz = [(xs_all[m], upper[m]) for m in idx] + [
                (xs_all[m], lo[n]) for n, m in list(enumerate(idx))[::-1]
            ]
            for sign in (1.0, -1.0):
                poly = [(x, sign * float(fr.side_y(z)), z) for x, z in pts_xz]
                ref = (float(np.mean(xs_all[idx])), 0.0, float(np.mean(lo)))
                mb.add(poly, band_rgb[j], _band_mat(fr, j), ref, nz_bias=BAND_BIAS[j])


def add_doors(mb: MeshBuilder, fr: Frame) -> None:
    """Door gaps and handles: thin decals just outside the side bands."""
    car, paint = fr.car, fr.paint
    gap = (0.2, 0.2, 0.2) if np.mean(paint) > 0.3 else (0.02, 0.02, 0.02)
    door_x = [fr.x_ws - 0.05, fr.x_b] + ([fr.x_rr + 0.05] if car.body != "coupe" else [])
    z1, z2 = fr.z1, fr.z2
    for sign in (1.0, -1.0):
        for xd in door_x:
            if any(abs(xd - xw) < fr.ra + 0.02 for xw in fr.arches):
                continue
            zdeck = float(fr.deck(xd)) - SHOULDER_DROP - 0.01
            for zlo, zhi in ((max(z1, fr.zb + 0.04), z2), (z2, zdeck)):
                corners = [
                    (xd - 0.006, zlo),
                    (xd + 0.006, zlo),
                    (xd + 0.006, zhi),
                    (xd - 0.006, zhi),
                ]
                pts = [(x, sign * (float(fr.side_y(z)) + 0.004), z) for x, z in corners]
                mb.add(pts, gap, "dark", (xd, 0.0, (zlo + zhi) / 2))
        for xd in door_x[1:]:
            zh = z2 + 0.04
            corners = [
                (xd - 0.2, zh),
                (xd - 0.06, zh),
                (xd - 0.06, zh + 0.035),
                (xd - 0.2, zh + 0.035),
            ]
            pts = [(x, sign * (float(fr.side_y(z)) + 0.006), z) for x, z in corners]
            mb.add(pts, tuple(c * 0.8 for c in paint), "paint", (xd, 0.0, zh), nz_bias=0.3)


def add_wheel_wells(mb: MeshBuilder, fr: Frame) -> None:
    """Dark wheel wells: an inner wall and the arch lining, both double-sided."""
    ra, zc = fr.ra, fr.zc_arch
    for xw in fr.arches:
        th = np.linspace(0, np.pi, 17)
        arc = [(xw + ra * math.cos(t), zc + ra * math.sin(t)) for t in th]
        arc = [(x, z) for x, z in arc if z >= fr.zb - 1e-9] or arc
        for sign in (1.0, -1.0):
            inner = fr.w - 0.34
            well = [(x, sign * inner, z) for x, z in arc] + [
                (arc[-1][0], sign * inner, fr.zb - 0.03),
                (arc[0][0], sign * inner, fr.zb - 0.03),
            ]
            mb.add(well, (0.025, 0.025, 0.028), "dark", (xw, 0.0, zc), double=True)
            for (xa, za), (xb2, zb2) in zip(arc[:-1], arc[1:], strict=True):
                ya, yb = float(fr.side_y(za)) - 0.002, float(fr.side_y(zb2)) - 0.002
                lining = [
                    (xa, sign * ya, za),
                    (xb2, sign * yb, zb2),
                    (xb2, sign * inner, zb2),
                    (xa, sign * inner, za),
                ]
                mb.add(lining, (0.03, 0.03, 0.033), "dark", (xw, 0.0, zc), double=True)
