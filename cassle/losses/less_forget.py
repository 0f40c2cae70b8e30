"""Less-forget constraint of LUCIR (Hou et al., CVPR 2019): keep the direction of the features.

    L_dis = 1/N sum_i (1 - < f_i / ||f_i||, f*_i / ||f*_i|| >)
    lambda = lambda_base * sqrt(|C_old| / |C_new|)

f are the current backbone features, f* those of the frozen previous-task backbone (no gradient).
LUCIR's adaptive weight grows with the ratio of old to new classes; without labels we count tasks
(equal-size tasks: |C_old| / |C_new| = t at task t), see :func:`adaptive_weight`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cassle.losses._checks import check_pair
from cassle.losses._precision import full_precision


@full_precision
def less_forget_loss(f: torch.Tensor, f_old: torch.Tensor) -> torch.Tensor:
    """Mean cosine distance 1 - cos(f_i, f*_i) over the batch; f, f_old (N, D)."""
    check_pair("f", f, "f_old", f_old)
    return (1 - F.cosine_similarity(f, f_old.detach(), dim=1, eps=1e-8)).mean()


def adaptive_weight(base: float, num_old: int, num_new: int) -> float:
    """LUCIR / PODNet's lambda = base * sqrt(num_old / num_new)."""
    if num_new <= 0 or num_old < 0:
        raise ValueError(f"adaptive_weight needs num_new > 0 and num_old >= 0, got {num_new}, {num_old}")
    return base * math.sqrt(num_old / num_new)
