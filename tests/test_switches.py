"""Every switch can be turned off again: ``--no-X`` for every ``store_true`` flag of
``main_continual.py`` (all methods, all distillers) and ``main_linear.py``; the launcher's
``--`` overrides replace a script's switch by its negation; ``--wandb`` without wandb installed is
an argparse error naming ``--no-wandb``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

import main_linear
from cassle.continual.plan import diff_args, merge_args, parse_script, plan_tasks, split_flags
from cassle.distillers import DISTILLERS
from cassle.methods import METHODS
from cassle.utils.args import NegatableSwitch, build_parser, parse_args

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "bash_files" / "continual").rglob("*.sh"))


def _switches(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``--flag`` -> dest of every on/off switch of ``parser``."""
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse.BooleanOptionalAction):
            for flag in action.option_strings:
                if flag.startswith("--") and not flag.startswith("--no-"):
                    out[flag] = action.dest
    return out


def _continual_parsers():
    for method in METHODS:
        for distiller in DISTILLERS:
            argv = ["--method", method, "--distiller", distiller]
            yield f"main_continual {method}+{distiller}", build_parser(argv), argv


def _all_parsers():
    yield from _continual_parsers()
    yield "main_linear", main_linear.build_parser(), ["--run_dir", "RUN"]


def test_no_plain_store_true_is_left():
    """A switch added as a plain store_true (e.g. by a parser built without ``new_parser``) could
    not be undone after ``--``."""
    for name, parser, _ in _all_parsers():
        plain = [a.option_strings for a in parser._actions if isinstance(a, argparse._StoreTrueAction)]
        assert not plain, f"{name}: switches without a --no- form: {plain}"
        assert any(isinstance(a, NegatableSwitch) for a in parser._actions), name


def test_every_switch_turns_on_and_off_last_one_wins():
    seen = set()
    for name, parser, base in _all_parsers():
        switches = _switches(parser)
        assert "--wandb" in switches, name
        for flag, dest in switches.items():
            seen.add(flag)
            neg = "--no-" + flag[2:]
            action = next(a for a in parser._actions if flag in a.option_strings)
            if isinstance(action, NegatableSwitch):  # a former store_true: off unless given
                assert parser.get_default(dest) is False, f"{name}: {flag} is not off by default"
            assert getattr(parser.parse_args(base + [flag]), dest) is True, f"{name}: {flag}"
            assert getattr(parser.parse_args(base + [flag, neg]), dest) is False, f"{name}: {flag} {neg}"
            assert getattr(parser.parse_args(base + [neg, flag]), dest) is True, f"{name}: {neg} {flag}"
    # method-, distiller- and evaluation-specific switches are among them
    for flag in (
        "--exclude_bias_n_norm",
        "--lars",
        "--supervised",
        "--distill_bn_eval",
        "--knn",
        "--download",
        "--save_checkpoint",
        "--wandb_online",
    ):
        assert flag in seen, flag


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.relative_to(REPO).as_posix() for p in SCRIPTS])
def test_every_switch_of_every_script_can_be_undone_after_the_launchers_dashes(path):
    script_argv = parse_script(path.read_text(), {"DATA_DIR": "/data"})
    switches = [f for f, values in split_flags(script_argv) if not values]
    # a switch turns off with --no-X; a script's own --no-X (e.g. --no-validate_images) turns back on with --X
    undo = {f: "--" + f[5:] if f.startswith("--no-") else "--no-" + f[2:] for f in switches}
    merged = merge_args(script_argv, list(undo.values()))
    args = parse_args(merged)
    for flag in switches:
        name = flag[5:] if flag.startswith("--no-") else flag[2:]
        assert getattr(args, name) is flag.startswith("--no-"), f"{path.name}: {flag} still holds after {undo[flag]}"
    assert not args.wandb


def test_merge_replaces_a_switch_by_its_negation_in_place():
    script = ["--lr", "0.3", "--wandb", "--exclude_bias_n_norm", "--name", "x"]
    merged = merge_args(script, ["--no-wandb", "--max_epochs", "1"])
    assert merged == ["--lr", "0.3", "--no-wandb", "--exclude_bias_n_norm", "--name", "x", "--max_epochs", "1"]
    assert merge_args(merged, ["--wandb"]) == script + ["--max_epochs", "1"]  # and back on
    assert diff_args(script, merged) == ["--wandb: (switch) -> --no-wandb", "--max_epochs: (absent) -> 1"]


def test_task0_drops_negated_distiller_switches_too(tmp_path):
    argv = [
        "--method",
        "barlow_twins",
        "--num_tasks",
        "2",
        "--name",
        "r",
        "--distiller",
        "decorrelative",
        "--no-distill_bn_eval",
    ]
    task0, task1 = plan_tasks(argv, None, str(tmp_path))
    assert not [f for f, _ in split_flags(task0.argv) if "distill" in f]
    assert "--no-distill_bn_eval" in task1.argv


@pytest.mark.parametrize("mode", ["local", "slurm"])
def test_launcher_prints_the_override_with_the_plan(mode, tmp_path, monkeypatch, capsys):
    from cassle.continual.launcher import main

    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    rc = main(
        [
            "--script",
            str(REPO / "bash_files/continual/cifar/barlow_distill.sh"),
            "--experiment_dir",
            str(tmp_path / "exp"),
            "--mode",
            mode,
            "--dry_run",
            "--",
            "--no-wandb",
            "--no-exclude_bias_n_norm",
        ],
        repo_root=str(REPO),
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "overrides after --: " in out and "--wandb: (switch) -> --no-wandb" in out
    assert "--exclude_bias_n_norm: (switch) -> --no-exclude_bias_n_norm" in out
    commands = [line for line in out.splitlines() if "main_continual.py" in line]
    assert len(commands) == 5 and all("--no-wandb" in c and " --wandb" not in c for c in commands)


@pytest.mark.parametrize("which", ["main_continual", "main_linear"])
def test_wandb_flag_without_wandb_installed_names_the_way_out(which, monkeypatch, capsys):
    # None in sys.modules: `import wandb` raises ImportError and find_spec returns None, as on a
    # machine without wandb.
    monkeypatch.setitem(sys.modules, "wandb", None)
    parse = parse_args if which == "main_continual" else main_linear.parse_args
    base = ["--method", "simclr"] if which == "main_continual" else ["--run_dir", "RUN"]
    with pytest.raises(SystemExit) as err:
        parse(base + ["--wandb"])
    assert err.value.code == 2
    msg = capsys.readouterr().err
    assert "wandb package is not installed" in msg and "--no-wandb" in msg
    assert parse(base + ["--wandb", "--no-wandb"]).wandb is False  # the way out works


def test_launcher_refuses_wandb_without_wandb_before_writing_anything(tmp_path, monkeypatch, capsys):
    from cassle.continual.launcher import main

    monkeypatch.setitem(sys.modules, "wandb", None)  # as on a machine without wandb
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    script = str(REPO / "bash_files/continual/cifar/barlow.sh")  # says --wandb
    exp = tmp_path / "exp"
    assert main(["--script", script, "--experiment_dir", str(exp)], repo_root=str(REPO)) == 2
    err = capsys.readouterr().err
    assert "wandb package is not installed" in err and "-- --no-wandb" in err
    assert not exp.exists()
    assert (
        main(["--script", script, "--experiment_dir", str(exp), "--dry_run", "--", "--no-wandb"], repo_root=str(REPO))
        == 0
    )
