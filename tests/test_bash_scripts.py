"""Every shipped continual bash script parses, is accepted by main_continual.py, and runs.

Fast checks (all scripts): shebang + comment + executable bit, ``bash -n``, one
``python main_continual.py`` command, argv accepted by ``cassle.utils.args.parse_args``, the paper's
distiller for the method, the dataset / split / number of tasks of the folder, the recipe numbers
of REFERENCE.md section 4, and the model builds (tiny backbone) from the script's own head flags.

Slow smoke runs (``-m "not slow"`` skips them): one CIFAR script through ``job_launcher.py`` on a
fake CIFAR-100 in the numpy layout, and one digits demo end to end, each with a tiny override.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cassle.continual.plan import PlanError, get_flag, parse_script, plan_tasks, split_flags
from cassle.utils.args import parse_args
from tests.pnr_scripts import PNR, PNR_GRID, is_pnr, recipe_of
from tests.pocon_scripts import POCON, POCON_GRID, is_pocon
from tests.script_table_22a import CIFAR_RECIPE_22A, CIFAR_WARMUP_22A, IN100_RECIPE_22, MORE_22A, PAPER_22A

REPO = Path(__file__).resolve().parents[1]
SCRIPT_ROOT = REPO / "bash_files" / "continual"
SCRIPTS = sorted(SCRIPT_ROOT.rglob("*.sh"))
ENV = {"DATA_DIR": "/data"}  # scripts expand $DATA_DIR; nothing is read at parse time

SIX = ("barlow", "byol", "mocov2plus", "simclr", "swav", "vicreg")
# folder -> (method files shipped, --dataset, --split_strategy, --num_tasks)
SETTINGS = {
    "cifar": (SIX, "cifar100", "class", 5),
    "imagenet-100/class": (SIX + ("supcon",), "imagenet100", "class", 5),
    "imagenet-100/data": (SIX + ("supcon",), "imagenet100", "data", 5),
    "domainnet": (SIX + ("supcon",), "domainnet", "domain", 6),
    "digits": (SIX, "digits", "class", 5),
    # the domain-incremental demo (and template for data with domains), and a class-folder template
    "digits-domains": (("barlow",), "custom", "domain", 4),
    "custom": (("barlow",), "custom", "class", 5),
    "shapes": (("simclr",), "custom", "class", 5),  # the README demo (scripts/demo.sh runs both)
    # ViT-S/4 backbones (issue 22; their recipe: tests/test_vit_scripts.py)
    "cifar-vit": (("barlow", "byol", "dino", "mocov3"), "cifar100", "class", 5),
    "imagenet-100-vit": (("dino", "mocov3"), "imagenet100", "class", 5),
}
# Issue 22's DINO, DeepClusterV2 and MoCo v3: CIFAR-100 and the digits demo.
MORE_22B = ("dino", "deepclusterv2", "mocov3")
for _setting_name in ("cifar", "digits", "imagenet-100/class", "imagenet-100/data"):
    SETTINGS[_setting_name] = (SETTINGS[_setting_name][0] + MORE_22B + MORE_22A, *SETTINGS[_setting_name][1:])
# file stem -> (--method, the distiller the paper pairs with it); written here from the paper,
# not imported from cassle.distillers, so a wrong pairing in either place fails.
PAPER = {
    "barlow": ("barlow_twins", "decorrelative"),
    "byol": ("byol", "predictive"),
    "vicreg": ("vicreg", "predictive_mse"),
    "simclr": ("simclr", "contrastive"),
    "mocov2plus": ("mocov2plus", "contrastive"),
    "supcon": ("simclr", "contrastive"),
    "swav": ("swav", "knowledge"),
}
# Beyond the paper: the method's own kind of objective (README, "CaSSLe for more methods").
PAPER.update(
    {
        "dino": ("dino", "knowledge"),
        "deepclusterv2": ("deepclusterv2", "knowledge"),
        "mocov3": ("mocov3", "contrastive"),
    }
)
PAPER.update(PAPER_22A)  # SimSiam, NNCLR, ReSSL, W-MSE (tests/script_table_22a.py)


# Continual-strategy scripts (issue 10): file suffix -> the --cl_strategy values it must set.
STRATEGY_SCRIPTS = {
    s: [s]
    for s in (
        "ewc",
        "replay",
        "der",
        "lump",
        "less_forget",
        "pod",
        "pfr",
        "si",
        "derpp",
        "co2l",
        "cromo_mixup",
        "osiris",
    )
}
ON_CASSLE = {"cromo_mixup"}  # a strategy whose method includes CaSSLe's distiller: based on <method>_distill.sh
STRATEGY_SCRIPTS.update({"pfr_replay": ["pfr", "replay"], "distill_replay": ["replay"]})
# setting -> (method stems, suffixes) of the strategy grid shipped beside fine-tuning and CaSSLe
STRATEGY_GRID = {
    "cifar": (
        ("barlow", "byol", "simclr"),
        ("ewc", "replay", "der", "lump", "less_forget", "pod", "pfr", "si", "derpp", "co2l", "cromo_mixup", "osiris"),
    ),
    "digits": (
        ("barlow",),
        (
            "ewc",
            "replay",
            "der",
            "lump",
            "less_forget",
            "pod",
            "pfr",
            "pfr_replay",
            "distill_replay",
            "si",
            "derpp",
            "co2l",
            "cromo_mixup",
            "osiris",
        ),
    ),
}


def _setting(path: Path) -> str:
    return path.parent.relative_to(SCRIPT_ROOT).as_posix()


def _variant(path: Path) -> str:
    """ "" (fine-tuning), "distill", "pnr" (tests/pnr_scripts.py), or a STRATEGY_SCRIPTS suffix."""
    if is_pnr(path):
        return "pnr"
    if is_pocon(path):  # its recipe: tests/test_scripts_pocon.py
        return "pocon"
    for suffix in sorted(STRATEGY_SCRIPTS, key=len, reverse=True):
        if path.stem.endswith("_" + suffix) and path.stem[: -len(suffix) - 1] in PAPER:
            return suffix
    return "distill" if path.stem.endswith("_distill") else ""


def _stem(path: Path) -> str:
    variant = _variant(path)
    return path.stem[: -len(variant) - 1] if variant else path.stem


def _ids(paths):
    return [p.relative_to(SCRIPT_ROOT).as_posix() for p in paths]


def _argv(path: Path) -> list[str]:
    try:
        return parse_script(path.read_text(), ENV)
    except PlanError as err:
        pytest.fail(f"{path.relative_to(REPO)}: {err}")


def _args(path: Path, *extra: str):
    argv = _argv(path) + list(extra)
    try:
        return parse_args(argv)
    except SystemExit as err:  # argparse's error exit: name the script, not just the flag
        pytest.fail(
            f"{path.relative_to(REPO)}: main_continual.py rejects its arguments (exit {err.code}); "
            f"see the argparse message above"
        )


# --------------------------------------------------------------------------- the set of files
def test_every_expected_script_is_shipped():
    expected = {
        f"{setting}/{stem}{suffix}.sh"
        for setting, (stems, *_r) in SETTINGS.items()
        for stem in stems
        for suffix in ("", "_distill")
    }
    expected |= {
        f"{setting}/{stem}_{suffix}.sh"
        for setting, (stems, suffixes) in STRATEGY_GRID.items()
        for stem in stems
        for suffix in suffixes
    }
    expected |= {f"{setting}/{stem}_pnr.sh" for setting in PNR_GRID for stem in PNR}
    expected |= {f"{setting}/{stem}_pocon.sh" for setting in POCON_GRID for stem in POCON}
    shipped = set(_ids(SCRIPTS))
    assert not expected - shipped, f"missing scripts: {sorted(expected - shipped)}"
    assert not shipped - expected, f"unexpected scripts (add them to SETTINGS): {sorted(shipped - expected)}"


def test_run_names_are_unique():
    names = {}
    for path in SCRIPTS:
        name = get_flag(_argv(path), "--name")
        assert name not in names, f"{path.name} and {names[name]} share --name {name}"
        names[name] = path.relative_to(REPO)


# --------------------------------------------------------------------------- per script, fast
@pytest.mark.parametrize("path", SCRIPTS, ids=_ids(SCRIPTS))
def test_script_form(path: Path):
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0] == "#!/usr/bin/env bash", f"{path.name}: first line must be the shebang"
    assert lines[1].startswith("# ") and len(lines[1]) > 10, f"{path.name}: second line must say what it reproduces"
    assert os.access(path, os.X_OK), f"{path.name} is not executable (chmod +x)"
    res = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, f"{path.name}: bash -n failed: {res.stderr}"
    commands = [ln for ln in lines if "main_continual.py" in ln and not ln.lstrip().startswith("#")]
    assert len(commands) == 1, f"{path.name}: expected one main_continual.py command, found {len(commands)}"
    assert commands[0].split()[:2] == ["python", "main_continual.py"], commands[0]
    flags = [f for f, _ in split_flags(_argv(path))]
    dupes = sorted({f for f in flags if flags.count(f) > 1})
    assert not dupes, f"{path.name}: flags given twice: {dupes}"


@pytest.mark.parametrize("path", SCRIPTS, ids=_ids(SCRIPTS))
def test_script_arguments_match_setting_and_paper(path: Path, tmp_path):
    setting, stem = _setting(path), _stem(path)
    _stems, dataset, split, num_tasks = SETTINGS[setting]
    method, distiller = PAPER[stem]
    args = _args(path)
    assert args.method == method
    assert (args.dataset, args.split_strategy, args.num_tasks) == (dataset, split, num_tasks)
    assert args.task_idx == 0, "scripts start at task 0 (the reference's task_idx 1 start was a bug)"
    assert args.pretrained_model is None and args.resume_from_checkpoint is None
    if method == "simclr":
        assert args.supervised == (stem == "supcon"), f"{path.name}: --supervised only for SupCon"
    variant = _variant(path)
    assert (args.cl_strategy or []) == STRATEGY_SCRIPTS.get(variant, []), f"{path.name}: --cl_strategy"
    if "distill" in variant or variant in ON_CASSLE or variant == "pnr":
        distiller = PNR[stem] if variant == "pnr" else distiller
        assert args.distiller == distiller, f"{path.name}: {method} goes with {distiller} ({variant})"
    else:
        distill_flags = [f for f, _ in split_flags(_argv(path)) if f.startswith("--distill")]
        assert not distill_flags, f"{path.name} is a fine-tuning script but sets {distill_flags}"
    if dataset == "digits":  # the CPU demo needs no data and no environment
        assert parse_script(path.read_text(), {}) == _argv(path)
    else:
        assert args.data_dir == "/data"
        with pytest.raises(PlanError, match="DATA_DIR"):
            parse_script(path.read_text(), {})
    # The launcher's plan: one run per task, no distiller on task 0, the distiller after it.
    runs = plan_tasks(_argv(path), None, str(tmp_path))
    assert [r.task_idx for r in runs] == list(range(num_tasks))
    assert get_flag(runs[0].argv, "--distiller") is None
    if "distill" in variant or variant in ON_CASSLE or variant == "pnr":
        assert all(get_flag(r.argv, "--distiller") == distiller for r in runs[1:])


@pytest.mark.parametrize("path", SCRIPTS, ids=_ids(SCRIPTS))
def test_model_builds_from_script_heads(path: Path):
    """The script's head / distiller flags build a model (tiny backbone for speed)."""
    sys.path.insert(0, str(REPO))
    try:
        from main_continual import build_model
    finally:
        sys.path.pop(0)
    # the ViT scripts' drop path and frozen patch projection have no meaning for the conv net
    args = _args(path, "--backbone", "tiny", "--drop_path_rate", "0", "--no-freeze_patch_embed")
    args.num_classes = {"cifar100": 100, "imagenet100": 100, "domainnet": 345, "digits": 10, "custom": 10}[args.dataset]
    model = build_model(args)
    assert hasattr(model, "projector")


# --------------------------------------------------------------------------- recipes (REFERENCE 4)
# stem -> optimizer, lr, classifier_lr, weight_decay, exclude_bias_n_norm, min_lr, jitter b/c/s/h,
# solarization per view, min_scale
CIFAR_RECIPE = {
    "barlow": ("lars", 0.3, 0.1, 1e-4, True, 0.0, (0.4, 0.4, 0.2, 0.1), [0.0, 0.2], 0.08),
    "byol": ("lars", 1.0, 0.1, 1e-5, True, 0.0, (0.4, 0.4, 0.2, 0.1), [0.0, 0.2], 0.08),
    "simclr": ("lars", 0.4, 0.1, 1e-5, True, 0.0, (0.8, 0.8, 0.8, 0.2), [0.0], 0.08),
    "swav": ("lars", 0.6, 0.1, 1e-6, False, 6e-4, (0.8, 0.8, 0.8, 0.2), [0.0], 0.08),
    "vicreg": ("lars", 0.3, 0.3, 1e-4, True, 0.0, (0.4, 0.4, 0.2, 0.1), [0.1], 0.2),
    "mocov2plus": ("sgd", 0.3, 0.3, 1e-4, False, 0.0, (0.4, 0.4, 0.4, 0.1), [0.0], 0.08),
}
# solo-learn's scripts/pretrain/cifar/{dino,deepclusterv2,mocov3}.yaml
CIFAR_RECIPE.update(
    {
        "dino": ("lars", 0.3, 0.1, 1e-6, True, 0.0, (0.4, 0.4, 0.2, 0.1), [0.0, 0.2], 0.08),
        "deepclusterv2": ("lars", 0.6, 0.1, 1e-6, True, 6e-4, (0.8, 0.8, 0.8, 0.2), [0.0], 0.08),
        "mocov3": ("lars", 0.3, 0.3, 1e-6, True, 0.0, (0.4, 0.4, 0.2, 0.1), [0.0, 0.2], 0.08),
    }
)
CIFAR_WARMUP = {"deepclusterv2": (11, 0.0)}  # (epochs, start lr); the others 10 epochs from 0.003
CIFAR_RECIPE.update(CIFAR_RECIPE_22A)
CIFAR_WARMUP.update(CIFAR_WARMUP_22A)
# stem -> optimizer, scheduler, lr, weight_decay
BIG_RECIPE = {
    "barlow": ("lars", "warmup_cosine", 0.4, 1e-4),
    "byol": ("lars", "warmup_cosine", 0.6, 1e-5),
    "mocov2plus": ("sgd", "cosine", 0.4, 1e-4),
    "simclr": ("lars", "warmup_cosine", 0.4, 1e-4),
    "supcon": ("lars", "warmup_cosine", 0.4, 1e-4),
    "swav": ("lars", "warmup_cosine", 0.8, 1e-6),
    "vicreg": ("lars", "warmup_cosine", 0.4, 1e-4),
}
BIG_RECIPE.update({stem: recipe[:4] for stem, recipe in IN100_RECIPE_22.items()})  # ImageNet-100 only


def _flat(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]


CIFAR_SCRIPTS = [p for p in SCRIPTS if _setting(p) == "cifar" and not is_pocon(p)]  # POCON: its own recipe


@pytest.mark.parametrize("path", CIFAR_SCRIPTS, ids=_ids(CIFAR_SCRIPTS))
def test_cifar_recipe(path: Path):
    opt, lr, cls_lr, wd, excl, min_lr, jitter, solar, min_scale = recipe_of(path, CIFAR_RECIPE[_stem(path)])
    a = _args(path)
    assert (a.optimizer, a.lr, a.classifier_lr, a.weight_decay) == (opt, lr, cls_lr, wd)
    assert (a.exclude_bias_n_norm, a.min_lr) == (excl, min_lr)
    if opt == "lars":
        assert a.eta_lars == 0.02 and a.grad_clip_lars
    warmup = CIFAR_WARMUP.get(_stem(path), (10, 0.003))
    assert (a.scheduler, a.warmup_epochs, a.max_epochs, a.batch_size) == ("warmup_cosine", warmup[0], 500, 256)
    assert a.warmup_start_lr == warmup[1]
    assert [_flat(getattr(a, k))[0] for k in ("brightness", "contrast", "saturation", "hue")] == list(jitter)
    assert _flat(a.solarization_prob) == solar and _flat(a.min_scale) == [min_scale]
    assert _flat(a.gaussian_prob) == [0.0] and _flat(a.crop_size) == [32]
    assert a.backbone == "resnet18" and a.wandb and a.devices == 1


@pytest.mark.parametrize(
    "path",
    [p for p in SCRIPTS if _setting(p) in ("imagenet-100/class", "imagenet-100/data", "domainnet")],
    ids=_ids([p for p in SCRIPTS if _setting(p) in ("imagenet-100/class", "imagenet-100/data", "domainnet")]),
)
def test_imagenet_domainnet_recipe(path: Path):
    stem, a = _stem(path), _args(path)
    opt, scheduler, lr, wd = BIG_RECIPE[stem]
    assert (a.optimizer, a.scheduler, a.lr, a.weight_decay) == (opt, scheduler, lr, wd)
    assert _flat(a.crop_size) == [224] and a.sync_batchnorm and a.strategy == "ddp"
    if a.dataset == "domainnet":
        # the reference's DomainNet BYOL + CaSSLe script used 256 per GPU
        batch = 256 if path.name == "byol_distill.sh" else 64
        assert (a.devices, a.batch_size, a.max_epochs) == (4, batch, 200)
    else:
        assert (a.devices, a.batch_size, a.max_epochs) == (2, 128, 400)
        assert (a.train_dir, a.val_dir) == ("train", "val")
    if stem in ("barlow", "byol"):
        assert _flat(a.gaussian_prob) == [1.0, 0.1] and _flat(a.solarization_prob) == [0.0, 0.2]
    if stem == "mocov2plus":
        assert a.warmup_epochs == 0 and (a.base_tau_momentum, a.final_tau_momentum) == (0.99, 0.999)
    if stem == "byol":
        assert a.pred_hidden_dim == 8192
    if stem == "swav":
        # the reference's DomainNet SwAV fine-tuning script: queue from 50, frozen 3 epochs
        queue = (50, 3) if (a.dataset, path.name) == ("domainnet", "swav.sh") else (100, 5)
        assert (a.epoch_queue_starts, a.freeze_prototypes_epochs, a.min_lr) == (*queue, 6e-4)
    if stem == "vicreg":
        assert _flat(a.min_scale) == [0.2]
    if stem in ("simclr", "supcon"):
        assert a.temperature == (0.1 if stem == "supcon" else 0.2)


# --------------------------------------------------------------------------- smoke runs (slow)
TINY = [
    "--backbone",
    "tiny",
    "--max_epochs",
    "1",
    "--batch_size",
    "16",
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
    "2",
    "--warmup_epochs",
    "0",
    "--accelerator",
    "cpu",
    "--devices",
    "1",
    "--precision",
    "32",
    "--no_progress_bar",
]


def _fake_cifar100(root: Path) -> None:
    """numpy layout of the CIFAR loader: train_*.npz / test.npz with x uint8 (N,32,32,3), y int64."""
    rng = np.random.default_rng(0)
    for name, n in (("train_0", 100), ("train_1", 100), ("test", 100)):
        x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        y = np.arange(n, dtype=np.int64) % 100  # every class in every file: every task has images
        np.savez(root / f"{name}.npz", x=x, y=y)


def _launch(script: Path, exp: Path, extra: list[str], env: dict) -> None:
    cmd = [sys.executable, "job_launcher.py", "--script", str(script), "--experiment_dir", str(exp), "--", *extra]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (
        f"{script.name} through the launcher failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    )


def _final_val_acc(exp: Path, task: int) -> float:
    rows = list(csv.DictReader(open(exp / f"task{task}" / "logs" / "metrics.csv")))
    accs = [float(r["val/acc1"]) for r in rows if r.get("val/acc1")]
    assert accs, f"no val/acc1 logged for task {task}"
    return accs[-1]


@pytest.mark.slow
def test_cifar_script_smoke_through_launcher(tmp_path):
    data = tmp_path / "cifar"
    data.mkdir()
    _fake_cifar100(data)
    # The script says --wandb: wandb runs offline (our default), so this also checks that path
    # without any network access.
    env = {**os.environ, "DATA_DIR": str(data), "WANDB_SILENT": "true"}
    exp = tmp_path / "exp"
    # Two tasks show the sequence (task 0 without the distiller, then with it); every task more
    # is one more interpreter start-up and nothing new.
    _launch(SCRIPT_ROOT / "cifar" / "barlow_distill.sh", exp, TINY + ["--num_tasks", "2"], env)
    for t in range(2):
        assert (exp / f"task{t}" / "last.ckpt").is_file(), f"task {t} left no checkpoint"
        recorded = json.loads((exp / f"task{t}" / "args.json").read_text())
        assert recorded["distiller"] == (None if t == 0 else "decorrelative")
        assert recorded["task_idx"] == t and recorded["dataset"] == "cifar100"
        _final_val_acc(exp, t)


@pytest.mark.slow
def test_digits_demo_end_to_end(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATA_DIR"}  # the demo needs no data directory
    exp = tmp_path / "demo"
    # All five tasks as shipped, one epoch of two batches each (the data transforms dominate a step).
    _launch(SCRIPT_ROOT / "digits" / "byol_distill.sh", exp, ["--max_epochs", "1", "--limit_train_batches", "2"], env)
    for t in range(5):
        assert (exp / f"task{t}" / "last.ckpt").is_file()
    acc = _final_val_acc(exp, 4)
    assert 0.0 <= acc <= 100.0
    shutil.rmtree(exp, ignore_errors=True)


def _strategy_flags() -> set[str]:
    """The flags of the "continual strategies" argument group (--cl_strategy, --buffer_size, ...)."""
    import argparse

    from cassle.strategies import add_strategy_args

    parser = argparse.ArgumentParser()
    add_strategy_args(parser)
    return {o for a in parser._actions for o in a.option_strings if o.startswith("--") and o != "--help"}


@pytest.mark.parametrize(
    "path",
    [p for p in SCRIPTS if _variant(p) in STRATEGY_SCRIPTS],
    ids=_ids([p for p in SCRIPTS if _variant(p) in STRATEGY_SCRIPTS]),
)
def test_strategy_script_is_its_base_script_plus_the_strategy(path: Path):
    """A strategy script = the fine-tuning (or CaSSLe) script of its method + strategy flags, so a
    recipe change in the base script that is not carried over fails here."""
    on_cassle = "distill" in _variant(path) or _variant(path) in ON_CASSLE
    base = path.with_name(f"{_stem(path)}{'_distill' if on_cassle else ''}.sh")
    strategy_flags = (*_strategy_flags(), "--name")
    ours = [(f, v) for f, v in split_flags(_argv(path)) if f not in strategy_flags]
    theirs = [(f, v) for f, v in split_flags(_argv(base)) if f != "--name"]
    assert ours == theirs, f"{path.name} differs from {base.name} beyond the strategy flags"
    assert get_flag(_argv(path), "--name").startswith(get_flag(_argv(base), "--name"))


# Each strategy's own hyperparameter flags (prefixes of the "continual strategies" group): a CIFAR
# strategy script states every one of them explicitly, with its source in the header comment, so no
# strategy runs on an unstated default (a new flag of a strategy fails here until the scripts state it).
STRATEGY_FLAG_PREFIXES = {
    "ewc": ("--ewc_",),
    "replay": ("--buffer_size", "--replay_batch_size"),
    "der": ("--buffer_size", "--replay_batch_size", "--der_"),
    "lump": ("--buffer_size", "--lump_"),
    "less_forget": ("--less_forget_",),
    "pod": ("--pod_",),
    "pfr": ("--pfr_",),
    "si": ("--si_",),
    "derpp": ("--buffer_size", "--replay_batch_size", "--derpp_", "--der_"),
    "co2l": ("--co2l_",),
    "cromo_mixup": ("--buffer_size", "--replay_batch_size", "--cromo_"),
    "osiris": ("--buffer_size", "--replay_batch_size", "--osiris_"),
}
NOT_USED_BY = {"derpp": {"--der_alpha"}}  # DER++ weighs the DER term with --derpp_alpha


@pytest.mark.parametrize(
    "path",
    [p for p in SCRIPTS if _setting(p) == "cifar" and _variant(p) in STRATEGY_SCRIPTS],
    ids=_ids([p for p in SCRIPTS if _setting(p) == "cifar" and _variant(p) in STRATEGY_SCRIPTS]),
)
def test_cifar_strategy_script_states_every_strategy_hyperparameter_with_its_source(path: Path):
    argv, text = _argv(path), path.read_text()
    flags = _strategy_flags()
    for name in STRATEGY_SCRIPTS[_variant(path)]:
        assert set(STRATEGY_FLAG_PREFIXES) >= {name}, f"add {name} to STRATEGY_FLAG_PREFIXES"
        wanted = {f for f in flags if f.startswith(STRATEGY_FLAG_PREFIXES[name])} - NOT_USED_BY.get(name, set())
        for flag in sorted(wanted):
            assert flag in argv, f"{path.name}: {flag} is left to its default; state it"
            value = get_flag(argv, flag)
            assert f"#   {flag} {value}: " in text, f"{path.name}: no source comment for {flag} {value}"
