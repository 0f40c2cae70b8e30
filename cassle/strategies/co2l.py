"""Co2L's instance-wise relation distillation (Cha, Lee & Shin, ICCV 2021) as a regulariser.

    L = L_ssl + lamb * L_IRD(z, z*)

with L_IRD the cross-entropy between the current model's and the previous task's frozen model's
similarity distributions over the batch (equation in ``cassle.losses.ird``). As in chaht01/Co2L
``main.py``: on the L2-normalised projector outputs (its ``SupConResNet`` normalises the head),
over all views of the step's batch at once (2B x 2B similarities, self excluded; with a replay
strategy the replayed images are in the batch, as Co2L's batches hold its buffer samples), past
model = the backbone *and* projector as they ended the previous task, kappa 0.2, kappa* 0.01,
lamb 1 (its ``--current_temp``, ``--past_temp``, ``--distill_power`` defaults, which its
``run.sh`` keeps). Co2L's asymmetric SupCon loss is not part of this: the method's own SSL loss
stays; this is the distillation term that the continual-SSL comparisons borrow.
Inactive at task 0 (nothing is built there); the frozen projector is the CaSSLe distiller's
snapshot when combined with ``--distiller``, else this strategy's own.
"""

from __future__ import annotations

import torch

from cassle.losses.ird import ird_loss
from cassle.strategies.base import Strategy, _freeze


def add_co2l_args(group) -> None:
    group.add_argument(
        "--co2l_lamb", type=float, default=1.0, help="weight of Co2L's IRD term (chaht01/Co2L --distill_power: 1.0)"
    )
    group.add_argument(
        "--co2l_current_temp",
        type=float,
        default=0.2,
        help="IRD temperature kappa of the current model (chaht01/Co2L: 0.2)",
    )
    group.add_argument(
        "--co2l_past_temp",
        type=float,
        default=0.01,
        help="IRD temperature kappa* of the past model (chaht01/Co2L: 0.01)",
    )


class Co2L(Strategy):
    name = "co2l"
    needs_frozen = True

    @staticmethod
    def check_args(args) -> None:
        if args.co2l_lamb < 0:
            raise ValueError(f"--co2l_lamb must be >= 0, got {args.co2l_lamb}")
        for flag in ("co2l_current_temp", "co2l_past_temp"):
            if not getattr(args, flag) > 0:
                raise ValueError(f"--{flag} must be > 0, got {getattr(args, flag)}")

    def __init__(self, model, args):
        super().__init__(model, args)
        self.check_args(args)
        self.lamb = args.co2l_lamb
        self.current_temp, self.past_temp = args.co2l_current_temp, args.co2l_past_temp
        self.bn_eval = bool(args.distill_bn_eval)
        self.own_projector = model.frozen_active and not hasattr(model, "frozen_projector")
        if self.own_projector:  # from task 1 only, so that task 0 is the plain method
            self.frozen_projector = _freeze(model.projector)
            if self.bn_eval:
                self.frozen_projector.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.own_projector and self.bn_eval:
            self.frozen_projector.eval()
        return self

    def on_task_start(self, model) -> None:
        if self.own_projector:
            self.frozen_projector.load_state_dict(model.projector.state_dict())

    def loss(self, model, views, out, ctx):
        if not model.frozen_active:
            return None, {}
        projector = self.frozen_projector if self.own_projector else model.frozen_projector
        with torch.no_grad():
            past = torch.cat([projector(model.frozen_backbone(v)) for v in views])
        z = torch.cat(out.z)
        return self.lamb * ird_loss(z, past.to(z.dtype), self.current_temp, self.past_temp), {}
