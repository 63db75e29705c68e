"""The body frame of one car: stations along its length, heights, and the body-side profile.

Every car part is placed relative to this frame (car coordinates: x forward, y left, z up,
metres, the origin under the middle of the car on the floor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from carvana.synthetic.config import CarSpec
from carvana.synthetic.mesh import BLACK_TRIM, RGB, smooth

SHOULDER_DROP = 0.055  # the body side ends this far below the deck edge
UPPER_SLOPE = -0.10  # inward slope of the upper band
Station = tuple[float, float, float]  # (x, plan-view scale, bottom z) of a body cross-section


@dataclass(frozen=True, eq=False)
class Frame:
    """Lengthwise stations, heights and widths derived from a :class:`CarSpec`."""

    car: CarSpec
    paint: RGB
    trim: RGB  # lower band, bumper strip: black plastic or paint
    w: float  # half width
    xf_end: float  # front end
    xr_end: float  # rear end
    zb: float  # underbody (ground clearance)
    x_ws: float  # windshield base
    x_rf: float  # roof front
    x_rr: float  # roof rear
    x_rb: float  # rear glass base
    x_b: float  # B-pillar
    belt: float
    nose_h: float
    tail_h: float
    arches: tuple[float, float]  # front and rear wheel x
    rw: float  # wheel radius
    ra: float  # arch radius
    zc_arch: float  # arch centre height
    x_f: float  # where the nose loft starts
    x_t: float  # where the tail loft starts
    z1: float  # top of the lower band
    z2: float  # top of the middle band
    ref_body: tuple[float, float, float]  # a point inside the body
    nose: list[Station]
    tail: list[Station]
    main_x: list[float]  # main-body stations, front to back
    wb0: float  # cabin half width at the deck
    wt0: float  # cabin half width at the roof
    roof_x: np.ndarray
    roof_z: list[float]

    def deck(self, x: np.ndarray | float) -> np.ndarray:
        """Height of the deck (hood, beltline, trunk) at x."""
        x = np.asarray(x, dtype=np.float64)
        t_h = (self.xf_end - x) / max(self.car.hood_len, 1e-3)
        hood = self.nose_h + (self.belt - self.nose_h) * smooth(t_h)
        t_t = (self.x_rb - x) / max(self.x_rb - self.xr_end, 1e-3)
        trunk = self.belt + (self.tail_h - self.belt) * np.clip(t_t, 0, 1) ** 2
        return np.where(x > self.x_ws, hood, np.where(x < self.x_rb, trunk, self.belt))

    def side_y(self, z: np.ndarray | float) -> np.ndarray:
        """Half-width of the body side at height z (before plan-view narrowing)."""
        z = np.asarray(z, dtype=np.float64)
        w, zb, z1, z2 = self.w, self.zb, self.z1, self.z2
        lower = np.interp(z, [zb, z1, z2], [w - 0.05, w - 0.012, w])
        return np.where(z > z2, w + UPPER_SLOPE * (z - z2), lower)

    def section(self, x: float, scale: float, zb_x: float) -> list[tuple[float, float]]:
        """Right half of a body cross-section, bottom to top, as (y, z)."""
        zt = float(self.deck(x))
        zs = zt - SHOULDER_DROP
        return [
            (float(self.side_y(self.zb)) * scale, zb_x),
            (float(self.side_y(self.z1)) * scale, self.z1),
            (float(self.side_y(self.z2)) * scale, self.z2),
            (float(self.side_y(zs)) * scale, zs),
            ((self.w - 0.13) * scale, zt),
            (0.0, zt + 0.02),
        ]

    def roof_at(self, x: float) -> float:
        """Roof height at x (within the roof)."""
        return float(np.interp(-x, -self.roof_x, self.roof_z))


def _loft_stations(x0: float, x1: float, narrow: float, lift: float, zb: float) -> list[Station]:
    """Stations of a loft from x0 to x1 that narrows (plan view) and lifts towards x1."""
    out = []
    for t in (0.0, 0.35, 0.65, 0.88, 1.0):
        x = x0 + (x1 - x0) * t
        s = narrow + (1 - narrow) * math.sqrt(max(0.0, 1 - t * t))
        out.append((x, s, zb + lift * t))
    return out


def _main_stations(x_t: float, x_f: float, extra: list[float]) -> list[float]:
    """Main-body stations from x_f back to x_t, about 0.3 m apart, plus the ``extra`` ones."""
    n_main = max(3, int(math.ceil((x_f - x_t) / 0.3)))
    main_x = sorted(set(np.linspace(x_t, x_f, n_main + 1).tolist() + extra), reverse=True)
    return [x for x in main_x if x_t <= x <= x_f]


def body_frame(car: CarSpec) -> Frame:
    """Derive the frame of ``car``."""
    w, zb = car.width / 2, car.clearance
    xf_end, xr_end = car.length / 2, -car.length / 2
    x_ws = xf_end - car.hood_len
    x_rf = x_ws - car.windshield_run
    x_rr = x_rf - car.roof_len
    x_rb = max(x_rr - car.rear_glass_run, xr_end + 0.08)
    xw_f = xf_end - car.front_overhang
    xw_r = xw_f - car.wheelbase
    ra = car.wheel_radius + 0.065
    x_f = xf_end - min(0.38, car.front_overhang - ra - 0.06)
    x_t = xr_end + min(0.38, (xw_r - xr_end) - ra - 0.06)
    sd = SHOULDER_DROP
    z2 = min(car.belt - 0.24, car.nose_height - sd - 0.09, car.tail_height - sd - 0.09)
    h = car.height
    wb0 = w - 0.15
    return Frame(
        car=car,
        paint=car.color,
        trim=BLACK_TRIM if car.black_trim else car.color,
        w=w,
        xf_end=xf_end,
        xr_end=xr_end,
        zb=zb,
        x_ws=x_ws,
        x_rf=x_rf,
        x_rr=x_rr,
        x_rb=x_rb,
        x_b=x_rf - 0.45 * car.roof_len,
        belt=car.belt,
        nose_h=car.nose_height,
        tail_h=car.tail_height,
        arches=(xw_f, xw_r),
        rw=car.wheel_radius,
        ra=ra,
        zc_arch=car.wheel_radius + 0.02,
        x_f=x_f,
        x_t=x_t,
        z1=zb + 0.45 * (z2 - zb),
        z2=z2,
        ref_body=(0.0, 0.0, (zb + car.belt) / 2),
        nose=_loft_stations(x_f, xf_end, 0.84, 0.05, zb),
        tail=_loft_stations(x_t, xr_end, 0.88, 0.07, zb),
        main_x=_main_stations(x_t, x_f, [x_ws, x_rb]),
        wb0=wb0,
        wt0=wb0 - car.tumblehome,
        roof_x=np.linspace(x_rf, x_rr, 5),
        roof_z=[h - 0.035, h - 0.005, h, h - 0.005, h - 0.03],
    )
