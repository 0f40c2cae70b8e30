"""CaSSLe distillation terms (Fini et al., 2022): losses between p = g(z) and frozen z_bar.

The distillers' predictor g maps the current projection z of each view to the frozen
projector's space; these pure functions compare its output p with the frozen projections
z_bar (always detached: the frozen network is never trained).  All are local (no gathering),
except that the decorrelative term inherits Barlow Twins' distributed semantics (its
``global_batch`` argument: averaged correlation matrix by default, as the reference).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cassle.losses._checks import check_pair, check_positive, check_views
from cassle.losses._precision import full_precision
from cassle.losses.barlow import barlow_loss_func
from cassle.losses.byol import byol_loss_func


@full_precision
def simclr_distill_loss_func(
    p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    """One direction of the contrastive distillation: anchors P against candidates Z.

    ::

        P = normalise([p1; p2]),  Z = normalise([z1; z2])                 # (2N, D) each
        logits = P Z^T / T                                                 # (2N, 2N)
        L = - 1/(2N) sum_i log softmax(logits_i)_i

    Row i's positive is column i (same image, same view); all 2N rows of Z, including the other
    view of the same image, are candidates.  Nothing is detached here: see
    :func:`contrastive_distill_loss` for the symmetrised CaSSLe term.

    Args:
        p1, p2: anchors of the two views, (N, D) each.
        z1, z2: candidates of the two views, (N, D) each.
        temperature: softmax temperature T > 0.
    """
    check_pair("p1", p1, "p2", p2)
    check_pair("z1", z1, "z2", z2)
    check_pair("p1", p1, "z1", z1)
    check_positive("temperature", temperature)
    p = F.normalize(torch.cat([p1, p2]), dim=1)  # (2N, D)
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, D)
    logits = p @ z.T / temperature  # (2N, 2N)
    targets = torch.arange(p.shape[0], device=p.device)
    return F.cross_entropy(logits, targets)


@full_precision
def contrastive_distill_loss(
    p1: torch.Tensor, p2: torch.Tensor, z_bar1: torch.Tensor, z_bar2: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    """CaSSLe contrastive distillation (SimCLR, MoCoV2+, SupCon), averaged over both directions.

    ::

        L = 1/2 [ simclr_distill(p1, p2, sg(z_bar1), sg(z_bar2))       # predictions as anchors
                + simclr_distill(sg(z_bar1), sg(z_bar2), p1, p2) ]     # frozen as anchors
    """
    zb1, zb2 = z_bar1.detach(), z_bar2.detach()
    return 0.5 * (
        simclr_distill_loss_func(p1, p2, zb1, zb2, temperature)
        + simclr_distill_loss_func(zb1, zb2, p1, p2, temperature)
    )


@full_precision
def decorrelative_distill_loss(
    p1: torch.Tensor,
    p2: torch.Tensor,
    z_bar1: torch.Tensor,
    z_bar2: torch.Tensor,
    lamb: float = 0.005,
    scale_loss: float = 0.1,
    global_batch: bool = False,
) -> torch.Tensor:
    """CaSSLe decorrelative distillation (Barlow Twins)::

        L = 1/2 [ Barlow(p1, sg(z_bar1)) + Barlow(p2, sg(z_bar2)) ]   (see barlow_loss_func)

    ``global_batch`` selects Barlow's multi-process semantics (default: the reference's).
    """
    return 0.5 * (
        barlow_loss_func(p1, z_bar1.detach(), lamb, scale_loss, global_batch=global_batch)
        + barlow_loss_func(p2, z_bar2.detach(), lamb, scale_loss, global_batch=global_batch)
    )


@full_precision
def predictive_distill_loss(
    p1: torch.Tensor, p2: torch.Tensor, z_bar1: torch.Tensor, z_bar2: torch.Tensor
) -> torch.Tensor:
    """CaSSLe predictive distillation (BYOL)::

    L = 1/2 [ (2 - 2 cos(p1, sg(z_bar1))) + (2 - 2 cos(p2, sg(z_bar2))) ]   (batch means)
    """
    return 0.5 * (byol_loss_func(p1, z_bar1) + byol_loss_func(p2, z_bar2))


@full_precision
def predictive_mse_distill_loss(
    p1: torch.Tensor, p2: torch.Tensor, z_bar1: torch.Tensor, z_bar2: torch.Tensor
) -> torch.Tensor:
    """CaSSLe predictive distillation with MSE (VICReg)::

    L = 1/2 [ mean (p1 - sg(z_bar1))^2 + mean (p2 - sg(z_bar2))^2 ]   (F.mse_loss, mean)
    """
    check_pair("p1", p1, "z_bar1", z_bar1)
    check_pair("p2", p2, "z_bar2", z_bar2)
    return 0.5 * (F.mse_loss(p1, z_bar1.detach()) + F.mse_loss(p2, z_bar2.detach()))


@full_precision
def knowledge_distill_loss(
    student_logits: Sequence[torch.Tensor], teacher_logits: Sequence[torch.Tensor], temperature: float = 0.1
) -> torch.Tensor:
    """CaSSLe knowledge distillation (SwAV): cross-entropy from teacher to student prototypes.

    For each view v, with student scores s_v and frozen teacher scores t_v, (N, K)::

        l_v = - 1/N sum_n sum_k softmax(sg(t_v[n]) / T)_k * log softmax(s_v[n] / T)_k
        L = mean_v l_v

    Args:
        student_logits: V prototype scores of the learnable distillation prototypes on
            normalise(p_v), (N, K) each.
        teacher_logits: V scores of the frozen prototypes on normalise(z_bar_v), (N, K) each.
        temperature: softmax temperature T > 0.
    """
    check_views("student_logits", student_logits, minimum=1)
    check_views("teacher_logits", teacher_logits, minimum=1)
    check_positive("temperature", temperature)
    if len(student_logits) != len(teacher_logits) or student_logits[0].shape != teacher_logits[0].shape:
        raise ValueError(
            "student_logits and teacher_logits must hold as many views of one shape, got "
            f"{len(student_logits)} x {tuple(student_logits[0].shape)} and "
            f"{len(teacher_logits)} x {tuple(teacher_logits[0].shape)}"
        )
    losses = []
    for s, t in zip(student_logits, teacher_logits):
        target = torch.softmax(t.detach() / temperature, dim=1)  # (N, K)
        losses.append(-(target * torch.log_softmax(s / temperature, dim=1)).sum(dim=1).mean())
    return torch.stack(losses).mean()
