"""The model registry: shapes, errors, learning, parameter counts and weight transfer."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

from carvana.models import (
    ARCHITECTURES,
    SegmentationModel,
    count_parameters,
    create_model,
    load_compatible_state,
)

torch.set_num_threads(1)

#: Tiny configurations (stride 4) that build and run in milliseconds.
TINY: dict[str, dict[str, Any]] = {
    "unet": {"initial_filters": 4, "depth": 2},
    "tiramisu": {
        "down_blocks": [2, 2],
        "bottleneck_layers": 2,
        "growth_rate": 4,
        "first_filters": 8,
        "dropout": 0.0,
    },
    "inception_unet": {"initial_filters": 8, "depth": 2},
    "efficientnet_unet": {"pretrained": False, "encoder_depth": 2, "decoder_channels": [8, 4]},
}


def tiny(arch: str, in_channels: int = 3, seed: int = 0, **extra: Any) -> SegmentationModel:
    torch.manual_seed(seed)
    return create_model(arch, in_channels=in_channels, **{**TINY[arch], **extra})


def test_registry_names() -> None:
    assert set(ARCHITECTURES) == {"unet", "tiramisu", "inception_unet", "efficientnet_unet"}
    assert set(TINY) == set(ARCHITECTURES)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("in_channels", [3, 4])
@pytest.mark.parametrize("size", [(32, 32), (32, 64), (48, 16)])
def test_output_shape(arch: str, in_channels: int, size: tuple[int, int]) -> None:
    model = tiny(arch, in_channels).eval()
    assert model.stride == 4 and model.in_channels == in_channels
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, *size))
    assert out.shape == (2, 1, *size)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_submodules(arch: str) -> None:
    model = tiny(arch)
    for part in ("encoder", "decoder", "head"):
        assert isinstance(getattr(model, part), nn.Module)
    names = {name.split(".")[0] for name, _ in model.named_parameters()}
    assert names == {"encoder", "decoder", "head"}


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_logits_not_probabilities(arch: str) -> None:
    model = tiny(arch).eval()
    model.head.conv.bias.data.fill_(-5.0)  # push outputs below 0: a sigmoid could not give these
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).min() < 0


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_indivisible_size(arch: str) -> None:
    model = tiny(arch)
    with pytest.raises(ValueError, match=r"input 30x32 is not divisible by the model's stride 4"):
        model(torch.randn(1, 3, 30, 32))
    with pytest.raises(ValueError, match=r"input 32x34 .* multiples of 4"):
        model(torch.randn(1, 3, 32, 34))


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_wrong_channels(arch: str) -> None:
    with pytest.raises(ValueError, match="expected 4 input channels, got 3"):
        tiny(arch, in_channels=4)(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="4-D input"):
        tiny(arch)(torch.randn(3, 32, 32))


def test_stride_is_two_to_the_depth() -> None:
    assert create_model("unet", initial_filters=2, depth=5).stride == 32
    assert create_model("inception_unet", initial_filters=8, depth=3).stride == 8
    model = create_model("tiramisu", down_blocks=[1, 1, 1], bottleneck_layers=1, growth_rate=2)
    assert model.stride == 8


def test_unknown_arch() -> None:
    with pytest.raises(ValueError, match=r"unknown architecture 'resnet'.*inception_unet.*unet"):
        create_model("resnet")


@pytest.mark.parametrize(
    ("arch", "params", "match"),
    [
        ("unet", {"filters": 8}, r"unknown parameter\(s\) filters for architecture 'unet'"),
        ("unet", {"depth": 0}, r"'unet'.*depth must be an integer >= 1"),
        ("unet", {"initial_filters": 4.5}, "initial_filters"),
        ("unet", {"upsample": "cubic"}, "upsample must be one of"),
        ("tiramisu", {"preset": "fcdensenet42"}, "unknown tiramisu preset"),
        ("tiramisu", {"down_blocks": [2, 2], "up_blocks": [2]}, "one entry per down block"),
        ("tiramisu", {"dropout": 1.5}, "dropout"),
        ("inception_unet", {"initial_filters": 4}, r"'inception_unet'.*initial_filters"),
        ("inception_unet", {"up_convs": 3}, r"unknown parameter.*allowed: initial_filters"),
    ],
)
def test_bad_params(arch: str, params: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create_model(arch, **params)


def soft_dice_loss(logits: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum()
    return 1 - (2 * inter + smooth) / (prob.sum() + target.sum() + smooth)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_a_few_steps_lower_the_loss(arch: str) -> None:
    model = tiny(arch, seed=1).train()
    gen = torch.Generator().manual_seed(2)
    image = torch.rand(2, 3, 32, 32, generator=gen)
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 1.0
    image = image + mask  # a visible square: learnable from the pixels themselves
    bce = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss_fn() -> Tensor:
        logits = model(image)
        return bce(logits, mask) + soft_dice_loss(logits, mask)

    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = loss_fn().item()
    assert final < 0.8 * losses[0], losses + [final]


#: Trainable parameters of the originals (DESIGN section 3). Keras's "total" adds BN's moving
#: mean and variance: U-Net 34.54 / 34.61 / 34.63 / 34.64 M, FC-DenseNet103 9.42 M.
KNOWN_COUNTS: list[tuple[str, dict[str, Any], int]] = [
    ("unet", {"initial_filters": 64, "depth": 4, "up_convs": 3}, 34_527_041),  # 128 model
    ("unet", {"initial_filters": 32, "depth": 5, "up_convs": 3}, 34_600_353),  # 256 model
    ("unet", {"initial_filters": 16, "depth": 6, "up_convs": 3}, 34_618_577),  # 512 model
    ("unet", {"initial_filters": 8, "depth": 7, "up_convs": 3}, 34_623_081),  # 1024 model
    ("unet", {"initial_filters": 64, "depth": 4, "up_convs": 2}, 31_390_721),
    ("tiramisu", {"preset": "original"}, 9_319_521),
    ("tiramisu", {"preset": "fcdensenet103"}, 9_319_521),
    ("tiramisu", {"preset": "fcdensenet67"}, 3_460_353),
    ("tiramisu", {"preset": "fcdensenet56"}, 1_374_865),
    ("inception_unet", {"initial_filters": 32, "depth": 5}, 7_073_303),
]


@pytest.mark.parametrize(("arch", "params", "expected"), KNOWN_COUNTS)
def test_parameter_counts(arch: str, params: dict[str, Any], expected: int) -> None:
    with torch.device("meta"):  # no memory, no initialisation: only shapes
        model = create_model(arch, **params)
    assert count_parameters(model) == expected


def test_original_unets_are_about_34_6_million() -> None:
    for _, _, count in KNOWN_COUNTS[:4]:
        assert round(count / 1e6, 1) in (34.5, 34.6)


def test_original_tiramisu_matches_design() -> None:
    with torch.device("meta"):
        model = create_model("tiramisu", preset="original")
    buffers = sum(b.numel() for n, b in model.named_buffers() if "running" in n)
    assert round((count_parameters(model) + buffers) / 1e6, 1) == 9.4  # DESIGN: 9.4 M
    assert model.stride == 32


def test_presets_and_overrides() -> None:
    with torch.device("meta"):
        for preset in ("fcdensenet56", "fcdensenet67", "fcdensenet103", "original"):
            assert create_model("tiramisu", preset=preset).stride == 32
        model = create_model("tiramisu", preset="fcdensenet67", growth_rate=4, down_blocks=[2, 3])
    assert model.stride == 4
    assert len(model.encoder.blocks) == 2 and len(model.decoder.blocks) == 2
    assert model.decoder.blocks[0].layers[0][2].out_channels == 4  # growth overridden
    assert len(model.encoder.bottleneck.layers) == 5  # bottleneck from the preset
    assert [len(b.layers) for b in model.decoder.blocks] == [3, 2]  # up = reversed down


def test_count_parameters_is_trainable_only() -> None:
    model = tiny("unet")
    total = count_parameters(model)
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    assert count_parameters(model) == total - sum(p.numel() for p in model.encoder.parameters())


def test_max_filters_caps_width() -> None:
    model = create_model("unet", initial_filters=4, depth=4, max_filters=16).eval()
    assert model.encoder.center[0].out_channels == 16
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 1, 16, 16)


@pytest.mark.parametrize("upsample", ["bilinear", "transpose"])
def test_upsample_modes(upsample: str) -> None:
    for arch in ("unet", "inception_unet"):
        model = tiny(arch, upsample=upsample).eval()
        assert model(torch.randn(1, 3, 16, 32)).shape == (1, 1, 16, 32)


def test_config_rebuilds_model() -> None:
    model = tiny("tiramisu", in_channels=4)
    clone = create_model(**model.config)
    clone.load_state_dict(model.state_dict())  # strict: same names and shapes
    assert clone.config == model.config and clone.in_channels == 4


def _trained_like(model: SegmentationModel) -> SegmentationModel:
    """Non-trivial BN statistics, so a transfer that skipped buffers would show."""
    with torch.no_grad():
        model.train()
        model(torch.randn(2, model.in_channels, 32, 32))
    return model.eval()


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_transfer_3_to_4_channels(arch: str) -> None:
    source = _trained_like(tiny(arch, in_channels=3, seed=3))
    target = tiny(arch, in_channels=4, seed=4).eval()
    assert load_compatible_state(target, source.state_dict()) == []
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = source(x)
        assert torch.allclose(target(torch.cat([x, torch.zeros(2, 1, 32, 32)], 1)), expected)
        # the extra channel starts with zero weights: any 4th channel leaves the output alone
        assert torch.allclose(target(torch.cat([x, torch.rand(2, 1, 32, 32)], 1)), expected)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_transfer_same_arch(arch: str) -> None:
    source = _trained_like(tiny(arch, seed=5))
    target = tiny(arch, seed=6).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(target(x), source(x))
        assert load_compatible_state(target, source.state_dict()) == []
        assert torch.equal(target(x), source(x))


def test_transfer_reports_what_it_did_not_load() -> None:
    source = tiny("unet", seed=7)
    target = create_model("unet", initial_filters=4, depth=3)  # one more level
    missing = load_compatible_state(target, source.state_dict())
    state = target.state_dict()
    assert missing and set(missing) < set(state)
    assert "encoder.blocks.0.0.weight" not in missing
    assert torch.equal(
        state["encoder.blocks.0.0.weight"], source.state_dict()["encoder.blocks.0.0.weight"]
    )
    assert any(name.startswith("encoder.center") for name in missing)  # 16 -> 32 filters


def test_transfer_ignores_compile_prefix() -> None:
    source = tiny("unet", seed=8)
    state = {f"_orig_mod.{k}": v for k, v in source.state_dict().items()}
    target = tiny("unet", seed=9)
    assert load_compatible_state(target, state) == []
    assert torch.equal(target.head.conv.weight, source.head.conv.weight)
