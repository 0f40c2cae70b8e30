"""Linear evaluation: frozen backbone, run-folder report, bad input, bash scripts (tiny, CPU)."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import main_linear
from cassle.continual import manifest as mf
from cassle.data.datasets import TensorImageDataset, load_dataset
from cassle.data.splits import class_split_tasks
from cassle.eval.linear import (
    LINEAR_LRS,
    EvalData,
    EvalInputError,
    LinearProbe,
    ProbeConfig,
    assert_unchanged,
    evaluate_backbone,
    load_backbone_from_checkpoint,
    random_backbone,
    reference_lr,
    snapshot_state,
)
from cassle.eval.report import PNG_SIZE_PX, REPORT_FILES
from cassle.eval.run_eval import resolve_data
from main_continual import run_task
from tests.helpers import tiny_args

REPO = Path(__file__).resolve().parents[1]
FAST = ["--num_workers", "0", "--accelerator", "cpu", "--max_epochs", "3"]


# --------------------------------------------------------------------------- a tiny 2-task run
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """experiments/<run>-like folder: 2 tasks x 1 epoch of Barlow Twins (+ decorrelative at task 1)."""
    root = tmp_path_factory.mktemp("run")
    manifest = mf.new_manifest("tiny", None, [], range(2))
    mf.save_manifest(str(root), manifest)
    for t in range(2):
        extra = ["--num_tasks", "2", "--task_idx", str(t)]
        if t:
            extra += ["--pretrained_model", str(root / "task0" / "last.ckpt")]
        run_task(
            tiny_args("barlow_twins", *extra, distiller="decorrelative" if t else None, tmp_path=root / f"task{t}")
        )
        mf.update_task(str(root), manifest, t, "done", returncode=0, checkpoint=str(root / f"task{t}" / "last.ckpt"))
    return root


@pytest.fixture
def run_copy(run_dir, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run_dir, dst, ignore=shutil.ignore_patterns("eval", "logs"))
    return dst


def _ckpt_backbone(path) -> dict[str, torch.Tensor]:
    sd = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    return {k[len("backbone.") :]: v for k, v in sd.items() if k.startswith("backbone.")}


def _opts(**kw) -> argparse.Namespace:
    """A namespace as main_linear's parser makes it (for resolve_data)."""
    opts = main_linear.build_parser().parse_args(["--run_dir", "x"])
    for k, v in kw.items():
        setattr(opts, k, v)
    return opts


# --------------------------------------------------------------------------- frozen backbone
@pytest.mark.parametrize("mode", ["fast", "augmented"])
def test_backbone_untouched_by_linear_evaluation(run_dir, mode):
    path = run_dir / "task1" / "last.ckpt"
    backbone, feat_dim, hp = load_backbone_from_checkpoint(str(path), num_classes=4)
    assert not backbone.training and not any(p.requires_grad for p in backbone.parameters())
    data = resolve_data(_opts(), hp)
    cfg = ProbeConfig(mode=mode, epochs=2, lr=0.5, batch_size=16, num_workers=0, accelerator="cpu", knn=True)
    res = evaluate_backbone(backbone, feat_dim, data, cfg)  # also asserts internally
    original = _ckpt_backbone(path)
    now = backbone.state_dict()
    assert set(now) == set(original)
    bn_buffers = [k for k in now if "running_" in k or "num_batches_tracked" in k]
    assert bn_buffers, "the tiny backbone has BatchNorm buffers to check"
    for k, v in original.items():  # weights and BN running statistics bit-identical
        assert torch.equal(now[k], v), f"{k} changed during linear evaluation ({mode})"
    assert isinstance(res["probe"], nn.Linear) and res["probe"].out_features == 4
    assert len(res["per_task"]) == 2 and all(0 <= a <= 100 for a in res["per_task"])
    assert set(res["knn"]) == {"cosine", "euclidean"}


def test_unchanged_check_catches_bn_statistics_update(run_dir):
    backbone, _, _ = load_backbone_from_checkpoint(str(run_dir / "task0" / "last.ckpt"))
    before = snapshot_state(backbone)
    assert_unchanged(backbone, before)
    backbone.train()
    with torch.no_grad():  # no gradient, but train-mode BN still updates its running stats
        backbone(torch.randn(4, 3, 16, 16))
    with pytest.raises(RuntimeError, match="running statistics"):
        assert_unchanged(backbone, before)


def test_linear_probe_keeps_backbone_in_eval_mode(run_dir):
    backbone, feat_dim, _ = load_backbone_from_checkpoint(str(run_dir / "task0" / "last.ckpt"))
    probe = LinearProbe(backbone, feat_dim, 4, lr=0.1, max_epochs=10)
    probe.train()
    assert probe.training and probe.classifier.training
    assert not any(m.training for m in probe.backbone.modules())
    assert probe.milestones == [6, 8]  # x0.1 at 60% and 80% of the epochs
    opt = probe.configure_optimizers()["optimizer"]
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in probe.classifier.parameters()}
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["weight_decay"] == 0.0


# --------------------------------------------------------------------------- pure pieces
def test_reference_lrs():
    assert LINEAR_LRS["barlow_twins"] == LINEAR_LRS["barlow"] == 0.1
    assert (
        LINEAR_LRS["byol"],
        LINEAR_LRS["mocov2plus"],
        LINEAR_LRS["simclr"],
        LINEAR_LRS["supcon"],
        LINEAR_LRS["swav"],
        LINEAR_LRS["vicreg"],
    ) == (3.0, 3.0, 1.0, 1.0, 0.15, 0.3)
    # issue 22's methods (solo-learn's linear scripts; cassle/eval/linear.py names each source)
    assert [LINEAR_LRS[m] for m in ("simsiam", "nnclr", "ressl", "wmse", "dino", "deepclusterv2", "mocov3")] == [
        30.0,
        0.3,
        3.0,
        0.1,
        0.3,
        0.15,
        0.3,
    ]
    with pytest.raises(EvalInputError, match="valid methods: .*byol"):
        reference_lr("not_a_method")


def test_row_is_task_agnostic_without_masking():
    """Hand-built predictions: a wrong class from another task counts as wrong (no masking)."""
    tasks = class_split_tasks(4, 2)  # seed-5 order
    a, b = tasks
    labels = torch.tensor([a[0], a[0], a[1], b[0], b[1], b[1]])
    # task 0: 2/3 right (image 1 is predicted as a task-1 class: a masked evaluation would not
    # count that as an error), task 1: 2/3 right.
    preds = torch.tensor([a[0], b[0], a[1], b[0], b[1], a[0]])
    feats = nn.functional.one_hot(preds, 4).float()
    test = TensorImageDataset(torch.zeros(6, 8, 8, 3, dtype=torch.uint8), labels, num_classes=4)
    data = EvalData.build(
        "synthetic", test, test, num_classes=4, split="class", num_tasks=2, mean=(0.5,) * 3, std=(0.5,) * 3
    )
    identity = nn.Linear(4, 4)
    with torch.no_grad():
        identity.weight.copy_(torch.eye(4))
        identity.bias.zero_()
    acc, per_task = data.row(identity, feats, labels)
    assert acc == pytest.approx(100 * 4 / 6)
    assert per_task == pytest.approx([100 * 2 / 3, 100 * 2 / 3])
    assert data.task_sizes == [3, 3]
    data_split = EvalData.build(
        "synthetic", test, test, num_classes=4, split="data", num_tasks=3, mean=(0.5,) * 3, std=(0.5,) * 3
    )
    assert data_split.row(identity, feats, labels)[1] == pytest.approx([100 * 4 / 6] * 3)  # whole test set


def test_label_fraction_is_stratified_and_seeded(run_dir):
    _, _, hp = load_backbone_from_checkpoint(str(run_dir / "task0" / "last.ckpt"))
    data = resolve_data(_opts(), hp)
    idx = data.train_indices(0.25, seed=3)
    labels = data.train_labels()
    for c in range(4):
        n_c = int((labels == c).sum())
        assert int((labels[idx] == c).sum()) == max(1, math.floor(0.25 * n_c + 0.5))
    assert torch.equal(idx, data.train_indices(0.25, seed=3))
    assert not torch.equal(idx, data.train_indices(0.25, seed=4))


def test_online_protocol_matches_naive_computation(run_dir, tmp_path):
    path = run_dir / "task1" / "last.ckpt"
    rc = main_linear.main(
        ["--pretrained_feature_extractor", str(path), "--protocol", "online", "--output_dir", str(tmp_path), *FAST]
    )
    assert rc == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["protocol"]["name"] == "online"
    # Naive: the checkpoint's backbone + online classifier on the normalised test images.
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    backbone, _, hp = load_backbone_from_checkpoint(str(path))
    test = load_dataset(
        "synthetic",
        num_classes=4,
        synthetic_size=hp["synthetic_size"],
        image_size=hp["synthetic_image_size"],
        train=False,
    )
    x = (test.images.permute(0, 3, 1, 2).double() / 255 - 0.5) / 0.5
    with torch.no_grad():
        logits = (
            backbone.double()(x) @ ckpt["state_dict"]["classifier.weight"].double().T
            + ckpt["state_dict"]["classifier.bias"].double()
        )
    correct = (logits.argmax(1) == test.targets).double()
    assert res["acc1"] == pytest.approx(100 * correct.mean().item())
    for t, classes in enumerate(class_split_tasks(4, 2)):
        mask = torch.isin(test.targets, torch.tensor(classes))
        assert res["per_task"][t] == pytest.approx(100 * correct[mask].mean().item())


# --------------------------------------------------------------------------- run folder
def test_run_dir_with_only_the_launcher_flag_writes_the_report(run_copy):
    """What job_launcher.py --eval runs: `python main_linear.py --run_dir <exp>`, nothing else."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "main_linear.py"), "--run_dir", str(run_copy)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = run_copy / "eval"
    for name in REPORT_FILES:
        assert (out / name).is_file(), name
    res = json.loads((out / "results.json").read_text())
    R = res["accuracy_matrix"]
    assert len(R) == 2 and all(len(r) == 2 for r in R)
    b, n = res["random_baseline"], res["task_sizes"]
    for key in ("A", "F", "T"):
        assert math.isfinite(res[key])
    # Cross-check A, F, T from the matrix by their definitions.
    assert res["A"] == pytest.approx((n[0] * R[1][0] + n[1] * R[1][1]) / (n[0] + n[1]))
    assert res["F"] == pytest.approx(R[0][0] - R[1][0])
    assert res["T"] == pytest.approx(R[0][1] - b[1])
    p = res["protocol"]
    assert p["name"] == "linear-fast" and p["mode"] == "fast" and p["epochs"] == 100
    assert p["lr"] == LINEAR_LRS["barlow_twins"] and p["lr_milestones"] == [60, 80]
    assert res["seed"] == 5
    # issue 20: the fast probe by default, named beside A / F / T on the console
    assert p["eval_protocol"] == "fast" and "not the paper's" in p["label"]
    assert f"[eval] A = {res['A']:.2f}" in proc.stdout and f"[{p['label']}]" in proc.stdout.splitlines()[-1]
    assert [Path(c) for c in res["checkpoints"]] == [run_copy.resolve() / f"task{t}" / "last.ckpt" for t in range(2)]
    from PIL import Image

    with Image.open(out / "accuracy_matrix.png") as img:
        img.load()
        assert img.format == "PNG" and img.size == PNG_SIZE_PX
    rows = list(csv.reader((out / "accuracy_matrix.csv").open()))
    assert len(rows) == 3 and [float(v) for v in rows[2][1:]] == pytest.approx(R[1])


def test_run_dir_augmented_with_knn(run_copy):
    rc = main_linear.main(
        [
            "--run_dir",
            str(run_copy),
            "--mode",
            "augmented",
            "--knn",
            "--max_epochs",
            "1",
            "--num_workers",
            "0",
            "--accelerator",
            "cpu",
        ]
    )
    assert rc == 0
    res = json.loads((run_copy / "eval" / "results.json").read_text())
    assert res["protocol"]["name"] == "linear-augmented"
    assert "RandomResizedCrop(16" in res["protocol"]["train_augmentation"]
    knn = res["extra"]["knn"]
    assert set(knn) == {"cosine", "euclidean"} and len(knn["cosine"]["per_checkpoint"]) == 2


def test_random_backbone_is_seeded_and_leaves_global_rng(run_dir):
    _, _, hp = load_backbone_from_checkpoint(str(run_dir / "task0" / "last.ckpt"))
    state = torch.get_rng_state()
    a, _ = random_backbone(hp, 5)
    b, _ = random_backbone(hp, 5)
    c, _ = random_backbone(hp, 6)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not all(torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())


# --------------------------------------------------------------------------- bad input
def _strip_backbone(path: Path) -> None:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    ckpt["state_dict"] = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("backbone.")}
    torch.save(ckpt, path)


def _bad(argv, capsys, pattern, out_dir: Path):
    rc = main_linear.main([*argv, *FAST])
    err = capsys.readouterr().err
    assert rc == main_linear.EXIT_BAD_INPUT, err
    assert re.search(pattern, err), err
    assert not (out_dir / "results.json").exists()


def test_checkpoint_without_backbone(run_copy, capsys):
    _strip_backbone(run_copy / "task1" / "last.ckpt")
    _bad(
        [
            "--pretrained_feature_extractor",
            str(run_copy / "task1" / "last.ckpt"),
            "--output_dir",
            str(run_copy / "single"),
        ],
        capsys,
        r"checkpoint .*task1/last.ckpt has no backbone\.\* weights",
        run_copy / "single",
    )
    _bad(["--run_dir", str(run_copy)], capsys, r"has no backbone\.\* weights", run_copy / "eval")


def test_num_classes_mismatch(run_copy, capsys):
    ckpt = str(run_copy / "task1" / "last.ckpt")
    _bad(
        ["--pretrained_feature_extractor", ckpt, "--num_classes", "6", "--output_dir", str(run_copy / "s")],
        capsys,
        r"num_classes mismatch: .*num_classes=4 .* 6 classes",
        run_copy / "s",
    )
    _bad(["--run_dir", str(run_copy), "--num_classes", "6"], capsys, r"num_classes mismatch", run_copy / "eval")
    with pytest.raises(EvalInputError, match="num_classes mismatch"):
        load_backbone_from_checkpoint(ckpt, num_classes=10)
    # A task checkpoint recording another class count is not part of the same run.
    raw = torch.load(ckpt, map_location="cpu", weights_only=False)
    raw["hyper_parameters"]["num_classes"] = 6
    torch.save(raw, ckpt)
    _bad(["--run_dir", str(run_copy)], capsys, r"num_classes=6 but task 0 has num_classes=4", run_copy / "eval")


def test_missing_task_checkpoint(run_copy, capsys):
    (run_copy / "task1" / "last.ckpt").unlink()
    _bad(
        ["--run_dir", str(run_copy)],
        capsys,
        r"manifest says the task is done but its checkpoint .*task1/last.ckpt is missing",
        run_copy / "eval",
    )
    assert not (run_copy / "eval").exists()  # nothing computed, nothing written
    (run_copy / "manifest.json").unlink()  # no manifest: the task folders must cover num_tasks
    shutil.rmtree(run_copy / "task1")
    _bad(["--run_dir", str(run_copy)], capsys, r"1 task folder\(s\) \(task0\) but .*num_tasks=2", run_copy / "eval")


def test_unfinished_run(run_copy, capsys):
    manifest = mf.load_manifest(str(run_copy))
    mf.update_task(str(run_copy), manifest, 1, "running")
    _bad(["--run_dir", str(run_copy)], capsys, r"not finished .*task 1: running", run_copy / "eval")


def test_cli_needs_exactly_one_target(capsys):
    with pytest.raises(SystemExit) as exc:
        main_linear.main([])
    assert exc.value.code != 0 and "exactly one of" in capsys.readouterr().err


# --------------------------------------------------------------------------- bash scripts
LINEAR_SCRIPTS = REPO / "bash_files" / "linear"
MORE_22 = ["simsiam", "nnclr", "ressl", "wmse", "dino", "deepclusterv2", "mocov3"]  # issue 22's methods
EXPECTED = {
    "cifar": ["barlow", "byol", "mocov2plus", "simclr", "swav", "vicreg"],
    "imagenet-100/class": ["barlow", "byol", "mocov2plus", "simclr", "supcon", "swav", "vicreg", *MORE_22],
    "imagenet-100/data": ["barlow", "byol", "mocov2plus", "simclr", "supcon", "swav", "vicreg", *MORE_22],
    "domainnet": ["barlow", "byol", "mocov2plus", "simclr", "supcon", "swav", "vicreg"],
}
ALL_SCRIPTS = [(folder, m) for folder, methods in EXPECTED.items() for m in methods]


@pytest.mark.parametrize("folder,method", ALL_SCRIPTS, ids=[f"{f}/{m}" for f, m in ALL_SCRIPTS])
def test_linear_script_parses_and_uses_reference_lr(folder, method, tmp_path):
    script = LINEAR_SCRIPTS / folder / f"{method}_linear.sh"
    assert script.is_file()
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    # Run it with a stub "python" that records its argv, then parse that with main_linear's parser.
    dump = tmp_path / "argv.txt"
    stub = tmp_path / "python"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {dump}\n')
    stub.chmod(0o755)
    env = {**os.environ, "PYTHON": str(stub), "PRETRAINED_PATH": "/ckpt/last.ckpt", "DATA_DIR": "/data"}
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    argv = dump.read_text().splitlines()
    assert Path(argv[0]) == REPO / "main_linear.py"
    opts = main_linear.parse_args(argv[1:])
    assert opts.lr == LINEAR_LRS[method], f"{script}: --lr {opts.lr} is not the reference lr of {method}"
    assert opts.pretrained_feature_extractor == "/ckpt/last.ckpt" and opts.data_dir == "/data"
    assert (opts.mode, opts.max_epochs, opts.lr_decay_steps, opts.batch_size, opts.weight_decay) == (
        "augmented",
        100,
        [60, 80],
        256,
        0.0,
    )
    dataset = {"cifar": "cifar100", "domainnet": "domainnet"}.get(folder, "imagenet100")
    split = {"cifar": "class", "domainnet": "domain"}.get(folder, folder.split("/")[-1])
    # the task count comes from the checkpoint, or from NUM_TASKS
    assert (opts.dataset, opts.split_strategy, opts.num_tasks) == (dataset, split, None)
    subprocess.run(["bash", str(script)], env={**env, "NUM_TASKS": "4"}, check=True)
    assert main_linear.parse_args(dump.read_text().splitlines()[1:]).num_tasks == 4


def test_linear_script_needs_its_environment():
    env = {k: v for k, v in os.environ.items() if k not in ("PRETRAINED_PATH", "DATA_DIR")}
    proc = subprocess.run(
        ["bash", str(LINEAR_SCRIPTS / "cifar" / "byol_linear.sh")], env=env, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "PRETRAINED_PATH" in proc.stderr


def test_linear_script_smoke_run(run_dir, tmp_path):
    """The CIFAR BYOL script, for real, on the tiny checkpoint with tiny overrides appended."""
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "PRETRAINED_PATH": str(run_dir / "task1" / "last.ckpt"),
        "DATA_DIR": str(tmp_path),
        "NUM_WORKERS": "0",
    }
    proc = subprocess.run(
        [
            "bash",
            str(LINEAR_SCRIPTS / "cifar" / "byol_linear.sh"),
            "--dataset",
            "synthetic",
            "--num_tasks",
            "2",
            "--max_epochs",
            "1",
            "--accelerator",
            "cpu",
            "--output_dir",
            str(tmp_path / "out"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["protocol"]["name"] == "linear-augmented" and res["protocol"]["lr"] == 3.0
    assert len(res["per_task"]) == 2 and "top-1" in proc.stdout


# --------------------------------------------------------------------------- DomainNet
def _fake_domainnet(root: Path) -> None:
    """6 domains x 2 classes of 8x8 PNGs; the colour of a class flips between domains, so one
    classifier for all domains cannot be right everywhere while one per domain can."""
    from PIL import Image

    from cassle.data.splits import DOMAINNET_DOMAINS

    g = torch.Generator().manual_seed(0)
    for d, domain in enumerate(DOMAINNET_DOMAINS):
        (root / domain).mkdir(parents=True)
        for split, per_class in (("train", 3), ("test", 2)):
            lines = []
            for label in (0, 1):
                red = (label + d) % 2 == 0
                for k in range(per_class):
                    base = torch.tensor([220, 30, 30] if red else [30, 30, 220], dtype=torch.float)
                    img = (base + 20 * torch.randn(8, 8, 3, generator=g)).clamp(0, 255).to(torch.uint8)
                    name = f"{domain}/{split}_{label}_{k}.png"
                    Image.fromarray(img.numpy()).save(root / name)
                    lines.append(f"{name} {label}")
            (root / f"{domain}_{split}.txt").write_text("\n".join(lines) + "\n")


def test_domainnet_agnostic_and_aware(tmp_path):
    from cassle.data.splits import DOMAINNET_DOMAINS

    _fake_domainnet(tmp_path)
    hp = {
        "dataset": "domainnet",
        "data_dir": str(tmp_path),
        "num_classes": 2,
        "split_strategy": "domain",
        "num_tasks": 6,
        "backbone": "tiny",
        "seed": 5,
    }
    data = resolve_data(_opts(crop_size=8), hp)
    assert data.task_names == list(DOMAINNET_DOMAINS) and data.task_sizes == [4] * 6
    backbone, feat_dim = random_backbone(hp, 0)
    cfg = ProbeConfig(
        mode="fast", epochs=100, lr=1.0, batch_size=8, num_workers=0, accelerator="cpu", domain_aware=True
    )
    res = evaluate_backbone(backbone, feat_dim, data, cfg)
    assert len(res["per_task"]) == 6
    assert list(res["domain_aware"]) == list(DOMAINNET_DOMAINS)
    assert all(a == 100.0 for a in res["domain_aware"].values()), res["domain_aware"]
    assert res["acc1"] <= 75.0  # flipped colours: one classifier for every domain must fail somewhere
    one = resolve_data(_opts(crop_size=8, domain="quickdraw"), hp)  # the reference's --domain run
    assert one.task_names == ["quickdraw"] and len(one.test_set) == 4
    assert bool((one.test_set.domains == 0).all()) and one.test_set.domain_names == ["quickdraw"]
    with pytest.raises(EvalInputError, match="unknown --domain 'paint'; valid: real, quickdraw"):
        resolve_data(_opts(domain="paint"), hp)
