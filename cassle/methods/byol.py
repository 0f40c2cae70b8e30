"""BYOL (Grill et al., 2020): predict the momentum network's projection of the other view."""

from __future__ import annotations

import argparse

import torch

from cassle.losses import byol_loss_func
from cassle.methods.base import StepOutput, mlp
from cassle.methods.momentum import BaseMomentumMethod, momentum_copy


class BYOL(BaseMomentumMethod):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        args = self.hparams
        self.projector = mlp(self.features_dim, args.proj_hidden_dim, args.output_dim)
        self.momentum_projector = momentum_copy(self.projector)
        self.predictor = mlp(args.output_dim, args.pred_hidden_dim, args.output_dim)

    @staticmethod
    def add_model_specific_args(parser: argparse.ArgumentParser) -> None:
        BaseMomentumMethod.add_model_specific_args(parser)
        group = parser.add_argument_group("byol")
        group.add_argument("--proj_hidden_dim", type=int, default=2048)
        group.add_argument("--output_dim", type=int, default=256)
        group.add_argument("--pred_hidden_dim", type=int, default=512)

    def learnable_params(self) -> list[dict]:
        return super().learnable_params() + [
            {"name": "projector", "params": list(self.projector.parameters())},
            {"name": "predictor", "params": list(self.predictor.parameters())},
        ]

    def momentum_pairs(self):
        return super().momentum_pairs() + [(self.projector, self.momentum_projector)]

    def ssl_step(self, views, targets) -> StepOutput:
        feats = [self.backbone(v) for v in views]
        z = [self.projector(f) for f in feats]
        p = [self.predictor(zi) for zi in z]
        with torch.no_grad():
            momentum_feats = [self.momentum_backbone(v) for v in views]
            z_momentum = [self.momentum_projector(f) for f in momentum_feats]
        loss = byol_loss_func(p[0], z_momentum[1]) + byol_loss_func(p[1], z_momentum[0])
        return StepOutput(loss=loss, feats=feats, z=z, momentum_feats=momentum_feats)
