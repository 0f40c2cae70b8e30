"""How a training set is cut into continual-learning tasks (pure functions, no I/O).

* class-incremental: classes are permuted by ``torch.randperm(num_classes)`` right after
  ``torch.manual_seed(5)`` and the permutation is chunked into ``num_tasks`` equal tasks
  (the reference protocol; the same order must be regenerated for evaluation).
* data-incremental: the training set is permuted by a generator seeded 42 and cut into
  ``num_tasks`` disjoint chunks of ``N // T`` samples; task 0 takes the remainder, i.e. task 0 is
  ``perm[: N//T + N%T]`` and task t > 0 is the next ``N//T`` entries. This is exactly what
  ``torch.utils.data.random_split(range(N), [N//T + N%T, N//T, ...], generator)`` selects.
* domain-incremental: task t is the t-th domain of the task order (``--domains``; DomainNet's
  reference order ``DOMAINNET_DOMAINS`` by default); there must be one task per domain.

Every function leaves the global torch RNG untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

DOMAINNET_DOMAINS = ("real", "quickdraw", "painting", "sketch", "infograph", "clipart")
CLASS_ORDER_SEED = 5
DATA_SPLIT_SEED = 42


def _check_task(num_tasks: int, task_idx: int | None = None) -> None:
    if not isinstance(num_tasks, int) or num_tasks < 1:
        raise ValueError(f"num_tasks must be a positive integer, got {num_tasks!r}")
    if task_idx is not None and not (isinstance(task_idx, int) and 0 <= task_idx < num_tasks):
        raise ValueError(f"task_idx must be in [0, {num_tasks - 1}] for num_tasks={num_tasks}, got {task_idx!r}")


def _as_long(x: Sequence[int] | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.long).reshape(-1)


def class_order(num_classes: int, seed: int = CLASS_ORDER_SEED) -> torch.Tensor:
    """The reference class permutation, ``torch.manual_seed(seed); torch.randperm(num_classes)``.

    Computed with a private CPU generator seeded ``seed``: it yields the same numbers as seeding
    the global generator (both are the CPU Mersenne Twister; pinned in the tests) but leaves the
    global CPU and CUDA RNG states untouched.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return torch.randperm(num_classes, generator=torch.Generator().manual_seed(seed))


def class_split_tasks(num_classes: int, num_tasks: int, seed: int = CLASS_ORDER_SEED) -> list[list[int]]:
    """Classes of every task: the class order chunked into ``num_tasks`` equal parts."""
    _check_task(num_tasks)
    if num_classes % num_tasks != 0:
        raise ValueError(
            f"class split needs num_classes divisible by num_tasks: num_classes={num_classes}, num_tasks={num_tasks}"
        )
    per_task = num_classes // num_tasks
    order = class_order(num_classes, seed).tolist()
    return [order[t * per_task : (t + 1) * per_task] for t in range(num_tasks)]


def task_of_class(num_classes: int, num_tasks: int, seed: int = CLASS_ORDER_SEED) -> torch.Tensor:
    """``(num_classes,)`` long tensor: the task each class belongs to (for per-task evaluation)."""
    mapping = torch.empty(num_classes, dtype=torch.long)
    for t, classes in enumerate(class_split_tasks(num_classes, num_tasks, seed)):
        mapping[classes] = t
    return mapping


def class_split_indices(
    targets: Sequence[int] | torch.Tensor,
    num_tasks: int,
    task_idx: int,
    num_classes: int | None = None,
    seed: int = CLASS_ORDER_SEED,
) -> torch.Tensor:
    """Sorted indices of the samples whose class belongs to task ``task_idx``.

    ``num_classes`` defaults to ``max(targets) + 1``; pass the dataset's class count when some
    classes may be absent from ``targets``.
    """
    _check_task(num_tasks, task_idx)
    targets = _as_long(targets)
    if num_classes is None:
        num_classes = int(targets.max()) + 1 if targets.numel() else 0
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
        raise ValueError(
            f"targets must lie in [0, {num_classes - 1}], got range [{int(targets.min())}, {int(targets.max())}]"
        )
    classes = torch.tensor(class_split_tasks(num_classes, num_tasks, seed)[task_idx], dtype=torch.long)
    return torch.nonzero(torch.isin(targets, classes), as_tuple=False).reshape(-1)


def data_split_indices(num_samples: int, num_tasks: int, task_idx: int, seed: int = DATA_SPLIT_SEED) -> torch.Tensor:
    """Indices of task ``task_idx`` in the data-incremental split (see module docstring).

    Uses its own ``torch.Generator`` seeded ``seed``, independent of the global RNG.
    """
    _check_task(num_tasks, task_idx)
    if num_samples < num_tasks:
        raise ValueError(
            f"data split needs at least one sample per task: num_samples={num_samples}, num_tasks={num_tasks}"
        )
    per_task, remainder = divmod(num_samples, num_tasks)
    perm = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed))
    if task_idx == 0:
        return perm[: per_task + remainder]
    start = remainder + task_idx * per_task
    return perm[start : start + per_task]


def domain_split_indices(
    domains: Sequence[int] | torch.Tensor,
    num_tasks: int,
    task_idx: int,
    num_domains: int = len(DOMAINNET_DOMAINS),
    domain_names: Sequence[str] | None = None,
) -> torch.Tensor:
    """Sorted indices of the samples of domain ``task_idx`` (task t = domain t of the task order).

    One task per domain: ``num_tasks`` must equal ``num_domains`` (6 for DomainNet), otherwise
    some domain would be silently dropped or two merged. ``domain_names`` only names them in errors.
    """
    _check_task(num_tasks, task_idx)
    if num_tasks != num_domains:
        names = ", ".join(domain_names) if domain_names else f"{num_domains} domains"
        raise ValueError(
            f"domain split needs one task per domain: num_tasks={num_tasks} but the data "
            f"has {num_domains} domains ({names})"
        )
    return torch.nonzero(_as_long(domains) == task_idx, as_tuple=False).reshape(-1)
