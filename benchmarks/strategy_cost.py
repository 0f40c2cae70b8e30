"""The cost of CaSSLe's successors beside CaSSLe: ``throughput.py --modes strategy``.

    python benchmarks/throughput.py --method barlow_twins --distiller decorrelative \
        --modes finetune,step,strategy --data_dir DATA        # fine-tuning, CaSSLe, PNR, CroMo-Mixup

The training step on pre-made tensors (as throughput's ``step`` mode), at task 1, in views/s (the
current batch's views; replayed or mixed images are the strategy's cost), of CaSSLe alone
(``--distiller``), of PNR (``--pnr_distiller``; ``auto``: the method's, ``PNR_DISTILLER``, in place
of CaSSLe's distiller) and of CaSSLe + each strategy of ``--cl_strategies`` (default: those of
``STRATEGY_COST`` that support the method) with a full buffer; the extra time per step beside
CaSSLe, and on CUDA the peak memory of each (``torch.cuda.max_memory_allocated``).

PNR's extra work per step beside CaSSLe's (``cassle/distillers/pnr_*.py``): none in forward passes
(the frozen backbone + projector once per view and the predictor per view, as CaSSLe); the non-
contrastive ones one more loss on those tensors (the frozen output of the other view);
``pnr_contrastive`` (2N x 4N) logits for both terms instead of (2N x 2N) and SimCLR's own loss
still computed; ``pnr_moco`` a second (2, D, K) queue and 2K negatives per query in both terms.

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

from cassle.distillers import PNR_DISTILLER
from cassle.strategies.cromo_mixup import SUPPORTED as CROMO_MIXUP_METHODS

# strategy -> its flags (the CIFAR scripts' values: bash_files/continual/cifar/barlow_cromo_mixup.sh and
# simclr_osiris.sh, whose --replay_batch_size 192 is the default 0.75 x its batch of 256)
STRATEGY_COST = {
    "cromo_mixup": ["--buffer_size", "500", "--replay_batch_size", "64", "--cromo_lambda", "0.7"],
    "osiris": ["--buffer_size", "500", "--osiris_variant", "r", "--osiris_lamb", "0.5", "--osiris_temperature", "0.1"],
}
STRATEGY_METHODS = {"cromo_mixup": CROMO_MIXUP_METHODS}  # the methods a strategy runs with, where limited


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


def successors(b) -> tuple[str | None, list[str], list[str]]:
    """(PNR distiller or None, strategies to measure, notes on what is skipped) for ``b``."""
    notes = []
    pnr = PNR_DISTILLER.get(b.method) if b.pnr_distiller == "auto" else b.pnr_distiller
    if b.pnr_distiller == "none":
        pnr = None
    elif pnr is None:
        notes.append(f"no PNR distiller for --method {b.method} (PNR's code covers {', '.join(PNR_DISTILLER)})")
    names = list(STRATEGY_COST) if b.cl_strategies == "auto" else [n for n in b.cl_strategies.split(",") if n]
    keep = []
    for name in names:
        supported = STRATEGY_METHODS.get(name)
        if supported is not None and b.method not in supported:
            notes.append(f"{name} skipped: it supports --method {', '.join(supported)}")
        else:
            keep.append(name)
    return pnr, keep, notes


def strategy_steps(tp, b, batch, device, tmp, log=print) -> tuple[dict, dict]:
    """(views/s by figure, {successor: cost}) of CaSSLe, PNR and CaSSLe + each strategy; ``tp`` the
    throughput module (its ``build``, ``timed_fit``, ``RepeatBatch``)."""
    build, timed_fit, RepeatBatch = tp.build, tp.timed_fit, tp.RepeatBatch

    cuda = device.type == "cuda"
    views, cost = {}, {}
    length = b.warmup_steps + b.steps

    def measure(flags: tuple[str, ...], distiller=b.distiller):
        args, dm, model = build(
            b, distiller=distiller, data_device="gpu" if cuda else "cpu_batched", checkpoint_dir=tmp, more=flags
        )
        model.to(device)
        if flags:
            _ready(model, dm, device)
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        speed = timed_fit(args, model, b, loader=RepeatBatch(batch, length))
        return speed, (torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None)

    def report(name, label, speed, mem):
        cost[name] = {"extra_time_fraction": base / speed - 1, "peak_mib_cassle": base_mem, "peak_mib": mem}
        log(
            f"{label:29s} {speed:>12,.0f} views/s ({100 * cost[name]['extra_time_fraction']:+.1f} % "
            f"time per step beside CaSSLe {base:,.0f}" + (f"; peak {mem:,.0f} MiB vs {base_mem:,.0f})" if cuda else ")")
        )

    pnr, names, notes = successors(b)
    base, base_mem = measure(())
    views["cassle_step_premade"] = base
    log(f"CaSSLe ({b.distiller})".ljust(29) + f" {base:>12,.0f} views/s")
    if pnr is not None:
        speed, mem = measure((), distiller=pnr)
        views[f"{pnr}_step_premade"] = speed
        report(pnr, f"PNR ({pnr})", speed, mem)
    for name in names:
        speed, mem = measure(("--cl_strategy", name, *STRATEGY_COST.get(name, [])))
        views[f"cassle_{name}_step_premade"] = speed
        report(name, f"CaSSLe + {name}", speed, mem)
    for note in notes:
        log(f"  ({note})")
    return views, cost
