"""The cost of CaSSLe's successors beside CaSSLe: ``throughput.py --modes strategy``.

    python benchmarks/throughput.py --method barlow_twins --distiller decorrelative \
        --modes finetune,step,strategy,pocon --data_dir DATA  # + PNR, CroMo-Mixup, Osiris, POCON

The training step on pre-made tensors (as throughput's ``step`` mode), at task 1, in views/s (the
current batch's views; replayed or mixed images are the strategy's cost), of CaSSLe alone
(``--distiller``), of PNR (``--pnr_distiller``; ``auto``: the method's, ``PNR_DISTILLER``, in place
of CaSSLe's distiller) and of each strategy of ``--cl_strategies`` (default: those of
``STRATEGY_COST`` that support the method: CroMo-Mixup on top of CaSSLe's distiller, Osiris without
one, as their scripts run them, ``STRATEGY_WITH_CASSLE``) with a full buffer; the extra time per
step beside CaSSLe (and beside fine-tuning where the command's ``finetune`` mode ran first), on
CUDA the peak memory of each (``torch.cuda.max_memory_allocated``), everywhere the model's state
counts (``step_cost.state_counts``). POCON's two phases: ``pocon_cost.py``.

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
# Whether a strategy runs with CaSSLe's distiller, as its scripts run it: CroMo-Mixup's CaSSLe term is
# CaSSLe's distiller (barlow_cromo_mixup.sh passes --distiller); Osiris is the fine-tuning script +
# the strategy (simclr_osiris.sh has no --distiller), so it is measured without one, beside CaSSLe.
STRATEGY_WITH_CASSLE = {"cromo_mixup": True, "osiris": False}


def _ready(model, dm) -> None:
    """Fill each replay strategy's buffer with task images and give it its source, as after task 0."""
    from cassle.data.buffer import ReplaySource

    device = model.device
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


def strategy_steps(measure, b, log=print) -> tuple[dict, dict]:
    """(views/s by figure, {successor: cost}) of CaSSLe, PNR and each strategy (with CaSSLe's
    distiller, or without it where ``STRATEGY_WITH_CASSLE`` says so); ``measure`` a
    ``step_cost.StepMeasure`` (its figures shared with the other modes of the command)."""
    from step_cost import beside, cost_line

    views, cost = {}, {}
    pnr, names, notes = successors(b)
    base = measure("cassle", distiller=b.distiller)
    views["cassle_step_premade"] = base["views_per_s"]
    log(f"CaSSLe ({b.distiller})".ljust(29) + f" {base['views_per_s']:>12,.0f} views/s")

    def report(name, label, figures):
        cost[name] = beside(figures, base, measure.figures.get("finetune"))
        log(cost_line(label, figures, base, measure.cuda))

    if pnr is not None:
        figures = measure(pnr, distiller=pnr)
        views[f"{pnr}_step_premade"] = figures["views_per_s"]
        report(pnr, f"PNR ({pnr})", figures)
    for name in names:
        with_cassle = STRATEGY_WITH_CASSLE.get(name, True)
        flags = ("--cl_strategy", name, *STRATEGY_COST.get(name, []))
        figures = measure(name, flags, distiller=b.distiller if with_cassle else None, prepare=_ready)
        views[f"{'cassle_' if with_cassle else ''}{name}_step_premade"] = figures["views_per_s"]
        report(name, f"CaSSLe + {name}" if with_cassle else f"{name} (no distiller)", figures)
        cost[name]["with_cassle"] = with_cassle
    for note in notes:
        log(f"  ({note})")
    return views, cost
