"""DINO (Caron et al., 2021): self-distillation of a momentum teacher into the student::

    P_t(x) = softmax((h_t(f_t(x)) - c) / tau_t),  P_s(x) = softmax(h_s(f_s(x)) / tau_s)
    L = mean over views u != v of H(P_t(x_u), P_s(x_v)),  H(a, b) = - sum_k a_k log b_k

with the centre c an EMA of the teacher's outputs (all processes, cassle.losses.DINOLoss) and
tau_t warmed up linearly over the first epochs of each task. The head h = prototypes(normalise(
projector(f))): a 3-layer MLP (BN, GELU, truncated-normal init) to a bottleneck, then a
weight-normalised prototype layer whose gains stay 1 (``--norm_last_layer``), as the original.
``projector`` / ``prototypes`` are the names the distillers use (the original: head.mlp /
head.last_layer); the distillers get the bottleneck output.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from cassle.losses import DINOLoss
from cassle.methods.base import StepOutput
from cassle.methods.momentum import BaseMomentumMethod, momentum_copy
from cassle.methods.prototypes import Prototypes
from cassle.methods.swav import prototype_scores


def _bool(s: str) -> bool:
    return s.lower() in ("1", "true", "yes")


def dino_projector(in_dim: int, hidden_dim: int, out_dim: int, layers: int = 3) -> nn.Sequential:
    """Lin-BN-GELU x (layers - 1), Lin; weights trunc-normal(std 0.02), biases 0 (DINO)."""
    modules: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers - 1):
        modules += [nn.Linear(dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.GELU()]
        dim = hidden_dim
    modules.append(nn.Linear(dim, out_dim))
    for m in modules:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
    return nn.Sequential(*modules)


class DINO(BaseMomentumMethod):
    # Multi-crop (--num_small_crops, cassle/data/multicrop.py): the student sees every crop, the
    # teacher the two global ones (facebookresearch/dino main_dino.py: teacher(images[:2])).
    supports_small_crops = True
    NUM_GLOBAL = 2

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        args = self.hparams
        self.projector = dino_projector(self.features_dim, args.proj_hidden_dim, args.output_dim)
        self.prototypes = Prototypes(args.output_dim, args.num_prototypes)
        with torch.no_grad():
            self.prototypes.weight_g.fill_(1.0)
        self.prototypes.weight_g.requires_grad = not args.norm_last_layer
        self.momentum_projector = momentum_copy(self.projector)
        self.momentum_prototypes = momentum_copy(self.prototypes)
        self.dino_loss = DINOLoss(
            num_prototypes=args.num_prototypes,
            warmup_teacher_temp=args.warmup_teacher_temperature,
            teacher_temp=args.teacher_temperature,
            warmup_teacher_temp_epochs=args.warmup_teacher_temperature_epochs,
            num_epochs=args.max_epochs,
            student_temp=args.student_temperature,
            num_crops=self.NUM_GLOBAL + int(args.get("num_small_crops") or 0),
        )

    @staticmethod
    def add_model_specific_args(parser: argparse.ArgumentParser) -> None:
        BaseMomentumMethod.add_model_specific_args(parser)
        group = parser.add_argument_group("dino")  # the original's defaults
        group.add_argument("--proj_hidden_dim", type=int, default=2048)
        group.add_argument("--output_dim", type=int, default=256, help="bottleneck dimension")
        group.add_argument("--num_prototypes", type=int, default=4096)
        group.add_argument("--norm_last_layer", type=_bool, default=True, help="prototype gains fixed at 1")
        group.add_argument(
            "--clip_grad", type=float, default=0.0, help="clip each backbone parameter's gradient norm (0: off)"
        )
        group.add_argument(
            "--freeze_last_layer", type=int, default=1, help="epochs (of each task) with the prototypes frozen"
        )
        group.add_argument("--student_temperature", type=float, default=0.1)
        group.add_argument("--teacher_temperature", type=float, default=0.07)
        group.add_argument("--warmup_teacher_temperature", type=float, default=0.04)
        group.add_argument("--warmup_teacher_temperature_epochs", type=int, default=50)

    def learnable_params(self) -> list[dict]:
        return super().learnable_params() + [
            {"name": "projector", "params": list(self.projector.parameters())},
            {"name": "prototypes", "params": list(self.prototypes.parameters())},
        ]

    def momentum_pairs(self):
        return super().momentum_pairs() + [
            (self.projector, self.momentum_projector),
            (self.prototypes, self.momentum_prototypes),
        ]

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.dino_loss.epoch = self.current_epoch  # the teacher temperature of this epoch

    def on_after_backward(self) -> None:
        super().on_after_backward()
        if self.hparams.clip_grad:  # per parameter, as the original (no norm read on the host)
            for p in self.backbone.parameters():
                if p.grad is not None:
                    p.grad.mul_((self.hparams.clip_grad / (p.grad.norm() + 1e-6)).clamp(max=1.0))
        if self.current_epoch < self.hparams.freeze_last_layer:
            for p in self.prototypes.parameters():
                p.grad = None

    def _logits(self, projector, prototypes, feats):
        # prototype logits in float32 also under autocast (as SwAV's): the teacher's are divided
        # by 0.04, which would make a bf16 rounding of a logit up to ~10% of one
        z = projector(feats)
        return z, prototype_scores(prototypes, F.normalize(z.float(), dim=-1))

    def ssl_step(self, views, targets) -> StepOutput:
        # views: the two global crops, then the small ones (if any); the student sees them all
        feats = [self.backbone(v) for v in views]
        z, p = zip(*(self._logits(self.projector, self.prototypes, f) for f in feats))
        with torch.no_grad():
            momentum_feats = [self.momentum_backbone(v) for v in views[: self.NUM_GLOBAL]]
            p_teacher = [self._logits(self.momentum_projector, self.momentum_prototypes, f)[1] for f in momentum_feats]
        loss = self.dino_loss(torch.cat(p), torch.cat(p_teacher))
        # The classifier, the kNN monitor and CaSSLe's distiller get the global crops only.
        g = self.NUM_GLOBAL
        return StepOutput(loss=loss, feats=feats[:g], z=list(z[:g]), momentum_feats=momentum_feats)
