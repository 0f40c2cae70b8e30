"""Continual strategies beyond CaSSLe, one flag for any SSL method: ``--cl_strategy NAME [NAME]``.

The key is the CLI value. Combinations: at most one replay strategy (replay, der, derpp, lump,
cromo_mixup, osiris) with any regularisers, and any of them with a CaSSLe ``--distiller`` (e.g. ``--distiller predictive
--cl_strategy replay``, ``--cl_strategy pfr replay``).

Layer: model, above methods. One file per strategy over ``Strategy``; imports methods, losses
and data (buffers, task subsets); never continual or eval.
"""

from __future__ import annotations

import argparse

from cassle.strategies.base import Strategy, StrategyMixin, TaskEndCallback, adaptive_factor
from cassle.strategies.co2l import Co2L, add_co2l_args
from cassle.strategies.cromo_mixup import CroMoMixup, add_cromo_mixup_args
from cassle.strategies.derpp import DERPP, add_derpp_args
from cassle.strategies.ewc import EWC
from cassle.strategies.frozen import PFR, POD, LessForget
from cassle.strategies.osiris import Osiris, add_osiris_args
from cassle.strategies.replay import DER, LUMP, Replay
from cassle.strategies.si import SI, add_si_args

STRATEGIES: dict[str, type[Strategy]] = {
    "ewc": EWC,
    "replay": Replay,
    "der": DER,
    "lump": LUMP,
    "less_forget": LessForget,
    "pod": POD,
    "pfr": PFR,
    "si": SI,
    "derpp": DERPP,
    "co2l": Co2L,
    "cromo_mixup": CroMoMixup,
    "osiris": Osiris,
}


def add_strategy_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("continual strategies (--cl_strategy; --strategy is Lightning's)")
    g.add_argument(
        "--cl_strategy",
        nargs="+",
        default=None,
        metavar="NAME",
        help=f"one or more of {', '.join(STRATEGIES)}: at most one replay strategy "
        "(replay, der, derpp, lump, cromo_mixup, osiris); combinable with --distiller (CaSSLe + replay)",
    )
    g.add_argument(
        "--buffer_size",
        type=int,
        default=None,
        help="replay buffer slots (images). Default: 500 for replay/der/derpp/cromo_mixup/osiris (a buffer size "
        "of Buzzega et al. 2020's CIFAR benchmarks), 256 for lump (Madaan et al. 2022)",
    )
    g.add_argument(
        "--replay_batch_size",
        type=int,
        default=None,
        help="buffer images per step for replay/der (derpp: per draw, two draws) (default: "
        "--batch_size, as Madaan et al. 2022's SSL adaptations; cromo_mixup: 64, its --replay_bs; "
        "osiris: int(0.75 x --batch_size), its --p 0.75); "
        "lump always mixes one "
        "per current image",
    )
    g.add_argument(
        "--der_alpha",
        type=float,
        default=0.4,
        help="DER weight alpha (Buzzega et al. 2020); 0.4: Madaan et al. 2022's SSL adaptation of DER",
    )
    g.add_argument(
        "--der_target",
        choices=("backbone", "projector"),
        default="backbone",
        help="what DER stores and matches: backbone features (default: UCL, Madaan et al. "
        "2022, where alpha 0.4 was tuned) or the method's projector output z",
    )
    g.add_argument(
        "--der_views",
        choices=("ssl", "ucl"),
        default="ssl",
        help="DER's replayed views: view 1 of the method's SSL augmentation (default) or "
        "UCL's buffer transform, a RandomResizedCrop(0.08-1) + flip without colour",
    )
    g.add_argument(
        "--lump_alpha", type=float, default=0.4, help="mixup lambda ~ Beta(alpha, alpha) (Madaan et al. 2022: 0.4)"
    )
    g.add_argument(
        "--lump_views",
        choices=("ssl", "ucl"),
        default="ssl",
        help="LUMP's buffer views: two fresh views of the method's SSL augmentation "
        "(default) or UCL's (Madaan et al. 2022's code): a fresh crop + flip and the "
        "second view stored when the image was buffered",
    )
    g.add_argument(
        "--ewc_lamb",
        type=float,
        default=0.1,
        help="EWC penalty weight lambda in lambda/2 sum_i F_i (theta_i - theta*_i)^2 with the "
        "per-sample Fisher. 0.1: the largest stable value of a sweep {0.1, 1, 4, 20} on "
        "the CIFAR-100 CPU check (benchmarks/RESULTS.md; 20 = mammoth's seq-cifar10 "
        "e_lambda 10 for cross-entropy, diverges); sweep it for a new method or recipe",
    )
    g.add_argument(
        "--ewc_fisher",
        choices=("sample", "batch"),
        default="sample",
        help="EWC's Fisher: per-sample empirical Fisher mean_i (grad l_i)^2 (default, as "
        "Kirkpatrick et al. 2017 and mammoth's ewc_on) or the squared batch-mean "
        "gradient averaged over batches (this project's earlier variant, ~1/B of it)",
    )
    g.add_argument(
        "--ewc_fisher_samples",
        type=int,
        default=1024,
        help="images of the finished task for the per-sample Fisher (0: all)",
    )
    g.add_argument(
        "--ewc_fisher_batches",
        type=int,
        default=0,
        help="batches of the finished task for --ewc_fisher batch (0: all, one pass)",
    )
    g.add_argument(
        "--ewc_gamma",
        type=float,
        default=1.0,
        help="online EWC decay: F <- gamma F + F_task (Schwarz et al. 2018; mammoth's "
        "ewc_on; 1.0: the Fishers of all tasks summed, as Kirkpatrick et al. 2017 "
        "and mammoth's tuned CIFAR-10 / Tiny-ImageNet runs)",
    )
    g.add_argument(
        "--less_forget_lamb",
        type=float,
        default=5.0,
        help="lambda_base of Less-Forget (Hou et al. 2019: 5), times sqrt(old/new tasks)",
    )
    g.add_argument(
        "--less_forget_features",
        choices=("pre_relu", "post_relu"),
        default="pre_relu",
        help="Less-Forget's features: the pooled last stage before its final ReLU (LUCIR) "
        "or the backbone output after it",
    )
    g.add_argument(
        "--pod_lamb",
        type=float,
        default=3.0,
        help="POD-spatial weight (Douillard et al. 2020, CIFAR-100: 3), times "
        "sqrt(seen/task classes) = sqrt(t + 1) at task t",
    )
    g.add_argument(
        "--pod_flat_lamb",
        type=float,
        default=0.0,
        help="POD-flat weight, times sqrt(t + 1) (0: off; PODNet's CIFAR-100 config: 1)",
    )
    g.add_argument(
        "--pfr_lamb",
        type=float,
        default=1.0,
        help="PFR weight (Gomez-Villa et al. 2022 weight the term with lambda; 1.0, the "
        "weight of the CaSSLe distillers)",
    )
    g.add_argument(
        "--pfr_proj_hidden_dim",
        type=int,
        default=None,
        help="hidden width of PFR's temporal projector (default d/2, Gomez-Villa et al.)",
    )
    add_si_args(g)
    add_derpp_args(g)
    add_co2l_args(g)
    add_cromo_mixup_args(g)
    add_osiris_args(g)


def check_strategy_names(names) -> list[str]:
    """Valid, unique names with at most one replay strategy, else a ValueError naming the flag."""
    names = list(names or [])
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown --cl_strategy {unknown[0]!r}; valid strategies: {', '.join(STRATEGIES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"--cl_strategy names a strategy twice: {' '.join(names)}")
    replays = [n for n in names if STRATEGIES[n].kind == "replay"]
    if len(replays) > 1:
        raise ValueError(
            f"--cl_strategy {' '.join(replays)}: choose one replay strategy "
            "(replay, der, derpp, lump, cromo_mixup, osiris)"
        )
    return names


def validate_strategy_args(args, datamodule) -> None:
    """Bad input that needs the data: buffer vs data seen, frozen model, past images."""
    from cassle.data.buffer import can_return_past_images
    from cassle.data.datamodule import task_subset

    names = check_strategy_names(args.cl_strategy)
    if not names:
        return
    classes = [STRATEGIES[n] for n in names]
    frozen = [c.name for c in classes if c.uses_frozen(args)]
    if frozen and args.num_tasks < 2:
        raise ValueError(
            f"--cl_strategy {frozen[0]} regularises towards the previous task's frozen "
            f"model; with --num_tasks {args.num_tasks} there is none"
        )
    if frozen and args.task_idx > 0 and not args.pretrained_model and not args.resume_from_checkpoint:
        raise ValueError(
            f"task {args.task_idx} with --cl_strategy {frozen[0]} needs --pretrained_model: "
            "the previous task's final checkpoint is its frozen model"
        )
    replays = [c for c in classes if c.kind == "replay"]
    for c in replays:
        for flag in ("buffer_size", "replay_batch_size"):
            value = getattr(args, flag)
            if value is not None and value < 1:
                raise ValueError(f"--{flag} must be >= 1, got {value}")
        if not can_return_past_images(datamodule.train_full):
            raise ValueError(
                f"--cl_strategy {c.name} replays past images by index, but --dataset {args.dataset} cannot return them"
            )
        size = args.buffer_size or c.default_buffer_size
        seen = sum(
            len(task_subset(datamodule.train_full, argparse.Namespace(**{**vars(datamodule.args), "task_idx": k})))
            for k in range(args.task_idx + 1)
        )
        if size > seen:
            raise ValueError(
                f"--buffer_size {size} is larger than the {seen} training images seen up to "
                f"task {args.task_idx}; use at most {seen}"
            )
    if "lump" in names and getattr(args, "lump_views", "ssl") == "ucl":
        args.lump_view_crop = datamodule.view_settings[1]["crop_size"]  # the stored view's size
    for c in classes:  # a strategy's own flag checks (SI, DER++, Co2L, CroMo-Mixup, Osiris)
        if hasattr(c, "check_args"):
            c.check_args(args)
    if "ewc" in names and args.ewc_lamb < 0:
        raise ValueError(f"--ewc_lamb must be >= 0, got {args.ewc_lamb}")
    if "ewc" in names and not 0 <= args.ewc_gamma <= 1:
        raise ValueError(f"--ewc_gamma must be in [0, 1], got {args.ewc_gamma}")
    if "ewc" in names and args.ewc_fisher_samples < 0:
        raise ValueError(f"--ewc_fisher_samples must be >= 0, got {args.ewc_fisher_samples}")


def strategy_wrapper(method_cls: type, names, base_method: type | None = None) -> type:
    """``method_cls`` (maybe CaSSLe-wrapped) with the strategies ``names`` applied in order."""
    names = check_strategy_names(names)
    if not names:
        return method_cls
    return type(
        f"{method_cls.__name__}_{'_'.join(names)}",
        (StrategyMixin, method_cls),
        {
            "strategy_classes": tuple(STRATEGIES[n] for n in names),
            "method_cls": base_method or method_cls,
            "__module__": __name__,
        },
    )


__all__ = [
    "STRATEGIES",
    "Strategy",
    "StrategyMixin",
    "TaskEndCallback",
    "adaptive_factor",
    "add_strategy_args",
    "check_strategy_names",
    "strategy_wrapper",
    "validate_strategy_args",
]
