"""Tests of cassle.eval: metrics (A, F, T), report files, weighted kNN, fast linear probe."""

import csv
import json
import math
import os
import socket
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

try:  # run from a plain checkout too (no install / pytest pythonpath config)
    import cassle  # noqa: F401
except ModuleNotFoundError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cassle.eval import knn as knn_mod
from cassle.eval import report as report_mod
from cassle.eval.knn import KNNMonitor, knn_accuracy, weighted_knn_predict
from cassle.eval.metrics import average_accuracy, forgetting, forward_transfer
from cassle.eval.probe import (
    extract_features,
    per_group_accuracy,
    per_task_accuracy,
    predict,
    probe_accuracy,
    stratified_fraction_indices,
    train_linear_probe_on_features,
)
from cassle.eval.report import PNG_SIZE_PX, write_report

# rows = trained up to task i, columns = evaluated on task j
R3 = [[80.0, 72.0, 20.0], [60.0, 70.0, 35.0], [50.0, 65.0, 75.0]]
B3 = [10.0, 12.0, 15.0]


# ----------------------------------------------------------------------------------- metrics
def test_average_accuracy_by_hand():
    # last row 50, 65, 75 -> (50 + 65 + 75) / 3 = 190 / 3
    assert average_accuracy(R3) == pytest.approx(190.0 / 3.0)
    # task 2 has twice the test images: (1*50 + 1*65 + 2*75) / 4 = 265 / 4 = 66.25
    assert average_accuracy(R3, task_sizes=[100, 100, 200]) == pytest.approx(66.25)


def test_forgetting_by_hand():
    # j=0: max(R[0][0], R[1][0]) - R[2][0] = max(80, 60) - 50 = 30
    # j=1: max over rows 1..1 = R[1][1] = 70; 70 - 65 = 5  (R[0][1] = 72 is before task 1 was
    #      learned and must NOT count; counting it would give 7 and F = 18.5)
    # F = (30 + 5) / 2 = 17.5
    assert forgetting(R3) == pytest.approx(17.5)
    # improvement is negative forgetting, not clipped: 40 - 55 = -15
    assert forgetting([[40.0, 10.0], [55.0, 60.0]]) == pytest.approx(-15.0)


def test_forward_transfer_by_hand():
    # j=1: R[0][1] - b[1] = 72 - 12 = 60 ; j=2: R[1][2] - b[2] = 35 - 15 = 20 ; T = (60 + 20) / 2 = 40
    # (b[0] = 10 is never used)
    assert forward_transfer(R3, B3) == pytest.approx(40.0)
    assert forward_transfer(R3, [999.0, 12.0, 15.0]) == pytest.approx(40.0)


def test_metrics_against_naive_loops():
    rng = np.random.default_rng(0)
    for n in (2, 4, 6):
        R = rng.uniform(0, 100, (n, n))
        b = rng.uniform(0, 20, n)
        naive_f = sum(max(R[i][j] for i in range(j, n - 1)) - R[n - 1][j] for j in range(n - 1)) / (n - 1)
        naive_t = sum(R[j - 1][j] - b[j] for j in range(1, n)) / (n - 1)
        assert forgetting(R) == pytest.approx(naive_f, abs=1e-12)
        assert forward_transfer(torch.tensor(R), torch.tensor(b)) == pytest.approx(naive_t, abs=1e-12)
        assert average_accuracy(R.tolist()) == pytest.approx(sum(R[-1]) / n, abs=1e-12)


def test_single_task():
    assert average_accuracy([[42.0]]) == 42.0
    assert forgetting([[42.0]]) is None
    assert forward_transfer([[42.0]], [5.0]) is None


@pytest.mark.parametrize(
    "bad",
    [
        [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
        [1.0, 2.0],
        [],
        [[1.0, float("nan")], [3.0, 4.0]],
        [[1.0, 2.0], [float("inf"), 4.0]],
    ],
)
def test_bad_matrix_raises(bad):
    for fn in (average_accuracy, forgetting):
        with pytest.raises(ValueError, match="R"):
            fn(bad)


def test_bad_baseline_and_sizes_raise():
    with pytest.raises(ValueError, match="random_baseline"):
        forward_transfer(R3, [1.0, 2.0])
    with pytest.raises(ValueError, match="random_baseline"):
        forward_transfer(R3, [1.0, float("nan"), 2.0])
    with pytest.raises(ValueError, match="task_sizes"):
        average_accuracy(R3, task_sizes=[1, 2])
    with pytest.raises(ValueError, match="task_sizes"):
        average_accuracy(R3, task_sizes=[0, 0, 0])


# ------------------------------------------------------------------------------------ report
def _report(out, **kw):
    args = dict(
        task_names=["t0", "t1", "t2"],
        protocol={"mode": "fast", "epochs": 100},
        seed=5,
        checkpoints=["a/task0.ckpt", "a/task1.ckpt", "a/task2.ckpt"],
        extra={"note": "x"},
    )
    args.update(kw)
    return write_report(out, R3, B3, **args)


def test_report_writes_all_files(tmp_path):
    from PIL import Image

    out = tmp_path / "eval"
    res = _report(out)
    assert sorted(os.listdir(out)) == sorted(report_mod.REPORT_FILES)  # no temporary folder left over

    data = json.loads((out / "results.json").read_text())
    assert data == res
    assert data["A"] == pytest.approx(190.0 / 3.0)
    assert data["F"] == pytest.approx(17.5)
    assert data["T"] == pytest.approx(40.0)
    assert data["accuracy_matrix"] == R3 and data["random_baseline"] == B3
    assert data["protocol"] == {"mode": "fast", "epochs": 100} and data["seed"] == 5
    assert data["checkpoints"] == ["a/task0.ckpt", "a/task1.ckpt", "a/task2.ckpt"]
    assert data["extra"] == {"note": "x"} and "git_sha" in data and data["timestamp"]
    assert data["versions"]["torch"] == torch.__version__ and "pytorch_lightning" in data["versions"]

    with open(out / "accuracy_matrix.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == ["t0", "t1", "t2"] and [r[0] for r in rows[1:]] == ["t0", "t1", "t2"]
    assert [[float(v) for v in r[1:]] for r in rows[1:]] == R3

    with Image.open(out / "accuracy_matrix.png") as im:
        assert im.format == "PNG" and im.size == PNG_SIZE_PX == (600, 500)

    md = (out / "summary.md").read_text()
    assert "| t1 | 60.00 | 70.00 | 35.00 |" in md
    assert (
        "A (average accuracy, %): 63.33" in md
        and "F (forgetting, %): 17.50" in md
        and "T (forward transfer, %): 40.00" in md
    )
    assert "- epochs: 100" in md


def test_report_without_baseline_and_default_names(tmp_path):
    res = write_report(tmp_path, [[50.0]], None, protocol={}, seed=None, checkpoints=[])
    assert res["T"] is None and res["F"] is None and res["task_names"] == ["task0"]
    assert (tmp_path / "results.json").exists()


def test_report_failure_leaves_no_results_json(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full while drawing")

    monkeypatch.setattr(report_mod, "_write_png", boom)
    out = tmp_path / "eval"
    with pytest.raises(RuntimeError, match="disk full"):
        _report(out)
    assert not (out / "results.json").exists()
    assert os.listdir(out) == []  # temporary folder cleaned up, nothing half-written

    with pytest.raises(TypeError):  # unserialisable extra: fails before writing anything
        _report(tmp_path / "eval2", extra={"obj": object()})
    assert not (tmp_path / "eval2" / "results.json").exists()
    with pytest.raises(ValueError, match="task_names"):
        _report(tmp_path / "eval3", task_names=["a", "b"])


def test_log_to_wandb_with_fake_module(tmp_path, monkeypatch):
    logged = {}
    fake = types.SimpleNamespace(
        run=types.SimpleNamespace(log=logged.update),
        Table=lambda columns, data: ("table", columns, data),
        Image=lambda path: ("image", path),
    )
    monkeypatch.setitem(sys.modules, "wandb", fake)
    res = _report(tmp_path)
    report_mod.log_to_wandb(res, tmp_path / "accuracy_matrix.png")
    assert logged["eval/A"] == pytest.approx(190.0 / 3.0) and logged["eval/T"] == pytest.approx(40.0)
    assert logged["eval/accuracy_matrix"][2][1] == ["t1", 60.0, 70.0, 35.0]
    fake.run = None
    with pytest.raises(RuntimeError, match="wandb run"):
        report_mod.log_to_wandb(res)


# --------------------------------------------------------------------------------------- kNN
def _clusters(n_per_class, num_classes=4, dim=8, seed=0, noise=0.5):
    g = torch.Generator().manual_seed(seed)
    centres = 10.0 * torch.eye(num_classes, dim)
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    return centres[y] + noise * torch.randn(len(y), dim, generator=g), y


def _naive_knn(train, ytr, test, num_classes, k, T, distance):
    train, test = train.double(), test.double()
    preds = []
    for x in test:
        if distance == "cosine":
            a = x / x.norm()
            scores = [(float(a @ (t / t.norm())), int(c)) for t, c in zip(train, ytr)]
            top = sorted(scores, key=lambda s: -s[0])[:k]
            w = [(math.exp(s / T), c) for s, c in top]
        else:
            dists = sorted([(float((x - t).norm()), int(c)) for t, c in zip(train, ytr)])[:k]
            w = [(1.0 / (d + 1e-5), c) for d, c in dists]
        votes = [0.0] * num_classes
        for wi, c in w:
            votes[c] += wi
        preds.append(max(range(num_classes), key=lambda c: (votes[c], -c)))
    return torch.tensor(preds)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_knn_separated_clusters(distance):
    xtr, ytr = _clusters(30, seed=0)
    xte, yte = _clusters(15, seed=1)
    assert knn_accuracy(xtr, ytr, xte, yte, 4, k=20, distance=distance) == 100.0


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
@pytest.mark.parametrize("k", [1, 5, 100])  # 100 > 30 training samples: all of them vote
def test_knn_matches_naive(distance, k):
    g = torch.Generator().manual_seed(3)
    xtr, ytr = torch.randn(30, 6, generator=g), torch.randint(0, 5, (30,), generator=g)
    xte = torch.randn(11, 6, generator=g)
    got = weighted_knn_predict(xtr, ytr, xte, 5, k=k, T=0.5, distance=distance, chunk_size=4)
    assert torch.equal(got, _naive_knn(xtr, ytr, xte, 5, min(k, 30), 0.5, distance))


def test_knn_bad_input():
    x, y = _clusters(3)
    with pytest.raises(ValueError, match="cosine, euclidean"):
        weighted_knn_predict(x, y, x, 4, distance="manhattan")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        weighted_knn_predict(x, y, x, 3)
    with pytest.raises(ValueError, match="dims differ"):
        weighted_knn_predict(x, y, x[:, :3], 4)
    with pytest.raises(ValueError, match="cosine, euclidean"):
        KNNMonitor(4, distance="dot")


def test_knn_monitor():
    xtr, ytr = _clusters(10, seed=0)
    xte, yte = _clusters(5, seed=1)
    xte[:3] = -xte[:3]  # a few wrong-looking test points, so the accuracy is not trivially 100
    mon = KNNMonitor(4, k=5)
    for s in range(0, 40, 16):
        mon.update("train", xtr[s : s + 16], ytr[s : s + 16])
    for s in range(0, 20, 7):
        mon.update("test", xte[s : s + 7], yte[s : s + 7])
    assert mon.compute() == pytest.approx(knn_accuracy(xtr, ytr, xte, yte, 4, k=5))
    mon.reset()
    with pytest.raises(RuntimeError, match="train"):
        mon.compute()
    with pytest.raises(ValueError, match="'train' or 'test'"):
        mon.update("val", xtr, ytr)


def _gather_worker(rank, world, port, q):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    x = torch.full((rank + 2, 3), float(rank))  # rank 0 holds 2 rows, rank 1 holds 3
    out = knn_mod._gather_varsize(x)
    q.put((rank, out.tolist()))
    dist.destroy_process_group()


def test_gather_varsize_two_processes():
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    q = ctx.SimpleQueue()
    mp.spawn(_gather_worker, args=(2, port, q), nprocs=2, join=True)
    expected = [[0.0] * 3] * 2 + [[1.0] * 3] * 3
    results = dict(q.get() for _ in range(2))
    assert results[0] == expected and results[1] == expected


# ------------------------------------------------------------------------------------- probe
def _separable(n_per_class, num_classes=5, dim=16, seed=0):
    g = torch.Generator().manual_seed(100)  # same class means for train and test
    means = 4.0 * torch.randn(num_classes, dim, generator=g)
    g.manual_seed(seed)
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    return means[y] + 0.5 * torch.randn(len(y), dim, generator=g), y


def test_probe_learns_separable_features():
    xtr, ytr = _separable(100, seed=0)
    xte, yte = _separable(40, seed=1)
    lin = train_linear_probe_on_features(xtr, ytr, 5, epochs=20, lr=0.1, batch_size=64, seed=0)
    assert isinstance(lin, nn.Linear) and not lin.training
    assert probe_accuracy(lin, xte, yte) >= 98.0
    again = train_linear_probe_on_features(xtr, ytr, 5, epochs=20, lr=0.1, batch_size=64, seed=0)
    assert torch.equal(lin.weight, again.weight)  # seeded: reproducible
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        train_linear_probe_on_features(xtr, ytr, 4, epochs=1)


def _fixed_probe():
    # weight = identity: the predicted class of a one-hot feature is its hot index
    lin = nn.Linear(4, 4)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(4))
        lin.bias.zero_()
    return lin


def test_per_task_accuracy_hand_count():
    labels = torch.tensor([0, 1, 0, 2, 3, 3, 2])
    preds = torch.tensor([0, 0, 0, 2, 1, 3, 3])
    feats = torch.eye(4)[preds]
    lin = _fixed_probe()
    # task 0 = classes {0, 1}: samples 0, 1, 2 -> correct 0 and 2 -> 2 / 3
    # task 1 = classes {2, 3}: samples 3..6 -> correct 3 and 5 -> 2 / 4 (sample 4 predicted class 1
    #   of the other task counts as wrong: no masking to the task's classes)
    accs = per_task_accuracy(lin, feats, labels, [[0, 1], [2, 3]])
    assert accs == pytest.approx([200.0 / 3.0, 50.0])
    assert probe_accuracy(lin, feats, labels) == pytest.approx(400.0 / 7.0)
    # order of tasks follows task_of_class, classes need not be contiguous
    assert per_task_accuracy(lin, feats, labels, [[3, 2], [1, 0]]) == pytest.approx([50.0, 200.0 / 3.0])
    assert per_group_accuracy(lin, feats, labels, torch.tensor([1, 1, 1, 0, 0, 0, 0]), 2) == pytest.approx(
        [50.0, 200.0 / 3.0]
    )
    with pytest.raises(ValueError, match="disjoint"):
        per_task_accuracy(lin, feats, labels, [[0, 1, 2], [2, 3]])
    with pytest.raises(ValueError, match=r"\[3\]"):
        per_task_accuracy(lin, feats, labels, [[0, 1], [2]])
    with pytest.raises(ValueError, match="group 1"):
        per_group_accuracy(lin, feats, labels, torch.zeros(7, dtype=torch.long), 3)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        per_group_accuracy(lin, feats, labels, torch.full((7,), 2), 2)


def test_stratified_fraction_counts():
    counts = [100, 50, 7, 1, 24]
    labels = torch.tensor(sum(([c] * n for c, n in enumerate(counts)), []))[
        torch.randperm(182, generator=torch.Generator().manual_seed(0))
    ]
    idx = stratified_fraction_indices(labels, 0.1, seed=1)
    # max(1, floor(0.1 * n + 0.5)): 100 -> 10, 50 -> 5, 7 -> 1, 1 -> 1 (at least one), 24 -> 2
    assert torch.bincount(labels[idx], minlength=5).tolist() == [10, 5, 1, 1, 2]
    assert idx.dtype == torch.int64 and torch.equal(idx, idx.unique())  # sorted, no duplicates
    assert torch.equal(idx, stratified_fraction_indices(labels, 0.1, seed=1))
    assert not torch.equal(idx, stratified_fraction_indices(labels, 0.1, seed=2))
    assert torch.bincount(labels[stratified_fraction_indices(labels.numpy(), 0.01, seed=0)]).tolist() == [1] * 5
    assert len(stratified_fraction_indices(labels, 1.0)) == 182
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            stratified_fraction_indices(labels, bad)


def test_extract_features_eval_mode_no_grad():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.BatchNorm1d(6), nn.Dropout(0.5))
    net.train()
    x = torch.randn(10, 3, 2, 2)
    loader = [(x[:4], torch.arange(4)), (x[4:], torch.arange(4, 10))]
    feats, labels = extract_features(net, loader, "cpu")
    assert net.training  # mode restored
    assert not feats.requires_grad and feats.dtype == torch.float32 and feats.shape == (10, 6)
    assert torch.equal(labels, torch.arange(10))
    net.eval()
    with torch.no_grad():
        assert torch.allclose(feats, net(x))  # eval mode: running BN stats, no dropout
    with pytest.raises(ValueError, match=r"\(x, y\)"):
        extract_features(net, [(0, x, torch.arange(10))], "cpu")


def test_probe_standardisation_is_folded_and_scale_invariant():
    """Standardised training, folded back into the layer: the probe applies to raw features, and
    rescaling the features (a tiny random network's, say) changes nothing."""
    g = torch.Generator().manual_seed(1)
    centers = torch.randn(4, 16, generator=g) * 3
    labels = torch.arange(4).repeat_interleave(50)
    feats = (centers[labels] + torch.randn(200, 16, generator=g)) * 1e-3 + 5.0  # tiny and offset
    small = train_linear_probe_on_features(feats, labels, 4, epochs=20, lr=0.1)
    large = train_linear_probe_on_features((feats - 5.0) * 1e3, labels, 4, epochs=20, lr=0.1)
    assert probe_accuracy(small, feats, labels) >= 98.0
    assert torch.equal(predict(small, feats), predict(large, (feats - 5.0) * 1e3))
