"""The batched (on-device) data path: sampler, loader, the datamodule's hook, and real runs.

The path is exercised on the CPU through ``--data_device cpu_batched`` (same code, device "cpu");
the CUDA tests at the end run only where a GPU is present (benchmarks/gpu_check.sh).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DistributedSampler

from cassle.data import ContinualDataModule, class_split_tasks
from cassle.data.gpu_augment import MultiViewBatchAugment
from cassle.data.gpu_loader import (
    DeviceBatchLoader,
    EpochShardSampler,
    FusedViewsAugment,
    is_raw_train_batch,
    stream_seed,
)
from cassle.data.transforms import build_eval_transform
from main_continual import run_task
from tests.helpers import tiny_args

SYN = dict(
    dataset="synthetic",
    synthetic_size=96,
    synthetic_image_size=16,
    num_classes=4,
    num_tasks=2,
    task_idx=1,
    batch_size=8,
    num_workers=0,
    seed=3,
)


def batched_dm(**overrides) -> ContinualDataModule:
    return ContinualDataModule(**{**SYN, "data_device": "cpu_batched", **overrides})


# ------------------------------------------------------------------------------------ sampler
@pytest.mark.parametrize(
    "n,world,batch,shuffle", [(23, 1, 4, True), (23, 3, 4, True), (10, 4, 3, False), (5, 4, 1, True), (2, 5, 1, True)]
)
def test_sampler_equals_distributed_sampler_and_batch_sampler(n, world, batch, shuffle):
    """Reference: torch's own DistributedSampler (drop_last=False, pads) + BatchSampler(drop_last)."""
    for epoch in (0, 3):
        for rank in range(world):
            ref = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=shuffle, seed=11)
            ref.set_epoch(epoch)
            expected = [list(b) for b in BatchSampler(ref, batch, drop_last=True)]
            ours = EpochShardSampler(n, batch, shuffle=shuffle, drop_last=True, seed=11, rank=rank, world_size=world)
            ours.set_epoch(epoch)
            assert [b.tolist() for b in ours] == expected
            assert len(ours) == len(expected)


def test_sampler_eval_mode_keeps_partial_batch_and_checks_input():
    s = EpochShardSampler(10, 4, shuffle=False, drop_last=False)
    assert [b.tolist() for b in s] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(ValueError, match="rank"):
        EpochShardSampler(10, 4, shuffle=True, drop_last=True, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        EpochShardSampler(10, 0, shuffle=True, drop_last=True)


def test_stream_seed_distinct_and_stable():
    seeds = {stream_seed(s, e, r) for s in range(4) for e in range(4) for r in range(4)}
    assert len(seeds) == 64 and all(0 <= x < 2**63 for x in seeds)
    assert stream_seed(5, 1, 0) == stream_seed(5, 1, 0) != stream_seed(6, 0, 0)


# ------------------------------------------------------------------------------------ loader
def test_loader_batches_are_gathers_of_the_task_and_lazy_in_epoch():
    dm = batched_dm()
    loader = dm.train_dataloader()
    assert isinstance(loader, DeviceBatchLoader) and not isinstance(loader, torch.utils.data.DataLoader)
    assert len(loader) == dm.steps_per_epoch() == dm.train_size // 8
    task = class_split_tasks(4, 2)[1]
    seen = []
    for indexes, images, targets in loader:
        assert images.dtype == torch.uint8 and images.shape == (8, 16, 16, 3)
        assert torch.equal(images, dm.train_full.images[indexes])  # indexes = full-set positions
        assert torch.equal(targets, dm.train_full.targets[indexes])
        assert set(targets.tolist()) <= set(task)  # only the task's classes
        seen += indexes.tolist()
    assert len(seen) == len(set(seen)) and set(seen) <= set(dm.task_indices.tolist())

    def first(epoch_set_after_iter: int):
        it = iter(loader)  # Lightning creates the iterator before set_epoch ...
        loader.sampler.set_epoch(epoch_set_after_iter)  # ... so the epoch must be read lazily
        return next(it)[0]

    assert torch.equal(first(2), first(2)) and not torch.equal(first(2), first(3))


def test_loader_input_errors():
    with pytest.raises(ValueError, match="uint8"):
        DeviceBatchLoader(torch.zeros(4, 8, 8, 3), torch.zeros(4, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="targets"):
        DeviceBatchLoader(torch.zeros(4, 8, 8, 3, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), 2)


# ------------------------------------------------------------------------------------ the hook
def test_hook_makes_contract_batches_with_the_epoch_stream():
    dm = batched_dm()
    loader = dm.train_dataloader()
    loader.set_epoch(1)
    raw = next(iter(loader))
    assert is_raw_train_batch(raw)
    indexes, views, targets = dm.on_after_batch_transfer(raw, 0)
    assert torch.equal(indexes, raw[0]) and torch.equal(targets, raw[2])
    assert len(views) == 2 and all(v.dtype == torch.float32 and v.shape == (8, 3, 16, 16) for v in views)
    assert not torch.equal(views[0], views[1])
    # Independent rebuild: bicubic MultiViewBatchAugment with generator seeded (seed, epoch, rank).
    settings = [{**s, "interpolation": "bicubic"} for s in dm.view_settings]
    aug = MultiViewBatchAugment(settings, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    expected = aug(raw[1], torch.Generator().manual_seed(stream_seed(3, 1, 0)))
    assert all(torch.equal(a, b) for a, b in zip(views, expected))
    # In a dict batch (CombinedLoader with an online-eval stream) the "ssl" entry is augmented.
    loader.set_epoch(1)
    x, y = next(iter(dm.eval_loader(train=True)))
    combined = dm.on_after_batch_transfer({"ssl": next(iter(loader)), "online_eval": (x, y)}, 0)
    assert all(torch.equal(a, b) for a, b in zip(combined["ssl"][1], views))
    assert combined["online_eval"][0] is x
    # Augmented and eval batches pass through untouched.
    done = (indexes, views, targets)
    assert dm.on_after_batch_transfer(done, 0) is done
    x, y = next(iter(dm.val_dataloader()))
    assert dm.on_after_batch_transfer((x, y), 0)[0] is x


def _view(**overrides) -> dict:
    s = dict(
        crop_size=12,
        min_scale=0.2,
        max_scale=1.0,
        brightness=0.4,
        contrast=0.4,
        saturation=0.2,
        hue=0.1,
        color_jitter_prob=0.8,
        gray_scale_prob=0.2,
        horizontal_flip_prob=0.5,
        gaussian_prob=0.0,
        solarization_prob=0.0,
        interpolation="bicubic",
    )
    s.update(overrides)
    return s


@pytest.mark.parametrize(
    "second",
    [dict(solarization_prob=1.0, gaussian_prob=0.5), dict(gray_scale_prob=1.0, color_jitter_prob=0.0, min_scale=0.9)],
)
def test_fused_views_equal_per_view_augmentation(second):
    multi = MultiViewBatchAugment([_view(), _view(**second)], (0.4, 0.5, 0.6), (0.2, 0.3, 0.25))
    fused = FusedViewsAugment(multi)
    assert fused.fused
    images = torch.randint(0, 256, (10, 16, 16, 3), dtype=torch.uint8)
    expected = multi(images, torch.Generator().manual_seed(9))
    got = fused(images, torch.Generator().manual_seed(9))
    assert len(got) == 2 and all(g.shape == (10, 3, 12, 12) for g in got)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=0)
    # the first view takes no solarize / blur although the fused pass runs those ops
    assert not torch.equal(got[0], got[1])


def test_fused_views_fall_back_when_views_differ_in_shape():
    multi = MultiViewBatchAugment([_view(), _view(crop_size=8)], (0.5,) * 3, (0.5,) * 3)
    fused = FusedViewsAugment(multi)
    assert not fused.fused
    images = torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8)
    got = fused(images, torch.Generator().manual_seed(1))
    assert [tuple(g.shape) for g in got] == [(4, 3, 12, 12), (4, 3, 8, 8)]


def test_same_seed_same_views_other_seed_other_views():
    def views(seed):
        dm = batched_dm(seed=seed)
        loader = dm.train_dataloader()
        return [dm.on_after_batch_transfer(b, 0)[1][0] for b in loader]

    a, b, c = views(3), views(3), views(4)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_eval_loaders_equal_the_cpu_transform():
    dm = batched_dm()
    ref = build_eval_transform((0.5,) * 3, (0.5,) * 3, folder=False, crop_size=16, image_size=16)
    xs, ys = zip(*dm.val_dataloader())
    x, y = torch.cat(xs), torch.cat(ys)
    assert len(y) == len(dm.val_full) and torch.equal(y, dm.val_full.targets)  # whole test set, in order
    expected = torch.stack([ref(dm.val_full[i][0]) for i in range(len(dm.val_full))])
    torch.testing.assert_close(x, expected, atol=1e-6, rtol=0)
    # Linear-probe data: the whole training set (all tasks) or a subset, same path.
    probe = dm.eval_loader(train=True)
    assert isinstance(probe, DeviceBatchLoader)
    assert sum(len(b[1]) for b in probe) == len(dm.train_full)
    sub = torch.tensor([5, 1, 7])
    ((xb, yb),) = list(dm.eval_loader(train=True, indices=sub))
    assert torch.equal(yb, dm.train_full.targets[sub])
    torch.testing.assert_close(xb[1], ref(dm.train_full[1][0]), atol=1e-6, rtol=0)


def test_eval_resizes_to_view_crop_like_cpu_path():
    dm = batched_dm(crop_size=[12])
    ref = build_eval_transform((0.5,) * 3, (0.5,) * 3, folder=False, crop_size=12, image_size=16)
    x, _ = next(iter(dm.val_dataloader()))
    expected = torch.stack([ref(dm.val_full[i][0]) for i in range(len(x))])
    assert x.shape == expected.shape == (8, 3, 12, 12)
    # uint8 (torchvision) vs float (ours) antialiased resize: within ~1.5 grey levels
    torch.testing.assert_close(x, expected, atol=1.5 / 255 / 0.5, rtol=0)


# ------------------------------------------------------------------------------------ path choice
def _fake_trainer(device: str, rank: int = 0, world: int = 1):
    return SimpleNamespace(
        strategy=SimpleNamespace(root_device=torch.device(device)), global_rank=rank, world_size=world
    )


def test_data_path_resolution():
    dm = ContinualDataModule(**SYN)  # auto, no trainer: workers (contract batches)
    assert dm.data_path() == "workers" and not dm.gpu_augment
    dm.trainer = _fake_trainer("cpu")
    assert dm.data_path() == "workers"
    dm.trainer = _fake_trainer("cuda:0")  # auto + a CUDA trainer: batched
    assert dm.data_path() == "batched" and dm.gpu_augment
    assert ContinualDataModule(**SYN, data_device="cpu").data_path() == "workers"
    assert batched_dm().data_path() == "batched" and batched_dm().batched_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="data_device.*choose one of"):
        ContinualDataModule(**SYN, data_device="tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_gpu_without_cuda_is_a_clear_error():
    dm = ContinualDataModule(**SYN, data_device="gpu")
    with pytest.raises(ValueError, match="needs CUDA.*auto, cpu, cpu_batched"):
        dm.train_dataloader()


def test_rank_shards_are_disjoint_and_cover_the_task():
    dm = batched_dm(batch_size=4)
    parts = []
    for rank in range(2):
        dm._train_loader = None
        dm.trainer = _fake_trainer("cpu", rank, 2)
        dm.args.data_device = "cpu_batched"
        loader = dm.train_dataloader()
        assert len(loader) == dm.steps_per_epoch(world_size=2)
        parts.append({int(i) for b in loader for i in b[0]})
    assert not parts[0] & parts[1]
    covered = len(parts[0] | parts[1])
    assert dm.train_size - 2 * 4 < covered <= dm.train_size  # only each rank's last partial batch dropped


# ------------------------------------------------------------------------------------ real runs
class BatchRecorder(pl.Callback):
    """Records what training_step receives (after the hooks)."""

    def __init__(self):
        self.batches = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.batches.append((trainer.current_epoch, batch[0].clone(), [v.clone() for v in batch[1]], batch[2].clone()))


def _run(tmp_path, name, *extra):
    args = tiny_args(
        "barlow_twins",
        "--num_tasks",
        "2",
        "--task_idx",
        "0",
        "--synthetic_size",
        "64",
        "--data_device",
        "cpu_batched",
        "--seed",
        "7",
        "--deterministic",
        *extra,
        tmp_path=tmp_path / name,
    )
    rec = BatchRecorder()
    trainer = run_task(args, extra_callbacks=[rec])
    return trainer, rec


def test_run_task_trains_on_the_batched_path_and_is_deterministic(tmp_path):
    trainer, rec = _run(tmp_path, "a", "--max_epochs", "2")
    assert isinstance(trainer.train_dataloader, DeviceBatchLoader)
    task = set(class_split_tasks(4, 2)[0])
    steps = 32 // 16
    assert len(rec.batches) == 2 * steps and trainer.global_step == 2 * steps
    assert trainer.estimated_stepping_batches == 2 * steps  # len(loader) drives the schedule
    for _, _indexes, views, targets in rec.batches:
        assert [tuple(v.shape) for v in views] == [(16, 3, 16, 16)] * 2 and views[0].dtype == torch.float32
        assert set(targets.tolist()) <= task
    assert torch.isfinite(torch.tensor(trainer.callback_metrics["train/loss"].item()))
    # Same seed, same run: identical batches and weights.
    trainer_b, rec_b = _run(tmp_path, "b", "--max_epochs", "2")
    for (_, i1, v1, _), (_, i2, v2, _) in zip(rec.batches, rec_b.batches):
        assert torch.equal(i1, i2) and all(torch.equal(a, b) for a, b in zip(v1, v2))
    for p, q in zip(trainer.lightning_module.parameters(), trainer_b.lightning_module.parameters()):
        assert torch.equal(p, q)


def test_resumed_epoch_replays_identically(tmp_path):
    _, full = _run(tmp_path, "full", "--max_epochs", "2")
    _run(tmp_path, "part", "--max_epochs", "1")
    ckpt = tmp_path / "part" / "last.ckpt"
    _, resumed = _run(tmp_path, "part", "--max_epochs", "2", "--resume_from_checkpoint", str(ckpt))
    epoch1 = [b for b in full.batches if b[0] == 1]
    assert [b[0] for b in resumed.batches] == [1] * len(epoch1)
    for (_, i1, v1, t1), (_, i2, v2, t2) in zip(epoch1, resumed.batches):
        assert torch.equal(i1, i2) and torch.equal(t1, t2)
        assert all(torch.equal(a, b) for a, b in zip(v1, v2))


# ------------------------------------------------------------------------------------ CUDA only
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_loader_and_hook():  # pragma: no cover - runs in benchmarks/gpu_check.sh
    dm = ContinualDataModule(**{**SYN, "data_device": "gpu"})
    loader = dm.train_dataloader()
    raw = next(iter(loader))
    assert raw[1].is_cuda and raw[0].is_cuda
    indexes, views, targets = dm.on_after_batch_transfer(raw, 0)
    assert all(v.is_cuda and v.shape == (8, 3, 16, 16) for v in views)
    again = dm.on_after_batch_transfer(next(iter(loader)), 0)  # new epoch iterator: same stream
    assert all(torch.equal(a, b) for a, b in zip(views, again[1]))
    x, y = next(iter(dm.val_dataloader()))
    assert x.is_cuda and x.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_run_task_auto_uses_the_gpu_path(tmp_path):  # pragma: no cover
    args = tiny_args(
        "barlow_twins",
        "--num_tasks",
        "2",
        "--task_idx",
        "0",
        "--synthetic_size",
        "64",
        "--accelerator",
        "gpu",
        "--precision",
        "bf16-mixed",
        "--max_epochs",
        "1",
        tmp_path=tmp_path,
    )
    rec = BatchRecorder()
    trainer = run_task(args, extra_callbacks=[rec])
    assert isinstance(trainer.train_dataloader, DeviceBatchLoader)
    assert rec.batches and all(v.is_cuda for v in rec.batches[0][2])
