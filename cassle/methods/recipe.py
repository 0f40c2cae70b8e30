"""The ViT recipe flags every method accepts (issue 22's DINO / MoCo v3 ViT recipes).

- ``--weight_decay_end``: DINO's cosine weight-decay schedule (``cassle/utils/wd_schedule.py``),
  set before every optimiser step; None keeps ``--weight_decay`` fixed (the reference).
- ``--drop_path_rate``: stochastic depth of the ViT backbones (timm; DINO's 0.1, main_dino.py),
  for the trained network only: the momentum teacher and CaSSLe's frozen copy drop nothing.
- ``--freeze_patch_embed``: MoCo v3's frozen random patch projection (moco-v3 vits.py
  ``stop_grad_conv1``): the ViT's patch-embedding conv keeps its init, outside the optimiser.

``BaseMethod`` calls ``add_recipe_args`` / ``backbone_recipe`` / ``apply_backbone_recipe`` /
``step_weight_decay``; methods need nothing else.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from cassle.backbones import VIT_BACKBONES, freeze_patch_embed
from cassle.utils.wd_schedule import apply_weight_decay


def add_recipe_args(group) -> None:
    group.add_argument(
        "--weight_decay_end",
        type=float,
        default=None,
        help="cosine weight-decay schedule from --weight_decay to this value over each task, per "
        "step, on the decayed groups (DINO: 0.04 -> 0.4); default: fixed --weight_decay",
    )
    group.add_argument(
        "--drop_path_rate",
        type=float,
        default=0.0,
        help="ViT backbones: stochastic depth rate (timm; DINO 0.1), student only",
    )
    group.add_argument(
        "--freeze_patch_embed",
        action="store_true",
        help="ViT backbones: keep the patch projection at its random init (MoCo v3's stop-grad conv1)",
    )


def backbone_recipe(args: Any) -> dict[str, float]:
    """``build_backbone`` keyword arguments of the recipe (empty when off)."""
    rate = float(args.get("drop_path_rate") or 0.0)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"--drop_path_rate must be in [0, 1), got {rate}")
    return {"drop_path_rate": rate} if rate else {}


def apply_backbone_recipe(method: nn.Module) -> None:
    """Freeze the patch projection with ``--freeze_patch_embed``; checks the flags (the backbone,
    and that the method takes multi-crop's small crops when ``--num_small_crops`` asks)."""
    args = method.hparams
    if args.get("freeze_patch_embed"):
        if args.backbone not in VIT_BACKBONES:
            raise ValueError(f"--freeze_patch_embed is for the ViT backbones (vit_*), not {args.backbone}")
        freeze_patch_embed(method.backbone)
    if args.get("num_small_crops") and not getattr(method, "supports_small_crops", False):
        raise ValueError(
            f"--num_small_crops is for DINO (its student sees the small crops); {args.method} trains on two views"
        )
    end = args.get("weight_decay_end")
    if end is not None and end < 0:
        raise ValueError(f"--weight_decay_end must be >= 0, got {end}")


def step_weight_decay(module) -> None:
    """The DINO schedule's value for the coming optimiser step (``on_train_batch_start``)."""
    end = module.hparams.get("weight_decay_end")
    if end is None:
        return
    total = int(module.trainer.estimated_stepping_batches)
    for opt in module.trainer.optimizers:
        apply_weight_decay(opt, module.global_step, total, module.hparams.weight_decay, end)
