"""MoCo v3 loss (Chen, Xie and He, 2021): InfoNCE of queries against the keys of the whole batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cassle.losses._checks import check_pair, check_positive
from cassle.losses._precision import full_precision
from cassle.utils.distributed import gather, rank


@full_precision
def mocov3_loss_func(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """Contrastive loss of each query against the momentum keys of the global batch.

    With q = normalise(query) (N, D) on this process, k = normalise(key) gathered over the W
    processes (W*N, D, no gradient) and r this process' rank::

        logits_n = [q_n . k_1, ..., q_n . k_WN] / T
        L = 2T * mean_n CE(logits_n, r*N + n)

    The positive of query n is the key of the same image (same rank, same row); every other key
    of the global batch is a negative. The factor 2T is MoCo v3's (it makes the gradient scale
    independent of T). Keys are constants (detached; the all-gather carries no gradient), as
    in MoCo v3 and solo-learn.

    Args:
        query: predictor outputs of one view, (N, D) (normalised here).
        key: momentum projections of the other view, (N, D) (normalised here).
        temperature: softmax temperature T > 0 (MoCo v3: 0.2).

    Returns:
        scalar loss tensor.
    """
    check_pair("query", query, "key", key)
    check_positive("temperature", temperature)
    n = query.shape[0]
    q = F.normalize(query, dim=1)
    k = gather(F.normalize(key.detach(), dim=1))  # (W*N, D), no gradient
    logits = q @ k.T / temperature
    labels = torch.arange(n, device=query.device) + n * rank()
    return F.cross_entropy(logits, labels) * (2 * temperature)
