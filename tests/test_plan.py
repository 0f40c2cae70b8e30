"""The task loop's pure parts: script parsing, argument merging and the per-task plan.

No subprocess here; checkpoints are real (empty) files under tmp_path so ``plan_tasks`` sees
exactly what the launcher would.
"""

import os

import pytest

from cassle.continual.plan import PlanError, diff_args, get_flag, merge_args, parse_script, plan_tasks, split_flags

SCRIPT = """#!/bin/bash
# CIFAR-100, Barlow Twins + decorrelative distiller (reference form)
export WANDB_MODE=offline
python3 main_continual.py \\
    --dataset cifar100 \\
    --data_dir $DATA_DIR \\
    --train_dir "${DATA_DIR}/train" \\
    --split_strategy class \\
    --max_epochs 500 \\
    --num_tasks 3 \\
    --task_idx 0 \\
    --solarization_prob 0.0 0.2 \\
    --min_lr -1 \\
    --wandb \\
    --name barlow-distill \\
    --checkpoint_dir trained_models \\
    --method barlow_twins \\
    --pretrained_model $PRETRAINED_PATH \\
    --distiller decorrelative \\
    --distill_lamb 1.0 \\
    --distill_bn_eval
"""


def flags(argv):
    return dict(split_flags(argv))


def test_parse_script_expands_variables_and_keeps_flag_shapes():
    argv = parse_script(SCRIPT, {"DATA_DIR": "/data"})
    f = flags(argv)
    assert f["--data_dir"] == ["/data"]
    assert f["--train_dir"] == ["/data/train"]  # ${VAR} inside quotes
    assert f["--solarization_prob"] == ["0.0", "0.2"]  # several values
    assert f["--min_lr"] == ["-1"]  # a negative number is a value, not a flag
    assert f["--wandb"] == [] and f["--distill_bn_eval"] == []  # switches
    # PRETRAINED_PATH unset: no pretrained model, the flag disappears
    assert "--pretrained_model" not in f
    assert argv[:4] == ["--dataset", "cifar100", "--data_dir", "/data"]


def test_parse_script_pretrained_path_set_and_script_assignments():
    argv = parse_script(SCRIPT, {"DATA_DIR": "/data", "PRETRAINED_PATH": "/runs/task0/last.ckpt"})
    assert get_flag(argv, "--pretrained_model") == "/runs/task0/last.ckpt"
    # A VAR=value line of the script applies after it, as in bash; ${VAR:-default} too
    text = "ROOT=/scratch\npython main_continual.py --data_dir $ROOT/x --seed ${SEED:-7} --name n\n"
    assert parse_script(text, {}) == ["--data_dir", "/scratch/x", "--seed", "7", "--name", "n"]


def test_parse_script_unset_data_dir_is_an_error_naming_it():
    with pytest.raises(PlanError, match="DATA_DIR is not set"):
        parse_script(SCRIPT, {})
    with pytest.raises(PlanError, match="DATA_DIR"):
        parse_script(SCRIPT, {"DATA_DIR": ""})


@pytest.mark.parametrize(
    "text, match",
    [
        ("# only a comment\necho hello\n", "unsupported line"),
        ("# nothing\n\n", "no 'python main_continual.py"),
        ("python main_linear.py --lr 1\n", "unsupported line"),
        ("torchrun main_continual.py --lr 1\n", "must be run as 'python main_continual.py'"),
        ("python main_continual.py --a 1\npython main_continual.py --a 2\n", "second main_continual.py"),
        ("python main_continual.py \\\n  --a 1 \\\n  # --b 2 \\\n  --c 3\n", "comment inside the continued"),
        ("python main_continual.py stray --a 1\n", "positional argument 'stray'"),
        ("python main_continual.py \\\n  --a 1 # note \\\n  --c 3\n", "swallows the trailing backslash"),
    ],
)
def test_parse_script_bad_scripts(text, match):
    with pytest.raises(PlanError, match=match):
        parse_script(text, {"DATA_DIR": "/d"})


def test_parse_script_comments_follow_bash():
    text = (
        "python main_continual.py \\\n    --name run#1 \\\n    --note '# kept' \\\n"
        "    --lr 0.3  # the last line may carry a comment\n"
    )
    assert parse_script(text, {}) == ["--name", "run#1", "--note", "# kept", "--lr", "0.3"]


def test_merge_args_overrides_flag_by_flag_and_appends_new_ones():
    script = ["--max_epochs", "500", "--solarization_prob", "0.0", "0.2", "--wandb", "--lr", "0.3"]
    merged = merge_args(script, ["--max_epochs", "1", "--solarization_prob", "0.1", "--limit_train_batches=2"])
    assert merged == [
        "--max_epochs",
        "1",
        "--solarization_prob",
        "0.1",
        "--wandb",
        "--lr",
        "0.3",
        "--limit_train_batches",
        "2",
    ]
    # duplicates collapse to the last value (argparse semantics)
    assert merge_args(["--a", "1", "--b", "--a", "2"], []) == ["--a", "2", "--b"]


def test_diff_args_is_order_insensitive_and_honours_ignore():
    assert diff_args(["--a", "1", "--b", "2"], ["--b", "2", "--a", "1"]) == []
    assert diff_args(["--a", "1"], ["--a", "2", "--w"]) == ["--a: 1 -> 2", "--w: (absent) -> (switch)"]
    assert diff_args(["--data_dir", "/x"], ["--data_dir", "/y"], ignore=["--data_dir"]) == []


def _touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").close()


@pytest.fixture
def argv():
    return parse_script(SCRIPT, {"DATA_DIR": "/data"})


def test_fresh_plan(argv, tmp_path):
    exp = str(tmp_path / "exp")
    plan = plan_tasks(argv, None, exp)
    assert [(r.task_idx, r.action, r.resume_from) for r in plan] == [(t, "run", None) for t in range(3)]
    for r in plan:
        f = flags(r.argv)
        assert f["--task_idx"] == [str(r.task_idx)]
        assert f["--checkpoint_dir"] == [os.path.join(exp, f"task{r.task_idx}")] == [r.checkpoint_dir]
        assert f["--name"] == [f"barlow-distill-task{r.task_idx}"]
        assert "--resume_from_checkpoint" not in f
        assert f["--solarization_prob"] == ["0.0", "0.2"] and f["--wandb"] == []
        assert r.argv.count("--checkpoint_dir") == 1  # the script's trained_models is replaced
    # task 0 has nothing to distil: every distiller flag is dropped, and no pretrained model
    f0 = flags(plan[0].argv)
    assert not [k for k in f0 if k.startswith("--distill")]
    assert "--pretrained_model" not in f0
    # later tasks distil from the previous task's final checkpoint
    for t in (1, 2):
        f = flags(plan[t].argv)
        assert f["--distiller"] == ["decorrelative"] and f["--distill_lamb"] == ["1.0"]
        assert f["--distill_bn_eval"] == []
        assert f["--pretrained_model"] == [os.path.join(exp, f"task{t - 1}", "last.ckpt")]


def test_resumed_plan_skips_done_and_resumes_running(argv, tmp_path):
    exp = str(tmp_path)
    _touch(f"{exp}/task0/last.ckpt")
    _touch(f"{exp}/task1/last.ckpt")  # written at an epoch end before the launcher was killed
    state = {"tasks": {"0": {"status": "done"}, "1": {"status": "running"}, "2": {"status": "pending"}}}
    plan = plan_tasks(argv, state, exp)
    assert [r.action for r in plan] == ["skip", "resume", "run"]
    resume = plan[1]
    assert resume.resume_from == f"{exp}/task1/last.ckpt"
    assert get_flag(resume.argv, "--resume_from_checkpoint") == f"{exp}/task1/last.ckpt"
    # the frozen model of a resumed task is still the previous task's final checkpoint
    assert get_flag(resume.argv, "--pretrained_model") == f"{exp}/task0/last.ckpt"


def test_failed_task_resumes_when_it_left_a_checkpoint_else_reruns(argv, tmp_path):
    exp = str(tmp_path)
    _touch(f"{exp}/task0/last.ckpt")
    state = {"tasks": {"0": {"status": "failed", "returncode": 3}}}
    assert [r.action for r in plan_tasks(argv, state, exp)] == ["resume", "run", "run"]
    os.remove(f"{exp}/task0/last.ckpt")
    assert [r.action for r in plan_tasks(argv, state, exp)] == ["run", "run", "run"]


def test_done_without_checkpoint_is_not_trusted(argv, tmp_path):
    state = {"tasks": {"0": {"status": "done"}, "1": {"status": "done"}}}
    _touch(f"{tmp_path}/task1/last.ckpt")
    # task 0's checkpoint vanished: redo it, and task 1 (built on it) must run again from scratch
    assert [r.action for r in plan_tasks(argv, state, str(tmp_path))] == ["run", "run", "run"]


def test_never_skip_or_resume_after_an_unfinished_task(argv, tmp_path):
    exp = str(tmp_path)
    for t in range(3):
        _touch(f"{exp}/task{t}/last.ckpt")
    state = {"tasks": {"0": {"status": "done"}, "1": {"status": "failed"}, "2": {"status": "done"}}}
    assert [r.action for r in plan_tasks(argv, state, exp)] == ["skip", "resume", "run"]


def test_start_at_task_one_uses_pretrained_path(tmp_path):
    pretrained = tmp_path / "other_run" / "task0.ckpt"
    _touch(str(pretrained))
    env = {"DATA_DIR": "/data", "PRETRAINED_PATH": str(pretrained)}
    argv = merge_args(parse_script(SCRIPT, env), ["--task_idx", "1"])
    exp = str(tmp_path / "exp")
    plan = plan_tasks(argv, None, exp)
    assert [r.task_idx for r in plan] == [1, 2]
    f1, f2 = flags(plan[0].argv), flags(plan[1].argv)
    assert f1["--pretrained_model"] == [str(pretrained)] and f1["--distiller"] == ["decorrelative"]
    assert f2["--pretrained_model"] == [os.path.join(exp, "task1", "last.ckpt")]

    os.remove(pretrained)
    with pytest.raises(PlanError, match=f"not found: {pretrained}"):
        plan_tasks(argv, None, exp)
    no_pretrained = merge_args(parse_script(SCRIPT, {"DATA_DIR": "/d"}), ["--task_idx", "1"])
    with pytest.raises(PlanError, match="PRETRAINED_PATH"):
        plan_tasks(no_pretrained, None, exp)


def test_missing_pretrained_is_fine_once_the_start_task_is_done(tmp_path):
    env = {"DATA_DIR": "/data", "PRETRAINED_PATH": str(tmp_path / "gone.ckpt")}
    argv = merge_args(parse_script(SCRIPT, env), ["--task_idx", "2"])
    _touch(f"{tmp_path}/task2/last.ckpt")
    plan = plan_tasks(argv, {"tasks": {"2": {"status": "done"}}}, str(tmp_path))
    assert [r.action for r in plan] == ["skip"]


def test_extra_args_reach_every_task(tmp_path):
    argv = merge_args(parse_script(SCRIPT, {"DATA_DIR": "/d"}), ["--max_epochs", "1", "--limit_train_batches", "2"])
    for r in plan_tasks(argv, None, str(tmp_path)):
        assert get_flag(r.argv, "--max_epochs") == "1"
        assert get_flag(r.argv, "--limit_train_batches") == "2"
        assert r.argv.count("--max_epochs") == 1


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--task_idx", "3"], r"--task_idx 3 is out of range: valid start tasks are 0..2"),
        (["--task_idx", "-1"], "out of range"),
        (["--num_tasks", "0"], "--num_tasks must be >= 1"),
        (["--num_tasks", "two"], "--num_tasks must be one integer"),
    ],
)
def test_bad_task_range(argv, tmp_path, extra, match):
    with pytest.raises(PlanError, match=match):
        plan_tasks(merge_args(argv, extra), None, str(tmp_path))


def test_required_flags(tmp_path):
    with pytest.raises(PlanError, match="--num_tasks is missing"):
        plan_tasks(["--name", "x"], None, str(tmp_path))
    with pytest.raises(PlanError, match="--name is missing"):
        plan_tasks(["--num_tasks", "2"], None, str(tmp_path))
