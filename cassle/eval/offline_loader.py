"""Training batches of the offline (augmented) linear probe, as the reference produced them.

The reference's linear scripts train the probe on RandomResizedCrop(scale 0.08-1) + horizontal
flip, normalised, shuffled, with the last partial batch dropped:

- image folders and DomainNet (its ImageNet-100 / DomainNet scripts, through DALI): the crop is
  resized with **bicubic** interpolation (DALI's ``INTERP_CUBIC``);
- CIFAR-size tensor sets (its torchvision path): torchvision's default bilinear resize.

``--dali`` with NVIDIA DALI installed runs the folder path through DALI (``cassle.data.dali``:
one view, crop + flip only, bicubic, ``LastBatchPolicy.DROP``); without DALI, or for tensor sets,
the same augmentation runs in torchvision workers. A training set smaller than one batch keeps its
one partial batch (dropping it would train nothing).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader

# The view DALI's pipeline gets: crop + flip, no colour, blur or solarization.
_DALI_VIEW = {
    "min_scale": 0.08,
    "max_scale": 1.0,
    "brightness": 0.0,
    "contrast": 0.0,
    "saturation": 0.0,
    "hue": 0.0,
    "color_jitter_prob": 0.0,
    "gray_scale_prob": 0.0,
    "horizontal_flip_prob": 0.5,
    "gaussian_prob": 0.0,
    "solarization_prob": 0.0,
}


def interpolation_name(data) -> str:
    """ "bicubic" for image folders (the reference's DALI path), "bilinear" for tensor sets."""
    return "bilinear" if data.is_tensor else "bicubic"


def train_transform(data):
    """The probe's torchvision augmentation for ``data`` (an ``EvalData``)."""
    from torchvision.transforms import InterpolationMode, v2

    mode = InterpolationMode.BILINEAR if data.is_tensor else InterpolationMode.BICUBIC
    # Crop and flip first: on PIL images (folders) that is cheaper than on decoded tensors.
    return v2.Compose(
        [
            v2.RandomResizedCrop(data.crop_size, scale=(0.08, 1.0), interpolation=mode, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(data.mean), list(data.std)),
            v2.ToPureTensor(),
        ]
    )


def drops_last(num_samples: int, batch_size: int) -> bool:
    """Drop the last partial batch (the reference), unless it is the only batch."""
    return num_samples >= batch_size


def uses_dali(data, want_dali: bool) -> bool:
    """DALI runs the probe's batches when asked for, installed, and the data are image files."""
    if not want_dali:
        return False
    if data.is_tensor:
        print(
            "note: --dali is for image folders and DomainNet; tensor datasets are augmented with torchvision",
            file=sys.stderr,
        )
        return False
    from cassle.data.dali import dali_available

    if not dali_available():
        print(
            "note: --dali asked for but NVIDIA DALI is not installed: the same augmentation (bicubic "
            "random crop, flip, last batch dropped) runs in torchvision workers",
            file=sys.stderr,
        )
        return False
    return True


class _DaliProbeBatches:
    """``(x, y)`` batches of a one-view ``DaliTrainLoader`` (what ``LinearProbe`` consumes)."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _indexes, views, targets in self.loader:
            yield views[0], targets


def probe_train_loader(
    data,
    indices: torch.Tensor,
    *,
    batch_size: int,
    num_workers: int,
    seed: int,
    dali: bool = False,
    device: torch.device | None = None,
) -> Any:
    """Shuffled, augmented training batches of ``data.train_set[indices]`` (module docstring)."""
    if uses_dali(data, dali):
        from cassle.data.dali import DaliTrainLoader

        on_gpu = device is not None and device.type == "cuda"
        view = {**_DALI_VIEW, "crop_size": data.crop_size}
        return _DaliProbeBatches(
            DaliTrainLoader(
                data.train_set,
                indices,
                [view],
                data.mean,
                data.std,
                batch_size=batch_size,
                num_threads=max(1, num_workers),
                device_id=torch.cuda.current_device() if on_gpu else None,
                seed=seed,
            )
        )
    from cassle.eval.eval_data import _Transformed

    ds = _Transformed(data.train_set, indices, train_transform(data))
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=True,
        num_workers=num_workers,
        drop_last=drops_last(len(indices), batch_size),
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )


def describe(data, dali: bool = False) -> str:
    """The probe's training augmentation in words (results.json, summary.md)."""
    via = "DALI" if dali and not data.is_tensor else "torchvision"
    return (
        f"RandomResizedCrop({data.crop_size}, scale=(0.08, 1), {interpolation_name(data)}) + horizontal "
        f"flip, last partial batch dropped ({via})"
    )
