"""How big a network is, without building it: its parameter count and the FC-DenseNet's
activation width. No torch here: the Snakefile uses these (through carvana.resources) while it
builds the DAG. tests/test_resources.py checks every count against the built network.
"""

from __future__ import annotations

from typing import Any

#: FC-DenseNet presets as (first conv maps, down blocks' layers, bottleneck layers, growth), a
#: copy of carvana.models.tiramisu.PRESETS and COMMON (a test keeps them equal).
TIRAMISU_PRESETS: dict[str, tuple[int, tuple[int, ...], int, int]] = {
    "fcdensenet56": (48, (4, 4, 4, 4, 4), 4, 12),
    "fcdensenet67": (48, (5, 5, 5, 5, 5), 5, 16),
    "fcdensenet103": (48, (4, 5, 7, 10, 12), 15, 16),
    "original": (48, (4, 5, 7, 10, 12), 15, 16),
}
#: EfficientNet-Lite encoders as the U-Net keeps them (stem and blocks up to the last skip,
#: 3 input channels): parameters, and the channels of their five features, stem first.
EFFICIENTNET_ENCODERS: dict[str, tuple[int, tuple[int, ...]]] = {
    "lite0": (2_958_848, (32, 24, 40, 112, 320)),
    "lite1": (3_723_520, (32, 24, 40, 112, 320)),
    "lite2": (4_357_952, (32, 24, 48, 120, 352)),
}
EFFICIENTNET_STEM = 32  # the stem's output maps: an extra input channel adds 32 x 3 x 3


def _conv(c_in: int, c_out: int, k: int = 9, bias: bool = True, bn: bool = True) -> int:
    """A convolution of ``k`` taps (with its bias, and a batch norm after it)."""
    return k * c_in * c_out + (c_out if bias else 0) + (2 * c_out if bn else 0)


def _up(mode: str, channels: int) -> int:
    """carvana.models.base.upsample_layer: only 'transpose' (2x2, stride 2) has weights."""
    return _conv(channels, channels, 4, bn=False) if mode == "transpose" else 0


def unet_parameters(params: dict[str, Any], in_channels: int = 3) -> int:
    """carvana.models.unet.UNet: [Conv3x3-BN-ReLU] x 2 down, x ``up_convs`` up."""
    f, depth = int(params.get("initial_filters", 64)), int(params.get("depth", 4))
    cap = params.get("max_filters") or f * 2**depth
    filters = [min(f * 2**i, cap) for i in range(depth + 1)]
    ups, mode = int(params.get("up_convs", 3)), params.get("upsample", "nearest")
    chans = [in_channels, *filters]
    total = sum(_conv(a, b) + _conv(b, b) for a, b in zip(chans[:-1], chans[1:], strict=True))
    ins = [filters[-1], *reversed(filters[1:-1])]
    for c_in, skip in zip(ins, reversed(filters[:-1]), strict=True):
        total += _up(mode, c_in) + _conv(c_in + skip, skip) + (ups - 1) * _conv(skip, skip)
    return total + filters[0] + 1


def _inception_block(c_in: int, out: int) -> int:
    """carvana.models.inception_unet.InceptionBlock (convolutions without bias)."""
    c1, c3 = out // 4, out // 8
    c2 = out - c1 - 2 * c3
    r2, r3 = max(1, 3 * out // 8), max(1, out // 16)
    branch3 = _conv(c_in, r2, 1, False) + _conv(r2, c2, 3, False) + _conv(c2, c2, 3, False, False)
    branch5 = _conv(c_in, r3, 1, False) + _conv(r3, c3, 5, False) + _conv(c3, c3, 5, False, False)
    return c_in * (c1 + c3) + branch3 + branch5 + 2 * out


def inception_parameters(params: dict[str, Any], in_channels: int = 3) -> int:
    """carvana.models.inception_unet.InceptionUNet."""
    f, depth = int(params.get("initial_filters", 32)), int(params.get("depth", 5))
    filters = [f * 2**i for i in range(depth + 1)]
    mode = params.get("upsample", "nearest")
    chans = [in_channels, *filters]
    total = sum(_inception_block(a, b) for a, b in zip(chans[:-1], chans[1:], strict=True))
    total += sum(_conv(c, c, 9, False) for c in filters[:-1])  # strided down-sampling
    ins = [filters[-1], *reversed(filters[1:-1])]
    for c_in, skip in zip(ins, reversed(filters[:-1]), strict=True):
        total += _up(mode, c_in) + _inception_block(c_in + skip, skip)
    return total + filters[0] + 1


def tiramisu_structure(params: dict[str, Any]) -> tuple[int, list[int], int, int, list[int]]:
    """(first conv maps, down blocks, bottleneck layers, growth, up blocks) of a Tiramisu's
    ``params``: its preset (default fcdensenet56), explicit values winning."""
    first, down, bottleneck, growth = TIRAMISU_PRESETS[params.get("preset") or "fcdensenet56"]
    down = list(params.get("down_blocks") or down)
    up = list(params.get("up_blocks") or down[::-1])
    return (int(params.get("first_filters") or first), down,
            int(params.get("bottleneck_layers") or bottleneck),
            int(params.get("growth_rate") or growth), up)


def _dense_levels(params: dict[str, Any]) -> list[tuple[int, int, int]]:
    """Every dense block of a Tiramisu as (level, input channels, layers): down path,
    bottleneck, up path."""
    first, down, bottleneck, growth, up = tiramisu_structure(params)
    blocks, channels, skips = [], first, []
    for level, layers in enumerate(down):
        blocks.append((level, channels, layers))
        channels += layers * growth
        skips.append(channels)
    blocks.append((len(down), channels, bottleneck))
    new = bottleneck * growth
    for k, (skip, layers) in enumerate(zip(reversed(skips), up, strict=True)):
        blocks.append((len(down) - 1 - k, new + skip, layers))
        new = layers * growth
    return blocks


def tiramisu_parameters(params: dict[str, Any], in_channels: int = 3) -> int:
    """carvana.models.tiramisu.Tiramisu: dense layers BN-ReLU-Conv3x3, 1x1 transitions down,
    3x3 transposed convolutions up."""
    first, down, bottleneck, growth, _ = tiramisu_structure(params)
    blocks = _dense_levels(params)
    total = _conv(in_channels, first, bn=False)
    for _, c_in, layers in blocks:
        total += sum(2 * (c_in + i * growth) + _conv(c_in + i * growth, growth, bn=False)
                     for i in range(layers))
    skips = [c_in + layers * growth for _, c_in, layers in blocks[: len(down)]]
    total += sum(2 * c + _conv(c, c, 1, bn=False) for c in skips)  # transitions down
    news = [bottleneck * growth] + [layers * growth for _, _, layers in blocks[len(down) + 1:]]
    total += sum(_conv(n, n, bn=False) for n in news[:-1])  # transposed convolutions up
    _, c_last, l_last = blocks[-1]
    return total + c_last + l_last * growth + 1


def tiramisu_activations(params: dict[str, Any]) -> float:
    """What a Tiramisu keeps for its backward pass per input pixel, in channels: every dense
    layer's input (the growing concatenation) and twice its new maps (convolution, dropout),
    weighted by its level's share of the pixels."""
    growth = tiramisu_structure(params)[3]
    return sum(sum(c_in + (i + 2) * growth for i in range(layers)) / 4**level
               for level, c_in, layers in _dense_levels(params))


def efficientnet_parameters(params: dict[str, Any], in_channels: int = 3) -> int:
    """carvana.models.efficientnet.EfficientNetUNet: the encoder (table) and smp's decoder."""
    encoder, channels = EFFICIENTNET_ENCODERS[params.get("encoder", "lite0")]
    decoder = list(params.get("decoder_channels") or [256, 128, 64, 32, 16])
    depth = int(params.get("encoder_depth", 5))
    feats = list(channels[:depth])
    total = encoder + (in_channels - 3) * EFFICIENTNET_STEM * 9
    full = int(params.get("full_res_skip", 0))
    if full:  # a Conv3x3 -> BN on the input at stride 1
        total += _conv(in_channels, full, bias=False)
    ins, skips = [feats[-1], *decoder[:-1]], [*reversed(feats[:-1]), full]
    for c_in, skip, out in zip(ins, skips, decoder, strict=True):
        total += _conv(c_in + skip, out, bias=False) + _conv(out, out, bias=False)
    return total + decoder[-1] + 1


PARAMETERS = {"unet": unet_parameters, "inception_unet": inception_parameters,
              "tiramisu": tiramisu_parameters, "efficientnet_unet": efficientnet_parameters}


def parameter_count(arch: str, params: dict[str, Any], in_channels: int = 3) -> int:
    """The network's parameters, as ``carvana.models.count_parameters`` counts the built one."""
    if arch not in PARAMETERS:
        raise ValueError(f"no parameter count for architecture {arch!r} "
                         f"(known: {sorted(PARAMETERS)})")
    return PARAMETERS[arch](params, in_channels)
