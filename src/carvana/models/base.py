"""The shared model shape: ``encoder`` -> ``decoder`` -> ``head``, as in segmentation_models_pytorch."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

#: Probabilities are kept this far from 0 and 1 before their logit: a saturated map gives
#: logits of about +-6.9, which the network can still overrule.
PRIOR_EPS = 1e-3


def prior_logit(prob: Tensor) -> Tensor:
    """The logit of a probability map in [0, 1], bounded by ``PRIOR_EPS`` (safe in bfloat16:
    no ``1 - p`` that rounds to 0 before the log)."""
    return torch.log(prob + PRIOR_EPS) - torch.log(1 - prob + PRIOR_EPS)


class SegmentationHead(nn.Module):
    """A 1x1 convolution from the decoder's channels to ``classes`` logits (no activation)."""

    def __init__(self, in_channels: int, classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, classes, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class SegmentationModel(nn.Module):
    """An encoder, a decoder and a head; ``forward`` returns logits of shape (N, classes, H, W).

    The encoder maps the image to a list of feature maps (skips first, deepest last), the decoder
    maps that list to one full-resolution feature map and the head maps it to logits. There is no
    sigmoid: train with ``BCEWithLogitsLoss`` (safe under mixed precision), apply it to predict.

    With ``prior_residual`` the input's 4th channel is a probability map (a depth model's
    low-res prior) and the logits are its logit plus the network's output: the network learns
    a correction to the map, which it must outweigh to overrule a confident pixel.
    """

    encoder: nn.Module
    decoder: nn.Module
    head: nn.Module
    stride: int
    in_channels: int
    classes: int
    config: dict[str, Any]

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        head: nn.Module,
        *,
        stride: int,
        in_channels: int,
        classes: int,
        prior_residual: bool = False,
    ) -> None:
        super().__init__()
        if check_bool("prior_residual", prior_residual) and (in_channels < 4 or classes != 1):
            raise ValueError("prior_residual needs a 4th input channel (the probability map: "
                             f"a depth model) and one class; got in_channels={in_channels}, "
                             f"classes={classes}")
        self.prior_residual = prior_residual
        self.encoder = encoder
        self.decoder = decoder
        self.head = head
        self.stride = stride
        self.in_channels = in_channels
        self.classes = classes
        self.config = {}  # filled by create_model: create_model(**model.config) rebuilds the model
        self.encoder_frozen = False  # set by set_encoder_trainable

    def train(self, mode: bool = True) -> SegmentationModel:
        """As ``nn.Module.train``, but a frozen encoder's BatchNorms stay in eval mode."""
        super().train(mode)
        if self.encoder_frozen:
            _batchnorms_train(self.encoder, False)
        return self

    def check_input_shape(self, x: Tensor) -> None:
        """Raise ValueError unless ``x`` is (N, in_channels, H, W) with H and W multiples of stride."""
        if x.ndim != 4:
            raise ValueError(f"expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
        channels, height, width = (int(s) for s in x.shape[1:])
        if channels != self.in_channels:
            raise ValueError(
                f"expected {self.in_channels} input channels, got {channels} "
                f"(input shape {tuple(x.shape)})"
            )
        if height % self.stride or width % self.stride:
            raise ValueError(
                f"input {height}x{width} is not divisible by the model's stride {self.stride}: "
                f"use sizes that are multiples of {self.stride}"
            )

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, classes, H, W) for an image batch (N, in_channels, H, W)."""
        self.check_input_shape(x)
        logits = self.head(self.decoder(self.encoder(x)))
        return logits + prior_logit(x[:, 3:4]) if self.prior_residual else logits


def _batchnorms_train(module: nn.Module, mode: bool) -> None:
    """Put every BatchNorm inside ``module`` in train (``mode``) or eval mode."""
    for sub in module.modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            sub.train(mode)


def set_encoder_trainable(model: SegmentationModel, trainable: bool) -> None:
    """Freeze (``trainable=False``) or unfreeze ``model.encoder``: its parameters'
    ``requires_grad``, and its BatchNorms held in eval mode (fixed running statistics) while
    frozen. Call it after ``model.train()``; ``SegmentationModel.train`` also keeps frozen
    BatchNorms in eval mode, so a later ``model.train()`` does not undo it.
    """
    for param in model.encoder.parameters():
        param.requires_grad_(trainable)
    model.encoder_frozen = not trainable
    _batchnorms_train(model.encoder, model.training and trainable)


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, or ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a bool, or ValueError naming ``name`` (YAML's yes/no are bools)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, or ValueError naming ``name``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def upsample_layer(mode: str, channels: int) -> nn.Module:
    """2x up-sampling: 'nearest' (Keras UpSampling2D's default), 'bilinear' or 'transpose'."""
    if mode == "transpose":
        return nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2)
    if mode == "bilinear":
        return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    return nn.Upsample(scale_factor=2, mode="nearest")


UPSAMPLE_MODES = ("nearest", "bilinear", "transpose")
