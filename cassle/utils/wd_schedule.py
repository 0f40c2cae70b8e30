"""DINO's weight-decay schedule: a cosine from ``--weight_decay`` to ``--weight_decay_end``.

At optimiser step k of a task with K steps (Caron et al. 2021; facebookresearch/dino utils.py
``cosine_scheduler`` without warmup, applied per iteration in main_dino.py ``train_one_epoch``)::

    wd_k = wd_end + (wd - wd_end) * (1 + cos(pi * k / K)) / 2        (k >= K: wd_end)

so wd_0 = wd and the value approaches wd_end at the end of the task (DINO: 0.04 -> 0.4). It is set
before each step on the parameter groups that are regularised: those that take the default
``--weight_decay`` (DINO: ``param_groups[0]``, the weights; never the bias / norm groups of
``--exclude_bias_n_norm`` nor a group with its own weight decay such as the online classifier's 0).
A pure function of the step: a resumed run (Lightning restores the step) continues exactly, and
every task runs the whole schedule, as the lr and the momentum schedules do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

SCHEDULED = "wd_scheduled"  # param-group key: True on the groups the schedule drives


def weight_decay_at(step: int, total_steps: int, base: float, end: float) -> float:
    """wd_k of the module docstring."""
    progress = min(max(step, 0), total_steps) / max(1, total_steps)
    return end + (base - end) * (1 + math.cos(math.pi * progress)) / 2


def mark_default_groups(groups: Iterable[dict]) -> None:
    """Before the default weight decay is filled in: a group without its own is scheduled."""
    for group in groups:
        group[SCHEDULED] = "weight_decay" not in group


def settle_marks(groups: Iterable[dict]) -> None:
    """After the bias / norm split: only groups that are actually decayed stay scheduled."""
    for group in groups:
        group[SCHEDULED] = bool(group.get(SCHEDULED)) and group["weight_decay"] > 0


def apply_weight_decay(optimizer, step: int, total_steps: int, base: float, end: float) -> float:
    """Set wd_k on the scheduled groups of ``optimizer``; returns wd_k."""
    wd = weight_decay_at(step, total_steps, base, end)
    for group in optimizer.param_groups:
        if group.get(SCHEDULED):
            group["weight_decay"] = wd
    return wd
