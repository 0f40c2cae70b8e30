"""Synaptic Intelligence (Zenke, Poole & Ganguli, ICML 2017) on the SSL loss.

    L~_mu = L_mu + c * sum_k Omega_k^mu (theta~_k - theta_k)^2,
    Omega_k^mu = sum_{nu < mu} omega_k^nu / ((Delta_k^nu)^2 + xi),
    omega_k^nu = - sum_t g_k(t) (theta_k(t+1) - theta_k(t))   (over the steps of task nu)

(equations in ``cassle.losses.si``). The continual-SSL reference for SI is the LUMP paper's code,
divyam3897/UCL ``models/si.py``; its defaults are this strategy's: the backbone's weights only
(``--si_params backbone``; ``ssl_model`` adds the method's heads, as EWC), c = 0.4 (UCL's
``train.alpha`` of its CIFAR configs, which its SI reads as c), xi = 1.0 (hard-coded there), the
importance summed over tasks (``+=``; UCL's first commit overwrote it). The path integral is the
paper's (and mammoth's): -g * (the update the optimiser made), g the gradient of every loss term
but SI's own penalty, read after unscaling and before Lightning's clipping; UCL's SGD shortcut
lr * g^2 (g the full, clipped gradient, lr the base learning rate) is ``--si_omega ucl``. UCL also
clips every gradient to [-1, 1] inside its SI; here clipping is the trainer's (``--grad_clip_lars``
and Lightning's flags), as for every other strategy.

Cost: three float32 copies of the regularised weights in the state dict (Omega, theta~, omega) and
two more during each optimiser step (the gradient and the weights before the step).
"""

from __future__ import annotations

import logging

import torch

from cassle.losses.si import si_consolidate, si_omega_path, si_omega_sgd, si_penalty, si_penalty_grad
from cassle.strategies.base import Strategy
from cassle.strategies.ewc import ssl_parameters

log = logging.getLogger(__name__)


def add_si_args(group) -> None:
    group.add_argument(
        "--si_c",
        type=float,
        default=0.4,
        help="SI strength c (divyam3897/UCL: its configs' train.alpha 0.4, read by its SI as c)",
    )
    group.add_argument(
        "--si_xi",
        type=float,
        default=1.0,
        help="SI damping xi (divyam3897/UCL models/si.py: 1.0; Zenke et al. 2017: 1e-3)",
    )
    group.add_argument(
        "--si_params",
        choices=("backbone", "ssl_model"),
        default="backbone",
        help="weights SI regularises: the backbone (UCL) or backbone + the method's heads",
    )
    group.add_argument(
        "--si_omega",
        choices=("path", "ucl"),
        default="path",
        help="path: -g * actual update (Zenke et al. 2017, mammoth); ucl: lr * g^2 (UCL's SGD shortcut)",
    )


def si_parameters(model, scope: str) -> list[tuple[str, torch.nn.Parameter]]:
    if scope == "backbone":
        return [(f"backbone.{n}", p) for n, p in model.backbone.named_parameters() if p.requires_grad]
    return ssl_parameters(model)


class SI(Strategy):
    name = "si"
    kind = "penalty"

    @staticmethod
    def check_args(args) -> None:
        if args.si_c < 0:
            raise ValueError(f"--si_c must be >= 0, got {args.si_c}")
        if args.si_xi <= 0:
            raise ValueError(f"--si_xi must be > 0, got {args.si_xi}")

    def __init__(self, model, args):
        super().__init__(model, args)
        self.check_args(args)
        self.c, self.xi, self.scope, self.mode = args.si_c, args.si_xi, args.si_params, args.si_omega
        self.lr = float(args.lr)
        params = si_parameters(model, self.scope)
        self.param_names = [n for n, _ in params]
        for i, (_, p) in enumerate(params):
            self.register_buffer(f"importance_{i}", torch.zeros_like(p))
            self.register_buffer(f"anchor_{i}", p.detach().clone())
            self.register_buffer(f"omega_{i}", torch.zeros_like(p))
        self.__dict__["_stash"] = None
        self.__dict__["_report"] = {}

    def _tensors(self, kind: str) -> list[torch.Tensor]:
        return [getattr(self, f"{kind}_{i}") for i in range(len(self.param_names))]

    def _params(self, model) -> list[torch.nn.Parameter]:
        return [p for _, p in si_parameters(model, self.scope)]

    def on_task_start(self, model) -> None:
        # theta~ = the weights this task starts from (the end of the previous task); omega restarts.
        with torch.no_grad():
            for anchor, omega, p in zip(self._tensors("anchor"), self._tensors("omega"), self._params(model)):
                anchor.copy_(p.detach())
                omega.zero_()
        if self.task_idx > 0 and not any(bool(w.any()) for w in self._tensors("importance")):
            log.warning(
                "--cl_strategy si: the previous checkpoint holds no SI importance (was it "
                "trained without si?); the penalty is zero until this task's end"
            )

    def _active(self) -> bool:
        return self.task_idx > 0 and self.c > 0

    def loss(self, model, views, out, ctx):
        if not self._active():
            return None, {}
        return si_penalty(self._params(model), self._tensors("anchor"), self._tensors("importance"), self.c), {}

    @torch.no_grad()
    def before_optimizer_step(self, model) -> None:
        params = self._params(model)
        grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach() for p in params]
        if self.mode == "ucl":
            si_omega_sgd(self._tensors("omega"), grads, self.lr)
            return
        if self._active():  # the gradient of the loss without SI's own penalty (the paper's g)
            pen = si_penalty_grad(params, self._tensors("anchor"), self._tensors("importance"), self.c)
            grads = [g - q.to(g.dtype) for g, q in zip(grads, pen)]
        else:
            grads = [g.clone() for g in grads]
        self.__dict__["_stash"] = (grads, [p.detach().clone() for p in params])

    @torch.no_grad()
    def after_optimizer_step(self, model) -> None:
        stash = self.__dict__["_stash"]
        if stash is None:  # no optimiser step in this batch (gradient accumulation), or mode ucl
            return
        grads, before = stash
        si_omega_path(self._tensors("omega"), grads, before, [p.detach() for p in self._params(model)])
        self.__dict__["_stash"] = None

    @torch.no_grad()
    def on_task_end(self, model, trainer) -> None:
        params = self._params(model)
        omega, importance = self._tensors("omega"), self._tensors("importance")
        si_consolidate(importance, omega, params, self._tensors("anchor"), self.xi)
        flat = torch.cat([w.flatten() for w in importance])
        self.__dict__["_report"] = {
            "si/omega_sum": float(torch.cat([w.flatten() for w in omega]).sum()),
            "si/importance_mean": float(flat.mean()),
            "si/importance_max": float(flat.max()),
        }
        for anchor, w, p in zip(self._tensors("anchor"), omega, params):  # as UCL's end_task
            anchor.copy_(p.detach())
            w.zero_()

    def task_end_metrics(self, model) -> dict[str, float]:
        return self.__dict__["_report"]
