"""CPU (torchvision.transforms.v2) augmentations.

One view, in the reference order:
RandomResizedCrop(bicubic) -> ColorJitter (p) -> Grayscale (p) -> GaussianBlur (p) -> Solarize (p)
-> HorizontalFlip (p) -> float in [0, 1] -> Normalize.
Inputs may be PIL images or uint8 CHW tensors. Tensors are turned into PIL images first: on small
images the PIL kernels are ~10x faster per sample than torchvision's tensor kernels (hue jitter
especially), and PIL is what the reference used (solarize threshold 128 on 0..255 values).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torchvision.transforms import v2


def blur_kernel_size(crop_size: int) -> int:
    """Odd Gaussian-blur kernel of about 10% of the crop: 23 for 224 (the reference), 3 for 32."""
    return 2 * int(0.05 * crop_size) + 1


def build_view_transform(settings: dict[str, Any], mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """One augmentation pipeline from a per-view settings dict (see ``args.view_settings``)."""
    s = settings
    crop = int(s["crop_size"])
    interp = v2.InterpolationMode(s.get("interpolation", "bicubic"))  # bicubic: the reference
    ops: list[Callable] = [
        v2.ToPILImage(),  # uint8 CHW tensor -> PIL; PIL inputs pass through unchanged
        v2.RandomResizedCrop(crop, scale=(s["min_scale"], s["max_scale"]), interpolation=interp, antialias=True),
    ]
    jitter = (s["brightness"], s["contrast"], s["saturation"], s["hue"])
    if s["color_jitter_prob"] > 0 and any(j > 0 for j in jitter):
        ops.append(v2.RandomApply([v2.ColorJitter(*jitter)], p=s["color_jitter_prob"]))
    if s["gray_scale_prob"] > 0:
        ops.append(v2.RandomGrayscale(p=s["gray_scale_prob"]))
    if s["gaussian_prob"] > 0:
        blur = v2.GaussianBlur(blur_kernel_size(crop), sigma=(0.1, 2.0))
        ops.append(v2.RandomApply([blur], p=s["gaussian_prob"]))
    if s["solarization_prob"] > 0:
        ops.append(v2.RandomSolarize(threshold=128, p=s["solarization_prob"]))
    if s["horizontal_flip_prob"] > 0:
        ops.append(v2.RandomHorizontalFlip(p=s["horizontal_flip_prob"]))
    ops += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std)), v2.ToPureTensor()]
    return v2.Compose(ops)


class NViewTransform:
    """Applies each transform to the same input and returns the list of views."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, x) -> list[torch.Tensor]:
        return [t(x) for t in self.transforms]

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        inner = "\n".join(f"  view {i + 1}: {t}" for i, t in enumerate(self.transforms))
        return f"NViewTransform(\n{inner}\n)"


def build_multiview_transform(
    settings: Sequence[dict[str, Any]], mean: Sequence[float], std: Sequence[float]
) -> NViewTransform:
    """One pipeline per view settings dict."""
    return NViewTransform([build_view_transform(s, mean, std) for s in settings])


def build_eval_transform(
    mean: Sequence[float],
    std: Sequence[float],
    *,
    folder: bool,
    crop_size: int | None = None,
    image_size: int | None = None,
    normalise: bool = True,
) -> v2.Compose:
    """Deterministic evaluation transform.

    ``folder=False`` (CIFAR-like tensor sets): only scale + normalise, resizing to ``crop_size``
    if the images have another ``image_size``. ``folder=True``: Resize(256, bicubic) + CenterCrop(224),
    i.e. resize to crop_size * 256/224 then centre-crop ``crop_size`` (default 224), as the reference's
    DALI validation pipeline.
    ``normalise=False`` stops at the uint8 CHW image (to cache it; scaling and normalising
    later gives the same values).
    """
    ops: list[Callable] = []
    if folder:
        crop = crop_size or 224
        # bicubic: the reference's image folders ran through DALI (INTERP_CUBIC) in every script
        ops += [
            v2.Resize(round(crop * 256 / 224), interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
            v2.CenterCrop(crop),
        ]
    elif crop_size is not None and image_size is not None and crop_size != image_size:
        ops.append(v2.Resize((crop_size, crop_size), antialias=True))
    ops.append(v2.ToImage())
    if normalise:
        ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    ops.append(v2.ToPureTensor())
    return v2.Compose(ops)
