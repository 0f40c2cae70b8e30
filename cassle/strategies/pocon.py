"""POCON (Gomez-Villa, Twardowski, Wang, van de Weijer, WACV 2024, arXiv 2309.06086): per task, a
plastic expert learns the task alone, then the main network absorbs it (``--pocon``).

Paper section 3 ("Plasticity-Optimized Complementary Networks"), as the public code runs it
(alviur/pocon_wacv2024: ``src/approach/copyOPscratch.py`` ``Appr.train`` = the task loop,
``src/approach/sslModels.py`` ``BarlowTwins`` = the losses and optimisers,
``src/tests/wacv.py`` = the CIFAR-100 command). One task t of this repo is one Lightning fit of
``--max_epochs`` epochs in two phases, chosen by the epoch (so the phase is in every checkpoint):

1. expert phase, epochs [0, E) with E = ``--pocon_expert_epochs``: the expert E_t (its own
   backbone) is trained with the method's SSL objective through the method's projector (Barlow
   Twins in the paper; the code's ``projector`` is never re-initialised, so neither is ours). The
   main network F is untouched (no gradient).
2. merge ("adaptation-retrospection") phase, epochs [E, max_epochs): F_t is trained, E_t frozen
   (BatchNorm in eval mode, ``set_bn_eval``), with only
       L = lambda_exp * sum_v ||n(g_exp(F_t(x_v))) - n(E_t(x_v))||_F
         + lambda_ret * sum_v ||n(g_ret(F_t(x_v))) - n(F_{t-1}(x_v))||_F     (t > 0)
   (``cassle.losses.pocon``); F_{t-1} = F as it ended task t-1, frozen, BatchNorm in eval mode.
   g_exp (``projectorExp``) is built afresh for every merge phase; g_ret (``projectorRet``) is built
   once at task 0 and carried over from task to task, as in the code.
3. the next task's expert starts as a copy of the main network (``expertBackbone =
   deepcopy(backbone)`` at the end of ``Appr.train``). At task 0 both networks start from their
   own random initialisation: the expert is trained first, then F learns from it (adaptation only).

The code runs 500 expert + 250 merge epochs at tasks > 0 but 500 + 500 at task 0; here every task
has the same schedule (the launcher plans one ``--max_epochs``): README, differences. Its optimiser
is rebuilt per phase (SGD lr 0.01, momentum 0.9, weight decay 5e-4, no schedule); here one
optimiser holds both phases' parameters, which never share a step (a parameter without a gradient
is skipped by SGD, momentum and weight decay included), so with ``--scheduler none`` the two are
the same. Cost: the expert phase is a plain SSL step of the expert; a merge step is one
forward-backward of F per view plus no-grad forwards of E_t and (t > 0) F_{t-1}; memory: one more
backbone (the expert) and from task 1 the frozen F_{t-1}, plus the two projectors.

Under DDP the idle phase's parameters get no gradient, so the runner builds DDP with
``find_unused_parameters=True`` for POCON (``main_continual.build_lightning_strategy``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy

import torch
from torch import nn

from cassle.backbones import build_backbone, vit_kwargs
from cassle.losses.pocon import pocon_merge_loss
from cassle.methods.base import SMALL_IMAGE_DATASETS, StepOutput

# Methods whose step reads only backbone + projector (the expert can stand in for the backbone);
# the code's own choices are Barlow Twins and VICReg (its MoCo v2 has a momentum encoder).
SUPPORTED = ("barlow_twins", "vicreg", "simclr")
CHECKPOINT_KEY = "pocon"
PROGRESS_RECORD = "cassle_progress"


def add_pocon_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("POCON (--pocon: expert phase, then merge phase, in every task)")
    g.add_argument(
        "--pocon",
        action="store_true",
        help="POCON (Gomez-Villa et al., WACV 2024): train an expert on the task, then merge it into "
        "the main network; replaces --distiller / --cl_strategy",
    )
    g.add_argument(
        "--pocon_expert_epochs",
        type=int,
        default=None,
        help="epochs of the expert phase; the other --max_epochs - E epochs merge (default: 2/3 of "
        "--max_epochs, the code's 500 expert : 250 merge epochs of tasks > 0)",
    )
    g.add_argument(
        "--pocon_adapt_lamb",
        type=float,
        default=1.0,
        help="lambda_exp of the expert-to-main term (alviur/pocon_wacv2024 --lambdaExp 1.0)",
    )
    g.add_argument(
        "--pocon_retro_lamb",
        type=float,
        default=25.0,
        help="lambda_ret of the old-main-to-main term (src/tests/wacv.py --lambdapRet 25)",
    )
    g.add_argument(
        "--pocon_adapt_proj",
        type=int,
        choices=(0, 1, 2, 3),
        default=3,
        help="g_exp, the code's prediction_mlp(kind): 0 linear, 1/2 one/two hidden d/2 layers, "
        "3 d-2d-d-2d-d (SimReg's); wacv.py --linearProj 3",
    )
    g.add_argument(
        "--pocon_retro_proj",
        type=int,
        choices=(0, 1, 2, 3),
        default=0,
        help="g_ret, same kinds (the code's --linearProjRet default 0: linear)",
    )


def check_pocon_args(args) -> None:
    """Bad input before anything is written; resolves the default --pocon_expert_epochs."""
    if not getattr(args, "pocon", False):
        return
    if args.method not in SUPPORTED:
        raise ValueError(
            f"--pocon trains the expert with the method's step on a swapped backbone; --method "
            f"{args.method} is not supported (supported: {', '.join(SUPPORTED)})"
        )
    if args.distiller or args.cl_strategy:
        raise ValueError("--pocon replaces CaSSLe's --distiller and --cl_strategy: give none of them with it")
    if args.max_epochs is None or args.max_epochs < 2:
        raise ValueError(f"--pocon needs --max_epochs >= 2 (an expert and a merge epoch), got {args.max_epochs}")
    if args.pocon_expert_epochs is None:
        args.pocon_expert_epochs = default_expert_epochs(args.max_epochs)
    if not 0 < args.pocon_expert_epochs < args.max_epochs:
        raise ValueError(
            f"--pocon_expert_epochs {args.pocon_expert_epochs} must leave expert and merge epochs "
            f"within --max_epochs {args.max_epochs} (1 .. {args.max_epochs - 1})"
        )
    if args.task_idx > 0 and not args.pretrained_model and not args.resume_from_checkpoint:
        raise ValueError(
            f"task {args.task_idx} with --pocon needs --pretrained_model: the previous task's final "
            "checkpoint (its main network is F_(t-1) and the new expert's start)"
        )


def default_expert_epochs(max_epochs: int) -> int:
    """2/3 of the task (the code's 500 expert : 250 merge epochs), at least one epoch of each."""
    return min(max(1, round(2 * max_epochs / 3)), max_epochs - 1)


def check_pocon_resume(ckpt: dict, path: str, args) -> None:
    """A resume keeps the phase boundary: the same --pocon_expert_epochs and --max_epochs."""
    record = ckpt.get(CHECKPOINT_KEY)
    if not getattr(args, "pocon", False):
        if record is not None:
            raise ValueError(f"{path} is a POCON checkpoint: resume it with --pocon")
        return
    if record is None:
        raise ValueError(f"{path} was not written by a --pocon run; it cannot resume one")
    ours = {"expert_epochs": args.pocon_expert_epochs, "max_epochs": args.max_epochs}
    theirs = {k: record.get(k) for k in ours}
    if theirs != ours:
        raise ValueError(
            f"cannot resume {path}: its POCON phases were {theirs}, this run asks for {ours} "
            "(--pocon_expert_epochs / --max_epochs)"
        )


def prediction_mlp(dim: int, kind: int) -> nn.Sequential:
    """The code's ``utilsProj.prediction_mlp(dim, dim // 2, kind)`` (d -> d)."""
    h, d2 = dim // 2, 2 * dim
    if kind == 0:
        return nn.Sequential(nn.Linear(dim, dim))
    if kind == 1:
        return nn.Sequential(nn.Linear(dim, h, bias=False), nn.BatchNorm1d(h), nn.ReLU(inplace=True), nn.Linear(h, dim))
    if kind == 2:
        return nn.Sequential(
            *(nn.Linear(dim, h, bias=False), nn.BatchNorm1d(h), nn.ReLU(inplace=True)),
            *(nn.Linear(h, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True)),
            nn.Linear(h, dim),
        )
    if kind == 3:
        return nn.Sequential(
            *(nn.Linear(dim, d2, bias=False), nn.BatchNorm1d(d2), nn.ReLU(inplace=True)),
            *(nn.Linear(d2, dim), nn.BatchNorm1d(dim), nn.ReLU(inplace=True)),
            *(nn.Linear(dim, d2), nn.BatchNorm1d(d2), nn.ReLU(inplace=True)),
            nn.Linear(d2, dim),
        )
    raise ValueError(f"POCON projector kind {kind}: valid 0, 1, 2, 3")


def build_like_backbone(hp) -> nn.Module:
    """A freshly initialised network of the main backbone's architecture (BaseMethod's build)."""
    cifar_stem = hp.cifar_stem if hp.cifar_stem is not None else (hp.dataset in SMALL_IMAGE_DATASETS)
    net, _ = build_backbone(
        hp.backbone,
        cifar=cifar_stem,
        zero_init_residual=hp.zero_init_residual,
        **vit_kwargs(
            hp.backbone, hp.get("crop_size"), hp.get("patch_size"), small_images=hp.dataset in SMALL_IMAGE_DATASETS
        ),
    )
    return net


class PoconMixin:
    """Mixed in before a method class by ``pocon_wrapper``: the two phases of a task (module doc)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        hp = self.hparams
        self.pocon_task = int(hp.task_idx)
        given = hp.pocon_expert_epochs
        self.pocon_expert_epochs = int(given) if given is not None else default_expert_epochs(hp.max_epochs)
        d = self.features_dim
        self.pocon = nn.ModuleDict(
            {
                "expert": build_like_backbone(hp),  # task 0: its own random start, as the code's
                "adapt_proj": prediction_mlp(d, hp.pocon_adapt_proj),
                "retro_proj": prediction_mlp(d, hp.pocon_retro_proj),
            }
        )
        if self.pocon_task > 0:  # F_(t-1): filled by start_new_task, or restored by a resume
            self.frozen_backbone = copy.deepcopy(self.backbone)
            for p in self.frozen_backbone.parameters():
                p.requires_grad = False

    # ----------------------------------------------------------------- task and phase
    def start_new_task(self) -> None:
        super().start_new_task()
        if self.pocon_task > 0:
            state = self.backbone.state_dict()
            self.frozen_backbone.load_state_dict(state)
            self.pocon["expert"].load_state_dict(state)  # the code: expertBackbone = deepcopy(backbone)
            # a fresh g_exp for every merge phase (the code rebuilds projectorExp before adapting)
            self.pocon["adapt_proj"] = prediction_mlp(self.features_dim, self.hparams.pocon_adapt_proj)

    def pocon_phase(self) -> str:
        return "expert" if self.current_epoch < self.pocon_expert_epochs else "merge"

    @contextlib.contextmanager
    def _expert_as_backbone(self):
        """In the expert phase the method's own step (and the online classifier) see the expert."""
        if self.pocon_phase() != "expert":
            yield
            return
        main = self._modules["backbone"]
        self._modules["backbone"] = self.pocon["expert"]
        try:
            yield
        finally:
            self._modules["backbone"] = main

    def learnable_params(self) -> list[dict]:
        return super().learnable_params() + [{"name": "pocon", "params": list(self.pocon.parameters())}]

    # ----------------------------------------------------------------- steps
    def training_step(self, batch, batch_idx):
        with self._expert_as_backbone():
            return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        with self._expert_as_backbone():  # val/acc1 follows the network being trained
            return super().validation_step(batch, batch_idx)

    def ssl_step(self, views, targets) -> StepOutput:
        if self.pocon_phase() == "expert":
            out = super().ssl_step(views, targets)  # the method's loss, on the expert
            zero = out.loss.detach().new_zeros(())
            # logged at every step of both phases (a key first logged later makes Lightning
            # allocate its accumulators from host data: a stall on GPUs)
            out.logs.update(pocon_adapt=zero, pocon_retro=zero, pocon_phase=zero)
            return out
        return self._merge_step(views)

    def _merge_step(self, views) -> StepOutput:
        expert = self.pocon["expert"].eval()  # the code's set_bn_eval on copyExpert / oldBackbone
        old_net = self.frozen_backbone.eval() if self.pocon_task > 0 else None
        feats = [self.backbone(v) for v in views]
        with torch.no_grad():
            targets_e = [expert(v) for v in views]
            old = [old_net(v) for v in views] if old_net is not None else None
        adapt_p = [self.pocon["adapt_proj"](f) for f in feats]
        retro_p = [self.pocon["retro_proj"](f) for f in feats] if old is not None else None
        hp = self.hparams
        loss, adapt, retro = pocon_merge_loss(
            adapt_p, targets_e, retro_p, old, adapt_lamb=hp.pocon_adapt_lamb, retro_lamb=hp.pocon_retro_lamb
        )
        logs = {"pocon_adapt": adapt.detach(), "pocon_retro": retro.detach(), "pocon_phase": loss.detach() * 0 + 1}
        return StepOutput(loss=loss, feats=feats, z=adapt_p, logs=logs)

    # ----------------------------------------------------------------- checkpoint
    def on_save_checkpoint(self, checkpoint) -> None:
        super().on_save_checkpoint(checkpoint)
        # the progress record AtomicLastCheckpoint put there first (cassle.continual.progress.PROGRESS_KEY;
        # named, not imported: strategies never import the continual layer)
        done = int((checkpoint.get(PROGRESS_RECORD) or {}).get("epochs_done", self.current_epoch))
        checkpoint[CHECKPOINT_KEY] = {
            "expert_epochs": self.pocon_expert_epochs,
            "max_epochs": int(self.hparams.max_epochs),
            "epochs_done": done,
            "next_phase": "expert" if done < self.pocon_expert_epochs else "merge",
        }


def pocon_wrapper(method_cls: type) -> type:
    return type(f"{method_cls.__name__}_pocon", (PoconMixin, method_cls), {"__module__": __name__})
