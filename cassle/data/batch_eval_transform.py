"""The deterministic evaluation transform of batched loaders: to float, [resize + centre crop], normalise."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .augment_ops import _mean_std, to_float_nchw


class EvalTransform:
    """Deterministic eval transform: to float, [resize + centre crop], normalise.

    With size: the shorter side is resized to `resize` (default: size; bilinear, antialiased like
    torchvision's tensor Resize) and the centre size x size is cropped (torchvision's CenterCrop
    rounding). ImageNet protocol: size=224, resize=256.

    The arguments are checked once, here, and mean / std are kept on each device they are used
    on: rebuilding them per batch would copy them host-to-device for every eval batch.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], size: int | None = None, resize: int | None = None):
        if size is not None:
            resize = size if resize is None else resize
            if resize < size:
                raise ValueError(f"resize ({resize}) must be >= size ({size})")
        self.size, self.resize = size, resize
        self.mean, self.std = _mean_std(mean, std)
        self._on_device: dict[torch.device, tuple[Tensor, Tensor]] = {}

    def mean_std(self, device: torch.device) -> tuple[Tensor, Tensor]:
        if device not in self._on_device:
            self._on_device[device] = (self.mean.to(device), self.std.to(device))
        return self._on_device[device]

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        x = to_float_nchw(images)
        if self.size is not None:
            x = _resize_center_crop(x, self.size, self.resize)
        mean, std = self.mean_std(x.device)
        return (x - mean) / std


def _resize_center_crop(x: Tensor, size: int, resize: int) -> Tensor:
    height, width = x.shape[-2:]
    if min(height, width) != resize:
        scale = resize / min(height, width)
        new_hw = (resize, int(width * scale)) if height <= width else (int(height * scale), resize)
        x = F.interpolate(x, size=new_hw, mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)
    height, width = x.shape[-2:]
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return x[:, :, top : top + size, left : left + size]


def eval_transform_batch(
    images: Tensor, mean: Sequence[float], std: Sequence[float], size: int | None = None, resize: int | None = None
) -> Tensor:
    """One-off `EvalTransform(mean, std, size, resize)(images)`; loaders keep an EvalTransform."""
    return EvalTransform(mean, std, size, resize)(images)
