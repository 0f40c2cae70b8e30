"""POCON's scripts: the CIFAR-100 script carries the public command's recipe (tests/pocon_scripts.py)
and states every --pocon_* flag with its source in the header; the digits demo runs end to end
through the launcher with --eval (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cassle.continual.plan import get_flag, plan_tasks
from tests.pocon_scripts import POCON_CIFAR, is_pocon
from tests.test_bash_scripts import REPO, SCRIPT_ROOT, SCRIPTS, _args, _argv, _flat, _ids, _setting

POCON_SCRIPTS = [p for p in SCRIPTS if is_pocon(p)]
CIFAR = [p for p in POCON_SCRIPTS if _setting(p) == "cifar"]


def test_pocon_scripts_are_shipped_for_the_grid():
    assert sorted(_ids(POCON_SCRIPTS)) == ["cifar/barlow_pocon.sh", "digits/barlow_pocon.sh"]


@pytest.mark.parametrize("path", CIFAR, ids=_ids(CIFAR))
def test_pocon_cifar_script_is_the_public_command(path: Path):
    a = _args(path)
    opt, lr, cls_lr, wd, sched, epochs, expert, batch, jitter, solar, lamb, scale, retro, adapt, gexp, gret = (
        POCON_CIFAR
    )
    assert (a.optimizer, a.lr, a.classifier_lr, a.weight_decay, a.momentum) == (opt, lr, cls_lr, wd, 0.9)
    assert (a.scheduler, a.max_epochs, a.pocon_expert_epochs, a.batch_size) == (sched, epochs, expert, batch)
    assert [_flat(getattr(a, k))[0] for k in ("brightness", "contrast", "saturation", "hue")] == list(jitter)
    assert _flat(a.solarization_prob) == solar and _flat(a.gaussian_prob) == [0.0] and _flat(a.min_scale) == [0.08]
    assert (a.lamb, a.scale_loss, a.proj_hidden_dim, a.output_dim) == (lamb, scale, 2048, 2048)
    assert (a.pocon_retro_lamb, a.pocon_adapt_lamb, a.pocon_adapt_proj, a.pocon_retro_proj) == (
        retro,
        adapt,
        gexp,
        gret,
    )
    assert a.pocon and a.distiller is None and not a.cl_strategy and a.backbone == "resnet18"


@pytest.mark.parametrize("path", CIFAR, ids=_ids(CIFAR))
def test_pocon_cifar_script_states_every_pocon_flag_with_its_source(path: Path):
    import argparse

    from cassle.strategies.pocon import add_pocon_args

    parser = argparse.ArgumentParser()
    add_pocon_args(parser)
    flags = {o for act in parser._actions for o in act.option_strings if o.startswith("--pocon")}
    argv, text = _argv(path), path.read_text()
    for flag in sorted(flags):
        assert flag in argv, f"{path.name}: {flag} is left to its default; state it"
        value = get_flag(argv, flag)
        said = f"#   {flag}: " if value in (None, True) else f"#   {flag} {value}: "
        assert said in text, f"{path.name}: no source comment for {flag} {value or ''}"


@pytest.mark.parametrize("path", POCON_SCRIPTS, ids=_ids(POCON_SCRIPTS))
def test_every_task_of_the_plan_runs_both_phases(path: Path, tmp_path):
    runs = plan_tasks(_argv(path), None, str(tmp_path))
    assert len(runs) == 5
    for r in runs:
        assert "--pocon" in r.argv and get_flag(r.argv, "--pocon_expert_epochs") is not None


@pytest.mark.slow
def test_pocon_digits_demo_through_the_launcher_with_eval(tmp_path):
    """The 5-task digits demo runs end to end (both phases in every task) and is evaluated."""
    exp = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "DATA_DIR"}
    cmd = [sys.executable, "job_launcher.py", "--script", str(SCRIPT_ROOT / "digits" / "barlow_pocon.sh")]
    cmd += ["--experiment_dir", str(exp), "--eval", "--", "--max_epochs", "2", "--pocon_expert_epochs", "1"]
    cmd += ["--limit_train_batches", "2"]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    manifest = json.loads((exp / "manifest.json").read_text())
    assert all(manifest["tasks"][str(t)]["status"] == "done" for t in range(5))
    assert all(json.loads((exp / f"task{t}" / "args.json").read_text())["pocon"] for t in range(5))
    results = json.loads((exp / "eval" / "results.json").read_text())
    assert results.get("A") is not None
