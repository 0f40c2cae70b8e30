"""MoCo v3 (Chen, Xie and He, 2021): contrast each view's prediction with the momentum keys of the
other view over the global batch (no queue), symmetrised::

    L = ctr(q1, k2) + ctr(q2, k1),  ctr(q, k) = 2T * mean_n CE([q_n . k_m / T]_m, n)

with q = normalise(predictor(projector(f(x)))), k = normalise(momentum projector(momentum f(x)))
gathered over all processes. Heads as solo-learn's ResNet MoCo v3: 2-layer projector and predictor
without biases, BN + ReLU between, a final affine-free BN on the projector only.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn as nn

from cassle.losses import mocov3_loss_func
from cassle.methods.base import StepOutput
from cassle.methods.momentum import BaseMomentumMethod, momentum_copy


def mocov3_mlp(in_dim: int, hidden_dim: int, out_dim: int, last_bn: bool) -> nn.Sequential:
    """Lin-BN-ReLU-Lin (no biases) [-BN without affine]: MoCo v3's 2-layer heads."""
    layers = [
        nn.Linear(in_dim, hidden_dim, bias=False),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim, bias=False),
    ]
    if last_bn:
        layers.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*layers)


class MoCoV3(BaseMomentumMethod):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        args = self.hparams
        self.projector = mocov3_mlp(self.features_dim, args.proj_hidden_dim, args.output_dim, True)
        self.momentum_projector = momentum_copy(self.projector)
        self.predictor = mocov3_mlp(args.output_dim, args.pred_hidden_dim, args.output_dim, False)

    @staticmethod
    def add_model_specific_args(parser: argparse.ArgumentParser) -> None:
        BaseMomentumMethod.add_model_specific_args(parser)
        group = parser.add_argument_group("mocov3")  # solo-learn's MoCo v3 recipe
        group.add_argument("--proj_hidden_dim", type=int, default=4096)
        group.add_argument("--output_dim", type=int, default=256)
        group.add_argument("--pred_hidden_dim", type=int, default=4096)
        group.add_argument("--temperature", type=float, default=0.2)

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
        q = [self.predictor(zi) for zi in z]
        with torch.no_grad():
            momentum_feats = [self.momentum_backbone(v) for v in views]
            k = [self.momentum_projector(f) for f in momentum_feats]
        T = self.hparams.temperature
        loss = mocov3_loss_func(q[0], k[1], temperature=T) + mocov3_loss_func(q[1], k[0], temperature=T)
        # The distillers get the projections z (as BYOL's), not the predictions.
        return StepOutput(loss=loss, feats=feats, z=z, momentum_feats=momentum_feats)
