"""The reference bash script -> the argv after ``main_continual.py`` (``parse_script``) and the
variables it exports to its command (``script_exports``).

Accepted: comments, ``VAR=value`` lines, one ``python main_continual.py --flag value \\`` command.
Pure functions: nothing here starts a process or reads a file.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping

from cassle.continual.flags import PlanError, _split_with_index, join_flags

__all__ = ["OPTIONAL_VARS", "parse_script", "script_exports"]

# Variables a script may reference while unset: the flag using them is dropped (no pretrained model).
OPTIONAL_VARS = frozenset({"PRETRAINED_PATH"})

_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_]\w*)(?::-(?P<default>[^}]*))?\}|(?P<plain>[A-Za-z_]\w*))")
_ASSIGN = re.compile(r"^[A-Za-z_]\w*=")
_NAME = re.compile(r"^[A-Za-z_]\w*$")


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
            raise PlanError(
                f"line {number}: the comment swallows the trailing backslash, so bash ends the "
                f"command here; move the comment above the command"
            )
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
