"""SimSiam (Chen & He, 2021): predict the other view's projection, with a stop-gradient.

    L = D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2,   D(p, z) = - cos(p, z),   p = h(z), z = f(x)

Heads as the original code: projector Lin(no bias)-BN-ReLU-Lin(no bias)-BN-ReLU-Lin-BN(no affine)
(the last linear layer's bias frozen: a BN follows it), predictor Lin(no bias)-BN-ReLU-Lin; the
predictor keeps the scaled --lr throughout (the paper's fixed predictor lr; the original's
"static_lr" group): the schedule never changes it.
"""

from __future__ import annotations

import argparse

import torch.nn as nn
import torch.nn.functional as F

from cassle.losses import simsiam_loss_func
from cassle.methods.base import BaseMethod, StepOutput


class SimSiam(BaseMethod):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        args = self.hparams
        hidden, out = args.proj_hidden_dim, args.output_dim
        self.projector = nn.Sequential(
            nn.Linear(self.features_dim, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, out),
            nn.BatchNorm1d(out, affine=False),
        )
        self.projector[6].bias.requires_grad = False  # followed by BN: the bias does nothing
        self.predictor = nn.Sequential(
            nn.Linear(out, args.pred_hidden_dim, bias=False),
            nn.BatchNorm1d(args.pred_hidden_dim),
            nn.ReLU(),
            nn.Linear(args.pred_hidden_dim, out),
        )

    @staticmethod
    def add_model_specific_args(parser: argparse.ArgumentParser) -> None:
        BaseMethod.add_model_specific_args(parser)
        group = parser.add_argument_group("simsiam")
        group.add_argument("--proj_hidden_dim", type=int, default=2048)
        group.add_argument("--output_dim", type=int, default=128)
        group.add_argument("--pred_hidden_dim", type=int, default=512)

    def learnable_params(self) -> list[dict]:
        return super().learnable_params() + [
            {"name": "projector", "params": [p for p in self.projector.parameters() if p.requires_grad]},
            {"name": "predictor", "params": list(self.predictor.parameters())},
        ]

    # ------------------------------------------------ the predictor's fixed lr (the original's static_lr)
    def _static_groups(self, optimizer) -> list[dict]:
        return [g for g in optimizer.param_groups if g.get("name", "").startswith("predictor")]

    def configure_optimizers(self):
        conf = super().configure_optimizers()
        opt = conf["optimizer"] if isinstance(conf, dict) else conf
        for group in self._static_groups(opt):  # the warmup would start it at warmup_start_lr
            group["lr"] = group.get("initial_lr", group["lr"])
        return conf

    def lr_scheduler_step(self, scheduler, metric) -> None:
        super().lr_scheduler_step(scheduler, metric)
        for group in self._static_groups(scheduler.optimizer):
            group["lr"] = group["initial_lr"]

    def ssl_step(self, views, targets) -> StepOutput:
        feats = [self.backbone(v) for v in views]
        z = [self.projector(f) for f in feats]
        p = [self.predictor(zi) for zi in z]
        loss = simsiam_loss_func(p[0], z[1]) / 2 + simsiam_loss_func(p[1], z[0]) / 2
        # the original's collapse monitor: std of the normalised projections (1/sqrt(D) if healthy)
        z_std = sum(F.normalize(zi.detach(), dim=-1).std(dim=0).mean() for zi in z) / len(z)
        return StepOutput(loss=loss, feats=feats, z=z, logs={"z_std": z_std})
