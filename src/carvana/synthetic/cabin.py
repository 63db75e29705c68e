"""The upper car: glasshouse with pillars, mirrors, antenna, roof rails and spoiler."""

from __future__ import annotations

import math

import numpy as np

from carvana.synthetic.frame import Frame
from carvana.synthetic.mesh import BLACK_TRIM, RGB, MeshBuilder

PILLAR = 0.06  # width of the pillar strip beside the glass


def _pillars(fr: Frame) -> list[float]:
    """x of the pillar edges, in pairs (B-pillar; and a D-pillar on SUVs)."""
    pillars = [fr.x_b + 0.045, fr.x_b - 0.045]
    if fr.car.body == "suv":
        pillars += [fr.x_rr + 0.32, fr.x_rr + 0.22]
    return pillars


def _cab_stations(fr: Frame, pillars: list[float]) -> list[tuple[float, float, float]]:
    """(x, base z, top z) of the cabin cross-sections from windshield base to rear glass base."""
    cab = [(fr.x_ws, float(fr.deck(fr.x_ws)), float(fr.deck(fr.x_ws)))]
    roof_pts = sorted(set(fr.roof_x.tolist() + pillars), reverse=True)
    for x in roof_pts:
        cab.append((x, float(fr.deck(x)), fr.roof_at(x)))
    cab.append((fr.x_rb, float(fr.deck(fr.x_rb)), float(fr.deck(fr.x_rb))))
    return cab


def _cab_section(fr: Frame, zbase: float, ztop: float) -> list[tuple[float, float]]:
    """A cabin cross-section, left to right, as (y, z): 7 points, 6 strips."""
    wb0, wt0, pa = fr.wb0, fr.wt0, PILLAR
    if ztop - zbase < 1e-6:  # a base station: the glass meets the deck
        return [
            (-wb0, zbase),
            (-wb0 + 1e-4, zbase),
            (-(wb0 - pa), zbase),
            (0.0, zbase),
            (wb0 - pa, zbase),
            (wb0 - 1e-4, zbase),
            (wb0, zbase),
        ]
    return [
        (-wb0, zbase),
        (-wt0, ztop),
        (-(wt0 - pa), ztop + 0.012),
        (0.0, ztop + 0.03),
        (wt0 - pa, ztop + 0.012),
        (wt0, ztop),
        (wb0, zbase),
    ]


def _is_pillar(xa: float, xb: float, pillars: list[float]) -> bool:
    """Whether the segment xa..xb is one of the pillar pairs."""
    return any(
        abs((xa + xb) / 2 - (pillars[k] + pillars[k + 1]) / 2) < 1e-6
        for k in range(0, len(pillars), 2)
    )


def _cab_look(fr: Frame, *, segment: str, strip: int, pillar: bool) -> tuple[RGB, str]:
    """(colour, material) of one cabin strip; ``segment`` is windshield, rear or middle."""
    car, paint = fr.car, fr.paint
    side = strip in (0, 5)
    top = strip in (2, 3)
    if segment == "windshield":
        return (car.glass, "glass") if (side or top) else (paint, "paint")
    if segment == "rear":
        return (car.glass, "glass") if top else (paint, "paint")
    if side:
        pillar_rgb = BLACK_TRIM if car.body != "suv" or car.black_trim else paint
        if pillar:
            return pillar_rgb, "dark" if pillar_rgb == BLACK_TRIM else "paint"
        return car.glass, "glass"
    return paint, "paint"


def add_cabin(mb: MeshBuilder, fr: Frame) -> None:
    """The glasshouse: windshield, side glass with pillars, roof and rear window."""
    pillars = _pillars(fr)
    cab = _cab_stations(fr, pillars)
    ref_cab = ((fr.x_ws + fr.x_rb) / 2, 0.0, fr.belt)
    secs = [_cab_section(fr, zb_, zt_) for _, zb_, zt_ in cab]
    n_seg = len(cab) - 1
    for i in range(n_seg):
        xa, xb2 = cab[i][0], cab[i + 1][0]
        sa, sb = secs[i], secs[i + 1]
        segment = "windshield" if i == 0 else "rear" if i == n_seg - 1 else "middle"
        pillar = _is_pillar(xa, xb2, pillars)
        for j in range(6):
            quad = [
                (xa, sa[j][0], sa[j][1]),
                (xa, sa[j + 1][0], sa[j + 1][1]),
                (xb2, sb[j + 1][0], sb[j + 1][1]),
                (xb2, sb[j][0], sb[j][1]),
            ]
            rgb, mat = _cab_look(fr, segment=segment, strip=j, pillar=pillar)
            side_glass = j in (0, 5) and mat == "glass"
            mb.add(quad, rgb, mat, ref_cab, nz_bias=0.25 if side_glass else 0.0)


def add_mirrors(mb: MeshBuilder, fr: Frame) -> None:
    """Door mirrors: housing, glass and stalk on each side."""
    car, w, belt = fr.car, fr.w, fr.belt
    mir_rgb = BLACK_TRIM if car.black_mirrors else fr.paint
    mir_mat = "dark" if car.black_mirrors else "paint"
    xm = fr.x_ws - 0.10
    for sign in (1.0, -1.0):
        y0 = w - 0.06
        o = (xm - 0.10, sign * y0 if sign > 0 else -(y0 + 0.19), belt + 0.05)
        mb.box(o, (0.10, 0, 0), (0, 0.19, 0), (0, 0, 0.11), mir_rgb, mir_mat)
        yg = (y0 + 0.10) * sign
        glass = [
            (xm - 0.104, yg - 0.075, belt + 0.062),
            (xm - 0.104, yg + 0.075, belt + 0.062),
            (xm - 0.104, yg + 0.075, belt + 0.148),
            (xm - 0.104, yg - 0.075, belt + 0.148),
        ]
        mb.add(glass, (0.3, 0.32, 0.35), "glass", (xm, yg, belt + 0.1))
        ys = (w - 0.16) if sign > 0 else -(w - 0.16 + 0.12)
        stalk = (xm - 0.07, ys, belt - 0.01)
        mb.box(stalk, (0.06, 0, 0), (0, 0.12, 0), (0, 0, 0.07), mir_rgb, mir_mat)


def _shark_fin(mb: MeshBuilder, xa: float, za: float) -> None:
    """A shark-fin antenna: two triangular sides and a top."""
    for sy in (-0.025, 0.025):
        side = [
            (xa + 0.06, sy, za - 0.03),
            (xa - 0.12, sy, za - 0.03),
            (xa - 0.10, sy * 0.6, za + 0.05),
        ]
        mb.add(side, BLACK_TRIM, "dark", (xa - 0.05, 0, za))
    top = [
        (xa + 0.06, -0.025, za - 0.03),
        (xa - 0.10, -0.015, za + 0.05),
        (xa - 0.10, 0.015, za + 0.05),
        (xa + 0.06, 0.025, za - 0.03),
    ]
    mb.add(top, BLACK_TRIM, "dark", (xa - 0.05, 0, za))


def add_antenna(mb: MeshBuilder, fr: Frame) -> None:
    """A tilted mast on a small base, or a shark fin, at the rear of the roof."""
    car = fr.car
    xa = fr.x_rr + 0.12
    za = fr.roof_at(xa) + 0.025
    if car.antenna != "mast":
        _shark_fin(mb, xa, za)
        return
    mb.box(
        (xa - 0.04, -0.015, za - 0.03),
        (0.07, 0, 0),
        (0, 0.03, 0),
        (0, 0, 0.035),
        BLACK_TRIM,
        "dark",
    )
    tilt = math.radians(car.antenna_tilt)
    axis = np.array([-math.sin(tilt), 0.0, math.cos(tilt)]) * car.antenna_len
    e = 0.0045
    ex = np.array([math.cos(tilt), 0.0, math.sin(tilt)]) * e
    mb.box(np.array([xa, -e / 2, za]) - ex / 2, ex, (0, e, 0), axis, (0.03, 0.03, 0.03), "dark")


def add_roof_rails(mb: MeshBuilder, fr: Frame) -> None:
    """Two roof rails, each a bar on two feet (if the car has them)."""
    if not fr.car.roof_rails:
        return
    x_rr, x_rf = fr.x_rr, fr.x_rf
    for sign in (1.0, -1.0):
        yr = sign * (fr.wt0 - 0.1)
        zr = fr.car.height + 0.005
        mb.box(
            (x_rr + 0.05, yr - 0.02, zr + 0.03),
            (x_rf - x_rr - 0.1, 0, 0),
            (0, 0.04, 0),
            (0, 0, 0.025),
            BLACK_TRIM,
            "dark",
        )
        for xp in (x_rr + 0.05, x_rf - 0.13):
            mb.box(
                (xp, yr - 0.02, zr - 0.01),
                (0.08, 0, 0),
                (0, 0.04, 0),
                (0, 0, 0.045),
                BLACK_TRIM,
                "dark",
            )


def add_spoiler(mb: MeshBuilder, fr: Frame) -> None:
    """A trunk-lid wing on two struts (sedan, coupe) or a roof spoiler (if the car has one)."""
    car, paint = fr.car, fr.paint
    if not car.has_spoiler:
        return
    sp_rgb = paint if car.color_name != "white" or car.black_trim else BLACK_TRIM
    sp_mat = "paint" if sp_rgb == paint else "dark"
    if car.body in ("sedan", "coupe"):
        xr_end = fr.xr_end
        zt = float(fr.deck(xr_end + 0.15))
        mb.box(
            (xr_end + 0.03, -0.42 * car.width, zt + 0.07),
            (0.2, 0, 0),
            (0, 0.84 * car.width, 0),
            (0, 0, 0.028),
            sp_rgb,
            sp_mat,
        )
        for sy in (-0.3, 0.3):
            mb.box(
                (xr_end + 0.08, sy * car.width - 0.02, zt - 0.01),
                (0.08, 0, 0),
                (0, 0.04, 0),
                (0, 0, 0.085),
                sp_rgb,
                sp_mat,
            )
    else:
        wt0 = fr.wt0
        mb.box(
            (fr.x_rr - 0.2, -(wt0 - 0.02), car.height - 0.05),
            (0.25, 0, 0),
            (0, 2 * (wt0 - 0.02), 0),
            (0, 0, 0.035),
            sp_rgb,
            sp_mat,
        )
