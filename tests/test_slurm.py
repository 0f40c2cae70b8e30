"""SLURM mode: the generated sbatch file (always) and a real submission (when a cluster answers).

The real test needs a SLURM controller; ``bash scripts/slurm_setup.sh`` (root, Debian) starts a
single-node one on this machine. Without it the test is skipped with the reason.
"""

import json
import shutil
import subprocess
import time

import pytest

from cassle.continual.slurm import SlurmError, SlurmOptions, sbatch_script
from tests.test_launcher import Run


def test_sbatch_script_options():
    opts = SlurmOptions(
        job_name="cassle-x",
        partition="gpu",
        account="acc",
        qos="high",
        num_gpus=2,
        cpus_per_task=8,
        mem="64G",
        time="1-00:00:00",
        nodes=1,
        requeue=True,
    )
    command = ["python", "job_launcher.py", "--experiment_dir", "/e x"]
    text = sbatch_script(opts, command, "/work dir", "/e/slurm-%j.out")
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    for expected in (
        "#SBATCH --job-name=cassle-x",
        "#SBATCH --output=/e/slurm-%j.out",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=2",
        "#SBATCH --gres=gpu:2",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=64G",
        "#SBATCH --time=1-00:00:00",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=acc",
        "#SBATCH --qos=high",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        "cd '/work dir'",
        "exec python job_launcher.py --experiment_dir '/e x'",
    ):
        assert expected in lines, expected
    # CPU job: one task, no gres, nothing that was not asked for
    plain = sbatch_script(SlurmOptions(job_name="j"), ["true"], "/w", "/l")
    assert "#SBATCH --ntasks-per-node=1" in plain
    for absent in ("--gres", "--partition", "--account", "--qos", "--mem", "--time", "--requeue"):
        assert absent not in plain


@pytest.mark.parametrize("kwargs", [{"num_gpus": -1}, {"nodes": 0}, {"cpus_per_task": 0}])
def test_bad_slurm_options(kwargs):
    with pytest.raises(SlurmError):
        SlurmOptions(job_name="j", **kwargs)


def test_slurm_dry_run_passes_devices_and_nodes(tmp_path):
    run = Run(tmp_path)
    run.script.write_text(run.script.read_text().replace("--wandb", "--gpus 0,1 \\\n    --wandb"))
    proc = run.launch("--mode", "slurm", "--num_gpus", "4", "--nodes", "2", "--dry_run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "#SBATCH --gres=gpu:4" in out and "#SBATCH --ntasks-per-node=4" in out and "#SBATCH --nodes=2" in out
    assert f"--experiment_dir {run.exp}" in out and " --srun" in out
    tasks = [line for line in out.splitlines() if line.startswith("#   task ")]
    assert len(tasks) == 3
    for line in tasks:
        assert "srun --kill-on-bad-exit=1" in line and "--devices 4" in line and "--num_nodes 2" in line
        assert "--gpus" not in line  # the reference's --gpus would contradict --devices
    assert not run.exp.exists()


def _cluster_problem():
    if shutil.which("sbatch") is None:
        return "sbatch is not on PATH (start a test cluster with: bash scripts/slurm_setup.sh)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15)
        info = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"the SLURM controller does not answer ({err})"
    if ping.returncode != 0 or "UP" not in ping.stdout:
        return f"the SLURM controller does not answer: {ping.stdout.strip() or ping.stderr.strip()}"
    if not {"idle", "mixed"} & set(info.stdout.split()):
        return f"no SLURM node is idle (sinfo: {info.stdout.split()})"
    return None


def test_real_submission_runs_two_tasks(tmp_path):
    problem = _cluster_problem()
    if problem:
        pytest.skip(problem)
    run = Run(tmp_path)
    proc = run.launch("--mode", "slurm", "--job_name", "cassle-pytest", extra=["--num_tasks", "2"])
    assert proc.returncode == 0, proc.stderr
    assert "submitted SLURM job" in proc.stdout
    job_id = run.manifest()["slurm_jobs"][-1]["job_id"]
    log = run.exp / f"slurm-{job_id}.out"
    assert str(log) in proc.stdout
    try:
        deadline = time.monotonic() + 120
        while True:
            queued = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
            still_queued = queued.stdout.strip() not in ("", "COMPLETED", "FAILED", "CANCELLED")
            if not still_queued:
                break
            assert time.monotonic() < deadline, f"job {job_id} still {queued.stdout.strip()} after 120 s"
            time.sleep(1)
    finally:
        subprocess.run(["scancel", job_id], capture_output=True)
    m = json.loads((run.exp / "manifest.json").read_text())
    assert [m["tasks"][str(t)]["status"] for t in range(2)] == ["done", "done"], log.read_text()
    assert "all tasks done" in log.read_text()
    assert "srun --kill-on-bad-exit=1" in (run.exp / "task1" / "train.log").read_text()
    assert run.ckpt(1)["pretrained"] == str(run.exp / "task0" / "last.ckpt")
    assert run.called_tasks() == [0, 1]
