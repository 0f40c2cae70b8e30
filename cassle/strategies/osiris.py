"""Osiris (Zhang, Charlin, Zemel & Ren, CoLLAs 2024, "Integrating Present and Past in Unsupervised
Continual Learning", Sec. 4; SkrighYZ/Osiris ``models/contrastive.py`` ``Osiris.forward``,
``models/continual_model.py``).

Three objectives on two embedding spaces. From task 1 on, with the current views x, x' (N images)
and the views y, y' of M buffer images, g the method's projector and h a second projector:

    L = L_new(g f(x), g f(x'))                                        the method's own loss
        + lamb * [ L_cross(h f(x), h f(x'); h f(y), h f(y'))           cross-task, Sec. 4
                   + L_past ]
    Osiris-R (``--osiris_variant r``): L_past = NT-Xent(h f(y), h f(y'))        (replay)
    Osiris-D (``--osiris_variant d``): L_past = L_distill(h f(x), h f(x'); h f*(x), h f*(x'))

equations of L_cross and L_distill in ``cassle.losses.osiris``; f* the previous task's frozen
backbone (Osiris-D only: the code's ``net_prev``, a copy at each task start, its backbone read
through the *current*, trainable h). The code's values: lamb 0.5 (``loss1 + 0.5 * (loss2 +
loss3)``), T 0.1 for the h-space losses (its ``NT_Xent`` / ``Cross_NT_Xent`` / ``Distill_NT_Xent``
default), h built like g and loaded from g when task 1 starts (``update_model_states``), trained from
then on; M = 0.75 N (``--p 0.75``, here ``--replay_batch_size``, default int(0.75 B)); buffer 500
images by reservoir sampling over the whole stream (``--buffer_size 500``; this repo's
``ReservoirBuffer`` does the same, current task included), fresh SSL views of each buffer image at
every draw. Both variants replay: Osiris-D's buffer feeds L_cross. Task 0 is the plain method (the
buffer fills). The default variant is R, the first Osiris command of the code's README.

Cost from task 1 on, per step: one forward + backward of the 2 x M buffer views through the backbone
and h (forwarded on their own: BatchNorm statistics over M; the code's GroupNorm backbone has none),
h on the 2 x N current features, Osiris-D: one no-grad forward of the 2 x N current views through f*
and h on them; memory: the buffer views' activations (about M / N = 0.75 of the step's), h (a copy
of g) and, Osiris-D, the frozen backbone.
"""

from __future__ import annotations

import copy

import torch

from cassle.losses.osiris import osiris_cross_task_loss, osiris_distill_loss
from cassle.losses.simclr import simclr_loss_func
from cassle.strategies.replay import _Replay

VARIANTS = ("r", "d")
BUFFER_SHARE = 0.75  # SkrighYZ/Osiris train.py --p 0.75: buffer images per current image


def add_osiris_args(group) -> None:
    group.add_argument(
        "--osiris_variant",
        choices=VARIANTS,
        default="r",
        help="Osiris-R (past-task loss: NT-Xent on the buffer views; default, the first Osiris command "
        "of SkrighYZ/Osiris README) or Osiris-D (distillation from the previous task's frozen backbone)",
    )
    group.add_argument(
        "--osiris_lamb",
        type=float,
        default=0.5,
        help="weight of the cross-task + past-task terms (SkrighYZ/Osiris models/contrastive.py: "
        "loss1 + 0.5 * (loss2 + loss3))",
    )
    group.add_argument(
        "--osiris_temperature",
        type=float,
        default=0.1,
        help="temperature of the h-space losses (SkrighYZ/Osiris models/contrastive.py: 0.1)",
    )


class Osiris(_Replay):
    name = "osiris"
    default_buffer_size = 500  # SkrighYZ/Osiris train.py --buffer_size 500 (its README's CIFAR-100 commands)
    console_keys = ("osiris_cross", "osiris_past")

    @classmethod
    def uses_frozen(cls, args) -> bool:
        return getattr(args, "osiris_variant", "r") == "d"

    @staticmethod
    def check_args(args) -> None:
        if args.osiris_variant not in VARIANTS:
            raise ValueError(f"--osiris_variant must be one of {', '.join(VARIANTS)}, got {args.osiris_variant}")
        if args.osiris_lamb < 0:
            raise ValueError(f"--osiris_lamb must be >= 0, got {args.osiris_lamb}")
        if not args.osiris_temperature > 0:
            raise ValueError(f"--osiris_temperature must be > 0, got {args.osiris_temperature}")

    def __init__(self, model, args):
        super().__init__(model, args)
        self.check_args(args)
        self.replay_batch_size = args.replay_batch_size or max(1, int(args.batch_size * BUFFER_SHARE))
        self.distill = args.osiris_variant == "d"
        self.lamb, self.temperature = args.osiris_lamb, args.osiris_temperature
        # h from task 1 on only: at task 0 nothing uses it (DDP rejects unused parameters), and a
        # copy draws no random number. Its weights: g's when task 1 starts, then its own (checkpoint).
        self.h = None
        if self.task_idx > 0:
            self.h = copy.deepcopy(model.projector).requires_grad_(True)
            self.register_buffer("h_ready", torch.zeros((), dtype=torch.bool))

    def on_task_start(self, model) -> None:
        if self.h is not None and not bool(self.h_ready):  # task 1 (no h in task 0's checkpoint)
            self.h.load_state_dict(model.projector.state_dict())
            self.h_ready.fill_(True)

    def loss(self, model, views, out, ctx):
        zero = out.loss.new_zeros(())
        if self.h is None or not self.has_data:
            return None, {"osiris_cross": zero, "osiris_past": zero}
        n, global_batch, temp = ctx["n"], model.global_batch_loss, self.temperature
        replayed, _ = self.replay_views(self.replay_batch_size)
        replayed = [model._memory_format(r).to(v.dtype) for r, v in zip(replayed, views)]
        z = [self.h(f[:n]) for f in out.feats[:2]]
        u = [self.h(model.backbone(y)) for y in replayed]
        cross = osiris_cross_task_loss(z[0], z[1], u[0], u[1], temp, global_batch)
        if self.distill:
            with torch.no_grad():
                prev = [model.frozen_backbone(v[:n]) for v in views[:2]]
            p = [self.h(f.to(z[0].dtype)) for f in prev]  # the current h: gradient into h
            past = osiris_distill_loss(z[0], z[1], p[0], p[1], temp, global_batch)
        else:
            past = simclr_loss_func(u[0], u[1], temperature=temp, global_batch=global_batch)
        return self.lamb * (cross + past), {"osiris_cross": cross.detach(), "osiris_past": past.detach()}
