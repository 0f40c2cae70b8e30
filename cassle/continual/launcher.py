"""Run a continual sequence: one ``main_continual.py`` process per task, strictly in order.

``run_local`` executes a plan (``cassle.continual.plan``): before each task the manifest says
"running"; everything the trainer prints goes to ``<exp>/task{t}/train.log`` and the console shows
only its progress lines (``cassle.continual.console``; ``--verbose`` shows everything). A task
counts as done only when it exits 0 *and* its ``last.ckpt`` shows the whole planned schedule
(``cassle.continual.progress``). The first failure stops the sequence (the reference fed a
crashed task's stale checkpoint to the next task; this never does) and the launcher exits
non-zero; rerunning the same command resumes.

Signals: SIGTERM / SIGINT to the launcher are passed on to the running task (60 s to stop), the
task is recorded as interrupted and the launcher exits 128 + signal; between tasks it stops at
once. ``--eval`` reruns the evaluation whenever its results do not describe the checkpoints on disk
(``eval_stale_reason``); ``--reeval`` forces it.

``main`` is the ``job_launcher.py`` command line (see ``build_parser``). SLURM mode writes an sbatch
file that runs this same local launcher inside the allocation, so sequencing, resume and
return-code checks are the same code in both modes.

Test-only options (hidden from ``--help``): ``--main_script`` / ``--eval_script`` replace
``main_continual.py`` / ``main_linear.py`` (the launcher tests drive ``tests/fake_main_continual.py``);
``--srun`` (set by the generated sbatch file) starts every task under ``srun``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from datetime import datetime
from typing import Sequence

from cassle.continual import manifest as mf
from cassle.continual import recovery, trust
from cassle.continual.console import for_console, format_duration
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
    split_flags,
    task_schedule,
)
from cassle.continual.progress import task_complete
from cassle.continual.slurm import SlurmError, SlurmOptions, log_pattern, sbatch_script, srun_prefix, submit
from cassle.utils.args import WANDB_MISSING, wandb_missing
from cassle.utils.checkpoint import atomic_write_text
from cassle.utils.diskfull import is_disk_full, message

__all__ = ["run_local", "run_eval", "run_task", "main", "build_parser", "eval_stale_reason",
           "RESUME_NEUTRAL_FLAGS", "EVAL_RESULTS", "validate_task_args"]

# Flags that may change between a run and its resume without making it a different experiment
# (the data can move to another disk, the loader can get more workers, a checkpoint can be trusted).
RESUME_NEUTRAL_FLAGS = ("--data_dir", "--num_workers", *trust.WIDENING_FLAGS)
EVAL_RESULTS = os.path.join("eval", "results.json")  # written by main_linear.py --run_dir
STOP_GRACE_SECONDS = 60  # how long a signalled task gets to save and exit before SIGKILL
LOG_TAIL_LINES = 25  # lines of a failed task's output repeated on the console


class _Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _StopSignals:
    """The launcher's SIGTERM / SIGINT handling for the whole run (main thread only).

    While a task runs the signal is passed on to it and recorded (``run_task`` raises
    ``_Interrupted`` once the task has stopped); otherwise ``_Interrupted`` is raised at once.
    """

    def __init__(self):
        self.child: subprocess.Popen | None = None
        self.starting = False
        self.received: list[int] = []
        self._previous: dict = {}

    def _handle(self, signum, _frame):
        self.received.append(signum)
        if self.starting:
            return  # run_task passes it on as soon as the child exists
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)
            return
        raise _Interrupted(signum)

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signal handling alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


_STOP = _StopSignals()  # installed by main(); run_task also works without it (library use)


def _console_write(data: bytes) -> None:
    out = getattr(sys.stdout, "buffer", None)
    if out is not None:
        out.write(data)
    else:  # a replaced sys.stdout (e.g. captured) without a byte buffer
        sys.stdout.write(data.decode(errors="replace"))
    sys.stdout.flush()


def _child_setup(parent: int, received_before: int) -> None:
    """In the child, between fork and exec.

    The forked child still has the launcher's Python signal handlers: a SIGTERM / SIGINT sent to
    it in that window would only be recorded there and lost at exec. Restore the defaults, and
    act on one that already arrived. Then ask for SIGTERM when the launcher dies (even by SIGKILL),
    so a task never runs on unsupervised (Linux; elsewhere a no-op).
    """
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    if len(_STOP.received) > received_before:
        os.kill(os.getpid(), _STOP.received[-1])
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the launcher died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def run_task(command: Sequence[str], log_path: str, header: str = "", env: dict | None = None,
             verbose: bool = False, tail: list[str] | None = None, lock_fd: int | None = None) -> int:
    """Run ``command``; append its stdout+stderr to ``log_path`` and show its console lines.

    ``env``: extra environment variables for the command. ``verbose``: the console gets every
    byte, not only the progress lines. ``tail`` (a list) receives the last output lines.
    ``lock_fd``: the experiment lock, inherited by the command (see ``manifest.lock``). The command
    gets SIGTERM if the launcher dies. Returns the exit code (negative = killed by that signal, as
    ``subprocess``). A SIGTERM / SIGINT received by the launcher meanwhile is passed on to the
    command, which gets ``STOP_GRACE_SECONDS`` to stop; then ``_Interrupted`` is raised so the
    caller can record it.
    """
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    received_before = len(_STOP.received)
    with open(log_path, "ab") as log:
        if header:
            log.write(header.encode())
        # Same process group as the launcher: killing the group (Ctrl-C, scancel) stops both.
        _STOP.starting = True
        try:
            parent = os.getpid()
            proc = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
                                    pass_fds=() if lock_fd is None else (lock_fd,),
                                    preexec_fn=lambda: _child_setup(parent, received_before))
            _STOP.child = proc
        finally:
            _STOP.starting = False
        if len(_STOP.received) > received_before:  # arrived while the child was starting
            proc.send_signal(_STOP.received[-1])
        lines = collections.deque(maxlen=LOG_TAIL_LINES)
        pending = b""
        try:
            fd = proc.stdout.fileno()
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except InterruptedError:
                    continue
                if chunk:
                    log.write(chunk)
                    log.flush()
                    if verbose:
                        _console_write(chunk)
                pending += chunk if chunk else b"\n"  # at the end, flush an unterminated line
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    text = raw.decode(errors="replace")
                    lines.append(text.rsplit("\r", 1)[-1])
                    shown = None if verbose else for_console(text)
                    if shown is not None:
                        _console_write(f"  {shown}\n".encode())
                if not chunk:
                    break
            try:
                rc = proc.wait(timeout=STOP_GRACE_SECONDS if len(_STOP.received) > received_before else None)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
        finally:
            _STOP.child = None
            proc.stdout.close()
            if proc.poll() is None:  # the launcher itself is being torn down: never orphan the task
                proc.kill()
                proc.wait()
    if tail is not None:
        tail[:] = [line for line in lines if line.strip()]
    if len(_STOP.received) > received_before:
        raise _Interrupted(_STOP.received[received_before])
    return rc


def _set_aside(path: str) -> None:
    """A checkpoint left by an attempt that is being redone must not be resumed later."""
    if os.path.exists(path):
        os.replace(path, path + ".stale")
        print(f"[launcher] moved stale {path} to {path}.stale (its predecessor task is being redone)")


def _show_tail(tail: Sequence[str], log_path: str) -> None:
    if tail:
        print(f"[launcher] last lines of {log_path}:\n" + "\n".join(f"    {line}" for line in tail),
              file=sys.stderr)


def _exit_reason(rc: int) -> str:
    """What an exit code means (a shell reports a command killed by signal N as 128 + N)."""
    signum = -rc if rc < 0 else rc - 128 if rc in (128 + signal.SIGTERM, 128 + signal.SIGINT) else None
    if signum is not None:
        try:
            return f"was stopped by {signal.Signals(signum).name} (exit code {rc})"
        except ValueError:
            pass
    return f"failed with exit code {rc}"


def run_local(
    plan: Sequence[TaskRun],
    experiment_dir: str,
    python: str = sys.executable,
    main_script: str = "main_continual.py",
    prefix: Sequence[str] = (),
    env: dict | None = None,
    verbose: bool = False,
    lock_fd: int | None = None,
) -> int:
    """Execute ``plan`` in order, recording each task in ``<experiment_dir>/manifest.json``.

    A task is recorded "done" only when it exited 0 and its checkpoint shows the whole schedule
    (``task_complete`` against the task's own ``--max_epochs`` / ``--max_steps``). ``env`` holds
    the script's exported variables, passed to every task. Returns 0 when every task is done, 1
    after the first failed task (later tasks never start), 128 + signal number when the launcher
    itself was interrupted.
    """
    manifest = mf.load_manifest(experiment_dir)
    if manifest is None:
        raise FileNotFoundError(f"{experiment_dir} has no {mf.MANIFEST_NAME}; create it before run_local")
    total = len(plan)
    for run in plan:
        t = run.task_idx
        if run.action == "skip":
            print(f"[launcher] task {t}: done, skipping ({run.checkpoint})")
            continue
        if run.action == "run":
            _set_aside(run.checkpoint)
        elif run.action != "resume":
            raise ValueError(f"unknown action {run.action!r} for task {t}; valid: run, resume, skip")
        command = [*prefix, python, main_script, *run.argv]
        verb = f"resuming from {run.resume_from}" if run.action == "resume" else "starting"
        note = f" ({run.note})" if run.note else ""
        print(f"[launcher] task {t} ({t + 1 - plan[0].task_idx}/{total}): {verb}{note}; log: {run.log_path}",
              flush=True)
        header = (f"\n=== [launcher {datetime.now():%Y-%m-%d %H:%M:%S}] task {t} {run.action}: "
                  f"{shlex.join(command)}\n")
        started, tail = time.monotonic(), []
        try:
            mf.update_task(experiment_dir, manifest, t, "running", checkpoint=None)
            rc = run_task(command, run.log_path, header, env=env, verbose=verbose, tail=tail, lock_fd=lock_fd)
        except OSError as err:
            if not is_disk_full(err):
                raise
            return recovery.disk_full(message(err, run.log_path), experiment_dir, manifest, t)
        except _Interrupted as stop:
            mf.update_task(experiment_dir, manifest, t, "failed", returncode=-stop.signum, interrupted=True)
            print(f"[launcher] interrupted by {stop} during task {t}; rerun the same command to resume",
                  file=sys.stderr)
            return 128 + stop.signum
        if rc != 0:
            mf.update_task(experiment_dir, manifest, t, "failed", returncode=rc)
            _show_tail(tail, run.log_path)
            if recovery.disk_full_in(tail):  # the task's own line names the file
                return recovery.disk_full(recovery.disk_full_in(tail), experiment_dir, None, t)
            print(f"[launcher] task {t} {_exit_reason(rc)}; see {run.log_path}; "
                  f"rerun the same command to resume", file=sys.stderr)
            return 1
        if not os.path.exists(run.checkpoint):
            mf.update_task(experiment_dir, manifest, t, "failed", returncode=rc)
            _show_tail(tail, run.log_path)
            print(f"[launcher] task {t} exited 0 but wrote no {run.checkpoint}; see {run.log_path}; "
                  f"treating it as failed (rerun the same command to retry)", file=sys.stderr)
            return 1
        done, why = task_complete(run.checkpoint, t, *task_schedule(run.argv))
        if not done:
            mf.update_task(experiment_dir, manifest, t, "failed", returncode=rc, truncated=why)
            _show_tail(tail, run.log_path)
            print(f"[launcher] task {t} exited 0 but {why}: not done (a truncated task never feeds "
                  f"the next one); rerun the same command to resume it", file=sys.stderr)
            return 1
        mf.update_task(experiment_dir, manifest, t, "done", returncode=0, checkpoint=run.checkpoint)
        print(f"[launcher] task {t}: done ({why}) in {format_duration(time.monotonic() - started)} "
              f"-> {run.checkpoint}", flush=True)
    return 0


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


def run_eval(experiment_dir: str, python: str = sys.executable, eval_script: str = "main_linear.py",
             force: bool = False, tasks_ran: bool = False, env: dict | None = None,
             verbose: bool = False, lock_fd: int | None = None, trust_checkpoint: bool = False,
             eval_protocol: str = "fast") -> int:
    """``python main_linear.py --run_dir <exp>`` after the last task, recorded as manifest["eval"].

    Skipped only when the existing results describe the checkpoints on disk; any task run by this
    launcher, ``force`` (``--reeval``), missing or older results make it run again.
    ``trust_checkpoint``: the tasks ran with --trust_checkpoint, so the evaluation does too.
    """
    if not os.path.exists(eval_script):
        print(f"[launcher] {eval_script} does not exist (yet); skipping the evaluation")
        return 0
    manifest = mf.load_manifest(experiment_dir)
    why = ("--reeval" if force else "tasks ran" if tasks_ran
           else eval_stale_reason(experiment_dir, manifest, eval_protocol))
    if why is None:
        print(f"[launcher] evaluation is up to date ({os.path.join(experiment_dir, EVAL_RESULTS)} describes "
              f"the checkpoints on disk); skipping it (--reeval forces it)")
        return 0
    command = [python, eval_script, "--run_dir", experiment_dir, "--eval_protocol", eval_protocol,
               *(["--trust_checkpoint"] if trust_checkpoint else [])]
    log_path = os.path.join(experiment_dir, "eval", "eval.log")
    print(f"[launcher] evaluating ({why}); log: {log_path}", flush=True)
    mf.update_task(experiment_dir, manifest, "eval", "running")
    tail: list[str] = []
    try:
        header = f"\n=== [launcher {datetime.now():%Y-%m-%d %H:%M:%S}] {shlex.join(command)}\n"
        rc = run_task(command, log_path, header, env=env, verbose=verbose, tail=tail, lock_fd=lock_fd)
    except OSError as err:
        if not is_disk_full(err):
            raise
        return recovery.disk_full(message(err, log_path), experiment_dir, manifest, "eval")
    except _Interrupted as stop:
        mf.update_task(experiment_dir, manifest, "eval", "failed", returncode=-stop.signum, interrupted=True)
        print(f"[launcher] interrupted by {stop} during the evaluation; rerun the same command to redo it",
              file=sys.stderr)
        return 128 + stop.signum
    mf.update_task(experiment_dir, manifest, "eval", "done" if rc == 0 else "failed", returncode=rc)
    if rc != 0:
        _show_tail(tail, log_path)
        print(f"[launcher] evaluation {_exit_reason(rc)}; see {log_path}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- command line
_SLURM_FLAGS = ("partition", "account", "qos", "num_gpus", "cpus_per_task", "mem", "time", "nodes",
                "requeue", "job_name")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="job_launcher.py",
        description="Run every task of a continual bash script in order (locally or on SLURM), "
                    "with per-task checks and exact resume. Arguments after `--` override the script's.",
        epilog="example: python job_launcher.py --script bash_files/continual/digits/barlow_distill.sh "
               "-- --max_epochs 1",
    )
    p.add_argument("--script", nargs="+", action="extend",
                   help="bash script with one `python main_continual.py ...` command; several "
                        "scripts (and/or --seeds) run a grid, one folder per run (cassle/continual/grid.py)")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="run each script once per seed (--seed k), in <experiment_dir>/<name>-seed<k>")
    p.add_argument("--experiment_dir", help="run folder (default experiments/<date>-<name>); an "
                   "existing one is resumed (without --script: with the arguments it recorded). "
                   "For a grid: the folder holding its runs (default experiments)")
    p.add_argument("--mode", choices=["local", "slurm"], default="local")
    p.add_argument("--eval", action="store_true",
                   help="run `main_linear.py --run_dir <exp>` after the last task (again whenever its "
                        "results do not describe the checkpoints on disk)")
    p.add_argument("--reeval", action="store_true", help="with --eval: evaluate even when the results are current")
    p.add_argument("--eval_protocol", choices=["fast", "paper"], default="fast",
                   help="with --eval: fast = features once, standardised, lr 0.1 (not the paper's figures); "
                        "paper = the paper's protocol for the dataset (CIFAR: online classifier; "
                        "ImageNet-100 / DomainNet: offline augmented probe, per-method lr)")
    p.add_argument("--verbose", action="store_true",
                   help="show the tasks' full output on the console (it always goes to task*/train.log)")
    p.add_argument("--force", action="store_true",
                   help="resume a folder even though its recorded arguments differ from the new ones")
    p.add_argument("--dry_run", action="store_true",
                   help="print the per-task commands (local) or the sbatch file (slurm); write nothing")
    s = p.add_argument_group("slurm (only with --mode slurm)")
    s.add_argument("--partition")
    s.add_argument("--account")
    s.add_argument("--qos")
    s.add_argument("--num_gpus", type=int, default=0, help="GPUs per node (gres gpu:N; tasks get --devices N)")
    s.add_argument("--cpus_per_task", type=int)
    s.add_argument("--mem", help="memory per node, e.g. 64G")
    s.add_argument("--time", help="time limit, e.g. 2-00:00:00")
    s.add_argument("--nodes", type=int, default=1, help="nodes (tasks get --num_nodes N when N > 1)")
    s.add_argument("--requeue", action="store_true",
                   help="let SLURM requeue the job on preemption; the relaunch resumes from the manifest")
    s.add_argument("--job_name", help="default: cassle-<name>")
    p.add_argument("--main_script", help=argparse.SUPPRESS)
    p.add_argument("--eval_script", help=argparse.SUPPRESS)
    p.add_argument("--srun", action="store_true", help=argparse.SUPPRESS)
    return p


def _split_extra(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def _script_vars(text: str) -> list[str]:
    return sorted(set(re.findall(r"\$\{?([A-Za-z_]\w*)", text)))


def _launcher_command(opts: argparse.Namespace, parser: argparse.ArgumentParser, repo_root: str,
                      experiment_dir: str, extra: Sequence[str], mode: str | None = None,
                      srun: bool = False) -> list[str]:
    """The job_launcher.py command reproducing ``opts`` on ``experiment_dir`` (no --force/--dry_run)."""
    cmd = [sys.executable, os.path.join(repo_root, "job_launcher.py")]
    values = dict(vars(opts), experiment_dir=experiment_dir, mode=mode or opts.mode, srun=srun,
                  force=False, dry_run=False)
    if mode is None:  # command.sh: a rerun evaluates again only when the results are stale
        values["reeval"] = False
    if mode == "local":  # the job inside the allocation: no slurm options, arguments from the manifest
        values.update(script=None, **{k: parser.get_default(k) for k in _SLURM_FLAGS})
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


def _write_command_sh(experiment_dir: str, command: Sequence[str], env_vars: Sequence[str]) -> str:
    env = [f"{trust.check_shell_name(k, 'command.sh')}={shlex.quote(os.environ[k])}"
           for k in env_vars if os.environ.get(k)]
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


def main(argv: Sequence[str] | None = None, repo_root: str | None = None) -> int:
    parser = build_parser()
    launcher_argv, extra = _split_extra(sys.argv[1:] if argv is None else argv)
    opts, unknown = parser.parse_known_args(launcher_argv)
    if unknown:  # exits 2, like any argparse error
        parser.error(f"unrecognized arguments: {' '.join(unknown)} (flags for main_continual.py go "
                     f"after `--`, e.g. job_launcher.py --script S -- --max_epochs 1)")
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
            print(f"job_launcher.py: error: {message(err, one.experiment_dir or 'the experiment folder')}; "
                  "free some space and rerun the same command", file=sys.stderr)
            return 1

    scripts = opts.script or []
    try:
        with _STOP:
            if len(scripts) > 1 or opts.seeds:  # a grid: one folder per (script, seed)
                from cassle.continual.grid import run_grid

                try:
                    return run_grid(opts, extra, run_one)
                except (PlanError, FileNotFoundError) as err:
                    print(f"job_launcher.py: error: {err}", file=sys.stderr)
                    return 2
            opts.script = scripts[0] if scripts else None
            return run_one(opts, extra)
    except _Interrupted as stop:  # between tasks: the manifest already says where things stand
        print(f"[launcher] interrupted by {stop}; rerun the same command to resume", file=sys.stderr)
        return 128 + stop.signum


def _main(opts, parser, extra, repo_root, main_script, eval_script) -> int:
    if opts.mode == "local":
        given = [k for k in _SLURM_FLAGS if getattr(opts, k) != parser.get_default(k)]
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
        or os.path.join("experiments", f"{datetime.now():%Y-%m-%d_%H-%M-%S}-{name.replace(os.sep, '_')}"))
    prefix = srun_prefix() if opts.srun else []
    slurm_opts = SlurmOptions(
        job_name=opts.job_name or f"cassle-{name}", partition=opts.partition, account=opts.account,
        qos=opts.qos, num_gpus=opts.num_gpus, cpus_per_task=opts.cpus_per_task, mem=opts.mem,
        time=opts.time, nodes=opts.nodes, requeue=opts.requeue, env=exports)
    job_command = _launcher_command(opts, parser, repo_root, experiment_dir, trust.widening_flags_in(argv, extra),
                                    mode="local", srun=True)
    applied = [] if script_text is not None else trust.describe(where, argv, exports, flags_left_out, env_left_out)

    # Every check (arguments, manifest, pretrained file) runs before anything is written.
    epochs, steps = task_schedule(argv)
    complete = lambda ckpt, t: task_complete(ckpt, t, epochs, steps)  # noqa: E731
    plan = plan_tasks(argv, _checked(mf.load_manifest(experiment_dir), argv, opts.force, quiet=True),
                      experiment_dir, complete=complete)
    if opts.main_script is None:  # the repository's main_continual.py: its parser is importable
        validate_task_args(plan)
    _check_external_checkpoint(argv)
    trust.refuse_symlinked_outputs(experiment_dir, [run.task_idx for run in plan], eval_dir=opts.eval)
    # Before the folder or any task exists; a SLURM job checks on its node (it runs this locally).
    if opts.mode == "local" and wandb_missing(get_flag(argv, "--wandb") is True):
        raise PlanError(WANDB_MISSING)
    if opts.dry_run:
        plan = recovery.set_aside_unreadable(plan, dry_run=True)
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

    os.makedirs(experiment_dir, exist_ok=True)
    with mf.lock(experiment_dir) as lock_fd:
        manifest = _checked(mf.load_manifest(experiment_dir), argv, opts.force)  # again, now locked
        plan = recovery.set_aside_unreadable(plan_tasks(argv, manifest, experiment_dir, complete=complete))
        if manifest is None:
            manifest = mf.new_manifest(name, opts.script and os.path.abspath(opts.script), argv,
                                       [run.task_idx for run in plan])
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
                experiment_dir, _launcher_command(opts, parser, repo_root, experiment_dir, extra),
                sorted(set(_script_vars(script_text)) | {"PRETRAINED_PATH"}))
        else:
            command_sh = os.path.join(experiment_dir, "command.sh")
        print(f"[launcher] experiment: {experiment_dir}\n[launcher] rerun / resume: bash {command_sh}", flush=True)

        if opts.mode == "slurm":
            print("".join(f"[launcher] {line}\n" for line in applied), end="", flush=True)
            sbatch_path = os.path.join(experiment_dir, "job.sbatch")
            atomic_write_text(sbatch_path, sbatch_script(slurm_opts, job_command, os.getcwd(),
                                                         log_pattern(experiment_dir)))
            job_id = submit(sbatch_path)
            job = {"job_id": job_id, "submitted": mf.now(), "sbatch": sbatch_path}
            manifest.setdefault("slurm_jobs", []).append(job)
            mf.save_manifest(experiment_dir, manifest)
            log = os.path.join(experiment_dir, f"slurm-{job_id}.out")
            print(f"[launcher] submitted SLURM job {job_id}; log: {log}")
            return 0

        _print_overrides(overrides, "[launcher] ")
        print("".join(f"[launcher] {line}\n" for line in applied), end="", flush=True)
        _print_plan_summary(plan)
        rc = run_local(plan, experiment_dir, sys.executable, main_script, prefix, env=exports,
                       verbose=opts.verbose, lock_fd=lock_fd)
        if rc == 0 and opts.eval:
            rc = run_eval(experiment_dir, sys.executable, eval_script, force=opts.reeval,
                          tasks_ran=any(run.action != "skip" for run in plan), env=exports,
                          verbose=opts.verbose, lock_fd=lock_fd,
                          trust_checkpoint=get_flag(argv, "--trust_checkpoint") is True,
                          eval_protocol=opts.eval_protocol)
        if rc == 0:
            print(f"[launcher] all tasks done: {experiment_dir}")
        return rc


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
            raise PlanError(f"task {run.task_idx}: main_continual.py would refuse its arguments: "
                            f"{why}") from None


def _domain_task_count(argv: list[str]) -> list[str]:
    """A domain split without ``--num_tasks`` or ``--domains``: one task per domain of the data.

    The data layer decides (DomainNet: its reference order; other data: an error listing the
    domains found, before anything is written); ``--num_tasks`` is then added to the arguments.
    """
    if (get_flag(argv, "--split_strategy") != "domain" or get_flag(argv, "--num_tasks") is not None
            or get_flag(argv, "--domains") is not None):
        return argv
    from cassle.data.args import task_count  # the data layer (heavy imports): only on this path

    dataset, data_dir = get_flag(argv, "--dataset"), get_flag(argv, "--data_dir")
    count = task_count(argparse.Namespace(dataset=dataset, split_strategy="domain", domains=None, num_tasks=None))
    if count is None and isinstance(data_dir, str):
        from cassle.data.custom import describe, resolve_domains

        count = len(resolve_domains(describe(data_dir), None, "domain"))  # raises, naming the domains found
    if count is None:
        raise PlanError(f"--split_strategy domain on --dataset {dataset} needs --domains (the task order) "
                        "and --data_dir")
    return set_flag(argv, "--num_tasks", str(count))


def _check_external_checkpoint(argv: Sequence[str]) -> None:
    """PRETRAINED_PATH / --pretrained_model (a file this run did not write) must load as data only,
    unless the user passed --trust_checkpoint: refused now, not when its task starts."""
    pretrained = get_flag(argv, "--pretrained_model")
    if isinstance(pretrained, str) and os.path.isfile(pretrained):
        from cassle.utils.checkpoint import check_loadable  # imports torch: only when needed

        check_loadable(pretrained, trust=get_flag(argv, "--trust_checkpoint") is True)


def _print_overrides(overrides: Sequence[str], prefix: str) -> None:
    if overrides:
        print(f"{prefix}overrides after --: " + "; ".join(overrides), flush=True)


def _print_plan_summary(plan: Sequence[TaskRun]) -> None:
    print("[launcher] plan: " + ", ".join(f"task {r.task_idx} {r.action}" for r in plan), flush=True)


def _checked(manifest: dict | None, argv: Sequence[str], force: bool, quiet: bool = False) -> dict | None:
    """Refuse to mix two different runs in one folder (unless --force)."""
    if manifest is None:
        return None
    diffs = diff_args(manifest["argv"], argv, ignore=RESUME_NEUTRAL_FLAGS)
    if diffs and not force:
        raise PlanError(
            "this experiment folder was started with other arguments; use a new --experiment_dir, "
            "or --force to resume anyway. Differences (recorded -> now): " + "; ".join(diffs))
    if diffs and not quiet:
        print("[launcher] --force: resuming despite changed arguments: " + "; ".join(diffs), file=sys.stderr)
    return manifest
