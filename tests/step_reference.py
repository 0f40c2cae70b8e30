"""Each method's SSL loss and each distiller's loss, recomputed for the step-level tests from the
model's modules, its hyper-parameters and the loss functions (themselves checked against the
papers' equations in tests/test_losses.py), without going through ``ssl_step``, the CaSSLe mixin
or the strategy mixin.

A method or distiller added to the registries without an entry here fails
tests/test_step_composition.py and tests/test_training_direction.py with a message that says to
add one: a new method must show that its step is composed right and that it learns.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cassle.losses import (
    barlow_loss_func,
    byol_loss_func,
    contrastive_distill_loss,
    decorrelative_distill_loss,
    knowledge_distill_loss,
    moco_loss_func,
    nnclr_loss_func,
    predictive_distill_loss,
    predictive_mse_distill_loss,
    relational_distill_loss,
    ressl_loss_func,
    simclr_loss_func,
    simsiam_loss_func,
    sinkhorn_knopp,
    swav_loss_func,
    vicreg_loss_func,
    wmse_loss_func,
)
from main_continual import build_model
from tests.helpers import fake_batch, tiny_args
from tests.step_reference_more import SSL_REFERENCE_MORE, prepare_step
from tests.step_reference_pnr import PNR_REFERENCE, pnr_reference  # noqa: F401

LR = 0.05  # the SGD steps of the step-level tests
# W-MSE whitens slices of 8 rows in the tests: an ill-conditioned covariance whose curvature makes
# 0.05 a large step (its first-order sign checks need a smaller one)
# SimSiam with every loss-term strategy at once (tests/test_strategy_composition.py, all_terms): at
# 0.05 the second-order terms outweigh the first-order gain of one term; the sign check is first order
METHOD_LR = {"wmse": 0.005, "simsiam": 0.01}


def task1_model(method: str, *extra: str, distiller: str | None = None, seed: int = 0):
    """A model at task 1 whose current weights have moved away from the frozen snapshot (as after
    some training), so every term and its gradient is non-zero."""
    args = tiny_args(method, "--num_tasks", "3", "--task_idx", "1", *extra, distiller=distiller)
    args.num_classes = 4
    torch.manual_seed(seed)
    model = build_model(args)
    with torch.no_grad():
        for p in [*model.backbone.parameters(), *model.projector.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
    model.train()
    prepare_step(method, model, fake_batch()[1])  # the tests' batch
    return model


def sgd_step(model, loss):
    lr = METHOD_LR.get(model.hparams.method, LR)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    loss.backward()
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p.sub_(lr * p.grad)


def _z(model, views):
    return [model.projector(model.backbone(v)) for v in views]


def _simclr(model, views):
    z = _z(model, views)
    return simclr_loss_func(z[0], z[1], temperature=model.hparams.temperature), z


def _barlow(model, views):
    z = _z(model, views)
    hp = model.hparams
    return barlow_loss_func(z[0], z[1], lamb=hp.lamb, scale_loss=hp.scale_loss), z


def _vicreg(model, views):
    z = _z(model, views)
    hp = model.hparams
    return vicreg_loss_func(z[0], z[1], hp.sim_loss_weight, hp.var_loss_weight, hp.cov_loss_weight), z


def _byol(model, views):
    # predict the momentum network's projection of the *other* view, both ways
    z = _z(model, views)
    p = [model.predictor(zi) for zi in z]
    with torch.no_grad():
        target = [model.momentum_projector(model.momentum_backbone(v)) for v in views]
    return byol_loss_func(p[0], target[1]) + byol_loss_func(p[1], target[0]), z


def _moco(model, views):
    # symmetrised InfoNCE of each view's query against the other view's momentum key and the
    # queue of that view's past keys (the queue as it was before the step)
    q = [F.normalize(zi, dim=-1) for zi in _z(model, views)]
    with torch.no_grad():
        k = [F.normalize(model.momentum_projector(model.momentum_backbone(v)), dim=-1) for v in views]
    queue, T = model.queue.clone(), model.hparams.temperature
    loss = (
        moco_loss_func(q[0], k[1], queue[1], temperature=T) + moco_loss_func(q[1], k[0], queue[0], temperature=T)
    ) / 2
    return loss, q  # the distillers get the normalised q (REFERENCE)


def _swav(model, views):
    # the tests' SwAV queues are not full yet, so the codes come from the batch alone
    assert not bool(model.queue[:, -1].any()), "the reference SwAV step assumes a queue not yet full"
    hp = model.hparams
    z = _z(model, views)
    scores = [model.prototypes(F.normalize(zi, dim=-1)) for zi in z]
    codes = [sinkhorn_knopp(s.detach(), epsilon=hp.sk_epsilon, num_iters=hp.sk_iters) for s in scores]
    return swav_loss_func(scores, codes, temperature=hp.temperature), z


def _simsiam(model, views):
    # each view's prediction against the other view's projection (stop-gradient), halved
    z = _z(model, views)
    p = [model.predictor(zi) for zi in z]
    return simsiam_loss_func(p[0], z[1]) / 2 + simsiam_loss_func(p[1], z[0]) / 2, z


def _nnclr(model, views):
    # the support set's nearest neighbour (before the step's update) of each normalised z is the
    # positive of the other view's prediction
    z = _z(model, views)
    p = [model.predictor(zi) for zi in z]
    zn = [F.normalize(zi, dim=-1) for zi in z]
    queue, T = model.queue.clone(), model.hparams.temperature
    nn = [queue[(zi @ queue.T).argmax(dim=1)] for zi in zn]
    return (nnclr_loss_func(nn[0], p[1], temperature=T) + nnclr_loss_func(nn[1], p[0], temperature=T)) / 2, zn


def _ressl(model, views):
    # one direction: the first view's query, the second view's momentum key, the queue before the step
    q = [F.normalize(zi, dim=-1) for zi in _z(model, views)]
    with torch.no_grad():
        k = F.normalize(model.momentum_projector(model.momentum_backbone(views[1])), dim=-1)
    hp = model.hparams
    return ressl_loss_func(q[0], k, model.queue.clone(), hp.temperature_q, hp.temperature_k), q


def _whiten_whole(x):
    # whitening of the whole batch: (x - mean) C^-1/2 with the Cholesky factor, written out
    xc = x - x.mean(0)
    cov = xc.T @ xc / (x.shape[0] - 1)
    return xc @ torch.linalg.inv(torch.linalg.cholesky(cov)).T


def _wmse(model, views):
    # with one whitening slice per view (whitening_size = batch) the method's random slicing is
    # the identity and this is its loss; a larger batch is measured with its slices in order (a
    # fixed draw of the method's random ones)
    ws = model.hparams.whitening_size
    assert views[0].shape[0] % ws == 0 and model.hparams.whitening_iters == 1
    z = _z(model, views)
    w = [torch.cat([_whiten_whole(s) for s in zi.split(ws)]) for zi in z]
    return wmse_loss_func(w[0], w[1]), z


# method name -> (model, views) -> (SSL loss, the projections the distillers get)
SSL_REFERENCE = {
    "simclr": _simclr,
    "mocov2plus": _moco,
    "byol": _byol,
    "barlow_twins": _barlow,
    "swav": _swav,
    "vicreg": _vicreg,
    "simsiam": _simsiam,
    "nnclr": _nnclr,
    "ressl": _ressl,
    "wmse": _wmse,
}
SSL_REFERENCE.update(SSL_REFERENCE_MORE)  # issue 22's methods


def _temperature(model, default):
    t = model.hparams.distill_temperature
    return default if t is None else t


def _knowledge(model, p, z_bar):
    students, teachers = model.distiller.prototypes, model.frozen_prototypes
    # one learnable layer per frozen head (DeepClusterV2's heads), the mean over heads
    pairs = zip(students, teachers) if isinstance(students, torch.nn.ModuleList) else [(students, teachers)]
    losses = [
        knowledge_distill_loss(
            [s(F.normalize(pi, dim=-1)) for pi in p],
            [t(F.normalize(zb, dim=-1)) for zb in z_bar],
            temperature=_temperature(model, 0.1),
        )
        for s, t in pairs
    ]
    return torch.stack(losses).mean()


# distiller name -> (model, p = g(z) per view, z_bar per view) -> distillation loss
DISTILL_REFERENCE = {
    "decorrelative": lambda m, p, zb: decorrelative_distill_loss(
        p[0], p[1], zb[0], zb[1], lamb=m.hparams.distill_barlow_lamb, scale_loss=m.hparams.distill_scale_loss
    ),
    "predictive": lambda m, p, zb: predictive_distill_loss(p[0], p[1], zb[0], zb[1]),
    "predictive_mse": lambda m, p, zb: predictive_mse_distill_loss(p[0], p[1], zb[0], zb[1]),
    "contrastive": lambda m, p, zb: contrastive_distill_loss(
        p[0], p[1], zb[0], zb[1], temperature=_temperature(m, 0.2)
    ),
    "knowledge": _knowledge,
    "relational": lambda m, p, zb: relational_distill_loss(
        p[0],
        p[1],
        zb[0],
        zb[1],
        temperature_q=_temperature(m, m.hparams.get("temperature_q", 0.1)),
        temperature_k=m.hparams.get("temperature_k", 0.04),
    ),
}


def ssl_reference(method: str, model, views):
    if method not in SSL_REFERENCE:
        raise AssertionError(
            f"method {method!r} has no reference step in tests/step_reference.py: "
            "add one (its loss from the model's modules and cassle.losses)"
        )
    return SSL_REFERENCE[method](model, views)


def distill_reference(distiller: str, model, z, views):
    """The distillation loss of projections ``z``: g(z) against the frozen model's z_bar."""
    if distiller in PNR_REFERENCE:  # PNR's regulariser L_reg (its whole step: pnr_reference)
        with torch.no_grad():
            z_bar = [model.frozen_projector(model.frozen_backbone(v)) for v in views]
        p = [model.distiller.predictor(zi) for zi in z]
        args = (model, views, None, z, p, z_bar) + ((model,) if distiller == "pnr_moco" else ())
        return PNR_REFERENCE[distiller](*args)[1]
    if distiller not in DISTILL_REFERENCE:
        raise AssertionError(f"distiller {distiller!r} has no reference in tests/step_reference.py: add one")
    with torch.no_grad():
        z_bar = [model.frozen_projector(model.frozen_backbone(v)) for v in views]
    p = [model.distiller.predictor(zi) for zi in z]
    return DISTILL_REFERENCE[distiller](model, p, z_bar)
