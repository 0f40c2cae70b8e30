"""BYOL loss (Grill et al., 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cassle.losses._checks import check_pair
from cassle.losses._precision import full_precision


@full_precision
def byol_loss_func(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL regression loss between a prediction and a stop-gradient target.

    ::

        L = 2 - 2 * mean_n cos(p_n, sg(z_n))   ==  mean_n || p_n/|p_n| - z_n/|z_n| ||^2

    Args:
        p: online predictions, (N, D).
        z: targets (momentum projections or frozen projections), (N, D); detached here.

    Returns:
        scalar loss in [0, 4]; purely local (DDP's gradient average is the global mean).
    """
    check_pair("p", p, "z", z)
    return 2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1).mean()
