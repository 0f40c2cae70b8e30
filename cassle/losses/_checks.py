"""Input checks shared by the loss functions: fail early with a message naming the problem."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_matrix(name: str, x: object) -> torch.Tensor:
    """``x`` must be a 2-D floating-point tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def check_pair(name_a: str, a: object, name_b: str, b: object) -> None:
    """Two 2-D floating tensors of identical shape and dtype."""
    check_matrix(name_a, a)
    check_matrix(name_b, b)
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dtype != b.dtype:
        raise TypeError(f"{name_a} and {name_b} must have the same dtype, got {a.dtype} and {b.dtype}")


def check_positive(name: str, value: float) -> None:
    """A strictly positive number (temperatures, epsilons)."""
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def check_min_batch(n: int, minimum: int, loss: str) -> None:
    """Batch statistics need at least ``minimum`` samples (over all processes)."""
    if n < minimum:
        raise ValueError(f"{loss} needs a (global) batch of at least {minimum} samples, got {n}")


def check_views(name: str, views: object, minimum: int) -> Sequence[torch.Tensor]:
    """A list/tuple of at least ``minimum`` 2-D floating tensors of one shape."""
    if isinstance(views, torch.Tensor) or not isinstance(views, Sequence):
        raise TypeError(f"{name} must be a list or tuple of (N, K) tensors, one per view, got {type(views).__name__}")
    if len(views) < minimum:
        raise ValueError(f"{name} must hold at least {minimum} views, got {len(views)}")
    for i, v in enumerate(views):
        check_matrix(f"{name}[{i}]", v)
        if v.shape != views[0].shape:
            raise ValueError(
                f"all of {name} must have one shape, {name}[0] is {tuple(views[0].shape)} "
                f"and {name}[{i}] is {tuple(v.shape)}"
            )
    return views
