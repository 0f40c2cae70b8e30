"""MoCo v2+ (Chen et al., 2020; symmetrised): InfoNCE against the momentum key and a queue."""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from cassle.losses import moco_loss_func
from cassle.methods.base import StepOutput, mlp
from cassle.methods.momentum import BaseMomentumMethod, momentum_copy
from cassle.utils.distributed import gather


class MoCoV2Plus(BaseMomentumMethod):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        args = self.hparams
        self.projector = mlp(self.features_dim, args.proj_hidden_dim, args.output_dim, bn=False)
        self.momentum_projector = momentum_copy(self.projector)
        # One queue of keys per view, (2, D, K); it is carried over between tasks.
        queue = F.normalize(torch.randn(2, args.output_dim, args.queue_size), dim=1)
        self.register_buffer("queue", queue)
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @staticmethod
    def add_model_specific_args(parser: argparse.ArgumentParser) -> None:
        BaseMomentumMethod.add_model_specific_args(parser)
        group = parser.add_argument_group("mocov2plus")
        group.add_argument("--proj_hidden_dim", type=int, default=2048)
        group.add_argument("--output_dim", type=int, default=128)
        group.add_argument("--temperature", type=float, default=0.1)
        group.add_argument("--queue_size", type=int, default=65536)

    def learnable_params(self) -> list[dict]:
        return super().learnable_params() + [{"name": "projector", "params": list(self.projector.parameters())}]

    def momentum_pairs(self):
        return super().momentum_pairs() + [(self.projector, self.momentum_projector)]

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        """keys (2, N, D) of the global batch; overwrite the oldest N columns (wrapping).

        The pointer stays on the device: reading it on the host would be a GPU sync per step.
        """
        size = self.queue.shape[-1]
        n = keys.shape[1]
        cols = (torch.arange(n, device=keys.device) + self.queue_ptr) % size
        self.queue[:, :, cols] = keys.permute(0, 2, 1).to(self.queue.dtype)
        self.queue_ptr.add_(n).remainder_(size)

    def project(self, feats):
        return F.normalize(self.projector(feats), dim=-1)  # the z of ssl_step

    def ssl_step(self, views, targets) -> StepOutput:
        feats = [self.backbone(v) for v in views]
        z = [self.projector(f) for f in feats]
        q = [F.normalize(zi, dim=-1) for zi in z]
        with torch.no_grad():
            momentum_feats = [self.momentum_backbone(v) for v in views]
            k = [F.normalize(self.momentum_projector(f), dim=-1) for f in momentum_feats]
        queue = self.queue.clone().detach()
        T = self.hparams.temperature
        loss = (
            moco_loss_func(q[0], k[1], queue[1], temperature=T) + moco_loss_func(q[1], k[0], queue[0], temperature=T)
        ) / 2
        self._enqueue(torch.stack([gather(k[0]), gather(k[1])]))
        # The distillers get the L2-normalised q, as in the reference (its MoCo's "z").
        return StepOutput(loss=loss, feats=feats, z=q, momentum_feats=momentum_feats, extras={"k": k, "queue": queue})
