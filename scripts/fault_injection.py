"""Fault injection on a real continual run: kill it at random points, relaunch, compare.

    python scripts/fault_injection.py                         # the README demo, 10 kills, seed 0
    python scripts/fault_injection.py --kills 10 --seed 3 --script bash_files/continual/digits/simclr_distill.sh

1. Runs the launcher once without interruption (``--eval``): the reference.
2. Runs the same command on a second folder and, at ``--kills`` random points drawn with
   ``--seed`` in order along the run, sends SIGTERM, SIGINT or SIGKILL to the trainer (the
   launcher's running child: the task's ``main_continual.py``, or ``main_linear.py`` during the
   evaluation) or to the launcher; after every kill the same command is launched again.
   Kill points: mid-epoch (a random fraction into an epoch), checkpoint write (while
   ``last.ckpt.tmp`` exists), between tasks (right after the launcher records a task done),
   evaluation (a random moment of it).
3. After every kill, checks that no task is recorded done unless its checkpoint shows the whole
   schedule; at the end, relaunches until the run finishes and compares every task's weights
   (all tensors of the state dict, exactly) and the accuracy matrix with the reference.

Prints one row per kill: kill point, signal, target, recovered (the relaunch went on from the
recorded state and nothing truncated was ever recorded done), weights identical (the killed
task's final weights, or for an evaluation kill the accuracy matrix, equal the reference's).
Exit code 0 when every row says yes. CPU only; the demo takes a few minutes per run.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cassle.continual.plan import get_flag, merge_args, parse_script  # noqa: E402
from cassle.continual.progress import task_complete  # noqa: E402

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGKILL)
TARGETS = ("trainer", "launcher")
KINDS = ("mid-epoch", "checkpoint write", "between tasks", "evaluation")
EPOCH_LINE = re.compile(r"\[cassle\] task (\d+) \| epoch (\d+)/(\d+)")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--script", default="bash_files/continual/digits/barlow_distill.sh")
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default=None, help="default: experiments/fault_injection-<date>")
    p.add_argument(
        "--reference",
        default=None,
        help="an uninterrupted run of the same command (same code) to compare with, instead of running one first",
    )
    p.add_argument("extra", nargs="*", help="after --: overrides for the script (as with job_launcher.py)")
    return p.parse_args(argv)


class Launch:
    """One launcher process whose console lines are read in the background."""

    def __init__(self, command, log_path):
        self.log = open(log_path, "a")
        self.proc = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        self.lines: queue.Queue = queue.Queue()
        self.epochs_seen: dict[int, int] = {}  # task -> last epoch line seen
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.log.write(line)
            self.log.flush()
            m = EPOCH_LINE.search(line)
            if m:
                self.epochs_seen[int(m.group(1))] = int(m.group(2))
            self.lines.put(line)
        self.lines.put(None)

    def wait_line(self, predicate, timeout=3600):
        """The first console line matching ``predicate``; None when the launcher ended first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                return None
            if predicate(line):
                return line
        return None

    def child(self):
        """pid of the launcher's running child (the trainer or the evaluation), or None."""
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        return int(text[0]) if text else None

    def finish(self, timeout=600):
        """The launcher's exit code; None when it was still running after ``timeout`` s (then it
        is stopped with SIGTERM, which it passes on to its task)."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
            self.proc.terminate()
            self.proc.wait(timeout=300)
        time.sleep(0.2)
        self.log.close()
        return rc


def draw_kills(rng, n, num_tasks, epochs):
    """``n`` distinct kill points in run order: (task, epoch, kind, fraction, signal, target)."""
    slots = set()  # (task, epoch, order within the epoch, kind)
    limit = num_tasks * epochs * 2 + num_tasks  # every distinct point there is
    while len(slots) < min(n, limit):
        kind = rng.choice(KINDS)
        if kind == "evaluation":
            slots.add((num_tasks, 0, 3, kind))
        elif kind == "between tasks":
            slots.add((rng.randrange(num_tasks - 1), epochs, 2, kind))
        else:
            slots.add((rng.randrange(num_tasks), rng.randint(1, epochs), KINDS.index(kind), kind))
    return [
        (t, e, kind, rng.uniform(0.2, 0.8), rng.choice(SIGNALS), rng.choice(TARGETS)) for t, e, _, kind in sorted(slots)
    ]


def reach(launch, exp, task, epoch, kind, fraction, epoch_seconds, epochs):
    """Block until the kill point is reached; returns its description (None if the run ended)."""
    if kind == "evaluation":
        if launch.wait_line(lambda line: "[launcher] evaluating" in line) is None:
            return None
        time.sleep(fraction * 3)
        return "evaluation"
    if kind == "between tasks":
        if launch.wait_line(lambda line: f"[launcher] task {task}: done" in line) is None:
            return None
        return f"between tasks {task} and {task + 1}"

    # mid-epoch / checkpoint write of (task, epoch): start at the end of the previous epoch
    def previous_done(line):
        m = EPOCH_LINE.search(line)
        if epoch == 1:
            return f"[launcher] task {task} " in line and ("starting" in line or "resuming" in line)
        return bool(m) and int(m.group(1)) == task and int(m.group(2)) >= epoch - 1

    if launch.wait_line(previous_done) is None:
        return None

    def current():  # the epoch under way when the kill lands, from the console lines
        seen = launch.epochs_seen.get(task, 0)
        return f"epoch {seen + 1}" if seen < epochs else "after the last epoch"

    if kind == "mid-epoch":
        time.sleep(fraction * epoch_seconds)
        return f"task {task}, mid-epoch ({current()})"
    tmp = exp / f"task{task}" / "last.ckpt.tmp"
    deadline = time.monotonic() + 10 * epoch_seconds + 120
    while not tmp.exists():
        if launch.proc.poll() is not None or time.monotonic() > deadline:
            return None
        time.sleep(0.0005)
    return f"task {task}, checkpoint write ({current()})"


def state_dicts(exp, num_tasks):
    import torch

    return [
        torch.load(exp / f"task{t}" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
        for t in range(num_tasks)
    ]


def identical(a, b) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def truncated_done(exp, num_tasks, epochs):
    manifest = json.loads((exp / "manifest.json").read_text())
    bad = []
    for t, entry in manifest["tasks"].items():
        if entry["status"] == "done":
            ok, why = task_complete(str(exp / f"task{t}" / "last.ckpt"), int(t), epochs)
            if not ok:
                bad.append(f"task {t}: {why}")
    return bad


def main(argv=None) -> int:
    opts = parse_args(argv)
    workdir = Path(opts.workdir or REPO / "experiments" / f"fault_injection-{datetime.now():%Y-%m-%d_%H-%M-%S}")
    workdir.mkdir(parents=True, exist_ok=True)
    script = str((REPO / opts.script).resolve())
    argv = merge_args(parse_script(Path(script).read_text(), os.environ), opts.extra)
    num_tasks, epochs = (
        int(get_flag(argv, "--num_tasks")),
        int(get_flag(argv, "--max_epochs", 1000)),
    )  # the parser's default

    def command(exp):
        cmd = [
            sys.executable,
            str(REPO / "job_launcher.py"),
            "--script",
            script,
            "--experiment_dir",
            str(exp),
            "--eval",
        ]
        return cmd + (["--", *opts.extra] if opts.extra else [])

    ref_exp, exp = Path(opts.reference or workdir / "reference"), workdir / "chaos"
    print(f"[fault_injection] reference run: {ref_exp}", flush=True)
    started = time.monotonic()
    ref = Launch(command(ref_exp), workdir / "reference.console.log")  # a finished one: skips, or resumes
    assert ref.finish(timeout=7200) == 0, f"the reference run failed; see {workdir / 'reference.console.log'}"
    if opts.reference:  # its duration from the manifest: first start to last finish
        tasks = json.loads((ref_exp / "manifest.json").read_text())["tasks"].values()
        span = max(datetime.fromisoformat(t["finished"]) for t in tasks) - min(
            datetime.fromisoformat(t["started"]) for t in tasks
        )
        epoch_seconds = span.total_seconds() / (num_tasks * epochs)
    else:
        epoch_seconds = (time.monotonic() - started) / (num_tasks * epochs)
    print(
        f"[fault_injection] reference done in {time.monotonic() - started:.0f}s "
        f"(~{epoch_seconds:.1f}s per epoch incl. start-up)",
        flush=True,
    )

    rng = random.Random(opts.seed)
    kills = draw_kills(rng, opts.kills, num_tasks, epochs)
    rows, launch = [], None
    console = workdir / "chaos.console.log"
    for task, epoch, kind, fraction, sig, target in kills:
        where = None
        for _ in range(60):  # a folder still locked by a task that is stopping: retry, as a user would
            if launch is None:
                launch = Launch(command(exp), console)
            where = reach(launch, exp, task, epoch, kind, fraction, epoch_seconds, epochs)
            if where is not None or launch.finish() != 2:
                break
            launch = None
            time.sleep(2)
        if where is None:  # the run got past this point (or ended) before it was reached
            if launch is not None and launch.proc.poll() is not None:
                launch = None  # ended: the next point relaunches; a run still going serves the next point
            rows.append([kind, sig.name, target, "skipped (point passed)", "-", task])
            continue
        victim = launch.child() if target == "trainer" else launch.proc.pid
        if victim is None:  # between tasks: the trainer is the next task's, as it starts
            where += " (next task's start-up)"
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.01)
            victim = launch.child()
        if victim is None:
            victim, target = launch.proc.pid, "launcher (no child)"
        try:
            os.kill(victim, sig)
        except ProcessLookupError:
            pass
        rc = launch.finish(timeout=300 + 3 * epoch_seconds)
        launch = None
        bad = truncated_done(exp, num_tasks, epochs)
        status = (
            "no: " + "; ".join(bad)
            if bad
            else "no: the launcher went on after the kill"
            if rc is None
            else f"exit {rc}"
        )
        rows.append([where, sig.name, target, status, None, task])
        print(
            f"[fault_injection] kill {len(rows)}: {sig.name} to the {target} at {where}; launcher exit {rc}", flush=True
        )

    if launch is not None:  # the last points were passed by a run still going: let it finish
        launch.finish(timeout=7200)
    # Relaunch until the run finishes (a folder still locked by a stopping task is retried).
    for _ in range(20):
        final = Launch(command(exp), console)
        rc = final.finish(timeout=7200)
        if rc == 0:
            break
        time.sleep(2)
    finished = rc == 0 and not truncated_done(exp, num_tasks, epochs)
    ref_states, states = state_dicts(ref_exp, num_tasks), state_dicts(exp, num_tasks) if finished else None
    ref_R = json.loads((ref_exp / "eval" / "results.json").read_text())["accuracy_matrix"]
    R = json.loads((exp / "eval" / "results.json").read_text())["accuracy_matrix"] if finished else None
    for row in rows:
        where, task = row[0], row[5]
        if row[4] == "-":
            continue
        recovered = finished and not row[3].startswith("no")
        row[3] = "yes" if recovered else f"no ({row[3]})"
        if not finished:
            row[4] = "n/a"
        elif where == "evaluation":
            row[4] = "yes" if R == ref_R else "no"
        else:
            row[4] = "yes" if identical(states[task], ref_states[task]) else "no"
    all_tasks = finished and all(identical(a, b) for a, b in zip(states, ref_states)) and R == ref_R

    header = ["#", "kill point", "signal", "target", "recovered", "weights identical"]
    table = [header] + [[str(i + 1), *map(str, row[:5])] for i, row in enumerate(rows)]
    widths = [max(len(r[c]) for r in table) for c in range(len(header))]
    print()
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)))
    print(
        f"\nseed {opts.seed}, {len(rows)} kills, script {opts.script}; final run complete: "
        f"{'yes' if finished else 'no'}; all {num_tasks} tasks' weights and the accuracy matrix equal the "
        f"uninterrupted run's: {'yes' if all_tasks else 'no'}; folders: {workdir}"
    )
    ok = all_tasks and all(r[3] == "yes" and r[4] == "yes" for r in rows if r[4] != "-")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
