"""CroMo-Mixup's cross-model feature-mixup loss (Mushtaq et al., ECCV 2024, Sec. 3).

Cross-task mixup of a current image x and a buffered past image x_b (per view v):

    x~_v = lambda * x_v + (1 - lambda) * x_b,v

and the cross-model feature mixup target of its embedding z~_v = h_theta(x~_v): the current
model's embedding of the current image, z_v = h_theta(x_v), weighted lambda, and the previous
task's frozen model's embedding of the buffered image, z*_b,v = h_theta*(x_b,v), weighted
1 - lambda, each through the method's own pairwise SSL loss L:

    L_mix = 1/V sum_v [ lambda * L(z~_v, z_v) + (1 - lambda) * L(z~_v, z*_b,v) ]

(ErumMushtaq/CroMo-Mixup ``trainers/train_mixed_distillation.py``: ``mixed_loss`` / ``ood_loss``,
0.5 * (view 1 + view 2)). L is Barlow Twins' loss, NT-Xent or BYOL's regression as the method's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def cromo_mixup_loss(
    z_mix: Sequence[torch.Tensor],
    z_new: Sequence[torch.Tensor],
    z_old: Sequence[torch.Tensor],
    lam: torch.Tensor | float,
    pair_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """The mean over views of lam * L(z~, z) + (1 - lam) * L(z~, z*_b).

    Args:
        z_mix: per view, the current model's embeddings of the mixed images, (M, D).
        z_new: per view, the current model's embeddings of the current images mixed in, (M, D).
        z_old: per view, the frozen model's embeddings of the buffer images mixed in, (M, D).
        lam: the mixup coefficient (weight of the current image), a scalar.
        pair_loss: the method's loss of two embedding batches (row i of one is row i's positive).
    """
    if not (len(z_mix) == len(z_new) == len(z_old)) or not z_mix:
        raise ValueError(f"cromo_mixup_loss needs as many views of each, got {len(z_mix)}, {len(z_new)}, {len(z_old)}")
    terms = [lam * pair_loss(m, n) + (1 - lam) * pair_loss(m, o) for m, n, o in zip(z_mix, z_new, z_old)]
    return torch.stack(terms).mean()
