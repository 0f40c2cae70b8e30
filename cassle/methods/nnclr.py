"""NNCLR (Dwibedi et al., 2021): the nearest neighbour in a support set is the positive.

    L = nnclr(NN(z1), p2) / 2 + nnclr(NN(z2), p1) / 2,
    nnclr(a, p) = - 1/N sum_i log [ exp(a_i . p_i / T) / sum_k exp(a_i . p_k / T) ]

with z = normalise(projector(f)), p = predictor(projector(f)), NN(z) = argmax_{u in Q} z . u over
the support set Q (queue_size normalised z1 of past batches, FIFO, with their labels for the
nearest-neighbour accuracy). As the original: the support set is read before it is updated, takes
the z1 and labels of the whole batch gathered over processes, and is carried over between tasks.
The distillers get the normalised z (what the original's step returned).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from cassle.losses import nnclr_loss_func
from cassle.methods.base import BaseMethod, StepOutput, mlp
from cassle.utils.distributed import gather


class NNCLR(BaseMethod):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        args = self.hparams
        # Lin-BN-ReLU-Lin-BN-ReLU-Lin-BN (affine), as the original
        self.projector = nn.Sequential(
            *mlp(self.features_dim, args.proj_hidden_dim, args.output_dim, layers=3), nn.BatchNorm1d(args.output_dim)
        )
        self.predictor = mlp(args.output_dim, args.pred_hidden_dim, args.output_dim)
        self.register_buffer("queue", F.normalize(torch.randn(args.queue_size, args.output_dim), dim=1))
        self.register_buffer("queue_y", -torch.ones(args.queue_size, dtype=torch.long))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @staticmethod
    def add_model_specific_args(parser: argparse.ArgumentParser) -> None:
        BaseMethod.add_model_specific_args(parser)
        group = parser.add_argument_group("nnclr")
        group.add_argument("--proj_hidden_dim", type=int, default=2048)
        group.add_argument("--output_dim", type=int, default=256)
        group.add_argument("--pred_hidden_dim", type=int, default=4096)
        group.add_argument("--queue_size", type=int, default=65536, help="support-set size")
        group.add_argument("--temperature", type=float, default=0.2)

    def learnable_params(self) -> list[dict]:
        return super().learnable_params() + [
            {"name": "projector", "params": list(self.projector.parameters())},
            {"name": "predictor", "params": list(self.predictor.parameters())},
        ]

    @torch.no_grad()
    def find_nn(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices and rows of the support set nearest (dot product) to each normalised z; in
        float32 (the support set's dtype), also under autocast."""
        idx = (z.float() @ self.queue.T.float()).argmax(dim=1)
        return idx, self.queue[idx]

    @torch.no_grad()
    def dequeue_and_enqueue(self, z: torch.Tensor, y: torch.Tensor) -> None:
        """Overwrite the oldest len(z) rows (wrapping) with z and their labels y.

        The pointer stays on the device: reading it on the host would be a GPU sync per step.
        """
        size = self.queue.shape[0]
        rows = (torch.arange(z.shape[0], device=z.device) + self.queue_ptr) % size
        self.queue[rows] = z.to(self.queue.dtype)
        self.queue_y[rows] = y
        self.queue_ptr.add_(z.shape[0]).remainder_(size)

    def ssl_step(self, views, targets) -> StepOutput:
        feats = [self.backbone(v) for v in views]
        z = [self.projector(f) for f in feats]
        p = [self.predictor(zi) for zi in z]
        z = [F.normalize(zi, dim=-1) for zi in z]
        idx1, nn1 = self.find_nn(z[0])
        _, nn2 = self.find_nn(z[1])
        T = self.hparams.temperature
        loss = nnclr_loss_func(nn1, p[1], temperature=T) / 2 + nnclr_loss_func(nn2, p[0], temperature=T) / 2
        nn_acc = (self.queue_y[idx1] == targets).float().mean()
        self.dequeue_and_enqueue(gather(z[0].detach()), gather(targets))
        return StepOutput(loss=loss, feats=feats, z=z, logs={"nn_acc": nn_acc})
