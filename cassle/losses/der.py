"""Dark Experience Replay (Buzzega et al., NeurIPS 2020), adapted to SSL.

    L = L_ssl + alpha * E_{(x', z') ~ M} || z' - h_theta(x') ||_2^2

M is the reservoir buffer; z' the projection the model gave x' when it was inserted (the "dark
knowledge"), h_theta(x') today's projection of a fresh augmentation of x'. As in the authors' code
(``F.mse_loss``) the squared distance is averaged over the D dimensions too, i.e. the equation
above divided by D, so alpha does not depend on the projector's width.
"""

from __future__ import annotations

import torch

from cassle.losses._checks import check_pair
from cassle.losses._precision import full_precision


@full_precision
def der_loss(z: torch.Tensor, z_stored: torch.Tensor) -> torch.Tensor:
    """mean_i ||z_i - z'_i||^2 / D for today's projections z (N, D) and the stored z' (N, D)."""
    check_pair("z", z, "z_stored", z_stored)
    return ((z - z_stored.detach()) ** 2).mean()
