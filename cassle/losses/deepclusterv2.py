"""DeepCluster-v2 loss (Caron et al., 2020, the SwAV paper's DeepCluster-v2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cassle.losses._checks import check_positive
from cassle.losses._precision import full_precision


@full_precision
def deepclusterv2_loss_func(outputs: torch.Tensor, assignments: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Cross-entropy of prototype scores against k-means cluster assignments.

    With P prototype heads, V views, N samples, K_h prototypes, scores s[h, v, n] (K,) and the
    k-means cluster a[h, n] of sample n for head h (-1: not assigned yet, ignored)::

        l_h = - 1/|M_h| sum_{v, n in M_h} log softmax(s[h, v, n] / T)_{a[h, n]},
              M_h = {n : a[h, n] >= 0}
        L = mean_h l_h

    Every view of a sample has the same target (its cluster). A head without any assigned sample
    (the first epoch, before the first k-means) contributes 0 with zero gradient: the original
    (torch's mean over no element) gives NaN there, with the same zero gradient.

    Args:
        outputs: (P, V, N, K) prototype scores (all heads with K prototypes).
        assignments: (P, N) integer cluster indices, -1 for none.
        temperature: softmax temperature T > 0.

    Returns:
        scalar loss tensor.
    """
    check_positive("temperature", temperature)
    if not isinstance(outputs, torch.Tensor) or outputs.dim() != 4 or not outputs.is_floating_point():
        raise ValueError(
            f"outputs must be a floating (P, V, N, K) tensor, got {getattr(outputs, 'shape', type(outputs).__name__)}"
        )
    p, v, n, k = outputs.shape
    if not isinstance(assignments, torch.Tensor) or tuple(assignments.shape) != (p, n):
        raise ValueError(
            f"assignments must be (P, N) = ({p}, {n}), got {getattr(assignments, 'shape', type(assignments).__name__)}"
        )
    losses = []
    for h in range(p):
        scores = outputs[h].reshape(v * n, k) / temperature
        targets = assignments[h].to(outputs.device).long().repeat(v)
        total = F.cross_entropy(scores, targets, ignore_index=-1, reduction="sum")
        losses.append(total / (targets >= 0).sum().clamp(min=1))
    return torch.stack(losses).mean()
