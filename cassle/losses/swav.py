"""SwAV swapped-prediction loss and Sinkhorn-Knopp codes (Caron et al., 2020)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cassle.losses._checks import check_matrix, check_positive, check_views
from cassle.losses._precision import full_precision
from cassle.utils.distributed import all_reduce_max, all_reduce_sum, world_size


@full_precision
def swav_loss_func(
    preds: Sequence[torch.Tensor], assignments: Sequence[torch.Tensor], temperature: float = 0.1
) -> torch.Tensor:
    """Swapped prediction: the codes of one view are predicted from the scores of another.

    With V views, scores p_v (N, K) and codes q_v (N, K)::

        l(v1, v2) = - 1/N sum_n sum_k q_v1[n, k] * log softmax(p_v2[n] / T)_k
        L = mean over ordered pairs v1 != v2 of l(v1, v2)

    Codes are targets (computed without gradient by :func:`sinkhorn_knopp`) and are detached.
    Local: the codes already carry the global (Sinkhorn) information.

    Args:
        preds: V >= 2 prototype scores, (N, K) each.
        assignments: V codes, (N, K) each, rows summing to 1.
        temperature: softmax temperature T > 0.

    Returns:
        scalar loss tensor.
    """
    check_views("preds", preds, minimum=2)
    check_views("assignments", assignments, minimum=2)
    check_positive("temperature", temperature)
    if len(preds) != len(assignments) or preds[0].shape != assignments[0].shape:
        raise ValueError(
            f"preds and assignments must hold as many views of one shape, got {len(preds)} x "
            f"{tuple(preds[0].shape)} and {len(assignments)} x {tuple(assignments[0].shape)}"
        )
    log_probs = [torch.log_softmax(p / temperature, dim=1) for p in preds]  # V x (N, K)
    losses = [
        -(assignments[v1].detach() * log_probs[v2]).sum(dim=1).mean()
        for v1 in range(len(preds))
        for v2 in range(len(preds))
        if v1 != v2
    ]
    return torch.stack(losses).mean()


@torch.no_grad()
@full_precision
def sinkhorn_knopp(scores: torch.Tensor, epsilon: float = 0.05, num_iters: int = 3) -> torch.Tensor:
    """Equipartitioned soft codes from prototype scores (no gradient).

    With scores S (B, K) over the global batch B (all processes) and K prototypes::

        Q = exp(S / eps)^T,  Q /= sum(Q)                                  # (K, B)
        repeat num_iters times:
            Q_k: /= sum_b Q_kb, /= K       (each prototype gets 1/K of the mass)
            Q_:b /= sum_k Q_kb, /= B       (each sample gets 1/B of the mass)
        return (B * Q)^T                                                  # (B, K), rows sum to 1

    The global max of S / eps is subtracted before ``exp`` (a constant factor that the first
    normalisation cancels), so large scores or small eps do not overflow; only entries more than
    ~87 * eps (float32) below the max underflow to 0, which they effectively are anyway.
    Half-precision scores are computed (and returned) in float32.

    Distributed: the max, the total mass and the per-prototype sums over samples are all-reduced
    and B counts every process' samples; each process gets the codes of its own rows, equal to
    the matching rows of the single-process codes on the concatenated batch.

    Args:
        scores: this process' prototype scores, (N, K).
        epsilon: entropic regularisation eps > 0.
        num_iters: Sinkhorn iterations >= 1.

    Returns:
        (N, K) codes, each row summing to 1.
    """
    check_matrix("scores", scores)
    check_positive("epsilon", epsilon)
    if not isinstance(num_iters, int) or num_iters < 1:
        raise ValueError(f"num_iters must be an integer >= 1, got {num_iters!r}")
    if scores.dtype in (torch.float16, torch.bfloat16):
        scores = scores.float()

    s = scores / epsilon  # (N, K)
    q = torch.exp(s - all_reduce_max(s.max())).T  # (K, N)
    k = q.shape[0]
    b = q.shape[1] * world_size()  # global batch (equal per-process batches)

    q = q / all_reduce_sum(q.sum())
    for _ in range(num_iters):
        q = q / all_reduce_sum(q.sum(dim=1, keepdim=True)) / k  # prototypes: rows sum to 1/K
        q = q / q.sum(dim=0, keepdim=True) / b  # samples: columns sum to 1/B (local)
    return (q * b).T  # (N, K)
