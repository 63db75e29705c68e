"""Dice as the competition scored it."""

from __future__ import annotations

import numpy as np
import pytest

from carvana.metrics import dice, dice_at_thresholds


def test_known_values() -> None:
    a = np.zeros((4, 4), np.uint8)
    b = np.zeros((4, 4), np.uint8)
    assert dice(a, b) == 1.0  # both empty
    a[0, :2] = 1
    assert dice(a, b) == 0.0
    b[0, 1:3] = 1
    assert dice(a, b) == pytest.approx(2 * 1 / 4)
    with pytest.raises(ValueError, match="shape"):
        dice(a, b[:2])


def test_dice_at_thresholds_matches_direct() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random((40, 60)) < 0.3
    prob = np.clip(truth * 0.6 + rng.random((40, 60)) * 0.5, 0, 1).astype(np.float32)
    thresholds = np.array([0.1, 0.35, 0.5, 0.77, 0.99])
    q = np.rint(prob * 255).astype(np.uint8)
    expected = [dice(q >= np.ceil(t * 255 - 1e-9), truth) for t in thresholds]
    assert np.allclose(dice_at_thresholds(prob, truth, thresholds), expected)
    assert np.allclose(dice_at_thresholds(q, truth, thresholds), expected)
