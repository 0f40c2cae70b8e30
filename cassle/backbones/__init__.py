"""Backbones: `build_backbone(name, cifar, zero_init_residual, img_size, patch_size) -> (module, feat_dim)`.

Layer: lowest. Imports torch / torchvision / timm only, nothing of the package.
"""

from .resnet import BACKBONES, build_backbone, resnet18, resnet50
from .tiny import TinyConvNet, tiny
from .vit import (
    VIT_BACKBONES,
    default_patch_size,
    disable_drop_path,
    freeze_patch_embed,
    vit_base,
    vit_geometry,
    vit_kwargs,
    vit_small,
    vit_tiny,
)

__all__ = [
    "BACKBONES",
    "build_backbone",
    "resnet18",
    "resnet50",
    "tiny",
    "TinyConvNet",
    "VIT_BACKBONES",
    "default_patch_size",
    "disable_drop_path",
    "freeze_patch_embed",
    "vit_geometry",
    "vit_kwargs",
    "vit_tiny",
    "vit_small",
    "vit_base",
]
