"""The task loop ends every failure with one clear line and a true record (issue 18, section 4):
an unreadable task checkpoint is set aside (never deleted) and the task restarts; a full disk while
the launcher or a task writes is one line, a "failed" record and no stray temporary file."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from cassle.continual import launcher, task_process
from cassle.continual import manifest as mf
from cassle.continual.progress import read_checkpoint_record
from tests.test_run_folder_trust import Folder

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder(tmp_path, monkeypatch, capsys):
    return Folder(tmp_path, monkeypatch, capsys)


def _tmp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("damage", ["truncated", "not a zip"])
def test_unreadable_task_checkpoint_is_set_aside_and_the_task_restarts(folder, monkeypatch, damage):
    monkeypatch.setenv("FAKE_FAIL_TASK", "1")
    assert folder.launch()[0] == 1
    monkeypatch.delenv("FAKE_FAIL_TASK")
    ckpt = folder.exp / "task1" / "last.ckpt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"garbage" * 10)
    damaged = ckpt.read_bytes()
    rc, out, _ = folder.launch("--dry_run")  # says what it will do, touches nothing
    assert rc == 0 and "cannot be read" in out and ckpt.read_bytes() == damaged
    folder.calls.unlink()
    rc, out, err = folder.launch()
    assert rc == 0, err
    lines = [line for line in out.splitlines() if "cannot be read" in line]
    assert len(lines) == 1 and "task 1" in lines[0] and "restarting task 1 from its start" in lines[0]
    aside = list((folder.exp / "task1").glob("last.ckpt.unreadable-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damaged  # kept, not deleted
    calls = folder.calls_argv()
    assert "--resume_from_checkpoint" not in calls[0]  # task 1 from its start, then task 2
    assert read_checkpoint_record(str(ckpt))["resumed_from_epoch"] is None
    assert [t["status"] for t in folder.manifest()["tasks"].values()] == ["done"] * 3


def _no_space(path):
    return OSError(errno.ENOSPC, "No space left on device", str(path))


def test_disk_full_while_the_launcher_writes_a_task_log(folder, monkeypatch):
    real = task_process.run_task

    def run_task(command, log_path, *args, **kwargs):
        if "task1" in log_path:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            (Path(log_path).parent / ".last.ckpt.x1y2.tmp").write_bytes(b"half")  # a writer's leftover
            raise _no_space(log_path)
        return real(command, log_path, *args, **kwargs)

    monkeypatch.setattr(task_process, "run_task", run_task)
    rc, _, err = folder.launch()
    assert rc == 1, err
    log = folder.exp / "task1" / "train.log"
    expected = (
        f"[launcher] no space left on device while writing {log}; free some space and rerun the same command to resume"
    )
    assert [line for line in err.splitlines() if line.strip()] == [expected]
    task1 = folder.manifest()["tasks"]["1"]
    assert task1["status"] == "failed" and "no space left" in task1["disk_full"]
    assert _tmp_files(folder.exp) == []
    monkeypatch.setattr(task_process, "run_task", real)  # space freed: the rerun finishes
    assert folder.launch()[0] == 0
    assert [t["status"] for t in folder.manifest()["tasks"].values()] == ["done"] * 3


def test_disk_full_while_the_launcher_writes_the_manifest(folder, monkeypatch):
    """The "running" record of task 1 cannot be written: the task never starts, the manifest ends
    "failed" (not "running"), one line."""
    real = mf.save_manifest

    def save_manifest(experiment_dir, manifest):
        if manifest["tasks"].get("1", {}).get("status") == "running":
            raise _no_space(Path(experiment_dir) / "manifest.json")
        real(experiment_dir, manifest)

    monkeypatch.setattr(mf, "save_manifest", save_manifest)
    rc, _, err = folder.launch()
    assert rc == 1 and f"while writing {folder.exp / 'manifest.json'}" in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert [t["status"] for t in folder.manifest()["tasks"].values()] == ["done", "failed", "pending"]


def test_disk_full_reported_by_a_task(folder, tmp_path):
    """A task that ran out of space (main_continual's own line, tested below) stops the sequence
    with that line; its stray temporary file is removed."""
    main = tmp_path / "full_main.py"
    main.write_text(
        "import os, sys\n"
        "d = sys.argv[sys.argv.index('--checkpoint_dir') + 1]\n"
        "os.makedirs(d, exist_ok=True)\n"
        "open(os.path.join(d, 'last.ckpt.tmp'), 'wb').write(b'half')\n"
        "print(f'error: task 0: no space left on device while writing {d}/last.ckpt', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    rc = launcher.main(
        ["--script", str(folder.script), "--experiment_dir", str(folder.exp), "--main_script", str(main)],
        repo_root=str(REPO),
    )
    err = folder.capsys.readouterr().err
    assert rc == 1
    assert err.strip().splitlines()[-1] == (
        f"[launcher] task 0: no space left on device while writing "
        f"{folder.exp / 'task0'}/last.ckpt; free some space and rerun "
        "the same command to resume"
    )
    assert folder.manifest()["tasks"]["0"]["status"] == "failed" and _tmp_files(folder.exp) == []


def test_main_continual_disk_full_while_saving_is_one_line(tmp_path, monkeypatch, capsys):
    import pytorch_lightning as pl

    from main_continual import main as continual_main
    from tests.helpers import tiny_argv

    def save_checkpoint(self, filepath, weights_only=False):
        Path(filepath).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pl.Trainer, "save_checkpoint", save_checkpoint)
    out = tmp_path / "task0"
    assert continual_main(tiny_argv("barlow_twins", "--max_steps", "1", tmp_path=out)) == 1
    err = capsys.readouterr().err
    assert f"error: task 0: no space left on device while writing {out / 'last.ckpt'}" in err
    assert "Traceback" not in err
    assert _tmp_files(out) == [] and not (out / "last.ckpt").exists()
    assert json.loads((out / "args.json").read_text())["task_idx"] == 0
