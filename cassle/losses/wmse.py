"""W-MSE loss (Ermolov et al., 2021): MSE of normalised whitened views.

The whitening itself is the method's (``cassle.methods.wmse.whiten``): this is the loss between
two batches it has already whitened.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cassle.losses._checks import check_pair
from cassle.losses._precision import full_precision


@full_precision
def wmse_loss_func(z1: torch.Tensor, z2: torch.Tensor, simplified: bool = True) -> torch.Tensor:
    """MSE between the L2-normalised whitened features of two views::

        L = mean_n || z1_n/|z1_n| - z2_n/|z2_n| ||^2 = 2 - 2 mean_n cos(z1_n, z2_n)

    As the original code: ``simplified=True`` (its default, used by its method) detaches z2, so
    only z1 gets a gradient; ``simplified=False`` is the explicit form without the detach (the
    same value, gradients into both).

    Args:
        z1, z2: whitened features of two views, (N, D) each.
        simplified: see above.

    Returns:
        scalar loss in [0, 4]; local (the whitening uses each process's batch, as the original).
    """
    check_pair("z1", z1, "z2", z2)
    if simplified:
        return 2 - 2 * F.cosine_similarity(z1, z2.detach(), dim=-1).mean()
    return 2 - 2 * (F.normalize(z1, dim=-1) * F.normalize(z2, dim=-1)).sum(dim=-1).mean()
