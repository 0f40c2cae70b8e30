"""The task loop as pure functions: bash script + manifest state -> one command per task.

Nothing here starts a process or writes a file (``plan_tasks`` only *looks* whether checkpoints
exist), so every rule of the continual protocol is unit-tested without running anything:

* ``parse_script``: the reference bash script (comments, ``VAR=value`` lines, one
  ``python main_continual.py --flag value \\`` command) -> the argv after ``main_continual.py``.
* ``merge_args``: override the script's flags with extra ones (``-- --max_epochs 1``).
* ``plan_tasks``: argv + manifest -> ``TaskRun`` per task, each ``run``, ``resume`` or ``skip``.

argv is handled as ordered flag groups ``("--flag", [values])``: a token starting with ``--`` opens a
flag, the tokens after it are its values (zero for switches like ``--wandb``, several for per-view
flags like ``--solarization_prob 0.0 0.2``). ``--flag=value`` is read as ``--flag value``. A switch
and its negation (``--wandb`` / ``--no-wandb``, see ``cassle.utils.args.NegatableSwitch``) are one
flag here: an override ``--no-wandb`` replaces the script's ``--wandb``.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

__all__ = [
    "OPTIONAL_VARS",
    "PlanError",
    "TaskRun",
    "parse_script",
    "script_exports",
    "split_flags",
    "join_flags",
    "get_flag",
    "set_flag",
    "drop_flags",
    "merge_args",
    "diff_args",
    "flag_key",
    "plan_tasks",
    "task_schedule",
    "task_dir",
    "CHECKPOINT_NAME",
]

# Variables a script may reference while unset: the flag using them is dropped (no pretrained model).
OPTIONAL_VARS = frozenset({"PRETRAINED_PATH"})
CHECKPOINT_NAME = "last.ckpt"
# Flags the launcher owns per task: whatever the script says is replaced.
_PER_TASK_FLAGS = ("--task_idx", "--checkpoint_dir", "--name", "--pretrained_model", "--resume_from_checkpoint")

_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_]\w*)(?::-(?P<default>[^}]*))?\}|(?P<plain>[A-Za-z_]\w*))")
_ASSIGN = re.compile(r"^[A-Za-z_]\w*=")
_NAME = re.compile(r"^[A-Za-z_]\w*$")


class PlanError(ValueError):
    """Bad script, arguments or experiment state; the message says what and how to fix it."""


# --------------------------------------------------------------------------- script parsing
def _expand(token: str, env: Mapping[str, str]) -> tuple[str, set[str]]:
    """Expand ``$VAR``, ``${VAR}`` and ``${VAR:-default}``; return (text, names that were unset/empty)."""
    missing: set[str] = set()

    def sub(m: re.Match) -> str:
        name = m.group("braced") or m.group("plain")
        value = env.get(name, "")
        if value == "" and m.group("default") is not None:
            return m.group("default")
        if value == "":
            missing.add(name)
        return value

    return _VAR.sub(sub, token), missing


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash-continued lines, dropping comments as bash does; (first line number, text)."""
    out: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        code = _strip_comment(raw).strip()
        if current and not code and raw.strip().startswith("#"):
            # bash ends the command at a comment line: the flags after it would run as a new command.
            raise PlanError(
                f"line {number}: a comment inside the continued command ends it in bash "
                f"(the flags after it would be lost); remove the line or move it above the command"
            )
        if code and raw.rstrip().endswith("\\") and not code.endswith("\\"):
            raise PlanError(f"line {number}: the comment swallows the trailing backslash, so bash ends the "
                            f"command here; move the comment above the command")
        if not current:
            if not code:
                continue
            start = number
        if code.endswith("\\"):
            current.append(code[:-1])
            continue
        current.append(code)
        out.append((start, " ".join(current)))
        current = []
    if current:
        out.append((start, " ".join(current)))
    return out


def _strip_comment(line: str) -> str:
    """Cut a bash comment: an unquoted ``#`` at the start of a word (``run#1`` is not a comment)."""
    quote = None
    escaped = False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _is_main_token(token: str) -> bool:
    return os.path.basename(token) == "main_continual.py"


def parse_script(text: str, env: Mapping[str, str]) -> list[str]:
    """Return the argv of the script's ``python main_continual.py ...`` command, variables expanded.

    Accepted lines: comments, ``[export] VAR=value`` (applied in order on top of ``env``, as bash
    would), ``export VAR``, ``set ...``, and exactly one ``python``/``python3 main_continual.py``
    command whose flags may span lines with trailing backslashes. ``$VAR`` / ``${VAR}`` /
    ``${VAR:-default}`` are expanded from the environment; single quotes do not protect ``$`` here.
    A flag whose value uses an unset variable from ``OPTIONAL_VARS`` (``PRETRAINED_PATH``) is
    dropped; any other unset variable is an error naming it.
    """
    return _read_script(text, env)[0]


def script_exports(text: str, env: Mapping[str, str]) -> dict[str, str]:
    """The variables the script's assignments put into its command's environment, as bash does:
    ``export VAR=value``, ``VAR=value`` + ``export VAR``, and ``VAR=value`` for a VAR that ``env``
    (the launcher's environment) already exports. The launcher passes them to every task."""
    return _read_script(text, env)[1]


def _read_script(text: str, env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    env = dict(env)
    exported = set(env)  # what the calling shell exports
    assigned: set[str] = set()
    command: list[str] | None = None
    command_line = 0
    for number, line in _logical_lines(text):
        try:
            tokens = shlex.split(line)
        except ValueError as err:
            raise PlanError(f"line {number}: cannot parse ({err}): {line!r}") from None
        if not tokens:
            continue
        if tokens[0] == "set":
            continue
        export = tokens[0] == "export"
        words = tokens[1:] if export else tokens
        if export and words and all(_NAME.match(w) or _ASSIGN.match(w) for w in words):
            for w in words:
                name = w.split("=", 1)[0]
                if "=" in w:
                    env[name] = _expand(w.split("=", 1)[1], env)[0]
                assigned.add(name)
                exported.add(name)
            continue
        if words and all(_ASSIGN.match(w) for w in words):
            for w in words:
                name, value = w.split("=", 1)
                env[name] = _expand(value, env)[0]
                assigned.add(name)
            continue
        main_at = next((i for i, tok in enumerate(tokens) if _is_main_token(tok)), None)
        if main_at is None:
            raise PlanError(
                f"line {number}: unsupported line {line.strip()[:80]!r}; a script holds comments, "
                f"VAR=value lines and one 'python main_continual.py --flag value ...' command"
            )
        prefix = tokens[:main_at]
        if len(prefix) != 1 or os.path.basename(prefix[0]) not in ("python", "python3"):
            raise PlanError(
                f"line {number}: main_continual.py must be run as 'python main_continual.py' or "
                f"'python3 main_continual.py', got {' '.join(tokens[: main_at + 1])!r}"
            )
        if command is not None:
            raise PlanError(
                f"line {number}: a second main_continual.py command (first on line {command_line}); "
                f"a script runs one command, the launcher loops over the tasks"
            )
        command, command_line = tokens[main_at + 1 :], number
    if command is None:
        raise PlanError("the script has no 'python main_continual.py ...' command")

    # Expand per token, remember tokens that used an unset optional variable.
    argv: list[str] = []
    dropped: set[int] = set()
    for i, tok in enumerate(command):
        value, missing = _expand(tok, env)
        required = sorted(missing - OPTIONAL_VARS)
        if required:
            raise PlanError(
                f"environment variable {required[0]} is not set, but the script uses it in {tok!r}; "
                f"set it, e.g. {required[0]}=/path python job_launcher.py --script ..."
            )
        if missing:
            dropped.add(i)
        argv.append(value)

    groups = _split_with_index(argv)
    kept: list[tuple[str, list[str]]] = []
    for flag, values, indexes in groups:
        if dropped & set(indexes):
            continue  # e.g. --pretrained_model $PRETRAINED_PATH with PRETRAINED_PATH unset
        kept.append((flag, values))
    exports = {name: env[name] for name in sorted(assigned & exported) if name in env}
    return join_flags(kept), exports


# --------------------------------------------------------------------------- flag groups
def _split_with_index(argv: Sequence[str]) -> list[tuple[str, list[str], list[int]]]:
    groups: list[tuple[str, list[str], list[int]]] = []
    for i, tok in enumerate(argv):
        if tok.startswith("--") and len(tok) > 2:
            flag, eq, value = tok.partition("=")
            groups.append((flag, [value] if eq else [], [i]))
        elif not groups:
            raise PlanError(f"unexpected positional argument {tok!r} before the first --flag")
        else:
            groups[-1][1].append(tok)
            groups[-1][2].append(i)
    return groups


def split_flags(argv: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``["--a", "1", "--b", "--c", "x", "y"]`` -> ``[("--a", ["1"]), ("--b", []), ("--c", ["x", "y"])]``."""
    return [(flag, values) for flag, values, _ in _split_with_index(argv)]


def join_flags(groups: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    out: list[str] = []
    for flag, values in groups:
        out.append(flag)
        out.extend(values)
    return out


def get_flag(argv: Sequence[str], flag: str, default=None):
    """Values of the last occurrence of ``flag``: a str for one value, a list for several,
    ``True`` for a bare switch, ``default`` when absent."""
    found = default
    for name, values in split_flags(argv):
        if name == flag:
            found = values[0] if len(values) == 1 else (list(values) if values else True)
    return found


def drop_flags(argv: Sequence[str], predicate: Callable[[str], bool]) -> list[str]:
    return join_flags([(f, v) for f, v in split_flags(argv) if not predicate(f)])


def set_flag(argv: Sequence[str], flag: str, *values: str) -> list[str]:
    """Replace every occurrence of ``flag`` by one ``flag values...`` (appended if absent)."""
    return merge_args(argv, [flag, *values])


def flag_key(flag: str) -> str:
    """The flag a token sets: ``--no-wandb`` -> ``--wandb`` (a negated switch); others unchanged."""
    return "--" + flag[len("--no-"):] if flag.startswith("--no-") else flag


def _by_key(argv: Sequence[str]) -> dict[str, tuple[str, list[str]]]:
    """flag key -> (flag as written, values) of the last occurrence; first-occurrence order."""
    merged: dict[str, tuple[str, list[str]]] = {}
    for flag, values in split_flags(argv):
        # a dict keeps the first insertion's position and takes the last value
        merged[flag_key(flag)] = (flag, list(values))
    return merged


def merge_args(script_argv: Sequence[str], extra_argv: Sequence[str]) -> list[str]:
    """Script flags overridden flag by flag by ``extra_argv``; flags new to the script are appended.

    A flag keeps its position in the script; duplicates collapse to the last value (argparse's
    rule), so the result has each flag once. ``--no-X`` and ``--X`` count as the same flag.
    """
    return join_flags(list(_by_key([*script_argv, *extra_argv]).values()))


def diff_args(old: Sequence[str], new: Sequence[str], ignore: Sequence[str] = ()) -> list[str]:
    """Human-readable differences between two argvs (order-insensitive), e.g. ``--lr: 0.3 -> 0.4``,
    ``--wandb: (switch) -> --no-wandb``."""
    a, b = _by_key(old), _by_key(new)

    def show(entry, key):
        if entry is None:
            return "(absent)"
        flag, values = entry
        return flag if flag != key else (" ".join(values) or "(switch)")

    out = []
    for key in list(a) + [k for k in b if k not in a]:
        if key in ignore or a.get(key) == b.get(key):
            continue
        out.append(f"{key}: {show(a.get(key), key)} -> {show(b.get(key), key)}")
    return out


# --------------------------------------------------------------------------- the task plan
@dataclass(frozen=True)
class TaskRun:
    """One task of the sequence. ``argv`` is the full argv for ``main_continual.py``."""

    task_idx: int
    argv: list[str]
    checkpoint_dir: str
    action: str  # "run" (from scratch), "resume" (from resume_from), "skip" (already done)
    resume_from: str | None = None
    note: str = ""  # why the plan chose this action, when it is not the obvious one

    @property
    def checkpoint(self) -> str:
        return os.path.join(self.checkpoint_dir, CHECKPOINT_NAME)

    @property
    def log_path(self) -> str:
        return os.path.join(self.checkpoint_dir, "train.log")


def task_dir(experiment_dir: str, task_idx: int) -> str:
    return os.path.join(experiment_dir, f"task{task_idx}")


def _int_flag(argv: Sequence[str], flag: str, default: int | None) -> int:
    value = get_flag(argv, flag, default)
    if value is None:
        raise PlanError(f"{flag} is missing from the script arguments; it is required")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PlanError(f"{flag} must be one integer, got {value!r}") from None


def task_schedule(argv: Sequence[str]) -> tuple[int | None, int | None]:
    """(max_epochs, max_steps) the argv plans for each task; None where the flag is absent (the
    trainer's default applies, and the checkpoint records it)."""
    epochs, steps = get_flag(argv, "--max_epochs"), get_flag(argv, "--max_steps")
    try:
        return (None if epochs is None else int(epochs)), (None if steps is None else int(steps))
    except (TypeError, ValueError):
        raise PlanError(f"--max_epochs / --max_steps must be integers, got {epochs!r} / {steps!r}") from None


def _num_tasks(argv: Sequence[str]) -> int:
    """``--num_tasks``; in a domain split with ``--domains``: one task per domain (a differing
    ``--num_tasks`` is an error)."""
    domains = get_flag(argv, "--domains")
    if get_flag(argv, "--split_strategy") == "domain" and isinstance(domains, (str, list)):
        count = 1 if isinstance(domains, str) else len(domains)
        given = get_flag(argv, "--num_tasks")
        if given is not None and _int_flag(argv, "--num_tasks", None) != count:
            raise PlanError(f"--num_tasks {given} does not match the {count} domains of --domains: a domain split "
                            "has one task per domain; drop --num_tasks (it follows the domains)")
        return count
    return _int_flag(argv, "--num_tasks", None)


def plan_tasks(
    argv: Sequence[str],
    manifest_state: Mapping | None,
    experiment_dir: str,
    exists: Callable[[str], bool] = os.path.exists,
    complete: Callable[[str, int], tuple[bool, str]] | None = None,
) -> list[TaskRun]:
    """The per-task commands for tasks ``task_idx .. num_tasks - 1`` of the (merged) script argv.

    Rules (REFERENCE.md, section 2 and the task-loop defects):
    * task t gets ``--task_idx t --checkpoint_dir <exp>/task{t} --name <name>-task{t}``;
    * task 0 has nothing to distil: every ``--distiller`` / ``--distill_*`` flag is dropped;
    * task t > start learns from ``--pretrained_model <exp>/task{t-1}/last.ckpt`` (the previous
      task's *final* checkpoint; the launcher runs t only after t-1 is done);
    * a start task s > 0 (the reference workflow) uses the script's ``--pretrained_model``
      (``$PRETRAINED_PATH``), which must then be given and exist;
    * ``--pretrained_model`` (``PRETRAINED_PATH``) with start task 0 is an error;
    * manifest status "done" + checkpoint on disk (+ ``complete(checkpoint, t)`` when given: the
      checkpoint shows the whole schedule) -> skip; otherwise an existing
      ``<exp>/task{t}/last.ckpt`` (a killed or failed attempt) -> resume from it; otherwise run;
    * once a task is not skipped, later tasks are never skipped or resumed: their old state (if
      any) was built on a predecessor that is being redone, so they run from scratch.
    ``exists`` is only there so tests can fake the filesystem; a task skipped or resumed for a
    reason worth telling carries it in ``TaskRun.note``.
    """
    argv = merge_args(argv, [])
    num_tasks = _num_tasks(argv)
    start = _int_flag(argv, "--task_idx", 0)
    if num_tasks < 1:
        raise PlanError(f"--num_tasks must be >= 1, got {num_tasks}")
    if not 0 <= start < num_tasks:
        raise PlanError(f"--task_idx {start} is out of range: valid start tasks are 0..{num_tasks - 1}")
    name = get_flag(argv, "--name")
    if not isinstance(name, str) or not name:
        raise PlanError("--name is missing from the script arguments (it names the run and its folder)")
    pretrained = get_flag(argv, "--pretrained_model")
    if start > 0 and not isinstance(pretrained, str):
        raise PlanError(
            f"--task_idx {start} starts after task 0, so it needs the checkpoint of task {start - 1}: "
            f"set PRETRAINED_PATH (or --pretrained_model) to it"
        )
    if start == 0 and pretrained is not None:
        # Task 0 trains from scratch: a leftover PRETRAINED_PATH would silently start it from
        # another run's weights.
        raise PlanError(
            f"PRETRAINED_PATH / --pretrained_model is set ({pretrained}) but the run starts at task 0, "
            f"which trains from scratch; unset PRETRAINED_PATH (or drop --pretrained_model), or start "
            f"after task 0 with `-- --task_idx N` to build on that checkpoint"
        )

    base = drop_flags(argv, lambda f: f in _PER_TASK_FLAGS)
    tasks_state = (manifest_state or {}).get("tasks", {})
    runs: list[TaskRun] = []
    redoing = False  # a task before this one is being (re)run
    for t in range(start, num_tasks):
        ckpt_dir = task_dir(experiment_dir, t)
        ckpt = os.path.join(ckpt_dir, CHECKPOINT_NAME)
        prev = pretrained if t == start else os.path.join(task_dir(experiment_dir, t - 1), CHECKPOINT_NAME)
        task_argv = base if t > 0 and prev else drop_flags(base, lambda f: flag_key(f).startswith("--distill"))
        task_argv = task_argv + ["--task_idx", str(t), "--checkpoint_dir", ckpt_dir, "--name", f"{name}-task{t}"]
        if prev:
            task_argv += ["--pretrained_model", prev]

        status = tasks_state.get(str(t), {}).get("status", "pending")
        note = ""
        if not redoing and status == "done" and exists(ckpt):
            verdict = complete(ckpt, t) if complete is not None else (True, "")
            if verdict[0]:
                runs.append(TaskRun(t, task_argv, ckpt_dir, "skip"))
                continue
            note = f"recorded done, but {verdict[1]}"
        if t == start and prev and not exists(prev):
            raise PlanError(f"pretrained model for task {t} not found: {prev} "
                            f"(from PRETRAINED_PATH / --pretrained_model)")
        if not redoing and exists(ckpt):
            runs.append(TaskRun(t, task_argv + ["--resume_from_checkpoint", ckpt], ckpt_dir, "resume",
                                ckpt, note))
        else:
            runs.append(TaskRun(t, task_argv, ckpt_dir, "run"))
        redoing = True
    return runs
