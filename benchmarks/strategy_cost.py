"""The cost of a continual strategy beside CaSSLe: ``throughput.py --modes strategy``.

For each strategy of ``STRATEGY_COST`` the training step on pre-made tensors (as throughput's
``step`` mode) of CaSSLe alone and of CaSSLe + the strategy, at task 1 with a full buffer, in
views/s (the current batch's views; replayed or mixed images are the strategy's cost), the extra
time per step, and on CUDA the peak memory of each (``torch.cuda.max_memory_allocated``).

CroMo-Mixup's extra work per step (``cassle/strategies/cromo_mixup.py``): M = min(B, r) buffer
images augmented on the device (2 views), one forward + backward of the 2 x M mixed views through
backbone and projector, one no-grad forward of the 2 x M buffer views through the frozen backbone
and projector; extra memory: the activations of the 2 x M mixed views and the buffer (indices,
labels, tasks: a few KiB).

Osiris-R's (``cassle/strategies/osiris.py``, ``--replay_batch_size`` left to its default
M = int(0.75 B), the code's ``--p 0.75``): M buffer images augmented on the device (2 views), one
forward + backward of the 2 x M buffer views through the backbone and h, h on the 2 x B current
features; extra memory: the 2 x M views' activations (about 0.75 of the step's), h (a copy of the
projector) and the buffer. Osiris-D adds a no-grad forward of the 2 x B current views through the
frozen backbone (h on them with gradient) and the frozen backbone's weights.
"""

from __future__ import annotations

import torch

# strategy -> its flags (the CIFAR scripts' values: bash_files/continual/cifar/barlow_cromo_mixup.sh and
# simclr_osiris.sh, whose --replay_batch_size 192 is the default 0.75 x its batch of 256)
STRATEGY_COST = {
    "cromo_mixup": ["--buffer_size", "500", "--replay_batch_size", "64", "--cromo_lambda", "0.7"],
    "osiris": ["--buffer_size", "500", "--osiris_variant", "r", "--osiris_lamb", "0.5", "--osiris_temperature", "0.1"],
}


def _ready(model, dm, device) -> None:
    """Fill each replay strategy's buffer with task images and give it its source, as after task 0."""
    from cassle.data.buffer import ReplaySource

    for s in model.strategies.values():
        if s.kind != "replay":
            continue
        idx = torch.as_tensor(dm.task_indices)[: s.buffer.capacity]
        s.buffer.add(idx, torch.zeros(len(idx), dtype=torch.long), 0)
        s.__dict__.update(source=ReplaySource(dm, device), has_data=True)
        s.on_train_start = lambda model: None  # keep the source: the timed fit has no datamodule


def strategy_steps(tp, b, batch, device, tmp, log=print) -> tuple[dict, dict]:
    """(views/s by figure, {strategy: cost}) of CaSSLe and CaSSLe + each strategy; ``tp`` the
    throughput module (its ``build``, ``timed_fit``, ``RepeatBatch``)."""
    build, timed_fit, RepeatBatch = tp.build, tp.timed_fit, tp.RepeatBatch

    cuda = device.type == "cuda"
    views, cost = {}, {}
    length = b.warmup_steps + b.steps

    def measure(flags: tuple[str, ...]):
        args, dm, model = build(
            b, distiller=b.distiller, data_device="gpu" if cuda else "cpu_batched", checkpoint_dir=tmp, more=flags
        )
        model.to(device)
        if flags:
            _ready(model, dm, device)
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        speed = timed_fit(args, model, b, loader=RepeatBatch(batch, length))
        return speed, (torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None)

    base, base_mem = measure(())
    views["cassle_step_premade"] = base
    for name, flags in STRATEGY_COST.items():
        speed, mem = measure(("--cl_strategy", name, *flags))
        views[f"cassle_{name}_step_premade"] = speed
        cost[name] = {"extra_time_fraction": base / speed - 1, "peak_mib_cassle": base_mem, "peak_mib": mem}
        log(
            f"CaSSLe + {name:14s}     {speed:>12,.0f} views/s ({100 * cost[name]['extra_time_fraction']:+.1f} % "
            f"time per step beside CaSSLe {base:,.0f}" + (f"; peak {mem:,.0f} MiB vs {base_mem:,.0f})" if cuda else ")")
        )
    return views, cost
