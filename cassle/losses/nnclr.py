"""NNCLR loss (Dwibedi et al., 2021): InfoNCE with the nearest neighbour as the positive."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cassle.losses._checks import check_pair, check_positive
from cassle.losses._precision import full_precision


@full_precision
def nnclr_loss_func(nn: torch.Tensor, p: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE of each support-set neighbour against the predictions of the other view.

    With nn and p L2-normalised row-wise::

        logits = nn p^T / T                                         # (N, N)
        L = - 1/N sum_i log softmax(logits_i)_i

    Row i's positive is column i (the prediction of the same image); the other N - 1
    predictions of the batch are its negatives. The method symmetrises it:
    L = nnclr(NN(z1), p2) / 2 + nnclr(NN(z2), p1) / 2.

    Args:
        nn: nearest neighbours (from the support set) of one view's projections, (N, D).
        p: predictions of the other view, (N, D).
        temperature: softmax temperature T > 0.

    Returns:
        scalar loss; local (each process's own batch, as the original).
    """
    check_pair("nn", nn, "p", p)
    check_positive("temperature", temperature)
    logits = F.normalize(nn, dim=-1) @ F.normalize(p, dim=-1).T / temperature  # (N, N)
    targets = torch.arange(p.shape[0], device=p.device)
    return F.cross_entropy(logits, targets)
