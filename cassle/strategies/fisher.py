"""Per-sample gradients of a batch loss, vectorised, for EWC's empirical Fisher.

EWC (Kirkpatrick et al. 2017) and mammoth's ``ewc_on`` estimate the diagonal Fisher as the mean over
training samples of the squared gradient of each sample's own loss, F = 1/N sum_i (grad l_i)^2.
An SSL loss L couples the images of a batch (negatives, cross-correlations, BatchNorm), so l_i is
defined here as sample i's share of the batch loss: theta is used by every image's forward pass,
grad L = sum_i g_i with g_i the gradient through image i's own pass (both of its views, with the
batch as context), and l_i's gradient is B * g_i, so that the mean over the batch is grad L. For a
loss that is a mean of per-sample terms in a network without BatchNorm coupling, B * g_i is exactly
grad l_i (the test checks this against a per-sample loop).

How: forward hooks record each tracked layer's input x and output y, one backward of L gives
dL/dy, and the per-sample weight gradients follow layer by layer: for BatchNorm
(gamma: sum_spatial dL/dy_i * x_hat_i, beta: sum_spatial dL/dy_i), for any other layer that maps
samples independently (Linear, Conv2d, SwAV's prototypes) ``torch.func.vmap`` of the layer's
vector-Jacobian product over the samples. Cost: one forward and one backward of the batch, plus one
vectorised per-sample backward of each layer's weights, done ``chunk`` images at a time (peak extra
memory: chunk x the largest layer's parameter count).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, vjp, vmap


class PerSampleGrads:
    """Hooks on the modules owning ``params`` (name -> Parameter, names relative to ``root``)."""

    def __init__(self, root: nn.Module, params: dict[str, nn.Parameter], chunk: int = 16):
        self.chunk = chunk
        self.taps: list[tuple[nn.Module, dict[str, str]]] = []  # module, local -> full name
        owned = set()
        for mod_name, module in root.named_modules():
            local = {pn: f"{mod_name}.{pn}" if mod_name else pn for pn, _ in module.named_parameters(recurse=False)}
            local = {pn: full for pn, full in local.items() if full in params}
            if local:
                self.taps.append((module, local))
                owned.update(local.values())
        missing = set(params) - owned
        if missing:
            raise ValueError(f"per-sample gradients: parameters without an owning module: {sorted(missing)[:5]}")
        self.calls: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.active = False
        self.handles = [m.register_forward_hook(self._hook(i)) for i, (m, _) in enumerate(self.taps)]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def _hook(self, i):
        def hook(module, inputs, output):
            if not self.active or not torch.is_tensor(output) or not output.requires_grad:
                return None
            if len(inputs) != 1:
                raise ValueError(f"per-sample gradients: {type(module).__name__} takes {len(inputs)} inputs")
            self.calls.setdefault(i, []).append((inputs[0].detach(), output))
            return output.clone()  # an in-place op after the layer (ReLU) must not rewrite y

        return hook

    def per_sample(self, loss_fn, batch_size: int):
        """Run ``loss_fn()``; yield (full param name, image slice, (n, *shape) contributions g_i)."""
        self.calls, self.active = {}, True
        try:
            loss = loss_fn()
        finally:
            self.active = False
        outputs = [y for calls in self.calls.values() for _, y in calls]
        grads = iter(torch.autograd.grad(loss, outputs, allow_unused=True))
        recorded = {i: [(x, next(grads)) for x, _ in calls] for i, calls in self.calls.items()}
        self.calls = {}
        for i, calls in recorded.items():
            module, names = self.taps[i]
            for start in range(0, batch_size, self.chunk):
                images = slice(start, min(start + self.chunk, batch_size))
                total: dict[str, torch.Tensor] = {}
                for x, gy in calls:
                    if gy is None:
                        continue
                    rows = _rows(x.shape[0], batch_size, images)
                    g = self._module_grads(module, names, x, gy, rows)
                    for k, v in g.items():
                        total[k] = total[k] + v if k in total else v
                for local, v in total.items():
                    yield names[local], images, v

    def _module_grads(self, module, names, x, gy, rows) -> dict[str, torch.Tensor]:
        """Per-image contributions (rows of one image summed) for the images of ``rows``."""
        dtype = torch.promote_types(module_dtype(module), torch.float32)  # float32 at least
        x, gy = x.to(dtype), gy.to(dtype)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            per_row = _batchnorm_grads(module, x, gy)
        else:
            per_row = _vmap_grads(module, list(names), x, gy, rows.flatten())
            return {k: v.view(rows.shape[0], rows.shape[1], *v.shape[1:]).sum(dim=1) for k, v in per_row.items()}
        return {k: v[rows].sum(dim=1) for k, v in per_row.items() if k in names}


def module_dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters(recurse=False)).dtype


def _rows(m: int, batch_size: int, images: slice) -> torch.Tensor:
    """(n_images, m // B) row indices of a call of m rows whose row r is image r % B."""
    if m % batch_size:
        raise ValueError(f"per-sample gradients: a call of {m} rows for a batch of {batch_size} images")
    img = torch.arange(images.start, images.stop)
    return img[:, None] + batch_size * torch.arange(m // batch_size)[None, :]


def _batchnorm_grads(module, x, gy) -> dict[str, torch.Tensor]:
    dims = [0] + list(range(2, x.ndim))
    if module.training or module.running_mean is None:
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
    else:
        shape = [1, -1] + [1] * (x.ndim - 2)
        mean, var = module.running_mean.view(shape).to(x.dtype), module.running_var.view(shape).to(x.dtype)
    x_hat = (x - mean) / torch.sqrt(var + module.eps)
    spatial = list(range(2, x.ndim))
    out = {
        "weight": (gy * x_hat).sum(dim=spatial) if spatial else gy * x_hat,
        "bias": gy.sum(dim=spatial) if spatial else gy,
    }
    return out


def _vmap_grads(module, local_names, x, gy, rows) -> dict[str, torch.Tensor]:
    params = {n: getattr(module, n).detach().to(x.dtype) for n in local_names}

    def one(x1, g1):
        _, pull = vjp(lambda p: functional_call(module, p, (x1[None],)), params)
        return pull(g1[None])[0]

    with torch.autocast(device_type=x.device.type, enabled=False):
        return vmap(one)(x[rows], gy[rows])


def sample_fisher(
    root: nn.Module, params: dict[str, nn.Parameter], batches, max_samples: int = 0, chunk: int = 16
) -> tuple[dict[str, torch.Tensor], int]:
    """Sum over samples of (B * g_i)^2 per parameter, and the number of samples used.

    ``batches`` yields ``(B, loss_fn)`` with ``loss_fn()`` the loss of a batch of B images; at most
    ``max_samples`` images (0: all) are used, the last batch's trailing images dropped.
    """
    taps = PerSampleGrads(root, params, chunk=chunk)
    sums = {n: torch.zeros_like(p, dtype=torch.promote_types(p.dtype, torch.float32)) for n, p in params.items()}
    seen = 0
    try:
        for B, loss_fn in batches:
            if max_samples and seen >= max_samples:
                break
            keep = B if not max_samples else min(B, max_samples - seen)
            for name, images, g in taps.per_sample(loss_fn, batch_size=B):
                hi = min(images.stop, keep)
                if hi > images.start:
                    sums[name] += ((B * g[: hi - images.start]) ** 2).sum(dim=0)
            seen += keep
    finally:
        taps.remove()
    return sums, seen


__all__ = ["PerSampleGrads", "sample_fisher"]
