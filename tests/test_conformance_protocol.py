"""Conformance (issue 20, parts 2-4): the offline linear protocol as the reference ran it, A / F / T
that name the protocol which made them, and the smaller points (precision, results paths).

2. the offline probe: bicubic random crop for image folders (the reference's DALI path), bilinear for
   CIFAR (its torchvision path), last partial batch dropped; --dali used when installed
3. --eval_protocol {fast, paper}: see the tests below
4. --precision auto / 16 on GPUs without native bf16; benchmarks/RESULTS.md paths relative
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- 2. offline protocol
@pytest.fixture
def folder_data(tmp_path):
    from cassle.data.datasets import load_dataset
    from cassle.eval.linear import EvalData

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(2):
            for k in range(5):
                path = tmp_path / split / f"c{c}" / f"{k}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(path)
    train, test = (load_dataset("custom", str(tmp_path), train=t) for t in (True, False))
    return EvalData.build(
        "custom", train, test, num_classes=2, split="class", num_tasks=1, mean=(0.5,) * 3, std=(0.25,) * 3, crop_size=8
    )


def _crop(transform):
    from torchvision.transforms import v2

    return next(t for t in transform.transforms if isinstance(t, v2.RandomResizedCrop))


def test_2_offline_probe_crops_bicubic_for_folders_bilinear_for_cifar(folder_data):
    from torchvision.transforms import InterpolationMode

    from cassle.data.datasets import TensorImageDataset
    from cassle.eval.linear import EvalData

    crop = _crop(folder_data.train_transform())
    assert crop.interpolation == InterpolationMode.BICUBIC  # the reference's DALI INTERP_CUBIC
    assert (tuple(crop.size), crop.scale) == ((8, 8), (0.08, 1.0))
    tensor = TensorImageDataset(torch.zeros(6, 8, 8, 3, dtype=torch.uint8), torch.arange(6) % 2, num_classes=2)
    cifar_like = EvalData.build(
        "synthetic", tensor, tensor, num_classes=2, split="class", num_tasks=1, mean=(0.5,) * 3, std=(0.5,) * 3
    )
    assert _crop(cifar_like.train_transform()).interpolation == InterpolationMode.BILINEAR  # torchvision's


def _batches(loader):
    sizes = [len(y) for _x, y in loader]
    x, y = next(iter(loader))
    assert x.shape == (4, 3, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.long
    return sizes


def test_2_offline_probe_drops_the_last_partial_batch(folder_data, capsys, monkeypatch):
    from cassle.data import dali as dali_mod
    from cassle.eval.offline_loader import probe_train_loader

    idx = torch.arange(10)
    plain = probe_train_loader(folder_data, idx, batch_size=4, num_workers=0, seed=5)
    assert _batches(plain) == [4, 4]  # 10 images: the partial batch of 2 is dropped
    monkeypatch.setattr(dali_mod, "dali_available", lambda: False)  # --dali without DALI installed
    same = probe_train_loader(folder_data, idx, batch_size=4, num_workers=0, seed=5, dali=True)
    assert _batches(same) == [4, 4]
    assert "DALI is not installed" in capsys.readouterr().err
    one = probe_train_loader(folder_data, idx[:3], batch_size=4, num_workers=0, seed=5)
    assert [len(y) for _x, y in one] == [3]  # fewer images than a batch: the only batch is kept


def test_2_offline_probe_through_dali_when_installed(folder_data):
    """DALI's CPU pipeline (no GPU needed): one view, bicubic crop + flip, last batch dropped."""
    from cassle.data.dali import dali_available
    from cassle.eval.offline_loader import _DaliProbeBatches, probe_train_loader

    if not dali_available():
        pytest.skip("NVIDIA DALI is not installed")
    loader = probe_train_loader(folder_data, torch.arange(10), batch_size=4, num_workers=1, seed=5, dali=True)
    assert isinstance(loader, _DaliProbeBatches) and len(loader) == 2
    assert _batches(loader) == [4, 4]
    x, y = next(iter(loader))
    labels = torch.as_tensor(folder_data.train_set.targets)
    assert set(y.tolist()) <= set(labels.tolist())


def test_2_main_linear_passes_dali_to_the_probe():
    import main_linear
    from cassle.eval.run_eval import probe_config

    opts = main_linear.parse_args(["--pretrained_feature_extractor", "x.ckpt", "--dali"])
    cfg, _ = probe_config(opts, {"method": "byol"}, "augmented")
    assert cfg.dali is True and cfg.lr == 3.0
    assert "--dali is ignored" not in main_linear.build_parser().format_help()


def test_2_readme_row_on_dali_names_main_linear():
    text = (REPO / "README.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| DomainNet/ImageNet-100 without DALI"))
    assert "main_linear.py" in row and "bicubic" in row and "dropped" in row


# --------------------------------------------------------------------------- 3. --eval_protocol
def _run_folder(tmp_path, dataset):
    import json

    run = tmp_path / dataset
    (run / "task0").mkdir(parents=True, exist_ok=True)
    (run / "task0" / "args.json").write_text(json.dumps({"dataset": dataset, "method": "byol"}))
    return str(run)


@pytest.mark.parametrize(
    "dataset,protocol,mode",
    [("cifar100", "online", None), ("imagenet100", "linear", "augmented"), ("domainnet", "linear", "augmented")],
)
def test_3_paper_protocol_is_the_papers_for_the_dataset(tmp_path, dataset, protocol, mode):
    import main_linear

    opts = main_linear.parse_args(["--run_dir", _run_folder(tmp_path, dataset), "--eval_protocol", "paper"])
    assert (opts.protocol, opts.mode, opts.lr, opts.max_epochs) == (protocol, mode, None, 100)  # lr: per method
    assert opts.dali is False  # the run did not use DALI
    fast = main_linear.parse_args(["--run_dir", _run_folder(tmp_path, dataset)])
    assert (fast.eval_protocol, fast.protocol, fast.mode) == ("fast", "linear", "fast")


def test_3_paper_protocol_probes_through_dali_when_the_run_did(tmp_path):
    import json

    import main_linear

    run = _run_folder(tmp_path, "imagenet100")
    (tmp_path / "imagenet100" / "task0" / "args.json").write_text(json.dumps({"dataset": "imagenet100", "dali": True}))
    assert main_linear.parse_args(["--run_dir", run, "--eval_protocol", "paper"]).dali is True


def test_3_paper_protocol_refuses_contradicting_flags(tmp_path, capsys):
    import main_linear

    run = _run_folder(tmp_path, "cifar100")
    for extra in (["--mode", "fast"], ["--protocol", "online"]):
        with pytest.raises(SystemExit):
            main_linear.parse_args(["--run_dir", run, "--eval_protocol", "paper", *extra])
        assert "drop --mode / --protocol" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main_linear.parse_args(["--pretrained_feature_extractor", "x.ckpt", "--eval_protocol", "paper"])


def test_3_results_name_their_protocol():
    from cassle.eval.eval_protocol import tags

    fast = tags({"name": "linear-fast", "dataset": "cifar100"})
    assert fast["eval_protocol"] == "fast" and "not the paper's" in fast["label"]
    online = tags({"name": "online", "dataset": "cifar100"})
    assert online == {"eval_protocol": "paper", "label": "paper protocol: online classifier"}
    probe = {
        "name": "linear-augmented",
        "dataset": "imagenet100",
        "lr": 3.0,
        "lr_source": "reference lr of byol",
        "epochs": 100,
        "label_fraction": 1.0,
    }
    assert tags(probe)["label"] == "paper protocol: offline augmented probe, lr 3.0"
    assert tags({**probe, "lr_source": "--lr"})["eval_protocol"] == "custom"
    assert tags({**probe, "dataset": "cifar100"})["eval_protocol"] == "custom"  # CIFAR's is the online one
    assert tags({"name": "online", "dataset": "domainnet"})["eval_protocol"] == "custom"


def test_3_every_report_names_the_protocol(tmp_path, monkeypatch):
    import json

    from cassle.eval import report

    titles = []
    heatmap = report._heatmap
    monkeypatch.setattr(report, "_heatmap", lambda *a, **k: titles.append(a[6]) or heatmap(*a, **k))
    proto = {
        "name": "linear-fast",
        "dataset": "cifar100",
        "eval_protocol": "fast",
        "label": "fast protocol: fast probe on cached standardised features (not the paper's)",
    }
    res = report.write_report(
        tmp_path, [[50.0, 10.0], [40.0, 45.0]], [10.0, 10.0], protocol=proto, seed=5, checkpoints=["a", "b"]
    )
    label = proto["label"]
    assert label in titles[0]  # the PNG title
    summary = (tmp_path / "summary.md").read_text()
    assert all(f"{x} [{label}]" in summary for x in (f"{res['A']:.2f}", f"{res['F']:.2f}", f"{res['T']:.2f}"))
    assert label in report.format_results(res).splitlines()[-1]  # the console
    saved = json.loads((tmp_path / "results.json").read_text())["protocol"]
    assert (saved["eval_protocol"], saved["label"]) == ("fast", label)


def test_3_launcher_passes_the_protocol_and_reevaluates_when_it_changes(tmp_path, monkeypatch):
    import json

    from cassle.continual import launcher, task_process

    assert (
        launcher.build_parser().parse_args(["--script", "s.sh", "--eval", "--eval_protocol", "paper"]).eval_protocol
        == "paper"
    )
    assert launcher.build_parser().parse_args(["--script", "s.sh"]).eval_protocol == "fast"
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "results.json").write_text(
        json.dumps({"checkpoints": [], "protocol": {"name": "linear-fast", "eval_protocol": "fast"}})
    )
    manifest = {"eval": {"status": "done"}, "tasks": {}}
    assert launcher.eval_stale_reason(str(tmp_path), manifest, "fast") is None
    assert "fast protocol, --eval_protocol paper asked" in launcher.eval_stale_reason(str(tmp_path), manifest, "paper")
    seen = []
    script = tmp_path / "main_linear.py"
    script.write_text("")
    monkeypatch.setattr(task_process, "run_task", lambda command, *a, **k: seen.append(command) or 0)
    monkeypatch.setattr(launcher.mf, "load_manifest", lambda d: manifest)
    monkeypatch.setattr(launcher.mf, "update_task", lambda *a, **k: None)
    assert launcher.run_eval(str(tmp_path), "python", str(script), eval_protocol="paper") == 0
    assert seen[0][-2:] == ["--eval_protocol", "paper"] or seen[0][4:6] == ["--eval_protocol", "paper"]


def test_3_readme_lists_the_fast_probe():
    text = (REPO / "README.md").read_text()
    start = text.index("## Behaviours of the reference")
    row = next(line for line in text[start:].splitlines() if "fast probe" in line and line.startswith("|"))
    assert "--eval_protocol paper" in row


# --------------------------------------------------------------------------- 4. smaller points
MOMENTUM_CLASSIFIER_SCRIPTS = (  # the original set --momentum_classifier in these
    "cifar/byol",
    "cifar/byol_distill",
    "domainnet/byol",
    "domainnet/byol_distill",
    "domainnet/mocov2plus",
    "domainnet/mocov2plus_distill",
    "imagenet-100/class/byol_distill",
    "imagenet-100/class/mocov2plus_distill",
    "imagenet-100/data/byol",
    "imagenet-100/data/mocov2plus",
    "imagenet-100/data/mocov2plus_distill",
)


def _shipped(name):
    from cassle.continual.plan import parse_script
    from cassle.utils.args import parse_args

    text = (REPO / "bash_files" / "continual" / f"{name}.sh").read_text()
    return text, parse_args(parse_script(text, {"DATA_DIR": "/data", "PRETRAINED_PATH": "p.ckpt"}) + ["--no-wandb"])


@pytest.mark.parametrize("name", MOMENTUM_CLASSIFIER_SCRIPTS)
def test_4_momentum_classifier_where_the_original_set_it(name):
    text, args = _shipped(name)
    assert args.momentum_classifier is True
    assert "no equivalent" not in text


def test_4_big_scripts_validate_as_rarely_as_the_original():
    """The original never validated during ImageNet-100 / DomainNet pretraining (9999; 999 for
    ImageNet-100 class BYOL)."""
    scripts = sorted((REPO / "bash_files" / "continual").glob("domainnet/*.sh"))
    scripts += sorted((REPO / "bash_files" / "continual").glob("imagenet-100/*/*.sh"))
    assert len(scripts) == 42 + 28  # + issue 22's seven methods x (class, data) x (fine-tuning, CaSSLe)
    for path in scripts:
        name = str(path.relative_to(REPO / "bash_files" / "continual"))[:-3]
        _, args = _shipped(name)
        want = 999 if name == "imagenet-100/class/byol" else 9999
        assert args.check_val_every_n_epoch == want > args.max_epochs, name


@pytest.mark.parametrize("capability,bf16", [((7, 0), False), ((8, 0), True), ((9, 0), True)])
def test_4_precision_auto_needs_native_bf16_and_16_is_fp16(monkeypatch, capability, bf16):
    """A V100 (capability 7.0, the reference's GPU) reports bf16 as supported (emulated): auto must
    still train fp32 there, and --precision 16 gives the reference's fp16."""
    import main_continual
    from cassle.eval import run_eval
    from cassle.utils.args import parse_args

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(main_continual, "runs_on_gpu", lambda args: True)
    base = ["--method", "byol", "--dataset", "synthetic", "--accelerator", "gpu", "--devices", "1"]
    auto = parse_args(base)
    assert main_continual.resolve_precision(auto) == ("bf16-mixed" if bf16 else "32-true")
    assert main_continual.resolve_precision(parse_args(base + ["--precision", "16"])) == "16-mixed"
    from types import SimpleNamespace

    assert run_eval._precision(SimpleNamespace(precision="auto")) == ("bf16-mixed" if bf16 else "32")
    assert run_eval._precision(SimpleNamespace(precision="16")) == "16-mixed"


def test_4_readme_says_what_auto_does_without_bf16():
    text = (REPO / "README.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `--precision auto`"))
    assert "fp32 on GPUs without it" in row and "`--precision 16`" in row and "fp16" in row


def test_4_results_md_quotes_no_machine_specific_path():
    text = (REPO / "benchmarks" / "RESULTS.md").read_text()
    assert not re.findall(r"(?:^|[\s`(=\"'])/(?:work|tmp|root|home|mnt|scratch)/", text, flags=re.MULTILINE)


def test_3_results_from_before_the_tag_are_judged_by_their_content(tmp_path):
    import json

    from cassle.continual import launcher

    (tmp_path / "eval").mkdir()
    manifest = {"eval": {"status": "done"}, "tasks": {}}
    old = {"checkpoints": [], "protocol": {"name": "linear-fast", "dataset": "cifar100"}}
    (tmp_path / "eval" / "results.json").write_text(json.dumps(old))
    assert launcher.eval_stale_reason(str(tmp_path), manifest, "fast") is None
    assert "paper asked" in launcher.eval_stale_reason(str(tmp_path), manifest, "paper")


def test_2_folder_test_images_are_resized_bicubic_as_the_references_dali_validation():
    from torchvision.transforms import InterpolationMode, v2

    from cassle.data.transforms import build_eval_transform

    ops = build_eval_transform((0.5,) * 3, (0.25,) * 3, folder=True).transforms
    resize = next(t for t in ops if isinstance(t, v2.Resize))
    assert (resize.size, resize.interpolation) == ([256], InterpolationMode.BICUBIC)
    assert "INTERP_CUBIC" in (REPO / "cassle" / "data" / "dali.py").read_text().split("def build_eval_pipeline")[1]
