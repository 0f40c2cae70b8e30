"""PNR's step recomputed from the model's modules and cassle.losses (themselves checked against the
equations in tests/test_losses_pnr.py), without ``ssl_step`` or the PNR mixin:

    L = L_main + distill_lamb * L_reg - pnr_negative_lamb * L_neg

``state`` is the model whose queues (MoCo's keys, PNR's frozen projections) the step starts from.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cassle.losses import (
    decorrelative_distill_loss,
    pnr_infonce_losses,
    pnr_moco_losses,
    pnr_negative_loss,
    predictive_distill_loss,
    predictive_mse_distill_loss,
)


def _frozen(model, views):
    with torch.no_grad():
        return [model.frozen_projector(model.frozen_backbone(v)) for v in views]


def _contrastive(model, views, ssl, z, p, zb):
    main, reg = pnr_infonce_losses(p[0], p[1], z[0], z[1], zb[0], zb[1], temperature=model.distiller.temperature)
    return main, reg, torch.zeros(())


def _moco(model, views, ssl, z, p, zb, state):
    # z are the normalised queries; keys from the momentum network; both queues as before the step
    with torch.no_grad():
        k = [F.normalize(model.momentum_projector(model.momentum_backbone(v)), dim=-1) for v in views]
    main, reg = pnr_moco_losses(
        z,
        k,
        p,
        zb,
        state.queue.clone(),
        state.distiller.pnr_queue.clone(),
        temperature=model.hparams.temperature,
        distill_temperature=model.distiller.temperature,
    )
    return main, reg, torch.zeros(())


def _negative(distill, kind):
    def reference(model, views, ssl, z, p, zb):
        return ssl, distill(model, p, zb), pnr_negative_loss(p[0], p[1], zb[0], zb[1], kind=kind)

    return reference


PNR_REFERENCE = {
    "pnr_contrastive": _contrastive,
    "pnr_moco": _moco,
    "pnr_predictive": _negative(lambda m, p, zb: predictive_distill_loss(p[0], p[1], zb[0], zb[1]), "byol"),
    "pnr_decorrelative": _negative(
        lambda m, p, zb: decorrelative_distill_loss(
            p[0], p[1], zb[0], zb[1], lamb=m.hparams.distill_barlow_lamb, scale_loss=m.hparams.distill_scale_loss
        ),
        "cosine",
    ),
    "pnr_predictive_mse": _negative(lambda m, p, zb: predictive_mse_distill_loss(p[0], p[1], zb[0], zb[1]), "mse"),
}


def pnr_reference(distiller: str, model, views, ssl_reference_fn, state=None):
    """(L_main, L_reg, L_neg) of ``model`` on ``views``, the queues taken from ``state``."""
    ssl, z = ssl_reference_fn(model.hparams.method, model, views)
    p = [model.distiller.predictor(zi) for zi in z]
    zb = _frozen(model, views)
    fn = PNR_REFERENCE[distiller]
    if distiller == "pnr_moco":
        return fn(model, views, ssl, z, p, zb, state if state is not None else model)
    return fn(model, views, ssl, z, p, zb)
