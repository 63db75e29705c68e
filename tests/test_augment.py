"""Augmentation of the depth channel: ``prior_warp`` moves the low-res map only, smoothly and
by at most about the asked pixels, and draws nothing from the RNG when it has nothing to do."""

from __future__ import annotations

import pytest
import torch

from carvana.augment import AugmentConfig, Augmenter, warp

ONLY_WARP = dict(hflip=0, shift=0, scale=0, hue=0, saturation=0, value=0)


def _step_edge(n: int = 6) -> torch.Tensor:
    """(n, 1, 64, 96): 0 left of column 48, 1 from it on."""
    edge = torch.zeros(n, 1, 64, 96)
    edge[..., 48:] = 1
    return edge


def test_warp_moves_an_edge_by_at_most_about_the_pixels_asked() -> None:
    torch.manual_seed(3)
    moved = warp(_step_edge(), 8.0)
    first = (moved >= 0.5).float().argmax(-1)  # each row's first column on the car's side
    shift = first - 48
    assert shift.abs().max() <= 9  # bicubic between control points overshoots by < 1 px
    assert shift.abs().max() >= 3  # it does move
    rows = shift[:, 0].float()
    assert (rows[:, 1:] - rows[:, :-1]).abs().max() <= 1  # smooth: no tears between rows
    assert moved.min() >= 0 and moved.max() <= 1 + 1e-6  # a probability stays one
    torch.manual_seed(3)
    assert torch.equal(warp(_step_edge(), 8.0), moved)  # seeded: the same field


def test_prior_warp_moves_the_extra_channel_only() -> None:
    augment = Augmenter(AugmentConfig(**ONLY_WARP, prior_warp=8.0))
    image = torch.cat([torch.rand(2, 3, 64, 96), _step_edge(2)], 1)
    mask = _step_edge(2)
    out, out_mask = augment(image, mask)
    assert torch.equal(out[:, :3], image[:, :3]) and torch.equal(out_mask, mask)
    assert not torch.equal(out[:, 3:], image[:, 3:])


@pytest.mark.parametrize(("channels", "pixels"), [(3, 8.0), (4, 0.0)])
def test_nothing_to_warp_draws_nothing(channels: int, pixels: float) -> None:
    """A low-res model (3 channels) or the option off: the RNG, and so every later crop and
    flip, stays that of a run without the option (the presets' bytes)."""
    augment = Augmenter(AugmentConfig(**ONLY_WARP, prior_warp=pixels))
    image = torch.rand(2, channels, 32, 32)
    state = torch.get_rng_state()
    out, _ = augment(image, _step_edge(2)[..., :32, :32])
    assert torch.equal(torch.get_rng_state(), state) and torch.equal(out, image)
