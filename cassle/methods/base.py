"""BaseMethod: what every SSL method shares.

The backbone, the online linear classifier (trained on detached features, so it monitors the
representation without shaping it), the optimiser with bias/norm exclusion and lr scaling, and the
schedule (per epoch like the reference, or per step). A method only builds its heads and writes
`ssl_step`.

Learning rates (the reference's rule): only `--lr` is per 256 images and scaled by
batch_size x devices / 256. A parameter group with its own "lr" (the online classifier's
`--classifier_lr`) keeps it as given; a group may instead carry "lr_factor", a multiple of the
scaled `--lr` (the predictive distiller's predictor: 1 / distill_lamb).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn as nn
import torch.nn.functional as F

from cassle.backbones import BACKBONES, build_backbone, vit_kwargs
from cassle.eval.knn import KNNMonitor
from cassle.methods.recipe import add_recipe_args, apply_backbone_recipe, backbone_recipe, step_weight_decay
from cassle.utils.lars import LARS, exclude_bias_and_norm_param_groups
from cassle.utils.schedulers import INTERVALS, SCHEDULERS, build_scheduler
from cassle.utils.wd_schedule import mark_default_groups, settle_marks

OPTIMIZERS = ("sgd", "lars", "adam", "adamw")
# Multi-process loss semantics (cassle.losses): "local" = the reference's (each process's batch),
# "global" = exact loss of the concatenated batch (opt-in).
DISTRIBUTED_LOSSES = ("local", "global")
# Datasets with small images use the CIFAR stem (3x3 stride-1 conv, no max-pool).
SMALL_IMAGE_DATASETS = ("cifar10", "cifar100", "digits", "synthetic")


@dataclass
class StepOutput:
    """What `ssl_step` returns: the contract between a method and the distillation mixin."""

    loss: torch.Tensor  # scalar SSL loss
    feats: list[torch.Tensor]  # backbone features per view, (B, F), not detached
    z: list[torch.Tensor]  # projector outputs per view, (B, D), what the distillers work on
    #                        (MoCoV2+: L2-normalised, as in the reference)
    logs: dict[str, torch.Tensor] = field(default_factory=dict)
    # momentum-encoder features per view (no grad), for methods that have one (--momentum_classifier)
    momentum_feats: list[torch.Tensor] | None = None
    # method internals a distiller may need (MoCoV2+: its keys "k" and the queue "queue" as it was
    # before this step's enqueue, for PNR's pseudo-negatives)
    extras: dict = field(default_factory=dict)


class BaseMethod(pl.LightningModule):
    def __init__(self, **kwargs: Any):
        super().__init__()
        self.save_hyperparameters()
        args = self.hparams
        if args.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {args.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        if args.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {args.scheduler!r}; valid: {', '.join(SCHEDULERS)}")
        if args.distributed_loss not in DISTRIBUTED_LOSSES:
            raise ValueError(
                f"unknown --distributed_loss {args.distributed_loss!r}; valid: {', '.join(DISTRIBUTED_LOSSES)}"
            )
        if args.scheduler_interval not in INTERVALS:
            raise ValueError(f"unknown --scheduler_interval {args.scheduler_interval!r}; valid: {', '.join(INTERVALS)}")
        if args.scheduler_interval == "step" and "step" not in SCHEDULERS[args.scheduler]:
            raise ValueError(
                f"--scheduler_interval step applies to warmup_cosine and cosine, not "
                f"--scheduler {args.scheduler} (which steps per epoch)"
            )
        if (
            args.scheduler == "warmup_cosine"
            and args.scheduler_interval == "epoch"
            and args.warmup_epochs != int(args.warmup_epochs)
        ):
            raise ValueError(
                f"--warmup_epochs {args.warmup_epochs} is not a whole number of epochs: "
                "a per-epoch schedule needs one (or use --scheduler_interval step)"
            )
        cifar_stem = args.cifar_stem if args.cifar_stem is not None else (args.dataset in SMALL_IMAGE_DATASETS)
        self.backbone, self.features_dim = build_backbone(
            args.backbone,
            cifar=cifar_stem,
            zero_init_residual=args.zero_init_residual,
            **vit_kwargs(
                args.backbone,
                args.get("crop_size"),
                args.get("patch_size"),
                small_images=args.dataset in SMALL_IMAGE_DATASETS,
            ),
            **backbone_recipe(args),
        )
        apply_backbone_recipe(self)  # --freeze_patch_embed, flag checks (recipe.py)
        self.classifier = nn.Linear(self.features_dim, args.num_classes)
        self._nonfinite_loss: torch.Tensor | None = None
        self.channels_last = False  # set by the runner on GPUs; see _memory_format
        # Optional online weighted-kNN monitor on backbone features (train views vs val images).
        self.knn = (
            KNNMonitor(args.num_classes, k=args.knn_k, T=args.knn_temperature, distance=args.knn_distance[0])
            if args.knn_eval
            else None
        )

    # ----------------------------------------------------------------- arguments
    @staticmethod
    def add_model_specific_args(parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("backbone and optimisation")
        group.add_argument("--backbone", "--encoder", dest="backbone", default="resnet18", choices=list(BACKBONES))
        group.add_argument(
            "--cifar_stem",
            type=lambda s: s.lower() in ("1", "true", "yes"),
            default=None,
            help="3x3 stride-1 stem (default: on for small images)",
        )
        group.add_argument("--zero_init_residual", action="store_true")
        group.add_argument(
            "--patch_size",
            type=int,
            default=None,
            help="ViT patch size (default: 4 for crops up to 64 px, as solo-learn's "
            "CIFAR ViT; 16 above); the position embeddings fit the crop",
        )
        group.add_argument("--optimizer", default="sgd", help=f"one of {', '.join(OPTIMIZERS)}")
        group.add_argument(
            "--lars", action="store_true", help="reference spelling of --optimizer lars (SGD wrapped in LARS)"
        )
        group.add_argument("--lr", type=float, default=0.3, help="per 256 images: scaled by batch_size x devices / 256")
        group.add_argument(
            "--classifier_lr",
            type=float,
            default=0.3,
            help="online classifier lr, used as given (not scaled, like the reference), no weight decay",
        )
        group.add_argument("--weight_decay", type=float, default=1e-4)
        add_recipe_args(group)  # --weight_decay_end, --drop_path_rate, --freeze_patch_embed
        group.add_argument("--momentum", type=float, default=0.9, help="SGD/LARS momentum")
        group.add_argument("--eta_lars", type=float, default=1e-3, help="LARS trust coefficient")
        group.add_argument(
            "--grad_clip_lars", action="store_true", help="clip the LARS trust ratio at 1 (relative to the lr)"
        )
        group.add_argument(
            "--exclude_bias_n_norm",
            action="store_true",
            help="no weight decay or LARS adaptation for biases and norm layers",
        )
        group.add_argument(
            "--distributed_loss",
            default="local",
            choices=list(DISTRIBUTED_LOSSES),
            help="on several GPUs: local = each process's batch (the reference: "
            "SimCLR/SupCon, VICReg local; Barlow averages only its "
            "correlation matrix); global = exact loss of the whole batch",
        )
        group.add_argument("--scheduler", default="warmup_cosine", help=f"one of {', '.join(SCHEDULERS)}")
        group.add_argument(
            "--scheduler_interval",
            default="epoch",
            choices=list(INTERVALS),
            help="epoch: warmup_cosine / cosine step once per epoch (the "
            "reference); step: once per optimizer step (smoother, opt-in)",
        )
        group.add_argument("--warmup_epochs", type=float, default=10)
        group.add_argument("--warmup_start_lr", type=float, default=0.003)
        group.add_argument("--min_lr", type=float, default=0.0)
        group.add_argument(
            "--lr_decay_steps", type=int, nargs="+", default=None, help="epochs of the x0.1 steps (step scheduler)"
        )
        group.add_argument("--scheduler_gamma", type=float, default=0.1)
        knn = parser.add_argument_group("online kNN monitor")
        knn.add_argument(
            "--knn_eval", action="store_true", help="weighted kNN accuracy at each validation (val/knn_acc)"
        )
        knn.add_argument("--knn_k", type=int, default=20)
        knn.add_argument("--knn_temperature", type=float, default=0.07)
        knn.add_argument("--knn_distance", nargs="+", default=["cosine", "euclidean"], choices=["cosine", "euclidean"])

    @property
    def global_batch_loss(self) -> bool:
        """True with --distributed_loss global (the losses' `global_batch` argument)."""
        return self.hparams.distributed_loss == "global"

    # ----------------------------------------------------------------- parameters
    def learnable_params(self) -> list[dict]:
        """Parameter groups; methods append their heads, the mixin its predictor."""
        return [
            {"name": "backbone", "params": [p for p in self.backbone.parameters() if p.requires_grad]},
            {
                "name": "classifier",
                "params": list(self.classifier.parameters()),
                "lr": self.hparams.classifier_lr,
                "weight_decay": 0.0,
            },
        ]

    def configure_optimizers(self):
        args = self.hparams
        # Only --lr is per 256 images and scaled to the total batch (reference rule, module doc).
        lr = args.lr * args.batch_size * self.trainer.world_size / 256
        groups = self.learnable_params()
        mark_default_groups(groups)  # the groups --weight_decay_end schedules (wd_schedule.py)
        for group in groups:
            factor = group.pop("lr_factor", 1.0)
            if "lr" not in group:
                group["lr"] = lr * factor
            group.setdefault("weight_decay", args.weight_decay)
        seen = set()
        for group in groups:  # a parameter in two groups would be stepped twice
            ids = {id(p) for p in group["params"]}
            if ids & seen:
                raise RuntimeError(f"parameter group {group['name']!r} repeats parameters")
            seen |= ids
        if args.exclude_bias_n_norm:  # biases and norm parameters: no weight decay, no LARS
            groups = [
                split
                for g in groups
                for split in exclude_bias_and_norm_param_groups(
                    g["params"],
                    g["weight_decay"],
                    **{k: v for k, v in g.items() if k not in ("params", "weight_decay")},
                )
            ]
            for g in groups:  # group names must stay unique (LearningRateMonitor keys)
                if g.get("exclude_from_lars"):
                    g["name"] += "_bias_norm"
        settle_marks(groups)
        name = "lars" if args.lars else args.optimizer
        if name == "sgd":
            opt = torch.optim.SGD(groups, lr=lr, momentum=args.momentum, weight_decay=args.weight_decay)
        elif name == "lars":
            opt = LARS(
                groups,
                lr=lr,
                momentum=args.momentum,
                weight_decay=args.weight_decay,
                eta=args.eta_lars,
                clip_lr=args.grad_clip_lars,
            )
        elif name == "adam":
            opt = torch.optim.Adam(groups, lr=lr, weight_decay=args.weight_decay)
        else:
            opt = torch.optim.AdamW(groups, lr=lr, weight_decay=args.weight_decay)
        if args.scheduler == "none":
            return opt
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        steps_per_epoch = max(1, total_steps // max(1, self.trainer.max_epochs))
        scheduler, interval = build_scheduler(
            args.scheduler,
            opt,
            steps_per_epoch=steps_per_epoch,
            max_epochs=self.trainer.max_epochs,
            warmup_epochs=args.warmup_epochs,
            warmup_start_lr=args.warmup_start_lr,
            min_lr=args.min_lr,
            lr_decay_steps=args.lr_decay_steps,
            gamma=args.scheduler_gamma,
            interval=args.scheduler_interval,
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}

    # ----------------------------------------------------------------- steps
    def ssl_step(self, views: list[torch.Tensor], targets: torch.Tensor) -> StepOutput:
        raise TypeError(f"{type(self).__name__} must define ssl_step(views, targets)")

    def project(self, feats: torch.Tensor) -> torch.Tensor:
        """What ``ssl_step`` returns as ``z`` for backbone features ``feats`` (DER's projector target)."""
        return self.projector(feats)

    def start_new_task(self) -> None:
        """Called before training a task from scratch (not on a mid-task resume)."""

    def _memory_format(self, x: torch.Tensor) -> torch.Tensor:
        # Batches are prepared by the datamodule (whose on_after_batch_transfer Lightning calls
        # instead of ours), so the channels_last conversion happens here.
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.backbone(x)
        return {"feats": feats, "logits": self.classifier(feats.detach())}

    def training_step(self, batch, batch_idx):
        # With --online_eval_batch_size the loader also yields labelled images of the whole
        # training set (all classes): the reference's CIFAR protocol trains the online
        # classifier on those, not on the current task's classes only.
        online_eval = batch.get("online_eval") if isinstance(batch, dict) else None
        _, views, targets = batch["ssl"] if isinstance(batch, dict) else batch
        views = [self._memory_format(v) for v in views]
        out = self.ssl_step(views, targets)
        self._watch_loss(out.loss)
        if online_eval is not None:
            x, labels = online_eval
            with torch.no_grad():
                class_inputs = [(self.backbone(self._memory_format(x)), labels)]
        else:
            class_inputs = [(feats, targets) for feats in out.feats]
        # Online classifier on detached features: it never changes the backbone.
        class_losses, accs = [], []
        for feats, labels in class_inputs:
            logits = self.classifier(feats.detach())
            class_losses.append(F.cross_entropy(logits, labels))
            accs.append((logits.argmax(1) == labels).float().mean() * 100)
        class_loss = torch.stack(class_losses).mean()
        if self.knn is not None:
            self.knn.update("train", out.feats[0].detach(), targets)
        loss = out.loss + class_loss
        # batch_size given: Lightning cannot infer it from the (indexes, views, targets) batch.
        batch_size = targets.shape[0]
        monitor_loss = self.monitor_loss(views, targets, out, online_eval)
        if monitor_loss is not None:
            loss = loss + monitor_loss
        self.log_dict(
            {
                "train/ssl_loss": out.loss,
                "train/class_loss": class_loss,
                "train/online_acc": torch.stack(accs).mean(),
                **{f"train/{k}": v for k, v in out.logs.items()},
            },
            on_epoch=True,
            on_step=False,
            sync_dist=True,
            batch_size=batch_size,
        )
        # Not on the progress bar per step: Lightning reads every step-level bar value with
        # .item() after every batch (bar or no bar), a GPU sync per step. The epoch mean is on
        # the bar instead; the step value still reaches the loggers every log_every_n_steps.
        self.log("train/loss", loss, on_step=True, on_epoch=False, batch_size=batch_size)
        self.log(
            "train/loss_epoch", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=batch_size
        )
        return loss

    def monitor_loss(self, views, targets, out: StepOutput, online_eval) -> torch.Tensor | None:
        """Loss of extra monitoring heads on detached features (none here; see BaseMomentumMethod)."""
        return None

    # A NaN check per step would force a GPU sync per step; instead, accumulate a device flag and
    # read it every NAN_CHECK_EVERY steps and before every checkpoint (AtomicLastCheckpoint).
    NAN_CHECK_EVERY = 50

    def _watch_loss(self, loss: torch.Tensor) -> None:
        bad = ~torch.isfinite(loss.detach())
        self._nonfinite_loss = bad if self._nonfinite_loss is None else self._nonfinite_loss | bad
        if self.global_step % self.NAN_CHECK_EVERY == 0:
            self.check_finite_loss()

    def check_finite_loss(self) -> None:
        if self._nonfinite_loss is not None and bool(self._nonfinite_loss):
            raise FloatingPointError(
                f"non-finite SSL loss in epoch {self.current_epoch} (by step {self.global_step}); "
                "lower --lr or check the data. The last checkpoint is left untouched."
            )

    def validation_step(self, batch, batch_idx):
        x, targets = batch
        feats = self.backbone(self._memory_format(x))
        logits = self.classifier(feats)
        loss = F.cross_entropy(logits, targets)
        acc = (logits.argmax(1) == targets).float().mean() * 100
        self.log_dict({"val/loss": loss, "val/acc1": acc}, prog_bar=True, sync_dist=True, batch_size=targets.shape[0])
        if self.knn is not None:
            self.knn.update("test", feats.detach(), targets)
        return loss

    def on_train_batch_start(self, batch, batch_idx) -> None:
        step_weight_decay(self)  # --weight_decay_end: DINO's schedule, a function of the step

    def on_train_epoch_start(self) -> None:
        if self.knn is not None:
            self.knn.reset()  # the train bank holds the features of the latest epoch only

    def on_validation_epoch_end(self) -> None:
        if self.knn is not None and self.knn.has("train") and self.knn.has("test"):
            for distance in self.hparams.knn_distance:
                self.log(f"val/knn_acc_{distance}", self.knn.compute(distance), sync_dist=False)
        if self.knn is not None:
            self.knn.clear("test")


def mlp(
    in_dim: int, hidden_dim: int, out_dim: int, *, layers: int = 2, bn: bool = True, last_bn: bool = False
) -> nn.Sequential:
    """Lin-(BN)-ReLU-...-Lin projector; `layers` counts the linear layers."""
    modules: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers - 1):
        modules.append(nn.Linear(dim, hidden_dim))
        if bn:
            modules.append(nn.BatchNorm1d(hidden_dim))
        modules.append(nn.ReLU(inplace=True))
        dim = hidden_dim
    modules.append(nn.Linear(dim, out_dim))
    if last_bn:
        modules.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*modules)
