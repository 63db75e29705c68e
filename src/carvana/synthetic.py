"""A deterministic synthetic Carvana data set in the exact Kaggle layout.

Each car is a small 3-D model (lofted body with wheel arches, cabin with glass and pillars,
wheels with rims, mirrors, antenna, optional spoiler, lights) rendered with a perspective camera
at the 16 turntable angles in front of the Carvana studio (white wall with huge dark lettering
at roof height, grey turntable with seams, soft shadow). Faces are rasterised with a z-buffer at
twice the resolution and averaged down, so the image edges are anti-aliased and the mask (the
union of all car parts, coverage >= 0.5) agrees with the image pixel for pixel.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from carvana import ids as ids_mod
from carvana import io as cio
from carvana import rle

N_ANGLES = ids_mod.N_ANGLES
_TRAIN, _TEST = 0, 1


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate: how many cars, the image size and the seed everything derives from."""

    seed: int = 7
    train_cars: int = 16
    test_cars: int = 6
    width: int = 480
    height: int = 320
    jpeg_quality: int = 92


@dataclass(frozen=True)
class CarSpec:
    """One invented car: body type, paint, dimensions (metres) and studio lighting."""

    car_id: str
    body: str  # sedan | hatchback | suv | coupe
    color_name: str
    color: tuple[float, float, float]  # albedo, sRGB in [0, 1]
    metallic: float
    length: float
    width: float
    height: float
    clearance: float
    belt: float  # beltline (deck) height at the cabin
    nose_height: float
    tail_height: float
    hood_len: float  # front to windshield base
    windshield_run: float
    roof_len: float
    rear_glass_run: float
    tumblehome: float
    front_overhang: float
    wheelbase: float
    wheel_radius: float
    tire_width: float
    rim_ratio: float
    rim_color: tuple[float, float, float]
    spokes: int
    glass: tuple[float, float, float]
    black_mirrors: bool
    black_trim: bool
    antenna: str  # mast | fin
    antenna_len: float
    antenna_tilt: float  # degrees back from vertical
    has_spoiler: bool
    roof_rails: bool
    offset: tuple[float, float]  # position on the turntable (m)
    yaw: float  # degrees the car sits off-axis on the turntable
    exposure: float
    tint: tuple[float, float, float]
    year: int
    make: str
    model: str
    trim1: str
    trim2: str


# --------------------------------------------------------------------------------------------
# ids and car specifications
# --------------------------------------------------------------------------------------------

_PALETTE: list[tuple[str, tuple[float, float, float], float, float]] = [
    # name, albedo, weight, metallic: white and silver/light grey together about 40 %
    ("white", (0.93, 0.93, 0.92), 0.24, 0.10),
    ("silver", (0.74, 0.75, 0.77), 0.12, 0.55),
    ("light grey", (0.60, 0.61, 0.62), 0.05, 0.45),
    ("black", (0.045, 0.045, 0.05), 0.16, 0.30),
    ("dark grey", (0.25, 0.26, 0.27), 0.11, 0.50),
    ("red", (0.62, 0.06, 0.07), 0.09, 0.25),
    ("maroon", (0.33, 0.05, 0.07), 0.02, 0.45),
    ("blue", (0.12, 0.24, 0.55), 0.07, 0.45),
    ("dark blue", (0.06, 0.09, 0.24), 0.03, 0.45),
    ("green", (0.12, 0.29, 0.18), 0.015, 0.35),
    ("beige", (0.70, 0.63, 0.48), 0.02, 0.40),
    ("brown", (0.34, 0.23, 0.15), 0.015, 0.45),
    ("orange", (0.86, 0.38, 0.08), 0.005, 0.20),
    ("yellow", (0.88, 0.74, 0.12), 0.005, 0.15),
]

_MODELS: dict[str, list[tuple[str, str]]] = {
    "sedan": [
        ("Honda", "Accord"),
        ("Toyota", "Camry"),
        ("Nissan", "Altima"),
        ("Hyundai", "Sonata"),
        ("Ford", "Fusion"),
        ("Chevrolet", "Malibu"),
        ("Kia", "Optima"),
        ("Volkswagen", "Passat"),
        ("BMW", "3 Series"),
    ],
    "suv": [
        ("Toyota", "RAV4"),
        ("Honda", "CR-V"),
        ("Ford", "Escape"),
        ("Jeep", "Cherokee"),
        ("Chevrolet", "Equinox"),
        ("Nissan", "Rogue"),
        ("Hyundai", "Santa Fe"),
        ("Subaru", "Forester"),
    ],
    "hatchback": [
        ("Honda", "Fit"),
        ("Volkswagen", "Golf"),
        ("Ford", "Focus"),
        ("Mazda", "Mazda3"),
        ("Toyota", "Prius"),
        ("Chevrolet", "Sonic"),
    ],
    "coupe": [
        ("Ford", "Mustang"),
        ("Chevrolet", "Camaro"),
        ("Honda", "Civic"),
        ("BMW", "4 Series"),
        ("Audi", "A5"),
    ],
}
_TRIM1 = ["LX", "EX", "SE", "S", "LE", "XLE", "Sport", "Limited", "Touring", "SV", "Base"]
_TRIM2 = ["", "", "", "w/Nav", "AWD", "FWD", "Hybrid", "w/Tech Package", "w/Sunroof"]


def _car_id(seed: int, split: int, index: int, attempt: int) -> str:
    rng = np.random.default_rng([seed, split, index, 0, attempt])
    return f"{int(rng.integers(0, 2**48)):012x}"


def _car_ids(cfg: SyntheticConfig) -> tuple[list[str], list[str]]:
    """Car ids (12 hex chars) of the train and test cars, in car-index order, all distinct."""
    seen: set[str] = set()
    out: tuple[list[str], list[str]] = ([], [])
    for split, count in ((_TRAIN, cfg.train_cars), (_TEST, cfg.test_cars)):
        for index in range(count):
            attempt = 0
            cid = _car_id(cfg.seed, split, index, attempt)
            while cid in seen:  # astronomically rare; redrawn deterministically
                attempt += 1
                cid = _car_id(cfg.seed, split, index, attempt)
            seen.add(cid)
            out[split].append(cid)
    return out


def synthetic_ids(cfg: SyntheticConfig) -> tuple[list[str], list[str]]:
    """Train and test image ids (sorted), deterministic from ``cfg.seed``; renders nothing."""
    train_cars, test_cars = _car_ids(cfg)

    def expand(cars: list[str]) -> list[str]:
        return sorted(f"{c}_{a:02d}" for c in cars for a in range(1, N_ANGLES + 1))

    return expand(train_cars), expand(test_cars)


def make_car(car_id: str, rng: np.random.Generator) -> CarSpec:
    """Draw one car's specification from ``rng``."""
    u = rng.uniform
    body = str(rng.choice(["sedan", "suv", "hatchback", "coupe"], p=[0.4, 0.35, 0.15, 0.1]))
    weights = np.array([p[2] for p in _PALETTE])
    name, base, _, metallic = _PALETTE[int(rng.choice(len(_PALETTE), p=weights / weights.sum()))]
    jitter = (1.0 + u(-0.015, 0.015, 3)) * u(0.95, 1.03)
    color = tuple(float(np.clip(c * j, 0.0, 1.0)) for c, j in zip(base, jitter, strict=True))
    if body == "sedan":
        length, width, height = u(4.5, 5.0), u(1.78, 1.88), u(1.40, 1.50)
        clearance, belt, wheel_r = u(0.14, 0.17), u(0.94, 1.0), u(0.31, 0.34)
        nose, tail = belt - u(0.16, 0.22), belt + u(-0.02, 0.03)
        hood, wsr, roof, rg = u(1.25, 1.45), u(0.75, 0.95), u(1.0, 1.25), u(0.6, 0.8)
        foh = u(0.88, 1.0)
    elif body == "suv":
        length, width, height = u(4.4, 4.95), u(1.82, 1.95), u(1.64, 1.80)
        clearance, belt, wheel_r = u(0.19, 0.23), u(1.08, 1.18), u(0.35, 0.39)
        nose, tail = belt - u(0.12, 0.18), belt - u(0.0, 0.06)
        hood, wsr, rg = u(1.1, 1.3), u(0.6, 0.8), u(0.12, 0.28)
        foh = u(0.85, 0.98)
        roof = length - hood - wsr - rg - u(0.08, 0.16)
    elif body == "hatchback":
        length, width, height = u(4.0, 4.4), u(1.70, 1.80), u(1.42, 1.54)
        clearance, belt, wheel_r = u(0.14, 0.17), u(0.92, 1.0), u(0.30, 0.33)
        nose, tail = belt - u(0.16, 0.22), belt - u(0.02, 0.08)
        hood, wsr, rg = u(1.0, 1.2), u(0.75, 0.9), u(0.3, 0.45)
        foh = u(0.80, 0.92)
        roof = length - hood - wsr - rg - u(0.1, 0.2)
    else:  # coupe
        length, width, height = u(4.4, 4.85), u(1.80, 1.90), u(1.30, 1.40)
        clearance, belt, wheel_r = u(0.12, 0.15), u(0.90, 0.96), u(0.32, 0.35)
        nose, tail = belt - u(0.18, 0.24), belt + u(-0.02, 0.02)
        hood, wsr, roof, rg = u(1.35, 1.6), u(0.9, 1.05), u(0.7, 0.9), u(0.9, 1.1)
        foh = u(0.9, 1.02)
    roh = u(0.8, 0.95) if body in ("suv", "hatchback") else u(0.95, 1.12)
    wheelbase = length - foh - roh
    dark_rims = rng.random() < 0.2
    rim = (u(0.10, 0.2),) * 3 if dark_rims else (u(0.62, 0.8),) * 3
    g = u(0.10, 0.22)
    glass = (g * u(0.9, 1.0), g * u(0.95, 1.02), g * u(1.0, 1.12))
    make, model = _MODELS[body][int(rng.integers(len(_MODELS[body])))]
    antenna = "mast" if rng.random() < 0.6 else "fin"
    return CarSpec(
        car_id=car_id,
        body=body,
        color_name=name,
        color=color,
        metallic=metallic,
        length=length,
        width=width,
        height=height,
        clearance=clearance,
        belt=belt,
        nose_height=nose,
        tail_height=tail,
        hood_len=hood,
        windshield_run=wsr,
        roof_len=roof,
        rear_glass_run=rg,
        tumblehome=u(0.14, 0.22),
        front_overhang=foh,
        wheelbase=wheelbase,
        wheel_radius=wheel_r,
        tire_width=u(0.20, 0.26),
        rim_ratio=u(0.62, 0.74),
        rim_color=tuple(float(c) for c in rim),
        spokes=int(rng.choice([5, 5, 6, 7, 10])),
        glass=tuple(float(c) for c in glass),
        black_mirrors=bool(rng.random() < 0.3),
        black_trim=bool(body == "suv" and rng.random() < 0.6),
        antenna=antenna,
        antenna_len=u(0.25, 0.65) if antenna == "mast" else 0.0,
        antenna_tilt=u(15.0, 35.0),
        has_spoiler=bool(rng.random() < 0.25),
        roof_rails=bool(body == "suv" and rng.random() < 0.5),
        offset=(u(-0.15, 0.15), u(-0.12, 0.12)),
        yaw=u(-2.5, 2.5),
        exposure=u(0.97, 1.03),
        tint=tuple(float(t) for t in 1.0 + u(-0.012, 0.012, 3)),
        year=int(rng.integers(2008, 2018)),
        make=make,
        model=model,
        trim1=str(rng.choice(_TRIM1)),
        trim2=str(rng.choice(_TRIM2)),
    )


def _cars(cfg: SyntheticConfig) -> list[tuple[int, int, CarSpec]]:
    """(split, index, spec) of every car; each spec depends only on (seed, split, index)."""
    train_ids, test_ids = _car_ids(cfg)
    out = []
    for split, cars in ((_TRAIN, train_ids), (_TEST, test_ids)):
        for index, cid in enumerate(cars):
            out.append(
                (split, index, make_car(cid, np.random.default_rng([cfg.seed, split, index, 1])))
            )
    return out


# --------------------------------------------------------------------------------------------
# the 3-D model
# --------------------------------------------------------------------------------------------

# material: (reflectance, specular strength, shininess)
_MATERIALS = {
    "paint": (0.06, 0.30, 40.0),
    "glass": (0.10, 0.45, 80.0),
    "tire": (0.015, 0.03, 8.0),
    "rim": (0.30, 0.35, 30.0),
    "dark": (0.03, 0.05, 10.0),
    "light": (0.30, 0.60, 60.0),
    "plate": (0.04, 0.10, 20.0),
}
_DARK = (0.05, 0.05, 0.055)
_BLACK_TRIM = (0.07, 0.07, 0.075)


class _MeshBuilder:
    """Collects planar polygons (car coordinates: x forward, y left, z up) with materials."""

    def __init__(self) -> None:
        self.faces: list[np.ndarray] = []
        self.normals: list[np.ndarray] = []
        self.albedo: list[tuple[float, float, float]] = []
        self.mats: list[str] = []
        self.double: list[bool] = []
        self.nz_bias: list[float] = []

    def add(
        self,
        pts: Iterable,
        rgb: tuple[float, float, float],
        mat: str,
        ref: Iterable,
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
        self,
        origin: Iterable,
        ex: Iterable,
        ey: Iterable,
        ez: Iterable,
        rgb: tuple[float, float, float],
        mat: str,
        skip: tuple[str, ...] = (),
    ) -> None:
        """A parallelepiped spanned by three edge vectors from ``origin``."""
        o, a, b, c = (np.asarray(v, dtype=np.float64) for v in (origin, ex, ey, ez))
        centre = o + (a + b + c) / 2
        quads = {
            "-x": [o, o + b, o + b + c, o + c],
            "+x": [o + a, o + a + b, o + a + b + c, o + a + c],
            "-y": [o, o + a, o + a + c, o + c],
            "+y": [o + b, o + a + b, o + a + b + c, o + b + c],
            "-z": [o, o + a, o + a + b, o + b],
            "+z": [o + c, o + a + c, o + a + b + c, o + b + c],
        }
        for key, quad in quads.items():
            if key not in skip:
                self.add(quad, rgb, mat, centre)


@dataclass(frozen=True)
class _Mesh:
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


def _smooth(t: np.ndarray | float) -> np.ndarray | float:
    return 1.0 - (1.0 - np.clip(t, 0.0, 1.0)) ** 2


def _disc(x: float, y: float, z: float, radius: float, m: int) -> np.ndarray:
    """An m-gon of ``radius`` around (x, y, z) in the plane y = const."""
    a = np.linspace(0, 2 * np.pi, m, endpoint=False)
    return np.stack([x + radius * np.cos(a), np.full(m, y), z + radius * np.sin(a)], 1)


@lru_cache(maxsize=32)
def _car_mesh(car: CarSpec) -> _Mesh:
    """Build the polygon model of a car (cached: the 16 angles share it)."""
    mb = _MeshBuilder()
    paint = car.color
    L, w = car.length, car.width / 2
    xf_end, xr_end = L / 2, -L / 2
    zb = car.clearance
    x_ws = xf_end - car.hood_len
    x_rf = x_ws - car.windshield_run
    x_rr = x_rf - car.roof_len
    x_rb = max(x_rr - car.rear_glass_run, xr_end + 0.08)
    belt, nose_h, tail_h = car.belt, car.nose_height, car.tail_height
    sd = 0.055  # shoulder drop below the deck edge

    def deck(x: np.ndarray | float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        t_h = (xf_end - x) / max(car.hood_len, 1e-3)
        hood = nose_h + (belt - nose_h) * _smooth(t_h)
        t_t = (x_rb - x) / max(x_rb - xr_end, 1e-3)
        trunk = belt + (tail_h - belt) * np.clip(t_t, 0, 1) ** 2
        return np.where(x > x_ws, hood, np.where(x < x_rb, trunk, belt))

    # wheels and arches
    xw_f = xf_end - car.front_overhang
    xw_r = xw_f - car.wheelbase
    rw = car.wheel_radius
    ra = rw + 0.065
    zc_arch = rw + 0.02
    arches = (xw_f, xw_r)
    r_nose = min(0.38, car.front_overhang - ra - 0.06)
    r_tail = min(0.38, (xw_r - xr_end) - ra - 0.06)
    x_f, x_t = xf_end - r_nose, xr_end + r_tail
    z2 = min(belt - 0.24, nose_h - sd - 0.09, tail_h - sd - 0.09)
    z1 = zb + 0.45 * (z2 - zb)
    k3 = -0.10  # inward slope of the upper band

    def side_y(z: np.ndarray | float) -> np.ndarray:
        """Half-width of the body side at height z (before plan-view narrowing)."""
        z = np.asarray(z, dtype=np.float64)
        lower = np.interp(z, [zb, z1, z2], [w - 0.05, w - 0.012, w])
        return np.where(z > z2, w + k3 * (z - z2), lower)

    def section(x: float, scale: float, zb_x: float) -> list[tuple[float, float]]:
        """Right half of a body cross-section, bottom to top, as (y, z)."""
        zt = float(deck(x))
        zs = zt - sd
        prof = [
            (float(side_y(zb)) * scale, zb_x),
            (float(side_y(z1)) * scale, z1),
            (float(side_y(z2)) * scale, z2),
            (float(side_y(zs)) * scale, zs),
            ((w - 0.13) * scale, zt),
            (0.0, zt + 0.02),
        ]
        return prof

    ref_body = (0.0, 0.0, (zb + belt) / 2)
    trim = _BLACK_TRIM if car.black_trim else paint

    # stations: nose loft, main body, tail loft
    def loft_stations(x0: float, x1: float, narrow: float, lift: float) -> list:
        out = []
        for t in (0.0, 0.35, 0.65, 0.88, 1.0):
            x = x0 + (x1 - x0) * t
            s = narrow + (1 - narrow) * math.sqrt(max(0.0, 1 - t * t))
            out.append((x, s, zb + lift * t))
        return out

    nose = loft_stations(x_f, xf_end, 0.84, 0.05)
    tail = loft_stations(x_t, xr_end, 0.88, 0.07)
    n_main = max(3, int(math.ceil((x_f - x_t) / 0.3)))
    main_x = sorted(set(np.linspace(x_t, x_f, n_main + 1).tolist() + [x_ws, x_rb]), reverse=True)
    main_x = [x for x in main_x if x_t <= x <= x_f]
    stations = nose[::-1] + [(x, 1.0, zb) for x in main_x[1:-1]] + tail
    sections = [section(x, s, z) for x, s, z in stations]
    band_rgb = [trim, paint, paint, paint, paint]
    band_bias = [-0.45, -0.12, 0.18, 0.6, 0.0]
    main_lo, main_hi = x_t, x_f
    for i in range(len(stations) - 1):
        xa, xb_ = stations[i][0], stations[i + 1][0]
        in_main = main_lo - 1e-9 <= min(xa, xb_) and max(xa, xb_) <= main_hi + 1e-9
        sa, sb = sections[i], sections[i + 1]
        for j in range(5):
            if in_main and j < 3:
                continue  # the side bands of the main body are single planar polygons below
            for sign in (1.0, -1.0):
                quad = [
                    (xa, sign * sa[j][0], sa[j][1]),
                    (xa, sign * sa[j + 1][0], sa[j + 1][1]),
                    (xb_, sign * sb[j + 1][0], sb[j + 1][1]),
                    (xb_, sign * sb[j][0], sb[j][1]),
                ]
                mat = "dark" if (j == 0 and car.black_trim) else "paint"
                mb.add(quad, band_rgb[j], mat, ref_body, nz_bias=band_bias[j])

    # caps (front fascia and rear panel) with lights, grille and plates
    for (xe, s, zbe), sign_x in ((nose[-1][:3], 1.0), (tail[-1][:3], -1.0)):
        sec = section(xe, s, zbe)
        poly = [(xe, p[0], p[1]) for p in sec] + [(xe, -p[0], p[1]) for p in sec[::-1]]
        mb.add(poly, paint, "paint", ref_body)
        wn = sec[2][0]
        zt = sec[-2][1]
        xd = xe + sign_x * 0.006
        xd2 = xe + sign_x * 0.012
        for sy in (1.0, -1.0):
            if sign_x > 0:  # headlights
                mb.add(
                    [
                        (xd, sy * 0.52 * wn, zt - 0.20),
                        (xd, sy * 0.94 * wn, zt - 0.13),
                        (xd, sy * 0.94 * wn, zt - 0.035),
                        (xd, sy * 0.50 * wn, zt - 0.05),
                    ],
                    (0.55, 0.57, 0.60),
                    "light",
                    ref_body,
                )
                mb.add(
                    [
                        (xd2, sy * 0.60 * wn, zt - 0.16),
                        (xd2, sy * 0.86 * wn, zt - 0.11),
                        (xd2, sy * 0.86 * wn, zt - 0.06),
                        (xd2, sy * 0.60 * wn, zt - 0.07),
                    ],
                    (0.85, 0.87, 0.9),
                    "light",
                    ref_body,
                )
            else:  # tail lights
                mb.add(
                    [
                        (xd, sy * 0.55 * wn, zt - 0.19),
                        (xd, sy * 0.97 * wn, zt - 0.17),
                        (xd, sy * 0.97 * wn, zt - 0.03),
                        (xd, sy * 0.55 * wn, zt - 0.06),
                    ],
                    (0.55, 0.04, 0.05),
                    "light",
                    ref_body,
                )
        if sign_x > 0:
            mb.add(
                [
                    (xd, -0.42 * wn, zt - 0.27),
                    (xd, 0.42 * wn, zt - 0.27),
                    (xd, 0.45 * wn, zt - 0.06),
                    (xd, -0.45 * wn, zt - 0.06),
                ],
                _DARK,
                "dark",
                ref_body,
            )
            mb.add(
                [
                    (xd, -0.62 * wn, zbe + 0.05),
                    (xd, 0.62 * wn, zbe + 0.05),
                    (xd, 0.58 * wn, zbe + 0.15),
                    (xd, -0.58 * wn, zbe + 0.15),
                ],
                _DARK,
                "dark",
                ref_body,
            )
            zp = zbe + 0.17
        else:
            mb.add(
                [
                    (xd, -0.8 * wn, zbe + 0.02),
                    (xd, 0.8 * wn, zbe + 0.02),
                    (xd, 0.8 * wn, zbe + 0.09),
                    (xd, -0.8 * wn, zbe + 0.09),
                ],
                trim,
                "dark" if car.black_trim else "paint",
                ref_body,
            )
            zp = max(zbe + 0.2, zt - 0.32)
        mb.add(
            [(xd2, -0.16, zp), (xd2, 0.16, zp), (xd2, 0.16, zp + 0.15), (xd2, -0.16, zp + 0.15)],
            (0.88, 0.88, 0.9),
            "plate",
            ref_body,
        )

    # main body side bands: planar polygons with the wheel arches cut out
    def circ(x: np.ndarray) -> np.ndarray:
        out = np.full(x.shape, -np.inf)
        for xw in arches:
            dx = x - xw
            inside = np.abs(dx) < ra
            out[inside] = np.maximum(out[inside], zc_arch + np.sqrt(ra * ra - dx[inside] ** 2))
        return out

    levels = [zb, z1, z2]
    xs = [np.linspace(main_lo, main_hi, 9), np.asarray(main_x)]
    for xw in arches:
        xs.append(xw + ra * np.cos(np.linspace(0, np.pi, 25)))
        for zl in levels:
            if abs(zl - zc_arch) < ra:
                dx = math.sqrt(ra * ra - (zl - zc_arch) ** 2)
                xs.append(np.array([xw - dx, xw + dx]))
    xs_all = np.unique(np.clip(np.concatenate(xs), main_lo, main_hi))
    zs_top = deck(xs_all) - sd
    cz = circ(xs_all)
    bands = [(zb, np.full_like(xs_all, z1)), (z1, np.full_like(xs_all, z2)), (z2, zs_top)]
    for j, (zlo, upper) in enumerate(bands):
        lower = np.maximum(zlo, cz)
        ok = upper - lower > 1e-6
        runs = []
        i = 0
        while i < len(xs_all):
            if ok[i]:
                k = i
                while k + 1 < len(xs_all) and ok[k + 1]:
                    k += 1
                a, b = max(i - 1, 0), min(k + 1, len(xs_all) - 1)
                runs.append((a, b))
                i = k + 1
            else:
                i += 1
        for a, b in runs:
            idx = np.arange(a, b + 1)
            lo = np.minimum(lower[idx], upper[idx])
            pts_xz = [(xs_all[m], upper[m]) for m in idx] + [
                (xs_all[m], lo[n]) for n, m in list(enumerate(idx))[::-1]
            ]
            for sign in (1.0, -1.0):
                poly = [(x, sign * float(side_y(z)), z) for x, z in pts_xz]
                mat = "dark" if (j == 0 and car.black_trim) else "paint"
                ref = (float(np.mean(xs_all[idx])), 0.0, float(np.mean(lo)))
                mb.add(poly, band_rgb[j], mat, ref, nz_bias=band_bias[j])

    # door gaps and handles (thin decals on the bands)
    gap = (0.2, 0.2, 0.2) if np.mean(paint) > 0.3 else (0.02, 0.02, 0.02)
    x_b = x_rf - 0.45 * car.roof_len
    door_x = [x_ws - 0.05, x_b] + ([x_rr + 0.05] if car.body != "coupe" else [])
    for sign in (1.0, -1.0):
        for xd in door_x:
            if any(abs(xd - xw) < ra + 0.02 for xw in arches):
                continue
            for zlo, zhi in ((max(z1, zb + 0.04), z2), (z2, float(deck(xd)) - sd - 0.01)):
                pts = []
                for x, z in (
                    (xd - 0.006, zlo),
                    (xd + 0.006, zlo),
                    (xd + 0.006, zhi),
                    (xd - 0.006, zhi),
                ):
                    pts.append((x, sign * (float(side_y(z)) + 0.004), z))
                mb.add(pts, gap, "dark", (xd, 0.0, (zlo + zhi) / 2))
        for xd in door_x[1:]:
            zh = z2 + 0.04
            pts = [
                (x, sign * (float(side_y(z)) + 0.006), z)
                for x, z in (
                    (xd - 0.2, zh),
                    (xd - 0.06, zh),
                    (xd - 0.06, zh + 0.035),
                    (xd - 0.2, zh + 0.035),
                )
            ]
            mb.add(pts, tuple(c * 0.8 for c in paint), "paint", (xd, 0.0, zh), nz_bias=0.3)

    # wheel wells
    for xw in arches:
        th = np.linspace(0, np.pi, 17)
        arc = [(xw + ra * math.cos(t), zc_arch + ra * math.sin(t)) for t in th]
        arc = [(x, z) for x, z in arc if z >= zb - 1e-9] or arc
        for sign in (1.0, -1.0):
            inner = w - 0.34
            well = [(x, sign * inner, z) for x, z in arc] + [
                (arc[-1][0], sign * inner, zb - 0.03),
                (arc[0][0], sign * inner, zb - 0.03),
            ]
            mb.add(well, (0.025, 0.025, 0.028), "dark", (xw, 0.0, zc_arch), double=True)
            for (xa, za), (xb2, zb2) in zip(arc[:-1], arc[1:], strict=True):
                ya, yb = float(side_y(za)) - 0.002, float(side_y(zb2)) - 0.002
                mb.add(
                    [
                        (xa, sign * ya, za),
                        (xb2, sign * yb, zb2),
                        (xb2, sign * inner, zb2),
                        (xa, sign * inner, za),
                    ],
                    (0.03, 0.03, 0.033),
                    "dark",
                    (xw, 0.0, zc_arch),
                    double=True,
                )

    # cabin
    wb0 = w - 0.15
    wt0 = wb0 - car.tumblehome
    pa = 0.06  # pillar strip width
    H = car.height
    roof_x = np.linspace(x_rf, x_rr, 5)
    roof_z = [H - 0.035, H - 0.005, H, H - 0.005, H - 0.03]
    cab: list[tuple[float, float, float]] = [(x_ws, float(deck(x_ws)), float(deck(x_ws)))]
    pillars = [x_b + 0.045, x_b - 0.045]
    if car.body == "suv":
        pillars += [x_rr + 0.32, x_rr + 0.22]
    roof_pts = sorted(set(roof_x.tolist() + pillars), reverse=True)
    for x in roof_pts:
        cab.append((x, float(deck(x)), float(np.interp(-x, -roof_x, roof_z))))
    cab.append((x_rb, float(deck(x_rb)), float(deck(x_rb))))
    ref_cab = ((x_ws + x_rb) / 2, 0.0, belt)

    def cab_section(zbase: float, ztop: float) -> list[tuple[float, float]]:
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

    secs = [cab_section(zb_, zt_) for _, zb_, zt_ in cab]
    pillar_rgb = _BLACK_TRIM if car.body != "suv" or car.black_trim else paint
    n_seg = len(cab) - 1
    for i in range(n_seg):
        xa, xb2 = cab[i][0], cab[i + 1][0]
        sa, sb = secs[i], secs[i + 1]
        for j in range(6):
            quad = [
                (xa, sa[j][0], sa[j][1]),
                (xa, sa[j + 1][0], sa[j + 1][1]),
                (xb2, sb[j + 1][0], sb[j + 1][1]),
                (xb2, sb[j][0], sb[j][1]),
            ]
            side = j in (0, 5)
            top = j in (2, 3)
            if i == 0:  # windshield
                rgb, mat = (car.glass, "glass") if (side or top) else (paint, "paint")
            elif i == n_seg - 1:  # rear window
                rgb, mat = (car.glass, "glass") if top else (paint, "paint")
            elif side:
                is_pillar = any(
                    abs((xa + xb2) / 2 - (pillars[k] + pillars[k + 1]) / 2) < 1e-6
                    for k in range(0, len(pillars), 2)
                )
                rgb, mat = (
                    (pillar_rgb, "dark" if pillar_rgb == _BLACK_TRIM else "paint")
                    if is_pillar
                    else (car.glass, "glass")
                )
            else:
                rgb, mat = paint, "paint"
            mb.add(quad, rgb, mat, ref_cab, nz_bias=0.25 if (side and mat == "glass") else 0.0)

    # mirrors
    mir_rgb = _BLACK_TRIM if car.black_mirrors else paint
    mir_mat = "dark" if car.black_mirrors else "paint"
    xm = x_ws - 0.10
    for sign in (1.0, -1.0):
        y0 = w - 0.06
        o = (xm - 0.10, sign * y0 if sign > 0 else -(y0 + 0.19), belt + 0.05)
        mb.box(o, (0.10, 0, 0), (0, 0.19, 0), (0, 0, 0.11), mir_rgb, mir_mat)
        yg = (y0 + 0.10) * sign
        mb.add(
            [
                (xm - 0.104, yg - 0.075, belt + 0.062),
                (xm - 0.104, yg + 0.075, belt + 0.062),
                (xm - 0.104, yg + 0.075, belt + 0.148),
                (xm - 0.104, yg - 0.075, belt + 0.148),
            ],
            (0.3, 0.32, 0.35),
            "glass",
            (xm, yg, belt + 0.1),
        )
        ys = (w - 0.16) if sign > 0 else -(w - 0.16 + 0.12)
        mb.box(
            (xm - 0.07, ys, belt - 0.01), (0.06, 0, 0), (0, 0.12, 0), (0, 0, 0.07), mir_rgb, mir_mat
        )

    # antenna / fin on the roof rear
    xa = x_rr + 0.12
    za = float(np.interp(-xa, -roof_x, roof_z)) + 0.025
    if car.antenna == "mast":
        mb.box(
            (xa - 0.04, -0.015, za - 0.03),
            (0.07, 0, 0),
            (0, 0.03, 0),
            (0, 0, 0.035),
            _BLACK_TRIM,
            "dark",
        )
        tilt = math.radians(car.antenna_tilt)
        axis = np.array([-math.sin(tilt), 0.0, math.cos(tilt)]) * car.antenna_len
        e = 0.0045
        ex = np.array([math.cos(tilt), 0.0, math.sin(tilt)]) * e
        mb.box(np.array([xa, -e / 2, za]) - ex / 2, ex, (0, e, 0), axis, (0.03, 0.03, 0.03), "dark")
    else:
        for sy in (-0.025, 0.025):
            mb.add(
                [
                    (xa + 0.06, sy, za - 0.03),
                    (xa - 0.12, sy, za - 0.03),
                    (xa - 0.10, sy * 0.6, za + 0.05),
                ],
                _BLACK_TRIM,
                "dark",
                (xa - 0.05, 0, za),
            )
        mb.add(
            [
                (xa + 0.06, -0.025, za - 0.03),
                (xa - 0.10, -0.015, za + 0.05),
                (xa - 0.10, 0.015, za + 0.05),
                (xa + 0.06, 0.025, za - 0.03),
            ],
            _BLACK_TRIM,
            "dark",
            (xa - 0.05, 0, za),
        )

    # roof rails
    if car.roof_rails:
        for sign in (1.0, -1.0):
            yr = sign * (wt0 - 0.1)
            zr = H + 0.005
            mb.box(
                (x_rr + 0.05, yr - 0.02, zr + 0.03),
                (x_rf - x_rr - 0.1, 0, 0),
                (0, 0.04, 0),
                (0, 0, 0.025),
                _BLACK_TRIM,
                "dark",
            )
            for xp in (x_rr + 0.05, x_rf - 0.13):
                mb.box(
                    (xp, yr - 0.02, zr - 0.01),
                    (0.08, 0, 0),
                    (0, 0.04, 0),
                    (0, 0, 0.045),
                    _BLACK_TRIM,
                    "dark",
                )

    # spoiler
    if car.has_spoiler:
        sp_rgb = paint if car.color_name != "white" or car.black_trim else _BLACK_TRIM
        sp_mat = "paint" if sp_rgb == paint else "dark"
        if car.body in ("sedan", "coupe"):
            zt = float(deck(xr_end + 0.15))
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
            mb.box(
                (x_rr - 0.2, -(wt0 - 0.02), H - 0.05),
                (0.25, 0, 0),
                (0, 2 * (wt0 - 0.02), 0),
                (0, 0, 0.035),
                sp_rgb,
                sp_mat,
            )

    # wheels: tyre cylinder, rim and spoke holes as decals on the outer face
    n = 20
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    centres = []
    for xw in arches:
        for sign in (1.0, -1.0):
            yo = sign * (w - 0.045)
            yi = yo - sign * car.tire_width
            c = np.array([xw, (yo + yi) / 2, rw])
            centres.append(c)
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

            rr = rw * car.rim_ratio
            mb.add(_disc(xw, yo + sign * 0.006, rw, rr, n), car.rim_color, "rim", c)
            step = 2 * np.pi / car.spokes
            hole_w = step * (0.62 if car.spokes < 10 else 0.45)
            phase0 = (xw * 7.3) % step
            for k in range(car.spokes):
                a = np.linspace(0, hole_w, 5) + phase0 + k * step
                r_in, r_out = 0.38 * rr, 0.9 * rr
                pts = [
                    (xw + r_out * math.cos(t), yo + sign * 0.011, rw + r_out * math.sin(t))
                    for t in a
                ]
                pts += [
                    (xw + r_in * math.cos(t), yo + sign * 0.011, rw + r_in * math.sin(t))
                    for t in a[::-1]
                ]
                mb.add(pts, (0.06, 0.06, 0.065), "dark", c)
            mb.add(
                _disc(xw, yo + sign * 0.016, rw, 0.22 * rr, 8),
                tuple(x * 0.8 for x in car.rim_color),
                "rim",
                c,
            )

    faces = mb.faces
    starts = np.cumsum([0] + [len(f) for f in faces])
    normals = np.array(mb.normals)
    sn = normals.copy()
    sn[:, 2] += np.array(mb.nz_bias)
    sn /= np.linalg.norm(sn, axis=1, keepdims=True)
    mats = [_MATERIALS[m] for m in mb.mats]
    hx, hy = L / 2 + 0.12, w + 0.08
    return _Mesh(
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
        wheels=np.array(centres),
    )


# --------------------------------------------------------------------------------------------
# camera, studio background and rasterisation
# --------------------------------------------------------------------------------------------

_CAM_DIST = 7.2  # metres from the turntable centre (horizontal)
_CAM_ELEV = 7.0  # degrees the camera looks down at the target
_CAM_TARGET_Z = 0.72
_FOCAL_REF = 2200.0  # pixels at 1918 x 1280
_REF_W, _REF_H = 1918, 1280


@dataclass(frozen=True)
class _Camera:
    pos: np.ndarray
    rot: np.ndarray  # rows: right, down, forward
    f: float
    cx: float
    cy: float

    def to_cam(self, pts: np.ndarray) -> np.ndarray:
        return (pts - self.pos) @ self.rot.T

    def project(self, pts: np.ndarray) -> np.ndarray:
        c = self.to_cam(pts)
        z = np.maximum(c[:, 2], 1e-6)
        return np.stack([self.cx + self.f * c[:, 0] / z, self.cy + self.f * c[:, 1] / z], 1)


def _camera(width: int, height: int) -> _Camera:
    el = math.radians(_CAM_ELEV)
    target = np.array([0.0, 0.0, _CAM_TARGET_Z])
    pos = target + _CAM_DIST * np.array([0.0, -1.0, math.tan(el)])
    fwd = (target - pos) / np.linalg.norm(target - pos)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    scale = min(width / _REF_W, height / _REF_H)
    return _Camera(
        pos=pos,
        rot=np.stack([right, down, fwd]),
        f=_FOCAL_REF * scale,
        cx=width / 2 - 0.5,
        cy=height * 0.56 - 0.5,
    )


@lru_cache(maxsize=8)
def _lettering(width: int, height: int) -> np.ndarray:
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


def _horizon(width: int, height: int) -> np.ndarray:
    """Row (float) of the wall/floor boundary for each column."""
    t = (np.arange(width) + 0.5) / width * 2 - 1
    return height * (0.372 + 0.018 * t * t)


def _background(
    car: CarSpec,
    cam: _Camera,
    rot: np.ndarray,
    offset: np.ndarray,
    psi: float,
    width: int,
    height: int,
    mesh: _Mesh,
) -> np.ndarray:
    """The studio (float32 H x W x 3, 0..255) with turntable seams and the car's shadow."""
    rows = np.arange(height, dtype=np.float32)[:, None]
    hz = _horizon(width, height).astype(np.float32)[None, :]
    wall_v = 236.0 + 8.0 * np.clip(rows / max(hz.min(), 1.0), 0, 1)
    floor_t = np.clip((rows - hz) / (height - hz), 0, 1)
    floor_v = 146.0 + 32.0 * floor_t
    is_floor = rows >= hz
    edge = np.clip(rows - hz + 0.5, 0, 1)  # anti-aliased wall/floor edge
    lum = wall_v * (1 - edge) + floor_v * edge
    alpha = _lettering(width, height)
    lum = lum * (1 - alpha) + 64.0 * alpha

    # seams and shadow, drawn at a reduced scale on a darkening map
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

    sd = 4 if max(width, height) > 400 else 2
    shw, shh = (width + sd - 1) // sd, (height + sd - 1) // sd
    shadow = np.zeros((shh, shw), np.float32)
    ssc = 16.0 / sd

    def sproj(pts_car: np.ndarray) -> np.ndarray:
        world = (pts_car + np.r_[offset, 0.0]) @ rot.T
        return np.round((cam.project(world) + 0.5) * ssc - 0.5 * 16).astype(np.int32)

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
    shadow = cv2.resize(shadow, (width, height), interpolation=cv2.INTER_LINEAR)
    seam_f = cv2.resize(seam, (width, height), interpolation=cv2.INTER_LINEAR)
    dark = (1.0 - 0.22 * seam_f.astype(np.float32) / 255.0) * (1.0 - shadow)
    lum = np.where(is_floor, lum * dark, lum)

    tint_floor = np.array([0.975, 1.0, 1.025], np.float32)
    tint_wall = np.array([1.0, 1.0, 0.995], np.float32)
    col = np.where(is_floor[..., None], tint_floor, tint_wall)
    img = lum[..., None] * col * (car.exposure * np.asarray(car.tint, np.float32))
    return img.astype(np.float32)


def _shade(mesh: _Mesh, rot: np.ndarray, cw: np.ndarray, cam: _Camera, car: CarSpec) -> np.ndarray:
    """Per-face colour (F x 3, 0..255): Lambert + studio environment reflection + specular."""
    n = mesh.shade_normals @ rot.T
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


def render_car(
    car: CarSpec, angle: int, width: int, height: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(image H x W x 3 uint8 RGB, mask H x W uint8 {0,1}) of one car at turntable angle 1..16."""
    if not 1 <= angle <= N_ANGLES:
        raise ValueError(f"angle must be 1..{N_ANGLES}, got {angle}")
    if width < 16 or height < 16:
        raise ValueError(f"image size {width}x{height} is too small")
    mesh = _car_mesh(car)
    cam = _camera(width, height)
    psi = math.radians(-90.0 - (angle - 1) * 22.5 + car.yaw + rng.normal(0.0, 0.6))
    c, s = math.cos(psi), math.sin(psi)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    offset = np.asarray(car.offset, dtype=np.float64)
    off3 = np.r_[offset, 0.0]

    vw = (mesh.verts + off3) @ rot.T
    cw = (mesh.centroids + off3) @ rot.T
    nw = mesh.normals @ rot.T
    visible = mesh.double | (np.sum(nw * (cam.pos - cw), axis=1) > 1e-9)
    colors = _shade(mesh, rot, cw, cam, car)

    uv = cam.project(vw)
    u2 = 2 * uv + 0.5  # 2x pixel coordinates (pixel centres at integers)
    # bounding box of the car in 1x pixels
    x0 = max(0, int(math.floor(uv[:, 0].min())) - 2)
    x1 = min(width, int(math.ceil(uv[:, 0].max())) + 3)
    y0 = max(0, int(math.floor(uv[:, 1].min())) - 2)
    y1 = min(height, int(math.ceil(uv[:, 1].max())) + 3)
    bg = _background(car, cam, rot, offset, psi, width, height, mesh)
    img = bg
    mask = np.zeros((height, width), np.uint8)
    if x1 > x0 and y1 > y0:
        h2, w2 = 2 * (y1 - y0), 2 * (x1 - x0)
        ox, oy = 2 * x0, 2 * y0
        zbuf = np.zeros((h2, w2), np.float32)
        idbuf = np.full((h2, w2), -1, np.int32)
        # plane of each face in camera coordinates: 1/z is affine in pixel coordinates
        nc = nw @ cam.rot.T
        cc = cam.to_cam(cw)
        d = np.sum(nc * cc, axis=1)
        f2, cx2, cy2 = 2 * cam.f, 2 * cam.cx + 0.5, 2 * cam.cy + 0.5
        with np.errstate(divide="ignore", invalid="ignore"):
            ka = nc[:, 0] / (f2 * d)
            kb = nc[:, 1] / (f2 * d)
            kc = (nc[:, 2] - nc[:, 0] * cx2 / f2 - nc[:, 1] * cy2 / f2) / d
        for fi in np.flatnonzero(visible & (np.abs(d) > 1e-9)):
            p = u2[mesh.starts[fi] : mesh.starts[fi + 1]] - (ox, oy)
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
        table = np.zeros((len(colors) + 1, 3), np.float32)
        table[1:] = colors
        col2 = table[idbuf + 1]
        cov2 = (idbuf >= 0).astype(np.float32)
        size = (x1 - x0, y1 - y0)
        premult = cv2.resize(col2, size, interpolation=cv2.INTER_AREA)
        cov = cv2.resize(cov2, size, interpolation=cv2.INTER_AREA)
        region = img[y0:y1, x0:x1]
        img[y0:y1, x0:x1] = region * (1.0 - cov[..., None]) + premult
        mask[y0:y1, x0:x1] = cov >= 0.5
    grain = rng.standard_normal((height, width), dtype=np.float32) * np.float32(1.6)
    img += grain[..., None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask


# --------------------------------------------------------------------------------------------
# writing the Kaggle layout
# --------------------------------------------------------------------------------------------


def _image_rng(seed: int, split: int, index: int, angle: int) -> np.random.Generator:
    return np.random.default_rng([seed, split, index, angle, 2])


def _render_task(args: tuple) -> tuple[int, str, str]:
    """Render and write one image (and its mask for train); return (split, img name, rle)."""
    out_dir, split, index, angle, car, cfg = args
    image, mask = render_car(
        car, angle, cfg.width, cfg.height, _image_rng(cfg.seed, split, index, angle)
    )
    image_id = ids_mod.validate_id(f"{car.car_id}_{angle:02d}", "synthetic")
    folder = "train" if split == _TRAIN else "test"
    cio.write_jpeg(Path(out_dir) / folder / f"{image_id}.jpg", image, quality=cfg.jpeg_quality)
    if split == _TRAIN:
        cio.write_mask_gif(Path(out_dir) / "train_masks" / f"{image_id}_mask.gif", mask)
    return split, f"{image_id}.jpg", rle.encode(mask)


def _write_csv(path: Path, header: list[str], rows: Iterable[Iterable]) -> None:
    with cio.atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def generate(
    out_dir: Path, truth_dir: Path, cfg: SyntheticConfig, threads: int = 1, progress: bool = True
) -> None:
    """Write the Kaggle layout into ``out_dir`` and the test truth into ``truth_dir``."""
    if cfg.train_cars < 1 or cfg.test_cars < 1:
        raise ValueError("need at least one train car and one test car")
    if cfg.width < 64 or cfg.height < 48:
        raise ValueError(f"image size {cfg.width}x{cfg.height} is below the minimum 64x48")
    out_dir, truth_dir = Path(out_dir), Path(truth_dir)
    cars = _cars(cfg)
    tasks = [
        (str(out_dir), split, index, angle, car, cfg)
        for split, index, car in cars
        for angle in range(1, N_ANGLES + 1)
    ]
    for sub in ("train", "train_masks", "test"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    results: list[tuple[int, str, str]] = []
    bar = tqdm(
        total=len(tasks), desc="synthetic images", unit="img", file=sys.stderr, disable=not progress
    )
    try:
        if threads > 1:
            with ProcessPoolExecutor(max_workers=threads) as pool:
                for res in pool.map(_render_task, tasks, chunksize=N_ANGLES):
                    results.append(res)
                    bar.update()
        else:
            for task in tasks:
                results.append(_render_task(task))
                bar.update()
    finally:
        bar.close()
    train_rows = sorted((name, code) for split, name, code in results if split == _TRAIN)
    test_rows = sorted((name, code) for split, name, code in results if split == _TEST)
    _write_csv(out_dir / "train_masks.csv", ["img", "rle_mask"], train_rows)
    _write_csv(
        out_dir / "sample_submission.csv",
        ["img", "rle_mask"],
        [(name, "1 1") for name, _ in test_rows],
    )
    _write_csv(truth_dir / "test_masks.csv", ["img", "rle_mask"], test_rows)
    meta = sorted((c.car_id, c.year, c.make, c.model, c.trim1, c.trim2) for _, _, c in cars)
    _write_csv(out_dir / "metadata.csv", ["id", "year", "make", "model", "trim1", "trim2"], meta)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``carvana-synthetic --out DIR --truth DIR [options]``."""
    d = SyntheticConfig()
    ap = argparse.ArgumentParser(prog="carvana-synthetic", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the Kaggle layout")
    ap.add_argument("--truth", type=Path, required=True, help="folder for test_masks.csv")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--train-cars", type=int, default=d.train_cars)
    ap.add_argument("--test-cars", type=int, default=d.test_cars)
    ap.add_argument("--width", type=int, default=d.width)
    ap.add_argument("--height", type=int, default=d.height)
    ap.add_argument("--jpeg-quality", type=int, default=d.jpeg_quality)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    cfg = SyntheticConfig(
        seed=a.seed,
        train_cars=a.train_cars,
        test_cars=a.test_cars,
        width=a.width,
        height=a.height,
        jpeg_quality=a.jpeg_quality,
    )
    try:
        generate(a.out, a.truth, cfg, threads=a.threads, progress=not a.quiet)
    except ValueError as err:
        print(f"carvana-synthetic: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
