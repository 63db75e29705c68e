"""The studio camera (perspective, looking slightly down) and the car's pose on the turntable."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from carvana.synthetic.config import CarSpec

CAM_DIST = 7.2  # metres from the turntable centre (horizontal)
CAM_ELEV = 7.0  # degrees the camera looks down at the target
CAM_TARGET_Z = 0.72
FOCAL_REF = 2200.0  # pixels at 1918 x 1280
REF_W, REF_H = 1918, 1280
ANGLE_STEP = 22.5  # degrees between turntable angles


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera for an image of ``width`` x ``height`` pixels."""

    pos: np.ndarray
    rot: np.ndarray  # rows: right, down, forward
    f: float
    cx: float
    cy: float
    width: int
    height: int

    def to_cam(self, pts: np.ndarray) -> np.ndarray:
        """World points to camera coordinates (x right, y down, z forward)."""
        return (pts - self.pos) @ self.rot.T

    def project(self, pts: np.ndarray) -> np.ndarray:
        """World points to pixel coordinates (pixel centres at integers)."""
        c = self.to_cam(pts)
        z = np.maximum(c[:, 2], 1e-6)
        return np.stack([self.cx + self.f * c[:, 0] / z, self.cy + self.f * c[:, 1] / z], 1)


def studio_camera(width: int, height: int) -> Camera:
    """The camera for an image size: the Carvana framing, scaled from 1918 x 1280."""
    el = math.radians(CAM_ELEV)
    target = np.array([0.0, 0.0, CAM_TARGET_Z])
    pos = target + CAM_DIST * np.array([0.0, -1.0, math.tan(el)])
    fwd = (target - pos) / np.linalg.norm(target - pos)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    scale = min(width / REF_W, height / REF_H)
    return Camera(
        pos=pos,
        rot=np.stack([right, down, fwd]),
        f=FOCAL_REF * scale,
        cx=width / 2 - 0.5,
        cy=height * 0.56 - 0.5,
        width=width,
        height=height,
    )


@dataclass(frozen=True, eq=False)
class Pose:
    """Where the car stands: turntable rotation ``psi`` (radians) and offset (metres)."""

    psi: float
    rot: np.ndarray  # car to world rotation about z
    offset: np.ndarray  # (2,) on the floor

    def to_world(self, pts: np.ndarray) -> np.ndarray:
        """Car coordinates to world coordinates."""
        return (pts + np.r_[self.offset, 0.0]) @ self.rot.T


def turntable_pose(car: CarSpec, angle: int, rng: np.random.Generator) -> Pose:
    """The pose at turntable ``angle`` (1..16), with a little random rotation from ``rng``."""
    psi = math.radians(-90.0 - (angle - 1) * ANGLE_STEP + car.yaw + rng.normal(0.0, 0.6))
    c, s = math.cos(psi), math.sin(psi)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return Pose(psi=psi, rot=rot, offset=np.asarray(car.offset, dtype=np.float64))
