"""Every checkpoint load and save of the project.

Loading (``load_checkpoint``): a checkpoint is data, never code. Every entry point (main_continual's
``--pretrained_model`` / ``--resume_from_checkpoint``, main_linear, the run-folder evaluation, the
benchmarks) reads files through ``load_checkpoint``, which uses ``torch.load(weights_only=True)``:
tensors, plain containers and numbers load, and any other global (a class or function the pickle
would call) is refused before it runs, with an error naming the global and the file. The only
globals allowed beyond torch's own are listed by ``allowed_global_names``. ``trust=True`` (the
``--trust_checkpoint`` flag) unpickles everything for files whose origin the user knows, and says
so in the log. ``resume_context`` applies the same rule to Lightning's own resume load.

Saving: atomic writes. A reader (or a resumed run) sees the old file or the new one, never half a
file. Every writer goes through the same steps: write a temporary file in the *same* directory (so the
final rename never crosses a filesystem), flush and fsync it, then ``os.replace`` it over the
target (atomic on POSIX), then fsync the directory so the rename itself survives a crash.
A process killed half-way leaves at most a stray ``.<name>.*.tmp`` file, never a truncated target.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import pickle
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_torch_save",
    "atomic_write_with",
    "save_trainer_checkpoint",
    "allowed_global_names",
    "CheckpointError",
    "UnsafeCheckpointError",
    "load_checkpoint",
    "resume_context",
    "unsafe_globals",
    "check_loadable",
    "read_checkpoint",
    "check_compatible",
    "load_pretrained",
]

log = logging.getLogger("cassle.checkpoint")


def _fsync_dir(directory: Path) -> None:
    # Not every filesystem lets a directory be opened / fsynced; the rename is still atomic there.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_with(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(f)`` on a temporary binary file next to ``path``, then atomically move it there.

    The parent directory is created if needed. On any error the temporary file is removed and the
    target is left untouched. Returns the target path.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; results should read like any file
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(err, OSError) and err.errno == errno.ENOSPC and not err.filename:
            raise OSError(err.errno, err.strerror, os.fspath(target)) from err  # name the file
        raise
    _fsync_dir(target.parent)
    return target


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_write_bytes needs bytes, got {type(data).__name__}")
    return atomic_write_with(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, data: str, encoding: str = "utf-8") -> Path:
    """Atomically write the string ``data`` to ``path``."""
    if not isinstance(data, str):
        raise TypeError(f"atomic_write_text needs str, got {type(data).__name__}")
    return atomic_write_bytes(path, data.encode(encoding))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` through a temporary file + rename, so ``path`` is never partial."""
    import torch  # lazy: the launcher uses this module without paying for the torch import

    return atomic_write_with(path, lambda f: torch.save(obj, f))


def save_trainer_checkpoint(trainer, path: str | os.PathLike) -> None:
    """Lightning's full checkpoint (weights, optimiser, loops, callbacks) written atomically.

    Every rank calls it (Lightning's writer is collective); rank 0 writes a temporary file next to
    ``path`` and renames it (Lightning's own writer truncates the target in place).
    """
    tmp = f"{os.fspath(path)}.tmp"
    try:
        trainer.save_checkpoint(tmp, weights_only=False)  # the full state: resume needs it
    except BaseException as err:
        if trainer.is_global_zero:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC and not err.filename:
            raise OSError(err.errno, err.strerror, os.fspath(path)) from err  # name the file
        raise
    if trainer.is_global_zero:
        os.replace(tmp, path)
        _fsync_dir(Path(path).parent)
    trainer.strategy.barrier()


# --------------------------------------------------------------------------- safe loading
class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, unreadable, not a checkpoint, or unsafe."""


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint's pickle needs a global (class or function) outside the allowlist."""

    def __init__(self, path: str, globals_: list[str]):
        self.path, self.globals = path, globals_
        numpy = any(g.split(".", 1)[0] == "numpy" for g in globals_)
        super().__init__(
            f"refusing to load {path!r}: it needs {', '.join(globals_)}, not on the "
            "checkpoint allowlist (a pickle can run code through such globals"
            + (", and a numpy array can be built to read memory addresses from the file" if numpy else "")
            + "). Nothing was loaded. "
            + (
                f"If it is a checkpoint of this code written before RNG states were stored as tensors, "
                f"convert it once with `python -m cassle.utils.checkpoint upgrade {path}`; "
                if numpy
                else ""
            )
            + "if you know where the file comes from and trust it, pass --trust_checkpoint"
        )


def _allowed_globals() -> list:
    """Globals a checkpoint may use beyond torch's defaults (tensors, plain containers, numbers).

    None. numpy's array reconstruction used to be here (for the numpy RNG state of checkpoints
    written before RNG states were stored as tensors), but ``numpy.ndarray`` + ``numpy.dtype``
    can build an *object* array whose element pointers are read from the file: no numpy global
    loads. Such older files are converted once by ``python -m cassle.utils.checkpoint upgrade FILE``
    (``cassle.utils.checkpoint_upgrade``, which builds numeric arrays only).
    """
    return []


def allowed_global_names() -> list[str]:
    """The allowlist, as the ``module.name`` strings that appear in checkpoints (empty)."""
    return sorted({e[1] if isinstance(e, tuple) else f"{e.__module__}.{e.__qualname__}" for e in _allowed_globals()})


@contextlib.contextmanager
def resume_context() -> Iterator[None]:
    """Lets ``torch.load(weights_only=True)`` (ours, or Lightning's resume) use the allowlist."""
    import torch

    with torch.serialization.safe_globals(_allowed_globals()):
        yield


_GLOBAL_IN_ERROR = re.compile(r"GLOBAL (\S+) was not an allowed global")


def unsafe_globals(path: str | os.PathLike, error: BaseException | None = None) -> list[str]:
    """The globals of the file that the allowlist does not cover, read without unpickling it."""
    import torch

    found: list[str] = []
    try:
        with resume_context():
            found = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a zip checkpoint (legacy format): the load error names the first one
        pass
    if error is not None:
        found += [m for m in _GLOBAL_IN_ERROR.findall(str(error)) if m not in found]
    return found


def check_loadable(path: str | os.PathLike, *, trust: bool = False) -> None:
    """Refuse (``UnsafeCheckpointError``) a file that ``load_checkpoint`` would refuse, without
    unpickling it: the launcher checks ``PRETRAINED_PATH`` before the first task starts."""
    if not trust and os.path.isfile(path):
        names = unsafe_globals(path)
        if names:
            raise UnsafeCheckpointError(os.fspath(path), names)


def load_checkpoint(path: str | os.PathLike, *, trust: bool = False) -> dict:
    """Read a checkpoint file on the CPU without running code from it (unless ``trust``).

    Raises ``CheckpointError`` (missing or unreadable file, not a dict) or
    ``UnsafeCheckpointError`` (a global outside the allowlist), both naming the file.
    """
    import torch

    path = os.fspath(path) if path else path
    if not path or not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path!r}")
    if trust:
        log.warning("--trust_checkpoint: loading %s with full unpickling; any code it carries runs", path)
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:
            raise CheckpointError(f"cannot read checkpoint {path!r}: {err}") from err
    else:
        try:
            with resume_context():
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            names = unsafe_globals(path, err)
            if names:
                raise UnsafeCheckpointError(path, names) from None
            raise CheckpointError(f"cannot read checkpoint {path!r}: {_first_line(err)}") from None
        except Exception as err:  # truncated or foreign file
            raise CheckpointError(f"cannot read checkpoint {path!r}: {_first_line(err)}") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path!r} is not a checkpoint (it holds a {type(ckpt).__name__}, not a dict)")
    return ckpt


def _first_line(err: BaseException) -> str:
    """The line of a (long, multi-paragraph) torch.load error that says what went wrong."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for i, line in enumerate(lines):  # torch puts the cause after "WeightsUnpickler error:"
        if "WeightsUnpickler error:" in line:
            rest = line.split("WeightsUnpickler error:", 1)[1].strip()
            return rest or (lines[i + 1] if i + 1 < len(lines) else line)
    return lines[0] if lines else type(err).__name__


# --------------------------------------------------------------------------- a previous task's weights
# Keys a checkpoint may lack or carry beyond the model: the CaSSLe parts exist only from task 1 on;
# continual strategies (buffer, Fisher, PFR projector) only in runs that use them; the
# --momentum_classifier monitor only when asked for (it starts afresh otherwise).
DISTILL_PREFIXES = ("frozen_", "distiller.", "strategies.", "momentum_classifier.", "pocon.")


def read_checkpoint(path: str, *, trust: bool = False, hints=None) -> dict:
    """A Lightning checkpoint (a dict with a ``state_dict``) for --pretrained_model / resume.

    A checkpoint of the original cassle code comes back in this code's names (the mapping table of
    ``cassle.utils.original_checkpoint``), with ``hyper_parameters`` from its args.json, its weights
    and ``hints`` (the run's ``backbone`` / ``method``, which must fit)."""
    from cassle.utils import original_checkpoint as original

    if not path or not os.path.isfile(path):
        raise CheckpointError(
            f"checkpoint not found: {path!r} (for --pretrained_model pass the "
            "previous task's last.ckpt, e.g. experiments/<run>/task0/last.ckpt)"
        )
    ckpt = load_checkpoint(path, trust=trust)
    if not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path!r} is not a cassle/Lightning checkpoint (no state_dict)")
    if original.is_original(ckpt["state_dict"]):
        try:
            ckpt = original.convert(ckpt, path, _hints(hints))
        except original.OriginalCheckpointError as err:
            raise CheckpointError(str(err)) from None
    return ckpt


def _hints(source) -> dict:
    """backbone / method / dataset from an argparse namespace or a dict (None entries dropped)."""
    if source is None:
        return {}
    get = source.get if isinstance(source, dict) else lambda k: getattr(source, k, None)
    return {k: get(k) for k in ("backbone", "method", "dataset") if get(k) is not None}


# Resuming continues the checkpoint's lr schedule: its saved step counter only means the same
# thing under the same scheduler and interval (epochs or optimizer steps).
RESUME_SAME_KEYS = ("scheduler", "scheduler_interval")


def check_compatible(ckpt: dict, path: str, args, resume: bool = False) -> None:
    """The checkpoint must come from the same method and backbone (a resume: also the same
    schedule, RESUME_SAME_KEYS)."""
    hp = ckpt.get("hyper_parameters") or {}
    for key in RESUME_SAME_KEYS if resume else ():
        theirs, ours = hp.get(key), getattr(args, key, None)
        if theirs is not None and ours is not None and theirs != ours:
            raise CheckpointError(
                f"cannot resume from {path!r}: it was trained with --{key} {theirs}, "
                f"this run uses --{key} {ours} (its lr schedule would not continue)"
            )
    for key in ("method", "backbone"):
        theirs, ours = hp.get(key), getattr(args, key)
        if theirs is not None and theirs != ours:
            raise CheckpointError(
                f"checkpoint {path!r} was trained with {key}={theirs!r}, but this run uses {key}={ours!r}"
            )
    for key in ("output_dim", "num_classes"):
        theirs, ours = hp.get(key), getattr(args, key, None)
        if theirs is not None and ours is not None and theirs != ours:
            raise CheckpointError(f"checkpoint {path!r} has {key}={theirs}, this run {key}={ours}")


# A buffer refilled during training: a checkpoint's copy of another size (the original kept
# queue_size // world_size rows per process for SwAV) is not loaded.
REFILLED_BUFFERS = ("queue",)


def load_pretrained(model, ckpt: dict, path: str) -> None:
    """Load all weights; only CaSSLe parts (frozen copies, predictor) may be missing or extra.

    Every other missing, unexpected or differently shaped key is an error naming the keys. For a
    checkpoint of the original code, the loaded, ignored and freshly initialised keys are printed.
    """
    from cassle.utils import original_checkpoint as original

    own = model.state_dict()
    state = dict(ckpt["state_dict"])
    ignored = [k for k in REFILLED_BUFFERS if k in state and k in own and state[k].shape != own[k].shape]
    for k in ignored:
        del state[k]
    shapes = [
        f"{k} {tuple(v.shape)} (model: {tuple(own[k].shape)})"
        for k, v in state.items()
        if k in own and hasattr(v, "shape") and v.shape != own[k].shape
    ]
    if shapes:
        raise CheckpointError(
            f"checkpoint {path!r} does not match the model (another backbone, "
            f"head size or number of classes?): {shapes[:5]}"
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad_missing = [k for k in missing if not k.startswith(DISTILL_PREFIXES) and k not in ignored]
    bad_unexpected = [k for k in unexpected if not k.startswith(DISTILL_PREFIXES)]
    if bad_missing or bad_unexpected:
        raise CheckpointError(
            f"checkpoint {path!r} does not match the model (another method?): "
            f"missing {bad_missing[:8]}, unexpected {bad_unexpected[:8]}"
        )
    if ckpt.get("original_format"):
        loaded = [k for k in state if k not in unexpected]
        print(
            f"[checkpoint] {path}: original cassle checkpoint, mapped to this code's names "
            f"(cassle/utils/original_checkpoint.py)\n"
            f"[checkpoint]   loaded: {original.describe(loaded)}\n"
            f"[checkpoint]   ignored: {original.describe(list(unexpected) + ignored)}\n"
            f"[checkpoint]   not in the checkpoint: "
            f"{original.describe([k for k in missing if k not in ignored])} (frozen copies are "
            "taken from the loaded weights when the task starts; the rest starts fresh)",
            flush=True,
        )


if __name__ == "__main__":  # python -m cassle.utils.checkpoint upgrade FILE
    import sys

    from cassle.utils.checkpoint_upgrade import main

    sys.exit(main())
