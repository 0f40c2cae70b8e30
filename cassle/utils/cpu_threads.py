"""CPU threads that degrade gracefully on a shared machine.

Two settings, both deterministic (neither depends on the machine's load at start-up):

- The launcher starts every task and evaluation with ``OMP_WAIT_POLICY=PASSIVE`` unless the
  environment already sets it: OpenMP's worker threads then sleep at a barrier instead of spinning
  on a core, so a run that shares its cores with other jobs loses time in proportion to the
  sharing instead of burning its slice on threads that wait for a descheduled one. The policy
  changes when threads wait, never what they compute. (libgomp reads it when the library loads,
  hence an environment variable of the child, not a call.)
- ``--cpu_threads N`` (main_continual.py, main_linear.py) caps torch's intra-op threads of a CPU run;
  0 (default) keeps torch's own choice (one per core, or ``OMP_NUM_THREADS``). Two runs side by
  side on two cores: ``--cpu_threads 1`` each (scripts/demo.sh does so through OMP_NUM_THREADS).
"""

from __future__ import annotations

import os

CHILD_ENV_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


def child_env(extra: dict | None = None) -> dict:
    """The environment of a launched task: the defaults above, then ours, then ``extra``."""
    return {**CHILD_ENV_DEFAULTS, **os.environ, **(extra or {})}


def apply_cpu_threads(threads: int) -> None:
    """Set torch's intra-op threads to ``threads`` when it is positive (0: leave torch's choice)."""
    if threads < 0:
        raise ValueError(f"--cpu_threads {threads}: must be 0 (torch's default) or a positive count")
    if threads:
        import torch

        torch.set_num_threads(threads)
