"""Loss functions: pure functions of tensors, one file per method plus the CaSSLe distill terms.

Multi-process semantics: by default the losses follow the reference, on each process's own
batch (SimCLR/SupCon, VICReg; Barlow Twins averages only its correlation matrix); their
``global_batch=True`` argument (``--distributed_loss global``) computes the exact loss of the
concatenated batch instead. Sinkhorn-Knopp always sums over processes (as the reference). The
communication goes through :mod:`cassle.utils.distributed`.

Layer: lowest. Imports torch and the leaf utility ``cassle.utils.distributed`` only; never
methods, distillers, strategies, continual or eval (tests/test_house.py checks it).
"""

from cassle.losses.barlow import barlow_loss_func
from cassle.losses.byol import byol_loss_func
from cassle.losses.deepclusterv2 import deepclusterv2_loss_func
from cassle.losses.dino import DINOLoss
from cassle.losses.distill import (
    contrastive_distill_loss,
    decorrelative_distill_loss,
    knowledge_distill_loss,
    predictive_distill_loss,
    predictive_mse_distill_loss,
    simclr_distill_loss_func,
)
from cassle.losses.moco import moco_loss_func
from cassle.losses.mocov3 import mocov3_loss_func
from cassle.losses.nnclr import nnclr_loss_func
from cassle.losses.pnr import pnr_infonce_losses, pnr_moco_losses, pnr_negative_loss
from cassle.losses.pocon import pocon_l2_term, pocon_merge_loss
from cassle.losses.relational import relational_distill_loss
from cassle.losses.ressl import ressl_loss_func
from cassle.losses.simclr import simclr_loss_func, supcon_pos_mask
from cassle.losses.simsiam import simsiam_loss_func
from cassle.losses.swav import sinkhorn_knopp, swav_loss_func
from cassle.losses.vicreg import vicreg_loss_func
from cassle.losses.wmse import wmse_loss_func

__all__ = [
    "barlow_loss_func",
    "byol_loss_func",
    "vicreg_loss_func",
    "simclr_loss_func",
    "supcon_pos_mask",
    "moco_loss_func",
    "swav_loss_func",
    "sinkhorn_knopp",
    "simclr_distill_loss_func",
    "contrastive_distill_loss",
    "decorrelative_distill_loss",
    "predictive_distill_loss",
    "predictive_mse_distill_loss",
    "knowledge_distill_loss",
    "deepclusterv2_loss_func",
    "DINOLoss",
    "mocov3_loss_func",
    "simsiam_loss_func",
    "nnclr_loss_func",
    "ressl_loss_func",
    "wmse_loss_func",
    "relational_distill_loss",
    "pnr_infonce_losses",
    "pnr_moco_losses",
    "pnr_negative_loss",
    "pocon_l2_term",
    "pocon_merge_loss",
]
