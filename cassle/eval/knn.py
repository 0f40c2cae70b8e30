"""Weighted k-nearest-neighbour classifier on backbone features (the "kNN monitor").

For every test feature x, take its k nearest training features x_1..x_k (labels y_1..y_k) and
predict ``argmax_c sum_{m=1..k} w_m [y_m == c]`` with

- ``distance="cosine"`` (the InstDisc weighted kNN, k = 20, T = 0.07): features are
  L2-normalised, similarity s_m = <x, x_m>, neighbours = the k largest s_m, w_m = exp(s_m / T).
- ``distance="euclidean"``: d_m = ||x - x_m||_2 on the raw (not normalised) features,
  neighbours = the k smallest d_m, w_m = 1 / (d_m + eps), eps = 1e-5; T is not used.
  Why inverse distance and not exp(-d / T): the distance scale depends on the method and the
  feature norm, so a fixed T would either make exp(-d / T) underflow to 0 for every neighbour or
  make all weights equal; 1 / d only depends on ratios of distances (scaling all features by c
  scales every weight by 1 / c and leaves the vote unchanged), and eps keeps an exact duplicate
  (d = 0) finite while letting it dominate the vote.

Ties in the vote go to the lowest class index (``argmax``). When k exceeds the number of training
samples, all training samples vote.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["weighted_knn_predict", "knn_accuracy", "KNNMonitor", "DISTANCES"]

DISTANCES = ("cosine", "euclidean")
EUCLIDEAN_EPS = 1e-5


def _check(train_feats, train_labels, test_feats, num_classes, k, T, distance, chunk_size) -> None:
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; valid choices: {', '.join(DISTANCES)}")
    if train_feats.ndim != 2 or test_feats.ndim != 2:
        raise ValueError(
            f"features must be 2-D (N, D), got train {tuple(train_feats.shape)}, test {tuple(test_feats.shape)}"
        )
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(f"train and test feature dims differ: {train_feats.shape[1]} vs {test_feats.shape[1]}")
    if train_labels.ndim != 1 or train_labels.shape[0] != train_feats.shape[0]:
        raise ValueError(
            f"train_labels must be 1-D with one label per train feature ({train_feats.shape[0]}), "
            f"got shape {tuple(train_labels.shape)}"
        )
    if train_feats.shape[0] == 0:
        raise ValueError("no training features: the kNN classifier needs at least one")
    if train_labels.dtype.is_floating_point or train_labels.dtype == torch.bool:
        raise ValueError(f"train_labels must be integer class indices, got dtype {train_labels.dtype}")
    if int(train_labels.min()) < 0 or int(train_labels.max()) >= num_classes:
        raise ValueError(
            f"train_labels must lie in [0, {num_classes}), got range "
            f"[{int(train_labels.min())}, {int(train_labels.max())}]"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if distance == "cosine" and not T > 0:
        raise ValueError(f"temperature T must be > 0, got {T}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")


@torch.no_grad()
def weighted_knn_predict(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    num_classes: int,
    k: int = 20,
    T: float = 0.07,
    distance: str = "cosine",
    chunk_size: int = 512,
) -> torch.Tensor:
    """Predicted class (int64, on ``test_feats.device``) for every row of ``test_feats``.

    Test rows are processed ``chunk_size`` at a time so that memory stays O(chunk_size * N_train).
    Computation runs in float32 (float64 inputs stay float64) on the device of ``test_feats``.
    """
    _check(train_feats, train_labels, test_feats, num_classes, k, T, distance, chunk_size)
    dev = test_feats.device
    dtype = torch.float64 if test_feats.dtype == torch.float64 else torch.float32
    train = train_feats.to(dev, dtype)
    test = test_feats.to(dtype)
    labels = train_labels.to(dev, torch.long)
    if distance == "cosine":
        train, test = F.normalize(train, dim=1), F.normalize(test, dim=1)
    k = min(k, train.shape[0])

    preds = []
    for start in range(0, test.shape[0], chunk_size):
        x = test[start : start + chunk_size]
        if distance == "cosine":
            sim, idx = (x @ train.T).topk(k, dim=1)
            weights = (sim / T).exp()
        else:
            dist, idx = torch.cdist(x, train).topk(k, dim=1, largest=False)
            weights = 1.0 / (dist + EUCLIDEAN_EPS)
        votes = torch.zeros(x.shape[0], num_classes, device=dev, dtype=dtype)
        votes.scatter_add_(1, labels[idx], weights)
        preds.append(votes.argmax(dim=1))
    if not preds:
        return torch.empty(0, dtype=torch.long, device=dev)
    return torch.cat(preds)


def knn_accuracy(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    **kwargs,
) -> float:
    """Top-1 accuracy (percent) of ``weighted_knn_predict``; kwargs: k, T, distance, chunk_size."""
    if test_labels.shape != (test_feats.shape[0],):
        raise ValueError(
            f"test_labels must be 1-D with one label per test feature ({test_feats.shape[0]}), "
            f"got shape {tuple(test_labels.shape)}"
        )
    if test_feats.shape[0] == 0:
        raise ValueError("no test features: accuracy is undefined")
    preds = weighted_knn_predict(train_feats, train_labels, test_feats, num_classes, **kwargs)
    return 100.0 * (preds.cpu() == test_labels.cpu().long()).double().mean().item()


def _gather_varsize(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (N_rank, ...) from every process; ranks may hold different N.

    all_gather needs equal shapes, so every rank pads to the largest N and the padding is cut off
    after the gather. Identity without an initialised process group.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    world = dist.get_world_size()
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes = [int(s) for s in sizes]
    padded = x.new_zeros((max(sizes), *x.shape[1:]))
    padded[: x.shape[0]] = x
    out = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(out, padded)
    return torch.cat([o[:s] for o, s in zip(out, sizes)])


class KNNMonitor:
    """Accumulates (features, labels) of a train and a test pass; ``compute()`` = kNN top-1 %.

    Lightning-free: the method calls ``update("train", feats, labels)`` on training batches (or a
    pass over the training set) and ``update("test", ...)`` in validation, ``compute()`` at the
    epoch end, then ``reset()``. Features are stored detached in float32 on their own device. With
    torch.distributed initialised, ``compute()`` gathers every rank's features first (all ranks must
    call it), so each rank returns the same global accuracy.
    """

    def __init__(self, num_classes: int, k: int = 20, T: float = 0.07, distance: str = "cosine", chunk_size: int = 512):
        if distance not in DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; valid choices: {', '.join(DISTANCES)}")
        self.num_classes, self.k, self.T, self.distance, self.chunk_size = num_classes, k, T, distance, chunk_size
        self.reset()

    def reset(self) -> None:
        self._feats: dict[str, list[torch.Tensor]] = {"train": [], "test": []}
        self._labels: dict[str, list[torch.Tensor]] = {"train": [], "test": []}

    def has(self, split: str) -> bool:
        return bool(self._feats[split])

    def clear(self, split: str) -> None:
        self._feats[split], self._labels[split] = [], []

    def update(self, train_or_test: str, feats: torch.Tensor, labels: torch.Tensor) -> None:
        if train_or_test not in self._feats:
            raise ValueError(f"update() takes 'train' or 'test', got {train_or_test!r}")
        if feats.ndim != 2 or labels.shape != (feats.shape[0],):
            raise ValueError(
                f"expected feats (B, D) and labels (B,), got {tuple(feats.shape)} and {tuple(labels.shape)}"
            )
        self._feats[train_or_test].append(feats.detach().float())
        self._labels[train_or_test].append(labels.detach().long())

    def _collect(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._feats[split]:
            raise RuntimeError(f"KNNMonitor.compute() called without any {split!r} features; call update() first")
        return _gather_varsize(torch.cat(self._feats[split])), _gather_varsize(torch.cat(self._labels[split]))

    def compute(self, distance: str | None = None) -> float:
        """kNN top-1 % with the monitor's distance, or ``distance`` when given."""
        train_f, train_y = self._collect("train")
        test_f, test_y = self._collect("test")
        return knn_accuracy(
            train_f,
            train_y,
            test_f,
            test_y,
            self.num_classes,
            k=self.k,
            T=self.T,
            distance=distance or self.distance,
            chunk_size=self.chunk_size,
        )
