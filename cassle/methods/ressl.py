"""ReSSL (Zheng et al., 2021): relational self-supervised learning with a momentum encoder.

    L = - 1/N sum_n sum_k softmax_k(sg(k_n) . u_k / T_k) log softmax_k(q_n . u_k / T_q)

q = normalise(projector(f(x1))) of the first (strong) view, k = normalise of the momentum
projector on the second (weak) view, u_1..u_K the queue of past keys (rows), T_k < T_q. As the
original: one direction only, the queue is read before it is updated, takes the keys of the whole
batch gathered over processes, and is carried over between tasks; projector Lin-ReLU-Lin (no BN).
The distillers get the normalised projections of both views (the relational distiller by default).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from cassle.losses import ressl_loss_func
from cassle.methods.base import StepOutput, mlp
from cassle.methods.momentum import BaseMomentumMethod, momentum_copy
from cassle.utils.distributed import gather


class ReSSL(BaseMomentumMethod):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        args = self.hparams
        self.projector = mlp(self.features_dim, args.proj_hidden_dim, args.output_dim, bn=False)
        self.momentum_projector = momentum_copy(self.projector)
        self.register_buffer("queue", F.normalize(torch.randn(args.queue_size, args.output_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @staticmethod
    def add_model_specific_args(parser: argparse.ArgumentParser) -> None:
        BaseMomentumMethod.add_model_specific_args(parser)
        group = parser.add_argument_group("ressl")
        group.add_argument("--proj_hidden_dim", type=int, default=2048)
        group.add_argument("--output_dim", type=int, default=256)
        group.add_argument("--queue_size", type=int, default=65536)
        group.add_argument("--temperature_q", type=float, default=0.1)
        group.add_argument("--temperature_k", type=float, default=0.04)

    def learnable_params(self) -> list[dict]:
        return super().learnable_params() + [{"name": "projector", "params": list(self.projector.parameters())}]

    def momentum_pairs(self):
        return super().momentum_pairs() + [(self.projector, self.momentum_projector)]

    @torch.no_grad()
    def dequeue_and_enqueue(self, k: torch.Tensor) -> None:
        """Overwrite the oldest len(k) rows (wrapping); the pointer stays on the device."""
        size = self.queue.shape[0]
        rows = (torch.arange(k.shape[0], device=k.device) + self.queue_ptr) % size
        self.queue[rows] = k.to(self.queue.dtype)
        self.queue_ptr.add_(k.shape[0]).remainder_(size)

    def ssl_step(self, views, targets) -> StepOutput:
        feats = [self.backbone(v) for v in views]
        q = [F.normalize(self.projector(f), dim=-1) for f in feats]
        with torch.no_grad():
            momentum_feats = [self.momentum_backbone(v) for v in views]
            k = F.normalize(self.momentum_projector(momentum_feats[1]), dim=-1)
        hp = self.hparams
        loss = ressl_loss_func(q[0], k, self.queue.clone(), hp.temperature_q, hp.temperature_k)
        self.dequeue_and_enqueue(gather(k))
        return StepOutput(loss=loss, feats=feats, z=q, momentum_feats=momentum_feats)
