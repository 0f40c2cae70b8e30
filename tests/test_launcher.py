"""The real launcher (``python job_launcher.py``) driving tests/fake_main_continual.py.

The fake keeps main_continual.py's contract (args.json, atomic last.ckpt per epoch, exit 0 only on
completion), checks the protocol (task t gets a *completed* task t-1 checkpoint, task 0 gets no
distiller flags) and fails, hangs or skips its checkpoint on request through environment variables.
The launcher is pointed at it with the hidden, test-only ``--main_script`` option.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cassle.continual.progress import read_checkpoint_record

REPO = Path(__file__).resolve().parents[1]
FAKE = REPO / "tests" / "fake_main_continual.py"

SCRIPT = """#!/bin/bash
# a tiny continual run for the launcher tests
python main_continual.py \\
    --method barlow_twins \\
    --data_dir $DATA_DIR \\
    --num_tasks 3 \\
    --max_epochs 2 \\
    --solarization_prob 0.0 0.2 \\
    --name fake \\
    --pretrained_model $PRETRAINED_PATH \\
    --distiller decorrelative \\
    --distill_lamb 1.0 \\
    --wandb
"""


class Run:
    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.script = tmp_path / "fake_distill.sh"
        self.script.write_text(SCRIPT)
        self.exp = tmp_path / "exp"
        self.calls = tmp_path / "calls.jsonl"

    def command(self, *launcher_args, extra=()):
        cmd = [
            sys.executable,
            str(REPO / "job_launcher.py"),
            "--script",
            str(self.script),
            "--experiment_dir",
            str(self.exp),
            "--main_script",
            str(FAKE),
            *launcher_args,
        ]
        return cmd + (["--", *extra] if extra else [])

    def env(self, **fake):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_", "SLURM_"))}
        env.pop("PRETRAINED_PATH", None)
        return {**env, "DATA_DIR": str(self.dir / "data"), "FAKE_CALLS_LOG": str(self.calls), **fake}

    def launch(self, *launcher_args, extra=(), **fake):
        return subprocess.run(
            self.command(*launcher_args, extra=extra),
            cwd=self.dir,
            env=self.env(**fake),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def manifest(self):
        return json.loads((self.exp / "manifest.json").read_text())

    def statuses(self):
        return [self.manifest()["tasks"][str(t)]["status"] for t in range(3)]

    def ckpt(self, t):
        return read_checkpoint_record(str(self.exp / f"task{t}" / "last.ckpt"))

    def called_tasks(self):
        if not self.calls.exists():
            return []
        return [json.loads(line)["task_idx"] for line in self.calls.read_text().splitlines()]


@pytest.fixture
def run(tmp_path):
    return Run(tmp_path)


def assert_complete_and_chained(run):
    m = run.manifest()
    assert run.statuses() == ["done"] * 3
    for t in range(3):
        entry = m["tasks"][str(t)]
        assert entry["returncode"] == 0 and entry["checkpoint"] == str(run.exp / f"task{t}" / "last.ckpt")
        state = run.ckpt(t)
        assert state["task_idx"] == t and state["completed"]
        # each task learnt from the previous task's final checkpoint; task 0 from nothing
        expected = None if t == 0 else str(run.exp / f"task{t - 1}" / "last.ckpt")
        assert state["pretrained"] == expected
        assert state["distiller"] == (None if t == 0 else "decorrelative")


def test_full_sequence(run):
    proc = run.launch()
    assert proc.returncode == 0, proc.stderr
    assert_complete_and_chained(run)
    assert run.called_tasks() == [0, 1, 2]
    m = run.manifest()
    assert m["name"] == "fake" and m["script"] == str(run.script)
    assert m["argv"][m["argv"].index("--data_dir") + 1] == str(run.dir / "data")
    # the trainer's full output is in the per-task log, the console shows its progress lines only
    assert "fake task 1: epoch 2 saved" in (run.exp / "task1" / "train.log").read_text()
    assert "fake task 1: epoch 2 saved" not in proc.stdout
    assert "[cassle] task 1 | epoch 2/2 | ssl_loss 0.5" in proc.stdout
    assert "--distiller" not in proc.stdout  # the full command lines stay in the logs
    # command.sh reruns exactly this experiment (and then skips everything)
    command_sh = (run.exp / "command.sh").read_text()
    assert f"--experiment_dir {run.exp}" in command_sh and "DATA_DIR=" in command_sh
    args = json.loads((run.exp / "args.json").read_text())
    assert args["args"]["solarization_prob"] == ["0.0", "0.2"] and args["args"]["wandb"] is True
    rerun = subprocess.run(
        ["bash", str(run.exp / "command.sh")], env=run.env(), capture_output=True, text=True, timeout=60
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "task 0 skip, task 1 skip, task 2 skip" in rerun.stdout
    assert run.called_tasks() == [0, 1, 2]  # nothing ran again


def test_failing_task_stops_the_sequence_then_rerun_resumes(run):
    proc = run.launch(FAKE_FAIL_TASK="1")
    assert proc.returncode != 0
    log = run.exp / "task1" / "train.log"
    assert f"task 1 failed with exit code 3; see {log}; rerun the same command to resume" in proc.stderr
    assert run.statuses() == ["done", "failed", "pending"]
    assert run.manifest()["tasks"]["1"]["returncode"] == 3
    assert run.called_tasks() == [0, 1]  # task 2 never started from the failed task
    assert not (run.exp / "task2").exists()

    # the same command again: task 0 skipped, task 1 resumed from its epoch-1 checkpoint
    proc = run.launch(FAKE_FAIL_TASK="1")
    assert proc.returncode == 0, proc.stderr
    assert run.called_tasks() == [0, 1, 1, 2]
    assert run.ckpt(1)["resumed_from_epoch"] == 1 and run.ckpt(2)["resumed_from_epoch"] is None
    assert_complete_and_chained(run)


def test_exit_zero_without_checkpoint_is_a_failure(run):
    proc = run.launch(FAKE_NO_CKPT_TASK="0")
    assert proc.returncode != 0
    assert "task 0 exited 0 but wrote no" in proc.stderr
    assert run.statuses() == ["failed", "pending", "pending"]
    assert run.called_tasks() == [0]


def test_killed_launcher_then_same_command_completes(run):
    env = run.env(FAKE_HANG_TASK="1")
    proc = subprocess.Popen(
        run.command(),
        cwd=run.dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        hanging = run.exp / "task1" / "hanging"
        deadline = time.monotonic() + 30
        while not hanging.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the fake task 1 never reached epoch 1"
            time.sleep(0.05)
        # a second launcher on the same folder is refused while the first holds it
        second = run.launch()
        assert second.returncode == 2 and "in use by another launcher" in second.stderr
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # launcher and trainer, no chance to clean up
        proc.wait(timeout=10)
    assert run.statuses() == ["done", "running", "pending"]

    done = run.launch(FAKE_HANG_TASK="1")
    assert done.returncode == 0, done.stderr
    assert "task 0 skip, task 1 resume, task 2 run" in done.stdout
    assert run.ckpt(1)["resumed_from_epoch"] == 1
    assert run.called_tasks() == [0, 1, 1, 2]
    assert_complete_and_chained(run)


def test_changed_arguments_are_refused_unless_forced(run):
    assert run.launch().returncode == 0
    proc = run.launch(extra=["--max_epochs", "5"])
    assert proc.returncode == 2
    assert "started with other arguments" in proc.stderr and "--max_epochs: 2 -> 5" in proc.stderr
    # --data_dir may move between a run and its resume
    moved = subprocess.run(
        run.command(),
        cwd=run.dir,
        env={**run.env(), "DATA_DIR": "/elsewhere"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert moved.returncode == 0, moved.stderr
    forced = run.launch("--force", extra=["--max_epochs", "5"])
    assert forced.returncode == 0, forced.stderr
    assert run.manifest()["argv"][run.manifest()["argv"].index("--max_epochs") + 1] == "5"


def test_resume_from_experiment_dir_alone(run):
    assert run.launch(FAKE_FAIL_TASK="2").returncode != 0
    proc = subprocess.run(
        [sys.executable, str(REPO / "job_launcher.py"), "--experiment_dir", str(run.exp), "--main_script", str(FAKE)],
        cwd=run.dir,
        env=run.env(FAKE_FAIL_TASK="2"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert run.called_tasks() == [0, 1, 2, 2]
    assert_complete_and_chained(run)


def test_extra_args_override_the_script(run):
    proc = run.launch(extra=["--max_epochs", "1", "--limit_train_batches", "2"])
    assert proc.returncode == 0, proc.stderr
    for t in range(3):
        args = json.loads((run.exp / f"task{t}" / "args.json").read_text())
        assert args["max_epochs"] == 1 and args["argv"].count("--max_epochs") == 1
        assert "--limit_train_batches" in args["unknown"]
    assert run.ckpt(2)["epoch"] == 1


def test_eval_after_the_last_task(run):
    evaluator = run.dir / "fake_linear.py"
    evaluator.write_text(
        "import pathlib, sys\nassert sys.argv[1] == '--run_dir'\n"
        "pathlib.Path(sys.argv[2], 'evaluated').write_text('ok')\n"
    )
    proc = run.launch("--eval", "--eval_script", str(evaluator))
    assert proc.returncode == 0, proc.stderr
    assert (run.exp / "evaluated").read_text() == "ok"
    assert run.manifest()["eval"]["status"] == "done"
    # a missing main_linear.py is skipped with a message, not an error
    missing = run.launch("--eval", "--eval_script", str(run.dir / "main_linear.py"))
    assert missing.returncode == 0 and "does not exist (yet); skipping the evaluation" in missing.stdout


@pytest.mark.parametrize(
    "args, match",
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--num_gpus", "2"], "--num_gpus is a SLURM option; add --mode slurm"),
        (["--mode", "cluster"], "invalid choice: 'cluster'"),
    ],
)
def test_bad_launcher_flags(run, args, match):
    proc = run.launch(*args)
    assert proc.returncode == 2 and match in proc.stderr
    assert not run.exp.exists()


def test_bad_script_and_env_fail_before_writing(run):
    env = run.env()
    del env["DATA_DIR"]
    proc = subprocess.run(run.command(), cwd=run.dir, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "DATA_DIR is not set" in proc.stderr
    proc = run.launch(extra=["--task_idx", "1"])  # starting at task 1 without PRETRAINED_PATH
    assert proc.returncode == 2 and "PRETRAINED_PATH" in proc.stderr
    assert not run.exp.exists()


def test_dry_run_prints_commands_and_writes_nothing(run):
    proc = run.launch("--dry_run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("# task ") == 3
    assert f"--pretrained_model {run.exp / 'task1' / 'last.ckpt'}" in proc.stdout
    assert not run.exp.exists() and run.called_tasks() == []


def test_sigterm_stops_the_task_and_is_recorded(run):
    """What scancel / preemption does: the launcher passes SIGTERM on and records the stop."""
    proc = subprocess.Popen(
        run.command(),
        cwd=run.dir,
        env=run.env(FAKE_HANG_TASK="0"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        hanging = run.exp / "task0" / "hanging"
        deadline = time.monotonic() + 30
        while not hanging.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        trainer_pid = int(hanging.read_text())
        proc.send_signal(signal.SIGTERM)  # the launcher only
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "interrupted by SIGTERM during task 0" in stderr
    with pytest.raises(ProcessLookupError):
        os.kill(trainer_pid, 0)  # the trainer was stopped too, not orphaned
    entry = run.manifest()["tasks"]["0"]
    assert entry["status"] == "failed" and entry["returncode"] == -signal.SIGTERM and entry["interrupted"]

    done = run.launch(FAKE_HANG_TASK="0")
    assert done.returncode == 0, done.stderr
    assert "interrupted" not in run.manifest()["tasks"]["0"]
    assert run.ckpt(0)["resumed_from_epoch"] == 1
    assert_complete_and_chained(run)


def test_default_experiment_dir_is_dated_under_experiments(run):
    proc = subprocess.run(
        [sys.executable, str(REPO / "job_launcher.py"), "--script", str(run.script), "--main_script", str(FAKE)],
        cwd=run.dir,
        env=run.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    (folder,) = (run.dir / "experiments").iterdir()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-fake", folder.name)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [manifest["tasks"][str(t)]["status"] for t in range(3)] == ["done"] * 3
    assert f"--experiment_dir {folder}" in (folder / "command.sh").read_text()


def test_pretrained_path_from_environment_when_the_script_omits_it(tmp_path):
    """The reference workflow with a script that never mentions $PRETRAINED_PATH."""
    script = tmp_path / "plain.sh"
    script.write_text(
        "python main_continual.py \\\n    --method byol \\\n    --num_tasks 3 \\\n"
        "    --name plain \\\n    --distiller predictive\n"
    )
    ckpt = tmp_path / "ft" / "task0" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    env = {k: v for k, v in os.environ.items() if k != "PRETRAINED_PATH"}
    cmd = [
        sys.executable,
        str(REPO / "job_launcher.py"),
        "--script",
        str(script),
        "--experiment_dir",
        str(tmp_path / "exp"),
        "--dry_run",
        "--",
        "--task_idx",
        "1",
    ]
    # (timeouts: the launcher imports main_continual's parser, hence torch, to validate arguments)
    missing = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert missing.returncode != 0 and "set PRETRAINED_PATH" in missing.stderr
    given = subprocess.run(cmd, env={**env, "PRETRAINED_PATH": str(ckpt)}, capture_output=True, text=True, timeout=300)
    assert given.returncode == 0, given.stderr
    task1 = [line for line in given.stdout.splitlines() if "--task_idx 1" in line]
    assert task1 and f"--pretrained_model {ckpt}" in task1[0] and "--distiller predictive" in task1[0]
