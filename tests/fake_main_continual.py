"""A stand-in for main_continual.py that keeps its contract but trains nothing (launcher tests).

Contract kept: one task per process; writes <checkpoint_dir>/args.json and, at every "epoch" end,
<checkpoint_dir>/last.ckpt atomically; exits 0 only when the task completed. The checkpoint is JSON
(no torch, so a task takes milliseconds): {"task_idx", "epoch", "max_epochs", "completed",
"pretrained", "resumed_from_epoch", "distiller"}.

It also checks the protocol the launcher must respect and exits 4 when broken: task t > 0 gets a
completed task t-1 checkpoint as --pretrained_model, task 0 gets no --distill* flag, a resume
checkpoint belongs to the same task.

Driven by environment variables (task and epoch numbers):
  FAKE_FAIL_TASK=t [FAKE_FAIL_EPOCH=e, default 1]  exit 3 in task t after saving epoch e
  FAKE_HANG_TASK=t [FAKE_HANG_EPOCH=e, default 1]  after saving epoch e, create <dir>/hanging and
                                                   sleep (to be killed)
  FAKE_NO_CKPT_TASK=t                              exit 0 in task t without writing any checkpoint
  FAKE_EPOCH_SECONDS=s                             sleep s seconds per epoch (default 0)
  FAKE_CALLS_LOG=path                              append one JSON line per invocation
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cassle.utils.checkpoint import atomic_write_text  # noqa: E402


def _env_int(name):
    value = os.environ.get(name)
    return None if value in (None, "") else int(value)


def _die(msg, code=4):
    print(f"fake_main_continual: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def main():
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
    if t > 0:
        if not args.pretrained_model or not os.path.exists(args.pretrained_model):
            _die(f"task {t} needs an existing --pretrained_model, got {args.pretrained_model}")
        with open(args.pretrained_model) as f:
            prev = json.load(f)
        if prev.get("task_idx") != t - 1 or not prev.get("completed"):
            _die(f"task {t} was given {args.pretrained_model}, which is not a completed task {t - 1}: {prev}")
    start_epoch, resumed_from = 0, None
    if args.resume_from_checkpoint:
        with open(args.resume_from_checkpoint) as f:
            state = json.load(f)
        if state["task_idx"] != t:
            _die(f"resume checkpoint of task {state['task_idx']} given to task {t}")
        start_epoch = resumed_from = state["epoch"]

    os.makedirs(args.checkpoint_dir, exist_ok=True)
    atomic_write_text(os.path.join(args.checkpoint_dir, "args.json"),
                      json.dumps({**vars(args), "unknown": rest, "argv": sys.argv[1:]}, indent=2))
    print(f"fake task {t}: epochs {start_epoch}..{args.max_epochs}", flush=True)
    if _env_int("FAKE_NO_CKPT_TASK") == t:
        return 0

    for epoch in range(start_epoch + 1, args.max_epochs + 1):
        time.sleep(float(os.environ.get("FAKE_EPOCH_SECONDS", "0")))
        state = {"task_idx": t, "epoch": epoch, "max_epochs": args.max_epochs,
                 "completed": epoch == args.max_epochs, "pretrained": args.pretrained_model,
                 "resumed_from_epoch": resumed_from, "distiller": args.distiller}
        atomic_write_text(os.path.join(args.checkpoint_dir, "last.ckpt"), json.dumps(state))
        print(f"fake task {t}: epoch {epoch} saved", flush=True)
        if _env_int("FAKE_FAIL_TASK") == t and epoch == (_env_int("FAKE_FAIL_EPOCH") or 1):
            _die(f"failing task {t} at epoch {epoch} as asked", code=3)
        if _env_int("FAKE_HANG_TASK") == t and epoch == (_env_int("FAKE_HANG_EPOCH") or 1):
            atomic_write_text(os.path.join(args.checkpoint_dir, "hanging"), str(os.getpid()))
            time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
