"""PNR: Pseudo-Negative Regularization (Cha, Cho, Moon, ICML 2024, "Regularizing with
Pseudo-Negatives for Continual Self-Supervised Learning"), as its public code computes it
(csm9493/PNR, ``cassle/losses/pnr.py`` and ``cassle/distillers/*_pnr.py``).

Notation: z_v the current projection of view v, f_v = z_bar_v the frozen (previous-task) projection,
p_v = g(z_v) the distillation predictor's output, T the temperature; for the queue variant q_v,
k_v the normalised query / momentum key and Q_k, Q_f the queues of past keys and past frozen
projections. Pure functions, all local (no gathering), as the public code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cassle.losses._checks import check_pair, check_positive
from cassle.losses._precision import full_precision
from cassle.losses.byol import byol_loss_func
from cassle.losses.moco import moco_loss_func


@full_precision
def pnr_infonce_losses(
    p1: torch.Tensor,
    p2: torch.Tensor,
    z1: torch.Tensor,
    z2: torch.Tensor,
    f1: torch.Tensor,
    f2: torch.Tensor,
    temperature: float = 0.2,
):
    """PNR for SimCLR (paper section 4.1; code ``simclr_moco_loss_func``): (L_main, L_reg).

    With Z = normalise([z1; z2]), F = normalise([f1; f2]), P = normalise([p1; p2]) (2N rows each),
    i' the other view of row i (i +- N) and s(a, b) = a . b / T::

        L_main = - 1/(2N) sum_i log  exp s(Z_i, Z_i') /
                   ( sum_{j != i} exp s(Z_i, Z_j) + sum_{j != i} exp s(Z_i, F_j) )
        L_reg  = - 1/(2N) sum_i log  exp s(P_i, F_i) /
                   ( sum_{j != i} exp s(P_i, F_j) + sum_{j != i} exp s(P_i, Z_j) )

    The main loss is SimCLR's with the frozen outputs of the other 2N - 1 samples as extra
    (pseudo-)negatives; the regulariser is CaSSLe's contrastive distillation with the current
    outputs as pseudo-negatives. As in the code, the denominator of L_reg leaves out its own
    positive F_i (j != i in both sums), and nothing is detached here (f is a constant in use).
    The code averages this function over (p1, p2, ...) and the view-swapped (p2, p1, ...) call,
    which permutes rows and columns alike and so gives the same value: computed once here.
    """
    for a, b in (("p1", p1), ("p2", p2), ("z1", z1), ("z2", z2), ("f2", f2)):
        check_pair("f1", f1, a, b)
    check_positive("temperature", temperature)
    n2 = 2 * z1.shape[0]
    p = F.normalize(torch.cat([p1, p2]), dim=-1)
    z = F.normalize(torch.cat([z1, z2]), dim=-1)
    f = F.normalize(torch.cat([f1, f2]), dim=-1)
    eye = torch.eye(n2, dtype=torch.bool, device=z.device)
    other = torch.arange(n2, device=z.device).roll(n2 // 2)  # i' (the other view of row i)

    def nll(logits: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:  # logits (2N, 4N)
        masked = logits.masked_fill(torch.cat([eye, eye], dim=1), float("-inf"))
        return (torch.logsumexp(masked, dim=1) - pos).mean()

    logits_main = torch.cat([z @ z.T, z @ f.T], dim=1) / temperature
    main = nll(logits_main, logits_main[torch.arange(n2), other])
    logits_reg = torch.cat([p @ f.T, p @ z.T], dim=1) / temperature
    reg = nll(logits_reg, logits_reg[:, :n2].diagonal())
    return main, reg


@full_precision
def pnr_moco_losses(
    q: list[torch.Tensor],
    k: list[torch.Tensor],
    p: list[torch.Tensor],
    f: list[torch.Tensor],
    queue_k: torch.Tensor,
    queue_f: torch.Tensor,
    temperature: float = 0.2,
    distill_temperature: float = 0.2,
):
    """PNR for MoCoV2+ (paper section 4.1; code ``moco_pnr_loss_func``): (L_main, L_reg).

    ``q``, ``k``: normalised queries and momentum keys per view; ``p``: the predictor's outputs and
    ``f`` the frozen projections per view (normalised here, as the code); ``queue_k``, ``queue_f``:
    (2, D, K) queues of past keys and past frozen projections, as before this step. With w the
    other view of v and l(a, b, Q, T) = moco_loss_func (InfoNCE of a against b and the columns of Q)::

        L_main = 1/2 sum_v l(q_v, k_w, [Q_k[w] | Q_f[w]], T)
        L_reg  = 1/2 sum_v l(p_v, f_v, [Q_k[w] | Q_f[w]], T_distill)

    The code's ``loss_alpha`` and its unused arguments do nothing and are left out.
    """
    check_positive("distill_temperature", distill_temperature)
    pn = [F.normalize(x, dim=-1) for x in p]
    fn = [F.normalize(x.detach(), dim=-1) for x in f]
    main = reg = 0.0
    for v, w in ((0, 1), (1, 0)):
        negatives = torch.cat([queue_k[w], queue_f[w]], dim=1)
        main = main + moco_loss_func(q[v], k[w], negatives, temperature=temperature) / 2
        reg = reg + moco_loss_func(pn[v], fn[v], negatives, temperature=distill_temperature) / 2
    return main, reg


NEGATIVE_KINDS = ("byol", "cosine", "mse")


@full_precision
def pnr_negative_loss(
    p1: torch.Tensor, p2: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor, kind: str
) -> torch.Tensor:
    """PNR's pseudo-negative for non-contrastive methods (paper section 4.2): the frozen output of
    the *other* view of the anchor, subtracted (weight ``--pnr_negative_lamb``) from the loss::

        byol   (BYOL):          1/2 [ (2 - 2 cos(p1, f2)) + (2 - 2 cos(p2, f1)) ]
        cosine (Barlow Twins):  1/2 [ -cos(p1, f2) - cos(p2, f1) ]          (the code's SimSiam term)
        mse    (VICReg):        1/2 [ mean (p1 - f2)^2 + mean (p2 - f1)^2 ]

    (batch means; f detached). Which term each method uses is the public code's choice.
    """
    check_pair("p1", p1, "f2", f2)
    check_pair("p2", p2, "f1", f1)
    f1, f2 = f1.detach(), f2.detach()
    if kind == "byol":
        return 0.5 * (byol_loss_func(p1, f2) + byol_loss_func(p2, f1))
    if kind == "cosine":
        return -0.5 * (F.cosine_similarity(p1, f2, dim=-1).mean() + F.cosine_similarity(p2, f1, dim=-1).mean())
    if kind == "mse":
        return 0.5 * (F.mse_loss(p1, f2) + F.mse_loss(p2, f1))
    raise ValueError(f"unknown pseudo-negative kind {kind!r}; valid: {', '.join(NEGATIVE_KINDS)}")
