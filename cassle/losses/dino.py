"""DINO loss (Caron et al., 2021) as a module: it carries the teacher centre and the teacher
temperature schedule."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cassle.losses._checks import check_positive
from cassle.losses._precision import full_precision
from cassle.utils.distributed import all_reduce_sum, world_size


class DINOLoss(nn.Module):
    """Cross-entropy from the centred, sharpened teacher to the student, over pairs of views.

    With student logits s_v and teacher logits t_u (N, K) for views v, u, the centre c (1, K)
    and the teacher temperature tau_e of epoch e::

        P_t(u) = softmax((t_u - c) / tau_e),    log P_s(v) = log_softmax(s_v / student_temp)
        L = mean over pairs (u < 2, v < num_crops, u != v) of - 1/N sum_n P_t(u)_n . log P_s(v)_n

    tau_e rises linearly from ``warmup_teacher_temp`` (epoch 0) to ``teacher_temp`` (epoch
    ``warmup_teacher_temp_epochs - 1``, numpy's ``linspace``) and stays there. After each
    forward the centre moves to the mean teacher logit of the global batch (all processes)::

        c <- m c + (1 - m) * (sum over processes and rows of t) / (W * rows)

    The loss uses the centre from before the update. ``epoch`` is set by the method at the start
    of each epoch (the original's attribute); the centre is a buffer, so a checkpoint restores it.

    Args (the original's names): num_prototypes K; warmup_teacher_temp; teacher_temp;
    warmup_teacher_temp_epochs; num_epochs (the schedule's length); student_temp; num_crops
    (student views); center_momentum m.
    """

    def __init__(
        self,
        num_prototypes: int,
        warmup_teacher_temp: float,
        teacher_temp: float,
        warmup_teacher_temp_epochs: float,
        num_epochs: int,
        student_temp: float = 0.1,
        num_crops: int = 2,
        center_momentum: float = 0.9,
    ):
        super().__init__()
        for name, value in (
            ("warmup_teacher_temp", warmup_teacher_temp),
            ("teacher_temp", teacher_temp),
            ("student_temp", student_temp),
        ):
            check_positive(name, value)
        if not 0 <= center_momentum <= 1:
            raise ValueError(f"center_momentum must be in [0, 1], got {center_momentum!r}")
        if num_crops < 2:
            raise ValueError(f"num_crops must be >= 2, got {num_crops!r}")
        self.epoch = 0
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.num_crops = num_crops
        self.register_buffer("center", torch.zeros(1, num_prototypes))
        warmup = int(warmup_teacher_temp_epochs)
        # numpy.linspace(warmup_teacher_temp, teacher_temp, warmup) then teacher_temp; longer than
        # num_epochs when the warmup is (the original's concatenation fails there instead).
        ramp = torch.linspace(warmup_teacher_temp, teacher_temp, warmup, dtype=torch.float64)
        tail = [teacher_temp] * max(0, int(num_epochs) - warmup)
        self.teacher_temp_schedule = [float(t) for t in ramp] + tail or [teacher_temp]

    def teacher_temp(self, epoch: int | None = None) -> float:
        """tau_e of `epoch` (default: the current ``self.epoch``); the last value past the end."""
        epoch = self.epoch if epoch is None else epoch
        return self.teacher_temp_schedule[min(int(epoch), len(self.teacher_temp_schedule) - 1)]

    @full_precision
    def forward(self, student_output: torch.Tensor, teacher_output: torch.Tensor) -> torch.Tensor:
        """student_output (num_crops * N, K), teacher_output (2 * N, K), views stacked by rows."""
        if student_output.dim() != 2 or teacher_output.dim() != 2:
            raise ValueError(
                "DINOLoss takes (views * N, K) student and teacher logits, got "
                f"{tuple(student_output.shape)} and {tuple(teacher_output.shape)}"
            )
        if (
            student_output.shape[1] != self.center.shape[1]
            or teacher_output.shape[1] != self.center.shape[1]
            or len(teacher_output) % 2
            or len(student_output) * 2 != len(teacher_output) * self.num_crops
        ):
            raise ValueError(
                f"expected student ({self.num_crops} * N, {self.center.shape[1]}) and teacher "
                f"(2 * N, {self.center.shape[1]}), got {tuple(student_output.shape)} and "
                f"{tuple(teacher_output.shape)}"
            )
        student = (student_output / self.student_temp).chunk(self.num_crops)
        center = self.center.to(teacher_output.dtype)
        teacher = F.softmax((teacher_output.detach() - center) / self.teacher_temp(), dim=-1).chunk(2)
        terms = [
            -(t * F.log_softmax(s, dim=-1)).sum(dim=-1).mean()
            for iu, t in enumerate(teacher)
            for iv, s in enumerate(student)
            if iu != iv
        ]
        loss = torch.stack(terms).mean()
        self.update_center(teacher_output)
        return loss

    @torch.no_grad()
    def update_center(self, teacher_output: torch.Tensor) -> None:
        """EMA of the centre towards the mean teacher logit of the global batch."""
        batch_center = all_reduce_sum(teacher_output.detach().sum(dim=0, keepdim=True))
        batch_center = batch_center / (world_size() * len(teacher_output))
        self.center.mul_(self.center_momentum).add_(batch_center.to(self.center.dtype), alpha=1 - self.center_momentum)
