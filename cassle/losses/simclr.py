"""SimCLR / SupCon loss (Chen et al., 2020; Khosla et al., 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cassle.losses._checks import check_pair, check_positive
from cassle.losses._precision import full_precision
from cassle.utils.distributed import gather


def supcon_pos_mask(labels: torch.Tensor) -> torch.Tensor:
    """Same-label mask for :func:`simclr_loss_func`'s ``extra_pos_mask`` (SupCon).

    Args:
        labels: labels of the batch the loss sees, (M,) integers, in the order of the loss'
            rows: the local labels (default, local loss), or with ``global_batch=True`` under
            DDP ``cassle.utils.distributed.gather(local_labels)``.  A mask of the wrong size
            is rejected by :func:`simclr_loss_func`.

    Returns:
        (2M, 2M) bool, ordered like the loss' rows ``[all z1; all z2]``:
        ``mask[i, j] = labels[i mod M] == labels[j mod M]`` (diagonal included; the loss drops it).
    """
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be a 1-D tensor (N,), got {shape}")
    y = torch.cat([labels, labels])  # (2M,)
    return y[:, None] == y[None, :]


@full_precision
def simclr_loss_func(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 0.1,
    extra_pos_mask: torch.Tensor | None = None,
    global_batch: bool = False,
) -> torch.Tensor:
    """NT-Xent (SimCLR) and, with ``extra_pos_mask``, the supervised contrastive loss.

    With z = normalise([z1; z2]) (2M rows), s_ij = z_i . z_j / T and P(i) the positives of
    anchor i (the other view ``i +- M``, plus ``extra_pos_mask[i]``, never i itself)::

        log p_ij = s_ij - log sum_{k != i} exp(s_ik)
        L = - 1/(2M) sum_i 1/|P(i)| sum_{j in P(i)} log p_ij

    Distributed, by default (the reference): M = N, the process's own batch, no gather (2N - 2
    negatives per anchor); build a SupCon mask from the local labels.  With
    ``global_batch=True``: z1 and z2 are gathered and concatenated as ``[z1 of rank 0, z1 of
    rank 1, ...; z2 of rank 0, z2 of rank 1, ...]`` (M = W * N); every process computes all 2M
    anchors, so the value is the loss of the concatenated batch.  Build the SupCon mask with
    ``supcon_pos_mask(gather(labels))``: gathering labels gives the same order.

    Args:
        z1, z2: projections of the two views, (N, D) each (normalised here).
        temperature: softmax temperature T > 0.
        extra_pos_mask: optional (2M, 2M) bool mask of additional positives.
        global_batch: exact loss of the concatenated multi-process batch (opt-in).

    Returns:
        scalar loss tensor.
    """
    check_pair("z1", z1, "z2", z2)
    check_positive("temperature", temperature)
    if global_batch:
        z1, z2 = gather(z1), gather(z2)  # (M, D)
    m = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2M, D)

    self_mask = torch.eye(2 * m, dtype=torch.bool, device=z.device)  # (2M, 2M)
    logits = (z @ z.T / temperature).masked_fill(self_mask, float("-inf"))  # (2M, 2M)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # (2M, 2M)

    pos = self_mask.roll(shifts=m, dims=1)  # other view: j = (i + M) mod 2M
    if extra_pos_mask is not None:
        if not isinstance(extra_pos_mask, torch.Tensor) or extra_pos_mask.shape != (2 * m, 2 * m):
            got = tuple(extra_pos_mask.shape) if isinstance(extra_pos_mask, torch.Tensor) else extra_pos_mask
            raise ValueError(
                f"extra_pos_mask must be a ({2 * m}, {2 * m}) bool tensor (2 x the loss' batch, "
                f"rows [all z1; all z2]; see supcon_pos_mask), got {got}"
            )
        pos = (pos | extra_pos_mask.to(device=z.device, dtype=torch.bool)) & ~self_mask

    mean_log_prob_pos = log_prob.masked_fill(~pos, 0).sum(dim=1) / pos.sum(dim=1)  # (2M,)
    return -mean_log_prob_pos.mean()
