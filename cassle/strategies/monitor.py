"""What shows that a strategy is active, in ``metrics.csv`` (and wandb) and on the console.

* every step (epoch means in ``metrics.csv``): each strategy's loss term ``train/<name>_loss``
  (``StrategyMixin``) and its own parts (e.g. DER++'s two terms), the **replay share** of the step
  ``train/replay_share`` = buffer images / all images the step forwards (ER and DER: r / (n + r),
  DER++: 2r / (n + 2r); LUMP mixes every image, so its share is the buffer's weight 1 - lambda in
  each mixed input) and LUMP's ``train/lump_lambda``. Zero (lambda: 1) while the buffer is empty.
  The console's epoch line shows the same keys (``console_metrics``).
* at each task end: the buffer's fill and its histogram per task and per class
  (``buffer/fill``, ``buffer/size``, ``buffer/task_<k>``, ``buffer/class_<c>`` in ``metrics.csv`` at
  the task's last step, one ``[cassle] task t buffer ...`` console line) and whatever a strategy
  reports in ``task_end_metrics`` (SI's importance).

The buffer report reads the buffer on the host once per task; the step logs never do. Under DDP
each process keeps its own buffer: the report is process 0's.
"""

from __future__ import annotations

import torch

from cassle.continual.console import MARK


def _replay(strategies):
    return [s for s in strategies if s.kind == "replay"]


def start_step(strategies) -> None:
    """Reset the per-step count of buffer images (``_Replay.replay_views`` adds to it)."""
    for s in _replay(strategies):
        s.__dict__["step_replayed"] = 0


def step_logs(strategies, ctx: dict, ref: torch.Tensor) -> dict[str, torch.Tensor]:
    """``replay_share`` (and ``lump_lambda``) of this step as device scalars (no host sync)."""
    replay = _replay(strategies)
    if not replay:
        return {}
    s, n = replay[0], ctx["n"]
    if s.name == "lump":
        lam = ctx.get("lump_lambda")
        lam = ref.new_ones(()) if lam is None else lam.detach().to(ref.dtype).reshape(())
        return {"replay_share": 1 - lam, "lump_lambda": lam}
    r = s.__dict__.get("step_replayed", 0)
    return {"replay_share": ref.new_full((), r / (n + r))}


def console_metrics(strategies) -> dict[str, str]:
    """Logged key -> console label for the epoch line."""
    out = {}
    for s in strategies:
        out[f"train/{s.name}_loss"] = f"{s.name}_loss"
        out.update({f"train/{k}": k for k in s.console_keys})
    replay = _replay(strategies)
    if replay:
        out["train/replay_share"] = "replay_share"
        if replay[0].name == "lump":
            out["train/lump_lambda"] = "lump_lambda"
    return out


@torch.no_grad()
def buffer_metrics(buffer) -> dict[str, float]:
    """Fill and per-task / per-class counts of a ``ReservoirBuffer`` (one host read)."""
    filled = int(buffer.num_filled())
    tasks, labels = buffer.tasks[:filled].cpu(), buffer.labels[:filled].cpu()
    metrics = {"buffer/fill": filled / buffer.capacity, "buffer/size": float(filled)}
    for k, c in zip(*torch.unique(tasks, return_counts=True)):
        metrics[f"buffer/task_{int(k)}"] = float(c)
    for k, c in zip(*torch.unique(labels, return_counts=True)):
        metrics[f"buffer/class_{int(k)}"] = float(c)
    return metrics


def buffer_line(task_idx: int, name: str, buffer) -> str:
    """``[cassle] task 1 buffer (der): 500/500 | task 0: 251 images, 20 classes (9-17 each) | ...``"""
    filled = int(buffer.num_filled())
    tasks, labels = buffer.tasks[:filled].cpu(), buffer.labels[:filled].cpu()
    parts = [f"{MARK} task {task_idx} buffer ({name}): {filled}/{buffer.capacity}"]
    for k in torch.unique(tasks).tolist():
        _, counts = torch.unique(labels[tasks == k], return_counts=True)
        parts.append(
            f"task {k}: {int(counts.sum())} images, {len(counts)} classes "
            f"({int(counts.min())}-{int(counts.max())} each)"
        )
    return " | ".join(parts)


def task_end_report(model, trainer) -> None:
    """Log and print what each strategy holds at the end of the task (process 0 only)."""
    if not trainer.is_global_zero:
        return
    metrics: dict[str, float] = {}
    for s in model.strategies.values():
        if s.kind == "replay":
            metrics.update(buffer_metrics(s.buffer))
            print(buffer_line(s.task_idx, s.name, s.buffer), flush=True)
        report = s.task_end_metrics(model) if hasattr(s, "task_end_metrics") else {}
        if report:
            metrics.update(report)
            print(
                f"{MARK} task {s.task_idx} {s.name}: "
                + " | ".join(f"{k.split('/', 1)[-1]} {v:.4g}" for k, v in report.items()),
                flush=True,
            )
    if metrics:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
            logger.save()
