"""LARS: SGD with momentum and a layer-wise trust ratio (You et al. 2017), reference semantics.

This is the LARS used by the CaSSLe / solo-learn code of its time (their "LARS wrapper" around
`torch.optim.SGD`), written as one optimizer. For every parameter p with gradient g in a group
with lr, momentum m, weight decay wd, eta, eps and clip_lr:

    if the group has exclude_from_lars=True (biases and normalisation parameters):
        d = g                                       # plain SGD, and no weight decay
    elif ||p|| > 0 and ||g|| > 0:
        r = eta * ||p|| / (||g|| + wd * ||p|| + eps)     # trust ratio, ||g|| WITHOUT weight decay
        if clip_lr:  r = min(r / lr, 1)                  # LARC clipping: step size = min(eta-ratio, lr)
        d = r * (g + wd * p)                             # weight decay added before scaling
    else:                                               # zero weights (e.g. zero-init) or zero grad
        d = g                                           # unscaled and WITHOUT weight decay (reference)

    b = d                      on the first step,   b = m * b + (1 - dampening) * d  afterwards
    p = p - lr * b             (nesterov: p = p - lr * (d + m * b))

Defaults follow the reference flags: momentum 0.9, eta 0.02 (`--eta_lars`), clip_lr False
(`--grad_clip_lars`, the CaSSLe scripts switch it on), eps 1e-8, dampening 0, no nesterov.

Exclusion is per parameter group (`exclude_from_lars=True`); `exclude_bias_and_norm_param_groups`
builds the groups (the reference's `--exclude_bias_n_norm`, which tested `p.ndim == 1`). Excluded
parameters get no weight decay in the reference (its wrapper zeroed the groups' weight decay around
the inner SGD step), so an excluded group's weight_decay defaults to 0 and a non-zero value is an
error. Note: a group that is *not* excluded still gets the trust ratio when its weight_decay is 0
(in the reference this is the online classifier's weight: wd 0 but LARS-scaled).

Differences to the reference: `p.grad` is left untouched (the wrapper scaled it in place) and the
zero-norm test is done on the device with `torch.where` (no host synchronisation); the numbers are
the same. The update runs as multi-tensor (`torch._foreach_*`) ops over all parameters of a group:
a per-parameter loop launches about a dozen small kernels per parameter (some 650 per step for a
ResNet-18 with its heads, about half of what forward + backward launch), enough for launch
overhead to bound a fast GPU step.

Why not `timm.optim.Lars` (timm 1.0): (1) it applies the trust ratio only to groups with
weight_decay != 0 unless `always_adapt=True`, so the wd-0 classifier weight would not be scaled;
(2) with zero weight or grad norm it still adds weight decay and, with clipping, uses
min(1 / lr, 1) as ratio (the grad is scaled by 1/lr when lr > 1), where the reference leaves the
grad as is; (3) it has no per-group exclusion flag (exclusion is tied to weight_decay == 0).
"""

from collections.abc import Iterable

import torch
from torch import nn
from torch.optim import Optimizer


class LARS(Optimizer):
    """SGD-momentum with the LARS trust ratio; see the module docstring for the exact equations.

    Per-group keys (all may be overridden per group): lr, momentum, dampening, weight_decay,
    nesterov, eta, eps, clip_lr, exclude_from_lars.
    """

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 0.02,
        clip_lr: bool = False,
        eps: float = 1e-8,
        dampening: float = 0.0,
        nesterov: bool = False,
    ):
        if lr < 0:
            raise ValueError(f"LARS: lr must be >= 0, got {lr}")
        if momentum < 0:
            raise ValueError(f"LARS: momentum must be >= 0, got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"LARS: weight_decay must be >= 0, got {weight_decay}")
        if eta <= 0:
            raise ValueError(f"LARS: eta must be > 0, got {eta}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("LARS: nesterov needs momentum > 0 and dampening 0")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            eta=eta,
            clip_lr=clip_lr,
            eps=eps,
            dampening=dampening,
            nesterov=nesterov,
            exclude_from_lars=False,
        )
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        if param_group.get("exclude_from_lars", False):
            # excluded parameters get no weight decay (reference); refuse a contradicting request
            wd = param_group.setdefault("weight_decay", 0.0)
            if wd != 0:
                raise ValueError(
                    "LARS: a param group with exclude_from_lars=True must have weight_decay 0 "
                    f"(got {wd}); the reference applies no weight decay to excluded parameters"
                )
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            # Multi-tensor (foreach) ops need one device and dtype per list.
            by_kind: dict[tuple, list[torch.Tensor]] = {}
            for p in params:
                by_kind.setdefault((p.device, p.dtype), []).append(p)
            for same_kind in by_kind.values():
                self._step_params(same_kind, group)
        return loss

    def _step_params(self, params: list[torch.Tensor], group: dict) -> None:
        """One update of `params` (same device and dtype) with a few multi-tensor kernels.

        The equations are the module docstring's; only the order of work changes: all norms at
        once, the trust ratios as one vector, then each update as one op over all parameters.
        """
        lr, m = group["lr"], group["momentum"]
        grads = [p.grad for p in params]
        if group["exclude_from_lars"]:
            d = grads  # read only below: p.grad is never modified
        else:
            d = self._lars_directions(params, grads, group)

        if m != 0:
            bufs, old_bufs, old_d = [], [], []
            for p, d_i in zip(params, d):
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:  # first step: b = d
                    buf = state["momentum_buffer"] = d_i.clone()
                else:
                    old_bufs.append(buf)
                    old_d.append(d_i)
                bufs.append(buf)
            if old_bufs:  # b = m * b + (1 - dampening) * d
                torch._foreach_mul_(old_bufs, m)
                torch._foreach_add_(old_bufs, old_d, alpha=1 - group["dampening"])
            d = torch._foreach_add(d, bufs, alpha=m) if group["nesterov"] else bufs
        torch._foreach_add_(params, d, alpha=-lr)

    @staticmethod
    def _lars_directions(params: list[torch.Tensor], grads: list[torch.Tensor], group: dict) -> list[torch.Tensor]:
        """d = r * (g + wd * p) when ||p|| > 0 and ||g|| > 0, else g (module docstring).

        Written as d = (g + wd * p) * s with s = r where both norms are > 0, s = 1 where ||p|| = 0
        (then g + wd * p = g) and s = 0 where ||g|| = 0 (then d = 0 = g): the same numbers, with
        the choice made on the device (no host synchronisation).
        """
        wd, lr = group["weight_decay"], group["lr"]
        p_norm = torch.stack(torch._foreach_norm(params))
        g_norm = torch.stack(torch._foreach_norm(grads))
        ratio = group["eta"] * p_norm / (g_norm + wd * p_norm + group["eps"])
        if group["clip_lr"] and lr > 0:  # lr == 0: no step anyway, avoid dividing by 0
            ratio = torch.clamp(ratio / lr, max=1.0)
        scale = torch.where(
            (p_norm > 0) & (g_norm > 0), ratio, torch.where(g_norm > 0, torch.ones_like(ratio), torch.zeros_like(ratio))
        )
        d = torch._foreach_add(grads, params, alpha=wd)
        torch._foreach_mul_(d, list(scale.unbind(0)))
        return d


_NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def exclude_bias_and_norm_param_groups(
    module_or_named_params: nn.Module | Iterable, weight_decay: float, **group_kwargs
) -> list[dict]:
    """Split parameters into LARS groups: weights, and biases + normalisation parameters.

    Returns [{"params": weights, "weight_decay": weight_decay, **group_kwargs},
             {"params": rest, "weight_decay": 0.0, "exclude_from_lars": True, **group_kwargs}]
    where `rest` holds every parameter with ndim <= 1 (biases, BatchNorm/LayerNorm gamma and beta)
    and, when a module is given, every parameter of a normalisation layer. Empty groups are
    dropped; parameters with requires_grad=False are skipped. `group_kwargs` (e.g. name, lr) go
    into both groups. Accepts an nn.Module, (name, param) pairs, or bare parameters.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    reserved = {"params", "weight_decay", "exclude_from_lars"} & set(group_kwargs)
    if reserved:
        raise ValueError(f"group_kwargs may not set {sorted(reserved)}: the helper sets them")
    norm_ids: set[int] = set()
    if isinstance(module_or_named_params, nn.Module):
        for mod in module_or_named_params.modules():
            if isinstance(mod, _NORM_LAYERS):
                norm_ids.update(id(q) for q in mod.parameters(recurse=False))
        params = list(module_or_named_params.parameters())
    else:
        params = [q[1] if isinstance(q, tuple) else q for q in module_or_named_params]

    weights, rest, seen = [], [], set()
    for q in params:
        if not q.requires_grad or id(q) in seen:
            continue
        seen.add(id(q))
        (rest if q.ndim <= 1 or id(q) in norm_ids else weights).append(q)

    groups = [
        {"params": weights, "weight_decay": weight_decay, **group_kwargs},
        {"params": rest, "weight_decay": 0.0, "exclude_from_lars": True, **group_kwargs},
    ]
    return [grp for grp in groups if grp["params"]]
