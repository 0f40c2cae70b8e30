"""Synaptic Intelligence (Zenke, Poole & Ganguli, ICML 2017), the pieces as pure functions.

While task mu is trained, each weight accumulates its path integral (eq. 3 of the paper)

    omega_k^mu = - sum_t g_k(t) * (theta_k(t+1) - theta_k(t))

with g the gradient of the loss *without* SI's own penalty and theta(t+1) - theta(t) the update the
optimiser actually made (so any optimiser: SGD, LARS, momentum, weight decay). At the end of the
task the importance is consolidated (eq. 5), **summed** over the finished tasks:

    Omega_k^mu = sum_{nu <= mu} omega_k^nu / ((Delta_k^nu)^2 + xi),   Delta_k^nu = theta_k(end nu) - theta_k(start nu)

and from the next task on the loss is (eq. 4)  L~ = L + c * sum_k Omega_k (theta~_k - theta_k)^2  with
theta~ the weights at the end of the previous task. The sum is what the paper writes and what
mammoth's ``models/si.py`` and the corrected divyam3897/UCL ``models/si.py`` (``big_omega +=``) do;
UCL's first commit overwrote it (``big_omega =``), keeping the last task's importance only.
UCL's path integral is the SGD shortcut lr * g^2 (``si_omega_sgd``, ``--si_omega ucl``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cassle.losses._precision import full_precision


def _check(name: str, tensors: Sequence[Sequence[torch.Tensor]]) -> None:
    lengths = {len(t) for t in tensors}
    if len(lengths) != 1 or not tensors[0]:
        raise ValueError(f"{name} needs non-empty lists of equal length, got {sorted(lengths)}")
    for group in zip(*tensors):
        if len({tuple(t.shape) for t in group}) != 1:
            raise ValueError(f"{name}: shape mismatch {[tuple(t.shape) for t in group]}")


@full_precision
def si_penalty(
    params: Sequence[torch.Tensor], anchors: Sequence[torch.Tensor], importance: Sequence[torch.Tensor], c: float
) -> torch.Tensor:
    """c * sum_k Omega_k (theta_k - theta~_k)^2 (eq. 4; no 1/2, as the paper, UCL and mammoth)."""
    _check("si_penalty", [params, anchors, importance])
    if c < 0:
        raise ValueError(f"c must be >= 0, got {c}")
    total = params[0].new_zeros(())
    for p, a, w in zip(params, anchors, importance):
        total = total + (w.detach() * (p - a.detach()) ** 2).sum()
    return c * total


def si_penalty_grad(params, anchors, importance, c: float) -> list[torch.Tensor]:
    """d/dtheta of ``si_penalty``: 2 c Omega (theta - theta~), in closed form (no autograd)."""
    return [2 * c * w * (p.detach() - a) for p, a, w in zip(params, anchors, importance)]


@torch.no_grad()
def si_omega_path(
    omega: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    before: Sequence[torch.Tensor],
    after: Sequence[torch.Tensor],
) -> None:
    """omega += -g * (theta_after - theta_before), in place (eq. 3, one step). A gradient that is
    not finite (a skipped fp16 step, where theta did not move) adds nothing."""
    _check("si_omega_path", [omega, grads, before, after])
    for w, g, b, a in zip(omega, grads, before, after):
        g = torch.where(torch.isfinite(g), g, torch.zeros_like(g))
        w.sub_(g.to(w.dtype) * (a.to(w.dtype) - b.to(w.dtype)))


@torch.no_grad()
def si_omega_sgd(omega: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], lr: float) -> None:
    """omega += lr * g^2, in place: UCL's shortcut (exact for plain SGD at learning rate lr)."""
    _check("si_omega_sgd", [omega, grads])
    for w, g in zip(omega, grads):
        g = torch.where(torch.isfinite(g), g, torch.zeros_like(g))
        w.add_(lr * g.to(w.dtype) ** 2)


@torch.no_grad()
def si_consolidate(
    importance: Sequence[torch.Tensor],
    omega: Sequence[torch.Tensor],
    params: Sequence[torch.Tensor],
    anchors: Sequence[torch.Tensor],
    xi: float,
) -> None:
    """Omega += omega / ((theta - theta~)^2 + xi), in place (eq. 5: a sum over tasks)."""
    _check("si_consolidate", [importance, omega, params, anchors])
    if xi <= 0:
        raise ValueError(f"xi must be > 0, got {xi}")
    for big, w, p, a in zip(importance, omega, params, anchors):
        big.add_(w / ((p.detach().to(big.dtype) - a) ** 2 + xi))
