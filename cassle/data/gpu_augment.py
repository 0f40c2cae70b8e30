"""Batched SSL augmentation modules: one view (`BatchAugment`) and several (`MultiViewBatchAugment`).

The reference pipeline augments every image in PIL inside DataLoader workers; for small images
(CIFAR) that is the bottleneck of a run. These modules draw per-sample random parameters and apply
the primitives of `augment_ops` (whose docstring gives the pipeline, its order and every
difference from the PIL pipeline) to whole uint8 batches on any device. The datamodule calls
`MultiViewBatchAugment` in `on_after_batch_transfer`. The deterministic evaluation transform lives
in `batch_eval_transform` and is re-exported here. `python -m cassle.data.gpu_augment` prints the
throughput on the current machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .augment_ops import *  # noqa: F401,F403  (the primitives, re-exported for callers and tests)
from .augment_ops import (
    BLUR_SIGMA,
    CROP_RATIO,
    INTERPOLATIONS,
    OPTIONAL_KEYS,
    PROB_KEYS,
    REQUIRED_KEYS,
    _mean_std,
    _uniform,
    blur_kernel_size,
    color_jitter,
    crop_resize,
    gaussian_blur,
    random_grayscale,
    sample_crop_boxes,
    solarize,
    to_float_nchw,
)
from .batch_eval_transform import EvalTransform, _resize_center_crop, eval_transform_batch  # noqa: F401


# ----------------------------------------------------------------------------- modules
@dataclass
class AugmentParams:
    """Per-sample random parameters of one view (all tensors with leading dim B)."""

    boxes: Tensor  # (B, 4) long: i, j, h, w
    flip: Tensor  # (B,) bool
    jitter: Tensor  # (B,) bool: colour jitter applied
    factors: Tensor  # (B, 4): brightness, contrast, saturation, hue
    order: Tensor  # (B, 4) long: per-sample permutation of the jitter op ids
    gray: Tensor  # (B,) bool
    blur: Tensor  # (B,) bool
    sigma: Tensor  # (B,)
    solarize: Tensor  # (B,) bool


def check_settings(settings: dict) -> dict:
    """Validate one view's settings; returns a copy with optional keys filled in."""
    if not isinstance(settings, dict):
        raise TypeError(f"settings must be a dict, got {type(settings).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in settings]
    if missing:
        raise ValueError(f"augmentation settings miss {missing}; required keys: {list(REQUIRED_KEYS)}")
    valid = set(REQUIRED_KEYS) | set(OPTIONAL_KEYS)
    unknown = sorted(set(settings) - valid)
    if unknown:
        raise ValueError(
            f"unknown augmentation settings {unknown}; valid keys: {list(REQUIRED_KEYS) + list(OPTIONAL_KEYS)}"
        )
    s = {**OPTIONAL_KEYS, **settings}
    crop = s["crop_size"]
    if isinstance(crop, bool) or not isinstance(crop, int) or crop < 1:
        raise ValueError(f"crop_size must be a positive int, got {crop!r}")
    for k in PROB_KEYS:
        if not 0.0 <= float(s[k]) <= 1.0:
            raise ValueError(f"{k} must be in [0, 1], got {s[k]}")
    if not 0.0 < float(s["min_scale"]) <= float(s["max_scale"]) <= 1.0:
        raise ValueError(
            f"need 0 < min_scale <= max_scale <= 1, got min_scale={s['min_scale']}, max_scale={s['max_scale']}"
        )
    for k in ("brightness", "contrast", "saturation"):
        if float(s[k]) < 0:
            raise ValueError(f"{k} must be >= 0, got {s[k]}")
    if not 0.0 <= float(s["hue"]) <= 0.5:
        raise ValueError(f"hue must be in [0, 0.5], got {s['hue']}")
    if s["interpolation"] not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {s['interpolation']!r}; valid: {INTERPOLATIONS}")
    return s


class BatchAugment(nn.Module):
    """One view's augmentation for a whole batch; see the module docstring.

    settings: dict with keys REQUIRED_KEYS (the CLI flag names of one view) and optionally
    "interpolation" ("bilinear" default, or "bicubic"). mean, std: 3 values each, for [0, 1] images.
    """

    def __init__(self, settings: dict, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.settings = check_settings(settings)
        s = self.settings
        self.crop_size = s["crop_size"]
        self.scale = (float(s["min_scale"]), float(s["max_scale"]))
        # torchvision's ranges: [max(0, 1 - v), 1 + v] for b/c/s, [-h, h] for hue.
        self.factor_ranges = [
            (max(0.0, 1 - float(s[k])), 1 + float(s[k])) for k in ("brightness", "contrast", "saturation")
        ]
        self.factor_ranges.append((-float(s["hue"]), float(s["hue"])))
        self.blur_kernel = blur_kernel_size(self.crop_size)
        mean_t, std_t = _mean_std(mean, std)
        self.register_buffer("mean", mean_t, persistent=False)
        self.register_buffer("std", std_t, persistent=False)

    def sample_params(
        self, batch: int, height: int, width: int, generator: torch.Generator | None = None, device=None
    ) -> AugmentParams:
        s, g, d = self.settings, generator, device

        def coin(p: float) -> Tensor:
            return torch.rand(batch, generator=g, device=d) < p

        boxes = sample_crop_boxes(batch, height, width, self.scale, CROP_RATIO, g, d)
        flip = coin(s["horizontal_flip_prob"])
        jitter = coin(s["color_jitter_prob"])
        factors = torch.stack([_uniform(batch, lo, hi, g, d) for lo, hi in self.factor_ranges], 1)
        order = torch.rand((batch, 4), generator=g, device=d).argsort(dim=1)  # uniform permutation
        gray = coin(s["gray_scale_prob"])
        blur = coin(s["gaussian_prob"])
        sigma = _uniform(batch, *BLUR_SIGMA, g, d)
        sol = coin(s["solarization_prob"])
        return AugmentParams(boxes, flip, jitter, factors, order, gray, blur, sigma, sol)

    def apply(self, x: Tensor, p: AugmentParams, normalize: bool = True) -> Tensor:
        """x: float (B, 3, H, W) in [0, 1] -> (B, 3, crop, crop), normalised unless told not to."""
        x = crop_resize(x, p.boxes, self.crop_size, p.flip, self.settings["interpolation"])
        s = self.settings  # ops with probability 0 are skipped: no work, exact identity
        if s["color_jitter_prob"] > 0:
            x = color_jitter(x, p.factors, p.order, p.jitter, use_hue=s["hue"] > 0)
        if s["gray_scale_prob"] > 0:
            x = random_grayscale(x, p.gray)
        if s["gaussian_prob"] > 0:
            x = gaussian_blur(x, p.sigma, self.blur_kernel, p.blur)
        if s["solarization_prob"] > 0:
            x = solarize(x, p.solarize)
        if normalize:
            x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        return x

    @torch.no_grad()
    def forward(self, images: Tensor, generator: torch.Generator | None = None, normalize: bool = True) -> Tensor:
        x = to_float_nchw(images)
        if generator is not None and generator.device.type != x.device.type:
            raise ValueError(
                f"generator is on {generator.device} but images are on {x.device}; "
                "create the generator on the images' device"
            )
        with torch.autocast(device_type=x.device.type, enabled=False):
            params = self.sample_params(x.shape[0], x.shape[2], x.shape[3], generator, x.device)
            return self.apply(x, params, normalize)


class MultiViewBatchAugment(nn.Module):
    """A list of per-view settings -> forward returns one augmented batch per view."""

    def __init__(self, settings_list: Sequence[dict], mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if isinstance(settings_list, dict) or len(settings_list) == 0:
            raise ValueError("settings_list must be a non-empty list of per-view settings dicts")
        self.views = nn.ModuleList(BatchAugment(s, mean, std) for s in settings_list)

    @torch.no_grad()
    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        return [view(images, generator) for view in self.views]


if __name__ == "__main__":  # throughput print (not a test): python -m cassle.data.gpu_augment
    import time

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    view = {
        "crop_size": 32,
        "min_scale": 0.08,
        "max_scale": 1.0,
        "brightness": 0.4,
        "contrast": 0.4,
        "saturation": 0.2,
        "hue": 0.1,
        "color_jitter_prob": 0.8,
        "gray_scale_prob": 0.2,
        "horizontal_flip_prob": 0.5,
        "gaussian_prob": 0.0,
        "solarization_prob": 0.2,
    }
    aug = MultiViewBatchAugment([view, view], (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))
    imgs = torch.randint(0, 256, (512, 32, 32, 3), dtype=torch.uint8, device=dev)
    gen = torch.Generator(device=dev).manual_seed(0)
    aug(imgs, gen)
    steps = 20 if dev == "cuda" else 3
    if dev == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        aug(imgs, gen)
    if dev == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(f"{dev}: {2 * imgs.shape[0] * steps / dt:,.0f} views/s (batch 512, 2 views, 32x32)")
