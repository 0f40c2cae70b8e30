"""CaSSLe relational distillation (ReSSL): ReSSL's relational loss between g(z) and the frozen
projections, with the batch's other images as the anchors of the relations."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cassle.losses._checks import check_pair, check_positive
from cassle.losses._precision import full_precision


@full_precision
def relational_distill_loss(
    p1: torch.Tensor,
    p2: torch.Tensor,
    z_bar1: torch.Tensor,
    z_bar2: torch.Tensor,
    temperature_q: float = 0.1,
    temperature_k: float = 0.04,
) -> torch.Tensor:
    """The frozen model's relations of each image to the others are the target of g(z)'s.

    With P = normalise([p1; p2]), A = normalise([sg(z_bar1); sg(z_bar2)]) (2N rows each) and, for
    row i (image n = i mod N), the anchors O(i) = the 2N - 2 rows of A of the *other* images::

        t_ij = softmax_{j in O(i)}( A_i . A_j / T_k )              # frozen relations (target)
        L = - 1/(2N) sum_i sum_{j in O(i)} t_ij log softmax_{j in O(i)}( P_i . A_j / T_q )

    ReSSL's loss (``ressl_loss_func``) with the frozen projections as keys and anchors, so that
    the current model keeps the previous model's relations between images; the image's own two
    frozen projections are left out (they would make the target a one-hot, i.e. contrastive).

    Args:
        p1, p2: predictor outputs g(z) of the two views, (N, D) each, N >= 2.
        z_bar1, z_bar2: frozen projections of the two views, (N, D) each.
        temperature_q: student temperature T_q > 0 (ReSSL's query temperature).
        temperature_k: target temperature T_k > 0 (ReSSL's key temperature).

    Returns:
        scalar loss; local (each process's own batch, like the other distillation terms).
    """
    check_pair("p1", p1, "p2", p2)
    check_pair("z_bar1", z_bar1, "z_bar2", z_bar2)
    check_pair("p1", p1, "z_bar1", z_bar1)
    check_positive("temperature_q", temperature_q)
    check_positive("temperature_k", temperature_k)
    n = p1.shape[0]
    if n < 2:
        raise ValueError(f"relational_distill_loss needs a batch of at least 2 images, got {n}")
    p = F.normalize(torch.cat([p1, p2]), dim=1)  # (2N, D)
    a = F.normalize(torch.cat([z_bar1, z_bar2]).detach(), dim=1)  # (2N, D)
    idx = torch.arange(2 * n, device=p.device) % n
    same = idx[:, None] == idx[None, :]  # (2N, 2N): the image's own two projections
    target = torch.softmax((a @ a.T / temperature_k).masked_fill(same, float("-inf")), dim=1)
    log_pred = torch.log_softmax((p @ a.T / temperature_q).masked_fill(same, float("-inf")), dim=1)
    return -(target * log_pred.masked_fill(same, 0.0)).sum(dim=1).mean()
