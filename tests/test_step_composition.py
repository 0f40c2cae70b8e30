"""The training step is composed right: for every method x distiller, the loss a CaSSLe step
optimises equals, in value, the method's SSL loss + distill_lamb x the distillation loss, each
recomputed here from the model's modules (tests/step_reference.py); and one SGD step on that loss
lowers the distillation term on the same batch (a step that *subtracts* the term raises it).
Every registered strategy is checked the same way in tests/test_strategy_composition.py.
"""

from __future__ import annotations

import copy

import pytest
import torch

from cassle.distillers import DEFAULT_DISTILLER, DISTILLERS
from cassle.methods import METHODS
from main_continual import build_model
from tests.helpers import fake_batch, tiny_args
from tests.step_reference import distill_reference, prepare_step, sgd_step, ssl_reference, task1_model
from tests.step_reference_pnr import PNR_REFERENCE, pnr_reference

LAMB = 0.7  # not the default of any distiller, so a dropped or wrong weight shows
TOL = dict(rtol=1e-5, atol=1e-6)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine threads cost minutes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def compatible(method: str, distiller: str) -> bool:
    if distiller in PNR_REFERENCE:  # each PNR distiller: the methods its public code covers
        return method in DISTILLERS[distiller].methods
    return distiller != "knowledge" or method in ("swav", "dino", "deepclusterv2")


PAIRS = [(m, d) for m in METHODS for d in DISTILLERS]


@pytest.mark.parametrize("method,distiller", PAIRS)
def test_cassle_step_is_ssl_plus_lamb_times_distillation(method, distiller):
    if not compatible(method, distiller):  # the documented restriction, checked instead
        with pytest.raises(
            ValueError, match="needs one of the methods" if distiller in PNR_REFERENCE else "prototypes"
        ):
            task1_model(method, "--distill_lamb", str(LAMB), distiller=distiller)
        return
    if distiller in PNR_REFERENCE:
        return check_pnr_step(method, distiller)
    model = task1_model(method, "--distill_lamb", str(LAMB), distiller=distiller)
    _, views, targets = fake_batch()
    before = copy.deepcopy(model)  # the references see the state (queues) the step starts from
    out = model.ssl_step(views, targets)

    ssl, z = ssl_reference(method, before, views)
    distill = distill_reference(distiller, before, z, views)
    assert distill.item() > 1e-3, "a vanishing distillation term cannot show its sign"
    torch.testing.assert_close(out.loss, ssl + LAMB * distill, **TOL)
    torch.testing.assert_close(out.logs["distill_loss"], distill.detach(), **TOL)

    # One SGD step on the step's loss lowers the distillation term on the same batch, compared with
    # the same step on the SSL loss alone (the SSL gradient may raise the term by itself: VICReg's
    # loss is ~100x the predictive-MSE term at lamb 0.7). To first order the difference is
    # -lr * lamb * |grad distill|^2 < 0; a step that subtracts the term makes it positive.
    sgd_step(model, out.loss)
    ssl_only = copy.deepcopy(before)
    sgd_step(ssl_only, ssl_reference(method, ssl_only, views)[0])
    after, after_ssl_only = (
        distill_reference(distiller, m, ssl_reference(method, m, views)[1], views) for m in (model, ssl_only)
    )
    assert after < after_ssl_only, (
        f"distillation term {float(distill):.5f} -> {float(after):.5f} after a "
        f"step on the total, {float(after_ssl_only):.5f} after the SSL loss alone"
    )


@pytest.mark.parametrize("method", list(METHODS))
def test_task0_step_is_the_plain_ssl_loss(method):
    """At task 0 a CaSSLe model adds nothing: its step is the method's SSL loss."""
    args = tiny_args(method, distiller="predictive_mse")
    args.num_classes = 4
    model = build_model(args).train()
    _, views, targets = fake_batch()
    prepare_step(method, model, views)
    before = copy.deepcopy(model)
    out = model.ssl_step(views, targets)
    torch.testing.assert_close(out.loss, ssl_reference(method, before, views)[0], **TOL)


@pytest.mark.parametrize("method", list(METHODS))
def test_a_step_with_the_paper_pairing_lowers_the_distillation_term(method):
    """With the distiller the paper pairs with the method and its default weight, one SGD step on the
    step's loss lowers the distillation term on the same batch outright."""
    distiller = DEFAULT_DISTILLER[method]
    model = task1_model(method, distiller=distiller)
    _, views, targets = fake_batch()
    before = copy.deepcopy(model)
    distill = distill_reference(distiller, before, ssl_reference(method, before, views)[1], views)
    sgd_step(model, model.ssl_step(views, targets).loss)
    after = distill_reference(distiller, model, ssl_reference(method, model, views)[1], views)
    assert after < distill, f"{method} + {distiller}: {distill.item():.5f} -> {after.item():.5f}"


def check_pnr_step(method, distiller):
    """PNR: L = L_main + lamb L_reg - negative_lamb L_neg (tests/step_reference_pnr.py), and one SGD
    step on it lowers the regulariser lamb L_reg - negative_lamb L_neg more than a step on L_main
    alone (to first order by lr |grad|^2; a wrong sign or a dropped term reverses it)."""
    model = task1_model(method, "--distill_lamb", str(LAMB), distiller=distiller)
    _, views, targets = fake_batch()
    before = copy.deepcopy(model)
    out = model.ssl_step(views, targets)
    main, reg, neg = pnr_reference(distiller, before, views, ssl_reference)
    neg_lamb = model.distiller.negative_lamb or 0.0
    assert reg.item() > 1e-3
    torch.testing.assert_close(out.loss, main + LAMB * reg - neg_lamb * neg, **TOL)
    torch.testing.assert_close(out.logs["distill_loss"], reg.detach(), **TOL)

    def regulariser(m):
        _, r, n = pnr_reference(distiller, m, views, ssl_reference, state=before)
        return LAMB * r - neg_lamb * n

    sgd_step(model, out.loss)
    main_only = copy.deepcopy(before)
    sgd_step(main_only, pnr_reference(distiller, main_only, views, ssl_reference, state=before)[0])
    assert regulariser(model) < regulariser(main_only)
