"""FC-DenseNet ("the one hundred layers tiramisu", Jegou et al. 2017)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .base import SegmentationHead, SegmentationModel, check_int

#: The paper's three models, and the Carvana solution's "original" (DESIGN section 3: blocks
#: [4, 5, 7, 10, 12, 15], growth 16, first conv 48, dropout 0.2). Only reading the last entry as
#: the bottleneck (five down blocks, 15-layer bottleneck, up blocks mirrored) gives the 9.4 M
#: parameters DESIGN quotes: that is FC-DenseNet103 exactly.
PRESETS: dict[str, dict[str, Any]] = {
    "fcdensenet56": {"down_blocks": [4] * 5, "bottleneck_layers": 4, "growth_rate": 12},
    "fcdensenet67": {"down_blocks": [5] * 5, "bottleneck_layers": 5, "growth_rate": 16},
    "fcdensenet103": {"down_blocks": [4, 5, 7, 10, 12], "bottleneck_layers": 15, "growth_rate": 16},
    "original": {"down_blocks": [4, 5, 7, 10, 12], "bottleneck_layers": 15, "growth_rate": 16},
}
COMMON = {"first_filters": 48, "dropout": 0.2}


class DenseLayer(nn.Sequential):
    """BN -> ReLU -> Conv3x3 (``growth_rate`` maps) -> Dropout."""

    def __init__(self, in_channels: int, growth_rate: int, dropout: float) -> None:
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, growth_rate, kernel_size=3, padding=1),
            nn.Dropout(dropout),
        )


class DenseBlock(nn.Module):
    """``n_layers`` dense layers, each fed the concatenation of the input and all earlier outputs.

    ``forward`` returns (input + new maps, new maps only).
    """

    def __init__(self, in_channels: int, n_layers: int, growth_rate: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(in_channels + i * growth_rate, growth_rate, dropout) for i in range(n_layers)
        )
        self.out_channels = in_channels + n_layers * growth_rate
        self.new_channels = n_layers * growth_rate

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        new: list[Tensor] = []
        for layer in self.layers:
            out = layer(x)
            x = torch.cat([x, out], dim=1)
            new.append(out)
        return x, torch.cat(new, dim=1)


class TransitionDown(nn.Sequential):
    """BN -> ReLU -> Conv1x1 (same width) -> Dropout -> MaxPool 2x2."""

    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__(
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size=1),
            nn.Dropout(dropout),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )


class TiramisuEncoder(nn.Module):
    """First 3x3 conv, [dense block -> transition down] per level, then the bottleneck block.

    Returns the skip of every level (full resolution first) and, last, only the new maps of the
    bottleneck (the paper up-samples only those, to keep the up path narrow).
    """

    def __init__(
        self,
        in_channels: int,
        first_filters: int,
        down_blocks: Sequence[int],
        bottleneck_layers: int,
        growth_rate: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.first_conv = nn.Conv2d(in_channels, first_filters, kernel_size=3, padding=1)
        self.blocks = nn.ModuleList()
        self.transitions = nn.ModuleList()
        channels = first_filters
        self.skip_channels: list[int] = []
        for n_layers in down_blocks:
            block = DenseBlock(channels, n_layers, growth_rate, dropout)
            channels = block.out_channels
            self.blocks.append(block)
            self.transitions.append(TransitionDown(channels, dropout))
            self.skip_channels.append(channels)
        self.bottleneck = DenseBlock(channels, bottleneck_layers, growth_rate, dropout)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.first_conv(x)
        features: list[Tensor] = []
        for block, transition in zip(self.blocks, self.transitions, strict=True):
            x, _ = block(x)
            features.append(x)
            x = transition(x)
        _, new = self.bottleneck(x)
        features.append(new)
        return features


class TiramisuDecoder(nn.Module):
    """Per level, deepest first: ConvTranspose3x3 stride 2 on the previous block's new maps,
    concatenate the skip, dense block. The last block returns its whole concatenation.
    """

    def __init__(
        self,
        skip_channels: Sequence[int],
        bottleneck_layers: int,
        up_blocks: Sequence[int],
        growth_rate: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        new_channels = bottleneck_layers * growth_rate
        out_channels = new_channels
        for skip, n_layers in zip(reversed(skip_channels), up_blocks, strict=True):
            self.ups.append(
                nn.ConvTranspose2d(
                    new_channels,
                    new_channels,
                    kernel_size=3,
                    stride=2,
                    padding=1,
                    output_padding=1,
                )
            )
            block = DenseBlock(new_channels + skip, n_layers, growth_rate, dropout)
            self.blocks.append(block)
            new_channels = block.new_channels
            out_channels = block.out_channels
        self.out_channels = out_channels

    def forward(self, features: list[Tensor]) -> Tensor:
        x = features[-1]
        skips = features[-2::-1]
        last = len(self.blocks) - 1
        for i, (up, block, skip) in enumerate(zip(self.ups, self.blocks, skips, strict=True)):
            full, new = block(torch.cat([up(x), skip], dim=1))
            x = full if i == last else new
        return x


class Tiramisu(SegmentationModel):
    """FC-DenseNet. ``preset`` (default 'fcdensenet56') gives the defaults; explicit params win.

    ``up_blocks`` defaults to ``down_blocks`` reversed; stride is ``2 ** len(down_blocks)``.
    """

    # Each parameter is a config key of `params:` and of a checkpoint's saved config; the
    # registry reads them from this signature (arch_params), so they stay flat.
    def __init__(  # noqa: PLR0913
        self,
        in_channels: int = 3,
        classes: int = 1,
        preset: str | None = None,
        down_blocks: Sequence[int] | None = None,
        bottleneck_layers: int | None = None,
        up_blocks: Sequence[int] | None = None,
        growth_rate: int | None = None,
        first_filters: int | None = None,
        dropout: float | None = None,
    ) -> None:
        check_int("in_channels", in_channels, 1)
        check_int("classes", classes, 1)
        name = preset if preset is not None else "fcdensenet56"
        if name not in PRESETS:
            raise ValueError(f"unknown tiramisu preset {name!r}; choose from {', '.join(PRESETS)}")
        base = {**COMMON, **PRESETS[name]}
        down = list(down_blocks if down_blocks is not None else base["down_blocks"])
        if not down:
            raise ValueError("down_blocks must list at least one dense block")
        for n in down:
            check_int("down_blocks entries", n, 1)
        up = list(up_blocks) if up_blocks is not None else down[::-1]
        if len(up) != len(down):
            raise ValueError(
                f"up_blocks needs one entry per down block ({len(down)}), got {len(up)}"
            )
        for n in up:
            check_int("up_blocks entries", n, 1)
        bottleneck = check_int(
            "bottleneck_layers",
            bottleneck_layers if bottleneck_layers is not None else base["bottleneck_layers"],
            1,
        )
        growth = check_int(
            "growth_rate", growth_rate if growth_rate is not None else base["growth_rate"], 1
        )
        first = check_int(
            "first_filters",
            first_filters if first_filters is not None else base["first_filters"],
            1,
        )
        drop = float(dropout if dropout is not None else base["dropout"])
        if not 0.0 <= drop < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {drop}")
        encoder = TiramisuEncoder(in_channels, first, down, bottleneck, growth, drop)
        decoder = TiramisuDecoder(encoder.skip_channels, bottleneck, up, growth, drop)
        super().__init__(
            encoder=encoder,
            decoder=decoder,
            head=SegmentationHead(decoder.out_channels, classes),
            stride=2 ** len(down),
            in_channels=in_channels,
            classes=classes,
        )
