"""``python -m cassle.utils.checkpoint upgrade FILE [FILE ...]``: convert an older checkpoint once.

Checkpoints this code wrote before RNG states were stored as tensors carry numpy's RNG state as a
numpy array, and numpy is not on the load allowlist any more (``numpy.ndarray`` + ``numpy.dtype``
can build an object array whose element pointers come from the file). This command reads such a
file with ``torch.load(weights_only=True)`` where numpy's three globals stand for *inert* stand-ins
(``_Array`` / ``_Dtype`` below): they build an array only from raw bytes and only for a numeric
dtype (bool, integers, floats, complex); any other dtype (object, structured, strings) is refused
before a byte of it is used. Every other global is refused as by ``load_checkpoint``.

The numpy RNG states (``(name, keys, pos, has_gauss, cached)`` tuples) become the plain form that
checkpoints hold now (``cassle.utils.rng_state.numpy_state_to_plain``); any other numeric array
becomes a tensor. The original stays next to the file as ``FILE.before-upgrade`` (a hard link, or
a copy where links are not possible); the new file is written atomically and loaded back with the
ordinary loader before the command says it is done.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import sys
from typing import Any

__all__ = ["BACKUP_SUFFIX", "upgrade", "main"]

BACKUP_SUFFIX = ".before-upgrade"
_NUMERIC = re.compile(r"[<>|=]?[biufc]\d{1,2}")  # bool, int, uint, float, complex (no object, no record)


class _Dtype:
    """Stands for ``numpy.dtype(spec, align, copy)`` + its pickled state: records, builds nothing."""

    def __init__(self, spec=None, align=False, copy=True, *_):
        self.spec, self.order = spec, None

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) > 1 and isinstance(state[1], str):
            self.order = state[1]

    def numpy(self, where: str):
        import numpy as np

        if not isinstance(self.spec, str) or not _NUMERIC.fullmatch(self.spec):
            raise ValueError(
                f"{where}: a numpy array of dtype {self.spec!r} (only bool, integer, float "
                "and complex arrays are converted; an object array would read memory "
                "addresses from the file)"
            )
        dtype = np.dtype(self.spec)
        return dtype.newbyteorder(self.order) if self.order in ("<", ">") else dtype


class _Array:
    """Stands for ``numpy.ndarray`` while the file is read; ``value()`` builds the numeric array."""

    def __init__(self, *_):
        self.state = None

    def __setstate__(self, state):
        self.state = state

    def value(self, where: str):
        import numpy as np

        state = self.state
        if not (isinstance(state, tuple) and len(state) == 5):
            raise ValueError(f"{where}: a numpy array without the usual pickled state")
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _Dtype):
            raise ValueError(f"{where}: a numpy array whose dtype is not a numpy dtype")
        dtype = dtype.numpy(where)
        if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
            raise ValueError(f"{where}: a numpy array with shape {shape!r}")
        if not isinstance(raw, (bytes, bytearray)):
            raise ValueError(f"{where}: a numpy array whose data is not raw bytes")
        count = 1
        for n in shape:
            count *= n
        if len(raw) != count * dtype.itemsize:
            raise ValueError(
                f"{where}: a numpy array of shape {shape} and dtype {dtype} needs "
                f"{count * dtype.itemsize} bytes, the file holds {len(raw)}"
            )
        flat = np.frombuffer(bytes(raw), dtype=dtype).copy()
        return flat.reshape(shape, order="F" if fortran else "C")


def _reconstruct(subtype, shape, typecode):
    """Stands for ``numpy.core.multiarray._reconstruct``: an empty ``_Array`` (its state follows)."""
    if subtype is not _Array:
        raise pickle.UnpicklingError("_reconstruct of something other than numpy.ndarray")
    return _Array()


def _stand_ins() -> list:
    import numpy as np

    entries: list = [(_Array, "numpy.ndarray"), (_Dtype, "numpy.dtype")]
    entries += [(_reconstruct, f"{mod}.multiarray._reconstruct") for mod in ("numpy.core", "numpy._core")]
    for code in ("?", "b", "B", "h", "H", "i", "I", "l", "L", "q", "Q", "e", "f", "d", "F", "D"):
        entries.append((_Dtype, f"numpy.dtypes.{type(np.dtype(code)).__name__}"))
    return entries


def _read(path: str) -> dict:
    import torch

    from cassle.utils.checkpoint import CheckpointError, UnsafeCheckpointError, _first_line, unsafe_globals

    try:
        with torch.serialization.safe_globals(_stand_ins()):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        names = [n for n in unsafe_globals(path, err) if not n.startswith("numpy")]
        if names:
            raise UnsafeCheckpointError(path, names) from None
        raise CheckpointError(f"cannot upgrade {path!r}: {_first_line(err)}") from None
    except Exception as err:
        raise CheckpointError(f"cannot read checkpoint {path!r}: {_first_line(err)}") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path!r} is not a checkpoint (it holds a {type(ckpt).__name__})")
    return ckpt


def _convert(value: Any, where: str, changed: list[str]) -> Any:
    """``value`` with every stand-in replaced: numpy RNG states -> plain form, arrays -> tensors."""
    import numpy as np
    import torch

    from cassle.utils.rng_state import numpy_state_to_plain

    if isinstance(value, _Array):
        changed.append(f"{where} (array -> tensor)")
        return torch.from_numpy(value.value(where))
    if isinstance(value, _Dtype):
        raise ValueError(f"{where}: a bare numpy dtype (not converted)")
    if isinstance(value, tuple) and len(value) == 5 and isinstance(value[0], str) and isinstance(value[1], _Array):
        keys = value[1].value(where)
        if keys.dtype.kind in "iu" and keys.ndim == 1:
            changed.append(f"{where} (numpy RNG state)")
            return numpy_state_to_plain((value[0], keys.astype(np.uint32), *value[2:]))
    if isinstance(value, dict):
        out = type(value)() if type(value) is not dict else {}
        for k, v in value.items():
            out[k] = _convert(v, f"{where}[{k!r}]", changed)
        return out
    if isinstance(value, (list, tuple)):
        items = [_convert(v, f"{where}[{i}]", changed) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    return value


def upgrade(path: str) -> list[str]:
    """Convert ``path`` in place (the original kept as ``path + BACKUP_SUFFIX``); returns what changed
    (empty: the file needed nothing and was left as it was). Raises ``CheckpointError``."""
    from cassle.utils.checkpoint import CheckpointError, atomic_torch_save, load_checkpoint

    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path!r}")
    changed: list[str] = []
    try:
        new = _convert(_read(path), "checkpoint", changed)
    except ValueError as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"refusing to upgrade {path!r}: {err}; the file is left as it was") from None
    if not changed:
        return []
    backup = path + BACKUP_SUFFIX
    if os.path.lexists(backup):
        raise CheckpointError(f"{backup} already exists; move it away before upgrading {path!r} again")
    try:
        os.link(path, backup)
    except OSError:
        shutil.copy2(path, backup)
    atomic_torch_save(new, path)
    load_checkpoint(path)  # the ordinary loader takes it now
    return changed


def main(argv=None) -> int:
    from cassle.utils.checkpoint import CheckpointError

    parser = argparse.ArgumentParser(
        prog="python -m cassle.utils.checkpoint",
        description="Convert checkpoints written before RNG states were stored as tensors (their numpy "
        f"RNG state) so that they load as data; the original is kept as FILE{BACKUP_SUFFIX}.",
    )
    parser.add_argument("command", choices=["upgrade"])
    parser.add_argument("files", nargs="+", metavar="FILE")
    opts = parser.parse_args(argv)
    for path in opts.files:
        try:
            changed = upgrade(path)
        except (CheckpointError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if changed:
            print(f"upgraded {path}: {', '.join(changed)}; the original is {path}{BACKUP_SUFFIX}")
        else:
            print(f"{path}: nothing to upgrade (it holds no numpy array)")
    return 0
