"""Run a continual sequence: one ``main_continual.py`` process per task, strictly in order.

``main`` is the ``job_launcher.py`` command line (``build_parser``). It is split by responsibility:

* ``invocation``: the options + the script (or the folder's record) -> a checked ``Invocation``;
  every check runs before anything is written.
* ``execution``: ``--dry_run`` prints it; otherwise the run folder is set up under its lock and the
  SLURM job submitted (the sbatch file runs this same local launcher inside the allocation, so
  sequencing, resume and return-code checks are the same code in both modes) or the tasks run here.
* ``local_executor`` (``run_local``): the tasks in order, each recorded in the manifest; a task is
  done only when it exits 0 *and* its ``last.ckpt`` shows the whole planned schedule; the first
  failure stops the sequence and the launcher exits non-zero; rerunning the same command resumes.
* ``task_process`` (``run_task``): one task as a child process, its output to ``<exp>/task{t}/train.log``
  and only its progress lines to the console (``--verbose`` shows everything).
* ``stop_signals``: SIGTERM / SIGINT to the launcher are passed on to the running task (60 s to
  stop), the task is recorded as interrupted and the launcher exits 128 + signal; between tasks it
  stops at once.
* ``eval_step``: ``--eval`` reruns the evaluation whenever its results do not describe the
  checkpoints on disk (``eval_stale_reason``); ``--reeval`` forces it.
* ``command_line``: the parser, the hidden test-only options, and the command that reruns a run.

The launcher's former public names (``__all__``) stay importable from here; a test that replaces
``run_task`` patches ``cassle.continual.task_process`` (the executors call it through that module).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from cassle.continual import manifest as mf
from cassle.continual.command_line import build_parser
from cassle.continual.eval_step import EVAL_RESULTS, eval_stale_reason, run_eval
from cassle.continual.execution import dry_run, execute
from cassle.continual.invocation import RESUME_NEUTRAL_FLAGS, prepare, validate_task_args
from cassle.continual.local_executor import run_local
from cassle.continual.plan import PlanError
from cassle.continual.slurm import SlurmError
from cassle.continual.stop_signals import STOP, Interrupted
from cassle.continual.task_process import run_task
from cassle.utils.diskfull import is_disk_full, message

__all__ = [
    "run_local",
    "run_eval",
    "run_task",
    "main",
    "build_parser",
    "eval_stale_reason",
    "RESUME_NEUTRAL_FLAGS",
    "EVAL_RESULTS",
    "validate_task_args",
]


def _split_extra(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def main(argv: Sequence[str] | None = None, repo_root: str | None = None) -> int:
    parser = build_parser()
    launcher_argv, extra = _split_extra(sys.argv[1:] if argv is None else argv)
    opts, unknown = parser.parse_known_args(launcher_argv)
    if unknown:  # exits 2, like any argparse error
        parser.error(
            f"unrecognized arguments: {' '.join(unknown)} (flags for main_continual.py go "
            f"after `--`, e.g. job_launcher.py --script S -- --max_epochs 1)"
        )
    repo_root = repo_root or os.getcwd()
    main_script = os.path.abspath(opts.main_script or os.path.join(repo_root, "main_continual.py"))
    eval_script = os.path.abspath(opts.eval_script or os.path.join(repo_root, "main_linear.py"))

    def run_one(one, one_extra) -> int:
        try:
            return _main(one, parser, one_extra, repo_root, main_script, eval_script)
        except (PlanError, SlurmError, mf.ExperimentLocked, FileNotFoundError, ValueError) as err:
            print(f"job_launcher.py: error: {err}", file=sys.stderr)
            return 2
        except OSError as err:  # a full disk while the launcher writes (manifest, command.sh, ...)
            if not is_disk_full(err):
                raise
            print(
                f"job_launcher.py: error: {message(err, one.experiment_dir or 'the experiment folder')}; "
                "free some space and rerun the same command",
                file=sys.stderr,
            )
            return 1

    scripts = opts.script or []
    try:
        with STOP:
            if len(scripts) > 1 or opts.seeds:  # a grid: one folder per (script, seed)
                from cassle.continual.grid import run_grid

                try:
                    return run_grid(opts, extra, run_one)
                except (PlanError, FileNotFoundError) as err:
                    print(f"job_launcher.py: error: {err}", file=sys.stderr)
                    return 2
            opts.script = scripts[0] if scripts else None
            return run_one(opts, extra)
    except Interrupted as stop:  # between tasks: the manifest already says where things stand
        print(f"[launcher] interrupted by {stop}; rerun the same command to resume", file=sys.stderr)
        return 128 + stop.signum


def _main(opts, parser, extra, repo_root, main_script, eval_script) -> int:
    invocation = prepare(opts, parser, extra, repo_root)
    if opts.dry_run:
        return dry_run(invocation, main_script)
    return execute(invocation, main_script, eval_script)
