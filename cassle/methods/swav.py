"""SwAV (Caron et al., 2020): swapped prediction of Sinkhorn-Knopp cluster codes."""
from __future__ import annotations

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from cassle.losses import sinkhorn_knopp, swav_loss_func
from cassle.methods.base import BaseMethod, StepOutput, mlp


class Prototypes(nn.Module):
    """Linear layer without bias whose rows (prototypes) are L2-normalised on the fly.

    Same function as weight normalisation with the gain fixed to 1 (the reference's choice).
    """

    def __init__(self, dim: int, num_prototypes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_prototypes, dim))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.linear(z, F.normalize(self.weight, dim=1))


def prototype_scores(prototypes: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (N, K) prototype scores in float32, also under autocast.

    Sinkhorn-Knopp takes exp(score / 0.05): a bf16 rounding of a score (up to 2^-9 of it) would
    become up to ~8% in a code. The layer is small next to the backbone.
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
        self.prototypes = Prototypes(args.output_dim, args.num_prototypes)
        # Queue of past normalised projections per view; reset at every task (REFERENCE 3).
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
        group.add_argument("--epoch_queue_starts", type=int, default=50)
        group.add_argument("--freeze_prototypes_epochs", type=int, default=2)

    def learnable_params(self) -> list[dict]:
        return super().learnable_params() + [
            {"name": "projector", "params": list(self.projector.parameters())},
            {"name": "prototypes", "params": list(self.prototypes.parameters())}]

    def start_new_task(self) -> None:
        super().start_new_task()
        self.queue.zero_()
        self._queue_filled = 0

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
        use_queue = (args.queue_size > 0 and self.current_epoch >= args.epoch_queue_starts
                     and self._queue_full())  # only once the queue is full
        codes = []
        for i, s in enumerate(scores):
            s = s.detach().float()
            if use_queue:
                queue_scores = prototype_scores(self.prototypes, self.queue[i])
                codes.append(sinkhorn_knopp(torch.cat([queue_scores, s]), epsilon=args.sk_epsilon,
                                            num_iters=args.sk_iters)[-len(s):])
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
                    self.queue[i] = torch.cat([zn.detach().to(self.queue.dtype),
                                               self.queue[i, :-len(zn)]])
            if self._queue_filled is not None:
                self._queue_filled = min(self.queue.shape[1], self._queue_filled + len(z_norm[0]))
        return StepOutput(loss=loss, feats=feats, z=z)
