"""A task loop that never lies: done-ness, PRETRAINED_PATH, eval staleness, command.sh, exports.

Driven through the real launcher with tests/fake_main_continual.py (see tests/test_launcher.py).
"""

import json
import os
import shlex
import subprocess
import sys

import pytest

from cassle.continual.plan import parse_script, script_exports
from cassle.continual.progress import progress_record, read_progress, task_complete
from cassle.continual.slurm import SlurmOptions, log_pattern, sbatch_script
from tests.test_launcher import FAKE, REPO, Run, assert_complete_and_chained

FAKE_EVAL = """import json, os, sys
run = sys.argv[sys.argv.index('--run_dir') + 1]
ckpts = sorted(os.path.join(run, d, 'last.ckpt') for d in os.listdir(run) if d.startswith('task'))
os.makedirs(os.path.join(run, 'eval'), exist_ok=True)
with open(os.path.join(run, 'eval', 'calls'), 'a') as f:
    f.write('x')
with open(os.path.join(run, 'eval', 'results.json'), 'w') as f:
    json.dump({'checkpoints': ckpts}, f)
print('[eval] A = 1.00')
"""


@pytest.fixture
def run(tmp_path):
    return Run(tmp_path)


def test_exit_zero_with_a_truncated_checkpoint_is_not_done(run):
    """What Lightning did on SIGTERM: exit 0 after saving epoch 1 of 2. Never recorded done."""
    proc = run.launch(FAKE_EXIT0_TASK="1")
    assert proc.returncode == 1
    assert "task 1 exited 0 but its checkpoint shows 1 of 2 epochs" in proc.stderr
    assert run.statuses() == ["done", "failed", "pending"]
    assert "1 of 2 epochs" in run.manifest()["tasks"]["1"]["truncated"]
    assert run.called_tasks() == [0, 1]  # task 2 never distils from the truncated task 1
    # the last lines of the task's output are on the console, the rest stays in train.log
    assert "last lines of" in proc.stderr and "fake task 1: epoch 1 saved" in proc.stderr

    again = run.launch()
    assert again.returncode == 0, again.stderr
    assert run.ckpt(1)["resumed_from_epoch"] == 1
    assert_complete_and_chained(run)


def test_a_done_task_whose_checkpoint_is_truncated_is_resumed(run):
    """A manifest that says "done" for a truncated checkpoint (written by an older launcher)."""
    assert run.launch(FAKE_EXIT0_TASK="1").returncode == 1
    m = run.manifest()
    m["tasks"]["1"]["status"] = "done"
    (run.exp / "manifest.json").write_text(json.dumps(m))
    proc = run.launch()
    assert proc.returncode == 0, proc.stderr
    assert "task 1 (2/3): resuming from" in proc.stdout and "recorded done, but" in proc.stdout
    assert_complete_and_chained(run)


def test_task_complete_rules(tmp_path):
    import pickle
    import zipfile

    path = tmp_path / "last.ckpt"

    def write(record):
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", pickle.dumps(record))

    write({"cassle_progress": progress_record(2, 10, 10, 90, -1)})
    assert task_complete(str(path), 2, 10, None) == (True, "10/10 epochs")
    assert task_complete(str(path), 2) == (True, "10/10 epochs")  # plan from the record
    assert not task_complete(str(path), 3, 10)[0]  # another task's checkpoint
    assert "max_epochs 10, the plan says 20" in task_complete(str(path), 2, 20)[1]
    write({"cassle_progress": progress_record(2, 3, 10, 27, -1)})
    assert task_complete(str(path), 2, 10) == (False, "its checkpoint shows 3 of 10 epochs (step 27)")
    write({"cassle_progress": progress_record(2, 1, 10, 5, 5)})  # --max_steps 5 reached mid-epoch
    assert task_complete(str(path), 2, 10, 5) == (True, "5/5 steps")
    write({"epoch": 9, "global_step": 90})  # an older checkpoint: Lightning's own fields
    assert read_progress(str(path)) == {"epochs_done": 9, "global_step": 90}
    assert not task_complete(str(path), 2, 10)[0]
    path.write_bytes(b"not a checkpoint")
    assert "cannot read checkpoint" in task_complete(str(path), 2, 10)[1]


def test_pretrained_path_is_refused_for_a_run_starting_at_task_zero(run, tmp_path):
    leftover = tmp_path / "other" / "last.ckpt"
    leftover.parent.mkdir()
    leftover.write_bytes(b"x")
    proc = subprocess.run(
        run.command(),
        cwd=run.dir,
        env={**run.env(), "PRETRAINED_PATH": str(leftover)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "PRETRAINED_PATH" in proc.stderr and "starts at task 0, which trains from scratch" in proc.stderr
    assert not run.exp.exists() and run.called_tasks() == []


def _fine_tuned_task0(run, tmp_path):
    """A finished fake task 0 of another run (what PRETRAINED_PATH names in the reference workflow)."""
    (tmp_path / "ft").mkdir()
    other = Run(tmp_path / "ft")
    assert other.launch(extra=["--num_tasks", "1"]).returncode == 0
    return other.exp / "task0" / "last.ckpt"


def test_command_sh_reruns_a_run_that_started_from_pretrained_path(run, tmp_path):
    pretrained = _fine_tuned_task0(run, tmp_path)
    env = {**run.env(), "PRETRAINED_PATH": str(pretrained)}
    proc = subprocess.run(
        run.command(extra=["--task_idx", "1"]), cwd=run.dir, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert f"PRETRAINED_PATH={pretrained}" in (run.exp / "command.sh").read_text()
    # the printed resume command works from a shell that never set PRETRAINED_PATH
    rerun = subprocess.run(
        ["bash", str(run.exp / "command.sh")], env=run.env(), capture_output=True, text=True, timeout=60
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "task 1 skip, task 2 skip" in rerun.stdout


def _eval_calls(run):
    calls = run.exp / "eval" / "calls"
    return len(calls.read_text()) if calls.exists() else 0


def test_eval_is_redone_whenever_results_do_not_describe_the_checkpoints(run):
    evaluator = run.dir / "fake_linear.py"
    evaluator.write_text(FAKE_EVAL)
    launch = lambda *a, **kw: run.launch("--eval", "--eval_script", str(evaluator), *a, **kw)  # noqa: E731
    first = launch()
    assert first.returncode == 0, first.stderr
    assert _eval_calls(run) == 1 and run.manifest()["eval"]["status"] == "done"
    assert "[eval] A = 1.00" in first.stdout  # the evaluation's result reaches the console

    assert launch().returncode == 0 and _eval_calls(run) == 1  # current: not redone
    (run.exp / "eval" / "results.json").unlink()
    out = launch()
    assert out.returncode == 0 and _eval_calls(run) == 2 and "results.json is missing" in out.stdout
    ckpt = run.exp / "task2" / "last.ckpt"
    later = os.stat(run.exp / "eval" / "results.json").st_mtime_ns + 10**9
    os.utime(ckpt, ns=(later, later))  # a checkpoint newer than the results
    out = launch()
    assert _eval_calls(run) == 3 and "newer than the results" in out.stdout
    assert launch("--reeval").returncode == 0 and _eval_calls(run) == 4
    # a rerun task (here: its folder removed) makes the evaluation run again
    m = run.manifest()
    m["tasks"]["2"]["status"] = "failed"
    (run.exp / "manifest.json").write_text(json.dumps(m))
    assert launch().returncode == 0 and _eval_calls(run) == 5
    # --reeval is not baked into command.sh
    assert "--reeval" not in (run.exp / "command.sh").read_text()


EXPORT_SCRIPT = """#!/bin/bash
export FAKE_EXPORTED=from-script
OMP_NUM_THREADS=3
SHELL_ONLY=not-exported
LATER=yes
export LATER
python main_continual.py --num_tasks 2 --max_epochs 1 --name exports --data_dir $SHELL_ONLY
"""


def test_script_exports_follow_bash():
    env = {"OMP_NUM_THREADS": "1", "HOME": "/h"}
    assert script_exports(EXPORT_SCRIPT, env) == {
        "FAKE_EXPORTED": "from-script",
        "LATER": "yes",
        "OMP_NUM_THREADS": "3",
    }
    assert "not-exported" in parse_script(EXPORT_SCRIPT, env)  # still expanded in the command
    assert script_exports(EXPORT_SCRIPT, {}) == {"FAKE_EXPORTED": "from-script", "LATER": "yes"}


def test_exported_variables_reach_every_task_also_on_resume_and_slurm(run):
    run.script.write_text(EXPORT_SCRIPT)
    names = "FAKE_EXPORTED,OMP_NUM_THREADS,SHELL_ONLY,LATER"
    env = {**run.env(FAKE_ENV_LOG=names, FAKE_FAIL_TASK="1"), "OMP_NUM_THREADS": "1"}
    env.pop("SHELL_ONLY", None)
    proc = subprocess.run(run.command(), cwd=run.dir, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    expected = {"FAKE_EXPORTED": "from-script", "OMP_NUM_THREADS": "3", "SHELL_ONLY": None, "LATER": "yes"}
    assert json.loads((run.exp / "task0" / "args.json").read_text())["env"] == expected
    # resumed from the folder alone (what the SLURM job does): the exports come from the manifest
    env.pop("FAKE_FAIL_TASK")
    resumed = subprocess.run(
        [sys.executable, str(REPO / "job_launcher.py"), "--experiment_dir", str(run.exp), "--main_script", str(FAKE)],
        cwd=run.dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run.exp / "task1" / "args.json").read_text())["env"] == expected
    sbatch = subprocess.run(
        run.command("--mode", "slurm", "--dry_run"), cwd=run.dir, env=env, capture_output=True, text=True, timeout=60
    ).stdout
    assert "export FAKE_EXPORTED=from-script" in sbatch and "export OMP_NUM_THREADS=3" in sbatch
    assert "SHELL_ONLY" not in sbatch


def _sbatch_values(text: str) -> dict:
    """Read #SBATCH lines back the way sbatch does (whitespace splits, quotes group, \\ escapes)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#SBATCH "):
            (word,) = shlex.split(line[len("#SBATCH ") :])
            key, _, value = word.partition("=")
            out[key] = value
    return out


def test_sbatch_values_with_spaces_and_quotes_stay_one_value(tmp_path):
    folder = str(tmp_path / "my runs" / 'a "quoted" 100%')
    text = sbatch_script(
        SlurmOptions(job_name="cassle-my run", partition="gpu", time="1:00:00"),
        ["python", "job_launcher.py"],
        str(tmp_path),
        log_pattern(folder),
    )
    values = _sbatch_values(text)
    assert values["--job-name"] == "cassle-my run"
    assert values["--output"] == folder.replace("%", "%%") + "/slurm-%j.out"
    assert values["--partition"] == "gpu" and "#SBATCH --partition=gpu" in text  # plain values stay bare
    with pytest.raises(Exception, match="line break"):
        sbatch_script(SlurmOptions(job_name="a\nb"), ["x"], "/", "/o")
