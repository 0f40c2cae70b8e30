"""One training step's cost on pre-made tensors, shared by the modes that compare models (``finetune``,
``strategy``, ``pocon`` of ``throughput.py``): views/s, peak memory on CUDA, and the model's state.

``StepMeasure(tp, b, batch, device, tmp)("name", flags, distiller=...)`` builds the model as
``throughput.build`` does (task 1, the benchmark's recipe + ``flags``), lets ``prepare(model, dm)``
set it up (a replay buffer, a POCON phase), times ``b.steps`` steps of ``throughput.timed_fit`` on
the one pre-made batch and keeps the figures under ``name``, so a later mode of the same command
reuses them (fine-tuning and CaSSLe are measured once for all).

State counts (CPU and GPU; the memory figure where no CUDA peak exists): ``params`` every parameter
of the model (frozen snapshots, experts, projectors and the online classifier included),
``trainable_params`` those with ``requires_grad``, ``updated_params`` those that had a gradient
after the last timed step (what the step trains; ``updated_by_module`` per top-level module, a
ModuleDict's entries apart), ``buffers`` (BatchNorm statistics, queues, replay
indices) and ``state_mib`` = their bytes (parameters + buffers) in MiB.
"""

from __future__ import annotations

import gc

import torch


def _group(name: str, model: torch.nn.Module) -> str:
    """``pocon.expert.conv1.weight`` -> ``pocon.expert`` (ModuleDict entries apart), ``backbone.x`` -> ``backbone``."""
    parts = name.split(".")
    if len(parts) > 2 and isinstance(getattr(model, parts[0], None), torch.nn.ModuleDict):
        return ".".join(parts[:2])
    return parts[0]


def state_counts(model: torch.nn.Module) -> dict:
    updated: dict[str, int] = {}
    for name, p in model.named_parameters():
        if p.grad is not None:
            key = _group(name, model)
            updated[key] = updated.get(key, 0) + p.numel()
    params = list(model.parameters())
    buffers = list(model.buffers())
    size = sum(t.numel() * t.element_size() for t in params + buffers)
    return {
        "params": sum(p.numel() for p in params),
        "trainable_params": sum(p.numel() for p in params if p.requires_grad),
        "updated_params": sum(p.numel() for p in params if p.grad is not None),
        "buffers": sum(t.numel() for t in buffers),
        "state_mib": size / 2**20,
        "updated_by_module": updated,
    }


class StepMeasure:
    """Measures (and caches by name) the step of a model built with extra flags; ``tp`` the throughput
    module (its ``build``, ``timed_fit``, ``RepeatBatch``)."""

    def __init__(self, tp, b, batch, device: torch.device, tmp: str):
        self.tp, self.b, self.batch, self.device, self.tmp = tp, b, batch, device, tmp
        self.cuda = device.type == "cuda"
        self.figures: dict[str, dict] = {}

    def __call__(self, name: str, flags: tuple[str, ...] = (), *, distiller=None, prepare=None) -> dict:
        if name in self.figures:
            return self.figures[name]
        b, tp = self.b, self.tp
        args, dm, model = tp.build(
            b,
            distiller=distiller,
            data_device="gpu" if self.cuda else "cpu_batched",
            checkpoint_dir=self.tmp,
            more=tuple(flags),
        )
        model.to(self.device)
        if prepare is not None:
            prepare(model, dm)
        gc.collect()  # earlier models (and their trainers' reference cycles) off the device first
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        length = b.warmup_steps + b.steps
        speed = tp.timed_fit(args, model, b, loader=tp.RepeatBatch(self.batch, length))
        peak = torch.cuda.max_memory_allocated(self.device) / 2**20 if self.cuda else None
        self.figures[name] = {"views_per_s": speed, "peak_mib": peak, "state": state_counts(model)}
        del model
        return self.figures[name]


def beside(figures: dict, base: dict, finetune: dict | None = None) -> dict:
    """A measured model's cost beside CaSSLe's (``base``) and, where measured, fine-tuning's."""
    out = {
        "extra_time_fraction": base["views_per_s"] / figures["views_per_s"] - 1,
        "peak_mib": figures["peak_mib"],
        "peak_mib_cassle": base["peak_mib"],
        "state": figures["state"],  # CaSSLe's: the JSON's step_figures
    }
    if finetune is not None:
        out["extra_time_fraction_vs_finetune"] = finetune["views_per_s"] / figures["views_per_s"] - 1
    return out


def cost_line(label: str, figures: dict, base: dict, cuda: bool) -> str:
    speed, extra = figures["views_per_s"], base["views_per_s"] / figures["views_per_s"] - 1
    state = figures["state"]
    memory = (
        f"peak {figures['peak_mib']:,.0f} MiB vs {base['peak_mib']:,.0f}"
        if cuda
        else f"{state['params']:,} params, {state['updated_params']:,} trained; state {state['state_mib']:.2f} MiB "
        f"vs {base['state']['state_mib']:.2f}"
    )
    return f"{label:29s} {speed:>12,.0f} views/s ({100 * extra:+.1f} % time per step beside CaSSLe; {memory})"
