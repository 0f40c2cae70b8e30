"""The faithful probe (``--mode augmented``): a Lightning module trained on augmented images.

``LinearProbe`` keeps its backbone frozen and in eval mode (BatchNorm uses and never updates its
running statistics); ``_train_augmented`` trains it for the full schedule on the batches of
``offline_loader.probe_train_loader`` and returns the trained ``nn.Linear``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytorch_lightning as pl
import torch
import torch.nn as nn
import torch.nn.functional as F

from cassle.eval.eval_data import EvalData
from cassle.eval.frozen_backbone import _freeze

if TYPE_CHECKING:
    from cassle.eval.linear import ProbeConfig

__all__ = ["LinearProbe"]


class LinearProbe(pl.LightningModule):
    """Linear classifier on a frozen backbone, trained on augmented images (``--mode augmented``)."""

    def __init__(
        self,
        backbone: nn.Module,
        feat_dim: int,
        num_classes: int,
        *,
        lr: float,
        max_epochs: int,
        milestones: Sequence[int] | None = None,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        seed: int = 0,
    ):
        super().__init__()
        self.backbone = _freeze(backbone)
        self.classifier = nn.Linear(feat_dim, num_classes)
        gen = torch.Generator().manual_seed(seed)
        bound = 1.0 / math.sqrt(feat_dim)  # nn.Linear's default init, seeded
        with torch.no_grad():
            self.classifier.weight.uniform_(-bound, bound, generator=gen)
            self.classifier.bias.uniform_(-bound, bound, generator=gen)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.milestones = (
            list(milestones) if milestones is not None else [round(0.6 * max_epochs), round(0.8 * max_epochs)]
        )

    def train(self, mode: bool = True):
        # Lightning calls .train() on the whole module; the backbone must stay in eval mode so
        # BatchNorm keeps using (and never updates) its running statistics.
        super().train(mode)
        self.backbone.eval()
        return self

    def on_train_batch_start(self, batch, batch_idx):
        self.backbone.eval()  # belt and braces: a callback may have toggled modes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            feats = self.backbone(x).flatten(1)
        return self.classifier(feats)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        # Step values stay off the progress bar (Lightning reads them with .item() after every
        # batch, a GPU sync); the bar shows the epoch mean.
        self.log("train/loss", loss)
        self.log("train/loss_epoch", loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/acc1", (logits.argmax(1) == y).float().mean() * 100)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.SGD(
            self.classifier.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=self.milestones, gamma=0.1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


def _train_augmented(
    backbone: nn.Module, feat_dim: int, data: EvalData, indices: torch.Tensor, cfg: ProbeConfig
) -> nn.Linear:
    probe = LinearProbe(
        backbone,
        feat_dim,
        data.num_classes,
        lr=cfg.lr,
        max_epochs=cfg.epochs,
        milestones=cfg.milestones,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
    )
    trainer = pl.Trainer(
        max_epochs=cfg.epochs,
        accelerator="gpu" if cfg.device.type == "cuda" else "cpu",
        devices=1,
        precision=cfg.precision if cfg.device.type == "cuda" else "32-true",
        logger=cfg.logger or False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=cfg.progress_bar,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
    )
    from cassle.eval.offline_loader import probe_train_loader

    loader = probe_train_loader(
        data,
        indices,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        seed=cfg.seed,
        dali=cfg.dali,
        device=cfg.device,
    )
    with warnings.catch_warnings():  # the frozen backbone is in eval mode on purpose
        warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode.*")
        trainer.fit(probe, train_dataloaders=loader)
    if trainer.interrupted:
        raise KeyboardInterrupt("linear evaluation interrupted")
    backbone.to(cfg.device)  # Lightning's teardown moves the module back to the CPU
    return probe.classifier.to(cfg.device).eval()
