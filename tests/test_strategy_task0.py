"""Task 0 of every strategy is the plain method's task 0, and every strategy runs 2-process DDP.

At task 0 there is no previous model: a strategy may not add parameters (DDP rejects parameters
that get no gradient), may not draw random numbers while it is built (the weights, the data order
and the augmentations would differ from the plain method's with the same seed), and the regularisers
and the penalty change nothing. Replay strategies replay from the buffer from the second step of
task 0 on, as their sources do (UCL, mammoth): their model is built identically, their training
then differs by design.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cassle.strategies import STRATEGIES
from main_continual import build_model, run_task
from tests.helpers import tiny_args

REPO = Path(__file__).resolve().parents[1]
NOT_MODEL = ("strategies.",)  # the strategies' own state (buffers, Fisher), not the SSL model


def _build(*flags, method="barlow_twins"):
    args = tiny_args(method, "--num_tasks", "2", "--task_idx", "0", *flags)
    args.num_classes = 4
    torch.manual_seed(0)
    model = build_model(args)
    return model, torch.get_rng_state()


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_task0_strategy_builds_the_plain_model_and_draws_no_random_number(name):
    plain, plain_rng = _build()
    model, rng = _build("--cl_strategy", name)
    assert torch.equal(rng, plain_rng), f"building {name} at task 0 drew random numbers"
    params = {n for n, p in model.named_parameters() if p.requires_grad}
    assert params == {n for n, p in plain.named_parameters() if p.requires_grad}, (
        f"{name} adds parameters at task 0 that nothing uses (DDP rejects them)"
    )
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(NOT_MODEL)}
    assert state.keys() == plain.state_dict().keys()
    for k, v in plain.state_dict().items():
        assert torch.equal(state[k], v), f"{name} changed {k} at task 0"


DISTILLER_METHOD = {"knowledge": "swav", "contrastive": "mocov2plus", "predictive": "byol"}


def test_task0_distillers_draw_no_random_number_either():
    from cassle.distillers import DISTILLERS

    for name, cls in DISTILLERS.items():  # a distiller bound to some methods (PNR) runs with its first one
        method = (getattr(cls, "methods", ()) or (DISTILLER_METHOD.get(name, "barlow_twins"),))[0]
        plain, plain_rng = _build(method=method)
        model, rng = _build("--distiller", name, method=method)
        assert torch.equal(rng, plain_rng), f"building the {name} distiller at task 0 drew random numbers"
        assert model.state_dict().keys() == plain.state_dict().keys()


def test_task0_with_every_regulariser_trains_exactly_like_the_plain_method(tmp_path):
    regularisers = [n for n, c in STRATEGIES.items() if c.kind != "replay"]
    states = {}
    for label, flags in (("plain", []), ("all", ["--cl_strategy", *regularisers])):
        out = tmp_path / label
        run_task(
            tiny_args(
                "barlow_twins",
                "--num_tasks",
                "2",
                "--synthetic_size",
                "64",
                "--deterministic",
                "--max_epochs",
                "2",
                *flags,
                tmp_path=out,
            )
        )
        states[label] = torch.load(out / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    model = {k: v for k, v in states["all"].items() if not k.startswith(NOT_MODEL)}
    assert model.keys() == states["plain"].keys()
    different = [k for k, v in states["plain"].items() if not torch.equal(model[k], v)]
    assert not different, f"task 0 with {regularisers} differs from the plain method: {different[:5]}"


def ddp_groups(names) -> list[list[str]]:
    """Every strategy at least once, at most one replay strategy per run."""
    replays = [n for n in names if STRATEGIES[n].kind == "replay"]
    others = [n for n in names if STRATEGIES[n].kind != "replay"]
    return [[*others, replays[0]], *[[r] for r in replays[1:]]] if replays else [others]


@pytest.mark.slow
def test_every_strategy_runs_two_process_ddp_task0_and_task1(tmp_path):
    groups = ddp_groups(list(STRATEGIES))
    assert sorted(n for g in groups for n in g) == sorted(STRATEGIES)
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "ddp_strategy_worker.py"), str(tmp_path), json.dumps(groups)],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert (tmp_path / "done").exists()
    for group in groups:
        for task in range(2):
            ckpt = torch.load(
                tmp_path / "+".join(group) / f"task{task}" / "last.ckpt", map_location="cpu", weights_only=False
            )
            # 64 images per task / (16 per device x 2 devices) = 2 steps: the processes split the
            # epoch, and a parameter without a gradient in step 1 fails DDP in step 2
            assert ckpt["global_step"] == 2
            assert len(ckpt["rng_states"]["per_rank"]) == 2


# ------------------------------------------------------------------ DER: stored == recomputed
@pytest.mark.parametrize("target", ["backbone", "projector"])
@pytest.mark.parametrize("method", ["simclr", "mocov2plus", "byol", "barlow_twins", "swav", "vicreg"])
def test_der_term_is_zero_on_the_buffered_images_with_unchanged_weights(method, target):
    """The buffer keeps f(x) (or the method's z, L2-normalised for MoCoV2+) and DER recomputes the
    same function: on the same images, in the same batch, with the same weights the term is 0."""
    from tests.helpers import fake_batch

    args = tiny_args(
        method, "--num_tasks", "2", "--cl_strategy", "der", "--der_target", target, "--replay_batch_size", "8"
    )
    args.num_classes = 4
    torch.manual_seed(0)
    model = build_model(args)
    der = model.strategies["der"]
    indexes, views, targets = fake_batch()

    class Source:  # the buffered images, exactly as they were seen
        def views(self, idx):
            return [views[0][idx], views[1][idx]]

    der.__dict__.update(source=Source())
    der.buffer.sample = lambda n: torch.arange(n)  # the whole batch, in its order
    model._step_indexes = indexes
    model.ssl_step(views, targets)  # stores the first view's output (buffer empty: no DER term)
    stored_dim = model.features_dim if target == "backbone" else args.output_dim
    assert der.buffer.z.shape[1] == stored_dim and int(der.buffer.num_seen) == 8
    der.__dict__["has_data"] = True
    term, _ = der.loss(model, views, None, {"n": 8})
    assert float(term) == pytest.approx(0.0, abs=1e-12), f"{method}/{target}: DER term {float(term)}"
