"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half a file.

Every writer goes through the same steps: write a temporary file in the *same* directory (so the
final rename never crosses a filesystem), flush and fsync it, then ``os.replace`` it over the
target (atomic on POSIX), then fsync the directory so the rename itself survives a crash.
A process killed half-way leaves at most a stray ``.<name>.*.tmp`` file, never a truncated target.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, IO

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_torch_save", "atomic_write_with"]


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


def atomic_write_with(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(f)`` on a temporary binary file next to ``path``, then atomically move it there.

    The parent directory is created if needed. On any error the temporary file is removed and the
    target is left untouched. Returns the target path.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
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
