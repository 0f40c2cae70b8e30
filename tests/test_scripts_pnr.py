"""PNR's CIFAR-100 scripts: the pseudo-negative weight and the MoCo queue of PNR's public scripts,
the source named in the header, one script per family (the recipe itself is checked with every
CIFAR script in tests/test_bash_scripts.py, through tests/pnr_scripts.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pnr_scripts import PNR_CIFAR, is_pnr
from tests.test_bash_scripts import SCRIPTS, _args, _ids, _setting, _stem

PNR_SCRIPTS = [p for p in SCRIPTS if _setting(p) == "cifar" and is_pnr(p)]


@pytest.mark.parametrize("path", PNR_SCRIPTS, ids=_ids(PNR_SCRIPTS))
def test_pnr_cifar_script_is_pnrs_public_script(path: Path):
    stem, a = _stem(path), _args(path)
    assert a.pnr_negative_lamb == PNR_CIFAR[stem][1] and "csm9493/PNR" in path.read_text()
    if stem == "mocov2plus":
        assert a.queue_size == 65536 and a.eta_lars == 0.02 and a.grad_clip_lars


def test_every_pnr_family_has_its_cifar_script():
    assert sorted(_stem(p) for p in PNR_SCRIPTS) == sorted(PNR_CIFAR)


@pytest.mark.slow
def test_pnr_digits_demo_through_the_launcher_with_eval(tmp_path):
    """The 5-task digits demo of PNR's queue variant runs end to end and is evaluated (about 2-3 min)."""
    import json
    import os
    import subprocess
    import sys

    from tests.test_bash_scripts import REPO, SCRIPT_ROOT

    exp = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "DATA_DIR"}
    cmd = [
        sys.executable,
        "job_launcher.py",
        "--script",
        str(SCRIPT_ROOT / "digits" / "mocov2plus_pnr.sh"),
        "--experiment_dir",
        str(exp),
        "--eval",
        "--",
        "--max_epochs",
        "1",
        "--limit_train_batches",
        "2",
    ]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert [json.loads((exp / f"task{t}" / "args.json").read_text())["distiller"] for t in range(5)] == [None] + [
        "pnr_moco"
    ] * 4
    results = json.loads((exp / "eval" / "results.json").read_text())
    assert 0.0 <= results["A"] <= 100.0
