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
from cassle.utils.checkpoint import UnsafeCheckpointError, load_checkpoint, unsafe_globals
from main_continual import main as continual_main
from main_continual import run_task
from tests.helpers import tiny_argv, tiny_args

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
    argv = tiny_argv("barlow_twins", "--num_tasks", "2", "--task_idx", "1", flag, str(path),
                     distiller="decorrelative", tmp_path=task_dir)
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
    flags = tiny_argv("barlow_twins", "--num_tasks", "2", "--task_idx", "1", "--max_steps", "1",
                      distiller="decorrelative") + ["--name", "evil", "--pretrained_model", "$PRETRAINED_PATH"]
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
    assert any("--trust_checkpoint" in r.getMessage() and str(path) in r.getMessage()
               for r in caplog.records)


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


def test_old_format_own_checkpoint_still_loads_everywhere(own, tmp_path, capsys):
    """Written before RNG states were tensors: the numpy state is an array (on the allowlist)."""
    ckpt = torch.load(own, map_location="cpu", weights_only=True)
    # the layout of then: one set of states, not one per process
    ckpt["rng_states"] = {"python": random.getstate(), "numpy": np.random.get_state(),
                          "torch": torch.get_rng_state()}
    old = tmp_path / "old" / "task0" / "last.ckpt"
    old.parent.mkdir(parents=True)
    torch.save(ckpt, old)
    assert isinstance(load_checkpoint(old)["rng_states"]["numpy"][1], np.ndarray)
    # main_continual: as the previous task (pretrained) and resumed; main_linear: one checkpoint.
    for flag in ("--pretrained_model", "--resume_from_checkpoint"):
        out = tmp_path / flag.strip("-")
        argv = tiny_argv("barlow_twins", "--num_tasks", "2", "--task_idx", "1" if "pre" in flag else "0",
                         "--max_steps", "3", "--max_epochs", "2", flag, str(old),
                         *(["--distiller", "decorrelative"] if "pre" in flag else []), tmp_path=out)
        assert continual_main(argv) == 0 and (out / "last.ckpt").exists()
    rc = main_linear.main(["--pretrained_feature_extractor", str(old), "--mode", "fast", "--max_epochs", "1",
                           "--num_workers", "0", "--accelerator", "cpu", "--output_dir", str(tmp_path / "lin")])
    assert rc == 0, capsys.readouterr().err


def test_readme_says_how_checkpoints_load():
    text = (REPO / "README.md").read_text()
    assert "--trust_checkpoint" in text and "weights_only" in text
