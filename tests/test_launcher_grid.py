"""job_launcher.py grids: several --script x --seeds in one call, one folder per run, rerun resumes."""

import json
import subprocess
import sys

from tests.test_launcher import FAKE, REPO, SCRIPT


def _launch(tmp_path, *args, **env):
    cmd = [sys.executable, str(REPO / "job_launcher.py"), *args, "--main_script", str(FAKE)]
    base = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("FAKE_", "SLURM_"))}
    base.pop("PRETRAINED_PATH", None)
    env = {**base, "DATA_DIR": str(tmp_path / "data"), "FAKE_CALLS_LOG": str(tmp_path / "calls.jsonl"), **env}
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_grid_of_scripts_and_seeds_runs_each_in_its_folder_and_resumes(tmp_path):
    a, b = tmp_path / "a.sh", tmp_path / "b.sh"
    a.write_text(SCRIPT)
    b.write_text(SCRIPT.replace("--name fake", "--name other"))
    root = tmp_path / "grid"
    args = ["--script", str(a), str(b), "--seeds", "7", "--experiment_dir", str(root)]
    first = _launch(tmp_path, *args, FAKE_FAIL_TASK="1")
    assert first.returncode == 1
    assert "2 run(s) failed; rerun the same command to resume them" in first.stderr
    runs = ["fake-seed7", "other-seed7"]
    assert sorted(p.name for p in root.iterdir()) == runs
    again = _launch(tmp_path, *args, FAKE_FAIL_TASK="1")
    assert again.returncode == 0, again.stderr
    for name in runs:
        manifest = json.loads((root / name / "manifest.json").read_text())
        assert [manifest["tasks"][str(t)]["status"] for t in range(3)] == ["done"] * 3
        seed = "7"
        argv = manifest["argv"]
        assert argv[argv.index("--seed") + 1] == seed and argv[argv.index("--name") + 1] == name
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    # first call: tasks 0, 1 (fails) per run; second: task 1 resumed, task 2 (task 0 skipped)
    assert [c["task_idx"] for c in calls] == [0, 1] * 2 + [1, 2] * 2
    third = _launch(tmp_path, *args)
    assert third.returncode == 0 and third.stdout.count("task 0 skip, task 1 skip, task 2 skip") == 2


def test_grid_plan_names_one_folder_per_script_and_seed(tmp_path):
    from cassle.continual.grid import plan_grid

    a = tmp_path / "a.sh"
    a.write_text(SCRIPT)
    runs = plan_grid([str(a)], [1, 2, 3], ["--max_epochs", "1"], str(tmp_path / "g"), env={"DATA_DIR": "/d"})
    assert [r.experiment_dir for r in runs] == [str(tmp_path / "g" / f"fake-seed{k}") for k in (1, 2, 3)]
    assert runs[1].extra == ["--max_epochs", "1", "--seed", "2", "--name", "fake-seed2"]
    (single,) = plan_grid([str(a)], None, [], None, env={"DATA_DIR": "/d"})
    assert single.experiment_dir.endswith("experiments/fake") and single.extra == []


def test_grid_refuses_clashing_names_before_running(tmp_path):
    a = tmp_path / "a.sh"
    a.write_text(SCRIPT)
    proc = _launch(tmp_path, "--script", str(a), str(a), "--experiment_dir", str(tmp_path / "g"))
    assert proc.returncode == 2 and "would share the run folder" in proc.stderr
    assert not (tmp_path / "g").exists()


def test_grid_on_slurm_is_one_job_per_run(tmp_path):
    a = tmp_path / "a.sh"
    a.write_text(SCRIPT)
    proc = _launch(
        tmp_path,
        "--script",
        str(a),
        "--seeds",
        "1",
        "2",
        "--experiment_dir",
        str(tmp_path / "g"),
        "--mode",
        "slurm",
        "--dry_run",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("#!/bin/bash") + proc.stdout.count("#!/usr/bin/env bash") == 2
    assert f"--experiment_dir {tmp_path / 'g' / 'fake-seed1'}" in proc.stdout
    assert "--seed 2" in proc.stdout
