"""Lifelong Unsupervised Mixup, LUMP (Madaan et al., ICLR 2022).

Each view of the current batch is mixed with a view of buffer images,

    x~ = lambda * x + (1 - lambda) * x_buf,     lambda ~ Beta(alpha, alpha)   (one lambda per step)

and the SSL loss is computed on the mixed views only.
"""

from __future__ import annotations

import torch


def mixup(x: torch.Tensor, x_buf: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
    """lam * x + (1 - lam) * x_buf, for images of equal shape (B, C, H, W); lam a scalar."""
    if x.shape != x_buf.shape:
        raise ValueError(f"mixup needs equal shapes, got {tuple(x.shape)} and {tuple(x_buf.shape)}")
    return lam * x + (1 - lam) * x_buf


def sample_mixup_lambda(alpha: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """lambda ~ Beta(alpha, alpha), a 0-dim tensor drawn on ``device`` (no host sync)."""
    if alpha <= 0:
        raise ValueError(f"--lump_alpha must be > 0, got {alpha}")
    # torch.full, not torch.tensor (a host-to-device copy), and no argument validation (a
    # device-to-host read): both would stall the GPU every step.
    a = torch.full((), float(alpha), device=device)
    return torch.distributions.Beta(a, a, validate_args=False).sample()
