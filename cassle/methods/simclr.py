"""SimCLR (Chen et al., 2020) and, with --supervised, SupCon (Khosla et al., 2020)."""

from __future__ import annotations

import argparse

from cassle.losses import simclr_loss_func, supcon_pos_mask
from cassle.methods.base import BaseMethod, StepOutput, mlp
from cassle.utils.distributed import gather


class SimCLR(BaseMethod):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        args = self.hparams
        # Lin-ReLU-Lin, no BN (REFERENCE section 1).
        self.projector = mlp(self.features_dim, args.proj_hidden_dim, args.output_dim, bn=False)

    @staticmethod
    def add_model_specific_args(parser: argparse.ArgumentParser) -> None:
        BaseMethod.add_model_specific_args(parser)
        group = parser.add_argument_group("simclr")
        group.add_argument("--proj_hidden_dim", type=int, default=2048)
        group.add_argument("--output_dim", type=int, default=128)
        group.add_argument("--temperature", type=float, default=0.1)
        group.add_argument(
            "--supervised", action="store_true", help="SupCon: images of the same label are positives too"
        )

    def learnable_params(self) -> list[dict]:
        return super().learnable_params() + [{"name": "projector", "params": list(self.projector.parameters())}]

    def ssl_step(self, views, targets) -> StepOutput:
        feats = [self.backbone(v) for v in views]
        z = [self.projector(f) for f in feats]
        extra = None
        if self.hparams.supervised:  # labels in the order of the loss' rows
            extra = supcon_pos_mask(gather(targets) if self.global_batch_loss else targets)
        loss = simclr_loss_func(
            z[0], z[1], temperature=self.hparams.temperature, extra_pos_mask=extra, global_batch=self.global_batch_loss
        )
        return StepOutput(loss=loss, feats=feats, z=z)
