"""POCON's merge ("adaptation-retrospection") terms (Gomez-Villa et al., WACV 2024, arXiv 2309.06086,
section 3: "Plasticity-Optimized Complementary Networks").

After the expert E_t has learnt task t alone with the SSL objective, the main network F_t learns from
it (adaptation) while keeping what it knew at the end of task t-1 (retrospection, F_{t-1} frozen).
The public code (alviur/pocon_wacv2024 ``src/approach/sslModels.py``, ``BarlowTwins.forward`` with
``kd_method == 'L2'`` and ``retrospection``) computes, for the two views v of a batch of B images,

    L_adapt  = sum_v || n(g_exp(F_t(x_v)))  - n(E_t(x_v))     ||_F
    L_retro  = sum_v || n(g_ret(F_t(x_v)))  - n(F_{t-1}(x_v)) ||_F            (t > 0 only)
    L_merge  = lambda_exp * L_adapt + lambda_ret * L_retro

with n(.) the row-wise L2 normalisation (``F.normalize``), ||.||_F the Frobenius norm of the whole
(B, D) difference (``torch.dist``: not squared, not averaged over the batch, so it grows as sqrt(B)),
g_exp / g_ret the adaptation and retrospection projectors, E_t and F_{t-1} without gradient.
Pure functions, float32 and float64; no distributed reduction (each process's batch, as the code).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pocon_l2_term(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """|| n(p) - n(target) ||_F over the (B, D) batch; ``target`` is detached (the code's ``.detach()``)."""
    return torch.dist(F.normalize(p, dim=1), F.normalize(target.detach(), dim=1))


def pocon_merge_loss(
    adapt_p: list[torch.Tensor],
    expert: list[torch.Tensor],
    retro_p: list[torch.Tensor] | None,
    old: list[torch.Tensor] | None,
    adapt_lamb: float = 1.0,
    retro_lamb: float = 25.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(L_merge, L_adapt, L_retro) of the module docstring, summed over the views.

    ``retro_p`` / ``old`` None (task 0: no previous main network): L_retro = 0.
    Defaults: the code's ``--lambdaExp`` 1.0 and the CIFAR-100 command's ``--lambdapRet`` 25
    (``src/tests/wacv.py``).
    """
    if len(adapt_p) != len(expert):
        raise ValueError(f"POCON: {len(adapt_p)} adapted views for {len(expert)} expert views")
    adapt = torch.stack([pocon_l2_term(p, e) for p, e in zip(adapt_p, expert)]).sum()
    if retro_p is None or old is None:
        retro = adapt.new_zeros(())
    else:
        if len(retro_p) != len(old):
            raise ValueError(f"POCON: {len(retro_p)} retrospection views for {len(old)} old views")
        retro = torch.stack([pocon_l2_term(p, o) for p, o in zip(retro_p, old)]).sum()
    return adapt_lamb * adapt + retro_lamb * retro, adapt, retro
