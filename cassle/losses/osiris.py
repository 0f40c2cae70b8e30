"""Osiris' cross-task and distillation losses (Zhang, Charlin, Zemel & Ren, CoLLAs 2024, Sec. 4).

Both live in Osiris' second embedding space h(f(.)) (h: a second projector), all vectors
L2-normalised, temperature T (0.1 in SkrighYZ/Osiris ``models/contrastive.py``, the losses'
default, never overridden). x, x' the two views of the N current images, y, y' those of the M
buffer images; z_i = h(f(x_i)), z'_i = h(f(x'_i)), u_k = h(f(y_k)), u'_k = h(f(y'_k)).

Cross-task loss (its ``Cross_NT_Xent``): each current image is told apart from the buffer images
only (no negatives among the current images), and each buffer image from the current ones:

    l(a; p, Neg) = -log( exp(a.p/T) / (exp(a.p/T) + sum_{n in Neg} exp(a.n/T)) )
    L_zu = 1/(2N) sum_i [ l(z_i; z'_i, U) + l(z'_i; z_i, U) ]          U = {u_k, u'_k}_k (2M)
    L_uz = 1/(2M) sum_k [ l(u_k; u'_k, Z) + l(u'_k; u_k, Z) ]          Z = {z_i, z'_i}_i (2N)
    L_cross = (L_zu + L_uz) / 2

Distillation loss of Osiris-D (its ``Distill_NT_Xent``): with the previous task's frozen backbone
f* and the *current* h, p_i = h(f*(x_i)), p'_i = h(f*(x'_i)); rows a = [z; z'] (2N) and
b = [p; p'] (2N). Row i's positive is b_i (same image, same view, other model); its negatives are
the b_j of the other images, both views (b of the same image's other view is left out):

    L_ab = 1/(2N) sum_i l(a_i; b_i, {b_j : j != i, j != i +- N})
    L_ba = 1/(2N) sum_i l(b_i; a_i, {a_j : j != i, j != i +- N})
    L_distill = (L_ab + L_ba) / 2

(The replay variant's past-task loss is NT-Xent on the buffer views, ``simclr_loss_func(u, u')``.)
With ``global_batch`` every input is gathered over the processes first (the original gathers with
its ``GatherLayer``); by default each process uses its own batch, as this repo's SimCLR does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cassle.losses._checks import check_pair, check_positive
from cassle.losses._precision import full_precision
from cassle.utils.distributed import gather


def _anchor_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """mean_i -log(exp(pos_i) / (exp(pos_i) + sum_j exp(neg_ij))) for logits pos (R,), neg (R, K)."""
    logits = torch.cat([pos[:, None], neg], dim=1)
    return (torch.logsumexp(logits, dim=1) - pos).mean()


@full_precision
def osiris_cross_task_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    u1: torch.Tensor,
    u2: torch.Tensor,
    temperature: float = 0.1,
    global_batch: bool = False,
) -> torch.Tensor:
    """L_cross of current views z1, z2 (N, D) against buffer views u1, u2 (M, D) (module docstring)."""
    check_pair("z1", z1, "z2", z2)
    check_pair("u1", u1, "u2", u2)
    if z1.shape[1] != u1.shape[1] or z1.dtype != u1.dtype:
        raise ValueError(f"z and u must have the same width and dtype, got {tuple(z1.shape)} and {tuple(u1.shape)}")
    check_positive("temperature", temperature)
    if global_batch:
        z1, z2, u1, u2 = gather(z1), gather(z2), gather(u1), gather(u2)
    z1, z2, u1, u2 = (F.normalize(t, dim=1) for t in (z1, z2, u1, u2))
    cross = torch.cat([z1, z2]) @ torch.cat([u1, u2]).T / temperature  # (2N, 2M)
    pos_z = (z1 * z2).sum(1).repeat(2) / temperature  # rows [z; z']
    pos_u = (u1 * u2).sum(1).repeat(2) / temperature  # rows [u; u']
    return 0.5 * (_anchor_loss(pos_z, cross) + _anchor_loss(pos_u, cross.T))


@full_precision
def osiris_distill_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    p1: torch.Tensor,
    p2: torch.Tensor,
    temperature: float = 0.1,
    global_batch: bool = False,
) -> torch.Tensor:
    """L_distill of the current model's z1, z2 (N, D) and the frozen backbone's p1, p2 (N, D)."""
    check_pair("z1", z1, "p1", p1)
    check_pair("z2", z2, "p2", p2)
    check_pair("z1", z1, "z2", z2)
    check_positive("temperature", temperature)
    if global_batch:
        z1, z2, p1, p2 = gather(z1), gather(z2), gather(p1), gather(p2)
    n = z1.shape[0]
    a = F.normalize(torch.cat([z1, z2]), dim=1)
    b = F.normalize(torch.cat([p1, p2]), dim=1)
    sim = a @ b.T / temperature  # (2N, 2N)
    eye = torch.eye(2 * n, dtype=torch.bool, device=sim.device)
    out = eye | eye.roll(shifts=n, dims=1)  # self and the same image's other view
    pos = sim.diagonal()
    l_ab = _anchor_loss(pos, sim.masked_fill(out, float("-inf")))
    l_ba = _anchor_loss(pos, sim.T.masked_fill(out, float("-inf")))
    return 0.5 * (l_ab + l_ba)
