"""MoCo (v2+) InfoNCE loss with a queue of negatives (He et al., 2020; Chen et al., 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cassle.losses._checks import check_matrix, check_pair, check_positive
from cassle.losses._precision import full_precision


@full_precision
def moco_loss_func(
    query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    """InfoNCE of each query against its key (positive) and the queue (negatives).

    ::

        logits_n = [q_n . k_n, q_n . queue_:1, ..., q_n . queue_:K] / T       # (N, 1 + K)
        L = mean_n CE(logits_n, 0) = - mean_n log softmax(logits_n)_0

    Purely local: gathering keys into the queue is the method's job.  Keys and queue are
    momentum-encoder outputs, i.e. constants (detached here).

    Args:
        query: normalised online projections, (N, D).
        key: normalised momentum projections of the same images, (N, D).
        queue: normalised past keys, (D, K) (one column per negative).
        temperature: softmax temperature T > 0.

    Returns:
        scalar loss tensor.
    """
    check_pair("query", query, "key", key)
    check_matrix("queue", queue)
    check_positive("temperature", temperature)
    if queue.shape[0] != query.shape[1]:
        raise ValueError(f"queue must be (D, K) with D = query.shape[1] = {query.shape[1]}, got {tuple(queue.shape)}")
    pos = (query * key.detach()).sum(dim=1, keepdim=True)  # (N, 1)
    neg = query @ queue.detach().to(query.dtype)  # (N, K)
    logits = torch.cat([pos, neg], dim=1) / temperature  # (N, 1 + K)
    targets = torch.zeros(query.shape[0], dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, targets)
