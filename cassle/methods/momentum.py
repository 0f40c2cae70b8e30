"""BaseMomentumMethod: methods with an exponential-moving-average (momentum) copy of the network.

tau_k = tau_final - (tau_final - tau_base) * (cos(pi k / K) + 1) / 2, with k the optimiser step
within the task and K the steps of the task, so every task runs the full tau schedule. The EMA
update follows each optimiser step; the momentum networks start as copies of the online ones.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from cassle.backbones import disable_drop_path
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
    """A frozen-gradient copy: updated only by EMA, never by the optimiser. A target network: its
    ViT stochastic depth is off (DINO's teacher has none; ``--drop_path_rate``)."""
    copy_ = disable_drop_path(copy.deepcopy(module))
    for p in copy_.parameters():
        p.requires_grad = False
    return copy_


@contextlib.contextmanager
def _buffers_kept(module: nn.Module):
    """Run a forward pass that leaves the module's buffers (BatchNorm running stats) untouched,
    so a monitoring head never changes what training sees."""
    saved = [(b, b.detach().clone()) for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)


class BaseMomentumMethod(BaseMethod):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.momentum_backbone = momentum_copy(self.backbone)
        self.current_tau = self.hparams.base_tau_momentum
        # --momentum_classifier (as the original): a linear classifier on the momentum encoder's
        # features, trained like the online one (detached, classifier lr, no weight decay) and
        # used for monitoring only: it never changes any encoder.
        # Initialised from a forked RNG so that turning the monitor on changes no other init.
        self.momentum_classifier = None
        if self.hparams.get("momentum_classifier"):
            with torch.random.fork_rng(devices=[]):
                self.momentum_classifier = nn.Linear(self.features_dim, self.hparams.num_classes)
        # tau is logged from a device scalar updated in place: a Python float logged per step
        # becomes a host-to-device copy per step.
        self.register_buffer("_tau_logged", torch.zeros(()), persistent=False)

    @staticmethod
    def add_model_specific_args(parser: argparse.ArgumentParser) -> None:
        BaseMethod.add_model_specific_args(parser)
        group = parser.add_argument_group("momentum")
        group.add_argument("--base_tau_momentum", type=float, default=0.99)
        group.add_argument("--final_tau_momentum", type=float, default=1.0)
        group.add_argument(
            "--momentum_classifier",
            action="store_true",
            help="monitor: an online classifier on the momentum encoder's features "
            "(train/momentum_online_acc, val/momentum_acc1), as the original",
        )

    def learnable_params(self) -> list[dict]:
        groups = super().learnable_params()
        if self.momentum_classifier is not None:
            groups.append(
                {
                    "name": "momentum_classifier",
                    "params": list(self.momentum_classifier.parameters()),
                    "lr": self.hparams.classifier_lr,
                    "weight_decay": 0.0,
                }
            )
        return groups

    def monitor_loss(self, views, targets, out, online_eval):
        """Cross-entropy of the momentum classifier, on the images the online classifier uses."""
        if self.momentum_classifier is None:
            return super().monitor_loss(views, targets, out, online_eval)
        if online_eval is not None:
            x, labels = online_eval
            with torch.no_grad(), _buffers_kept(self.momentum_backbone):
                pairs = [(self.momentum_backbone(self._memory_format(x)), labels)]
        else:
            feats = out.momentum_feats
            if feats is None:
                with torch.no_grad():
                    feats = [self.momentum_backbone(v) for v in views]
            pairs = [(f, targets) for f in feats]
        losses, accs = [], []
        for feats, labels in pairs:
            logits = self.momentum_classifier(feats.detach())
            losses.append(F.cross_entropy(logits, labels))
            accs.append((logits.argmax(1) == labels).float().mean() * 100)
        loss = torch.stack(losses).mean()
        self.log_dict(
            {"train/momentum_class_loss": loss, "train/momentum_online_acc": torch.stack(accs).mean()},
            on_epoch=True,
            on_step=False,
            sync_dist=True,
            batch_size=pairs[0][1].shape[0],
        )
        return loss

    def validation_step(self, batch, batch_idx):
        loss = super().validation_step(batch, batch_idx)
        if self.momentum_classifier is not None:
            x, targets = batch
            logits = self.momentum_classifier(self.momentum_backbone(self._memory_format(x)))
            self.log_dict(
                {
                    "val/momentum_loss": F.cross_entropy(logits, targets),
                    "val/momentum_acc1": (logits.argmax(1) == targets).float().mean() * 100,
                },
                sync_dist=True,
                batch_size=targets.shape[0],
            )
        return loss

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
            self.global_step,
            int(self.trainer.estimated_stepping_batches),
            self.hparams.base_tau_momentum,
            self.hparams.final_tau_momentum,
        )
        self._tau_logged.fill_(self.current_tau)
        # batch_size=1: one value per step, each step weighs the same in the epoch mean (and
        # Lightning need not infer a batch size from the batch).
        self.log("train/tau", self._tau_logged, on_step=False, on_epoch=True, sync_dist=True, batch_size=1)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.current_tau = checkpoint.get("current_tau", self.current_tau)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["current_tau"] = self.current_tau
