"""Osiris (Zhang et al., CoLLAs 2024): its two h-space losses on fixed tensors against the equations
written out here (float64), and the strategy's behaviour: task 0 inactive, h loaded from g at task 1
and kept after, both variants' steps as the sum of their terms, bad flags, exact resume, metrics,
2-process DDP, the digits script and ``--compare``. Osiris-R's step composition with the method and a
CaSSLe distiller is in test_strategy_composition (REFERENCE)."""

from __future__ import annotations

import argparse
import math

import pytest
import torch

from cassle.losses.osiris import osiris_cross_task_loss, osiris_distill_loss
from cassle.losses.simclr import simclr_loss_func
from tests.helpers import fake_batch
from tests.step_reference import task1_model
from tests.test_strategy_composition import Source


def rand(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def unit(rows):
    return [[x / math.sqrt(sum(y * y for y in r)) for x in r] for r in rows.tolist()]


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def nce(anchor, positive, negatives, t):
    """-log(exp(a.p/t) / (exp(a.p/t) + sum_n exp(a.n/t))) with Python floats."""
    pos = math.exp(dot(anchor, positive) / t)
    return -math.log(pos / (pos + sum(math.exp(dot(anchor, n) / t) for n in negatives)))


# ------------------------------------------------------------------ the losses, written out
def test_cross_task_loss_is_the_equation():
    z1, z2, u1, u2 = rand(4, 3, seed=1), rand(4, 3, seed=2), rand(3, 3, seed=3), rand(3, 3, seed=4)
    t = 0.3
    Z1, Z2, U1, U2 = unit(z1), unit(z2), unit(u1), unit(u2)
    U, Z = U1 + U2, Z1 + Z2  # negatives: the other set's 2M (2N) views, none of the own set
    l_zu = sum(nce(Z1[i], Z2[i], U, t) + nce(Z2[i], Z1[i], U, t) for i in range(4)) / 8
    l_uz = sum(nce(U1[k], U2[k], Z, t) + nce(U2[k], U1[k], Z, t) for k in range(3)) / 6
    got = osiris_cross_task_loss(z1, z2, u1, u2, temperature=t)
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(0.5 * (l_zu + l_uz), abs=1e-9)
    # symmetric in the two sets: swapping them swaps L_zu and L_uz
    assert float(osiris_cross_task_loss(u1, u2, z1, z2, temperature=t)) == pytest.approx(float(got), abs=1e-9)


def test_distill_loss_is_the_equation():
    n, t = 3, 0.2
    z1, z2, p1, p2 = (rand(n, 4, seed=s) for s in (5, 6, 7, 8))
    A, B = unit(torch.cat([z1, z2])), unit(torch.cat([p1, p2]))

    def others(rows, i):  # every row but i and the same image's other view i +- n
        return [r for j, r in enumerate(rows) if j != i and j != (i + n) % (2 * n)]

    l_ab = sum(nce(A[i], B[i], others(B, i), t) for i in range(2 * n)) / (2 * n)
    l_ba = sum(nce(B[i], A[i], others(A, i), t) for i in range(2 * n)) / (2 * n)
    got = osiris_distill_loss(z1, z2, p1, p2, temperature=t)
    assert float(got) == pytest.approx(0.5 * (l_ab + l_ba), abs=1e-9)
    # identical models and well-separated images: a small loss; shuffled pairs: a large one
    assert float(osiris_distill_loss(z1, z2, z1, z2, t)) < float(osiris_distill_loss(z1, z2, p1, p2, t))


def test_losses_reject_bad_input():
    a, b = rand(4, 3, seed=1), rand(4, 5, seed=2)
    with pytest.raises(ValueError, match="same width"):
        osiris_cross_task_loss(a, a, b, b)
    with pytest.raises(ValueError, match="temperature"):
        osiris_distill_loss(a, a, a, a, temperature=0.0)


# ------------------------------------------------------------------ the strategy
def _model(*flags, method="simclr", task="1", fill=True):
    model = task1_model(
        method, "--task_idx", task, "--cl_strategy", "osiris", "--buffer_size", "16", "--replay_batch_size", "4", *flags
    )
    s = model.strategies["osiris"]
    s.__dict__.update(source=Source(), has_data=fill)
    if fill:
        s.buffer.add(torch.arange(50, 66), torch.zeros(16, dtype=torch.long), 0)
    return model, s


def _step(model):
    indexes, views, targets = fake_batch()
    model._step_indexes = indexes
    return model.ssl_step(views, targets), views


def test_task_0_has_no_h_and_no_term_and_an_empty_buffer_none_either():
    for task, fill in (("0", True), ("1", False)):
        model, s = _model(task=task, fill=fill)
        assert (s.h is None) == (task == "0")
        out, _ = _step(model)
        assert float(out.logs["osiris_loss"]) == 0.0 and float(out.logs["replay_share"]) == 0.0
        assert s.buffer.num_seen > 0  # the batch was offered to the buffer


def test_h_is_g_when_task_1_starts_and_its_own_after():
    model, s = _model()
    g = model.projector.state_dict()
    assert any(not torch.equal(v, g[k]) for k, v in s.h.state_dict().items())  # task1_model moved g
    model.start_new_task()
    assert all(torch.equal(v, g[k]) for k, v in s.h.state_dict().items()) and bool(s.h_ready)
    assert s.h[0].weight is not model.projector[0].weight  # a copy, trained on its own
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    # task 2 starts from task 1's checkpoint: h is that checkpoint's, not g's again
    model2, s2 = _model(task="2")
    with torch.no_grad():
        saved["strategies.osiris.h.0.weight"].add_(1.0)
    model2.load_state_dict(saved)
    model2.start_new_task()
    torch.testing.assert_close(s2.h[0].weight, saved["strategies.osiris.h.0.weight"], rtol=0, atol=0)


def _spy(s, rec):
    sample = s.buffer.sample

    def recording(n):
        slots = sample(n)
        rec.append(Source().views(s.buffer.indices[slots]))
        return slots

    s.buffer.sample = recording


@pytest.mark.parametrize("variant", ["r", "d"])
def test_step_is_the_method_loss_plus_the_weighted_h_space_terms(variant):
    model, s = _model("--osiris_variant", variant, "--osiris_lamb", "0.3", "--osiris_temperature", "0.25")
    assert hasattr(model, "frozen_backbone") == (variant == "d")  # Osiris-R reads no frozen model
    if variant == "d":
        with torch.no_grad():  # a previous model that differs from the current one
            for p in model.frozen_backbone.parameters():
                p.add_(0.05 * torch.randn_like(p))
    rec = []
    _spy(s, rec)
    out, views = _step(model)
    (y,) = rec
    f = [model.backbone(v) for v in views]
    g = [model.projector(x) for x in f]
    z, u = [s.h(x) for x in f], [s.h(model.backbone(v)) for v in y]
    cross = osiris_cross_task_loss(z[0], z[1], u[0], u[1], 0.25)
    if variant == "r":
        past = simclr_loss_func(u[0], u[1], temperature=0.25)
    else:
        p = [s.h(model.frozen_backbone(v).detach()) for v in views]
        past = osiris_distill_loss(z[0], z[1], p[0], p[1], 0.25)
    expected = simclr_loss_func(g[0], g[1], temperature=model.hparams.temperature) + 0.3 * (cross + past)
    torch.testing.assert_close(out.loss, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.logs["osiris_cross"], cross.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.logs["osiris_past"], past.detach(), rtol=1e-5, atol=1e-6)
    assert float(out.logs["replay_share"]) == pytest.approx(4 / (8 + 4))
    out.loss.backward()
    assert s.h[0].weight.grad.abs().sum() > 0 and model.backbone.features[0][0].weight.grad.abs().sum() > 0
    if variant == "d":
        assert all(p.grad is None for p in model.frozen_backbone.parameters())


def test_default_buffer_images_per_step_are_three_quarters_of_the_batch():
    model = task1_model("simclr", "--cl_strategy", "osiris", "--buffer_size", "16")
    assert model.strategies["osiris"].replay_batch_size == 12  # int(0.75 x 16), the code's --p 0.75


@pytest.mark.parametrize(
    "change, match",
    [
        ({"osiris_variant": "x"}, "--osiris_variant"),
        ({"osiris_lamb": -1.0}, "--osiris_lamb"),
        ({"osiris_temperature": 0.0}, "--osiris_temperature"),
    ],
)
def test_bad_flags_are_one_clear_error(change, match):
    from cassle.strategies.osiris import Osiris

    args = argparse.Namespace(**{"osiris_variant": "r", "osiris_lamb": 0.5, "osiris_temperature": 0.1, **change})
    with pytest.raises(ValueError, match=match):
        Osiris.check_args(args)


def test_osiris_d_at_task_1_needs_the_previous_checkpoint():
    from cassle.strategies import STRATEGIES, validate_strategy_args

    ns = argparse.Namespace(cl_strategy=["osiris"], osiris_variant="d", num_tasks=2, task_idx=1)
    ns.pretrained_model = ns.resume_from_checkpoint = None
    with pytest.raises(ValueError, match="needs --pretrained_model"):
        validate_strategy_args(ns, None)
    assert STRATEGIES["osiris"].uses_frozen(argparse.Namespace(osiris_variant="r")) is False


# ------------------------------------------------------------------ end to end (tiny synthetic sequence)
@pytest.mark.parametrize("variant", ["r", "d"])
def test_killed_task_resumes_to_identical_weights_buffer_and_h(variant, tmp_path):
    from tests.test_strategies import killed_and_resumed

    flags = ["--cl_strategy", "osiris", "--osiris_variant", variant, "--replay_batch_size", "8"]
    reference, resumed = killed_and_resumed(flags, tmp_path)
    assert "strategies.osiris.h.0.weight" in reference
    assert ("frozen_backbone.features.0.0.weight" in reference) == (variant == "d")
    assert int(resumed["strategies.osiris.buffer.num_seen"]) == 2 * 2 * 32


def test_active_in_metrics_csv_and_on_the_console(tmp_path, capsys):
    import csv

    from tests.test_strategies import _sequence

    _sequence(tmp_path, ["--cl_strategy", "osiris", "--osiris_variant", "d"])
    console = capsys.readouterr().out
    with open(next((tmp_path / "task1").rglob("metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    cols = set(rows[0])
    assert {"train/osiris_loss", "train/osiris_cross", "train/osiris_past", "train/replay_share"} <= cols
    for key in ("train/osiris_loss", "train/osiris_cross", "train/osiris_past"):
        values = [float(r[key]) for r in rows if r[key]]
        assert values and min(values) > 0, key
    share = [float(r["train/replay_share"]) for r in rows if r["train/replay_share"]]
    assert share and max(share) == pytest.approx(12 / (16 + 12), abs=1e-6)  # int(0.75 x 16) of batch 16
    assert "osiris_cross" in console and "task 1 buffer (osiris): 16/16" in console


@pytest.mark.slow
def test_two_process_gloo_ddp_task_1_with_the_global_batch(tmp_path):
    """Osiris-D at task 1 on 2 gloo processes, h-space losses over the gathered batch."""
    import csv

    from main_continual import run_task
    from tests.helpers import tiny_args, tiny_argv
    from tests.test_ddp import _run

    flags = ["--num_tasks", "2", "--synthetic_size", "128", "--cl_strategy", "osiris", "--buffer_size", "16"]
    flags += ["--osiris_variant", "d", "--distributed_loss", "global"]
    run_task(tiny_args("simclr", *flags, tmp_path=tmp_path / "task0"))
    task1 = ["--task_idx", "1", "--pretrained_model", str(tmp_path / "task0" / "last.ckpt")]
    _run(tiny_argv("simclr", *flags, *task1, "--devices", "2", "--strategy", "ddp", tmp_path=tmp_path / "task1"))
    ckpt = torch.load(tmp_path / "task1" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2  # 64 task-1 images / (16 per process x 2 processes)
    assert bool(ckpt["state_dict"]["strategies.osiris.h_ready"])
    with open(next((tmp_path / "task1").rglob("metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    past = [float(r["train/osiris_past"]) for r in rows if r.get("train/osiris_past")]
    assert past and all(v > 0 for v in past)


@pytest.mark.slow
def test_digits_script_runs_two_tasks_through_the_launcher(tmp_path):
    import json
    import os

    from tests.test_bash_scripts import SCRIPT_ROOT, _launch

    env = {k: v for k, v in os.environ.items() if k != "DATA_DIR"}
    extra = ["--num_tasks", "2", "--max_epochs", "1", "--limit_train_batches", "2"]
    _launch(SCRIPT_ROOT / "digits" / "barlow_osiris.sh", tmp_path, extra, env)
    for t in range(2):
        assert (tmp_path / f"task{t}" / "last.ckpt").is_file()
    assert json.loads((tmp_path / "task1" / "args.json").read_text())["cl_strategy"] == ["osiris"]
    state = torch.load(tmp_path / "task1" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert bool(state["strategies.osiris.h_ready"])


def test_compare_names_both_variants_and_shows_no_paper_number_beside_them():
    from cassle.eval.compare import ROW_ORDER, paper_value, strategy_label

    for variant, label in (("r", "Osiris-R"), ("d", "Osiris-D")):
        assert strategy_label({"cl_strategy": ["osiris"], "osiris_variant": variant}) == label
        assert label in ROW_ORDER
        assert paper_value(label, "simclr", ("cifar100", "class", 5)) is None  # its protocol differs
    assert strategy_label({"cl_strategy": ["osiris"]}) == "Osiris-R"  # args.json of the default
