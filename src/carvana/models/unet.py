"""The original U-Net of the Carvana solution (Keras notebooks, DESIGN section 3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import (
    UPSAMPLE_MODES,
    SegmentationHead,
    SegmentationModel,
    check_choice,
    check_int,
    upsample_layer,
)


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    """Conv3x3 (with bias, as Keras' Conv2D) -> BatchNorm -> ReLU."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class ConvBlock(nn.Sequential):
    """``n_convs`` x [Conv3x3 -> BN -> ReLU]."""

    def __init__(self, in_channels: int, out_channels: int, n_convs: int = 2) -> None:
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += conv_bn_relu(in_channels if i == 0 else out_channels, out_channels)
        super().__init__(*layers)


class UNetEncoder(nn.Module):
    """``depth`` x [ConvBlock -> MaxPool 2x2], then the centre ConvBlock.

    Returns ``depth`` skip features (full resolution first) followed by the centre.
    """

    def __init__(self, in_channels: int, filters: list[int]) -> None:
        super().__init__()
        channels = [in_channels, *filters]
        self.blocks = nn.ModuleList(
            ConvBlock(channels[i], channels[i + 1]) for i in range(len(filters) - 1)
        )
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.center = ConvBlock(channels[-2], channels[-1])
        self.out_channels = filters

    def forward(self, x: Tensor) -> list[Tensor]:
        features: list[Tensor] = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
            x = self.pool(x)
        features.append(self.center(x))
        return features


class UNetDecoderBlock(nn.Module):
    """Upsample 2x, concatenate the skip, ``n_convs`` x [Conv3x3 -> BN -> ReLU]."""

    def __init__(
        self, in_channels: int, skip_channels: int, out_channels: int, n_convs: int, upsample: str
    ) -> None:
        super().__init__()
        self.up = upsample_layer(upsample, in_channels)
        self.convs = ConvBlock(in_channels + skip_channels, out_channels, n_convs)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.convs(torch.cat([skip, self.up(x)], dim=1))


class UNetDecoder(nn.Module):
    """One decoder block per encoder level, deepest first; returns the full-resolution features."""

    def __init__(self, filters: list[int], up_convs: int, upsample: str) -> None:
        super().__init__()
        skips = filters[:-1]
        ins = [filters[-1], *reversed(skips[1:])]
        self.blocks = nn.ModuleList(
            UNetDecoderBlock(c_in, c_skip, c_skip, up_convs, upsample)
            for c_in, c_skip in zip(ins, reversed(skips), strict=True)
        )
        self.out_channels = filters[0]

    def forward(self, features: list[Tensor]) -> Tensor:
        x = features[-1]
        for block, skip in zip(self.blocks, reversed(features[:-1]), strict=True):
            x = block(x, skip)
        return x


class UNet(SegmentationModel):
    """U-Net: filters double from ``initial_filters`` at each of ``depth`` levels down to the centre.

    The originals were ``initial_filters`` 64/32/16/8 with ``depth`` 4/5/6/7 (a 1024-filter
    centre) and 3 convolutions per up block. ``max_filters`` caps the width of every level;
    ``upsample`` is 'nearest' (Keras UpSampling2D), 'bilinear' or 'transpose' (ConvTranspose2d).
    """

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 1,
        initial_filters: int = 64,
        depth: int = 4,
        up_convs: int = 3,
        max_filters: int | None = None,
        upsample: str = "nearest",
    ) -> None:
        check_int("in_channels", in_channels, 1)
        check_int("classes", classes, 1)
        check_int("initial_filters", initial_filters, 1)
        check_int("depth", depth, 1)
        check_int("up_convs", up_convs, 1)
        if max_filters is not None:
            check_int("max_filters", max_filters, initial_filters)
        check_choice("upsample", upsample, UPSAMPLE_MODES)
        cap = max_filters if max_filters is not None else initial_filters * 2**depth
        filters = [min(initial_filters * 2**i, cap) for i in range(depth + 1)]
        super().__init__(
            encoder=UNetEncoder(in_channels, filters),
            decoder=UNetDecoder(filters, up_convs, upsample),
            head=SegmentationHead(filters[0], classes),
            stride=2**depth,
            in_channels=in_channels,
            classes=classes,
        )
