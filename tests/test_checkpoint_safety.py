"""A checkpoint is data: no entry point runs code from one unless --trust_checkpoint says so."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import main_linear
from cassle.continual import launcher
from cassle.continual import manifest as mf
from cassle.eval.linear import load_backbone_from_checkpoint
from cassle.utils.callbacks import numpy_state_from_plain, numpy_state_to_plain
from cassle.utils.checkpoint import UnsafeCheckpointError, check_loadable, load_checkpoint, unsafe_globals
from main_continual import main as continual_main
from main_continual import run_task
from tests.helpers import tiny_args, tiny_argv

REPO = Path(__file__).resolve().parents[1]


class _MakesMarker:
    """Pickles as ``open(marker, "w")``: unpickling it creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def own(tmp_path_factory) -> Path:
    """A task-0 checkpoint written by this code (2 tasks, tiny Barlow Twins), with its log records."""
    out = tmp_path_factory.mktemp("own") / "task0"
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger().addHandler(handler)
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.INFO)
    try:
        run_task(tiny_args("barlow_twins", "--num_tasks", "2", "--max_steps", "2", tmp_path=out))
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(level)
    (out / "log_messages.txt").write_text("\n".join(r.getMessage() for r in records))
    return out / "last.ckpt"


@pytest.fixture
def evil(own, tmp_path):
    """A copy of a real checkpoint with one object whose unpickling would create ``marker``."""
    marker = tmp_path / "MARKER"
    ckpt = torch.load(own, map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["payload"] = _MakesMarker(marker)
    path = tmp_path / "evil" / "task0" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save(ckpt, path)
    return path, marker


def _refused(err: str, path: Path) -> bool:
    return "io.open" in err and str(path) in err and "--trust_checkpoint" in err


# --------------------------------------------------------------------------- refused everywhere
def test_loader_refuses_and_names_the_global(evil):
    path, marker = evil
    assert "io.open" in unsafe_globals(path)  # read without unpickling
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint(path)
    assert _refused(str(err.value), path) and not marker.exists()
    with pytest.raises(ValueError, match="io.open"):  # what the benchmarks call
        load_backbone_from_checkpoint(str(path))
    assert not marker.exists()


def test_main_linear_refuses_checkpoint_and_run_dir(evil, tmp_path, capsys):
    path, marker = evil
    out = tmp_path / "out"
    assert main_linear.main(["--pretrained_feature_extractor", str(path), "--output_dir", str(out)]) == 2
    assert _refused(capsys.readouterr().err, path)
    run = path.parent.parent
    mf.save_manifest(str(run), mf.new_manifest("evil", None, [], range(1)))
    assert main_linear.main(["--run_dir", str(run), "--output_dir", str(out)]) == 2
    assert _refused(capsys.readouterr().err, path)
    assert not marker.exists() and not out.exists() and not (run / "eval").exists()


@pytest.mark.parametrize("flag", ["--pretrained_model", "--resume_from_checkpoint"])
def test_main_continual_refuses_pretrained_and_resume(evil, tmp_path, flag):
    path, marker = evil
    task_dir = tmp_path / "task1"
    argv = tiny_argv(
        "barlow_twins",
        "--num_tasks",
        "2",
        "--task_idx",
        "1",
        flag,
        str(path),
        distiller="decorrelative",
        tmp_path=task_dir,
    )
    with pytest.raises(UnsafeCheckpointError) as err:
        continual_main(argv)
    assert _refused(str(err.value), path)
    assert not marker.exists() and not task_dir.exists()


def test_launcher_with_pretrained_path_refuses(evil, tmp_path, monkeypatch, capsys):
    """The reference workflow: a run starting at task 1 from PRETRAINED_PATH. The launcher reads
    the file's globals without unpickling it and stops before the first task (and before --dry_run
    prints a plan); main_continual's own refusal is tested above."""
    path, marker = evil
    script = tmp_path / "start_at_1.sh"
    flags = tiny_argv(
        "barlow_twins", "--num_tasks", "2", "--task_idx", "1", "--max_steps", "1", distiller="decorrelative"
    ) + ["--name", "evil", "--pretrained_model", "$PRETRAINED_PATH"]
    script.write_text("python3 main_continual.py \\\n    " + " \\\n    ".join(flags) + "\n")
    monkeypatch.setenv("PRETRAINED_PATH", str(path))
    exp = tmp_path / "exp"
    for extra in ([], ["--dry_run"]):
        rc = launcher.main(["--script", str(script), "--experiment_dir", str(exp), *extra], repo_root=str(REPO))
        assert rc == 2 and _refused(capsys.readouterr().err, path)
    assert not marker.exists() and not exp.exists()


# --------------------------------------------------------------------------- the opt-in
def test_trust_checkpoint_loads_and_says_so(evil, caplog):
    path, marker = evil
    with caplog.at_level(logging.WARNING, logger="cassle.checkpoint"):
        ckpt = load_checkpoint(path, trust=True)
    assert marker.exists()  # the user asked for it: the pickle ran
    assert "state_dict" in ckpt
    assert any("--trust_checkpoint" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- own checkpoints
def test_own_checkpoint_needs_no_global_and_no_weights_only_message(own):
    """Hyperparameters are plain dicts and lists, RNG states tensors and plain values."""
    from torch.serialization import get_unsafe_globals_in_checkpoint

    assert get_unsafe_globals_in_checkpoint(own) == []
    ckpt = torch.load(own, map_location="cpu", weights_only=True)  # torch's defaults, no allowlist
    assert isinstance(ckpt["rng_states"]["per_rank"][0]["numpy"]["keys"], torch.Tensor)
    assert type(ckpt["hyper_parameters"]) is dict
    assert "weights_only" not in (own.parent / "log_messages.txt").read_text()


def test_numpy_rng_state_round_trip():
    np.random.seed(3)
    np.random.random(7)
    state = np.random.get_state()
    back = numpy_state_from_plain(numpy_state_to_plain(state))
    assert back[0] == state[0] and np.array_equal(back[1], state[1]) and back[2:] == state[2:]
    np.random.set_state(back)
    expected = np.random.random(3)
    np.random.set_state(state)
    assert np.array_equal(np.random.random(3), expected)


def test_old_format_own_checkpoint_is_refused_then_upgraded(own, tmp_path, capsys):
    """Written before RNG states were tensors: the numpy state is an array. numpy is off the
    allowlist, so the file is refused with the upgrade command; once upgraded (the original kept
    as .before-upgrade) it loads everywhere and resumes with the same numpy RNG state."""
    from cassle.utils.checkpoint_upgrade import main as upgrade_main

    ckpt = torch.load(own, map_location="cpu", weights_only=True)
    np.random.seed(5)
    state = np.random.get_state()
    # the layout of then: one set of states, not one per process
    ckpt["rng_states"] = {"python": random.getstate(), "numpy": state, "torch": torch.get_rng_state()}
    old = tmp_path / "old" / "task0" / "last.ckpt"
    old.parent.mkdir(parents=True)
    torch.save(ckpt, old)
    before = old.read_bytes()
    with pytest.raises(UnsafeCheckpointError, match="cassle.utils.checkpoint upgrade"):
        load_checkpoint(old)
    assert upgrade_main(["upgrade", str(old)]) == 0
    assert "numpy RNG state" in capsys.readouterr().out
    assert (old.parent / "last.ckpt.before-upgrade").read_bytes() == before
    numpy_state = load_checkpoint(old)["rng_states"]["numpy"]
    assert isinstance(numpy_state["keys"], torch.Tensor)
    back = numpy_state_from_plain(numpy_state)
    assert np.array_equal(back[1], state[1]) and back[2:] == state[2:]
    assert upgrade_main(["upgrade", str(old)]) == 0  # a second run: nothing to do, nothing renamed
    assert "nothing to upgrade" in capsys.readouterr().out
    # main_continual: as the previous task (pretrained) and resumed; main_linear: one checkpoint.
    for flag in ("--pretrained_model", "--resume_from_checkpoint"):
        out = tmp_path / flag.strip("-")
        argv = tiny_argv(
            "barlow_twins",
            "--num_tasks",
            "2",
            "--task_idx",
            "1" if "pre" in flag else "0",
            "--max_steps",
            "3",
            "--max_epochs",
            "2",
            flag,
            str(old),
            *(["--distiller", "decorrelative"] if "pre" in flag else []),
            tmp_path=out,
        )
        assert continual_main(argv) == 0 and (out / "last.ckpt").exists()
    rc = main_linear.main(
        [
            "--pretrained_feature_extractor",
            str(old),
            "--mode",
            "fast",
            "--max_epochs",
            "1",
            "--num_workers",
            "0",
            "--accelerator",
            "cpu",
            "--output_dir",
            str(tmp_path / "lin"),
        ]
    )
    assert rc == 0, capsys.readouterr().err


def test_readme_says_how_checkpoints_load():
    text = (REPO / "README.md").read_text()
    assert "--trust_checkpoint" in text and "weights_only" in text


# --------------------------------------------------------------------------- numpy arrays (issue 18.1)
class _ObjectArray:
    """Pickles as numpy's own reconstruction of an ndarray of dtype O whose 8 data bytes (written
    through ``_codecs.encode``, as numpy does under protocol 2) would be read as an object pointer."""

    def __reduce__(self):
        reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
        return (reconstruct, (np.ndarray, (0,), b"b"), (1, (1,), np.dtype("O"), False, b"\x41" * 8))


@pytest.fixture
def hostile(own, tmp_path):
    """A real task checkpoint whose data.pkl holds the object array (in its hyperparameters)."""
    import zipfile

    ckpt = torch.load(own, map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["seed"] = _ObjectArray()
    path = tmp_path / "hostile" / "task0" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save(ckpt, path)
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))
    assert b"_codecs" in data and b"O8" in data and b"AAAAAAAA" in data  # the file the issue describes
    return path


def _names_refusal(text: str, path: Path) -> bool:
    """One error line naming the file and the numpy construction that was refused."""
    lines = [line for line in text.splitlines() if str(path) in line]
    return (
        len(lines) == 1
        and "multiarray._reconstruct" in lines[0]
        and "numpy.dtype" in lines[0]
        and "refusing to load" in lines[0]
    )


def test_object_array_is_refused_by_the_loader(hostile):
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint(hostile)
    assert _names_refusal(str(err.value), hostile)
    with pytest.raises(UnsafeCheckpointError):  # the launcher's pre-check, without unpickling
        check_loadable(hostile)


def test_object_array_main_linear_exits_2(hostile, tmp_path, capsys):
    out = tmp_path / "out"
    assert main_linear.main(["--pretrained_feature_extractor", str(hostile), "--output_dir", str(out)]) == 2
    assert _names_refusal(capsys.readouterr().err, hostile)
    run = hostile.parent.parent
    mf.save_manifest(str(run), mf.new_manifest("hostile", None, [], range(1)))
    assert main_linear.main(["--run_dir", str(run), "--output_dir", str(out)]) == 2
    assert _names_refusal(capsys.readouterr().err, hostile)
    assert not out.exists() and not (run / "eval").exists()


@pytest.mark.parametrize("flag", ["--pretrained_model", "--resume_from_checkpoint"])
def test_object_array_main_continual_exits_2(hostile, tmp_path, flag, monkeypatch, capsys):
    """Through the script's own ``__main__`` (what the launcher runs): exit 2, one line."""
    import runpy

    task_dir = tmp_path / "task1"
    argv = tiny_argv(
        "barlow_twins",
        "--num_tasks",
        "2",
        "--task_idx",
        "1",
        flag,
        str(hostile),
        distiller="decorrelative",
        tmp_path=task_dir,
    )
    monkeypatch.setattr("sys.argv", ["main_continual.py", *argv])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(REPO / "main_continual.py"), run_name="__main__")
    assert stop.value.code == 2
    assert _names_refusal(capsys.readouterr().err, hostile) and not task_dir.exists()


def test_object_array_as_pretrained_path_is_refused_before_task_0(hostile, tmp_path, monkeypatch, capsys):
    script = tmp_path / "start_at_1.sh"
    flags = tiny_argv(
        "barlow_twins", "--num_tasks", "2", "--task_idx", "1", "--max_steps", "1", distiller="decorrelative"
    ) + ["--name", "hostile", "--pretrained_model", "$PRETRAINED_PATH"]
    script.write_text("python3 main_continual.py \\\n    " + " \\\n    ".join(flags) + "\n")
    monkeypatch.setenv("PRETRAINED_PATH", str(hostile))
    exp = tmp_path / "exp"
    rc = launcher.main(["--script", str(script), "--experiment_dir", str(exp)], repo_root=str(REPO))
    assert rc == 2 and _names_refusal(capsys.readouterr().err, hostile) and not exp.exists()


def test_upgrade_refuses_the_object_array_and_leaves_the_file(hostile, capsys):
    from cassle.utils.checkpoint_upgrade import BACKUP_SUFFIX
    from cassle.utils.checkpoint_upgrade import main as upgrade_main

    before = hostile.read_bytes()
    assert upgrade_main(["upgrade", str(hostile)]) == 2
    err = capsys.readouterr().err
    assert "dtype 'O8'" in err and str(hostile) in err and len(err.strip().splitlines()) == 1
    assert hostile.read_bytes() == before and not Path(str(hostile) + BACKUP_SUFFIX).exists()


def test_upgrade_runs_as_a_module_command(tmp_path, monkeypatch):
    """``python -m cassle.utils.checkpoint upgrade FILE`` (the command the refusal names), run as
    ``-m`` runs it, in-process."""
    import runpy

    path = tmp_path / "old.ckpt"
    torch.save({"rng_states": {"numpy": np.random.get_state()}}, path)
    monkeypatch.setattr("sys.argv", ["checkpoint.py", "upgrade", str(path)])
    with pytest.raises(SystemExit) as stop:
        runpy.run_module("cassle.utils.checkpoint", run_name="__main__")
    assert stop.value.code == 0
    assert isinstance(load_checkpoint(path)["rng_states"]["numpy"]["keys"], torch.Tensor)
    assert (tmp_path / "old.ckpt.before-upgrade").exists()
