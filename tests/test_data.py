"""Tests of the data layer (CPU path): splits, datasets, transforms, flags, the data module."""

from __future__ import annotations

import argparse
import socket

import numpy as np
import pytest
import torch
from PIL import Image

from cassle.data import (
    DOMAINNET_DOMAINS,
    ContinualDataModule,
    DomainNetDataset,
    TensorImageDataset,
    add_augmentation_args,
    add_data_args,
    build_eval_transform,
    build_multiview_transform,
    build_view_transform,
    class_order,
    class_split_indices,
    class_split_tasks,
    data_split_indices,
    domain_split_indices,
    load_dataset,
    task_of_class,
    view_settings,
)

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_data_args(parser)
    add_augmentation_args(parser)
    return parser.parse_args(argv)


def settings(**overrides) -> dict:
    """One view's settings with every random op off and a full-image crop (identity up to normalise)."""
    s = dict(
        crop_size=32,
        min_scale=1.0,
        max_scale=1.0,
        brightness=0.4,
        contrast=0.4,
        saturation=0.2,
        hue=0.1,
        color_jitter_prob=0.0,
        gray_scale_prob=0.0,
        horizontal_flip_prob=0.0,
        gaussian_prob=0.0,
        solarization_prob=0.0,
    )
    s.update(overrides)
    return s


def normalise(x_uint8_chw: torch.Tensor) -> torch.Tensor:
    m, s = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    return (x_uint8_chw.double() / 255 - m) / s


# ------------------------------------------------------------------------------------------ splits
def test_class_order_pinned_cifar100():
    # The reference's CIFAR-100 class order: torch.manual_seed(5); torch.randperm(100).
    # Computed once with torch and pinned (the one allowed pinned constant).
    expected_head = [11, 22, 39, 23, 42, 30, 78, 81, 64, 20]
    assert class_order(100)[:10].tolist() == expected_head


@pytest.mark.parametrize("n", [10, 100, 345])
def test_class_order_matches_global_seeding_and_keeps_rng(n):
    state = torch.get_rng_state()
    order = class_order(n)
    assert torch.equal(torch.get_rng_state(), state), "class_order changed the global RNG"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        assert torch.equal(order, torch.randperm(n))
    assert sorted(order.tolist()) == list(range(n))


@pytest.mark.parametrize("num_classes,num_tasks", [(100, 5), (10, 2), (100, 10), (12, 1)])
def test_class_split_tasks_partition(num_classes, num_tasks):
    tasks = class_split_tasks(num_classes, num_tasks)
    assert len(tasks) == num_tasks
    assert all(len(t) == num_classes // num_tasks for t in tasks)
    flat = [c for t in tasks for c in t]
    assert sorted(flat) == list(range(num_classes))  # disjoint and complete
    assert flat == class_order(num_classes).tolist()  # chunks follow the class order
    mapping = task_of_class(num_classes, num_tasks)
    for t, classes in enumerate(tasks):
        assert all(int(mapping[c]) == t for c in classes)


def test_class_split_not_divisible_names_numbers():
    with pytest.raises(ValueError, match=r"num_classes=10.*num_tasks=3"):
        class_split_tasks(10, 3)


def test_class_split_indices_naive():
    g = torch.Generator().manual_seed(1)
    targets = torch.randint(0, 10, (200,), generator=g)
    tasks = class_split_tasks(10, 5)
    seen = []
    for t in range(5):
        idx = class_split_indices(targets, 5, t, num_classes=10)
        naive = [i for i, y in enumerate(targets.tolist()) if y in tasks[t]]
        assert idx.tolist() == naive
        seen += naive
    assert sorted(seen) == list(range(200))


@pytest.mark.parametrize("n,t", [(103, 5), (100, 4), (7, 7)])
def test_data_split_sizes_disjoint_deterministic(n, t):
    parts = [data_split_indices(n, t, i) for i in range(t)]
    assert len(parts[0]) == n // t + n % t
    assert all(len(p) == n // t for p in parts[1:])
    assert sorted(torch.cat(parts).tolist()) == list(range(n))
    # same result whatever the global RNG state
    torch.manual_seed(0)
    a = data_split_indices(n, t, t - 1)
    torch.manual_seed(1234)
    torch.rand(10)
    b = data_split_indices(n, t, t - 1)
    assert torch.equal(a, b) and torch.equal(a, parts[-1])


def test_data_split_matches_random_split_seeded_42():
    # The reference used random_split(lengths=[N//T + N%T, N//T, ...], generator seeded 42).
    n, t = 103, 5
    lengths = [n // t + n % t] + [n // t] * (t - 1)
    ref = torch.utils.data.random_split(range(n), lengths, generator=torch.Generator().manual_seed(42))
    for i in range(t):
        assert data_split_indices(n, t, i).tolist() == list(ref[i].indices)


def test_domain_split():
    domains = torch.tensor([0, 1, 2, 3, 4, 5, 2, 2, 0])
    assert domain_split_indices(domains, 6, 2).tolist() == [2, 6, 7]
    with pytest.raises(ValueError, match="num_tasks=5.*6 domains"):
        domain_split_indices(domains, 5, 0)


@pytest.mark.parametrize(
    "fn,num_tasks",
    [
        (lambda t: class_split_indices(torch.arange(10), 2, t), 2),
        (lambda t: data_split_indices(10, 2, t), 2),
        (lambda t: domain_split_indices(torch.zeros(3, dtype=torch.long), 6, t), 6),
    ],
)
def test_task_idx_out_of_range(fn, num_tasks):
    fn(num_tasks - 1)  # the last task is fine
    for bad in (num_tasks, -1):
        with pytest.raises(ValueError, match="task_idx"):
            fn(bad)


# ------------------------------------------------------------------------------------------ datasets
def test_digits_dataset():
    from sklearn.datasets import load_digits

    raw = load_digits()
    train, test = load_dataset("digits", train=True), load_dataset("digits", train=False)
    assert isinstance(train, TensorImageDataset) and train.num_classes == 10
    assert len(train) + len(test) == len(raw.target) and len(test) == 360
    for ds in (train, test):
        assert ds.images.dtype == torch.uint8 and ds.images.shape[1:] == (32, 32, 3)
        assert ds.targets.dtype == torch.int64 and set(ds.targets.tolist()) == set(range(10))
        assert torch.equal(ds.images[..., 0], ds.images[..., 2])  # grey repeated to RGB
    # stratified: every class keeps ~20% of its images in test
    counts = np.bincount(raw.target)
    test_counts = np.bincount(test.targets.numpy(), minlength=10)
    assert np.all(np.abs(test_counts - 0.2 * counts) <= 1)
    assert torch.equal(load_dataset("digits", train=False).images, test.images)  # deterministic
    # train + test is a partition of the 1797 originals, each scaled 0..16 -> 0..255 and bilinearly
    # upsampled 8 -> 32 (torch's interpolate is the reference upsampler here)
    originals = torch.from_numpy(raw.images).double().unsqueeze(1) * 255 / 16
    expected = torch.nn.functional.interpolate(originals, size=(32, 32), mode="bilinear", align_corners=False)
    ours = torch.cat([train.images, test.images])[..., 0].double()
    dist = torch.cdist(ours.flatten(1), expected.flatten(1))
    assert dist.min(1).values.max() < 0.5 * 32  # rounding to uint8 only
    nearest = dist.argmin(1)
    assert sorted(nearest.tolist()) == list(range(len(raw.target)))
    assert torch.equal(torch.from_numpy(raw.target)[nearest], torch.cat([train.targets, test.targets]))


def test_synthetic_deterministic_and_learnable():
    a = load_dataset("synthetic", train=True, num_classes=4, synthetic_size=200, image_size=16)
    b = load_dataset("synthetic", train=True, num_classes=4, synthetic_size=200, image_size=16)
    test = load_dataset("synthetic", train=False, num_classes=4, synthetic_size=200, image_size=16)
    assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    assert a.images.shape == (200, 16, 16, 3) and len(test) == 40
    assert torch.bincount(a.targets).tolist() == [50] * 4
    # nearest class mean on raw pixels is far above chance (0.25)
    flat = lambda d: d.images.double().flatten(1)
    centroids = torch.stack([flat(a)[a.targets == c].mean(0) for c in range(4)])
    acc = (torch.cdist(flat(test), centroids).argmin(1) == test.targets).double().mean()
    assert acc > 0.6


def _write_npz(path, x, y):
    np.savez(path, x=x, y=y)


def test_cifar_npz_layout(tmp_path):
    rng = np.random.default_rng(0)
    parts = {}
    for k in (0, 1, 2, 10):  # train_10 must come after train_2 (numeric order)
        x = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
        y = np.full(3, k, dtype=np.int64)
        _write_npz(tmp_path / f"train_{k}.npz", x, y)
        parts[k] = x
    _write_npz(tmp_path / "test.npz", rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8), np.array([5, 7]))

    train = load_dataset("cifar100", str(tmp_path), train=True)
    test = load_dataset("cifar100", str(tmp_path), train=False)
    assert train.targets.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [10] * 3
    assert np.array_equal(train.images.numpy(), np.concatenate([parts[k] for k in (0, 1, 2, 10)]))
    assert train.num_classes == 100 and test.targets.tolist() == [5, 7]
    assert train.images.dtype == torch.uint8
    img, y = train[4]
    assert img.shape == (3, 32, 32) and y == 1
    assert torch.equal(img, torch.from_numpy(parts[1][1]).permute(2, 0, 1))
    with pytest.raises(ValueError, match="10 classes"):  # labels up to 10 do not fit CIFAR-10
        load_dataset("cifar10", str(tmp_path), train=True)
    (tmp_path / "test.npz").unlink()
    with pytest.raises(FileNotFoundError, match="test.npz"):
        load_dataset("cifar100", str(tmp_path), train=False)


def test_missing_cifar_dir_message(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("cifar100", str(missing), train=True)
    msg = str(err.value)
    assert str(missing) in msg and "--download" in msg and "train_*.npz" in msg


def test_unknown_dataset_lists_names():
    with pytest.raises(ValueError, match="cifar100.*digits"):
        load_dataset("mnist")


def _png(path, colour, size=(20, 24), fmt="PNG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format=fmt)


def test_image_folder_custom(tmp_path):
    for split in ("train", "val"):
        for c, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            _png(tmp_path / split / c / "a.png", colour)
    ds = load_dataset("custom", str(tmp_path), train=True)
    assert ds.num_classes == 2 and ds.classes == ["cat", "dog"]
    with pytest.raises(FileNotFoundError, match="nope"):
        load_dataset("custom", str(tmp_path), train=False, val_dir="nope")


@pytest.fixture
def domainnet_dir(tmp_path):
    """Two images per domain and split; label = domain index (so tasks are easy to tell apart)."""
    for d, domain in enumerate(DOMAINNET_DOMAINS):
        for split in ("train", "test"):
            lines = []
            for k in range(2):
                fmt, ext = ("JPEG", "jpg") if k else ("PNG", "png")
                rel = f"{domain}/class {d}/{split}_{k}.{ext}"  # a space in the path on purpose
                _png(tmp_path / rel, (40 * d, 10 * k, 0), fmt=fmt)
                lines.append(f"{rel} {d}")
            (tmp_path / f"{domain}_{split}.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_domainnet_file_lists(domainnet_dir):
    ds = load_dataset("domainnet", str(domainnet_dir), train=True)
    # the class count comes from the data: the largest label + 1, or classes.txt when there is one
    assert isinstance(ds, DomainNetDataset) and len(ds) == 12 and ds.num_classes == 6
    (domainnet_dir / "classes.txt").write_text("".join(f"c{i}\n" for i in range(345)))
    assert load_dataset("domainnet", str(domainnet_dir), train=True).num_classes == 345
    assert ds.domains.tolist() == [d for d in range(6) for _ in range(2)]
    img, y = ds[5]
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (20, 24) and y == 2
    (domainnet_dir / "sketch_test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="sketch_test.txt"):
        load_dataset("domainnet", str(domainnet_dir), train=False)


# ------------------------------------------------------------------------------------------ transforms
def test_view_transform_identity_and_ops():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=g)
    out = build_view_transform(settings(), MEAN, STD)(x)
    assert out.dtype == torch.float32 and out.shape == (3, 32, 32)
    assert torch.allclose(out.double(), normalise(x), atol=1e-5)

    out = build_view_transform(settings(solarization_prob=1.0), MEAN, STD)(x)
    solarised = torch.where(x >= 128, 255 - x, x)
    assert torch.allclose(out.double(), normalise(solarised), atol=1e-5)

    out = build_view_transform(settings(horizontal_flip_prob=1.0), MEAN, STD)(x)
    assert torch.allclose(out.double(), normalise(x.flip(-1)), atol=1e-5)

    out = build_view_transform(settings(gray_scale_prob=1.0), MEAN, STD)(x)
    raw = out * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
    assert torch.allclose(raw[0], raw[1], atol=1e-5) and torch.allclose(raw[1], raw[2], atol=1e-5)


@pytest.mark.parametrize("as_pil", [False, True])
def test_two_view_shapes_and_range(as_pil):
    torch.manual_seed(0)
    x = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    inp = Image.fromarray(x.permute(1, 2, 0).numpy()) if as_pil else x
    args = parse(["--crop_size", "24", "16", "--gaussian_prob", "1.0", "--solarization_prob", "0.5"])
    views = build_multiview_transform(view_settings(args), MEAN, STD)(inp)
    assert [tuple(v.shape) for v in views] == [(3, 24, 24), (3, 16, 16)]
    for v in views:
        raw = v * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
        assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5


def test_eval_transforms():
    x = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    out = build_eval_transform(MEAN, STD, folder=False)(x)
    assert torch.allclose(out.double(), normalise(x), atol=1e-5)
    pil = Image.new("RGB", (300, 400), (10, 20, 30))
    out = build_eval_transform(MEAN, STD, folder=True)(pil)
    assert out.shape == (3, 224, 224)


# ------------------------------------------------------------------------------------------ flags
def test_per_view_flags_broadcast_and_pairs():
    s1, s2 = view_settings(parse(["--solarization_prob", "0.0", "0.2", "--min_scale", "0.2"]), default_crop_size=32)
    assert (s1["solarization_prob"], s2["solarization_prob"]) == (0.0, 0.2)
    assert s1["min_scale"] == s2["min_scale"] == 0.2
    assert s1["crop_size"] == s2["crop_size"] == 32 and s1["brightness"] == 0.4  # defaults
    # scalars (programmatic use) broadcast too
    s1, s2 = view_settings({"crop_size": 16, "hue": [0.1, 0.2]})
    assert (s1["crop_size"], s2["crop_size"], s1["hue"], s2["hue"]) == (16, 16, 0.1, 0.2)


def test_per_view_flag_errors(capsys):
    with pytest.raises(SystemExit):
        parse(["--solarization_prob", "0.0", "0.1", "0.2"])
    assert "1 value" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["--gray_scale_prob", "1.5"])
    assert "--gray_scale_prob" in capsys.readouterr().err
    with pytest.raises(ValueError, match="solarization_prob"):
        view_settings({"crop_size": 32, "solarization_prob": [0.0, 0.1, 0.2]})
    with pytest.raises(ValueError, match="min_scale.*max_scale"):
        view_settings(parse(["--crop_size", "32", "--min_scale", "0.5", "--max_scale", "0.4"]))
    with pytest.raises(SystemExit):
        parse(["--dataset", "mnist"])


# ------------------------------------------------------------------------------------------ data module
@pytest.mark.parametrize(
    "dataset,extra",
    [("synthetic", dict(synthetic_size=120, synthetic_image_size=16, num_classes=4)), ("digits", dict(crop_size=[16]))],
)
def test_datamodule_class_split_batches(dataset, extra):
    dm = ContinualDataModule(dataset=dataset, num_tasks=2, task_idx=1, batch_size=8, num_workers=0, **extra)
    n_cls = dm.num_classes
    task = class_split_tasks(n_cls, 2)[1]
    assert dm.task_classes == task
    expected = int(torch.isin(dm.train_full.targets, torch.tensor(task)).sum())
    assert dm.train_size == expected and dm.steps_per_epoch() == expected // 8
    assert dm.steps_per_epoch(world_size=2) == -(-expected // 2) // 8

    indexes, views, targets = next(iter(dm.train_dataloader()))
    crop = dm.view_settings[0]["crop_size"]
    assert indexes.shape == targets.shape == (8,)
    assert len(views) == 2 and all(v.shape == (8, 3, crop, crop) and v.dtype == torch.float32 for v in views)
    assert set(targets.tolist()) <= set(task)
    assert torch.equal(dm.train_full.targets[indexes], targets)  # indexes point into the full set

    x, y = next(iter(dm.val_dataloader()))
    assert x.shape[1:] == (3, crop, crop) and len(y) <= 8
    assert len(dm.val_dataset) == len(dm.val_full)
    assert set(dm.val_full.targets.tolist()) == set(range(n_cls))  # whole test set, all classes


def test_datamodule_from_args_data_split():
    args = parse(
        [
            "--dataset",
            "synthetic",
            "--split_strategy",
            "data",
            "--num_tasks",
            "3",
            "--task_idx",
            "0",
            "--synthetic_size",
            "100",
            "--synthetic_image_size",
            "8",
            "--batch_size",
            "4",
            "--num_workers",
            "0",
        ]
    )
    dm = ContinualDataModule.from_args(args)
    assert dm.train_size == 34 and dm.task_classes is None
    assert dm.task_indices.tolist() == data_split_indices(100, 3, 0).tolist()
    with pytest.raises(ValueError, match="task_idx"):
        ContinualDataModule(args, task_idx=3)
    with pytest.raises(ValueError, match="batch_size"):
        ContinualDataModule(args, batch_size=64).train_dataloader()


def test_datamodule_domain_split(domainnet_dir):
    dm = ContinualDataModule(
        dataset="domainnet",
        data_dir=str(domainnet_dir),
        split_strategy="domain",
        num_tasks=6,
        task_idx=2,
        batch_size=2,
        num_workers=0,
        crop_size=[16],
    )
    indexes, views, targets = next(iter(dm.train_dataloader()))
    assert targets.tolist() == [2, 2] and sorted(indexes.tolist()) == [4, 5]
    assert [tuple(v.shape) for v in views] == [(2, 3, 16, 16)] * 2
    x, _ = next(iter(dm.val_dataloader()))
    assert x.shape == (2, 3, 16, 16) and len(dm.val_dataset) == 12
    with pytest.raises(ValueError, match="one task per domain"):
        ContinualDataModule(
            dataset="domainnet", data_dir=str(domainnet_dir), split_strategy="domain", num_tasks=5, num_workers=0
        ).setup()
    with pytest.raises(ValueError, match="domains"):
        ContinualDataModule(dataset="synthetic", split_strategy="domain", num_tasks=6, num_workers=0).setup()
