"""At task 0 a CaSSLe model is the plain method: no predictor, no parameter group, same weights.

Running a shipped `*_distill.sh` directly with bash starts task 0 with the distiller flags; the
predictor's parameters never got a gradient there, which DDP rejects ("parameters that were not
used in producing loss"). The launcher drops the flags; the model must not depend on that.
"""

from __future__ import annotations

import pytest
import torch

from cassle.distillers import DISTILLERS
from main_continual import build_model
from tests.helpers import tiny_args

PAIRS = [
    ("barlow_twins", "decorrelative"),
    ("byol", "predictive"),
    ("swav", "knowledge"),
    ("mocov2plus", "pnr_moco"),
]  # PNR: its own mixin and a queue, also nothing at task 0


class _Trainer:  # what configure_optimizers reads
    world_size = 1
    max_epochs = 1
    estimated_stepping_batches = 4


def _model(method, distiller, task_idx):
    args = tiny_args(method, "--num_tasks", "2", "--task_idx", str(task_idx), distiller=distiller)
    args.num_classes = 4
    torch.manual_seed(0)
    model = build_model(args)
    model.trainer = _Trainer()
    return model


@pytest.mark.parametrize("method,distiller", PAIRS)
def test_task0_with_a_distiller_is_the_plain_method(method, distiller):
    cassle = _model(method, distiller, 0)
    plain = _model(method, None, 0)
    # every parameter gets a gradient in a step, so DDP has nothing unused
    assert dict(cassle.named_parameters()).keys() == dict(plain.named_parameters()).keys()
    for (name, a), b in zip(cassle.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), f"{name}: the distiller changed the initial weights"
    opt = cassle.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    assert not [g for g in opt.param_groups if g.get("name", "").startswith("distiller")]
    in_optimizer = {id(p) for g in opt.param_groups for p in g["params"]}
    assert {id(p) for p in cassle.parameters() if p.requires_grad} == in_optimizer
    # from task 1 on the predictor is there and optimised
    task1 = _model(method, distiller, 1)
    assert task1.distiller is not None and any(n.startswith("distiller.") for n, _ in task1.named_parameters())


def test_a_wrong_distiller_fails_already_at_task0():
    with pytest.raises(ValueError, match="needs a method with prototypes"):
        _model("byol", "knowledge", 0)
    assert "knowledge" in DISTILLERS
