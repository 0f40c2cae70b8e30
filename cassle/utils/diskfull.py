"""Disk full (ENOSPC) while a run writes: one clear line, stray temporary files removed.

Every writer of the project writes a temporary file next to its target and renames it
(``cassle.utils.checkpoint``): a full disk leaves the old target intact and, at worst, a stray
temporary file (``.<name>.<random>.tmp`` or ``<name>.tmp``). ``is_disk_full`` recognises the error
(``OSError`` ENOSPC / EDQUOT anywhere in the exception chain, or torch's zip writer failing while
the disk has no room left), ``message`` says which file was being written, and
``remove_stray_tmp`` deletes only those temporary files, never a target.
"""

from __future__ import annotations

import errno
import os
import re
import shutil

__all__ = ["is_disk_full", "message", "remove_stray_tmp", "LOW_SPACE_BYTES"]

LOW_SPACE_BYTES = 64 * 2**20  # below this, a "file write failed" from torch's writer is a full disk
_FULL = (errno.ENOSPC, errno.EDQUOT)
_TMP = re.compile(r"(\..+\.[^.]+\.tmp|.+\.tmp)")  # atomic_write_with's and save_trainer_checkpoint's


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def is_disk_full(err: BaseException, folder: str | None = None) -> bool:
    for e in _chain(err):
        if isinstance(e, OSError) and e.errno in _FULL:
            return True
        text = str(e)
        if "No space left on device" in text or "Disk quota exceeded" in text:
            return True
        if folder and "write failed" in text:  # torch's zip writer hides the errno
            try:
                return shutil.disk_usage(folder).free < LOW_SPACE_BYTES
            except OSError:
                return False
    return False


def message(err: BaseException, default_path: str) -> str:
    """``no space left on device while writing PATH`` (the file the error names, else ``default_path``)."""
    path = next((e.filename for e in _chain(err) if isinstance(e, OSError) and e.filename), None)
    return f"no space left on device while writing {os.fspath(path or default_path)}"


def remove_stray_tmp(*folders: str) -> list[str]:
    """Delete the temporary files an interrupted atomic write leaves in ``folders`` (not recursive);
    returns their paths."""
    removed = []
    for folder in folders:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            path = os.path.join(folder, name)
            if _TMP.fullmatch(name) and os.path.isfile(path) and not os.path.islink(path):
                try:
                    os.unlink(path)
                    removed.append(path)
                except OSError:
                    pass
    return removed
