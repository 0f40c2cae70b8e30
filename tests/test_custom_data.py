"""Datasets by description (cassle/data/custom.py): class and domain trees, file lists, the prepare
tool, --domains / --num_tasks / --num_classes from the data, image validation, evaluation at the
trained resolution, domain-aware reports, and the digits-domains demo through the launcher."""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cassle.continual.plan import PlanError, plan_tasks
from cassle.data import ContinualDataModule, load_dataset
from cassle.data.args import task_count
from cassle.data.custom import (
    DataError,
    ImageDecodeError,
    ImageListDataset,
    Sample,
    describe,
    split_samples,
    validate_images,
)
from cassle.data.prepare import main as prepare_main

REPO = Path(__file__).resolve().parents[1]
DOMAINS = ("photo", "sketch", "cartoon")
CLASSES = ("ant", "bee", "cat", "dog")


def _png(path: Path, value: int, size: int = 12) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


def _tree(root: Path, domains=DOMAINS, classes=CLASSES, per_class: int = 5) -> Path:
    for d, domain in enumerate(domains or [None]):
        for c, name in enumerate(classes):
            for k in range(per_class):
                top = root / domain / name if domain else root / name
                _png(top / f"img {k}.png", 100 * d + 10 * c + k)  # a space in the name on purpose
    return root


@pytest.fixture
def domain_tree(tmp_path):
    return _tree(tmp_path / "data")


def _dm(root, **kw):
    kw = {"dataset": "custom", "data_dir": str(root), "num_workers": 0, "batch_size": 2, "crop_size": [8], **kw}
    return ContinualDataModule(**kw)


# --------------------------------------------------------------------------- description and split
def test_describe_layouts(tmp_path):
    d = describe(_tree(tmp_path / "d"))
    assert (d.kind, d.domains, d.classes) == ("domain_tree", sorted(DOMAINS), list(CLASSES))
    c = describe(_tree(tmp_path / "c", domains=None))
    assert (c.kind, c.domains, c.classes) == ("class_tree", None, list(CLASSES))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither file lists"):
        describe(tmp_path / "empty")
    _png(tmp_path / "mixed" / "cat" / "a.png", 1)
    _png(tmp_path / "mixed" / "photo" / "dog" / "b.png", 2)
    (tmp_path / "mixed" / "photo" / "x.txt").write_text("not an image")
    with pytest.raises(DataError, match="mixes class folders"):
        describe(tmp_path / "mixed")


def test_split_is_seeded_per_domain_and_class():
    samples = [Sample(f"{d}/{c}/{k}.png", c, d) for d in range(2) for c in range(3) for k in range(10)]
    train, test = split_samples(samples, 0.2, seed=0)
    assert sorted(train + test, key=lambda s: s.path) == sorted(samples, key=lambda s: s.path)  # a partition
    assert not {s.path for s in train} & {s.path for s in test}
    for d in range(2):
        for c in range(3):
            assert sum(1 for s in test if (s.domain, s.label) == (d, c)) == 2  # round(0.2 * 10) per group
    assert split_samples(samples, 0.2, seed=0) == (train, test)
    assert split_samples(samples, 0.2, seed=1)[1] != test
    # one group's split depends only on its own files and names: dropping a domain or reordering
    # the domains changes nothing in the others
    named = split_samples(samples, 0.2, 0, ["a", "b"])[1]
    only_b = split_samples([Sample(s.path, s.label, 0) for s in samples if s.domain == 1], 0.2, 0, ["b"])[1]
    assert [s.path for s in only_b] == [s.path for s in named if s.domain == 1]
    # tiny groups: one image stays in train, two give one test image
    tr, te = split_samples([Sample("a", 0, 0), Sample("b", 1, 0), Sample("c", 1, 0)], 0.2)
    assert [s.path for s in te] in (["b"], ["c"]) and "a" in [s.path for s in tr]
    with pytest.raises(ValueError, match="test_fraction"):
        split_samples(samples, 1.0)


# --------------------------------------------------------------------------- prepare
def test_prepare_writes_lists_that_match_the_in_memory_split(domain_tree, capsys):
    in_memory = [load_dataset("custom", str(domain_tree), train=t, domains=list(DOMAINS)) for t in (True, False)]
    assert prepare_main([str(domain_tree), "--test_fraction", "0.2", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "3 domains (cartoon, photo, sketch) x 4 classes; 48 train / 12 test" in out
    assert "ant" in out and "4/1" in out and "16/4" in out  # per class and domain, and totals
    assert (domain_tree / "classes.txt").read_text().split() == list(CLASSES)
    first = (domain_tree / "photo_test.txt").read_text().splitlines()[0]
    path, label = first.rsplit(" ", 1)
    assert path.startswith("photo/") and (domain_tree / path).is_file() and CLASSES[int(label)] in path
    listed = [load_dataset("custom", str(domain_tree), train=t, domains=list(DOMAINS)) for t in (True, False)]
    assert describe(domain_tree).kind == "lists"
    for a, b in zip(in_memory, listed):  # lists and the in-memory split are the same split
        assert a.samples == b.samples and a.domain_names == b.domain_names == list(DOMAINS)
    assert listed[1].sources[0].endswith("photo_test.txt:1")
    # lists are never overwritten silently
    assert prepare_main([str(domain_tree)]) == 2
    assert "--force" in capsys.readouterr().err
    assert prepare_main([str(domain_tree), "--force", "--test_fraction", "0.4"]) == 0
    assert len((domain_tree / "photo_test.txt").read_text().splitlines()) == 8


# --------------------------------------------------------------------------- domains, tasks, classes
def test_domains_give_the_tasks(domain_tree):
    dm = _dm(domain_tree, split_strategy="domain", domains=["sketch", "photo", "cartoon"], task_idx=1)
    assert dm.args.num_tasks == 3 and dm.num_classes == 4
    assert dm.train_full.domain_names == ["sketch", "photo", "cartoon"]
    photo = dm.train_full.domains == 1
    assert torch.equal(dm.task_indices, torch.nonzero(photo).reshape(-1))
    assert all(dm.train_full.samples[i][0].startswith("photo/") for i in dm.task_indices.tolist())
    _, views, targets = next(iter(dm.train_dataloader()))
    assert views[0].shape == (2, 3, 8, 8)
    # a domain split of other data must name the task order; the error lists what was found
    with pytest.raises(DataError, match=r"pass --domains .* found: cartoon, photo, sketch"):
        _dm(domain_tree, split_strategy="domain").setup()
    with pytest.raises(DataError, match=r"unknown domain\(s\) clipart .* has: cartoon, photo, sketch"):
        _dm(domain_tree, split_strategy="domain", domains=["photo", "clipart"]).setup()
    with pytest.raises(ValueError, match="--num_tasks 2 does not match the 3 domains"):
        _dm(domain_tree, split_strategy="domain", domains=list(DOMAINS), num_tasks=2)
    # class split on data with domains: every domain pooled, classes split into tasks
    pooled = _dm(domain_tree, num_tasks=2)
    assert pooled.train_full.domain_names == sorted(DOMAINS) and pooled.train_size == 24


def test_task_count_rule():
    ns = lambda **kw: argparse.Namespace(
        **{
            "dataset": "custom",
            "split_strategy": "domain",
            "domains": None,  # noqa: E731
            "num_tasks": None,
            **kw,
        }
    )
    assert task_count(ns(domains=["a", "b"])) == 2
    assert task_count(ns(dataset="domainnet")) == 6  # DomainNet's reference order
    assert task_count(ns()) is None  # only the data can tell
    assert task_count(ns(split_strategy="class")) == 1 and task_count(ns(split_strategy="data", num_tasks=3)) == 3
    with pytest.raises(ValueError, match="--num_tasks 5 does not match the 6 domains of DomainNet"):
        task_count(ns(dataset="domainnet", num_tasks=5))
    base = ["--name", "r", "--split_strategy", "domain", "--domains", "a", "b", "c"]
    assert [r.task_idx for r in plan_tasks(base, None, "/tmp/x")] == [0, 1, 2]
    with pytest.raises(PlanError, match="--num_tasks 2 does not match the 3 domains"):
        plan_tasks(base + ["--num_tasks", "2"], None, "/tmp/x")


def test_num_classes_comes_from_the_data(tmp_path, domain_tree):
    plain = _tree(tmp_path / "plain", domains=None)
    dm = _dm(plain, num_tasks=2, task_idx=1)
    assert dm.num_classes == 4 and len(dm.task_classes) == 2
    with pytest.raises(DataError, match=r"--num_classes 5 does not match the data: .* has 4 classes"):
        _dm(plain, num_classes=5).setup()
    with pytest.raises(DataError, match="--domains photo: .* has no domains"):
        _dm(plain, domains=["photo"]).setup()
    with pytest.raises(DataError, match="needs data with domains"):
        _dm(plain, split_strategy="domain", num_tasks=2).setup()
    assert prepare_main([str(domain_tree)]) == 0
    lines = (domain_tree / "sketch_train.txt").read_text().splitlines()
    lines[2] = lines[2].rsplit(" ", 1)[0] + " 7"
    (domain_tree / "sketch_train.txt").write_text("\n".join(lines) + "\n")
    bad = f"sketch_train.txt:3: image {lines[2].rsplit(' ', 1)[0]} has label 7"
    with pytest.raises(DataError, match=f"label out of range: .*classes.txt gives 4 classes .*{bad}"):
        _dm(domain_tree).setup()
    (domain_tree / "classes.txt").unlink()  # no class names: the count is the largest label + 1
    with pytest.raises(DataError, match=f"--num_classes 4 gives 4 classes .*{bad}"):
        _dm(domain_tree, num_classes=4).setup()
    (domain_tree / "sketch_train.txt").write_text("sketch/ant/img 0.png x\n")
    with pytest.raises(DataError, match=r"sketch_train.txt:1: expected 'relative/path label'"):
        _dm(domain_tree).setup()


# --------------------------------------------------------------------------- validation
def test_bad_images_are_named_before_training(domain_tree):
    assert prepare_main([str(domain_tree)]) == 0
    lines = (domain_tree / "photo_train.txt").read_text().splitlines()
    missing, corrupt = lines[0].rsplit(" ", 1)[0], lines[4].rsplit(" ", 1)[0]
    (domain_tree / missing).unlink()
    (domain_tree / corrupt).write_bytes(b"this is not an image")
    with pytest.raises(DataError, match=r"2 of 48 training images cannot be read") as err:
        _dm(domain_tree, split_strategy="domain", domains=list(DOMAINS)).setup()
    msg = str(err.value)
    assert f"photo_train.txt:1: {domain_tree / missing}: file not found" in msg
    assert f"photo_train.txt:5: {domain_tree / corrupt}: UnidentifiedImageError" in msg
    # --no-validate_images skips the check; the image then fails when read, naming the file
    dm = _dm(domain_tree, split_strategy="domain", domains=list(DOMAINS), validate_images=False)
    dm.setup()
    with pytest.raises(
        ImageDecodeError,
        match=f"cannot decode image {domain_tree / missing} "
        r"\(listed at .*photo_train.txt:1\)",
    ):
        dm.train_full[0]


def test_truncated_image_mid_training_names_the_file(tmp_path):
    from main_continual import error_text

    path = tmp_path / "a.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a truncated JPEG: the header is fine
    ds = ImageListDataset(tmp_path, [("a.jpg", 0, 0)], num_classes=1)
    assert validate_images(ds) == 1  # headers only: this one passes up front
    loader = torch.utils.data.DataLoader(ds, num_workers=1, collate_fn=lambda b: b)
    with pytest.raises(ImageDecodeError) as err:
        next(iter(loader))
    text = error_text(err.value)  # what main_continual.py prints: one line naming the file
    assert "\n" not in text and f"cannot decode image {path}" in text and "truncated" in text


# --------------------------------------------------------------------------- evaluation
def test_eval_uses_the_trained_crop_and_caches_decoded_images(domain_tree):
    from cassle.eval.linear import EvalData
    from cassle.eval.run_eval import resolve_data

    hp = {
        "dataset": "custom",
        "data_dir": str(domain_tree),
        "split_strategy": "domain",
        "domains": list(DOMAINS),
        "num_tasks": 3,
        "num_classes": 4,
        "crop_size": [8, 8],
    }
    opts = argparse.Namespace(dataset=None, crop_size=None, image_cache_gb=1.0)
    data = resolve_data(opts, hp)
    assert data.crop_size == 8 and data.task_names == list(DOMAINS)
    assert data.transform_description() == "resize 9 (bicubic) + centre crop 8"
    assert (
        EvalData.build(
            "custom",
            data.train_set,
            data.test_set,
            num_classes=4,
            split=None,
            num_tasks=1,
            mean=data.mean,
            std=data.std,
            crop_size=224,
        ).transform_description()
        == "resize 256 (bicubic) + centre crop 224"
    )  # the reference's transform for 224 px runs
    idx = torch.arange(len(data.test_set))
    cached = list(data.plain_batches("test", idx, 7, 0, torch.device("cpu")))
    assert "test" in data._cache
    data.cache_bytes, data._cache = 0, {}
    streamed = list(data.plain_batches("test", idx, 7, 0, torch.device("cpu")))
    assert not data._cache and len(cached) == len(streamed)
    for (xc, yc), (xs, ys) in zip(cached, streamed):
        assert torch.equal(yc, torch.as_tensor(ys)) and torch.allclose(xc, xs, atol=1e-6)


def test_report_has_domain_aware_results(tmp_path):
    from cassle.eval.report import DOMAIN_AWARE_CSV, PNG_SIZE_PX_DOMAINS, format_results, write_report

    R = [[80.0, 10.0], [60.0, 70.0]]
    aware = {"domains": ["photo", "sketch"], "matrix": [[90.0, 40.0], [85.0, 75.0]], "random_baseline": [30.0, 20.0]}
    res = write_report(
        tmp_path,
        R,
        [20.0, 15.0],
        task_names=["photo", "sketch"],
        protocol={},
        seed=0,
        checkpoints=[],
        domain_aware=aware,
    )
    assert res["domain_aware"]["final_mean"] == 80.0
    assert json.loads((tmp_path / "results.json").read_text())["domain_aware"]["matrix"] == aware["matrix"]
    rows = list(csv.reader(open(tmp_path / DOMAIN_AWARE_CSV)))
    assert rows[0] == ["after_task \\ domain", "photo", "sketch"] and rows[2] == ["sketch", "85.0", "75.0"]
    md = (tmp_path / "summary.md").read_text()
    assert "## Domain-aware" in md and "| sketch | 85.00 | 75.00 |" in md and "| random init | 30.00 | 20.00 |" in md
    with Image.open(tmp_path / "accuracy_matrix.png") as im:
        assert im.size == PNG_SIZE_PX_DOMAINS
    text = format_results(res)
    assert "domain-aware accuracy" in text and "mean over domains after the last task = 80.00" in text
    with pytest.raises(ValueError, match="one row per task"):
        write_report(
            tmp_path,
            R,
            None,
            protocol={},
            seed=0,
            checkpoints=[],
            domain_aware={"domains": ["photo"], "matrix": [[1.0]]},
        )


def test_launcher_names_the_domains_before_anything_is_written(domain_tree, tmp_path, capsys):
    from cassle.continual.launcher import main as launcher_main

    demo = (REPO / "bash_files" / "continual" / "digits-domains" / "barlow_distill.sh").read_text()
    exp = tmp_path / "exp"
    os.environ["DATA_DIR"] = str(domain_tree)
    try:
        rc = launcher_main(
            [
                "--script",
                str(REPO / "bash_files" / "continual" / "digits-domains" / "barlow_distill.sh"),
                "--experiment_dir",
                str(exp),
                "--dry_run",
                "--",
                "--domains",
                "photo",
                "sketch",
                "--num_tasks",
                "3",
            ],
            repo_root=str(REPO),
        )
        assert rc == 2 and "--num_tasks 3 does not match the 2 domains" in capsys.readouterr().err
        script = tmp_path / "no_order.sh"  # the demo without its task order
        script.write_text("\n".join(ln for ln in demo.splitlines() if "--domains" not in ln) + "\n")
        rc = launcher_main(["--script", str(script), "--experiment_dir", str(exp)], repo_root=str(REPO))
        assert rc == 2 and "found: cartoon, photo, sketch" in capsys.readouterr().err and not exp.exists()
        rc = launcher_main(
            ["--script", str(script), "--experiment_dir", str(exp), "--dry_run", "--", "--dataset", "domainnet"],
            repo_root=str(REPO),
        )
        assert rc == 0 and "--task_idx 5" in capsys.readouterr().out  # DomainNet: its six domains
    finally:
        del os.environ["DATA_DIR"]


# --------------------------------------------------------------------------- the demo, through the launcher
TINY = [
    "--max_epochs",
    "1",
    "--batch_size",
    "8",
    "--num_workers",
    "0",
    "--proj_hidden_dim",
    "32",
    "--output_dim",
    "32",
    "--distill_proj_hidden_dim",
    "32",
    "--limit_train_batches",
    "2",
    "--limit_val_batches",
    "1",
    "--warmup_epochs",
    "0",
    "--crop_size",
    "16",
    "--online_eval_batch_size",
    "16",
]


@pytest.fixture(scope="module")
def digit_domains(tmp_path_factory):
    from cassle.data.demo import write_digit_domains

    root = tmp_path_factory.mktemp("digits-domains")
    assert write_digit_domains(root, ("plain", "inverted"), per_class=5) == 100
    return root


def _launch(data: Path, exp: Path, extra: list[str], eval_: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATA_DIR": str(data), "PYTHONWARNINGS": "ignore"}
    cmd = [
        sys.executable,
        "job_launcher.py",
        "--script",
        "bash_files/continual/digits-domains/barlow_distill.sh",
        "--experiment_dir",
        str(exp),
        *(["--eval"] if eval_ else []),
        "--",
        *TINY,
        *extra,
    ]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.mark.slow
def test_digits_domains_demo_with_eval(digit_domains, tmp_path):
    exp = tmp_path / "exp"
    res = _launch(digit_domains, exp, ["--domains", "inverted", "plain"], eval_=True)
    recorded = json.loads((exp / "task1" / "args.json").read_text())
    assert (recorded["num_tasks"], recorded["domains"], recorded["num_classes"]) == (2, ["inverted", "plain"], 10)
    results = json.loads((exp / "eval" / "results.json").read_text())
    assert results["task_names"] == ["inverted", "plain"] and np.shape(results["accuracy_matrix"]) == (2, 2)
    assert results["domain_aware"]["domains"] == ["inverted", "plain"]
    assert results["protocol"]["test_transform"] == "resize 18 (bicubic) + centre crop 16"  # the trained 16 px
    assert (exp / "eval" / "domain_aware.csv").is_file()
    assert "domain-aware accuracy" in res.stdout and "after task \\ domain" in res.stdout


@pytest.mark.slow
def test_digits_domains_demo_through_dali(digit_domains, tmp_path):
    from cassle.data.dali import dali_available

    if not dali_available():
        pytest.skip("NVIDIA DALI not installed (pip install nvidia-dali-cuda120)")
    exp = tmp_path / "exp"
    _launch(digit_domains, exp, ["--domains", "plain", "--dali", "--num_workers", "1"], eval_=False)
    log = (exp / "task0" / "train.log").read_text()
    assert "data: DALI pipelines on the CPU" in log and (exp / "task0" / "last.ckpt").is_file()


def test_truncated_image_through_dali_names_the_file(tmp_path):
    from cassle.data.dali import DaliTrainLoader, dali_available

    if not dali_available():
        pytest.skip("NVIDIA DALI not installed (pip install nvidia-dali-cuda120)")
    for k in range(4):
        Image.fromarray(np.random.default_rng(k).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            tmp_path / f"{k}.jpg"
        )
    data = (tmp_path / "2.jpg").read_bytes()
    (tmp_path / "2.jpg").write_bytes(data[: len(data) // 3])
    ds = ImageListDataset(tmp_path, [(f"{k}.jpg", 0, 0) for k in range(4)], num_classes=1)
    view = dict(
        crop_size=8,
        min_scale=0.5,
        max_scale=1.0,
        brightness=0.0,
        contrast=0.0,
        saturation=0.0,
        hue=0.0,
        color_jitter_prob=0.0,
        gray_scale_prob=0.0,
        horizontal_flip_prob=0.0,
        gaussian_prob=0.0,
        solarization_prob=0.0,
    )
    with pytest.raises(ImageDecodeError, match=f"cannot decode image {tmp_path / '2.jpg'}"):
        for _ in DaliTrainLoader(ds, torch.arange(4), [view, view], (0.5,) * 3, (0.5,) * 3, batch_size=4):
            pass
