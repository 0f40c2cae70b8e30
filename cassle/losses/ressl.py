"""ReSSL loss (Zheng et al., 2021): relational self-supervision against a queue of keys."""

from __future__ import annotations

import torch

from cassle.losses._checks import check_matrix, check_pair, check_positive
from cassle.losses._precision import full_precision


@full_precision
def ressl_loss_func(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature_q: float = 0.1, temperature_k: float = 0.04
) -> torch.Tensor:
    """Cross-entropy from the key's relation to the queue to the query's relation to it.

    With the queue's rows u_1..u_K (past keys)::

        t_n = softmax_k( sg(k_n) . u_k / T_k )                     # sharper target (T_k < T_q)
        L = - 1/N sum_n sum_k t_nk log softmax_k( q_n . u_k / T_q )

    Args:
        q: normalised online projections (queries), (N, D).
        k: normalised momentum projections of the other view (keys), (N, D); detached here.
        queue: past normalised keys, (K, D): one row per key.
        temperature_q: query temperature T_q > 0.
        temperature_k: key temperature T_k > 0.

    Returns:
        scalar loss; local (gathering keys into the queue is the method's job).
    """
    check_pair("q", q, "k", k)
    check_matrix("queue", queue)
    check_positive("temperature_q", temperature_q)
    check_positive("temperature_k", temperature_k)
    if queue.shape[1] != q.shape[1]:
        raise ValueError(f"queue must be (K, D) with D = q.shape[1] = {q.shape[1]}, got {tuple(queue.shape)}")
    queue = queue.detach().to(q.dtype)
    target = torch.softmax(k.detach() @ queue.T / temperature_k, dim=1)  # (N, K)
    log_pred = torch.log_softmax(q @ queue.T / temperature_q, dim=1)  # (N, K)
    return -(target * log_pred).sum(dim=1).mean()
