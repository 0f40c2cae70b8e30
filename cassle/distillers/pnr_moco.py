"""PNR for MoCoV2+ (Cha et al., ICML 2024, section 4.1; public code ``mocov2plus_pnr``).

::

    L = L_main(q, k, [Q_k | Q_f]) + distill_lamb * L_reg(g(z), f, [Q_k | Q_f])   (pnr_moco_losses)

A second queue Q_f (2, D, K), K = ``--queue_size``, holds the past frozen projections (normalised,
gathered over processes), next to MoCo's queue of keys Q_k; both are the negatives of the main
loss (replacing MoCo's) and of the distillation. Q_f starts as random unit vectors like MoCo's,
is filled after each step's loss and, like the predictor, lives in the state dict (so a mid-task
resume restores it, and from task 2 it is carried over from the previous task as in the code).
"""

import torch
import torch.nn.functional as F

from cassle.distillers.pnr_base import PNRDistiller
from cassle.losses import pnr_moco_losses
from cassle.utils.distributed import gather


class PNRMoCoDistiller(PNRDistiller):
    methods = ("mocov2plus",)
    default_temperature = 0.2

    def __init__(self, method, args):
        super().__init__(method, args)
        queue = F.normalize(torch.randn(2, args.output_dim, args.queue_size), dim=1)
        self.register_buffer("pnr_queue", queue)
        self.register_buffer("pnr_queue_ptr", torch.zeros(1, dtype=torch.long))
        self.main_temperature = args.temperature

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:  # keys (2, N, D), the method's rule
        size, n = self.pnr_queue.shape[-1], keys.shape[1]
        cols = (torch.arange(n, device=keys.device) + self.pnr_queue_ptr) % size
        self.pnr_queue[:, :, cols] = keys.permute(0, 2, 1).to(self.pnr_queue.dtype)
        self.pnr_queue_ptr.add_(n).remainder_(size)

    def pnr_terms(self, out, p, z_bar):
        queue_f = self.pnr_queue.clone()
        main, reg = pnr_moco_losses(
            out.z,
            out.extras["k"],
            p,
            z_bar,
            out.extras["queue"],
            queue_f,
            temperature=self.main_temperature,
            distill_temperature=self.temperature,
        )
        f = [F.normalize(zb, dim=-1) for zb in z_bar]
        self._enqueue(torch.stack([gather(f[0]), gather(f[1])]))
        return main, reg, None
