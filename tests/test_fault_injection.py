"""Fault injection: SIGTERM, SIGINT and SIGKILL to the trainer and, separately, to the launcher, at
four points of a 5-task run with --eval (mid-epoch, during a checkpoint write, between tasks,
during the evaluation). After every kill the same command is launched again.

Checked after every kill: no task is recorded done unless its checkpoint shows the whole schedule.
At the end: the manifest is complete, every task's weights equal those of an uninterrupted run
(the fake's weights digest covers the whole history, so resuming from the wrong state shows), and
the evaluation describes the final checkpoints. tests/fake_main_continual.py stands in for the
trainer (its exit codes are those of main_continual.py, pinned in test_trainer_signals.py);
scripts/fault_injection.py does the same on the real demo.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cassle.continual.progress import read_checkpoint_record, task_complete
from tests.test_launcher import FAKE, REPO

NUM_TASKS, EPOCHS = 5, 2
SCRIPT = f"""python main_continual.py --method barlow_twins --num_tasks {NUM_TASKS} --max_epochs {EPOCHS} \\
    --name chaos --distiller decorrelative --pretrained_model $PRETRAINED_PATH
"""
FAKE_EVAL = """import json, os, signal, sys, time
run = sys.argv[sys.argv.index('--run_dir') + 1]
os.makedirs(os.path.join(run, 'eval'), exist_ok=True)
sys.path.insert(0, os.environ['REPO'])
from cassle.continual.progress import read_checkpoint_record
ckpts = [os.path.join(run, f'task{t}', 'last.ckpt') for t in range(int(os.environ['NUM_TASKS']))]
weights = [read_checkpoint_record(c)['weights'] for c in ckpts]
if os.environ.get('FAKE_EVAL_HANG'):
    with open(os.path.join(run, 'eval', 'hanging.tmp'), 'w') as f:
        f.write(str(os.getpid()))
    os.replace(os.path.join(run, 'eval', 'hanging.tmp'), os.path.join(run, 'eval', 'hanging'))
    time.sleep(3600)
with open(os.path.join(run, 'eval', 'results.json'), 'w') as f:
    json.dump({'checkpoints': ckpts, 'weights': weights}, f)
"""
# (where, the fake's hook, the folder whose "hanging" file marks that the point is reached)
POINTS = [
    ("mid-epoch", {"FAKE_HANG_TASK": "0", "FAKE_HANG_EPOCH": "1"}, "task0"),
    ("checkpoint write", {"FAKE_HANG_WRITE_TASK": "1", "FAKE_HANG_WRITE_EPOCH": "2"}, "task1"),
    ("between tasks", {"FAKE_HANG_START_TASK": "3"}, "task3"),
    ("evaluation", {"FAKE_EVAL_HANG": "1"}, "eval"),
]
TARGETS = [
    (target, sig) for target in ("trainer", "launcher") for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL)
]


def _env(tmp_path, **hooks):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_", "SLURM_"))}
    env.pop("PRETRAINED_PATH", None)
    return {**env, "REPO": str(REPO), "NUM_TASKS": str(NUM_TASKS), **hooks}


def _command(tmp_path, exp):
    return [
        sys.executable,
        str(REPO / "job_launcher.py"),
        "--script",
        str(tmp_path / "chaos.sh"),
        "--experiment_dir",
        str(exp),
        "--main_script",
        str(FAKE),
        "--eval",
        "--eval_script",
        str(tmp_path / "fake_eval.py"),
    ]


def _launch(tmp_path, exp, **hooks):
    """Start the launcher; a folder still locked by a stopping task is retried, as a user would."""
    deadline = time.monotonic() + 30
    while True:
        proc = subprocess.Popen(
            _command(tmp_path, exp),
            cwd=tmp_path,
            env=_env(tmp_path, **hooks),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if hooks:
            return proc
        out, err = proc.communicate(timeout=60)
        if not (proc.returncode == 2 and "in use by another launcher" in err) or time.monotonic() > deadline:
            return proc.returncode, out, err
        time.sleep(0.1)


def _assert_nothing_truncated_is_done(exp):
    manifest = json.loads((exp / "manifest.json").read_text())
    for t, entry in manifest["tasks"].items():
        if entry["status"] == "done":
            done, why = task_complete(str(exp / f"task{t}" / "last.ckpt"), int(t), EPOCHS)
            assert done, f"task {t} is recorded done but {why}"


def _weights(exp):
    return [read_checkpoint_record(str(exp / f"task{t}" / "last.ckpt"))["weights"] for t in range(NUM_TASKS)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("reference")
    (tmp_path / "chaos.sh").write_text(SCRIPT)
    (tmp_path / "fake_eval.py").write_text(FAKE_EVAL)
    rc, out, err = _launch(tmp_path, tmp_path / "exp")
    assert rc == 0, err
    return _weights(tmp_path / "exp")


@pytest.mark.parametrize("target,sig", TARGETS, ids=[f"{t}-{s.name}" for t, s in TARGETS])
def test_kills_at_every_point_then_the_same_command_recovers(tmp_path, reference, target, sig):
    (tmp_path / "chaos.sh").write_text(SCRIPT)
    (tmp_path / "fake_eval.py").write_text(FAKE_EVAL)
    exp = tmp_path / "exp"
    for where, hooks, folder in POINTS:
        while True:  # wait for a free folder (a task stopped by the previous kill may still exit)
            proc = _launch(tmp_path, exp, **hooks)
            marker = exp / folder / "hanging"
            try:
                deadline = time.monotonic() + 30
                while not marker.exists() and proc.poll() is None:
                    assert time.monotonic() < deadline, f"{where}: never reached"
                    time.sleep(0.02)
            except BaseException:
                proc.terminate()  # the launcher passes it on to the hanging task
                proc.communicate(timeout=90)
                raise
            if marker.exists():
                break
            out, err = proc.communicate()
            assert proc.returncode == 2 and "in use by another launcher" in err, err
        victim = int(marker.read_text()) if target == "trainer" else proc.pid
        marker.unlink()
        os.kill(victim, sig)
        _, err = proc.communicate(timeout=90)
        assert proc.returncode != 0, f"{where}: the launcher reported success after a kill"
        _assert_nothing_truncated_is_done(exp)

    rc, out, err = _launch(tmp_path, exp)
    assert rc == 0, err
    manifest = json.loads((exp / "manifest.json").read_text())
    assert all(manifest["tasks"][str(t)]["status"] == "done" for t in range(NUM_TASKS))
    assert manifest["eval"]["status"] == "done"
    _assert_nothing_truncated_is_done(exp)
    assert _weights(exp) == reference
    results_path = exp / "eval" / "results.json"
    results = json.loads(results_path.read_text())
    assert results["weights"] == reference
    assert all(os.stat(c).st_mtime_ns <= os.stat(results_path).st_mtime_ns for c in results["checkpoints"])
