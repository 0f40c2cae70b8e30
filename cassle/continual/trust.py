"""A run folder is data, not a program: what a resume may take from ``manifest.json`` and the folder.

``job_launcher.py --experiment_dir RUN`` (no ``--script``) rebuilds the task commands from
``RUN/manifest.json``. That file may come from a colleague, a copy or a sync, so:

* flags that widen what runs (``WIDENING_FLAGS``: ``--trust_checkpoint`` unpickles checkpoints
  fully) are never taken from a manifest; they apply only when given again on this command line
  (after ``--``), and the launcher says so (``argv_from_manifest``);
* recorded environment variables must be shell identifiers with string values (anything else is an
  error naming the manifest: nothing runs), and variables that change what the interpreter, the
  shell or the dynamic loader runs (``is_loader_variable``: ``PYTHON*``, ``LD_*``, ``PATH``,
  ``BASH_ENV``, ``ENV``, ...) are never applied (``env_from_manifest``);
* what is applied is printed with the plan (``describe``);
* output folders and files inside RUN (``task*/``, ``eval/``, the logs, the manifest) that are
  symbolic links are refused, never written through (``refuse_symlinked_outputs``).

The same name check guards ``command.sh`` and the sbatch file (``check_shell_name``).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence

from cassle.continual.plan import PlanError, drop_flags, get_flag

__all__ = [
    "WIDENING_FLAGS",
    "DOCUMENTED_VARIABLES",
    "is_shell_name",
    "is_loader_variable",
    "check_shell_name",
    "argv_from_manifest",
    "env_from_manifest",
    "widening_flags_in",
    "refuse_symlinked_outputs",
    "describe",
]

# Flags that make a task run or read more than data: never re-enabled by a manifest.
WIDENING_FLAGS = ("--trust_checkpoint", "--allow_paths_outside_data_dir")
# The variables the shipped scripts and the README use (the script's own assignments come on top).
DOCUMENTED_VARIABLES = ("DATA_DIR", "PRETRAINED_PATH", "NUM_TASKS", "NUM_WORKERS", "TRAIN_DIR", "VAL_DIR")

_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOADER_NAMES = {
    "PATH",
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "IFS",
    "PS4",
    "PROMPT_COMMAND",
    "CDPATH",
    "GLOBIGNORE",
    "HOME",
    "PERL5LIB",
    "PERL5OPT",
    "PERLLIB",
    "RUBYLIB",
    "RUBYOPT",
    "NODE_OPTIONS",
    "GCONV_PATH",
    "LOCPATH",
    "NLSPATH",
    "HOSTALIASES",
    "TMPDIR",
    "TORCH_EXTENSIONS_DIR",
    "CUDA_CACHE_PATH",
    "OPENSSL_CONF",
    "SSL_CERT_FILE",
}
_LOADER_PREFIXES = ("PYTHON", "LD_", "DYLD_", "BASH_FUNC", "TORCHINDUCTOR_", "TRITON_", "MALLOC_")


def is_shell_name(name) -> bool:
    return isinstance(name, str) and _SHELL_NAME.fullmatch(name) is not None


def is_loader_variable(name: str) -> bool:
    """A variable that changes which code the interpreter, the shell or the loader runs."""
    return name.upper() in _LOADER_NAMES or name.upper().startswith(_LOADER_PREFIXES)


def check_shell_name(name, where: str) -> str:
    if not is_shell_name(name):
        raise PlanError(
            f"{where}: {name!r} is not a shell variable name (letters, digits and _, not "
            "starting with a digit); nothing was written or run"
        )
    return name


def argv_from_manifest(recorded: Sequence[str], extra: Sequence[str], path: str) -> tuple[list[str], list[str]]:
    """The recorded task arguments without the widening flags that ``extra`` (this command line)
    does not give again; returns (argv, flags left out)."""
    if not isinstance(recorded, list) or not all(isinstance(a, str) for a in recorded):
        raise PlanError(f"{path}: 'argv' is not a list of strings; it was not written by this launcher")
    left_out = [f for f in WIDENING_FLAGS if get_flag(recorded, f) is not None and get_flag(list(extra), f) is None]
    return drop_flags(recorded, lambda f: f in left_out), left_out


def env_from_manifest(recorded, path: str) -> tuple[dict[str, str], list[str]]:
    """The recorded variables that may be applied, and the names left out (loader variables).
    A name that is not a shell identifier or a value that is not a string is an error."""
    if recorded is None:
        return {}, []
    if not isinstance(recorded, dict):
        raise PlanError(f"{path}: 'env' is not an object of variables; it was not written by this launcher")
    env, left_out = {}, []
    for name, value in recorded.items():
        check_shell_name(name, f"{path}, 'env'")
        if not isinstance(value, str) or "\0" in value:
            raise PlanError(f"{path}, 'env': the value of {name} is not a plain string: {value!r}")
        if is_loader_variable(name):
            left_out.append(name)
        else:
            env[name] = value
    return env, left_out


def widening_flags_in(argv: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``extra`` plus the widening switches that ``argv`` (the user's own script / command line)
    turned on: a job that rebuilds its tasks from the manifest gets them from its command line."""
    added = [f for f in WIDENING_FLAGS if get_flag(list(argv), f) is True and get_flag(list(extra), f) is None]
    return [*extra, *added]


def describe(
    path: str, argv: Sequence[str], env: Mapping[str, str], flags_left_out: Sequence[str], env_left_out: Sequence[str]
) -> list[str]:
    """The lines the launcher prints with the plan when it resumes from a manifest."""
    lines = [
        f"from {path}: task arguments {shlex.join(argv)}",
        f"from {path}: environment " + (" ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items())) or "(none)"),
    ]
    for flag in flags_left_out:
        lines.append(
            f"{path} records {flag}, which is not applied: flags that widen what runs are taken "
            f"only from this command line (add `-- {flag}` to mean it)"
        )
    if env_left_out:
        lines.append(
            f"{path} records {', '.join(sorted(env_left_out))}, not applied: variables that change "
            "what the interpreter or the loader runs are never taken from a run folder (set them "
            "in your shell if you mean them)"
        )
    return lines


def refuse_symlinked_outputs(experiment_dir: str, task_ids: Sequence[int] = (), *, eval_dir: bool = True) -> None:
    """Refuse a run folder whose output folders or files are symbolic links (they would be written
    through, outside the folder). The run folder itself may be a link (e.g. to scratch space)."""
    names = ["manifest.json", "args.json", "command.sh", "job.sbatch", ".launcher.lock"]
    for t in task_ids:
        names += [f"task{t}", os.path.join(f"task{t}", "train.log"), os.path.join(f"task{t}", "args.json")]
    if eval_dir:
        names += ["eval", os.path.join("eval", "eval.log")]
    for name in names:
        path = os.path.join(experiment_dir, name)
        if os.path.islink(path):
            raise PlanError(
                f"{path} is a symbolic link (to {os.readlink(path)}); an output inside the run "
                "folder is never written through a link: replace it by a real folder or file"
            )
