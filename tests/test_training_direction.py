"""Training goes downhill: for every method, a few SGD steps on the method's own ``ssl_step`` loss,
on one fixed batch, lower that method's SSL loss on the batch as recomputed from the model's
modules (tests/step_reference.py). A method that returns its loss negated (maximising its
objective) or detached fails here, although its loss function alone is right.
"""

from __future__ import annotations

import copy

import pytest
import torch

from cassle.methods import METHODS
from main_continual import build_model
from tests.helpers import fake_batch, tiny_args
from tests.step_reference import prepare_step, sgd_step, ssl_reference

STEPS = 5


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine threads cost minutes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def measured(method, model, initial_buffers, views):
    """The reference SSL loss of ``model`` with the buffers (queues, BN statistics) it started from:
    the queues the steps filled would change the measure, not the weights."""
    probe = copy.deepcopy(model)
    probe.load_state_dict({**model.state_dict(), **initial_buffers})
    with torch.no_grad():
        return ssl_reference(method, probe, views)[0].item()


@pytest.mark.parametrize("method", list(METHODS))
def test_sgd_steps_on_the_method_step_lower_its_ssl_loss(method):
    args = tiny_args(method)
    args.num_classes = 4
    torch.manual_seed(0)
    model = build_model(args).train()
    _, views, targets = fake_batch(batch_size=16, seed=3)
    prepare_step(method, model, views)
    buffers = {k: v.clone() for k, v in model.state_dict().items() if k not in dict(model.named_parameters())}
    start = measured(method, model, buffers, views)
    for _ in range(STEPS):
        sgd_step(model, model.ssl_step(views, targets).loss)
    end = measured(method, model, buffers, views)
    # A margin, not just "lower": float noise or a flat loss must not pass as learning.
    assert end < start - 0.01 * abs(start), f"{method}: SSL loss {start:.5f} -> {end:.5f} after {STEPS} steps"
