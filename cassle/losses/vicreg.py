"""VICReg loss (Bardes et al., 2022)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cassle.losses._checks import check_min_batch, check_pair
from cassle.losses._precision import full_precision
from cassle.utils.distributed import gather

VAR_EPS = 1e-4  # inside the sqrt of the variance term, as in the paper


def _variance_term(z: torch.Tensor) -> torch.Tensor:
    """mean_d relu(1 - sqrt(Var_n(z_nd) + 1e-4)), unbiased variance; z (N, D)."""
    std = torch.sqrt(z.var(dim=0, unbiased=True) + VAR_EPS)  # (D,)
    return F.relu(1 - std).mean()


def _covariance_term(z: torch.Tensor) -> torch.Tensor:
    """sum_{i != j} Cov(z)_ij^2 / D with Cov = (z - mean)^T (z - mean) / (N - 1); z (N, D)."""
    n, d = z.shape
    centred = z - z.mean(dim=0)  # (N, D)
    cov = centred.T @ centred / (n - 1)  # (D, D)
    eye = torch.eye(d, dtype=torch.bool, device=z.device)
    return cov.masked_fill(eye, 0).pow(2).sum() / d


@full_precision
def vicreg_loss_func(
    z1: torch.Tensor,
    z2: torch.Tensor,
    sim_loss_weight: float = 25.0,
    var_loss_weight: float = 25.0,
    cov_loss_weight: float = 1.0,
    global_batch: bool = False,
) -> torch.Tensor:
    """VICReg: variance-invariance-covariance regularisation.

    ::

        s(z1, z2) = mean_{n,d} (z1_nd - z2_nd)^2                                  # F.mse_loss
        v(z)      = 1/D sum_d relu(1 - sqrt(Var(z_:d) + 1e-4))                     # unbiased Var
        c(z)      = 1/D sum_{i != j} Cov(z)_ij^2,  Cov = (z - mean)^T (z - mean) / (N - 1)
        L = sim_loss_weight * s + var_loss_weight * [v(z1) + v(z2)] + cov_loss_weight * [c(z1) + c(z2)]

    Distributed: by default (the reference) every term is computed on the process's own batch.
    With ``global_batch=True`` z1 and z2 are gathered first and every term is computed on the
    global batch, so each process gets the loss of the concatenated batch.

    Args:
        z1, z2: projections of the two views, (N, D) each.
        global_batch: exact loss of the concatenated multi-process batch (opt-in).

    Returns:
        scalar loss tensor.
    """
    check_pair("z1", z1, "z2", z2)
    if global_batch:
        z1, z2 = gather(z1), gather(z2)  # (W*N, D)
    check_min_batch(z1.shape[0], 2, "vicreg_loss_func")
    sim = F.mse_loss(z1, z2)
    var = _variance_term(z1) + _variance_term(z2)
    cov = _covariance_term(z1) + _covariance_term(z2)
    return sim_loss_weight * sim + var_loss_weight * var + cov_loss_weight * cov
