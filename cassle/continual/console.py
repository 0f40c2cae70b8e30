"""What a continual run shows on the console: one line per epoch and the result of each task.

The trainer prints its progress lines with the ``MARK`` prefix (``epoch_line``, ``task_line``);
the launcher writes every byte a task prints to that task's ``train.log`` and shows on the console
only the lines ``for_console`` keeps (the trainer's marked lines and the evaluation's ``[eval]``
lines), so library notices, model summaries and warnings stay in the log. No torch import here:
the launcher uses this module.
"""

from __future__ import annotations

__all__ = ["MARK", "for_console", "format_duration", "epoch_line", "task_line"]

MARK = "[cassle]"
_CONSOLE_PREFIXES = (MARK, "[eval]")


def for_console(line: str) -> str | None:
    """The text to show for one output line of a task (None: log only). A progress bar's
    carriage-return updates count by their last segment."""
    text = line.rstrip("\r\n").rsplit("\r", 1)[-1]
    return text if text.startswith(_CONSOLE_PREFIXES) else None


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _metrics(metrics: dict[str, float]) -> str:
    return "".join(f" | {name} {value:.4g}" for name, value in metrics.items())


def epoch_line(
    task_idx: int, epoch: int, max_epochs: int, metrics: dict[str, float], epoch_seconds: float, eta_seconds: float
) -> str:
    """``[cassle] task 1 | epoch 3/10 | ssl_loss 12.3 | val/acc1 71.2 | 2.9s | ETA 20s``."""
    return (
        f"{MARK} task {task_idx} | epoch {epoch}/{max_epochs}{_metrics(metrics)} | "
        f"{format_duration(epoch_seconds)} | ETA {format_duration(eta_seconds)}"
    )


def task_line(task_idx: int, epochs: int, seconds: float, metrics: dict[str, float]) -> str:
    """``[cassle] task 1 finished: 10 epochs in 31s | val/acc1 78.1``."""
    return f"{MARK} task {task_idx} finished: {epochs} epochs in {format_duration(seconds)}{_metrics(metrics)}"
