"""W-MSE (Ermolov et al., 2021): MSE between views after whitening the batch.

    L = 1/P sum_{pairs (i, j) of views} 2 - 2 mean_n cos(W(v_i)_n, W(v_j)_n)

v = projector(f(x)); W whitens each of the random slices of --whitening_size rows of a view
(W(x) = (x - mean) L^-T with L L^T = cov(x), Cholesky, see `whiten`), --whitening_iters times
with fresh slices, as the original; each process whitens its own batch. The loss is
``wmse_loss_func`` with the original's default ``simplified=True`` (the second view detached).
The distillers get the projections v before whitening.
"""

from __future__ import annotations

import argparse

import torch

from cassle.losses import wmse_loss_func
from cassle.methods.base import BaseMethod, StepOutput, mlp


def whiten(x: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Cholesky whitening of a batch x (M, D), in float32 at least::

        xc = x - mean(x);  C = (1 - eps) xc^T xc / (M - 1) + eps I;  L = chol(C);  out = xc L^-T

    so that out^T out / (M - 1) = I. No host sync: cholesky_ex does not check its result (a
    singular C gives non-finite values, which the NaN watch of the step reports).
    """
    x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    with torch.autocast(device_type=x.device.type, enabled=False):
        xc = x - x.mean(dim=0, keepdim=True)
        eye = torch.eye(x.shape[1], device=x.device, dtype=x.dtype)
        cov = (1 - eps) * (xc.T @ xc) / (x.shape[0] - 1) + eps * eye
        chol = torch.linalg.cholesky_ex(cov)[0]
        inv = torch.linalg.solve_triangular(chol, eye, upper=False)  # L^-1
        return xc @ inv.T


class WMSE(BaseMethod):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        args = self.hparams
        if args.whitening_size <= args.output_dim:
            raise ValueError(
                f"--whitening_size {args.whitening_size} must exceed --output_dim "
                f"{args.output_dim}: the covariance of fewer rows is singular"
            )
        if args.batch_size % args.whitening_size:
            raise ValueError(
                f"--batch_size {args.batch_size} (per process) must be a multiple of "
                f"--whitening_size {args.whitening_size}"
            )
        self.projector = mlp(self.features_dim, args.proj_hidden_dim, args.output_dim)

    @staticmethod
    def add_model_specific_args(parser: argparse.ArgumentParser) -> None:
        BaseMethod.add_model_specific_args(parser)
        group = parser.add_argument_group("wmse")
        group.add_argument("--proj_hidden_dim", type=int, default=1024)
        group.add_argument("--output_dim", type=int, default=128)
        group.add_argument("--whitening_iters", type=int, default=1)
        group.add_argument("--whitening_size", type=int, default=256)
        group.add_argument("--whitening_eps", type=float, default=0.0)

    def learnable_params(self) -> list[dict]:
        return super().learnable_params() + [{"name": "projector", "params": list(self.projector.parameters())}]

    def wmse_loss(self, v: list[torch.Tensor]) -> torch.Tensor:
        hp, n = self.hparams, v[0].shape[0]
        if n % hp.whitening_size:
            raise ValueError(f"a batch of {n} is not a multiple of --whitening_size {hp.whitening_size}")
        losses = []
        for _ in range(hp.whitening_iters):
            perm = torch.randperm(n, device=v[0].device).view(-1, hp.whitening_size)
            inverse = torch.argsort(perm.reshape(-1))
            # whiten each slice of each view, then put the rows back in the batch's order
            w = [torch.cat([whiten(vi[idx], hp.whitening_eps) for idx in perm])[inverse] for vi in v]
            losses += [wmse_loss_func(w[i], w[j]) for i in range(len(w)) for j in range(i + 1, len(w))]
        return torch.stack(losses).mean()

    def ssl_step(self, views, targets) -> StepOutput:
        feats = [self.backbone(v) for v in views]
        z = [self.projector(f) for f in feats]
        return StepOutput(loss=self.wmse_loss(z), feats=feats, z=z)
