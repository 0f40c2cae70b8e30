"""Batched augmentation primitives in plain torch (per-sample parameters, any device).

The building blocks of `cassle.data.gpu_augment` (crop + resize, colour jitter, grayscale, blur,
solarize) and the constants they share. What the pipeline is and how it differs from the PIL
pipeline of the reference is documented here; the modules that compose these ops per view are in
`gpu_augment.py`.

Why this exists
---------------
The reference pipeline augments every image in PIL inside DataLoader workers. For small images
(CIFAR) that is the bottleneck of a run. Measurements quoted by the project's issue / design notes
(not re-measured here): 16 PIL/torchvision workers deliver ~18k views/s, a batched torch augmentation
of uint8 batches already on the GPU ~358k views/s (augmentation alone), and a whole training step
with it ~35-63k views/s on an H200. `python -m cassle.data.gpu_augment` prints this module's own
throughput on the current machine. The datamodule calls
`MultiViewBatchAugment` in `on_after_batch_transfer`, so methods receive augmented, normalised views
either way. The same code runs on CPU tensors (that is how the tests run).

Pipeline per view (the reference's order; torchvision's parameter distributions):
  RandomResizedCrop(crop_size, scale=(min_scale, max_scale), ratio=(3/4, 4/3))
  -> RandomApply(ColorJitter(brightness, contrast, saturation, hue), p=color_jitter_prob)
  -> RandomGrayscale(gray_scale_prob) -> RandomApply(GaussianBlur(sigma in [0.1, 2]), gaussian_prob)
  -> RandomApply(Solarize(threshold 128/255), solarization_prob) -> RandomHorizontalFlip
  -> Normalize(mean, std)
Every sample of the batch draws its own parameters (crop box, flip, jitter on/off, the four jitter
factors, the jitter order, grayscale, blur sigma, solarize) from a `torch.Generator` if one is
given, so a fixed-seed generator on the same device reproduces the output exactly.

What differs from the PIL pipeline (all deliberate, all small)
-------------------------------------------------------------
- Crop + resize is one `F.grid_sample` through a per-sample affine grid (bilinear by default,
  `interpolation="bicubic"` optional). PIL resizes the cropped box with an antialiased bicubic
  filter; grid_sample does not antialias, so strong *down*-scaling (big images, small crops) aliases
  a little more. For CIFAR (crop 32 from 32x32 images) every crop is an up-scale, where the two
  agree closely (torch's bicubic uses a = -0.75, PIL's a = -0.5). Samples near the box border also
  read the pixels just outside the box (PIL clamps at the box), and bicubic output is clamped back
  to [0, 1].
- The horizontal flip is folded into the sampling grid (a negative x scale). The reference flips
  last; flipping first is equivalent because every later op is pixel-wise or (blur) mirror
  symmetric with symmetric reflect padding.
- Everything stays float32 in [0, 1] between ops; PIL rounds to uint8 after every op.
- Grayscale uses ITU-R 601-2 luma 0.299 / 0.587 / 0.114 (PIL's "L" weights, they sum to 1);
  torchvision's tensor ops use 0.2989, a difference of at most 1e-4 per pixel.
- Colour jitter follows torchvision's tensor semantics (blend + clamp to [0, 1] after each op; the
  contrast reference is the mean of the grayscale image; hue shifts H in HSV), with a random order
  of the four ops drawn per sample. PIL's hue goes through uint8 HSV, ours is exact float HSV.
- Gaussian blur: torchvision's kernel (sampled Gaussian, normalised, reflect padding), applied as two
  separable depthwise convolutions with one kernel per sample. The kernel size is the odd number
  near 10% of the crop: 2 * int(0.05 * crop) + 1, i.e. 23 for 224 (solo-learn/DALI's value) and 3
  for 32. A 3-tap kernel truncates sigmas above ~0.5, so blur on 32x32 crops is weaker than PIL's
  untruncated blur; the CIFAR recipes use no blur.

Inputs: uint8 (or float in [0, 1]) batches in channels-last (B, H, W, 3) or channels-first
(B, 3, H, W) layout; the layout is detected from where the size-3 axis is (ambiguous shapes, with
size 3 in both places, raise). Output: float32 (B, 3, crop, crop), normalised, on the input's
device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

# ITU-R 601-2 luma (PIL's convert("L")), see the module docstring.
LUMA = (0.299, 0.587, 0.114)
# torchvision's RandomResizedCrop default aspect-ratio range.
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
CROP_TRIES = 10
BLUR_SIGMA = (0.1, 2.0)
SOLARIZE_THRESHOLD = 0.5  # 128 / 255 in PIL's uint8 terms, torchvision's float threshold
INTERPOLATIONS = ("bilinear", "bicubic")

REQUIRED_KEYS = (
    "crop_size",
    "min_scale",
    "max_scale",
    "brightness",
    "contrast",
    "saturation",
    "hue",
    "color_jitter_prob",
    "gray_scale_prob",
    "horizontal_flip_prob",
    "gaussian_prob",
    "solarization_prob",
)
OPTIONAL_KEYS = {"interpolation": "bilinear"}
PROB_KEYS = tuple(k for k in REQUIRED_KEYS if k.endswith("_prob"))
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")  # ids 0..3, as in torchvision


# ----------------------------------------------------------------------------- input handling
def to_float_nchw(images: Tensor) -> Tensor:
    """uint8 (B,H,W,3) / (B,3,H,W), or float in [0,1], -> float32 (B,3,H,W) in [0,1]."""
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must be 4-D, (B, H, W, 3) or (B, 3, H, W); got shape {tuple(images.shape)}")
    first, last = images.shape[1] == 3, images.shape[-1] == 3
    if first and last:
        raise ValueError(
            f"ambiguous layout for shape {tuple(images.shape)}: size 3 in both "
            "dim 1 and dim 3; valid layouts are (B, H, W, 3) and (B, 3, H, W)"
        )
    if not (first or last):
        raise ValueError(f"images need 3 channels, in (B, H, W, 3) or (B, 3, H, W); got shape {tuple(images.shape)}")
    if last:
        images = images.permute(0, 3, 1, 2)
    if images.dtype == torch.uint8:
        return images.float().div_(255.0).contiguous()
    if images.is_floating_point():
        return images.float().contiguous()
    raise TypeError(f"images must be uint8 or floating point in [0, 1], got {images.dtype}")


def _mean_std(mean: Sequence[float], std: Sequence[float]) -> tuple[Tensor, Tensor]:
    mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
    std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
    if mean_t.numel() != 3 or std_t.numel() != 3:
        raise ValueError(f"mean and std need 3 values (R, G, B); got {mean_t.numel()} and {std_t.numel()}")
    if (std_t <= 0).any():
        raise ValueError(f"std must be positive, got {std_t.tolist()}")
    return mean_t.view(1, 3, 1, 1), std_t.view(1, 3, 1, 1)


def _uniform(n: int, low: float, high: float, gen, device) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=gen, device=device)


# ----------------------------------------------------------------------------- crop
def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: Sequence[float],
    ratio: Sequence[float] = CROP_RATIO,
    generator: torch.Generator | None = None,
    device=None,
) -> Tensor:
    """torchvision's RandomResizedCrop.get_params for n samples at once -> (n, 4) long (i, j, h, w).

    Per sample, CROP_TRIES candidates: area fraction ~ U(scale), log aspect ratio ~ U(log ratio);
    w = round(sqrt(A * r)), h = round(sqrt(A / r)); the first candidate with 0 < w <= W and
    0 < h <= H wins, its top-left corner uniform over the valid positions. Samples with no valid
    candidate get torchvision's fallback: the central crop with the aspect ratio clamped to `ratio`.
    """
    area = float(height * width)
    t = (n, CROP_TRIES)
    target = area * (scale[0] + (scale[1] - scale[0]) * torch.rand(t, generator=generator, device=device))
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(lo + (hi - lo) * torch.rand(t, generator=generator, device=device))
    w = torch.round(torch.sqrt(target * aspect)).long()  # torch.round: half to even, like round()
    h = torch.round(torch.sqrt(target / aspect)).long()
    valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = valid.int().argmax(dim=1, keepdim=True)  # argmax returns the first maximum
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)

    # Fallback (same for every sample: it depends only on the image size).
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(height * max(ratio))), height
    else:
        fw, fh = width, height
    ok = valid.any(dim=1)
    w = torch.where(ok, w, torch.full_like(w, fw))
    h = torch.where(ok, h, torch.full_like(h, fh))

    u = torch.rand((n, 2), generator=generator, device=device)
    i = torch.floor(u[:, 0] * (height - h + 1)).long().clamp_max(height - h)
    j = torch.floor(u[:, 1] * (width - w + 1)).long().clamp_max(width - w)
    i = torch.where(ok, i, torch.full_like(i, (height - fh) // 2))
    j = torch.where(ok, j, torch.full_like(j, (width - fw) // 2))
    return torch.stack([i, j, h, w], dim=1)


def crop_resize(
    x: Tensor, boxes: Tensor, size: int, flip: Tensor | None = None, interpolation: str = "bilinear"
) -> Tensor:
    """Crop box (i, j, h, w) of each sample and resize it to size x size in one grid_sample.

    With align_corners=False, normalised coordinate -1/+1 is the outer edge of the first/last
    pixel, so the box [j, j + w] maps to [2j/W - 1, 2(j + w)/W - 1]; a flipped sample just gets a
    negative x scale.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}; valid: {INTERPOLATIONS}")
    b, _, height, width = x.shape
    boxes = boxes.to(device=x.device, dtype=torch.float32)
    i, j, h, w = boxes.unbind(1)
    sx, sy = w / width, h / height
    if flip is not None:
        sx = torch.where(flip.to(x.device), -sx, sx)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0] = sx
    theta[:, 0, 2] = (2 * j + w) / width - 1
    theta[:, 1, 1] = sy
    theta[:, 1, 2] = (2 * i + h) / height - 1
    grid = F.affine_grid(theta, [b, 3, size, size], align_corners=False)
    out = F.grid_sample(x, grid, mode=interpolation, padding_mode="border", align_corners=False)
    return out.clamp_(0, 1) if interpolation == "bicubic" else out


# ----------------------------------------------------------------------------- colour ops
# All take x (B, 3, H, W) float in [0, 1] and a per-sample factor tensor (B,).
def rgb_to_grayscale(x: Tensor) -> Tensor:
    """Luma (B, 1, H, W) = 0.299 R + 0.587 G + 0.114 B."""
    r, g, b = x.unbind(1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """factor * x + (1 - factor) * other, clamped to [0, 1] (torchvision's _blend)."""
    f = factor.view(-1, 1, 1, 1).to(x)
    return (f * x + (1 - f) * other).clamp_(0, 1)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, torch.zeros((), device=x.device), factor)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Blend with the per-image mean of the grayscale image."""
    return _blend(x, rgb_to_grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, rgb_to_grayscale(x), factor)


def adjust_hue(x: Tensor, factor: Tensor) -> Tensor:
    """Shift H (in turns, factor in [-0.5, 0.5]) in HSV space, as torchvision's adjust_hue.

    RGB -> HSV: V = max, C = max - min, H6 = (G - B)/C if V = R, 2 + (B - R)/C if V = G,
    4 + (R - G)/C otherwise (H6 = 6 H). HSV -> RGB in closed form: channel_n = V - C *
    clamp(min(k, 4 - k), 0, 1) with k = (n + H6) mod 6 and n = 5, 3, 1 for R, G, B.
    """
    r, g, b = x.unbind(1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    chroma = maxc - minc
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    h6 = torch.where(maxc == r, (g - b) / safe, torch.where(maxc == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h6 = (h6 + 6.0 * factor.view(-1, 1, 1).to(x)).unsqueeze(1)  # (B, 1, H, W)
    # n = 5, 3, 1 (R, G, B) made on the device: a tensor from Python data would be a
    # host-to-device copy at every call.
    n = torch.arange(5.0, 0.0, -2.0, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    k = torch.remainder(n + h6, 6.0)
    out = maxc.unsqueeze(1) - chroma.unsqueeze(1) * torch.minimum(k, 4.0 - k).clamp(0, 1)
    return out.clamp_(0, 1)


def color_jitter(
    x: Tensor, factors: Tensor, order: Tensor, apply: Tensor | None = None, use_hue: bool = True
) -> Tensor:
    """Apply the four jitter ops per sample in that sample's order.

    factors (B, 4): brightness, contrast, saturation, hue factors; order (B, 4): a permutation of
    0..3 per sample (op ids as in JITTER_OPS, like torchvision's fn_idx); apply (B,) bool: samples
    that get jitter at all. Step k applies, to every sample, the op order[:, k] names. Blend ops use
    factor 1 (an exact identity) for samples that do not take them at this step, so the whole batch
    runs through each op without per-sample loops or host syncs; hue (not an exact identity at 0)
    is selected with torch.where; use_hue=False skips it (torchvision skips hue when hue == 0).
    """
    if apply is None:
        apply = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    factors, order, apply = factors.to(x.device), order.to(x.device), apply.to(x.device)
    ones = torch.ones_like(factors[:, 0])
    blend_ops = (adjust_brightness, adjust_contrast, adjust_saturation)
    for step in range(4):
        for op_id, op in enumerate(blend_ops):
            sel = apply & (order[:, step] == op_id)
            x = op(x, torch.where(sel, factors[:, op_id], ones))
        if not use_hue:
            continue
        sel = apply & (order[:, step] == 3)
        x = torch.where(sel.view(-1, 1, 1, 1), adjust_hue(x, factors[:, 3]), x)
    return x


def random_grayscale(x: Tensor, apply: Tensor) -> Tensor:
    return torch.where(apply.view(-1, 1, 1, 1), rgb_to_grayscale(x).expand_as(x), x)


def solarize(x: Tensor, apply: Tensor, threshold: float = SOLARIZE_THRESHOLD) -> Tensor:
    """Invert the pixels >= threshold of the selected samples (torchvision's / PIL's solarize)."""
    return torch.where(apply.view(-1, 1, 1, 1) & (x >= threshold), 1.0 - x, x)


# ----------------------------------------------------------------------------- blur
def blur_kernel_size(crop_size: int) -> int:
    """Odd kernel near 10% of the crop: 23 for 224, 3 for 32 (see the module docstring)."""
    return 2 * int(0.05 * crop_size) + 1


def gaussian_kernels(sigma: Tensor, kernel_size: int) -> Tensor:
    """(B, K) normalised 1-D Gaussian kernels, torchvision's _get_gaussian_kernel1d per sample."""
    half = (kernel_size - 1) / 2
    t = torch.arange(kernel_size, device=sigma.device, dtype=torch.float32) - half
    pdf = torch.exp(-0.5 * (t / sigma.float().view(-1, 1)) ** 2)
    return pdf / pdf.sum(dim=1, keepdim=True)


def gaussian_blur(x: Tensor, sigma: Tensor, kernel_size: int, apply: Tensor | None = None) -> Tensor:
    """Separable Gaussian blur with one sigma per sample, reflect padding (torchvision's).

    Samples with apply False get a delta kernel, an exact identity, so the batch is one pair of
    depthwise (grouped) convolutions: rows then columns, each over B * 3 channels.
    """
    if kernel_size % 2 != 1 or kernel_size < 1:
        raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size}")
    b, c, height, width = x.shape
    pad = kernel_size // 2
    if pad >= min(height, width):
        raise ValueError(
            f"kernel_size {kernel_size} too large for {height}x{width} images "
            "(reflect padding needs kernel_size // 2 < image side)"
        )
    k = gaussian_kernels(sigma.to(x.device), kernel_size)  # (B, K)
    if apply is not None:
        delta = torch.zeros_like(k)
        delta[:, pad] = 1.0
        k = torch.where(apply.to(x.device).view(-1, 1), k, delta)
    k = k.repeat_interleave(c, dim=0)  # (B*C, K)
    y = F.pad(x.reshape(1, b * c, height, width), [pad, pad, pad, pad], mode="reflect")
    y = F.conv2d(y, k.view(b * c, 1, kernel_size, 1), groups=b * c)  # vertical
    y = F.conv2d(y, k.view(b * c, 1, 1, kernel_size), groups=b * c)  # horizontal
    return y.view(b, c, height, width)
