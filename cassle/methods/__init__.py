"""The self-supervised methods. The key is the `--method` value.

Layer: model. One file per method over ``BaseMethod`` / ``BaseMomentumMethod``; imports backbones,
losses, utils and eval's kNN monitor (``cassle.eval.knn``); never distillers, strategies or continual.
"""

from cassle.methods.barlow_twins import BarlowTwins
from cassle.methods.base import BaseMethod, StepOutput
from cassle.methods.byol import BYOL
from cassle.methods.deepclusterv2 import DeepClusterV2
from cassle.methods.dino import DINO
from cassle.methods.mocov2plus import MoCoV2Plus
from cassle.methods.mocov3 import MoCoV3
from cassle.methods.momentum import BaseMomentumMethod
from cassle.methods.nnclr import NNCLR
from cassle.methods.ressl import ReSSL
from cassle.methods.simclr import SimCLR
from cassle.methods.simsiam import SimSiam
from cassle.methods.swav import SwAV
from cassle.methods.vicreg import VICReg
from cassle.methods.wmse import WMSE

METHODS = {
    "simclr": SimCLR,
    "mocov2plus": MoCoV2Plus,
    "byol": BYOL,
    "barlow_twins": BarlowTwins,
    "swav": SwAV,
    "vicreg": VICReg,
    "simsiam": SimSiam,
    "nnclr": NNCLR,
    "ressl": ReSSL,
    "wmse": WMSE,
}
# Beyond the paper's six (issue 22): the original code's DINO and DeepClusterV2, and MoCo v3.
METHODS.update({"dino": DINO, "deepclusterv2": DeepClusterV2, "mocov3": MoCoV3})


def get_method_class(name: str):
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[name]


__all__ = ["METHODS", "BaseMethod", "BaseMomentumMethod", "StepOutput", "get_method_class"]
