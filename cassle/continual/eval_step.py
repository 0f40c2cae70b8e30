"""The evaluation after the last task (``--eval``): ``main_linear.py --run_dir <exp>``, rerun whenever
its results do not describe the checkpoints on disk (``eval_stale_reason``); ``--reeval`` forces it.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from datetime import datetime

from cassle.continual import manifest as mf
from cassle.continual import recovery, task_process
from cassle.continual.stop_signals import Interrupted
from cassle.continual.task_process import exit_reason, show_tail
from cassle.utils.diskfull import is_disk_full, message

__all__ = ["EVAL_RESULTS", "eval_stale_reason", "run_eval"]

EVAL_RESULTS = os.path.join("eval", "results.json")  # written by main_linear.py --run_dir


def eval_stale_reason(experiment_dir: str, manifest: dict, eval_protocol: str | None = None) -> str | None:
    """Why ``<exp>/eval/results.json`` does not describe the run's checkpoints (None: it does).

    Current means: the last recorded evaluation finished, its results exist, list every task
    checkpoint of this run, and were written after each checkpoint they list.
    """
    if manifest.get("eval", {}).get("status") != "done":
        return "no finished evaluation is recorded"
    path = os.path.join(experiment_dir, EVAL_RESULTS)
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
        written = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return f"{path} is missing"
    except (OSError, ValueError) as err:
        return f"{path} is unreadable ({err})"
    from cassle.eval.eval_protocol import short

    proto = results.get("protocol")  # results without one (older tools) are not judged by it
    made = short(proto) if isinstance(proto, dict) and proto else None
    if eval_protocol is not None and made is not None and made != eval_protocol:
        return f"the results were made with the {made} protocol, --eval_protocol {eval_protocol} asked"
    listed = [os.path.abspath(c) for c in results.get("checkpoints", [])]
    for t in sorted(manifest["tasks"], key=int):
        ckpt = os.path.abspath(os.path.join(experiment_dir, f"task{t}", "last.ckpt"))
        if ckpt not in listed:
            return f"the results do not cover {ckpt}"
    for ckpt in listed:
        try:
            if os.stat(ckpt).st_mtime_ns > written:
                return f"{ckpt} is newer than the results"
        except FileNotFoundError:
            return f"{ckpt}, which the results describe, is missing"
    return None


def run_eval(
    experiment_dir: str,
    python: str = sys.executable,
    eval_script: str = "main_linear.py",
    force: bool = False,
    tasks_ran: bool = False,
    env: dict | None = None,
    verbose: bool = False,
    lock_fd: int | None = None,
    trust_checkpoint: bool = False,
    eval_protocol: str = "fast",
) -> int:
    """``python main_linear.py --run_dir <exp>`` after the last task, recorded as manifest["eval"].

    Skipped only when the existing results describe the checkpoints on disk; any task run by this
    launcher, ``force`` (``--reeval``), missing or older results make it run again.
    ``trust_checkpoint``: the tasks ran with --trust_checkpoint, so the evaluation does too.
    """
    if not os.path.exists(eval_script):
        print(f"[launcher] {eval_script} does not exist (yet); skipping the evaluation")
        return 0
    manifest = mf.load_manifest(experiment_dir)
    why = (
        "--reeval"
        if force
        else "tasks ran"
        if tasks_ran
        else eval_stale_reason(experiment_dir, manifest, eval_protocol)
    )
    if why is None:
        print(
            f"[launcher] evaluation is up to date ({os.path.join(experiment_dir, EVAL_RESULTS)} describes "
            f"the checkpoints on disk); skipping it (--reeval forces it)"
        )
        return 0
    command = [
        python,
        eval_script,
        "--run_dir",
        experiment_dir,
        "--eval_protocol",
        eval_protocol,
        *(["--trust_checkpoint"] if trust_checkpoint else []),
    ]
    log_path = os.path.join(experiment_dir, "eval", "eval.log")
    print(f"[launcher] evaluating ({why}); log: {log_path}", flush=True)
    mf.update_task(experiment_dir, manifest, "eval", "running")
    tail: list[str] = []
    try:
        header = f"\n=== [launcher {datetime.now():%Y-%m-%d %H:%M:%S}] {shlex.join(command)}\n"
        rc = task_process.run_task(command, log_path, header, env=env, verbose=verbose, tail=tail, lock_fd=lock_fd)
    except OSError as err:
        if not is_disk_full(err):
            raise
        return recovery.disk_full(message(err, log_path), experiment_dir, manifest, "eval")
    except Interrupted as stop:
        mf.update_task(experiment_dir, manifest, "eval", "failed", returncode=-stop.signum, interrupted=True)
        print(
            f"[launcher] interrupted by {stop} during the evaluation; rerun the same command to redo it",
            file=sys.stderr,
        )
        return 128 + stop.signum
    mf.update_task(experiment_dir, manifest, "eval", "done" if rc == 0 else "failed", returncode=rc)
    if rc != 0:
        show_tail(tail, log_path)
        print(f"[launcher] evaluation {exit_reason(rc)}; see {log_path}", file=sys.stderr)
        return 1
    return 0
