"""U-Net with InceptionV3-style blocks, ELU activations and strided-conv down-sampling."""

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


def conv_bn_elu(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    stride: int = 1,
) -> nn.Sequential:
    """Conv ('same' padding) -> BN -> ELU."""
    k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    return nn.Sequential(
        nn.Conv2d(
            in_channels, out_channels, k, stride=stride, padding=(k[0] // 2, k[1] // 2), bias=False
        ),
        nn.BatchNorm2d(out_channels),
        nn.ELU(inplace=True),
    )


class InceptionBlock(nn.Module):
    """Four parallel branches, concatenated, then BN -> ELU.

    Of ``out_channels``: 1/4 from a 1x1 conv; 1/2 from 1x1 -> 1x3 -> 3x1; 1/8 from 1x1 -> 1x5 ->
    5x1; 1/8 from MaxPool 3x3 (stride 1) -> 1x1. Each inner conv has BN and ELU.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        c1, c3, c4 = out_channels // 4, out_channels // 8, out_channels // 8
        c2 = out_channels - c1 - c3 - c4
        r2, r3 = max(1, 3 * out_channels // 8), max(1, out_channels // 16)
        self.branch1 = nn.Conv2d(in_channels, c1, kernel_size=1, bias=False)
        self.branch3 = nn.Sequential(
            conv_bn_elu(in_channels, r2, 1),
            conv_bn_elu(r2, c2, (1, 3)),
            nn.Conv2d(c2, c2, kernel_size=(3, 1), padding=(1, 0), bias=False),
        )
        self.branch5 = nn.Sequential(
            conv_bn_elu(in_channels, r3, 1),
            conv_bn_elu(r3, c3, (1, 5)),
            nn.Conv2d(c3, c3, kernel_size=(5, 1), padding=(2, 0), bias=False),
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
            nn.Conv2d(in_channels, c4, kernel_size=1, bias=False),
        )
        self.out = nn.Sequential(nn.BatchNorm2d(out_channels), nn.ELU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)]
        return self.out(torch.cat(branches, dim=1))


class InceptionEncoder(nn.Module):
    """``depth`` x [InceptionBlock -> Conv3x3 stride 2 -> BN -> ELU], then a centre block.

    Returns ``depth`` skip features (full resolution first) followed by the centre.
    """

    def __init__(self, in_channels: int, filters: list[int]) -> None:
        super().__init__()
        channels = [in_channels, *filters]
        self.blocks = nn.ModuleList(
            InceptionBlock(channels[i], channels[i + 1]) for i in range(len(filters) - 1)
        )
        self.downs = nn.ModuleList(conv_bn_elu(f, f, 3, stride=2) for f in filters[:-1])
        self.center = InceptionBlock(filters[-2], filters[-1])

    def forward(self, x: Tensor) -> list[Tensor]:
        features: list[Tensor] = []
        for block, down in zip(self.blocks, self.downs, strict=True):
            x = block(x)
            features.append(x)
            x = down(x)
        features.append(self.center(x))
        return features


class InceptionDecoder(nn.Module):
    """Per level, deepest first: upsample 2x, concatenate the skip, InceptionBlock."""

    def __init__(self, filters: list[int], upsample: str) -> None:
        super().__init__()
        skips = filters[:-1]
        ins = [filters[-1], *reversed(skips[1:])]
        self.ups = nn.ModuleList(upsample_layer(upsample, c) for c in ins)
        self.blocks = nn.ModuleList(
            InceptionBlock(c_in + c_skip, c_skip)
            for c_in, c_skip in zip(ins, reversed(skips), strict=True)
        )

    def forward(self, features: list[Tensor]) -> Tensor:
        x = features[-1]
        for up, block, skip in zip(self.ups, self.blocks, reversed(features[:-1]), strict=True):
            x = block(torch.cat([skip, up(x)], dim=1))
        return x


class InceptionUNet(SegmentationModel):
    """Inception U-Net: filters double from ``initial_filters`` (>= 8) at each of ``depth`` levels.

    One InceptionBlock per level on each side; ``upsample`` as in the U-Net.
    """

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 1,
        initial_filters: int = 32,
        depth: int = 5,
        upsample: str = "nearest",
    ) -> None:
        check_int("in_channels", in_channels, 1)
        check_int("classes", classes, 1)
        check_int("initial_filters", initial_filters, 8)
        check_int("depth", depth, 1)
        check_choice("upsample", upsample, UPSAMPLE_MODES)
        filters = [initial_filters * 2**i for i in range(depth + 1)]
        super().__init__(
            encoder=InceptionEncoder(in_channels, filters),
            decoder=InceptionDecoder(filters, upsample),
            head=SegmentationHead(filters[0], classes),
            stride=2**depth,
            in_channels=in_channels,
            classes=classes,
        )
