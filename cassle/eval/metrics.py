"""Continual-learning metrics computed from the accuracy matrix.

``R`` is a T x T matrix (percent): ``R[i][j]`` is the top-1 accuracy on the test images of task j
of the all-class linear probe trained on the backbone as it was after task i (rows: "trained up to
task i", columns: "evaluated on task j"; both 0-based). Every function takes a nested list, a numpy
array or a torch tensor and returns plain Python floats (or ``None`` where the metric is undefined).

Definitions (REFERENCE.md section 5, CaSSLe paper section 5):

    A = sum_j n_j R[T-1][j] / sum_j n_j                              (average / linear accuracy)
    F = 1/(T-1) sum_{j=0}^{T-2} ( max_{i=j..T-2} R[i][j] - R[T-1][j] )        (forgetting)
    T = 1/(T-1) sum_{j=1}^{T-1} ( R[j-1][j] - b[j] )                     (forward transfer)

with n_j the number of test images of task j and b[j] the accuracy on task j of a linear probe on
a randomly initialised backbone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["as_matrix", "average_accuracy", "forgetting", "forward_transfer"]


def _to_numpy(x, what: str) -> np.ndarray:
    """float64 copy of a list / array / tensor (tensors are detached and moved to the CPU)."""
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().double().numpy()
    try:
        arr = np.array(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be numeric (nested list, numpy array or tensor): {err}") from None
    return arr


def as_matrix(R) -> np.ndarray:
    """Validate ``R`` and return it as a float64 (T, T) array.

    Raises ValueError when R is not a non-empty square 2-D matrix or holds NaN / inf (a missing
    evaluation must be an error, not a silently skewed mean).
    """
    arr = _to_numpy(R, "R")
    if arr.ndim != 2:
        raise ValueError(f"R must be a 2-D T x T accuracy matrix, got {arr.ndim} dimension(s) (shape {arr.shape})")
    if arr.shape[0] == 0 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"R must be a non-empty square T x T accuracy matrix, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = [tuple(int(v) for v in ij) for ij in np.argwhere(bad)[:5]]
        raise ValueError(f"R holds NaN or inf at (row, col) {where}: every R[i][j] must be evaluated")
    return arr


def _vector(x, T: int, what: str) -> np.ndarray:
    arr = _to_numpy(x, what)
    if arr.shape != (T,):
        raise ValueError(f"{what} must have one value per task (length {T}), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} holds NaN or inf: {arr.tolist()}")
    return arr


def average_accuracy(R, task_sizes: Sequence[float] | None = None) -> float:
    """A: accuracy on the whole test set after the last task, from the last row of R.

    The paper's A is the top-1 of the all-class probe on the *whole* test set. That is the mean of
    the last row weighted by the number of test images per task, ``task_sizes`` (n_j above). With
    ``task_sizes=None`` all tasks weigh the same, which is exact when every task has the same
    number of test images (class-incremental CIFAR-100 / ImageNet-100 with equal tasks); pass the
    real sizes when they differ (e.g. DomainNet domains).
    """
    arr = as_matrix(R)
    T = arr.shape[0]
    if task_sizes is None:
        w = np.ones(T)
    else:
        w = _vector(task_sizes, T, "task_sizes")
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"task_sizes must be non-negative with a positive sum, got {w.tolist()}")
    return float(np.dot(w, arr[-1]) / w.sum())


def forgetting(R) -> float | None:
    """F: mean over the old tasks j < T-1 of (best earlier accuracy on j) - (final accuracy on j).

    "Best earlier" is ``max_{i=j..T-2} R[i][j]``: the rows from the one right after task j was
    learned up to the one before the last task (rows before j measure task j before it was seen, so
    they are not "forgetting"). Positive = forgotten; negative values (the task improved later) are
    kept, not clipped. Returns None for T = 1 (no old task).
    """
    arr = as_matrix(R)
    T = arr.shape[0]
    if T == 1:
        return None
    drops = [arr[j : T - 1, j].max() - arr[T - 1, j] for j in range(T - 1)]
    return float(np.mean(drops))


def forward_transfer(R, random_baseline) -> float | None:
    """T: mean over tasks j >= 1 of ``R[j-1][j] - b[j]``.

    ``R[j-1][j]`` is the accuracy on task j before it was trained on; ``b[j]`` (``random_baseline``,
    length T, percent) the accuracy on task j of the same probe on a randomly initialised backbone.
    ``b[0]`` must be given (length T) but is not used. Returns None for T = 1 (no later task).
    """
    arr = as_matrix(R)
    T = arr.shape[0]
    b = _vector(random_baseline, T, "random_baseline")
    if T == 1:
        return None
    return float(np.mean([arr[j - 1, j] - b[j] for j in range(1, T)]))
