"""Elastic Weight Consolidation (Kirkpatrick et al., PNAS 2017), applied to an SSL loss.

    L(theta) = L_ssl(theta) + lamb / 2 * sum_i F_i (theta_i - theta*_i)^2

theta* are the weights at the end of the previous task and F the diagonal Fisher information,
summed over the finished tasks (one quadratic penalty per task anchored at the latest weights is
the same as summing their Fishers; Huszar, PNAS 2018). For a self-supervised loss, whose terms are
not per-sample log-likelihoods, F is the empirical Fisher of the batch loss: the mean over the
task's batches of the squared gradient of L_ssl.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cassle.losses._precision import full_precision


@full_precision
def ewc_penalty(
    params: Sequence[torch.Tensor], anchors: Sequence[torch.Tensor], fisher: Sequence[torch.Tensor], lamb: float
) -> torch.Tensor:
    """lamb / 2 * sum_i F_i (theta_i - theta*_i)^2 over every tensor of ``params``.

    Args:
        params: current weights (gradients flow to them), any shapes.
        anchors: theta*, same shapes, no gradient.
        fisher: diagonal Fisher F >= 0, same shapes.
        lamb: penalty weight (>= 0).
    """
    if not (len(params) == len(anchors) == len(fisher)) or not params:
        raise ValueError(
            f"ewc_penalty needs as many anchors and Fisher tensors as params, got "
            f"{len(params)}, {len(anchors)}, {len(fisher)}"
        )
    if lamb < 0:
        raise ValueError(f"lamb must be >= 0, got {lamb}")
    total = params[0].new_zeros(())
    for p, a, f in zip(params, anchors, fisher):
        if p.shape != a.shape or p.shape != f.shape:
            raise ValueError(
                f"shape mismatch: param {tuple(p.shape)}, anchor {tuple(a.shape)}, fisher {tuple(f.shape)}"
            )
        total = total + (f * (p - a.detach()) ** 2).sum()
    return 0.5 * lamb * total


def fisher_from_grads(grads: Sequence[Sequence[torch.Tensor]]) -> list[torch.Tensor]:
    """Empirical diagonal Fisher: the mean over batches of the squared gradients.

    ``grads[b][i]`` is the gradient of batch b's loss w.r.t. parameter i (None = no gradient).
    """
    if not grads:
        raise ValueError("fisher_from_grads needs the gradients of at least one batch")
    out = None
    for batch in grads:
        sq = [g.detach() ** 2 for g in batch]
        out = sq if out is None else [o + s for o, s in zip(out, sq)]
    return [o / len(grads) for o in out]
