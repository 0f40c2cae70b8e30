"""SwAV (Caron et al., 2020): swapped prediction of Sinkhorn-Knopp cluster codes."""

from __future__ import annotations

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from cassle.losses import sinkhorn_knopp, swav_loss_func
from cassle.methods.base import BaseMethod, StepOutput, mlp
from cassle.methods.prototypes import Prototypes
from cassle.utils.distributed import world_size

__all__ = ["SwAV", "Prototypes"]


def prototype_scores(prototypes: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (N, K) prototype scores in float32, also under autocast.

    Sinkhorn-Knopp takes exp(score / 0.05): a bf16 rounding of a score (up to 2^-8 of it, 0.004
    for a score near 1) would become up to ~8% in a code. The layer is small next to the backbone.
    """
    with torch.autocast(device_type=z.device.type, enabled=False):
        return prototypes(z.float())


def _queue_fill_unknown(module: nn.Module, incompatible_keys) -> None:
    module._queue_filled = None  # a loaded queue: count its rows again at the next use


class SwAV(BaseMethod):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        args = self.hparams
        self.projector = mlp(self.features_dim, args.proj_hidden_dim, args.output_dim)
        # Weight-normalised prototypes with a learnable gain (reference), see prototypes.py.
        self.prototypes = Prototypes(args.output_dim, args.num_prototypes)
        # Queue of past normalised projections per view; reset at every task (REFERENCE 3).
        # Each process keeps queue_size // world_size rows (sized in `setup`), as the reference:
        # Sinkhorn-Knopp sums over processes, so the queue spans queue_size rows in all.
        self.register_buffer("queue", torch.zeros(2, args.queue_size, args.output_dim))
        # Rows of the queue filled so far, counted on the host: reading the queue to know whether
        # it is full would be a GPU sync per step. None: unknown, counted from the queue once.
        self._queue_filled: int | None = None
        self.register_load_state_dict_post_hook(_queue_fill_unknown)

    @staticmethod
    def add_model_specific_args(parser: argparse.ArgumentParser) -> None:
        BaseMethod.add_model_specific_args(parser)
        group = parser.add_argument_group("swav")
        group.add_argument("--proj_hidden_dim", type=int, default=2048)
        group.add_argument("--output_dim", type=int, default=128)
        group.add_argument("--num_prototypes", type=int, default=3000)
        group.add_argument("--temperature", type=float, default=0.1)
        group.add_argument("--sk_epsilon", type=float, default=0.05)
        group.add_argument("--sk_iters", type=int, default=3)
        group.add_argument("--queue_size", type=int, default=3840)
        group.add_argument("--epoch_queue_starts", type=int, default=15)
        group.add_argument("--freeze_prototypes_epochs", type=int, default=1)

    def learnable_params(self) -> list[dict]:
        return super().learnable_params() + [
            {"name": "projector", "params": list(self.projector.parameters())},
            {"name": "prototypes", "params": list(self.prototypes.parameters())},
        ]

    def start_new_task(self) -> None:
        super().start_new_task()
        self.queue.zero_()
        self._queue_filled = 0

    def setup(self, stage: str) -> None:
        # The process group exists by now (Lightning sets it up before this hook) and the
        # checkpoint of a resumed task is restored after it, into a queue of the same shape.
        super().setup(stage)
        rows = self.hparams.queue_size // world_size()
        if self.queue.shape[1] != rows:
            self.queue = torch.zeros(2, rows, self.queue.shape[2], device=self.queue.device)
            self._queue_filled = 0

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A queue saved with another number of processes (or a previous task's, about to be
        # reset anyway) does not fit: keep the current, empty one; it refills within an epoch.
        key = prefix + "queue"
        if key in state_dict and state_dict[key].shape != self.queue.shape:
            state_dict[key] = torch.zeros_like(self.queue)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def on_after_backward(self) -> None:
        # Prototypes stay fixed for the first epochs of each task (SwAV's stabiliser).
        if self.current_epoch < self.hparams.freeze_prototypes_epochs:
            for p in self.prototypes.parameters():
                p.grad = None

    def _queue_full(self) -> bool:
        """True once the last row of the queue holds a projection."""
        rows = self.queue.shape[1]
        if self._queue_filled is None:  # after construction or a load: one read, not per step
            full = bool((self.queue[:, -1] != 0).any())
            self._queue_filled = rows if full else int((self.queue != 0).any(-1).any(0).sum())
        return self._queue_filled >= rows

    @torch.no_grad()
    def _codes(self, scores: list[torch.Tensor]) -> list[torch.Tensor]:
        args = self.hparams
        use_queue = (
            args.queue_size > 0 and self.current_epoch >= args.epoch_queue_starts and self._queue_full()
        )  # only once the queue is full
        codes = []
        for i, s in enumerate(scores):
            s = s.detach().float()
            if use_queue:
                queue_scores = prototype_scores(self.prototypes, self.queue[i])
                codes.append(
                    sinkhorn_knopp(torch.cat([queue_scores, s]), epsilon=args.sk_epsilon, num_iters=args.sk_iters)[
                        -len(s) :
                    ]
                )
            else:
                codes.append(sinkhorn_knopp(s, epsilon=args.sk_epsilon, num_iters=args.sk_iters))
        return codes

    def ssl_step(self, views, targets) -> StepOutput:
        feats = [self.backbone(v) for v in views]
        z = [self.projector(f) for f in feats]
        z_norm = [F.normalize(zi.float(), dim=-1) for zi in z]  # float32, see prototype_scores
        scores = [prototype_scores(self.prototypes, zn) for zn in z_norm]
        codes = self._codes(scores)
        loss = swav_loss_func(scores, codes, temperature=self.hparams.temperature)
        if self.hparams.queue_size > 0:
            # Newest local projections enter at the front; local, because Sinkhorn-Knopp
            # already sums over processes.
            with torch.no_grad():
                for i, zn in enumerate(z_norm):
                    self.queue[i] = torch.cat([zn.detach().to(self.queue.dtype), self.queue[i, : -len(zn)]])
            if self._queue_filled is not None:
                self._queue_filled = min(self.queue.shape[1], self._queue_filled + len(z_norm[0]))
        return StepOutput(loss=loss, feats=feats, z=z)
