"""Learning-rate schedules of the reference: warmup_cosine (default), cosine, step, exponential, none.

Granularity: like the reference (whose Lightning version stepped schedulers once per epoch by
default), warmup_cosine and cosine step once per *epoch* by default; ``interval="step"``
(``--scheduler_interval step``) is the opt-in per-optimizer-step version of the same curves.
step and exponential are defined per epoch only.

warmup_cosine (at step k of the chosen unit, for a param group with base lr b; W warmup units,
T total units):

    k < W:        lr_k = warmup_start_lr + k * (b - warmup_start_lr) / max(1, W - 1)
    W <= k < T:   lr_k = min_lr + (b - min_lr) * (1 + cos(pi * (k - W) / (T - W))) / 2
    k >= T:       lr_k = min_lr        (held; nothing should step past T)

These are the closed-form equations of the reference's LinearWarmupCosineAnnealingLR (Lightning
Bolts) with warmup_epochs = W and max_epochs = T, counted in epochs as the reference (or in
optimizer steps with interval "step"): the warmup reaches b at unit W - 1 (the max(1, W - 1)
denominator) and the cosine starts again from b at unit W; lr_T = min_lr is never used by the
last unit T - 1. warmup_start_lr and min_lr are absolute values shared by all groups
(reference behaviour): a group with base lr 0.1 (e.g. the online classifier) and one with 0.4 both
start at 0.003 and both end at min_lr. W = 0 means a plain cosine from b. When W >= T the run
ends inside the warmup (faithful; a warning is issued).

The reference offered warmup_cosine, cosine and step (MultiStepLR, gamma 0.1); exponential is an
addition here, with gamma its own argument (--scheduler_gamma).
"""

import math
import warnings

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, ExponentialLR, LambdaLR, LRScheduler, MultiStepLR

# name (CLI value of --scheduler) -> the intervals (Lightning's "epoch" / "step") it can run at;
# the first is the default (the reference's).
SCHEDULERS: dict[str, tuple[str, ...]] = {
    "warmup_cosine": ("epoch", "step"),
    "cosine": ("epoch", "step"),
    "step": ("epoch",),
    "exponential": ("epoch",),
    "none": (),
}
INTERVALS = ("epoch", "step")


def warmup_cosine_lr(
    k: int, base_lr: float, warmup_steps: int, total_steps: int, warmup_start_lr: float = 0.003, min_lr: float = 0.0
) -> float:
    """lr at step k of the warmup-cosine schedule (module docstring)."""
    if k < warmup_steps:
        return warmup_start_lr + k * (base_lr - warmup_start_lr) / max(1, warmup_steps - 1)
    if k >= total_steps:
        return min_lr
    progress = (k - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2


def warmup_cosine(
    optimizer: Optimizer, warmup_steps: int, total_steps: int, warmup_start_lr: float = 0.003, min_lr: float = 0.0
) -> LambdaLR:
    """Linear warmup + cosine decay as a LambdaLR, one lambda per param group; k counts scheduler
    steps (epochs or optimizer steps, whichever the caller steps it at).

    LambdaLR multiplies each group's base lr by its lambda, so the lambda is the absolute schedule
    value divided by that group's base lr; every group's base lr must therefore be > 0.
    """
    if warmup_steps < 0 or total_steps < 1:
        raise ValueError(
            f"warmup_cosine needs warmup_steps >= 0 and total_steps >= 1, "
            f"got warmup_steps={warmup_steps}, total_steps={total_steps}"
        )
    if warmup_steps >= total_steps:
        warnings.warn(
            f"warmup_steps ({warmup_steps}) >= total_steps ({total_steps}): the run ends before the warmup does",
            stacklevel=2,
        )
    lambdas = []
    for i, group in enumerate(optimizer.param_groups):
        base = group.get("initial_lr", group["lr"])  # what LambdaLR will use as base lr
        if base <= 0:
            raise ValueError(f"warmup_cosine: param group {i} has base lr {base}; it must be > 0")
        lambdas.append(lambda k, b=base: warmup_cosine_lr(k, b, warmup_steps, total_steps, warmup_start_lr, min_lr) / b)
    return LambdaLR(optimizer, lambdas)


def build_scheduler(
    name: str,
    optimizer: Optimizer,
    *,
    steps_per_epoch: int,
    max_epochs: int,
    warmup_epochs: float = 10,
    warmup_start_lr: float = 0.003,
    min_lr: float = 0.0,
    lr_decay_steps: list[int] | None = None,
    gamma: float = 0.1,
    interval: str = "epoch",
) -> tuple[LRScheduler | None, str | None]:
    """Build scheduler `name` (a key of SCHEDULERS); returns (scheduler, interval).

    interval is Lightning's "epoch" (the reference's granularity, default) or "step"; "none"
    returns (None, None). warmup_cosine / cosine count the chosen unit: per epoch, total =
    max_epochs and warmup = warmup_epochs (a whole number); per step, total = max_epochs *
    steps_per_epoch and warmup = int(warmup_epochs * steps_per_epoch). step: MultiStepLR at the
    epochs `lr_decay_steps`, factor gamma. exponential: ExponentialLR, factor gamma per epoch.
    """
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; valid names: {list(SCHEDULERS)}")
    if interval not in INTERVALS:
        raise ValueError(f"unknown scheduler interval {interval!r}; valid: {', '.join(INTERVALS)}")
    if name != "none" and interval not in SCHEDULERS[name]:
        raise ValueError(
            f"scheduler {name!r} steps per epoch only; --scheduler_interval step applies to warmup_cosine and cosine"
        )
    if steps_per_epoch < 1 or max_epochs < 1 or warmup_epochs < 0:
        raise ValueError(
            "build_scheduler needs steps_per_epoch >= 1, max_epochs >= 1, warmup_epochs >= 0; got "
            f"{steps_per_epoch}, {max_epochs}, {warmup_epochs}"
        )
    per_step = interval == "step"
    if name == "warmup_cosine" and not per_step and warmup_epochs != int(warmup_epochs):
        raise ValueError(
            f"--warmup_epochs {warmup_epochs} is not a whole number of epochs: a "
            "per-epoch schedule needs one (or use --scheduler_interval step)"
        )
    total_steps = max_epochs * steps_per_epoch if per_step else max_epochs
    if name == "warmup_cosine":
        warmup_steps = int(warmup_epochs * steps_per_epoch) if per_step else int(warmup_epochs)
        sched = warmup_cosine(optimizer, warmup_steps, total_steps, warmup_start_lr, min_lr)
    elif name == "cosine":
        sched = CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=min_lr)
    elif name == "step":
        if not lr_decay_steps:
            raise ValueError("scheduler 'step' needs lr_decay_steps (epochs at which lr *= gamma)")
        sched = MultiStepLR(optimizer, milestones=list(lr_decay_steps), gamma=gamma)
    elif name == "exponential":
        sched = ExponentialLR(optimizer, gamma=gamma)
    else:  # "none"
        return None, None
    return sched, interval
