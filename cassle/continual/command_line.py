"""The launcher's own command line: its parser (``build_parser``), and the command that reproduces an
invocation (``launcher_command``: ``command.sh`` and the job a SLURM allocation runs).

Test-only options (hidden from ``--help``): ``--main_script`` / ``--eval_script`` replace
``main_continual.py`` / ``main_linear.py`` (the launcher tests drive ``tests/fake_main_continual.py``);
``--srun`` (set by the generated sbatch file) starts every task under ``srun``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "launcher_command", "SLURM_FLAGS"]

# The options that only mean something with --mode slurm.
SLURM_FLAGS = (
    "partition",
    "account",
    "qos",
    "num_gpus",
    "cpus_per_task",
    "mem",
    "time",
    "nodes",
    "requeue",
    "job_name",
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="job_launcher.py",
        description="Run every task of a continual bash script in order (locally or on SLURM), "
        "with per-task checks and exact resume. Arguments after `--` override the script's.",
        epilog="example: python job_launcher.py --script bash_files/continual/digits/barlow_distill.sh "
        "-- --max_epochs 1",
    )
    p.add_argument(
        "--script",
        nargs="+",
        action="extend",
        help="bash script with one `python main_continual.py ...` command; several "
        "scripts (and/or --seeds) run a grid, one folder per run (cassle/continual/grid.py)",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=None,
        help="run each script once per seed (--seed k), in <experiment_dir>/<name>-seed<k>",
    )
    p.add_argument(
        "--experiment_dir",
        help="run folder (default experiments/<date>-<name>); an "
        "existing one is resumed (without --script: with the arguments it recorded). "
        "For a grid: the folder holding its runs (default experiments)",
    )
    p.add_argument("--mode", choices=["local", "slurm"], default="local")
    p.add_argument(
        "--eval",
        action="store_true",
        help="run `main_linear.py --run_dir <exp>` after the last task (again whenever its "
        "results do not describe the checkpoints on disk)",
    )
    p.add_argument("--reeval", action="store_true", help="with --eval: evaluate even when the results are current")
    p.add_argument(
        "--eval_protocol",
        choices=["fast", "paper"],
        default="fast",
        help="with --eval: fast = features once, standardised, lr 0.1 (not the paper's figures); "
        "paper = the paper's protocol for the dataset (CIFAR: online classifier; "
        "ImageNet-100 / DomainNet: offline augmented probe, per-method lr)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show the tasks' full output on the console (it always goes to task*/train.log)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="resume a folder even though its recorded arguments differ from the new ones",
    )
    p.add_argument(
        "--dry_run",
        action="store_true",
        help="print the per-task commands (local) or the sbatch file (slurm); write nothing",
    )
    s = p.add_argument_group("slurm (only with --mode slurm)")
    s.add_argument("--partition")
    s.add_argument("--account")
    s.add_argument("--qos")
    s.add_argument("--num_gpus", type=int, default=0, help="GPUs per node (gres gpu:N; tasks get --devices N)")
    s.add_argument("--cpus_per_task", type=int)
    s.add_argument("--mem", help="memory per node, e.g. 64G")
    s.add_argument("--time", help="time limit, e.g. 2-00:00:00")
    s.add_argument("--nodes", type=int, default=1, help="nodes (tasks get --num_nodes N when N > 1)")
    s.add_argument(
        "--requeue",
        action="store_true",
        help="let SLURM requeue the job on preemption; the relaunch resumes from the manifest",
    )
    s.add_argument("--job_name", help="default: cassle-<name>")
    p.add_argument("--main_script", help=argparse.SUPPRESS)
    p.add_argument("--eval_script", help=argparse.SUPPRESS)
    p.add_argument("--srun", action="store_true", help=argparse.SUPPRESS)
    return p


def launcher_command(
    opts: argparse.Namespace,
    parser: argparse.ArgumentParser,
    repo_root: str,
    experiment_dir: str,
    extra: Sequence[str],
    mode: str | None = None,
    srun: bool = False,
) -> list[str]:
    """The job_launcher.py command reproducing ``opts`` on ``experiment_dir`` (no --force/--dry_run)."""
    cmd = [sys.executable, os.path.join(repo_root, "job_launcher.py")]
    values = dict(
        vars(opts), experiment_dir=experiment_dir, mode=mode or opts.mode, srun=srun, force=False, dry_run=False
    )
    if mode is None:  # command.sh: a rerun evaluates again only when the results are stale
        values["reeval"] = False
    if mode == "local":  # the job inside the allocation: no slurm options, arguments from the manifest
        values.update(script=None, **{k: parser.get_default(k) for k in SLURM_FLAGS})
        extra = ()
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        value = values[action.dest]
        if value == action.default or value is None:
            continue
        flag = action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):
            cmd.append(flag)
        else:
            is_path = action.dest in ("script", "main_script", "eval_script")
            cmd += [flag, os.path.abspath(value) if is_path else str(value)]
    if extra:
        cmd += ["--", *extra]
    return cmd
