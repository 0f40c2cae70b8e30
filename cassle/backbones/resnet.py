"""ResNet backbones (torchvision) and the backbone registry.

`build_backbone(name, cifar=False, zero_init_residual=False) -> (module, feat_dim)`: the module maps
(B, 3, H, W) images to (B, feat_dim) pooled features (torchvision's classifier `fc` is replaced by
`nn.Identity`). Weights are always randomly initialised (`weights=None`): nothing is downloaded.

CIFAR stem (`cifar=True`, as in the reference for 32x32 images): `conv1` becomes a 3x3 conv with
stride 1, **padding 2** and no bias, and the 3x3/2 max-pool is removed (`nn.Identity`), so a 32x32
image becomes 34x34 maps after the stem (then 34/17/9/5 through the four stages) instead of 8x8.
Padding 2 is the reference's choice, kept for conformance (REFERENCE.md section 1). The new conv
keeps PyTorch's default init, as the reference did when it swapped the layer.

`zero_init_residual` is passed to torchvision: the last BatchNorm of every residual block starts
with weight (gamma) 0, so each block starts as the identity.
"""

from collections.abc import Callable

import torchvision
from torch import nn

from .tiny import tiny
from .vit import VIT_BACKBONES

CIFAR_STEM_PADDING = 2  # the reference's: 32x32 input -> 34x34 maps


def _resnet(arch: str, feat_dim: int, cifar: bool, zero_init_residual: bool) -> tuple[nn.Module, int]:
    net = getattr(torchvision.models, arch)(weights=None, zero_init_residual=zero_init_residual)
    if cifar:
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=CIFAR_STEM_PADDING, bias=False)
        net.maxpool = nn.Identity()
    assert net.fc.in_features == feat_dim
    net.fc = nn.Identity()
    net.num_features = feat_dim  # convenience for heads built on top
    return net, feat_dim


def resnet18(cifar: bool = False, zero_init_residual: bool = False) -> tuple[nn.Module, int]:
    """torchvision ResNet-18 without classifier; feat_dim 512."""
    return _resnet("resnet18", 512, cifar, zero_init_residual)


def resnet50(cifar: bool = False, zero_init_residual: bool = False) -> tuple[nn.Module, int]:
    """torchvision ResNet-50 without classifier; feat_dim 2048."""
    return _resnet("resnet50", 2048, cifar, zero_init_residual)


# key = CLI value of --backbone
BACKBONES: dict[str, Callable[..., tuple[nn.Module, int]]] = {
    "resnet18": resnet18,
    "resnet50": resnet50,
    "tiny": tiny,
    **VIT_BACKBONES,  # vit_tiny / vit_small / vit_base (timm), see vit.py
}


def build_backbone(
    name: str,
    cifar: bool = False,
    zero_init_residual: bool = False,
    img_size: int | None = None,
    patch_size: int | None = None,
    drop_path_rate: float = 0.0,
) -> tuple[nn.Module, int]:
    """Build backbone `name` (a key of BACKBONES); returns (module, feat_dim).

    `img_size` / `patch_size` / `drop_path_rate` go to the ViTs only (their crop, patch and
    stochastic depth, vit.py); the conv nets take any input size and ignore the first two; a
    drop-path rate for a conv net is a ValueError."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid names: {sorted(BACKBONES)}")
    if name in VIT_BACKBONES:
        return BACKBONES[name](cifar=cifar, img_size=img_size, patch_size=patch_size, drop_path_rate=drop_path_rate)
    if drop_path_rate:
        raise ValueError(f"--drop_path_rate is for the ViT backbones (vit_*), not {name}")
    return BACKBONES[name](cifar=cifar, zero_init_residual=zero_init_residual)
