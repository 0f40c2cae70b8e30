"""Vision transformers (timm): `vit_tiny`, `vit_small`, `vit_base`.

Built with timm's `VisionTransformer` (no pretrained weights, nothing downloaded) in the sizes of
solo-learn's `solo/backbones/vit/vit.py` (and of DeiT / DINO): depth 12, MLP ratio 4, and

    vit_tiny   embed 192, 3 heads     vit_small  embed 384, 6 heads     vit_base  embed 768, 12 heads

**Feature.** The module maps (B, 3, H, W) images to the final-LayerNorm'd **CLS token** (B, embed):
timm's `global_pool="token"`, the feature DINO, MoCo v3 and solo-learn give their heads. It is what
the projectors, the distillers (through the projector), the online classifier and the linear
probes read, exactly as the pooled ResNet features.

**Patch size and position embeddings for the crop size.** `img_size` is the training crop; the
learned absolute position embeddings are made for its grid (img_size / patch_size)^2 (+1 for the
CLS token). The default patch size (`default_patch_size`) is **4 for small images** (crops up to
64 px: a 32 px CIFAR crop becomes 8 x 8 = 64 tokens), the choice of solo-learn's CIFAR ViT script
(`scripts/pretrain/cifar/mae.yaml`: `patch_size: 4`, `img_size: 32`); a 16 px patch, the ImageNet
choice (ViT-S/16 of DINO and MoCo v3, solo-learn's default), would leave a 32 px image only 2 x 2
tokens. Larger crops get **16**. `dynamic_img_size=True`: other input sizes (DINO's small crops,
a probe at another size) interpolate the position embeddings bicubically; at the training size
timm returns them unchanged.

**Stochastic depth** (`drop_path_rate`, DINO's `--drop_path_rate 0.1`; facebookresearch/dino
main_dino.py gives it to the student only): timm's linearly increasing DropPath per block, active
in train mode. `disable_drop_path` turns it off in a copy that serves as a target (the momentum
teacher, CaSSLe's frozen model), as DINO builds its teacher without it.

**Frozen random patch projection** (`freeze_patch_embed`; MoCo v3, Chen et al. 2021, sec. 4.2 "a
trick for improving stability"; facebookresearch/moco-v3 vits.py `stop_grad_conv1`): the patch embedding's conv
keeps its random init: requires_grad off, so it is in no optimiser group.
"""

from __future__ import annotations

from torch import nn

# name -> (embed_dim, depth, num_heads) (solo-learn solo/backbones/vit/vit.py; DeiT's sizes)
VIT_SIZES = {"vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6), "vit_base": (768, 12, 12)}
SMALL_CROP_MAX = 64  # crops up to this many pixels get the small patch
SMALL_PATCH, LARGE_PATCH = 4, 16


def default_patch_size(img_size: int) -> int:
    """4 for small crops (solo-learn's CIFAR ViT), 16 for ImageNet-sized ones (ViT-*/16)."""
    return SMALL_PATCH if img_size <= SMALL_CROP_MAX else LARGE_PATCH


def vit_geometry(crop_size: int | None, patch_size: int | None, small_images: bool) -> tuple[int, int]:
    """(img_size, patch_size) of a ViT: the crop (default 32 for small-image data, 224 otherwise)
    and the patch (default: `default_patch_size`). Raises ValueError for a patch larger than the crop."""
    img_size = int(crop_size) if crop_size else (32 if small_images else 224)
    patch = int(patch_size) if patch_size else default_patch_size(img_size)
    if patch < 1 or patch > img_size:
        raise ValueError(f"--patch_size {patch} does not fit a {img_size} px crop")
    return img_size, patch


def vit_kwargs(backbone: str, crop_size, patch_size: int | None, small_images: bool) -> dict[str, int]:
    """`build_backbone`'s img_size / patch_size for `backbone` (empty for the conv nets): the
    first view's crop (`crop_size` may be a per-view list; None = 32 px for small-image data,
    224 otherwise) and the patch (None = `default_patch_size`). The same rule builds the model in
    training and in `main_linear.py` (from the checkpoint's hyperparameters)."""
    if backbone not in VIT_SIZES:
        return {}
    crop = crop_size[0] if isinstance(crop_size, (list, tuple)) else crop_size
    img_size, patch = vit_geometry(crop, patch_size, small_images)
    return {"img_size": img_size, "patch_size": patch}


def freeze_patch_embed(net: nn.Module) -> None:
    """MoCo v3's random patch projection: the patch-embedding conv (weight and bias) stays at its
    random init (moco-v3 vits.py ``stop_grad_conv1``). ValueError for a net without one."""
    proj = getattr(getattr(net, "patch_embed", None), "proj", None)
    if proj is None:
        raise ValueError("--freeze_patch_embed needs a ViT backbone (vit_tiny / vit_small / vit_base)")
    for p in proj.parameters():
        p.requires_grad = False


def disable_drop_path(module: nn.Module) -> nn.Module:
    """Set every timm DropPath of ``module`` to drop nothing (in place; returns the module)."""
    from timm.layers import DropPath

    for m in module.modules():
        if isinstance(m, DropPath):
            m.drop_prob = 0.0
    return module


def _vit(name: str, img_size: int, patch_size: int | None, drop_path_rate: float = 0.0) -> tuple[nn.Module, int]:
    from timm.models.vision_transformer import VisionTransformer

    embed_dim, depth, heads = VIT_SIZES[name]
    img_size, patch = vit_geometry(img_size, patch_size, small_images=False)
    net = VisionTransformer(
        img_size=img_size,
        patch_size=patch,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=heads,
        mlp_ratio=4.0,
        qkv_bias=True,
        num_classes=0,
        global_pool="token",
        dynamic_img_size=True,
        drop_path_rate=drop_path_rate,
    )
    assert net.num_features == embed_dim
    return net, embed_dim


def _factory(name: str):
    def build(
        cifar: bool = False,
        zero_init_residual: bool = False,
        img_size: int | None = None,
        patch_size: int | None = None,
        drop_path_rate: float = 0.0,
    ) -> tuple[nn.Module, int]:
        # `zero_init_residual` has no meaning for a ViT and is ignored; `cifar` only picks the
        # default crop (32 px) when `img_size` is not given.
        return _vit(name, img_size or (32 if cifar else 224), patch_size, drop_path_rate)

    build.__name__ = name
    build.__doc__ = f"timm ViT ({name}); CLS-token feature of dim {VIT_SIZES[name][0]}."
    return build


vit_tiny, vit_small, vit_base = (_factory(n) for n in ("vit_tiny", "vit_small", "vit_base"))
VIT_BACKBONES = {"vit_tiny": vit_tiny, "vit_small": vit_small, "vit_base": vit_base}
