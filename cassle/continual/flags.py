"""argv as ordered flag groups, and ``PlanError`` (the error of every planning step).

argv is handled as ordered flag groups ``("--flag", [values])``: a token starting with ``--`` opens a
flag, the tokens after it are its values (zero for switches like ``--wandb``, several for per-view
flags like ``--solarization_prob 0.0 0.2``). ``--flag=value`` is read as ``--flag value``. A switch
and its negation (``--wandb`` / ``--no-wandb``, see ``cassle.utils.args.NegatableSwitch``) are one
flag here: an override ``--no-wandb`` replaces the script's ``--wandb``.

``merge_args`` overrides the script's flags with extra ones (``-- --max_epochs 1``); ``diff_args``
says what changed. Pure functions; imports nothing of the package.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = [
    "PlanError",
    "split_flags",
    "join_flags",
    "get_flag",
    "set_flag",
    "drop_flags",
    "merge_args",
    "diff_args",
    "flag_key",
]


class PlanError(ValueError):
    """Bad script, arguments or experiment state; the message says what and how to fix it."""


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
    return "--" + flag[len("--no-") :] if flag.startswith("--no-") else flag


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
