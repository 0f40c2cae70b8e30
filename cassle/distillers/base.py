"""The CaSSLe distillation mixin: what the paper adds to any SSL method.

At the start of task t > 0 the encoder and projector as they ended task t-1 are snapshotted into
`frozen_backbone` / `frozen_projector` (requires_grad off, never in the optimiser). At task 0 there
is nothing to distil and the mixin adds nothing at all (no predictor, no parameter group): a model
built with a distiller at task 0 is the plain method, so DDP finds no unused parameters and the
weights match a run without the flags. From task 1 a predictor g
maps the current projection z of each view to the frozen projection z_bar of the same view, and the
training loss becomes  L_ssl + distill_lamb * L_distill(g(z), z_bar)  where L_distill is the
method's own kind of loss (a `Distiller`). The frozen modules live in the state dict, so a mid-task
resume restores the end-of-previous-task snapshot, never the partly trained weights.
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn as nn
from pytorch_lightning.utilities import rank_zero_info

from cassle.backbones import disable_drop_path
from cassle.methods.base import BaseMethod, StepOutput, mlp


def add_distiller_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("CaSSLe distillation (tasks > 0)")
    group.add_argument(
        "--distiller",
        default=None,
        help="decorrelative, predictive, "
        "predictive_mse, contrastive, knowledge, relational, pnr_* (omit for "
        "fine-tuning)",
    )
    group.add_argument(
        "--distill_lamb", type=float, default=None, help="weight of the distillation loss (default: the distiller's)"
    )
    group.add_argument("--distill_proj_hidden_dim", type=int, default=2048, help="hidden width of the predictor g")
    group.add_argument("--distill_barlow_lamb", type=float, default=0.005)
    group.add_argument("--distill_scale_loss", type=float, default=0.1)
    group.add_argument(
        "--distill_temperature",
        type=float,
        default=None,
        help="default: 0.2 contrastive, 0.1 knowledge, --temperature_q (else 0.1) relational",
    )
    group.add_argument(
        "--distill_bn_eval",
        action="store_true",
        help="frozen model's BatchNorm in eval mode (running stats). Default: train "
        "mode like the reference (batch statistics; its running stats drift)",
    )
    group.add_argument(
        "--pnr_negative_lamb",
        type=float,
        default=None,
        help="PNR (non-contrastive): weight of the pseudo-negative term (default: "
        "the public code's, 1 for BYOL and Barlow Twins, 23 for VICReg)",
    )


class Distiller(nn.Module):
    """A distillation loss with its learnable parts (the predictor g, maybe prototypes).

    Subclasses set `default_lamb` and implement `loss(p, z_bar)` on lists of per-view tensors.
    `frozen_attrs` names extra method modules to snapshot besides backbone and projector.
    """

    default_lamb = 1.0
    default_temperature: float | None = None
    frozen_attrs: tuple[str, ...] = ()

    @classmethod
    def check_method(cls, method: BaseMethod, args) -> None:
        """Raise ValueError when `method` cannot use this distiller (checked at every task)."""

    def __init__(self, method: BaseMethod, args):
        super().__init__()
        self.check_method(method, args)
        out_dim = args.output_dim
        # g = Lin(out, hidden)-BN-ReLU-Lin(hidden, out) (REFERENCE section 2).
        self.predictor = mlp(out_dim, args.distill_proj_hidden_dim, out_dim)
        self.lamb = args.distill_lamb if args.distill_lamb is not None else self.default_lamb
        self.temperature = (
            args.distill_temperature if args.distill_temperature is not None else self.default_temperature
        )

    def param_groups(self) -> list[dict]:
        """The distiller's parameter groups: at the scaled `--lr` (the reference's default)."""
        return [{"name": "distiller", "params": list(self.parameters())}]

    def loss(self, p: list[torch.Tensor], z_bar: list[torch.Tensor], frozen: dict[str, nn.Module]) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} must define loss(p, z_bar, frozen)")


def freeze(module: nn.Module) -> nn.Module:
    """A copy outside the optimiser; a distillation target, so its ViT drop path is off."""
    module = disable_drop_path(copy.deepcopy(module))
    for p in module.parameters():
        p.requires_grad = False
    return module


class DistillMixin:
    """Mixed in before a method class by `distill_wrapper`; overrides only the seams."""

    distiller_cls: type[Distiller]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        args = self.hparams
        # Nothing to distil at task 0: no distiller module (its parameters would never get a
        # gradient, which DDP rejects). From task 1 the frozen copies exist from construction so
        # that a resumed checkpoint restores them.
        self.distill_active = args.task_idx > 0
        self.distiller = self.distiller_cls(self, args) if self.distill_active else None
        self.frozen_names = ["backbone", "projector", *self.distiller_cls.frozen_attrs]
        if self.distill_active:
            for name in self.frozen_names:
                setattr(self, f"frozen_{name}", freeze(getattr(self, name)))
        else:
            self.distiller_cls.check_method(self, args)
            rank_zero_info(
                f"task 0: nothing to distil yet, --distiller {args.distiller} and the "
                "--distill_* flags take effect from task 1"
            )

    def frozen_modules(self) -> dict[str, nn.Module]:
        return {n: getattr(self, f"frozen_{n}") for n in self.frozen_names if hasattr(self, f"frozen_{n}")}

    def start_new_task(self) -> None:
        """Snapshot the current (= end of previous task) weights into the frozen copies."""
        super().start_new_task()
        for name, frozen in self.frozen_modules().items():
            frozen.load_state_dict(getattr(self, name).state_dict())

    def learnable_params(self) -> list[dict]:
        if self.distiller is None:  # task 0: nothing to distil, nothing to optimise
            return super().learnable_params()
        return super().learnable_params() + self.distiller.param_groups()

    def _apply_frozen_bn_mode(self) -> None:
        if self.hparams.distill_bn_eval:
            for frozen in self.frozen_modules().values():
                frozen.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self._apply_frozen_bn_mode()
        return self

    def on_train_epoch_start(self) -> None:
        # Lightning 2 does not call .train() at fit start, so enforce the mode here too.
        super().on_train_epoch_start()
        self._apply_frozen_bn_mode()

    def ssl_step(self, views, targets) -> StepOutput:
        out = super().ssl_step(views, targets)
        if not self.distill_active:
            return out
        # The views the method returns projections for: with multi-crop (DINO's small crops)
        # only the global crops are distilled.
        views = views[: len(out.z)]
        with torch.no_grad():
            z_bar = [self.frozen_projector(self.frozen_backbone(v)) for v in views]
        p = [self.distiller.predictor(z) for z in out.z]
        distill_loss = self.distiller.loss(p, z_bar, self.frozen_modules())
        out.loss = out.loss + self.distiller.lamb * distill_loss
        out.logs["distill_loss"] = distill_loss.detach()
        return out


def make_distill_wrapper(distillers: dict[str, type[Distiller]]):
    def distill_wrapper(method_cls: type[BaseMethod], name: str) -> type[BaseMethod]:
        """The CaSSLe version of `method_cls` with the distiller `name`."""
        if name not in distillers:
            raise ValueError(f"unknown distiller {name!r}; valid distillers: {', '.join(distillers)}")
        mixin = getattr(distillers[name], "mixin", None) or DistillMixin  # PNR's own seam
        return type(
            f"{method_cls.__name__}CaSSLe_{name}",
            (mixin, method_cls),
            {"distiller_cls": distillers[name], "__module__": __name__},
        )

    return distill_wrapper
