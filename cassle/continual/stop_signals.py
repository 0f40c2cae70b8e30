"""The launcher's SIGTERM / SIGINT handling: passed on to the running task, recorded, then raised.

SIGTERM / SIGINT to the launcher are passed on to the running task (``run_task`` gives it
``STOP_GRACE_SECONDS`` to stop); the caller records the task as interrupted and the launcher exits
128 + signal; between tasks it stops at once (``Interrupted`` is raised in the main thread).
``STOP`` is installed by ``launcher.main``; ``run_task`` also works without it (library use).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

__all__ = ["Interrupted", "StopSignals", "STOP", "child_setup"]


class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """The launcher's SIGTERM / SIGINT handling for the whole run (main thread only).

    While a task runs the signal is passed on to it and recorded (``run_task`` raises
    ``Interrupted`` once the task has stopped); otherwise ``Interrupted`` is raised at once.
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
        raise Interrupted(signum)

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


STOP = StopSignals()  # installed by main(); run_task also works without it (library use)


def child_setup(parent: int, received_before: int) -> None:
    """In the child, between fork and exec.

    The forked child still has the launcher's Python signal handlers: a SIGTERM / SIGINT sent to
    it in that window would only be recorded there and lost at exec. Restore the defaults, and
    act on one that already arrived. Then ask for SIGTERM when the launcher dies (even by SIGKILL),
    so a task never runs on unsupervised (Linux; elsewhere a no-op).
    """
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    if len(STOP.received) > received_before:
        os.kill(os.getpid(), STOP.received[-1])
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the launcher died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
