"""BaseMomentumMethod: methods with an exponential-moving-average (momentum) copy of the network.

tau_k = tau_final - (tau_final - tau_base) * (cos(pi k / K) + 1) / 2, with k the optimiser step
within the task and K the steps of the task, so every task runs the full tau schedule. The EMA
update follows each optimiser step; the momentum networks start as copies of the online ones.
"""
from __future__ import annotations

import argparse
import copy
import math

import torch
import torch.nn as nn

from cassle.methods.base import BaseMethod


def momentum_tau(step: int, total_steps: int, base_tau: float, final_tau: float) -> float:
    progress = min(step, total_steps) / max(1, total_steps)
    return final_tau - (final_tau - base_tau) * (math.cos(math.pi * progress) + 1) / 2


@torch.no_grad()
def ema_update(online: nn.Module, momentum: nn.Module, tau: float) -> None:
    """momentum <- tau * momentum + (1 - tau) * online, for parameters (buffers are copied).

    Multi-tensor (foreach) ops: two launches for all parameters instead of two per parameter.
    """
    momentum_params = list(momentum.parameters())
    torch._foreach_mul_(momentum_params, tau)
    torch._foreach_add_(momentum_params, [p.detach() for p in online.parameters()], alpha=1 - tau)


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen-gradient copy: updated only by EMA, never by the optimiser."""
    copy_ = copy.deepcopy(module)
    for p in copy_.parameters():
        p.requires_grad = False
    return copy_


class BaseMomentumMethod(BaseMethod):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.momentum_backbone = momentum_copy(self.backbone)
        self.current_tau = self.hparams.base_tau_momentum
        # tau is logged from a device scalar updated in place: a Python float logged per step
        # becomes a host-to-device copy per step.
        self.register_buffer("_tau_logged", torch.zeros(()), persistent=False)

    @staticmethod
    def add_model_specific_args(parser: argparse.ArgumentParser) -> None:
        BaseMethod.add_model_specific_args(parser)
        group = parser.add_argument_group("momentum")
        group.add_argument("--base_tau_momentum", type=float, default=0.99)
        group.add_argument("--final_tau_momentum", type=float, default=1.0)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, momentum) module pairs; subclasses add their projectors."""
        return [(self.backbone, self.momentum_backbone)]

    def start_new_task(self) -> None:
        super().start_new_task()
        self.current_tau = self.hparams.base_tau_momentum

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        # Lightning has already stepped the optimiser: global_step counts steps done this task.
        for online, momentum in self.momentum_pairs():
            ema_update(online, momentum, self.current_tau)
        self.current_tau = momentum_tau(
            self.global_step, int(self.trainer.estimated_stepping_batches),
            self.hparams.base_tau_momentum, self.hparams.final_tau_momentum)
        self._tau_logged.fill_(self.current_tau)
        self.log("train/tau", self._tau_logged, on_step=False, on_epoch=True, sync_dist=True)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.current_tau = checkpoint.get("current_tau", self.current_tau)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["current_tau"] = self.current_tau
