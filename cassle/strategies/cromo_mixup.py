"""CroMo-Mixup (Mushtaq et al., ECCV 2024): cross-task mixup and cross-model feature mixup.

From task 1 on, each step mixes the first M = min(B, r) current images of each view with M
buffered past images (ErumMushtaq/CroMo-Mixup ``trainers/train_mixed_distillation.py``; the
paper's method section, its "Cross-Task Data Mixup" and "Cross-Model Feature Mixup", arXiv 2407.12188):

    x~_v = lambda x_v + (1 - lambda) x_b,v
    L = L_ssl(x) + 1/V sum_v [ lambda L(h(x~_v), h(x_v)) + (1 - lambda) L(h(x~_v), h*(x_b,v)) ]

h the current model (backbone + projector; BYOL: + predictor on the mixed side, the momentum
network's projection as the current target, as its ``target_z``), h* the previous task's frozen
backbone + projector, L the method's own pairwise loss (Barlow Twins, NT-Xent or BYOL's; equation
in ``cassle.losses.cromo_mixup``). lambda: ``--cromo_lambda`` fixed (the code's Barlow Twins trainer:
0.7, where the paper draws it; the code is followed, README differences) or ``beta``: ~ Beta(alpha,
alpha) per step (its SimCLR and BYOL trainers, ``--alpha`` 1.0).
The paper's third term, the temporal-projector distillation of the current batch (its ``lossKD``,
``--lambdap`` 1.0), is CaSSLe's distiller: the scripts add ``--distiller`` (decorrelative,
contrastive, predictive) with ``--distill_lamb 1``. r = ``--replay_batch_size`` (default 64, the
``--replay_bs`` of its Barlow Twins and SimCLR CIFAR-100 commands; its BYOL trainer ran with 128).
Buffer: this repo's reservoir (``--buffer_size``, default 500, its ``--msize`` per task): see the
README's differences.

Cost from task 1 on: one extra forward-backward of M mixed images per view through backbone and
projector, one no-grad forward of the M buffer images per view through the frozen backbone and
projector, and the buffer's M views built on the device. Inactive at task 0 (the buffer fills).
"""

from __future__ import annotations

import torch

from cassle.losses.barlow import barlow_loss_func
from cassle.losses.byol import byol_loss_func
from cassle.losses.cromo_mixup import cromo_mixup_loss
from cassle.losses.lump import mixup, sample_mixup_lambda
from cassle.losses.simclr import simclr_loss_func
from cassle.strategies.base import _freeze
from cassle.strategies.replay import _Replay

SUPPORTED = ("barlow_twins", "simclr", "byol")  # the families of the paper this repo has


def add_cromo_mixup_args(group) -> None:
    group.add_argument(
        "--cromo_alpha",
        type=float,
        default=1.0,
        help="CroMo-Mixup: lambda ~ Beta(alpha, alpha) when --cromo_lambda is unset "
        "(ErumMushtaq/CroMo-Mixup main_cont.py --alpha: 1.0)",
    )
    group.add_argument(
        "--cromo_lambda",
        type=_lambda_arg,
        default="beta",
        help="CroMo-Mixup: a fixed mixup lambda in [0, 1] (its Barlow Twins trainer: 0.7) or "
        "'beta', drawn per step ~ Beta(alpha, alpha) (its SimCLR and BYOL trainers; default)",
    )


def _lambda_arg(text: str):
    """'beta' or a float (argparse type of --cromo_lambda)."""
    return "beta" if text == "beta" else float(text)


def pair_loss(model):
    """The method's own loss of two embedding batches, as CroMo-Mixup's ``cross_loss``."""
    hp, method = model.hparams, model.hparams.method
    if method == "barlow_twins":
        return lambda a, b: barlow_loss_func(a, b, lamb=hp.lamb, scale_loss=hp.scale_loss)
    if method == "simclr":
        return lambda a, b: simclr_loss_func(a, b, temperature=hp.temperature)
    return byol_loss_func  # (predictor output, target)


class CroMoMixup(_Replay):
    name = "cromo_mixup"
    needs_frozen = True
    default_buffer_size = 500  # ErumMushtaq/CroMo-Mixup --msize 500 (CIFAR-100, 5 tasks)
    console_keys = ("cromo_lambda",)

    @staticmethod
    def check_args(args) -> None:
        if args.method not in SUPPORTED:
            raise ValueError(
                f"--cl_strategy cromo_mixup supports --method {', '.join(SUPPORTED)} (the paper's "
                f"families this repo has), got {args.method}"
            )
        if not args.cromo_alpha > 0:
            raise ValueError(f"--cromo_alpha must be > 0, got {args.cromo_alpha}")
        if args.cromo_lambda != "beta" and not 0 <= args.cromo_lambda <= 1:
            raise ValueError(f"--cromo_lambda must be in [0, 1], got {args.cromo_lambda}")

    def __init__(self, model, args):
        super().__init__(model, args)
        self.check_args(args)
        self.replay_batch_size = args.replay_batch_size or 64
        self.alpha = args.cromo_alpha
        self.fixed_lambda = None if args.cromo_lambda == "beta" else float(args.cromo_lambda)
        self.byol = args.method == "byol"
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

    def mixup_lambda(self, ref: torch.Tensor) -> torch.Tensor:
        if self.fixed_lambda is not None:
            return ref.new_full((), self.fixed_lambda)
        return sample_mixup_lambda(self.alpha, ref.device).to(ref.dtype)

    def loss(self, model, views, out, ctx):
        if not (model.frozen_active and self.has_data):
            return None, {"cromo_lambda": out.loss.new_zeros(())}
        m = min(ctx["n"], self.replay_batch_size)
        replayed, _ = self.replay_views(m)
        replayed = [model._memory_format(r).to(v.dtype) for r, v in zip(replayed, views)]
        lam = self.mixup_lambda(out.loss.detach())
        mixed = [mixup(v[:m], r, lam) for v, r in zip(views, replayed)]
        z_mix = [model.projector(model.backbone(x)) for x in mixed]
        if self.byol:
            z_mix = [model.predictor(z) for z in z_mix]
            with torch.no_grad():
                z_new = [model.momentum_projector(f[:m]) for f in out.momentum_feats]
        else:
            z_new = [z[:m] for z in out.z]
        projector = self.frozen_projector if self.own_projector else model.frozen_projector
        with torch.no_grad():
            z_old = [projector(model.frozen_backbone(r)).to(z.dtype) for r, z in zip(replayed, z_mix)]
        term = cromo_mixup_loss(z_mix, z_new, z_old, lam, pair_loss(model))
        return term, {"cromo_lambda": lam.detach()}
