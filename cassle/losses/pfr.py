"""Projected Functional Regularization, PFR (Gomez-Villa et al., CVPR-W 2022).

A temporal projector p (d -> d/2 -> d) maps the current backbone features f to the space of the
frozen previous-task backbone's features f*, and

    L_pfr = - 1/N sum_i < p(f_i) / ||p(f_i)||, f*_i / ||f*_i|| >

pulls them together (negative cosine similarity; f* has no gradient). Unlike a plain feature
distillation (Less-Forget) the new features only need to keep the *information* of the old ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cassle.losses._checks import check_pair
from cassle.losses._precision import full_precision


@full_precision
def pfr_loss(p: torch.Tensor, f_old: torch.Tensor) -> torch.Tensor:
    """- mean_i cos(p_i, f*_i); p = projector(f) (N, D), f_old (N, D)."""
    check_pair("p", p, "f_old", f_old)
    return -F.cosine_similarity(p, f_old.detach(), dim=1, eps=1e-8).mean()
