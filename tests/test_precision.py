"""Depthwise convolutions compute in float32 while training under CPU bfloat16 autocast,
and exactly as before without gradients (validation, prediction)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from carvana.models import create_model
from carvana.models.precision import float32_depthwise, is_depthwise

torch.set_num_threads(1)


def depthwise(channels: int = 8) -> nn.Conv2d:
    torch.manual_seed(0)
    return nn.Conv2d(channels, channels, 5, stride=2, padding=2, groups=channels)


def bf16_autocast() -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16)


def test_training_forward_is_float32_rounded_to_bf16() -> None:
    conv, plain = depthwise(), depthwise()
    assert float32_depthwise(conv) == 1
    x = torch.randn(2, 8, 33, 47, requires_grad=True)
    with bf16_autocast():
        out = conv(x)
        before = plain(x)
    assert out.dtype == before.dtype == torch.bfloat16  # what autocast hands on is unchanged
    with torch.no_grad():
        exact = plain(x)  # float32, no autocast
    assert torch.equal(out, exact.to(torch.bfloat16))
    assert not torch.equal(out, before)  # bf16 arithmetic rounds differently
    out.float().square().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.dtype == torch.float32
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_without_gradients_nothing_changes() -> None:
    conv, plain = depthwise(), depthwise()
    float32_depthwise(conv)
    x = torch.randn(2, 8, 33, 47)
    for context in (torch.no_grad, torch.inference_mode):
        with context(), bf16_autocast():
            assert torch.equal(conv(x), plain(x))
    with torch.no_grad():  # and without autocast, float32 as ever
        assert torch.equal(conv(x), plain(x))


def test_only_depthwise_layers_switch_and_back() -> None:
    net = nn.Sequential(depthwise(), nn.Conv2d(8, 8, 3), nn.Conv2d(8, 8, 3, groups=2))
    assert [is_depthwise(m) for m in net] == [True, False, False]
    assert float32_depthwise(net) == 1
    assert float32_depthwise(net) == 1  # idempotent: one class per base
    assert type(net[0]).plain is nn.Conv2d and type(net[1]) is nn.Conv2d
    assert float32_depthwise(net, enabled=False) == 1
    assert type(net[0]) is nn.Conv2d


def test_efficientnet_encoder_switches_every_block_and_keeps_its_state() -> None:
    model = create_model("efficientnet_unet", encoder="lite0", pretrained=False)
    blocks = model.encoder._blocks
    switched = [type(b._depthwise_conv).__name__.startswith("Float32Training") for b in blocks]
    assert switched and all(switched)
    keys = list(model.state_dict())
    assert float32_depthwise(model, enabled=False) == len(blocks)
    assert list(model.state_dict()) == keys  # checkpoints load either way
    clone = copy.deepcopy(model)
    assert float32_depthwise(clone) == len(blocks)
    x = torch.rand(1, 3, 64, 96)
    model.eval()
    clone.eval()
    with torch.inference_mode(), bf16_autocast():
        assert torch.equal(model(x), clone(x))  # prediction: the same bytes as before
