"""Instance-wise relation distillation, IRD (Cha, Lee & Shin, "Co2L", ICCV 2021, eq. 5-6).

For the N L2-normalised projections z_i of a batch (every view of every image, N = 2B for two views)
and those z*_i of the previous task's frozen model on the same images,

    p_ij  = exp(z_i . z_j / kappa)   / sum_{k != i} exp(z_i . z_k / kappa)     (j != i)
    p*_ij = exp(z*_i . z*_j / kappa*) / sum_{k != i} exp(z*_i . z*_k / kappa*)
    L_IRD = (1/N) sum_i sum_{j != i} -p*_ij log p_ij

a cross-entropy between the current and the past instance-wise similarity distributions (no
gradient through the past one). chaht01/Co2L ``main.py``: kappa (``--current_temp``) 0.2, kappa*
(``--past_temp``) 0.01, weight (``--distill_power``) 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cassle.losses._checks import check_pair
from cassle.losses._precision import full_precision


def _log_relations(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """Row-wise log-softmax of z z^T / T over the other samples, (N, N); the diagonal (self,
    excluded) is 0 here and has probability 0. Masked, not indexed: no data-dependent shapes."""
    z = F.normalize(z, dim=1)
    self_mask = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    sim = (z @ z.T / temperature).masked_fill(self_mask, float("-inf"))
    return F.log_softmax(sim, dim=1).masked_fill(self_mask, 0.0)


@full_precision
def ird_loss(z: torch.Tensor, z_past: torch.Tensor, current_temp: float = 0.2, past_temp: float = 0.01) -> torch.Tensor:
    """L_IRD for current projections z (N, D) and the frozen model's z_past (N, D); N >= 2."""
    check_pair("z", z, "z_past", z_past)
    if z.shape[0] < 2:
        raise ValueError(f"ird_loss needs at least 2 samples, got {z.shape[0]}")
    log_p = _log_relations(z, current_temp)
    with torch.no_grad():
        eye = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
        p_past = _log_relations(z_past.detach(), past_temp).exp().masked_fill(eye, 0.0)
    return -(p_past * log_p).sum(1).mean()
