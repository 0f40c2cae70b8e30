"""Continual strategies end to end on tiny synthetic data: every registered strategy (and the
combinations the literature uses) trains a two-task sequence, carries its state to the next task,
resumes a killed task to identical weights and buffer, and rejects bad input with a clear error."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from cassle.data.buffer import ReplaySource
from cassle.strategies import STRATEGIES
from cassle.utils.args import parse_args
from main_continual import run_task
from tests.helpers import tiny_args, tiny_argv

SEQ = ["--num_tasks", "2", "--synthetic_size", "64", "--buffer_size", "16", "--deterministic"]
CASES = {name: ["--cl_strategy", name] for name in STRATEGIES}
CASES["ewc"] += ["--online_eval_batch_size", "16"]  # the Fisher pass reads the task's SSL stream only
CASES["cassle+replay"] = ["--cl_strategy", "replay", "--distiller", "decorrelative"]
CASES["pfr+replay"] = ["--cl_strategy", "pfr", "replay"]
CASES["ewc_batch_fisher"] = ["--cl_strategy", "ewc", "--ewc_fisher", "batch"]
CASES["lump_ucl_views"] = ["--cl_strategy", "lump", "--lump_views", "ucl"]
CASES["der_projector_ucl_views+pod_flat"] = [
    "--cl_strategy",
    "der",
    "pod",
    "--der_target",
    "projector",
    "--der_views",
    "ucl",
    "--pod_flat_lamb",
    "1",
]


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _sequence(tmp_path, flags, epochs=1, extra_callbacks=()):
    prev, trainers = None, []
    for task in range(2):
        argv = [*SEQ, *flags, "--task_idx", str(task), "--max_epochs", str(epochs)]
        if task == 0:  # the launcher drops the distiller flags at task 0
            argv = [a for i, a in enumerate(argv) if a != "--distiller" and argv[i - 1] != "--distiller"]
        if prev:
            argv += ["--pretrained_model", str(prev)]
        trainers.append(
            run_task(
                tiny_args("barlow_twins", *argv, tmp_path=tmp_path / f"task{task}"),
                extra_callbacks=extra_callbacks if task == 1 else (),
            )
        )
        prev = tmp_path / f"task{task}" / "last.ckpt"
    return trainers, [_state(tmp_path / f"task{t}" / "last.ckpt") for t in range(2)]


@pytest.mark.parametrize("case", list(CASES))
def test_strategy_trains_two_tasks_and_carries_its_state(case, tmp_path):
    (_, trainer1), (task0, task1) = _sequence(tmp_path, CASES[case])
    names = [n for n in CASES[case] if n in STRATEGIES]
    metrics = trainer1.callback_metrics
    assert torch.isfinite(metrics["train/loss"])
    steps = 2  # 32 images per task, batch 16, one epoch
    for name in names:
        if STRATEGIES[name].kind == "replay":
            key = f"strategies.{name}.buffer"
            assert int(task0[f"{key}.num_seen"]) == steps * 16
            assert int(task1[f"{key}.num_seen"]) == 2 * steps * 16  # task 1 continued task 0's buffer
            tasks = task1[f"{key}.tasks"][:16]
            assert set(tasks.tolist()) <= {0, 1} and (tasks >= 0).all()
            if name in ("der", "derpp"):
                assert f"train/{name}_loss" in metrics
        else:  # a loss term from task 1 on (EWC needs task 0's Fisher)
            assert float(metrics[f"train/{name}_loss"]) != 0.0
        if name == "ewc":
            fisher0 = [v for k, v in task0.items() if ".fisher_" in k]
            fisher1 = [v for k, v in task1.items() if ".fisher_" in k]
            assert any(f.abs().sum() > 0 for f in fisher0)
            assert all((b >= a).all() for a, b in zip(fisher0, fisher1))  # accumulated over tasks
            anchors = {k.split("anchor_")[1]: v for k, v in task1.items() if ".anchor_" in k}
            assert torch.equal(anchors["0"], task0["backbone.features.0.0.weight"])  # theta* = task 0's end
        if name == "si":  # importance from task 0's path integral, summed into task 1's
            imp0 = [v for k, v in task0.items() if ".importance_" in k]
            imp1 = [v for k, v in task1.items() if ".importance_" in k]
            assert any(w.abs().sum() > 0 for w in imp0)
            assert all((b >= a).all() for a, b in zip(imp0, imp1))
        if STRATEGIES[name].needs_frozen:  # the frozen model is task 0's backbone, untouched
            assert torch.equal(task1["frozen_backbone.features.0.0.weight"], task0["backbone.features.0.0.weight"])


class _Killed(Exception):
    pass


class _Kill(pl.Callback):
    def on_train_epoch_end(self, trainer, pl_module):  # after last.ckpt was written
        raise _Killed


def killed_and_resumed(flags: list[str], tmp_path) -> tuple[dict, dict]:
    """Task 1 of the tiny sequence with ``flags``: stopped mid-task (after its first epoch's
    checkpoint) and resumed from ``last.ckpt``, against the uninterrupted run. Asserts that every
    tensor of the resumed task's checkpoint equals the uninterrupted one's; returns (reference,
    resumed) state dicts for the caller's own checks."""
    _, (_, reference) = _sequence(tmp_path / "ref", flags, epochs=2)
    killed = tmp_path / "killed"
    with pytest.raises(_Killed):
        _sequence(killed, flags, epochs=2, extra_callbacks=[_Kill()])
    argv = [
        *SEQ,
        *flags,
        "--task_idx",
        "1",
        "--max_epochs",
        "2",
        "--pretrained_model",
        str(killed / "task0" / "last.ckpt"),
        "--resume_from_checkpoint",
        str(killed / "task1" / "last.ckpt"),
    ]
    run_task(tiny_args("barlow_twins", *argv, tmp_path=killed / "task1"))
    resumed = _state(killed / "task1" / "last.ckpt")
    assert resumed.keys() == reference.keys()
    different = [k for k in reference if not torch.equal(resumed[k], reference[k])]
    assert not different, f"resumed run differs from the uninterrupted one: {different[:5]}"
    return reference, resumed


@pytest.mark.parametrize("names", [["ewc", "der", "pod", "pfr", "less_forget"], ["si", "derpp", "co2l"]])
def test_killed_task_resumes_to_identical_weights_and_buffer(names, tmp_path):
    _, resumed = killed_and_resumed(["--cl_strategy", *names], tmp_path)
    replay = next(n for n in names if STRATEGIES[n].kind == "replay")
    assert int(resumed[f"strategies.{replay}.buffer.num_seen"]) == 2 * 2 * 32


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "flags, message",
    [
        (["--cl_strategy", "gem"], "unknown --cl_strategy 'gem'; valid strategies: ewc, replay"),
        (["--cl_strategy", "replay", "lump"], "choose one replay strategy"),
        (["--cl_strategy", "ewc", "ewc"], "names a strategy twice"),
    ],
)
def test_bad_strategy_names_are_argparse_errors(flags, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(tiny_argv("barlow_twins", *flags))
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--cl_strategy", "replay", "--buffer_size", "40"], "--buffer_size 40 is larger than the 32"),
        (["--cl_strategy", "pfr", "--num_tasks", "1"], "--cl_strategy pfr regularises towards the previous"),
        (["--cl_strategy", "pod", "--task_idx", "1"], "needs --pretrained_model"),
        (["--cl_strategy", "lump", "--replay_batch_size", "0"], "--replay_batch_size must be >= 1"),
    ],
)
def test_bad_strategy_input_is_a_clear_error_before_anything_is_written(flags, message, tmp_path):
    out = tmp_path / "task"
    argv = ["--num_tasks", "2", "--synthetic_size", "64", *flags]
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        run_task(tiny_args("barlow_twins", *argv, tmp_path=out))
    assert not out.exists()


def test_replay_needs_a_dataset_that_returns_past_images(monkeypatch, tmp_path):
    from cassle.data import datamodule as dm_module

    class Stream(torch.utils.data.IterableDataset):
        targets = torch.arange(64) % 4
        num_classes = 4

        def __iter__(self):
            return iter(())

    monkeypatch.setattr(dm_module.ContinualDataModule, "_load", lambda self, train, download: Stream())
    with pytest.raises(ValueError, match="--cl_strategy der replays past images by index"):
        run_task(tiny_args("barlow_twins", "--num_tasks", "2", "--cl_strategy", "der", tmp_path=tmp_path / "t"))


# ------------------------------------------------------------------ replay sources
def test_replay_source_gathers_tensor_images_and_decodes_folder_images(monkeypatch):
    from cassle.data import ContinualDataModule

    args = tiny_args("barlow_twins", "--num_tasks", "2")
    dm = ContinualDataModule(args)
    source = ReplaySource(dm, "cpu")
    idx = torch.tensor([5, 0, 63])
    assert torch.equal(source.gather(idx), dm.train_full.images[idx])
    views = source.views(idx)
    assert len(views) == 2 and views[0].shape == (3, 3, 16, 16) and views[0].dtype == torch.float32

    class Folder(torch.utils.data.Dataset):  # an image-folder-like dataset: PIL images by index
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return Image.new("RGB", (40 + i, 30), color=(60 * i, 10, 200)), i

    dm._train_full = Folder()
    monkeypatch.setattr(type(dm), "default_crop_size", property(lambda self: 224))
    folder = ReplaySource(dm, "cpu")
    images = folder.gather(torch.tensor([2, 3, 2]))
    side = round(16 * 8 / 7)
    assert images.shape == (3, side, side, 3) and images.dtype == torch.uint8
    assert images[0, 0, 0].tolist() == [120, 10, 200] and torch.equal(images[0], images[2])
    assert folder.views(torch.tensor([0, 1]))[1].shape == (2, 3, 16, 16)


def test_replay_on_the_batched_device_path(tmp_path):
    """--data_device cpu_batched runs the on-device path (uint8 batches augmented in the hook)."""
    (_, trainer1), (_, task1) = _sequence(tmp_path, ["--cl_strategy", "lump", "--data_device", "cpu_batched"])
    assert int(task1["strategies.lump.buffer.num_seen"]) == 64
    assert torch.isfinite(trainer1.callback_metrics["train/loss"])


# ------------------------------------------------------------------ every method
@pytest.mark.parametrize("method", ["simclr", "mocov2plus", "byol", "barlow_twins", "swav", "vicreg"])
def test_every_method_takes_every_kind_of_strategy(method):
    """One task-1 step of each method with a regulariser of each kind, a penalty and DER replay."""
    from main_continual import build_model
    from tests.helpers import fake_batch

    args = tiny_args(
        method, "--num_tasks", "2", "--task_idx", "1", "--cl_strategy", "ewc", "der", "pod", "pfr", "less_forget"
    )
    args.num_classes = 4
    model = build_model(args)
    der = model.strategies["der"]

    class Source:  # stands in for the datamodule's ReplaySource (needs a trainer)
        def views(self, indices):
            return [torch.randn(len(indices), 3, 16, 16) for _ in range(2)]

    der.__dict__.update(source=Source(), has_data=True)
    der.buffer.add(torch.arange(8), torch.zeros(8, dtype=torch.long), 0, z=torch.randn(8, model.features_dim))
    indexes, views, targets = fake_batch()
    model._step_indexes = indexes
    out = model.ssl_step(views, targets)
    assert {f"{n}_loss" for n in ("ewc", "der", "pod", "pfr", "less_forget")} <= set(out.logs)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert model.strategies["pfr"].projector[0].weight.grad is not None
    assert all(p.grad is None for p in model.frozen_backbone.parameters())
    assert int(der.buffer.num_seen) == 16 and out.feats[0].shape[0] == 8
