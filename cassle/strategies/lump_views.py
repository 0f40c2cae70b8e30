"""UCL's buffer views for LUMP (``--lump_views ucl``; Madaan et al. 2022, UCL ``models/mixup.py``)
and DER (``--der_views ucl``: ``models/der.py`` replays ``transform(buffered image)``).

UCL's buffer keeps, with each image, the second augmented view it had when it was buffered; a
replayed image is mixed into the current views as view 1 = a fresh ``RandomResizedCrop(32, scale
(0.08, 1), bicubic)`` + ``RandomHorizontalFlip`` of the image (its ``get_transform``, no colour
augmentation) and view 2 = that stored view. Here the images stay indices into the training set
(``ReservoirBuffer``) and the stored views are a (capacity + 1, 3, crop, crop) float tensor in the
checkpoint: buffer_size x 3 x crop^2 x 4 bytes (256 CIFAR images: 3 MB; 224 crops: 154 MB).
"""

from __future__ import annotations

import torch
from torch import nn


def view_crop_size(args) -> int:
    """The crop of the second view (set by validate_strategy_args from the data; else --crop_size)."""
    crop = getattr(args, "lump_view_crop", None) or args.crop_size
    if isinstance(crop, (list, tuple)):
        crop = crop[1] if len(crop) > 1 else crop[0]
    return int(crop or 32)


def crop_flip_augment(datamodule, crop: int, device):
    """UCL's buffer transform: RandomResizedCrop(crop, scale (0.08, 1), bicubic) + flip, normalised."""
    from cassle.data.gpu_augment import BatchAugment

    settings = {
        **datamodule.view_settings[0],
        "min_scale": 0.08,
        "max_scale": 1.0,
        "horizontal_flip_prob": 0.5,
        "color_jitter_prob": 0.0,
        "gray_scale_prob": 0.0,
        "gaussian_prob": 0.0,
        "solarization_prob": 0.0,
        "interpolation": "bicubic",
        "crop_size": int(crop),
    }
    return BatchAugment(settings, datamodule.mean, datamodule.std).to(device)


class StoredViews(nn.Module):
    def __init__(self, capacity: int, args):
        super().__init__()
        crop = view_crop_size(args)
        self.register_buffer("views_2", torch.zeros(capacity + 1, 3, crop, crop))
        self.__dict__["augment"] = None

    def on_train_start(self, datamodule, device) -> None:
        self.__dict__["augment"] = crop_flip_augment(datamodule, self.views_2.shape[-1], device)

    def add(self, slot: torch.Tensor, view_2: torch.Tensor) -> None:
        if view_2.shape[1:] != self.views_2.shape[1:]:
            raise ValueError(
                f"--lump_views ucl: the second view is {tuple(view_2.shape[1:])}, the buffer "
                f"keeps {tuple(self.views_2.shape[1:])}"
            )
        self.views_2.index_put_((slot.to(self.views_2.device),), view_2.detach().to(self.views_2.dtype))

    def views(self, images: torch.Tensor, slots: torch.Tensor) -> list[torch.Tensor]:
        """uint8 (n, H, W, 3) buffered images and their slots -> [fresh crop + flip, stored view 2]."""
        return [self.augment(images), self.views_2[slots]]
