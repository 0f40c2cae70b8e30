"""A run folder is data, not a program (issue 18, section 2): what a resume from ``manifest.json``
may take, the names written into command.sh / the sbatch file, symlinked outputs, grid names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cassle.continual import launcher
from cassle.continual.grid import plan_grid
from cassle.continual.plan import PlanError
from cassle.continual.slurm import SlurmError, SlurmOptions, sbatch_script
from tests.test_launcher import FAKE, SCRIPT

REPO = Path(__file__).resolve().parents[1]


class Folder:
    def __init__(self, tmp_path, monkeypatch, capsys):
        self.dir, self.capsys = tmp_path, capsys
        self.script = tmp_path / "fake.sh"
        self.script.write_text(SCRIPT)
        self.exp = tmp_path / "exp"
        self.calls = tmp_path / "calls.jsonl"
        monkeypatch.delenv("PRETRAINED_PATH", raising=False)
        monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("FAKE_CALLS_LOG", str(self.calls))
        monkeypatch.chdir(tmp_path)

    def launch(self, *args, script=True, extra=()):
        argv = [
            *(["--script", str(self.script)] if script else []),
            "--experiment_dir",
            str(self.exp),
            "--main_script",
            str(FAKE),
            *args,
            *(["--", *extra] if extra else []),
        ]
        rc = launcher.main(argv, repo_root=str(REPO))
        out = self.capsys.readouterr()
        return rc, out.out, out.err

    def manifest(self) -> dict:
        return json.loads((self.exp / "manifest.json").read_text())

    def edit_manifest(self, **changes):
        m = self.manifest()
        m.update(changes)
        (self.exp / "manifest.json").write_text(json.dumps(m))

    def calls_argv(self) -> list[list[str]]:
        return [json.loads(line)["argv"] for line in self.calls.read_text().splitlines()]


@pytest.fixture
def folder(tmp_path, monkeypatch, capsys):
    return Folder(tmp_path, monkeypatch, capsys)


def _half_done(folder, monkeypatch):
    """Task 0 done, task 1 failed: a resume has tasks to run."""
    monkeypatch.setenv("FAKE_FAIL_TASK", "1")
    assert folder.launch()[0] == 1
    monkeypatch.delenv("FAKE_FAIL_TASK")
    folder.calls.unlink()


def test_manifest_cannot_turn_on_trust_checkpoint_or_a_loader_variable(folder, monkeypatch, tmp_path):
    _half_done(folder, monkeypatch)
    evil = tmp_path / "evil_site"
    evil.mkdir()
    marker = tmp_path / "PWNED"
    (evil / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    m = folder.manifest()
    folder.edit_manifest(
        argv=m["argv"] + ["--trust_checkpoint"], env={"PYTHONPATH": str(evil), "LD_PRELOAD": "/x.so", "SEEN": "yes"}
    )
    monkeypatch.setenv("FAKE_ENV_LOG", "SEEN,LD_PRELOAD")
    # given again on this command line, it applies (and nothing is said about it)
    rc, out, _ = folder.launch("--dry_run", script=False, extra=["--trust_checkpoint"])
    assert rc == 0 and "--trust_checkpoint" in out.split("# task 1")[1] and "not applied: flags" not in out
    rc, out, _ = folder.launch(script=False)
    assert rc == 0
    assert all("--trust_checkpoint" not in argv for argv in folder.calls_argv())
    assert not marker.exists()
    task_env = json.loads((folder.exp / "task2" / "args.json").read_text())["env"]
    assert task_env == {"SEEN": "yes", "LD_PRELOAD": None}
    assert "records --trust_checkpoint, which is not applied: flags" in out
    assert "LD_PRELOAD, PYTHONPATH, not applied" in out
    assert "environment SEEN=yes" in out  # what is applied is printed with the plan


def test_manifest_variable_name_that_is_shell_code_is_refused(folder, monkeypatch):
    _half_done(folder, monkeypatch)
    folder.edit_manifest(env={"X=1;touch pwned;Y": "1"})
    for mode in ([], ["--mode", "slurm", "--dry_run"]):
        rc, _, err = folder.launch(*mode, script=False)
        assert rc == 2 and "manifest.json" in err and "is not a shell variable name" in err
    assert not folder.calls.exists() and not (folder.dir / "pwned").exists()


def test_sbatch_and_command_sh_check_names_and_quote_values():
    with pytest.raises(SlurmError, match="not a shell variable name"):
        sbatch_script(SlurmOptions("j", env={"X=1;touch pwned;Y": "1"}), ["true"], "/w", "/w/log")
    text = sbatch_script(SlurmOptions("j", env={"DATA_DIR": "/d $(touch pwned)"}), ["true"], "/w", "/w/log")
    assert "export DATA_DIR='/d $(touch pwned)'" in text


def test_symlinked_output_folders_are_refused(folder, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder.exp.mkdir()
    (folder.exp / "eval").symlink_to(elsewhere)
    rc, _, err = folder.launch("--eval")
    assert rc == 2 and "eval is a symbolic link" in err
    (folder.exp / "eval").unlink()
    (folder.exp / "task1").symlink_to(elsewhere)
    rc, _, err = folder.launch()
    assert rc == 2 and "task1 is a symbolic link" in err
    assert list(elsewhere.iterdir()) == [] and not (folder.exp / "manifest.json").exists()


@pytest.mark.parametrize("name", ["..", ".", "a/b"])
def test_grid_name_that_is_not_a_plain_folder_name_is_refused(tmp_path, name):
    script = tmp_path / "s.sh"
    script.write_text(SCRIPT.replace("--name fake", f"--name {name}"))
    with pytest.raises(PlanError, match="cannot name a run folder"):
        plan_grid([str(script)], None, [], str(tmp_path / "grid"), env={"DATA_DIR": "/d"})
