"""Prediction in channels_last under inference_mode: same probabilities as the contiguous layout."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from carvana import rle
from carvana.backends import BackendSpec, probabilities, torch_runner
from carvana.evaluation import THRESHOLDS
from carvana.io import SNAP_HIGH, SNAP_LOW, prob_levels, read_prob, write_prob
from carvana.models import create_model
from carvana.predict import predict_to_dir
from carvana.training import to_input

CPU = torch.device("cpu")


def _unet(in_channels: int = 3) -> torch.nn.Module:
    """A small U-Net with random (seeded) weights in eval mode, its logits spread to std ~3.

    At initialisation the probabilities all sit near one value, and any two layouts would agree
    within 1e-4; the head is rescaled so that they span (0, 1).
    """
    torch.manual_seed(0)
    model = create_model("unet", in_channels=in_channels, initial_filters=4, depth=3, up_convs=2)
    with torch.no_grad():  # batch-norm statistics of real activations, so eval mode is tested
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None  # a plain average over the calibration pass
        model.train()(_images(4, in_channels, 64, 96, seed=2).float() / 255.0)
        model.eval()
        head = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        logits = model(_images(2, in_channels, 64, 96).float() / 255.0)
        scale = 3.0 / logits.std()
        head.weight.mul_(scale)
        head.bias.copy_(scale * (head.bias - logits.mean()))  # centred: logits' mean becomes 0
    return model


def _images(n: int, channels: int, height: int, width: int, seed: int = 1) -> torch.Tensor:
    """uint8 images of smooth blobs (coarse noise upsampled) with a little pixel noise."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, channels, height // 8, width // 8, generator=gen)
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic")
    noisy = smooth * 255 + 8 * torch.randn(n, channels, height, width, generator=gen)
    return noisy.clamp(0, 255).round().to(torch.uint8)


def _contiguous_probs(model: torch.nn.Module, images: torch.Tensor, tta: bool) -> torch.Tensor:
    """The reference: NCHW-contiguous model and input, plain no_grad."""
    with torch.no_grad():
        x = images.float() / 255.0
        prob = torch.sigmoid(model(x))
        if tta:
            prob = 0.5 * (prob + torch.sigmoid(model(x.flip(-1))).flip(-1))
    return prob


def _is_channels_last(model: torch.nn.Module) -> bool:
    """Every conv weight in NHWC; at least one whose layouts differ is not NCHW (a 1x1 conv to
    one channel is both)."""
    convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    return (all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
            and any(not w.is_contiguous() for w in convs))


@pytest.mark.parametrize(("channels", "tta"), [(3, False), (3, True), (4, False)])
def test_channels_last_matches_contiguous(channels: int, tta: bool) -> None:
    model = _unet(channels)
    images = _images(3, channels, 64, 96)
    ref = _contiguous_probs(model, images, tta)
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    assert _is_channels_last(fast) and not _is_channels_last(model)
    x = to_input(images, CPU, channels_last=True)
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    runner = torch_runner(fast, BackendSpec(), CPU)
    prob = torch.from_numpy(probabilities(runner, x.numpy(), tta_hflip=tta))[:, None]
    assert prob.shape == ref.shape == (3, 1, 64, 96)
    assert (prob - ref).abs().max().item() <= 1e-4
    assert ((prob > 0.5) == (ref > 0.5)).float().mean().item() >= 0.999
    assert ref.std().item() > 0.2  # probabilities spread over (0, 1): the 1e-4 bound means something


class _Images(Dataset):
    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        return {"id": f"0123456789ab_{index + 1:02d}", "image": self.images[index]}


def test_predict_to_dir_runs_channels_last_and_matches(tmp_path: Path) -> None:
    model = _unet()
    images = _images(5, 3, 48, 64)
    ref = _contiguous_probs(model, images, tta=False).squeeze(1).numpy()
    stats = predict_to_dir(model, _Images(images), tmp_path, CPU, batch_size=2)
    assert stats["images"] == 5
    assert _is_channels_last(model)  # switched in place
    for k in range(5):
        got = read_prob(tmp_path / f"0123456789ab_{k + 1:02d}.png")
        assert got.shape == (48, 64)
        assert np.abs(got - ref[k]).max() <= 0.5 / 255 + 1e-4  # the 8-bit rounding, nothing more
    predict_to_dir(model, _Images(images), tmp_path / "again", CPU, batch_size=2)  # idempotent
    assert _is_channels_last(model)
    for k in range(5):
        name = f"0123456789ab_{k + 1:02d}.png"
        assert np.array_equal(read_prob(tmp_path / "again" / name), read_prob(tmp_path / name))


def test_predict_to_dir_hands_each_batch_to_the_writer(tmp_path: Path) -> None:
    model = _unet()
    images = _images(5, 3, 48, 64)
    ref = _contiguous_probs(model, images, tta=False).squeeze(1).numpy()
    seen: list[tuple[Path, list[str], np.ndarray]] = []

    def keep_first(out_dir: Path, ids: list[str], probs: np.ndarray) -> int:
        seen.append((out_dir, ids, probs))
        return 1  # a writer may merge items (tiles into images): it says how many it wrote

    stats = predict_to_dir(model, _Images(images), tmp_path / "out", CPU, batch_size=2,
                           write=keep_first)
    assert stats["images"] == 3 and stats["seconds_per_image"] == stats["seconds"] / 3
    assert [len(ids) for _, ids, _ in seen] == [2, 2, 1]
    assert all(d == tmp_path / "out" and d.is_dir() for d, _, _ in seen)
    ids = [i for _, batch_ids, _ in seen for i in batch_ids]
    assert ids == [f"0123456789ab_{k + 1:02d}" for k in range(5)]
    probs = np.concatenate([p for _, _, p in seen])
    assert probs.dtype == np.float32 and probs.shape == (5, 48, 64)
    assert np.abs(probs - ref).max() <= 1e-4  # the probabilities themselves, not 8-bit levels
    assert not list((tmp_path / "out").iterdir())  # the writer, not the loop, writes files


def _allowed_thresholds() -> np.ndarray:
    """The evaluation grid, a dense sweep of [0.05, 0.95] and the float32 neighbours of its ends."""
    ends = [np.nextafter(np.float32(t), np.float32(d)) for t in (0.05, 0.95) for d in (0, 1)]
    return np.concatenate([THRESHOLDS, np.linspace(0.05, 0.95, 9001), [0.05, 0.95], ends]
                          ).astype(np.float64).clip(0.05, 0.95)


def test_snapping_changes_no_decision_at_any_allowed_threshold(tmp_path: Path) -> None:
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)  # every 8-bit level once
    prob = levels.astype(np.float32) / 255
    write_prob(tmp_path / "snapped.png", prob, snap=True)
    write_prob(tmp_path / "raw.png", prob)
    raw, snapped = read_prob(tmp_path / "raw.png"), read_prob(tmp_path / "snapped.png")
    assert np.array_equal(np.rint(raw * 255), levels)  # the default keeps every level
    moved = sorted(levels[raw != snapped].tolist())
    assert moved == [*range(1, SNAP_LOW), *range(SNAP_HIGH + 1, 255)] == [
        *range(1, 13), *range(243, 255)]
    assert set(np.rint(snapped[raw != snapped] * 255).tolist()) == {0, 255}
    snapped8 = prob_levels(prob, snap=True)
    for t in _allowed_thresholds():
        assert np.array_equal(raw >= t, snapped >= t), t  # the float path (evaluation)
        assert rle.encode_prob8(snapped8, t) == rle.encode(raw >= t), t  # the submission's
    # the range is tight: just outside it, snapping does change decisions
    for t in (12 / 255, 243.5 / 255):  # level 12 is >= the first, 243 < the second
        assert not np.array_equal(raw >= t, snapped >= t)


def test_snapping_shrinks_a_noisy_map(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    prob = np.zeros((256, 384), np.float32)
    prob[64:192, 96:288] = 1.0
    prob = np.clip(prob + rng.normal(0, 0.01, prob.shape).astype(np.float32), 0, 1)  # 1-2 % noise
    write_prob(tmp_path / "snapped.png", prob, snap=True)
    write_prob(tmp_path / "raw.png", prob)
    assert (tmp_path / "snapped.png").stat().st_size < 0.2 * (tmp_path / "raw.png").stat().st_size
    for t in THRESHOLDS:
        assert np.array_equal(read_prob(tmp_path / "snapped.png") >= t,
                              read_prob(tmp_path / "raw.png") >= t)
