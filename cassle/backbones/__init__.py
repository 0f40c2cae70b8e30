"""Backbones: `build_backbone(name, cifar, zero_init_residual) -> (module, feat_dim)`.

Layer: lowest. Imports torch / torchvision only, nothing of the package.
"""

from .resnet import BACKBONES, build_backbone, resnet18, resnet50
from .tiny import TinyConvNet, tiny

__all__ = ["BACKBONES", "build_backbone", "resnet18", "resnet50", "tiny", "TinyConvNet"]
