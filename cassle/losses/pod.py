"""POD-spatial distillation of PODNet (Douillard et al., ECCV 2020).

For every stage l of the backbone, the activations h (B, C, H, W) of the current and the frozen
previous-task model (taken before the stage's final ReLU, ``cassle.strategies.stages``) are
squared, pooled along the width and along the height and compared:

    Phi(h) = normalise( [ sum_w h[:, c, y, w]^2  for c, y ]  ++  [ sum_y h[:, c, y, w]^2  for c, w ] )
    L_pod-spatial = 1/L sum_l  1/B sum_b || Phi(h_old_l)_b - Phi(h_new_l)_b ||_2

as PODNet's ``pod(..., collapse_channels="spatial")`` (squared maps, width- and height-pooled sums
concatenated into one C*(H+W) vector per image, L2-normalised; the normalisation makes the term
independent of the stage's size, which the paper's lambda = 3 for CIFAR-100 was tuned with).

    L_pod-flat = 1/B sum_b (1 - cos(f_b, f*_b))

on the pooled final features (PODNet's ``embeddings_similarity``, a cosine embedding loss).
The strategy weights both with lambda * sqrt(|C_seen| / |C_task|) (``strategies.frozen.POD``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cassle.losses._precision import full_precision


def pod_spatial_embedding(h: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C*(H+W)): width-pooled and height-pooled sums of h^2, L2-normalised."""
    if h.ndim != 4:
        raise ValueError(f"POD needs (B, C, H, W) stage outputs, got shape {tuple(h.shape)}")
    h = h**2
    width = h.sum(dim=3).flatten(1)  # (B, C*H)
    height = h.sum(dim=2).flatten(1)  # (B, C*W)
    return F.normalize(torch.cat([width, height], dim=1), dim=1)


@full_precision
def pod_spatial_loss(stages: Sequence[torch.Tensor], stages_old: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over stages of the mean per-image distance of the pooled embeddings."""
    if len(stages) != len(stages_old) or not stages:
        raise ValueError(
            f"pod_spatial_loss needs matching non-empty stage lists, got {len(stages)} and {len(stages_old)}"
        )
    total = stages[0].new_zeros(())
    for h, h_old in zip(stages, stages_old):
        if h.shape != h_old.shape:
            raise ValueError(f"stage shapes differ: {tuple(h.shape)} vs {tuple(h_old.shape)}")
        diff = pod_spatial_embedding(h) - pod_spatial_embedding(h_old.detach())
        total = total + diff.norm(dim=1).mean()
    return total / len(stages)


@full_precision
def pod_flat_loss(h: torch.Tensor, h_old: torch.Tensor) -> torch.Tensor:
    """POD-flat: mean over images of 1 - cos of the globally average-pooled maps (B, C, H, W)."""
    if h.shape != h_old.shape or h.ndim != 4:
        raise ValueError(
            f"pod_flat_loss needs two (B, C, H, W) maps of one shape, got {tuple(h.shape)} and {tuple(h_old.shape)}"
        )
    f, f_old = h.mean(dim=(2, 3)), h_old.detach().mean(dim=(2, 3))
    return (1 - F.cosine_similarity(f, f_old, dim=1, eps=1e-8)).mean()
