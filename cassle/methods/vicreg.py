"""VICReg (Bardes et al., 2022): variance, invariance and covariance regularisation."""

from __future__ import annotations

import argparse

from cassle.losses import vicreg_loss_func
from cassle.methods.base import BaseMethod, StepOutput, mlp


class VICReg(BaseMethod):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        args = self.hparams
        self.projector = mlp(self.features_dim, args.proj_hidden_dim, args.output_dim, layers=3)

    @staticmethod
    def add_model_specific_args(parser: argparse.ArgumentParser) -> None:
        BaseMethod.add_model_specific_args(parser)
        group = parser.add_argument_group("vicreg")
        group.add_argument("--proj_hidden_dim", type=int, default=2048)
        group.add_argument("--output_dim", type=int, default=2048)
        group.add_argument("--sim_loss_weight", type=float, default=25.0)
        group.add_argument("--var_loss_weight", type=float, default=25.0)
        group.add_argument("--cov_loss_weight", type=float, default=1.0)

    def learnable_params(self) -> list[dict]:
        return super().learnable_params() + [{"name": "projector", "params": list(self.projector.parameters())}]

    def ssl_step(self, views, targets) -> StepOutput:
        feats = [self.backbone(v) for v in views]
        z = [self.projector(f) for f in feats]
        args = self.hparams
        loss = vicreg_loss_func(
            z[0],
            z[1],
            sim_loss_weight=args.sim_loss_weight,
            var_loss_weight=args.var_loss_weight,
            cov_loss_weight=args.cov_loss_weight,
            global_batch=self.global_batch_loss,
        )
        return StepOutput(loss=loss, feats=feats, z=z)
