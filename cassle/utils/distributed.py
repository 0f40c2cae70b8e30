"""Distributed helpers for losses that need the whole (multi-process) batch.

Every function here is the identity (or the obvious single-process value) when
``torch.distributed`` is unavailable, not initialised, or has a single process, so the losses
can call them unconditionally.

Two loss semantics use these helpers (the losses' ``global_batch`` argument, the CLI's
``--distributed_loss``):

* local (the reference's, default): each process computes its loss on its own batch and DDP
  averages the gradients. Barlow Twins alone shares its correlation matrix through
  :func:`all_reduce_mean_local_grad`: the value is the mean over processes, the gradient that of
  the local term only (the reference all-reduces in place, outside autograd).
* global (opt-in): the exact loss of the concatenated batch, through :func:`gather` and
  :func:`all_reduce_sum`.  With ``W`` processes, each process computes the *same* global loss
  ``L``; DDP then averages the parameter gradients over the ``W`` processes.  For that average
  to be the gradient of ``L``, the gradient a process gets for its local input ``x_r`` must be
  ``sum_s dL_s/dx_r = W * dL/dx_r`` (the contributions of every process' copy of the loss).
  Both autograd functions therefore all-reduce (sum) the incoming gradient in their backward.

Losses computed purely locally in both semantics (BYOL, MoCo, the distill terms but the
decorrelative one) need nothing.

All processes must pass tensors of the same shape (DistributedSampler with equal per-process
batches, as Lightning uses, guarantees it); ``all_gather`` does not support ragged inputs.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = [
    "is_distributed",
    "world_size",
    "rank",
    "gather",
    "all_reduce_sum",
    "all_reduce_mean",
    "all_reduce_mean_local_grad",
    "all_reduce_max",
]


def is_distributed() -> bool:
    """True when torch.distributed is available and a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """Rank of this process (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def _active() -> bool:
    return is_distributed() and dist.get_world_size() > 1


class _GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 whose backward returns this process' slice of the summed grad.

    Forward: (N, ...) on each of W processes -> (W * N, ...), rank order.
    Backward: every process holds dL_s/d(gathered); the local input appears in all W losses, so
    its true gradient is the sum over processes of the matching slice (see module docstring).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        ctx.n = x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        grad = grad.contiguous().clone()  # all_reduce is in place; never touch autograd's buffer
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = dist.get_rank() * ctx.n
        return grad[start : start + ctx.n]


class _AllReduceSumWithGrad(torch.autograd.Function):
    """Differentiable all_reduce(SUM): the adjoint of a sum over processes is again a sum."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = x.contiguous().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


class _AllReduceMeanLocalGrad(torch.autograd.Function):
    """Forward: the mean over processes. Backward: grad / W for the local input, no
    communication: as if the other processes' terms were constants (the reference's in-place,
    outside-autograd all-reduce followed by an in-autograd division by W)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = x.detach().contiguous().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out / dist.get_world_size()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return grad / dist.get_world_size()


def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (N, ...) of all processes along dim 0 -> (W * N, ...), rank order.

    Gradients flow back to this process' slice (summed over processes, see module docstring).
    Identity without an initialised multi-process group.
    """
    if not _active():
        return x
    return _GatherWithGrad.apply(x)


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over processes (differentiable, out of place); identity when single process."""
    if not _active():
        return x
    return _AllReduceSumWithGrad.apply(x)


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over processes (differentiable, out of place); identity when single process."""
    if not _active():
        return x
    return _AllReduceSumWithGrad.apply(x) / dist.get_world_size()


def all_reduce_mean_local_grad(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over processes whose gradient flows to the local ``x`` only (scaled 1/W);
    identity when single process. See :class:`_AllReduceMeanLocalGrad`."""
    if not _active():
        return x
    return _AllReduceMeanLocalGrad.apply(x)


def all_reduce_max(x: torch.Tensor) -> torch.Tensor:
    """Element-wise max of ``x`` over processes, without gradient (used for numerical shifts)."""
    if not _active():
        return x.detach()
    out = x.detach().contiguous().clone()
    dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out
