"""Conformance (issue 20, part 1): every default of main_continual.py and main_linear.py is the
original cassle code's default, or a row of the README's table of differences says why not.

The original's defaults are written out below as facts, each with the original file it comes from
(github.com/DonkeyShot21/cassle; "Lightning 1.5" = the Trainer.add_argparse_args defaults of the
pytorch-lightning version it pinned). Flags the original made required (--dataset, --data_dir,
--optimizer, --task_idx, --split_strategy, --brightness, ...) have no default there and are not
listed. A second test parses two original scripts that rely on defaults.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import main_linear
from cassle.utils.args import build_parser, module_available, parse_args

REPO = Path(__file__).resolve().parents[1]
ARGS, DATASET = "cassle/args/continual.py", "cassle/args/dataset.py"
BASE, MOMENTUM = "cassle/methods/base.py (BaseMethod)", "cassle/methods/base.py (BaseMomentumModel)"
PL15, LINEAR = "Lightning 1.5 Trainer.add_argparse_args", "cassle/methods/linear.py"
TRANSFORMS = "cassle/utils/pretrain_dataloader.py (hard-coded in the transforms)"

# flag -> (the original's default, where it comes from); "*" = every method
ORIGINAL_CONTINUAL = {
    "*": {
        "num_tasks": (2, ARGS),
        "distiller": (None, ARGS),
        "gaussian_prob": (0.5, DATASET),
        "solarization_prob": (0.0, DATASET),
        "min_scale": (0.08, DATASET),
        "num_crops": (2, DATASET),
        "num_small_crops": (0, DATASET),
        "dali": (False, DATASET),
        "dali_device": ("gpu", DATASET),
        "color_jitter_prob": (0.8, TRANSFORMS),
        "gray_scale_prob": (0.2, TRANSFORMS),
        "horizontal_flip_prob": (0.5, TRANSFORMS),
        "max_scale": (1.0, TRANSFORMS),
        "zero_init_residual": (False, BASE),
        "batch_size": (128, BASE),
        "lr": (0.3, BASE),
        "classifier_lr": (0.3, BASE),
        "weight_decay": (1e-4, BASE),
        "num_workers": (4, BASE),
        "lars": (False, BASE),
        "grad_clip_lars": (False, BASE),
        "eta_lars": (1e-3, BASE),
        "exclude_bias_n_norm": (False, BASE),
        "scheduler": ("reduce", BASE),
        "lr_decay_steps": (None, BASE),
        "min_lr": (0.0, BASE),
        "warmup_start_lr": (0.003, BASE),
        "warmup_epochs": (10, BASE),
        "knn_eval": (True, BASE + ": --disable_knn_eval off"),
        "knn_k": (20, BASE),
        "entity": (None, BASE),
        "wandb": (False, BASE),
        "pretrained_model": (None, "cassle/args/setup.py"),
        "max_epochs": (1000, PL15 + " (None, then 1000)"),
        "check_val_every_n_epoch": (1, PL15),
        "log_every_n_steps": (50, PL15),
        "num_sanity_val_steps": (2, PL15),
        "precision": (32, PL15),
        "sync_batchnorm": (False, PL15),
        "num_nodes": (1, PL15),
        "seed": (5, "main_pretrain.py: seed_everything(5)"),
        "distill_proj_hidden_dim": (2048, "cassle/distillers/*.py"),
        "distill_barlow_lamb": (5e-3, "cassle/distillers/decorrelative.py"),
        "distill_scale_loss": (0.1, "cassle/distillers/decorrelative.py"),
    },
    "barlow_twins": {
        "output_dim": (2048, "cassle/methods/barlow_twins.py"),
        "proj_hidden_dim": (2048, "barlow_twins.py"),
        "lamb": (5e-3, "barlow_twins.py"),
        "scale_loss": (0.025, "barlow_twins.py"),
    },
    "byol": {
        "output_dim": (256, "cassle/methods/byol.py"),
        "proj_hidden_dim": (2048, "byol.py"),
        "pred_hidden_dim": (512, "byol.py"),
        "base_tau_momentum": (0.99, MOMENTUM),
        "final_tau_momentum": (1.0, MOMENTUM),
        "momentum_classifier": (False, MOMENTUM),
    },
    "mocov2plus": {
        "output_dim": (128, "cassle/methods/mocov2plus.py"),
        "proj_hidden_dim": (2048, "mocov2plus.py"),
        "temperature": (0.1, "mocov2plus.py"),
        "queue_size": (65536, "mocov2plus.py"),
        "base_tau_momentum": (0.99, MOMENTUM),
        "final_tau_momentum": (1.0, MOMENTUM),
        "momentum_classifier": (False, MOMENTUM),
    },
    "simclr": {
        "output_dim": (128, "cassle/methods/simclr.py"),
        "proj_hidden_dim": (2048, "simclr.py"),
        "temperature": (0.1, "simclr.py"),
        "supervised": (False, "simclr.py"),
    },
    "swav": {
        "output_dim": (128, "cassle/methods/swav.py"),
        "proj_hidden_dim": (2048, "swav.py"),
        "queue_size": (3840, "swav.py"),
        "temperature": (0.1, "swav.py"),
        "num_prototypes": (3000, "swav.py"),
        "sk_epsilon": (0.05, "swav.py"),
        "sk_iters": (3, "swav.py"),
        "freeze_prototypes_epochs": (1, "swav.py"),
        "epoch_queue_starts": (15, "swav.py"),
    },
    "vicreg": {
        "output_dim": (2048, "cassle/methods/vicreg.py"),
        "proj_hidden_dim": (2048, "vicreg.py"),
        "sim_loss_weight": (25.0, "vicreg.py"),
        "var_loss_weight": (25.0, "vicreg.py"),
        "cov_loss_weight": (1.0, "vicreg.py"),
    },
}
# distiller -> (distill_lamb, distill_temperature) of cassle/distillers/<name>.py
ORIGINAL_DISTILLERS = {
    "contrastive": (1.0, 0.2),
    "decorrelative": (1.0, None),
    "knowledge": (1.0, 0.1),
    "predictive": (1.0, None),
    "predictive_mse": (25.0, None),
}
# main_linear.py: cassle/methods/linear.py, cassle/args/setup.py parse_args_linear, Lightning 1.5, main_linear.py
ORIGINAL_LINEAR = {
    "batch_size": (128, LINEAR),
    "lr": (0.3, LINEAR),
    "weight_decay": (1e-4, LINEAR),
    "scheduler": ("reduce", LINEAR),
    "lr_decay_steps": (None, LINEAR),
    "lars": (False, LINEAR),
    "zero_init_residual": (False, LINEAR),
    "exclude_bias_n_norm": (False, LINEAR),
    "entity": (None, LINEAR),
    "wandb": (False, LINEAR),
    "num_workers": (4, LINEAR),
    "num_tasks": (2, "cassle/args/setup.py"),
    "domain": (None, "cassle/args/setup.py"),
    "dali": (False, DATASET),
    "max_epochs": (1000, PL15 + " (None, then 1000)"),
    "precision": (32, PL15),
    "seed": (5, "main_linear.py: seed_everything(5)"),
    "save_checkpoint": (False, "cassle/args/setup.py"),
}

# Defaults that differ on purpose: flag -> words of the README row (table of differences) giving the reason.
LISTED_CONTINUAL = {
    "num_tasks": "`--num_tasks` default 1",
    "knn_eval": "no online kNN monitor",
    "scheduler": "`--scheduler` default `warmup_cosine`",
    "num_sanity_val_steps": "no sanity validation",
    "precision": "`--precision auto`",
}
LISTED_LINEAR = {
    flag: "`main_linear.py` probe defaults"
    for flag in ("batch_size", "lr", "weight_decay", "scheduler", "lr_decay_steps", "max_epochs")
}
LISTED_LINEAR.update(
    {
        flag: "data and hardware flags of `main_linear.py` default to the checkpoint's"
        for flag in ("num_tasks", "seed", "num_workers")
    },
    precision="`--precision auto`",
)


def differences_table() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Behaviours of the reference")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def _same(ours, theirs) -> bool:
    if isinstance(ours, list) and len(ours) == 1:  # per-view flags: one value for both views
        ours = ours[0]
    if isinstance(theirs, float) or isinstance(ours, float):
        return ours is not None and theirs is not None and float(ours) == pytest.approx(float(theirs))
    return ours == theirs


def _check(defaults: dict, original: dict, listed: dict, table: str, where: str) -> list[str]:
    wrong = []
    for flag, (value, source) in original.items():
        if flag not in defaults:
            wrong.append(f"{where}: --{flag} missing (original: {value!r} from {source})")
        elif flag in listed:
            if listed[flag] not in table:
                wrong.append(
                    f"{where}: --{flag} is listed as a difference but the README row {listed[flag]!r} is missing"
                )
        elif not _same(defaults[flag], value):
            wrong.append(f"{where}: --{flag} default {defaults[flag]!r}, original {value!r} ({source})")
    return wrong


@pytest.mark.parametrize("method", [m for m in ORIGINAL_CONTINUAL if m != "*"])
def test_main_continual_defaults_are_the_originals(method):
    argv = ["--method", method]
    defaults = vars(build_parser(argv).parse_args(argv))
    original = {**ORIGINAL_CONTINUAL["*"], **ORIGINAL_CONTINUAL[method]}
    wrong = _check(defaults, original, LISTED_CONTINUAL, differences_table(), f"main_continual.py {method}")
    assert not wrong, "\n".join(wrong)


def test_distiller_defaults_are_the_originals():
    from cassle.distillers import DISTILLERS

    for name, (lamb, temperature) in ORIGINAL_DISTILLERS.items():
        assert DISTILLERS[name].default_lamb == lamb, name
        assert DISTILLERS[name].default_temperature == temperature, name
    argv = ["--method", "byol"]
    defaults = vars(build_parser(argv).parse_args(argv))
    assert defaults["distill_lamb"] is None and defaults["distill_temperature"] is None  # = the distiller's


def test_main_linear_defaults_are_the_originals_or_listed():
    defaults = vars(main_linear.build_parser().parse_args([]))
    wrong = _check(defaults, ORIGINAL_LINEAR, LISTED_LINEAR, differences_table(), "main_linear.py")
    assert not wrong, "\n".join(wrong)


def test_the_listed_rows_name_the_original_value():
    """Each listed difference's README row gives the reference's value it replaces."""
    table = differences_table()
    for phrase, reference in (
        ("`--num_tasks` default 1", "reference: 2"),
        ("`--scheduler` default `warmup_cosine`", "`reduce`"),
        ("no sanity validation", "Lightning 1.5's 2"),
        ("`main_linear.py` probe defaults", "1000 epochs"),
    ):
        row = next(line for line in table.splitlines() if phrase in line)
        assert reference in row, row


# --------------------------------------------------------------------------- original scripts on defaults
# Two scripts of the original repository, flags as there (facts): neither sets blur, SimCLR's output
# dim or the classifier lr; MoCoV2+ uses no LARS and leaves the crop scale and solarization default.
ORIGINAL_IN100_SIMCLR = """python3 main_continual.py --dataset imagenet100 --encoder resnet18 \\
    --data_dir $DATA_DIR --train_dir imagenet-100/train --val_dir imagenet-100/val --split_strategy class \\
    --max_epochs 400 --num_tasks 5 --task_idx 0 --gpus 0,1 --accelerator ddp --sync_batchnorm \\
    --num_workers 5 --precision 16 --optimizer sgd --lars --grad_clip_lars --eta_lars 0.02 \\
    --exclude_bias_n_norm --scheduler warmup_cosine --lr 0.4 --weight_decay 1e-4 --batch_size 128 \\
    --brightness 0.8 --contrast 0.8 --saturation 0.8 --hue 0.2 --dali --check_val_every_n_epoch 9999 \\
    --name simclr-imagenet100-5T --wandb --save_checkpoint --entity unitn-mhug --project ever-learn \\
    --method simclr --temperature 0.2 --proj_hidden_dim 2048
"""
ORIGINAL_DOMAINNET_MOCO = """python3 main_continual.py --dataset domainnet --encoder resnet18 \\
    --data_dir $DATA_DIR/domainnet --split_strategy domain --max_epochs 200 --num_tasks 6 --task_idx 0 \\
    --gpus 0,1,2,3 --accelerator ddp --sync_batchnorm --num_workers 5 --precision 16 --optimizer sgd \\
    --scheduler cosine --lr 0.4 --classifier_lr 0.3 --weight_decay 1e-4 --batch_size 64 \\
    --brightness 0.4 --contrast 0.4 --saturation 0.4 --hue 0.1 --dali --name mocov2plus-domainnet \\
    --project ever-learn --entity unitn-mhug --wandb --save_checkpoint --method mocov2plus \\
    --proj_hidden_dim 2048 --queue_size 65536 --temperature 0.2 --base_tau_momentum 0.99 \\
    --final_tau_momentum 0.999 --momentum_classifier --check_val_every_n_epoch 9999 --disable_knn_eval
"""


def _script_args(text):
    from cassle.continual.plan import parse_script

    argv = parse_script(text, {"DATA_DIR": "/data"})
    return parse_args(argv + ([] if module_available("wandb") else ["--no-wandb"]))


def test_original_scripts_that_rely_on_defaults_resolve_to_the_originals_arguments():
    from cassle.data.args import view_settings

    simclr = _script_args(ORIGINAL_IN100_SIMCLR)
    views = view_settings(simclr, default_crop_size=224)
    assert [v["gaussian_prob"] for v in views] == [0.5, 0.5]  # was [0, 0] before issue 20
    assert [v["solarization_prob"] for v in views] == [0.0, 0.0]
    assert [v["min_scale"] for v in views] == [0.08, 0.08] and [v["max_scale"] for v in views] == [1.0, 1.0]
    assert (simclr.output_dim, simclr.temperature, simclr.classifier_lr) == (128, 0.2, 0.3)  # output was 256
    assert (simclr.eta_lars, simclr.lars, simclr.grad_clip_lars) == (0.02, True, True)
    assert (simclr.batch_size, simclr.devices, simclr.lr, simclr.weight_decay) == (128, [0, 1], 0.4, 1e-4)
    assert (simclr.num_tasks, simclr.check_val_every_n_epoch, simclr.warmup_epochs) == (5, 9999, 10)
    assert (simclr.min_lr, simclr.warmup_start_lr, simclr.seed) == (0.0, 0.003, 5)
    assert simclr.distiller is None and simclr.distill_lamb is None

    moco = _script_args(ORIGINAL_DOMAINNET_MOCO)
    views = view_settings(moco, default_crop_size=224)
    assert [v["gaussian_prob"] for v in views] == [0.5, 0.5]
    assert [v["solarization_prob"] for v in views] == [0.0, 0.0]
    assert (moco.output_dim, moco.queue_size, moco.temperature) == (128, 65536, 0.2)
    assert moco.lars is False and moco.scheduler == "cosine" and moco.eta_lars == pytest.approx(1e-3)
    assert (moco.base_tau_momentum, moco.final_tau_momentum, moco.momentum_classifier) == (0.99, 0.999, True)
    assert moco.num_tasks == 6 and moco.knn_eval is False and moco.classifier_lr == 0.3


def test_shipped_scripts_give_what_the_original_relied_on():
    """The shipped copies of those two scripts resolve to the same values."""
    from cassle.continual.plan import parse_script

    def shipped(path):
        text = (REPO / "bash_files" / "continual" / path).read_text()
        return parse_args(parse_script(text, {"DATA_DIR": "/data"}) + ["--no-wandb"])

    simclr = shipped("imagenet-100/class/simclr.sh")
    assert (simclr.gaussian_prob, simclr.output_dim, simclr.temperature) == ([0.5], 128, 0.2)
    assert simclr.classifier_lr == 0.3
    moco = shipped("domainnet/mocov2plus.sh")
    assert moco.gaussian_prob in ([0.5], [0.5, 0.5]) and moco.output_dim == 128
    assert re.search(
        r"--check_val_every_n_epoch\s+9+\b", (REPO / "bash_files/continual/domainnet/mocov2plus.sh").read_text()
    )


# Per-dataset defaults of the original: --size 224 (ignored for CIFAR, which crops at 32) and, for
# folders, the ImageNet statistics with its std 0.228 (cassle/args/dataset.py --mean/--std for custom,
# cassle/utils/dali_dataloader.py for imagenet100 / domainnet).
ORIGINAL_PER_DATASET = {"cifar100": 32, "imagenet100": 224, "domainnet": 224, "custom": 224}


def test_per_dataset_defaults_are_the_originals(monkeypatch):
    from cassle.data.datasets import dataset_stats

    for dataset in ("imagenet100", "domainnet", "custom"):
        assert dataset_stats(dataset) == ((0.485, 0.456, 0.406), (0.228, 0.224, 0.225)), dataset
    defaults = vars(build_parser(["--method", "byol"]).parse_args(["--method", "byol"]))
    assert defaults["crop_size"] is None  # = the dataset's natural size, below
    from types import SimpleNamespace

    from cassle.data.datamodule import ContinualDataModule

    monkeypatch.setattr(ContinualDataModule, "train_full", property(lambda self: SimpleNamespace(image_size=(32, 32))))
    for dataset, size in ORIGINAL_PER_DATASET.items():  # CIFAR: its 32 px images
        dm = ContinualDataModule.__new__(ContinualDataModule)  # only the rule, no data loaded
        dm.args = SimpleNamespace(dataset=dataset, mean=None, std=None)
        assert dm.default_crop_size == size, dataset
