"""Command-line arguments of `main_continual.py`.

Flags are assembled from the parts that own them: trainer and logging flags here, data and
augmentation flags in `cassle.data.args`, optimiser flags in `BaseMethod`, method flags next to each
method, distiller flags in `cassle.distillers`, strategy flags in `cassle.strategies`. Unknown
flags are an error (argparse's `parse_args`, never `parse_known_args`), so a typo in a bash script
fails loudly.

Every switch can be turned off again (`--no-wandb`, `--no-exclude_bias_n_norm`, ...): `new_parser`
makes `action="store_true"` mean `NegatableSwitch` for the parser and all its groups, so a flag a
bash script sets can be undone after the launcher's `--`. Both `main_continual.py` and
`main_linear.py` build their parsers with it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from collections.abc import Sequence
from typing import Any

from cassle.utils.original_flags import (  # noqa: F401  (re-exported)
    ACCELERATORS,
    LIGHTNING15_DISTRIBUTED,
    ORIGINAL_NOOP_HELP,
    UNSUPPORTED_ORIGINAL_FLAGS,
    add_original_flags,
)


class NegatableSwitch(argparse.BooleanOptionalAction):
    """``--flag`` sets True, ``--no-flag`` sets False (the last one given wins); default False.

    What ``action="store_true"`` resolves to in a parser made by ``new_parser``.
    """

    def __init__(self, option_strings, dest, default=False, required=False, help=None, **kwargs):
        super().__init__(option_strings, dest, default=default, required=required, help=help, **kwargs)


def new_parser(**kwargs: Any) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` whose ``store_true`` switches all get a ``--no-`` form.

    The action registry is shared by the parser's argument groups, so flags added by any part
    (methods, distillers, data) through ``parser`` or ``parser.add_argument_group`` are covered.
    """
    parser = argparse.ArgumentParser(**kwargs)
    parser.register("action", "store_true", NegatableSwitch)
    return parser


def module_available(name: str) -> bool:
    """True when ``name`` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a missing parent package, or a half-set-up module
        return False


WANDB_MISSING = (
    "--wandb asks for Weights & Biases logging, but the wandb package is not installed "
    "here; install it (pip install wandb) or turn it off with --no-wandb (through the "
    "launcher: job_launcher.py --script S -- --no-wandb)"
)


def wandb_missing(wants_wandb: bool) -> bool:
    """True when ``--wandb`` is asked for on a machine without wandb (the launcher checks it too)."""
    return bool(wants_wandb) and not module_available("wandb")


def check_wandb(parser: argparse.ArgumentParser, opts: argparse.Namespace) -> None:
    """``--wandb`` on a machine without wandb fails now, before any training, naming the way out."""
    if wandb_missing(getattr(opts, "wandb", False)):
        parser.error(WANDB_MISSING)


def add_trainer_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("trainer")
    group.add_argument("--name", default="run", help="run name (wandb, CSV logs)")
    group.add_argument(
        "--checkpoint_dir", default="trained_models", help="folder receiving last.ckpt and args.json of this task"
    )
    group.add_argument(
        "--pretrained_model",
        default=None,
        help="checkpoint of the previous task: weights to start from (and the frozen model of the distiller)",
    )
    group.add_argument(
        "--resume_from_checkpoint", default=None, help="resume this task (optimizer, schedule, epoch) from a checkpoint"
    )
    group.add_argument(
        "--trust_checkpoint",
        action="store_true",
        help="unpickle --pretrained_model / --resume_from_checkpoint fully, running "
        "any code they carry: only for files whose origin you know (default: "
        "data only, see README)",
    )
    group.add_argument(
        "--max_epochs",
        type=int,
        default=1000,
        help="epochs per task (default: Lightning 1.5's, which the reference used)",
    )
    group.add_argument("--max_steps", type=int, default=-1, help="stop a task early (smoke runs)")
    group.add_argument(
        "--cpu_threads",
        type=int,
        default=0,
        help="torch intra-op threads of a CPU run (0: torch's default, one per core); "
        "1 per run when runs share the cores (cassle/utils/cpu_threads.py)",
    )
    group.add_argument("--limit_train_batches", type=float, default=None)
    group.add_argument("--limit_val_batches", type=float, default=None)
    group.add_argument(
        "--accelerator", default="auto", help="cpu, gpu, auto (the last of --gpus / --accelerator / --devices wins)"
    )
    group.add_argument("--devices", default="auto", help="number of devices, GPU ids (0,1), or auto")
    group.add_argument("--gpus", default=None, help="the original's spelling: comma-separated GPU ids (--gpus 0,1)")
    group.add_argument("--num_nodes", type=int, default=1)
    group.add_argument("--strategy", default="auto", help="Lightning strategy; ddp when devices > 1")
    group.add_argument(
        "--sync_batchnorm",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="SyncBatchNorm across GPUs (--no-sync_batchnorm to undo a script)",
    )
    group.add_argument(
        "--ddp_broadcast_buffers",
        action="store_true",
        help="DDP copies rank 0's buffers to every rank before each forward, as "
        "the reference (Lightning's default) did: SwAV's per-process queue "
        "becomes rank 0's, MoCo's queue is re-sent every step. Default: each "
        "rank keeps its own buffers",
    )
    group.add_argument(
        "--precision",
        default="auto",
        help="auto = bf16-mixed on GPUs that support it, else 32; or 32, 16-mixed, bf16-mixed (16 is read as 16-mixed)",
    )
    group.add_argument(
        "--channels_last",
        default="auto",
        choices=["auto", "on", "off"],
        help="channels_last memory format (auto: on for GPUs)",
    )
    group.add_argument("--seed", type=int, default=5)
    group.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic kernels where they exist, a warning where not (exact "
        "resume on CPU); also turns cudnn.benchmark off",
    )
    group.add_argument(
        "--online_eval_batch_size",
        type=int,
        default=None,
        help="train the online classifier on labelled batches of this size drawn "
        "from the whole training set (all tasks' classes), augmented as set by "
        "--online_eval_transform: the reference's CIFAR protocol. Default: on "
        "the current task's SSL batches (the reference trained no classifier)",
    )
    group.add_argument("--check_val_every_n_epoch", type=int, default=1)
    group.add_argument("--log_every_n_steps", type=int, default=50)
    group.add_argument("--num_sanity_val_steps", type=int, default=0)
    group.add_argument("--no_progress_bar", action="store_true")
    group.add_argument(
        "--save_checkpoint",
        action="store_true",
        help="accepted for the reference's scripts; checkpoints are always saved",
    )
    group.add_argument("--auto_resume", action="store_true", help=argparse.SUPPRESS)
    logging = parser.add_argument_group("logging")
    logging.add_argument("--wandb", action="store_true", help="log to Weights & Biases")
    logging.add_argument(
        "--wandb_online", action="store_true", help="sync wandb online (default: offline, sync later with `wandb sync`)"
    )
    logging.add_argument("--project", default="cassle")
    logging.add_argument("--entity", default=None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The full parser for the method (and distiller) named in argv."""
    from cassle.data.args import add_augmentation_args, add_data_args
    from cassle.distillers import DISTILLERS, add_distiller_args
    from cassle.methods import METHODS
    from cassle.strategies import add_strategy_args
    from cassle.strategies.pocon import add_pocon_args

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method")
    pre.add_argument("--distiller")
    known, _ = pre.parse_known_args(argv)
    if known.method is None:
        raise SystemExit(f"error: --method is required; valid methods: {', '.join(METHODS)}")
    if known.method not in METHODS:
        raise SystemExit(f"error: unknown method {known.method!r}; valid methods: {', '.join(METHODS)}")
    if known.distiller is not None and known.distiller not in DISTILLERS:
        raise SystemExit(f"error: unknown distiller {known.distiller!r}; valid distillers: {', '.join(DISTILLERS)}")

    parser = new_parser(description="Train one task of a continual SSL sequence.")
    parser.add_argument("--method", required=True, choices=list(METHODS))
    add_trainer_args(parser)
    add_data_args(parser)
    add_augmentation_args(parser)
    METHODS[known.method].add_model_specific_args(parser)
    add_distiller_args(parser)
    add_strategy_args(parser)
    add_pocon_args(parser)
    add_original_flags(parser)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    import sys

    from cassle.strategies import check_strategy_names

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        check_strategy_names(args.cl_strategy)
    except ValueError as err:
        parser.error(str(err))
    check_wandb(parser, args)
    resolve_devices(args, argv, parser)
    if args.debug_augmentations:
        from cassle.data.args import VIEW_SPECS

        print("augmentations per view: " + ", ".join(f"{k}={getattr(args, k)}" for k in VIEW_SPECS), flush=True)
    if str(args.precision) == "16":
        args.precision = "16-mixed"
    from cassle.data.args import resolve_task_count

    try:  # --num_tasks follows --domains (domain split); a contradicting value is an error
        resolve_task_count(args)
    except ValueError as err:
        parser.error(str(err))
    return args


def save_args(args: argparse.Namespace, path: str) -> None:
    """Write the resolved arguments as JSON (atomically: tmp file + rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"  # DDP ranks started together (SLURM) each write it
    with open(tmp, "w") as f:
        json.dump(vars(args), f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- the original code's flags


def _flag_values(argv: Sequence[str], flags: Sequence[str]) -> list[tuple[str, str]]:
    """``(flag, value)`` for every occurrence of one of ``flags`` in argv, in order."""
    found = []
    for i, token in enumerate(argv):
        name, eq, value = str(token).partition("=")
        if name in flags:
            if not eq:
                value = argv[i + 1] if i + 1 < len(argv) else ""
            found.append((name, value))
    return found


def _devices_value(text: str):
    text = str(text).strip()
    if text == "auto":
        return text
    if "," in text:
        return [int(t) for t in text.split(",") if t.strip()]
    return int(text)


def resolve_devices(args: argparse.Namespace, argv: Sequence[str], parser: argparse.ArgumentParser) -> None:
    """``--gpus`` / ``--accelerator`` / ``--devices``: the last one given wins, as for any flag.

    ``--gpus 0,1`` (the original's Lightning 1.5 spelling) means GPUs with ids 0 and 1; a later
    ``--accelerator cpu`` replaces it (and its ids), a later ``--devices N`` sets the count.
    ``--accelerator ddp`` (Lightning 1.5: a strategy) means DDP on GPUs. ``args.device_request``
    keeps what the user typed, for messages.
    """
    accelerator, devices, said, from_gpus = "auto", "auto", None, False
    try:
        for flag, value in _flag_values(argv, ("--gpus", "--accelerator", "--devices")):
            if flag == "--gpus":
                accelerator, devices, from_gpus = "gpu", _devices_value(value), True
                if isinstance(devices, int):  # Lightning 1.5 + the original: "--gpus 2" is GPU id 2
                    devices = [devices]
                said = f"--gpus {value}"
            elif flag == "--accelerator":
                if value in LIGHTNING15_DISTRIBUTED:
                    accelerator = "gpu"
                    if getattr(args, "strategy", None) == "auto":
                        args.strategy = "ddp"
                    said = f"--accelerator {value}"
                    continue
                if value not in ACCELERATORS:
                    parser.error(
                        f"--accelerator {value}: choose one of {', '.join(ACCELERATORS)} "
                        f"(or a Lightning 1.5 strategy name: {', '.join(LIGHTNING15_DISTRIBUTED)})"
                    )
                if from_gpus and value not in ("gpu", "cuda"):
                    devices, from_gpus = "auto", False  # the GPU ids went with --gpus
                accelerator, said = value, f"--accelerator {value}"
            else:
                devices, from_gpus = _devices_value(value), False
    except ValueError:
        parser.error(f"{flag} {value}: expected a number, comma-separated GPU ids or auto")
    args.accelerator, args.devices, args.device_request = accelerator, devices, said
    if isinstance(devices, list) and not devices:
        parser.error(f"{said}: no GPU id given")


def device_count(devices) -> int | None:
    """How many devices ``devices`` asks for (None: auto)."""
    if isinstance(devices, list):
        return len(devices)
    return None if devices == "auto" else int(devices)
