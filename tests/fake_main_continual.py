"""A stand-in for main_continual.py that keeps its contract but trains nothing (launcher tests).

Contract kept: one task per process; writes <checkpoint_dir>/args.json and, at every "epoch" end,
<checkpoint_dir>/last.ckpt atomically, in the layout the launcher reads (a zip archive with
``archive/data.pkl``, like torch.save, holding the progress record of
``cassle.continual.progress``); prints one console progress line per epoch; exits 0 only when the
task completed, 143 after SIGTERM and 130 after SIGINT. No torch, so a task takes milliseconds.
The checkpoint dict: {"epoch", "global_step", PROGRESS_KEY, "task_idx", "completed", "pretrained",
"resumed_from_epoch", "distiller", "weights"}; "weights" is a deterministic digest of the whole
history (the predecessor's weights, then every epoch), so a run that resumed from the wrong state
ends with different weights than an uninterrupted one.

It also checks the protocol the launcher must respect and exits 4 when broken: task t > 0 gets a
completed task t-1 checkpoint as --pretrained_model, task 0 gets no --distill* flag and no
--pretrained_model, a resume checkpoint belongs to the same task.

Driven by environment variables (task and epoch numbers):
  FAKE_FAIL_TASK=t [FAKE_FAIL_EPOCH=e, default 1]  exit 3 in task t after saving epoch e
  FAKE_EXIT0_TASK=t [FAKE_EXIT0_EPOCH=e, default 1] exit 0 in task t after saving epoch e (what
                                                   Lightning did on SIGTERM: a truncated task)
  FAKE_HANG_TASK=t [FAKE_HANG_EPOCH=e, default 1]  after saving epoch e, create <dir>/hanging and
                                                   sleep (to be killed)
  FAKE_HANG_WRITE_TASK=t [FAKE_HANG_WRITE_EPOCH=e]  hang half-way through writing epoch e's checkpoint
  FAKE_HANG_START_TASK=t                           hang as task t starts, before writing anything
  FAKE_NO_CKPT_TASK=t                              exit 0 in task t without writing any checkpoint
  FAKE_EPOCH_SECONDS=s                             sleep s seconds per epoch (default 0)
  FAKE_CALLS_LOG=path                              append one JSON line per invocation
  FAKE_ENV_LOG=NAME[,NAME...]                      record those environment variables in args.json ("env")
"""

import argparse
import hashlib
import json
import os
import pickle
import signal
import sys
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cassle.continual.console import epoch_line, task_line  # noqa: E402
from cassle.continual.progress import PROGRESS_KEY, progress_record, read_checkpoint_record  # noqa: E402
from cassle.utils.checkpoint import atomic_write_text, atomic_write_with  # noqa: E402


def _env_int(name):
    value = os.environ.get(name)
    return None if value in (None, "") else int(value)


def _die(msg, code=4):
    print(f"fake_main_continual: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def _hang(folder):
    atomic_write_text(os.path.join(folder, "hanging"), str(os.getpid()))
    time.sleep(3600)


def _write_checkpoint(path, state, hang=False):
    def write(f):
        data = pickle.dumps(state, protocol=2)
        if hang:  # a kill here leaves a half-written temporary file, never a half-written last.ckpt
            f.write(data[: len(data) // 2])
            f.flush()
            _hang(os.path.dirname(path))
        with zipfile.ZipFile(f, "w") as archive:
            archive.writestr("archive/data.pkl", data)

    atomic_write_with(path, write)


def _stop(signum, _frame):
    print(f"fake_main_continual: stopped by {signal.Signals(signum).name}", file=sys.stderr, flush=True)
    sys.exit(128 + signum)


def main():
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    p = argparse.ArgumentParser()
    p.add_argument("--num_tasks", type=int, required=True)
    p.add_argument("--task_idx", type=int, required=True)
    p.add_argument("--checkpoint_dir", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--pretrained_model")
    p.add_argument("--resume_from_checkpoint")
    p.add_argument("--max_epochs", type=int, default=3)
    p.add_argument("--distiller")
    args, rest = p.parse_known_args()
    t = args.task_idx
    distill_flags = [a for a in sys.argv[1:] if a.startswith("--distill")]

    if os.environ.get("FAKE_CALLS_LOG"):
        with open(os.environ["FAKE_CALLS_LOG"], "a") as f:
            f.write(json.dumps({"task_idx": t, "argv": sys.argv[1:]}) + "\n")

    # The protocol checks.
    if t == 0 and distill_flags:
        _die(f"task 0 got distillation flags {distill_flags}")
    weights = "init"
    if t > 0 and args.pretrained_model:
        if not os.path.exists(args.pretrained_model):
            _die(f"task {t} needs an existing --pretrained_model, got {args.pretrained_model}")
        prev = read_checkpoint_record(args.pretrained_model)
        if prev.get("task_idx") != t - 1 or not prev.get("completed"):
            _die(f"task {t} was given {args.pretrained_model}, which is not a completed task {t - 1}: {prev}")
        weights = prev["weights"]
    elif t > 0 or args.pretrained_model:
        _die(f"task {t} got --pretrained_model {args.pretrained_model}")
    start_epoch, resumed_from = 0, None
    if args.resume_from_checkpoint:
        state = read_checkpoint_record(args.resume_from_checkpoint)
        if state["task_idx"] != t:
            _die(f"resume checkpoint of task {state['task_idx']} given to task {t}")
        start_epoch = resumed_from = state["epoch"]
        weights = state["weights"]

    os.makedirs(args.checkpoint_dir, exist_ok=True)
    if _env_int("FAKE_HANG_START_TASK") == t:
        _hang(args.checkpoint_dir)
    env_names = [n for n in os.environ.get("FAKE_ENV_LOG", "").split(",") if n]
    atomic_write_text(
        os.path.join(args.checkpoint_dir, "args.json"),
        json.dumps(
            {**vars(args), "unknown": rest, "argv": sys.argv[1:], "env": {n: os.environ.get(n) for n in env_names}},
            indent=2,
        ),
    )
    print(f"fake task {t}: epochs {start_epoch}..{args.max_epochs}", flush=True)
    if _env_int("FAKE_NO_CKPT_TASK") == t:
        return 0

    started = time.monotonic()
    for epoch in range(start_epoch + 1, args.max_epochs + 1):
        epoch_start = time.monotonic()
        time.sleep(float(os.environ.get("FAKE_EPOCH_SECONDS", "0")))
        weights = hashlib.sha256(f"{weights}|{t}|{epoch}".encode()).hexdigest()[:16]
        state = {
            "epoch": epoch,
            "global_step": 10 * epoch,
            PROGRESS_KEY: progress_record(t, epoch, args.max_epochs, 10 * epoch, -1),
            "task_idx": t,
            "completed": epoch == args.max_epochs,
            "pretrained": args.pretrained_model,
            "resumed_from_epoch": resumed_from,
            "distiller": args.distiller,
            "weights": weights,
        }
        hang = _env_int("FAKE_HANG_WRITE_TASK") == t and epoch == (_env_int("FAKE_HANG_WRITE_EPOCH") or 1)
        _write_checkpoint(os.path.join(args.checkpoint_dir, "last.ckpt"), state, hang)
        print(f"fake task {t}: epoch {epoch} saved", flush=True)
        print(
            epoch_line(t, epoch, args.max_epochs, {"ssl_loss": 1.0 / epoch}, time.monotonic() - epoch_start, 0.0),
            flush=True,
        )
        if _env_int("FAKE_FAIL_TASK") == t and epoch == (_env_int("FAKE_FAIL_EPOCH") or 1):
            _die(f"failing task {t} at epoch {epoch} as asked", code=3)
        if _env_int("FAKE_EXIT0_TASK") == t and epoch == (_env_int("FAKE_EXIT0_EPOCH") or 1):
            return 0
        if _env_int("FAKE_HANG_TASK") == t and epoch == (_env_int("FAKE_HANG_EPOCH") or 1):
            _hang(args.checkpoint_dir)
    print(task_line(t, args.max_epochs, time.monotonic() - started, {}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
