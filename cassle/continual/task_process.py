"""One task as a child process: its output to its log, its progress lines to the console.

``run_task`` runs a command, appends everything it prints to the task's log, shows only the
progress lines on the console (``cassle.continual.console``; ``verbose`` shows everything), passes
a SIGTERM / SIGINT received by the launcher on to it (``cassle.continual.stop_signals``), and keeps
the last lines for the failure message (``show_tail``, ``exit_reason``). Callers use it as
``task_process.run_task`` (tests replace it there).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from cassle.continual.console import for_console
from cassle.continual.stop_signals import STOP, Interrupted, child_setup
from cassle.utils.cpu_threads import child_env

__all__ = ["run_task", "show_tail", "exit_reason", "STOP_GRACE_SECONDS", "LOG_TAIL_LINES"]

STOP_GRACE_SECONDS = 60  # how long a signalled task gets to save and exit before SIGKILL
LOG_TAIL_LINES = 25  # lines of a failed task's output repeated on the console


def _console_write(data: bytes) -> None:
    out = getattr(sys.stdout, "buffer", None)
    if out is not None:
        out.write(data)
    else:  # a replaced sys.stdout (e.g. captured) without a byte buffer
        sys.stdout.write(data.decode(errors="replace"))
    sys.stdout.flush()


def run_task(
    command: Sequence[str],
    log_path: str,
    header: str = "",
    env: dict | None = None,
    verbose: bool = False,
    tail: list[str] | None = None,
    lock_fd: int | None = None,
) -> int:
    """Run ``command``; append its stdout+stderr to ``log_path`` and show its console lines.

    ``env``: extra environment variables for the command. ``verbose``: the console gets every
    byte, not only the progress lines. ``tail`` (a list) receives the last output lines.
    ``lock_fd``: the experiment lock, inherited by the command (see ``manifest.lock``). The command
    gets SIGTERM if the launcher dies. Returns the exit code (negative = killed by that signal, as
    ``subprocess``). A SIGTERM / SIGINT received by the launcher meanwhile is passed on to the
    command, which gets ``STOP_GRACE_SECONDS`` to stop; then ``Interrupted`` is raised so the
    caller can record it.
    """
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    received_before = len(STOP.received)
    with open(log_path, "ab") as log:
        if header:
            log.write(header.encode())
        # Same process group as the launcher: killing the group (Ctrl-C, scancel) stops both.
        STOP.starting = True
        try:
            parent = os.getpid()
            proc = subprocess.Popen(
                list(command),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={**child_env(env), "PYTHONUNBUFFERED": "1"},
                pass_fds=() if lock_fd is None else (lock_fd,),
                preexec_fn=lambda: child_setup(parent, received_before),
            )
            STOP.child = proc
        finally:
            STOP.starting = False
        if len(STOP.received) > received_before:  # arrived while the child was starting
            proc.send_signal(STOP.received[-1])
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
                rc = proc.wait(timeout=STOP_GRACE_SECONDS if len(STOP.received) > received_before else None)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
        finally:
            STOP.child = None
            proc.stdout.close()
            if proc.poll() is None:  # the launcher itself is being torn down: never orphan the task
                proc.kill()
                proc.wait()
    if tail is not None:
        tail[:] = [line for line in lines if line.strip()]
    if len(STOP.received) > received_before:
        raise Interrupted(STOP.received[received_before])
    return rc


def show_tail(tail: Sequence[str], log_path: str) -> None:
    if tail:
        print(f"[launcher] last lines of {log_path}:\n" + "\n".join(f"    {line}" for line in tail), file=sys.stderr)


def exit_reason(rc: int) -> str:
    """What an exit code means (a shell reports a command killed by signal N as 128 + N)."""
    signum = -rc if rc < 0 else rc - 128 if rc in (128 + signal.SIGTERM, 128 + signal.SIGINT) else None
    if signum is not None:
        try:
            return f"was stopped by {signal.Signals(signum).name} (exit code {rc})"
        except ValueError:
            pass
    return f"failed with exit code {rc}"
