"""Reference steps of DINO, DeepClusterV2 and MoCo v3 for tests/step_reference.py (issue 22):
each loss from the model's modules and cassle.losses, not through ``ssl_step``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cassle.losses import DINOLoss, deepclusterv2_loss_func, mocov3_loss_func


def _dino(model, views):
    hp = model.hparams
    z = [model.projector(model.backbone(v)) for v in views]
    student = torch.cat([model.prototypes(F.normalize(zi, dim=-1)) for zi in z])
    with torch.no_grad():
        teacher = torch.cat(
            [
                model.momentum_prototypes(F.normalize(model.momentum_projector(model.momentum_backbone(v)), dim=-1))
                for v in views
            ]
        )
    loss_fn = DINOLoss(
        hp.num_prototypes,
        hp.warmup_teacher_temperature,
        hp.teacher_temperature,
        hp.warmup_teacher_temperature_epochs,
        hp.max_epochs,
        hp.student_temperature,
    )
    loss_fn.center.copy_(model.dino_loss.center)  # the centre the step starts from
    loss_fn.epoch = model.dino_loss.epoch
    return loss_fn(student, teacher), z


def _deepclusterv2(model, views):
    z = [F.normalize(model.projector(model.backbone(v)), dim=-1) for v in views]
    outputs = torch.stack([torch.stack([proto(zi) for zi in z]) for proto in model.prototypes])
    assignments = model.assignments[:, model.batch_indexes]
    return deepclusterv2_loss_func(outputs, assignments, model.hparams.temperature), z


def _mocov3(model, views):
    z = [model.projector(model.backbone(v)) for v in views]
    q = [model.predictor(zi) for zi in z]
    with torch.no_grad():
        k = [model.momentum_projector(model.momentum_backbone(v)) for v in views]
    T = model.hparams.temperature
    return mocov3_loss_func(q[0], k[1], T) + mocov3_loss_func(q[1], k[0], T), z


SSL_REFERENCE_MORE = {"dino": _dino, "deepclusterv2": _deepclusterv2, "mocov3": _mocov3}


def prepare_step(method: str, model, views) -> None:
    """State a step needs besides the weights. DeepClusterV2: the batch's dataset indexes (set by
    training_step in a real run) and k-means clusters of a memory holding this batch."""
    if method != "deepclusterv2":
        return
    n = len(views[0])
    model.batch_indexes, model.batch_slot = torch.arange(n), 0
    with torch.no_grad():
        was_training = model.training
        model.eval()
        z = [F.normalize(model.projector(model.backbone(v)), dim=-1) for v in views]
        model.train(was_training)
    model.memory_index, model.memory_embeddings = torch.arange(n), torch.stack(z)
    model.cluster_memory(epoch=1)
