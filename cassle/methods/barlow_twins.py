"""Barlow Twins (Zbontar et al., 2021): make the cross-correlation of the two views' embeddings
the identity."""

from __future__ import annotations

import argparse

from cassle.losses import barlow_loss_func
from cassle.methods.base import BaseMethod, StepOutput, mlp


class BarlowTwins(BaseMethod):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        args = self.hparams
        # Lin-BN-ReLU-Lin-BN-ReLU-Lin (REFERENCE section 1).
        self.projector = mlp(self.features_dim, args.proj_hidden_dim, args.output_dim, layers=3)

    @staticmethod
    def add_model_specific_args(parser: argparse.ArgumentParser) -> None:
        BaseMethod.add_model_specific_args(parser)
        group = parser.add_argument_group("barlow_twins")
        group.add_argument("--proj_hidden_dim", type=int, default=2048)
        group.add_argument("--output_dim", type=int, default=2048)
        group.add_argument("--lamb", type=float, default=0.005, help="off-diagonal weight")
        group.add_argument("--scale_loss", type=float, default=0.025, help="CIFAR scripts: 0.1")

    def learnable_params(self) -> list[dict]:
        return super().learnable_params() + [{"name": "projector", "params": list(self.projector.parameters())}]

    def ssl_step(self, views, targets) -> StepOutput:
        feats = [self.backbone(v) for v in views]
        z = [self.projector(f) for f in feats]
        loss = barlow_loss_func(
            z[0], z[1], lamb=self.hparams.lamb, scale_loss=self.hparams.scale_loss, global_batch=self.global_batch_loss
        )
        return StepOutput(loss=loss, feats=feats, z=z)
