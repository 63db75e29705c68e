"""What to generate (:class:`SyntheticConfig`) and what one invented car is (:class:`CarSpec`)."""

from __future__ import annotations

from dataclasses import dataclass

from carvana import ids as ids_mod

N_ANGLES = ids_mod.N_ANGLES
TRAIN, TEST = 0, 1  # the split index that seeds every random stream


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
