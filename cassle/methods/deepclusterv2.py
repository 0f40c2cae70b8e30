"""DeepCluster-v2 (Caron et al., 2020): predict each sample's k-means cluster, for several
clusterings (heads) of a memory of last epoch's projections::

    L = mean_h - 1/(V |M_h|) sum_{v, n in M_h} log softmax(C_h z_{v,n} / T)_{a_h(n)}

with z = normalise(projector(f(x))), C_h the (fixed, not learnt) centroids of head h and a_h(n)
the cluster of sample n from spherical k-means (cassle/methods/kmeans.py) run at the start of
every epoch on the memory the previous epoch filled (all processes). The first epoch of each task
has no clusters yet (loss 0; the original's NaN). The memory is per task and per process, in
checkpoints (not in the state dict), so a resume continues the epoch exactly.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from cassle.losses import deepclusterv2_loss_func
from cassle.methods.base import BaseMethod, StepOutput, mlp
from cassle.methods.kmeans import kmeans_generator, spherical_kmeans
from cassle.methods.swav import prototype_scores

_STATE = "deepclusterv2_state"


class DeepClusterV2(BaseMethod):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        args = self.hparams
        if len(set(args.num_prototypes)) != 1:  # the heads' scores are stacked (P, V, N, K)
            raise ValueError(f"--num_prototypes must give every head the same number, got {args.num_prototypes}")
        self.projector = mlp(self.features_dim, args.proj_hidden_dim, args.output_dim)
        # One bias-free layer of normalised centroids per head, set by k-means, never trained.
        self.prototypes = nn.ModuleList(nn.Linear(args.output_dim, k, bias=False) for k in args.num_prototypes)
        with torch.no_grad():
            for proto in self.prototypes:
                proto.weight.requires_grad = False
                proto.weight.copy_(F.normalize(proto.weight, dim=-1))
        self.memory_index: torch.Tensor | None = None  # (M,) dataset indexes
        self.memory_embeddings: torch.Tensor | None = None  # (V, M, D)
        self.assignments = torch.full((len(args.num_prototypes), 0), -1, dtype=torch.long)
        self.assignments_epoch = -1  # the epoch the assignments were computed for
        self.batch_indexes: torch.Tensor | None = None  # set by training_step
        self.batch_slot = 0  # first memory row of the current batch

    @staticmethod
    def add_model_specific_args(parser: argparse.ArgumentParser) -> None:
        BaseMethod.add_model_specific_args(parser)
        group = parser.add_argument_group("deepclusterv2")  # the original's defaults
        group.add_argument("--proj_hidden_dim", type=int, default=2048)
        group.add_argument("--output_dim", type=int, default=128)
        group.add_argument("--temperature", type=float, default=0.1)
        group.add_argument("--num_prototypes", type=int, nargs="+", default=[3000, 3000, 3000])
        group.add_argument("--kmeans_iters", type=int, default=10)

    def learnable_params(self) -> list[dict]:
        return super().learnable_params() + [{"name": "projector", "params": list(self.projector.parameters())}]

    # ----------------------------------------------------------------- memory and k-means
    def start_new_task(self) -> None:
        super().start_new_task()
        self.memory_index = self.memory_embeddings = None  # a new memory for the new task
        self.assignments = self.assignments[:, :0]
        self.assignments_epoch = -1

    def on_train_start(self) -> None:
        super().on_train_start()
        size = int(self.trainer.num_training_batches) * self.hparams.batch_size
        shape = (2, size, self.hparams.output_dim)
        if self.memory_embeddings is None or tuple(self.memory_embeddings.shape) != shape:
            self.memory_index = torch.zeros(size, dtype=torch.long, device=self.device)
            self.memory_embeddings = F.normalize(torch.randn(shape, device=self.device), dim=-1)
        self.memory_index = self.memory_index.to(self.device)
        self.memory_embeddings = self.memory_embeddings.to(self.device)
        self.assignments = self.assignments.to(self.device)

    def cluster_memory(self, epoch: int) -> None:
        """k-means on the memory: the assignments and the prototypes (centroids) of `epoch`."""
        args = self.hparams
        self.assignments, centroids = spherical_kmeans(
            self.memory_embeddings,
            self.memory_index,
            args.num_prototypes,
            args.kmeans_iters,
            kmeans_generator(args.seed, args.task_idx, epoch),
        )
        with torch.no_grad():
            for proto, centroid in zip(self.prototypes, centroids):
                proto.weight.copy_(centroid)
        self.assignments_epoch = epoch

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        if self.assignments_epoch == self.current_epoch:
            return  # resumed inside this epoch: its assignments came with the checkpoint
        if self.current_epoch == 0:
            self.assignments = torch.full_like(self.assignments[:, :0], -1)
            self.assignments_epoch = 0
        else:
            self.cluster_memory(self.current_epoch)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[_STATE] = {
            "memory_index": self.memory_index,
            "assignments": self.assignments,
            "memory_embeddings": self.memory_embeddings,
            "assignments_epoch": self.assignments_epoch,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get(_STATE)
        if state is not None:
            self.memory_index, self.memory_embeddings = state["memory_index"], state["memory_embeddings"]
            self.assignments, self.assignments_epoch = state["assignments"], int(state["assignments_epoch"])

    # ----------------------------------------------------------------- the step
    def training_step(self, batch, batch_idx):
        ssl = batch["ssl"] if isinstance(batch, dict) else batch
        self.batch_indexes, self.batch_slot = ssl[0], batch_idx * self.hparams.batch_size
        return super().training_step(batch, batch_idx)

    def _batch_assignments(self, rows: int, device) -> torch.Tensor:
        """(P, rows) clusters of the batch; -1 for rows without an index (replayed samples) or
        samples not in the clustered memory."""
        out = torch.full((len(self.prototypes), rows), -1, dtype=torch.long, device=device)
        if self.batch_indexes is None or self.assignments.shape[1] == 0:
            return out
        idx = self.batch_indexes.to(device)[:rows]
        size = self.assignments.shape[1]
        found = self.assignments.to(device)[:, idx.clamp(max=size - 1)]
        out[:, : len(idx)] = torch.where(idx < size, found, torch.full_like(found, -1))
        return out

    def ssl_step(self, views, targets) -> StepOutput:
        feats = [self.backbone(v) for v in views]
        z = [F.normalize(self.projector(f).float(), dim=-1) for f in feats]
        # scores in float32 also under autocast (as SwAV's prototype scores), then divided by T
        outputs = torch.stack([torch.stack([prototype_scores(proto, zi) for zi in z]) for proto in self.prototypes])
        loss = deepclusterv2_loss_func(
            outputs, self._batch_assignments(len(z[0]), z[0].device), temperature=self.hparams.temperature
        )
        if self.memory_embeddings is not None and self.batch_indexes is not None:
            n = min(len(self.batch_indexes), len(z[0]))
            rows = slice(self.batch_slot, self.batch_slot + n)
            with torch.no_grad():
                self.memory_index[rows] = self.batch_indexes[:n].to(self.memory_index.device)
                for v, zv in enumerate(z[:2]):
                    self.memory_embeddings[v, rows] = zv[:n].detach().to(self.memory_embeddings.dtype)
        # The distillers get the normalised projections, as the original's "z".
        return StepOutput(loss=loss, feats=feats, z=z)
