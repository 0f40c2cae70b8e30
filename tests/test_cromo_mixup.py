"""CroMo-Mixup (Mushtaq et al., ECCV 2024): its loss on fixed tensors against the equation written
out here, and the strategy's own behaviour (task 0 inactive, lambda fixed or drawn, BYOL's targets,
bad flags). Its composition with the method and CaSSLe's distiller is in test_strategy_composition."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cassle.losses.cromo_mixup import cromo_mixup_loss
from tests.helpers import fake_batch
from tests.step_reference import task1_model
from tests.test_strategy_composition import Source


def test_cromo_mixup_loss_is_the_lambda_weighted_pair_losses_averaged_over_views():
    g = torch.Generator().manual_seed(0)
    z_mix, z_new, z_old = ([torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(2)] for _ in range(3))
    lam = 0.3

    def neg_cos(a, b):  # any pairwise loss: the weights and the pairing are what is tested
        return -(F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(1).mean()

    # L = 1/2 [ lam L(m1, n1) + (1 - lam) L(m1, o1) + lam L(m2, n2) + (1 - lam) L(m2, o2) ]
    expected = 0.5 * (
        0.3 * neg_cos(z_mix[0], z_new[0])
        + 0.7 * neg_cos(z_mix[0], z_old[0])
        + 0.3 * neg_cos(z_mix[1], z_new[1])
        + 0.7 * neg_cos(z_mix[1], z_old[1])
    )
    got = cromo_mixup_loss(z_mix, z_new, z_old, lam, neg_cos)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    # lambda 1: the current model's target alone; lambda 0: the frozen model's alone
    torch.testing.assert_close(
        cromo_mixup_loss(z_mix, z_new, z_old, 1.0, neg_cos),
        0.5 * (neg_cos(z_mix[0], z_new[0]) + neg_cos(z_mix[1], z_new[1])),
        rtol=0,
        atol=1e-6,
    )
    torch.testing.assert_close(
        cromo_mixup_loss(z_mix, z_new, z_old, 0.0, neg_cos),
        0.5 * (neg_cos(z_mix[0], z_old[0]) + neg_cos(z_mix[1], z_old[1])),
        rtol=0,
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="as many views"):
        cromo_mixup_loss(z_mix, z_new[:1], z_old, lam, neg_cos)


def _model(method, *flags, task="1", fill=True):
    model = task1_model(
        method,
        "--task_idx",
        task,
        "--cl_strategy",
        "cromo_mixup",
        "--buffer_size",
        "16",
        "--replay_batch_size",
        "4",
        *flags,
    )
    s = model.strategies["cromo_mixup"]
    s.__dict__.update(source=Source(), has_data=fill)
    if fill:
        s.buffer.add(torch.arange(50, 66), torch.zeros(16, dtype=torch.long), 0)
    return model, s


def test_inactive_without_a_frozen_model_or_an_empty_buffer():
    for task, fill in (("0", True), ("1", False)):
        model, s = _model("barlow_twins", task=task, fill=fill)
        indexes, views, targets = fake_batch()
        model._step_indexes = indexes
        out = model.ssl_step(views, targets)
        assert float(out.logs["cromo_mixup_loss"]) == 0.0 and float(out.logs["replay_share"]) == 0.0
    assert s.buffer.num_seen > 0  # the batch was offered to the buffer


@pytest.mark.parametrize("method", ["barlow_twins", "simclr", "byol"])
def test_active_from_task_1_with_its_lambda_and_replay_share(method):
    model, _ = _model(method, "--cromo_lambda", "0.7")
    indexes, views, targets = fake_batch()
    model._step_indexes = indexes
    out = model.ssl_step(views, targets)
    assert float(out.logs["cromo_mixup_loss"]) != 0.0
    assert float(out.logs["cromo_lambda"]) == pytest.approx(0.7)
    assert float(out.logs["replay_share"]) == pytest.approx(4 / (8 + 4))  # M = min(B, r) buffer images
    out.loss.backward()
    assert model.backbone.features[0][0].weight.grad.abs().sum() > 0


def test_lambda_is_drawn_per_step_when_not_fixed():
    model, _ = _model("simclr", "--cromo_alpha", "1.0", "--cromo_lambda", "beta")
    indexes, views, targets = fake_batch()
    model._step_indexes = indexes
    lams = {round(float(model.ssl_step(views, targets).logs["cromo_lambda"]), 6) for _ in range(3)}
    assert len(lams) == 3 and all(0 < x < 1 for x in lams)


@pytest.mark.parametrize(
    "flags, match",
    [
        (("--method", "vicreg"), "supports --method"),
        (("--cromo_alpha", "0"), "--cromo_alpha"),
        (("--cromo_lambda", "1.5"), "--cromo_lambda"),
    ],
)
def test_bad_flags_are_one_clear_error(flags, match):
    import argparse

    from cassle.strategies.cromo_mixup import CroMoMixup

    args = argparse.Namespace(method="barlow_twins", cromo_alpha=1.0, cromo_lambda="beta")
    for k, v in zip(flags[::2], flags[1::2]):
        setattr(args, k[2:], v if k == "--method" else float(v))
    with pytest.raises(ValueError, match=match):
        CroMoMixup.check_args(args)


# ------------------------------------------------------------------ end to end (tiny synthetic sequence)
FLAGS = [
    "--cl_strategy",
    "cromo_mixup",
    "--distiller",
    "decorrelative",
    "--replay_batch_size",
    "8",
    "--cromo_lambda",
    "beta",
]


def test_killed_task_resumes_to_identical_weights_buffer_and_lambda_draws(tmp_path):
    from tests.test_strategies import killed_and_resumed

    _, resumed = killed_and_resumed(FLAGS, tmp_path)
    assert int(resumed["strategies.cromo_mixup.buffer.num_seen"]) == 2 * 2 * 32


def test_active_in_metrics_csv_and_on_the_console(tmp_path, capsys):
    import csv

    from tests.test_strategies import _sequence

    _sequence(tmp_path, FLAGS)
    console = capsys.readouterr().out
    with open(next((tmp_path / "task1").rglob("metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    cols = set(rows[0])
    assert {"train/cromo_mixup_loss", "train/cromo_lambda", "train/replay_share", "buffer/fill"} <= cols
    loss = [float(r["train/cromo_mixup_loss"]) for r in rows if r["train/cromo_mixup_loss"]]
    share = [float(r["train/replay_share"]) for r in rows if r["train/replay_share"]]
    assert loss and max(loss) > 0
    assert share and max(share) == pytest.approx(8 / (16 + 8), abs=1e-6)  # M = min(B, r) = 8 of batch 16
    assert "cromo_mixup_loss" in console and "cromo_lambda" in console
    assert "task 1 buffer (cromo_mixup): 16/16" in console


@pytest.mark.slow
def test_two_process_gloo_ddp_task_1(tmp_path):
    """Task 1 on 2 gloo processes: each mixes its own batch with its copy of the task-0 buffer."""
    import csv

    from main_continual import run_task
    from tests.helpers import tiny_args, tiny_argv
    from tests.test_ddp import _run

    flags = [
        "--num_tasks",
        "2",
        "--synthetic_size",
        "128",
        "--cl_strategy",
        "cromo_mixup",
        "--buffer_size",
        "16",
        "--replay_batch_size",
        "8",
        "--cromo_lambda",
        "0.7",
    ]
    run_task(tiny_args("barlow_twins", *flags, tmp_path=tmp_path / "task0"))
    _run(
        [
            *tiny_argv(
                "barlow_twins",
                *flags,
                "--task_idx",
                "1",
                "--pretrained_model",
                str(tmp_path / "task0" / "last.ckpt"),
                "--devices",
                "2",
                "--strategy",
                "ddp",
                distiller="decorrelative",
                tmp_path=tmp_path / "task1",
            )
        ]
    )
    ckpt = torch.load(tmp_path / "task1" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2  # 64 task-1 images / (16 per process x 2 processes)
    assert int(ckpt["state_dict"]["strategies.cromo_mixup.buffer.num_seen"]) > 64  # task 0's 64 + rank 0's own
    with open(next((tmp_path / "task1").rglob("metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    loss = [float(r["train/cromo_mixup_loss"]) for r in rows if r.get("train/cromo_mixup_loss")]
    assert loss and all(v > 0 for v in loss)


@pytest.mark.slow  # ~25 s on 2 busy cores: two Lightning fits in a subprocess
def test_cost_beside_cassle_in_the_throughput_benchmark(tmp_path):
    """``throughput.py --modes strategy`` (CPU smoke): CaSSLe and CaSSLe + CroMo-Mixup step figures."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "cost.json"
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "benchmarks/throughput.py", "--smoke", "--modes", "strategy", "--output", str(out)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    views, cost = result["views_per_s"], result["strategy_cost"]["cromo_mixup"]
    assert views["cassle_step_premade"] > 0 and views["cassle_cromo_mixup_step_premade"] > 0
    assert cost["extra_time_fraction"] == pytest.approx(
        views["cassle_step_premade"] / views["cassle_cromo_mixup_step_premade"] - 1
    )
    assert "CaSSLe + cromo_mixup" in done.stdout


def test_compare_names_it_and_shows_no_paper_number_beside_it():
    from cassle.eval.compare import ROW_ORDER, paper_value, strategy_label

    label = strategy_label({"cl_strategy": ["cromo_mixup"], "distiller": "decorrelative"})
    assert label == "CaSSLe + CroMo-Mixup" and label in ROW_ORDER
    assert paper_value(label, "barlow_twins", ("cifar100", "class", 5)) is None  # its protocol differs
