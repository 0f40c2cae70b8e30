"""SimSiam loss (Chen & He, 2021)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cassle.losses._checks import check_pair
from cassle.losses._precision import full_precision


@full_precision
def simsiam_loss_func(p: torch.Tensor, z: torch.Tensor, simplified: bool = True) -> torch.Tensor:
    """Negative cosine similarity of a prediction and a stop-gradient projection.

    ::

        D(p, z) = - mean_n  p_n / |p_n| . sg(z_n) / |z_n|

    The method symmetrises it: L = D(p1, z2) / 2 + D(p2, z1) / 2.

    Args:
        p: predictions of one view, (N, D).
        z: projections of the other view, (N, D); detached here (the stop-gradient).
        simplified: ``F.cosine_similarity`` (default) or the explicit normalise-and-dot form;
            the same value and gradient (the original's two spellings).

    Returns:
        scalar loss in [-1, 1]; local (DDP's gradient average is the global mean).
    """
    check_pair("p", p, "z", z)
    if simplified:
        return -F.cosine_similarity(p, z.detach(), dim=-1).mean()
    return -(F.normalize(p, dim=-1) * F.normalize(z.detach(), dim=-1)).sum(dim=1).mean()
