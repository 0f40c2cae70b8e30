"""The invocation: the launcher's options + the script (or the run folder's record) -> a checked plan.

``prepare`` builds ``main_continual.py``'s arguments (the script's, or those ``manifest.json``
recorded, with the arguments after ``--`` on top), the run folder and the SLURM options, and makes
every check before anything is written: the launcher's own options, the arguments against the
recorded run (``--force``), each task's arguments through ``main_continual.py``'s parser, the
pretrained checkpoint, symlinked outputs, wandb. It returns an ``Invocation``; nothing is written.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cassle.continual import manifest as mf
from cassle.continual import trust
from cassle.continual.command_line import SLURM_FLAGS, launcher_command
from cassle.continual.plan import (
    PlanError,
    TaskRun,
    diff_args,
    drop_flags,
    get_flag,
    merge_args,
    parse_script,
    plan_tasks,
    script_exports,
    set_flag,
    task_schedule,
)
from cassle.continual.progress import task_complete
from cassle.continual.slurm import SlurmOptions, srun_prefix
from cassle.utils.args import WANDB_MISSING, wandb_missing

__all__ = ["Invocation", "prepare", "validate_task_args", "checked_manifest", "RESUME_NEUTRAL_FLAGS"]

# Flags that may change between a run and its resume without making it a different experiment
# (the data can move to another disk, the loader can get more workers, a checkpoint can be trusted).
RESUME_NEUTRAL_FLAGS = ("--data_dir", "--num_workers", *trust.WIDENING_FLAGS)


@dataclass
class Invocation:
    """One run as the launcher will carry it out, every check passed; nothing written yet."""

    opts: argparse.Namespace  # the launcher's options (one run of a grid: its own copy)
    parser: argparse.ArgumentParser
    repo_root: str
    extra: Sequence[str]  # the arguments after `--`
    script_text: str | None  # None: the arguments come from the folder's manifest.json
    argv: list[str]  # main_continual.py's arguments, before the per-task ones
    exports: dict[str, str]  # the script's exported variables, passed to every task
    overrides: list[str]  # what `--` changed, shown with the plan
    applied: list[str]  # what a resume from the manifest took from it and left out (trust.describe)
    name: str
    experiment_dir: str
    prefix: list[str]  # before each task's command (srun inside an allocation)
    slurm_opts: SlurmOptions
    job_command: list[str]  # what the SLURM job runs: this launcher, locally, on the folder
    complete: Callable[[str, int], tuple[bool, str]]  # a checkpoint shows the whole schedule
    plan: list[TaskRun]  # as planned before the folder is locked (a dry run shows it)


def prepare(
    opts: argparse.Namespace, parser: argparse.ArgumentParser, extra: Sequence[str], repo_root: str
) -> Invocation:
    """Every check of the invocation, before anything is written; raises PlanError (or
    FileNotFoundError, ValueError, ...) with the message for the user."""
    if opts.mode == "local":
        given = [k for k in SLURM_FLAGS if getattr(opts, k) != parser.get_default(k)]
        if given:
            raise PlanError(f"--{given[0]} is a SLURM option; add --mode slurm (or drop it)")
    if opts.num_gpus < 0 or opts.nodes < 1:
        raise PlanError(f"--num_gpus must be >= 0 and --nodes >= 1, got {opts.num_gpus} and {opts.nodes}")
    if not opts.script and not opts.experiment_dir:
        raise PlanError("give --script (a new or resumed run) or --experiment_dir (resume a recorded run)")

    if opts.reeval and not opts.eval:
        raise PlanError("--reeval only makes sense with --eval")
    script_text = None
    if opts.script:
        if not os.path.isfile(opts.script):
            raise FileNotFoundError(f"--script {opts.script} does not exist")
        with open(opts.script, encoding="utf-8") as f:
            script_text = f.read()
        base_argv = parse_script(script_text, os.environ)
        argv = merge_args(base_argv, extra)
        exports = script_exports(script_text, os.environ)
        # The reference workflow: PRETRAINED_PATH names the checkpoint a run starting at
        # --task_idx > 0 builds on, also when the script does not mention the variable
        # (plan_tasks refuses it for a run starting at task 0).
        if get_flag(argv, "--pretrained_model") is None and os.environ.get("PRETRAINED_PATH"):
            argv = set_flag(argv, "--pretrained_model", os.environ["PRETRAINED_PATH"])
    else:
        recorded = mf.load_manifest(opts.experiment_dir)
        if recorded is None:
            raise FileNotFoundError(f"{opts.experiment_dir} has no {mf.MANIFEST_NAME}; start it with --script")
        # A run folder is data: no widening flag, no loader variable from it (cassle.continual.trust).
        where = os.path.join(opts.experiment_dir, mf.MANIFEST_NAME)
        base_argv, flags_left_out = trust.argv_from_manifest(recorded["argv"], extra, where)
        argv = merge_args(base_argv, extra)
        exports, env_left_out = trust.env_from_manifest(recorded.get("env"), where)
    # What `--` changed, shown with the plan (e.g. `--wandb: (switch) -> --no-wandb`).
    overrides = diff_args(base_argv, merge_args(base_argv, extra))
    if opts.mode == "slurm" and opts.num_gpus > 0:
        argv = set_flag(drop_flags(argv, lambda f: f == "--gpus"), "--devices", str(opts.num_gpus))
    if opts.mode == "slurm" and opts.nodes > 1:
        argv = set_flag(argv, "--num_nodes", str(opts.nodes))

    argv = _domain_task_count(argv)
    name = get_flag(argv, "--name")
    if not isinstance(name, str) or not name:
        raise PlanError("--name is missing from the script arguments (it names the run and its folder)")
    experiment_dir = os.path.abspath(
        opts.experiment_dir
        or os.path.join("experiments", f"{datetime.now():%Y-%m-%d_%H-%M-%S}-{name.replace(os.sep, '_')}")
    )
    prefix = srun_prefix() if opts.srun else []
    slurm_opts = SlurmOptions(
        job_name=opts.job_name or f"cassle-{name}",
        partition=opts.partition,
        account=opts.account,
        qos=opts.qos,
        num_gpus=opts.num_gpus,
        cpus_per_task=opts.cpus_per_task,
        mem=opts.mem,
        time=opts.time,
        nodes=opts.nodes,
        requeue=opts.requeue,
        env=exports,
    )
    job_command = launcher_command(
        opts, parser, repo_root, experiment_dir, trust.widening_flags_in(argv, extra), mode="local", srun=True
    )
    applied = [] if script_text is not None else trust.describe(where, argv, exports, flags_left_out, env_left_out)

    # Every check (arguments, manifest, pretrained file) runs before anything is written.
    epochs, steps = task_schedule(argv)
    complete = lambda ckpt, t: task_complete(ckpt, t, epochs, steps)  # noqa: E731
    plan = plan_tasks(
        argv,
        checked_manifest(mf.load_manifest(experiment_dir), argv, opts.force, quiet=True),
        experiment_dir,
        complete=complete,
    )
    if opts.main_script is None:  # the repository's main_continual.py: its parser is importable
        validate_task_args(plan)
    _check_external_checkpoint(argv)
    trust.refuse_symlinked_outputs(experiment_dir, [run.task_idx for run in plan], eval_dir=opts.eval)
    # Before the folder or any task exists; a SLURM job checks on its node (it runs this locally).
    if opts.mode == "local" and wandb_missing(get_flag(argv, "--wandb") is True):
        raise PlanError(WANDB_MISSING)
    return Invocation(
        opts,
        parser,
        repo_root,
        extra,
        script_text,
        argv,
        exports,
        overrides,
        applied,
        name,
        experiment_dir,
        prefix,
        slurm_opts,
        job_command,
        complete,
        plan,
    )


def validate_task_args(plan: Sequence[TaskRun]) -> None:
    """Every task's arguments through main_continual.py's own parser, before the first task starts
    or a job is submitted (--dry_run included): an unknown or misspelt flag fails now, naming it,
    not after task 0 has trained."""
    import contextlib
    import io

    from cassle.utils.args import parse_args  # imports torch: only for the real main script

    for run in plan:
        if run.action == "skip":
            continue
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                parse_args(run.argv)
        except SystemExit as stop:
            lines = [line for line in err.getvalue().splitlines() if "error:" in line]
            why = lines[-1].split("error:", 1)[1].strip() if lines else str(stop.code)
            raise PlanError(f"task {run.task_idx}: main_continual.py would refuse its arguments: {why}") from None


def _domain_task_count(argv: list[str]) -> list[str]:
    """A domain split without ``--num_tasks`` or ``--domains``: one task per domain of the data.

    The data layer decides (DomainNet: its reference order; other data: an error listing the
    domains found, before anything is written); ``--num_tasks`` is then added to the arguments.
    """
    if (
        get_flag(argv, "--split_strategy") != "domain"
        or get_flag(argv, "--num_tasks") is not None
        or get_flag(argv, "--domains") is not None
    ):
        return argv
    from cassle.data.args import task_count  # the data layer (heavy imports): only on this path

    dataset, data_dir = get_flag(argv, "--dataset"), get_flag(argv, "--data_dir")
    count = task_count(argparse.Namespace(dataset=dataset, split_strategy="domain", domains=None, num_tasks=None))
    if count is None and isinstance(data_dir, str):
        from cassle.data.custom import describe, resolve_domains

        count = len(resolve_domains(describe(data_dir), None, "domain"))  # raises, naming the domains found
    if count is None:
        raise PlanError(
            f"--split_strategy domain on --dataset {dataset} needs --domains (the task order) and --data_dir"
        )
    return set_flag(argv, "--num_tasks", str(count))


def _check_external_checkpoint(argv: Sequence[str]) -> None:
    """PRETRAINED_PATH / --pretrained_model (a file this run did not write) must load as data only,
    unless the user passed --trust_checkpoint: refused now, not when its task starts."""
    pretrained = get_flag(argv, "--pretrained_model")
    if isinstance(pretrained, str) and os.path.isfile(pretrained):
        from cassle.utils.checkpoint import check_loadable  # imports torch: only when needed

        check_loadable(pretrained, trust=get_flag(argv, "--trust_checkpoint") is True)


def checked_manifest(manifest: dict | None, argv: Sequence[str], force: bool, quiet: bool = False) -> dict | None:
    """Refuse to mix two different runs in one folder (unless --force)."""
    if manifest is None:
        return None
    diffs = diff_args(manifest["argv"], argv, ignore=RESUME_NEUTRAL_FLAGS)
    if diffs and not force:
        raise PlanError(
            "this experiment folder was started with other arguments; use a new --experiment_dir, "
            "or --force to resume anyway. Differences (recorded -> now): " + "; ".join(diffs)
        )
    if diffs and not quiet:
        print("[launcher] --force: resuming despite changed arguments: " + "; ".join(diffs), file=sys.stderr)
    return manifest
