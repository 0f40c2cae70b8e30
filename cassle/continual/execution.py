"""What a checked invocation does: print it (``--dry_run``), or set up the run folder and carry it out.

``execute`` takes the folder's lock, checks the recorded arguments again, writes ``manifest.json``
(and, for a user invocation, ``args.json`` and ``command.sh``), then either submits the SLURM job
(``submit_job``: ``job.sbatch`` runs this same launcher locally inside the allocation, so
sequencing, resume and return-code checks are the same code in both modes) or runs the tasks here
(``run_here``: ``cassle.continual.local_executor``, then the evaluation with ``--eval``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Sequence

from cassle.continual import manifest as mf
from cassle.continual import recovery, trust
from cassle.continual.command_line import launcher_command
from cassle.continual.eval_step import run_eval
from cassle.continual.invocation import Invocation, checked_manifest
from cassle.continual.local_executor import run_local
from cassle.continual.plan import TaskRun, get_flag, plan_tasks, split_flags
from cassle.continual.slurm import log_pattern, sbatch_script, srun_prefix, submit
from cassle.utils.checkpoint import atomic_write_text

__all__ = ["dry_run", "execute", "submit_job", "run_here"]


def dry_run(inv: Invocation, main_script: str) -> int:
    """``--dry_run``: the sbatch file and the job's commands (slurm) or each task's command; writes nothing."""
    opts, overrides, prefix, applied = inv.opts, inv.overrides, inv.prefix, inv.applied
    slurm_opts, job_command, experiment_dir = inv.slurm_opts, inv.job_command, inv.experiment_dir
    plan = recovery.set_aside_unreadable(inv.plan, dry_run=True)
    if opts.mode == "slurm":
        print(sbatch_script(slurm_opts, job_command, os.getcwd(), log_pattern(experiment_dir)), end="")
        _print_overrides(overrides, "# ")
        print("# the job will run:")
        for run in plan:
            command = [*srun_prefix(), sys.executable, main_script, *run.argv]
            print(f"#   task {run.task_idx} ({run.action}): {shlex.join(command)}")
    else:
        _print_overrides(overrides, "# ")
        _print_plan(plan, sys.executable, main_script, prefix)
    print("".join(f"# {line}\n" for line in applied), end="")
    return 0


def execute(inv: Invocation, main_script: str, eval_script: str) -> int:
    """Set up the run folder under its lock, then submit the SLURM job or run the tasks here."""
    opts, argv, experiment_dir, complete = inv.opts, inv.argv, inv.experiment_dir, inv.complete
    name, exports, script_text = inv.name, inv.exports, inv.script_text
    os.makedirs(experiment_dir, exist_ok=True)
    with mf.lock(experiment_dir) as lock_fd:
        manifest = checked_manifest(mf.load_manifest(experiment_dir), argv, opts.force)  # again, now locked
        plan = recovery.set_aside_unreadable(plan_tasks(argv, manifest, experiment_dir, complete=complete))
        if manifest is None:
            manifest = mf.new_manifest(
                name, opts.script and os.path.abspath(opts.script), argv, [run.task_idx for run in plan]
            )
        else:
            manifest["argv"] = argv
            for run in plan:
                manifest["tasks"].setdefault(str(run.task_idx), mf.empty_task())
        manifest["env"] = exports
        mf.save_manifest(experiment_dir, manifest)
        if script_text is not None:  # a user invocation (not the job inside an allocation)
            atomic_write_text(os.path.join(experiment_dir, "args.json"), _args_json(argv))
            # Every variable the arguments were built from, PRETRAINED_PATH included: command.sh
            # must rerun this experiment by itself, from any shell.
            command_sh = _write_command_sh(
                experiment_dir,
                launcher_command(opts, inv.parser, inv.repo_root, experiment_dir, inv.extra),
                sorted(set(_script_vars(script_text)) | {"PRETRAINED_PATH"}),
            )
        else:
            command_sh = os.path.join(experiment_dir, "command.sh")
        print(f"[launcher] experiment: {experiment_dir}\n[launcher] rerun / resume: bash {command_sh}", flush=True)

        if opts.mode == "slurm":
            return submit_job(inv, manifest)
        return run_here(inv, plan, main_script, eval_script, lock_fd)


def submit_job(inv: Invocation, manifest: dict) -> int:
    """Write ``job.sbatch`` (this launcher, locally, on the folder), submit it, record the job."""
    experiment_dir, slurm_opts, job_command, applied = inv.experiment_dir, inv.slurm_opts, inv.job_command, inv.applied
    print("".join(f"[launcher] {line}\n" for line in applied), end="", flush=True)
    sbatch_path = os.path.join(experiment_dir, "job.sbatch")
    atomic_write_text(sbatch_path, sbatch_script(slurm_opts, job_command, os.getcwd(), log_pattern(experiment_dir)))
    job_id = submit(sbatch_path)
    job = {"job_id": job_id, "submitted": mf.now(), "sbatch": sbatch_path}
    manifest.setdefault("slurm_jobs", []).append(job)
    mf.save_manifest(experiment_dir, manifest)
    log = os.path.join(experiment_dir, f"slurm-{job_id}.out")
    print(f"[launcher] submitted SLURM job {job_id}; log: {log}")
    return 0


def run_here(inv: Invocation, plan: Sequence[TaskRun], main_script: str, eval_script: str, lock_fd: int) -> int:
    """Every task of ``plan`` here (``run_local``), in order; then the evaluation (``--eval``)."""
    opts, argv, experiment_dir, prefix, exports = inv.opts, inv.argv, inv.experiment_dir, inv.prefix, inv.exports
    overrides, applied = inv.overrides, inv.applied
    _print_overrides(overrides, "[launcher] ")
    print("".join(f"[launcher] {line}\n" for line in applied), end="", flush=True)
    _print_plan_summary(plan)
    rc = run_local(
        plan, experiment_dir, sys.executable, main_script, prefix, env=exports, verbose=opts.verbose, lock_fd=lock_fd
    )
    if rc == 0 and opts.eval:
        rc = run_eval(
            experiment_dir,
            sys.executable,
            eval_script,
            force=opts.reeval,
            tasks_ran=any(run.action != "skip" for run in plan),
            env=exports,
            verbose=opts.verbose,
            lock_fd=lock_fd,
            trust_checkpoint=get_flag(argv, "--trust_checkpoint") is True,
            eval_protocol=opts.eval_protocol,
        )
    if rc == 0:
        print(f"[launcher] all tasks done: {experiment_dir}")
    return rc


def _script_vars(text: str) -> list[str]:
    return sorted(set(re.findall(r"\$\{?([A-Za-z_]\w*)", text)))


def _write_command_sh(experiment_dir: str, command: Sequence[str], env_vars: Sequence[str]) -> str:
    env = [
        f"{trust.check_shell_name(k, 'command.sh')}={shlex.quote(os.environ[k])}" for k in env_vars if os.environ.get(k)
    ]
    text = (
        "#!/usr/bin/env bash\n"
        "# Rerun this experiment: finished tasks are skipped, an interrupted one resumes from its\n"
        "# last.ckpt (see manifest.json). Written by job_launcher.py.\n"
        f"cd {shlex.quote(os.getcwd())}\n"
        f"{' '.join(env + [shlex.join(command)])}\n"
    )
    path = os.path.join(experiment_dir, "command.sh")
    atomic_write_text(path, text)
    os.chmod(path, 0o755)
    return path


def _args_json(argv: Sequence[str]) -> str:
    args = {f[2:]: (v[0] if len(v) == 1 else (v or True)) for f, v in split_flags(argv)}
    return json.dumps({"argv": list(argv), "args": args}, indent=2) + "\n"


def _print_plan(plan: Sequence[TaskRun], python: str, main_script: str, prefix: Sequence[str] = ()) -> None:
    for run in plan:
        print(f"# task {run.task_idx}: {run.action}")
        if run.action != "skip":
            print(shlex.join([*prefix, python, main_script, *run.argv]))


def _print_overrides(overrides: Sequence[str], prefix: str) -> None:
    if overrides:
        print(f"{prefix}overrides after --: " + "; ".join(overrides), flush=True)


def _print_plan_summary(plan: Sequence[TaskRun]) -> None:
    print("[launcher] plan: " + ", ".join(f"task {r.task_idx} {r.action}" for r in plan), flush=True)
