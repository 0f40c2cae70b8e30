"""Barlow Twins loss (Zbontar et al., 2021)."""

from __future__ import annotations

import torch

from cassle.losses._checks import check_min_batch, check_pair
from cassle.losses._precision import full_precision
from cassle.utils.distributed import all_reduce_mean_local_grad, all_reduce_sum, world_size

BN_EPS = 1e-5  # BatchNorm1d's default eps, which the original code's affine-free BN uses


@full_precision
def barlow_loss_func(
    z1: torch.Tensor, z2: torch.Tensor, lamb: float = 0.005, scale_loss: float = 0.025, global_batch: bool = False
) -> torch.Tensor:
    """Barlow Twins redundancy-reduction loss.

    Each dimension is standardised over the batch as an affine-free ``BatchNorm1d`` in training
    mode does (biased variance, eps 1e-5): ``zn = (z - mean) / sqrt(var + eps)``.  Then::

        C = zn1^T zn2 / N                                              # (D, D)
        L = scale_loss * [ sum_i (1 - C_ii)^2 + lamb * sum_{i != j} C_ij^2 ]

    Distributed, ``global_batch=False`` (the reference, default): each process standardises with
    its own batch statistics and computes its C_r; only C is averaged over the W processes,
    ``C = mean_r C_r``, and the gradient flows through the local C_r only (scaled 1/W), as the
    reference's in-place all-reduce outside autograd does.

    ``global_batch=True``: the per-dimension sums, the squared deviations and ``C`` are
    all-reduced (N = global batch, like a SyncBatchNorm), so every process gets the loss of the
    concatenated batch; gradients follow :mod:`cassle.utils.distributed`'s convention.

    Args:
        z1, z2: projections of the two views, (N, D) each, same N on every process.
        lamb: weight of the off-diagonal (redundancy) term.
        scale_loss: global factor (0.025 is the function default; the CIFAR scripts use 0.1).
        global_batch: exact loss of the concatenated multi-process batch (opt-in).

    Returns:
        scalar loss tensor.
    """
    check_pair("z1", z1, "z2", z2)
    n_local, d = z1.shape
    z = torch.stack([z1, z2])  # (2, N, D): both views share each reduction
    if global_batch:
        n = n_local * world_size()  # equal per-process batches (see cassle.utils.distributed)
        check_min_batch(n, 2, "barlow_loss_func")
        mean = all_reduce_sum(z.sum(dim=1, keepdim=True)) / n  # (2, 1, D)
        centred = z - mean  # (2, N, D)
        var = all_reduce_sum(centred.pow(2).sum(dim=1, keepdim=True)) / n  # (2, 1, D), biased
        zn = centred / torch.sqrt(var + BN_EPS)  # (2, N, D)
        c = all_reduce_sum(zn[0].T @ zn[1]) / n  # (D, D)
    else:
        check_min_batch(n_local, 2, "barlow_loss_func")
        centred = z - z.mean(dim=1, keepdim=True)  # (2, N, D)
        zn = centred / torch.sqrt(centred.pow(2).mean(dim=1, keepdim=True) + BN_EPS)  # biased var
        c = all_reduce_mean_local_grad(zn[0].T @ zn[1] / n_local)  # (D, D)
    diag = torch.diagonal(c)  # (D,)
    on_diag = (1 - diag).pow(2).sum()
    eye = torch.eye(d, dtype=torch.bool, device=c.device)
    off_diag = c.masked_fill(eye, 0).pow(2).sum()
    return scale_loss * (on_diag + lamb * off_diag)
