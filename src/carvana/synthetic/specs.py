"""Car ids and invented car specifications, each drawn from its own seeded random stream."""

from __future__ import annotations

from typing import Any

import numpy as np

from carvana.synthetic.config import N_ANGLES, TEST, TRAIN, CarSpec, SyntheticConfig

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
    """One 12-hex-digit car id drawn from (seed, split, index, attempt)."""
    rng = np.random.default_rng([seed, split, index, 0, attempt])
    return f"{int(rng.integers(0, 2**48)):012x}"


def car_ids(cfg: SyntheticConfig) -> tuple[list[str], list[str]]:
    """Car ids (12 hex chars) of the train and test cars, in car-index order, all distinct."""
    seen: set[str] = set()
    out: tuple[list[str], list[str]] = ([], [])
    for split, count in ((TRAIN, cfg.train_cars), (TEST, cfg.test_cars)):
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
    train_cars, test_cars = car_ids(cfg)

    def expand(cars: list[str]) -> list[str]:
        return sorted(f"{c}_{a:02d}" for c in cars for a in range(1, N_ANGLES + 1))

    return expand(train_cars), expand(test_cars)


def _paint(rng: np.random.Generator) -> tuple[str, tuple[float, float, float], float]:
    """(colour name, albedo, metallic) drawn from the palette, with a little jitter."""
    u = rng.uniform
    weights = np.array([p[2] for p in _PALETTE])
    name, base, _, metallic = _PALETTE[int(rng.choice(len(_PALETTE), p=weights / weights.sum()))]
    jitter = (1.0 + u(-0.015, 0.015, 3)) * u(0.95, 1.03)
    color = tuple(float(np.clip(c * j, 0.0, 1.0)) for c, j in zip(base, jitter, strict=True))
    return name, color, metallic


def _proportions(body: str, rng: np.random.Generator) -> dict[str, float]:
    """Body dimensions (metres) of one body type: CarSpec fields from length to front overhang."""
    u = rng.uniform
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
    return dict(
        length=length,
        width=width,
        height=height,
        clearance=clearance,
        belt=belt,
        wheel_radius=wheel_r,
        nose_height=nose,
        tail_height=tail,
        hood_len=hood,
        windshield_run=wsr,
        roof_len=roof,
        rear_glass_run=rg,
        front_overhang=foh,
    )


def _fittings(rng: np.random.Generator, body: str, antenna: str) -> dict[str, Any]:
    """Wheels, trim, antenna, pose on the turntable, exposure and trims (in this draw order)."""
    u = rng.uniform
    return dict(
        tumblehome=u(0.14, 0.22),
        tire_width=u(0.20, 0.26),
        rim_ratio=u(0.62, 0.74),
        spokes=int(rng.choice([5, 5, 6, 7, 10])),
        black_mirrors=bool(rng.random() < 0.3),
        black_trim=bool(body == "suv" and rng.random() < 0.6),
        antenna_len=u(0.25, 0.65) if antenna == "mast" else 0.0,
        antenna_tilt=u(15.0, 35.0),
        has_spoiler=bool(rng.random() < 0.25),
        roof_rails=bool(body == "suv" and rng.random() < 0.5),
        offset=(u(-0.15, 0.15), u(-0.12, 0.12)),
        yaw=u(-2.5, 2.5),
        exposure=u(0.97, 1.03),
        tint=tuple(float(t) for t in 1.0 + u(-0.012, 0.012, 3)),
        year=int(rng.integers(2008, 2018)),
        trim1=str(rng.choice(_TRIM1)),
        trim2=str(rng.choice(_TRIM2)),
    )


def make_car(car_id: str, rng: np.random.Generator) -> CarSpec:
    """Draw one car's specification from ``rng``."""
    u = rng.uniform
    body = str(rng.choice(["sedan", "suv", "hatchback", "coupe"], p=[0.4, 0.35, 0.15, 0.1]))
    name, color, metallic = _paint(rng)
    dims = _proportions(body, rng)
    roh = u(0.8, 0.95) if body in ("suv", "hatchback") else u(0.95, 1.12)
    wheelbase = dims["length"] - dims["front_overhang"] - roh
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
        wheelbase=wheelbase,
        rim_color=tuple(float(c) for c in rim),
        glass=tuple(float(c) for c in glass),
        antenna=antenna,
        make=make,
        model=model,
        **dims,
        **_fittings(rng, body, antenna),
    )


def car_specs(cfg: SyntheticConfig) -> list[tuple[int, int, CarSpec]]:
    """(split, index, spec) of every car; each spec depends only on (seed, split, index)."""
    train_ids, test_ids = car_ids(cfg)
    out = []
    for split, cars in ((TRAIN, train_ids), (TEST, test_ids)):
        for index, cid in enumerate(cars):
            out.append(
                (split, index, make_car(cid, np.random.default_rng([cfg.seed, split, index, 1])))
            )
    return out
