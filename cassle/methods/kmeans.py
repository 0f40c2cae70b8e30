"""Spherical k-means over DeepCluster-v2's memory bank, across processes (as the original).

Each process holds a memory of its own samples: ``embeddings`` (V, M, D), normalised, one bank per
view, and ``indexes`` (M,) their dataset indexes. For head h with K_h centroids (bank v = h mod V):

* init: K_h rows of rank 0's bank, drawn with ``generator`` (seeded by the caller: a resumed
  epoch draws the same rows), broadcast to every process;
* ``iters`` times: assign each row to its nearest centroid (largest dot product), then each
  centroid <- normalise(sum of its rows over all processes / their count) (empty ones stay);
* final assignment; the assignments of every process are gathered and scattered by dataset
  index into a (P, S) table, S = 1 + the largest index (-1: a sample not in any memory).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F

from cassle.utils.distributed import all_reduce_sum, gather, is_distributed


@torch.no_grad()
def spherical_kmeans(
    embeddings: torch.Tensor,
    indexes: torch.Tensor,
    num_prototypes: Sequence[int],
    iters: int,
    generator: torch.Generator | None = None,
    init: Sequence[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Returns (assignments (P, S) long, centroids: P tensors (K_h, D)). See the module doc.
    ``init`` (tests): rank 0's initial centroids per head instead of the drawn rows."""
    views, size, dim = embeddings.shape
    device = embeddings.device
    all_indexes = gather(indexes)
    table_size = int(all_indexes.max()) + 1 if all_indexes.numel() else 0
    assignments = torch.full((len(num_prototypes), table_size), -1, dtype=torch.long, device=device)
    centroids_list = []
    for h, k in enumerate(num_prototypes):
        bank = embeddings[h % views]
        if k > size:
            raise ValueError(
                f"{k} prototypes need a memory of at least {k} samples per process, "
                f"got {size}: lower --num_prototypes or raise the batch size"
            )
        if init is not None:
            centroids = init[h].to(device=device, dtype=bank.dtype).clone()
        else:
            centroids = bank[torch.randperm(size, generator=generator)[:k].to(device)].clone()
        if is_distributed() and dist.get_world_size() > 1:
            dist.broadcast(centroids, 0)
        for it in range(iters + 1):
            local = (bank @ centroids.T).argmax(dim=1)  # (M,) nearest centroid
            if it == iters:
                break
            counts = torch.zeros(k, device=device, dtype=bank.dtype).index_add_(
                0, local, torch.ones_like(local, dtype=bank.dtype)
            )
            sums = torch.zeros(k, dim, device=device, dtype=bank.dtype).index_add_(0, local, bank)
            counts, sums = all_reduce_sum(counts), all_reduce_sum(sums)
            filled = counts > 0
            centroids[filled] = sums[filled] / counts[filled].unsqueeze(1)
            centroids = F.normalize(centroids, dim=1)
        centroids_list.append(centroids)
        assignments[h, all_indexes] = gather(local)
    return assignments, centroids_list


def kmeans_generator(seed: int, task_idx: int, epoch: int) -> torch.Generator:
    """The centroid draw of (seed, task, epoch): the same after a resume."""
    return torch.Generator().manual_seed((seed * 1000003 + task_idx) * 100003 + epoch)
