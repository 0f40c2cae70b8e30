"""A recorder of the calls that would block a CUDA stream, usable on the CPU.

On a GPU these calls make the host wait for the device (or copy from pageable host memory, which
serialises with the stream), so the CPU stops queueing work ahead and the GPU idles:

  * ``Tensor.item / tolist / numpy / cpu`` and the conversions ``bool / int / float / index`` (and
    formatting) of a tensor (device -> host reads);
  * ops whose output size depends on the data (``nonzero``, boolean-mask indexing,
    ``masked_select``, ``unique``, ``bincount``, ``repeat_interleave`` with tensor repeats, one-
    argument ``where``): the host must read a count before it can allocate the result;
  * ``torch.tensor / as_tensor / new_tensor`` of Python data with a device (a host -> device copy);
  * host -> device copies of *fresh* host tensors: a tensor made on the host during the run (a
    factory call without ``device=``, ``from_numpy``, or anything computed from those) that is then
    moved with ``.to(device) / .cuda()`` or mixed into an op with device tensors (``copy_``,
    indexing, arithmetic...). Mixing in a zero-dimensional host tensor is exempt: CUDA kernels
    take it by value.

Everything runs on the CPU (``--data_device cpu_batched`` runs the GPU code), so "device" means "not
fresh": tensors that existed before recording started (parameters, buffers, data on the device) or
were made with an explicit ``device=``. A ``TorchFunctionMode`` sees every torch call from Python;
each event is named by the innermost source line outside torch (a line of this repository when one
is on the stack, the library line as well when the call happens inside a library).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch.overrides import TorchFunctionMode

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TORCH_DIR = os.path.dirname(torch.__file__)
_HERE = os.path.abspath(__file__)

_READS = {
    "item",
    "tolist",
    "numpy",
    "cpu",
    "__bool__",
    "__int__",
    "__float__",
    "__index__",
    "__format__",
    "__repr__",
    "__array__",
}
_DATA_DEPENDENT = {"nonzero", "argwhere", "masked_select", "unique", "unique_consecutive", "bincount"}
_FROM_DATA = {"tensor", "as_tensor", "asarray", "new_tensor"}
_FACTORIES = {
    "tensor",
    "as_tensor",
    "asarray",
    "zeros",
    "ones",
    "empty",
    "full",
    "arange",
    "range",
    "linspace",
    "logspace",
    "eye",
    "rand",
    "randn",
    "randint",
    "randperm",
    "empty_strided",
    "scalar_tensor",
    "zeros_like",
    "ones_like",
    "full_like",
    "empty_like",
    "rand_like",
    "randn_like",
    "randint_like",
}
_LIKE = {"zeros_like", "ones_like", "full_like", "empty_like", "rand_like", "randn_like", "randint_like"}
_FRESH = "_stall_recorder_fresh"


def _is_fresh(t) -> bool:
    return isinstance(t, torch.Tensor) and getattr(t, _FRESH, False)


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def _mark(obj) -> None:
    for t in _tensors(obj):
        try:
            setattr(t, _FRESH, True)
        except (AttributeError, RuntimeError):
            pass


def _has_bool_index(index) -> bool:
    return any(t.dtype in (torch.bool, torch.uint8) for t in _tensors(index))


def _data_dependent(name: str, args, kwargs) -> bool:
    if name in _DATA_DEPENDENT:
        return True
    if name == "where":
        return len(args) + len(kwargs) == 1
    if name == "repeat_interleave":
        repeats = args[1] if len(args) > 1 else kwargs.get("repeats")
        return isinstance(repeats, torch.Tensor) and repeats.numel() > 1 and kwargs.get("output_size") is None
    if name in ("__getitem__", "__setitem__", "index_put_", "index_put"):
        return len(args) > 1 and _has_bool_index(args[1])
    return False


def _has_python_data(obj) -> bool:
    return not isinstance(obj, torch.Tensor)


def _names_device(args, kwargs) -> bool:
    """A `.to(...)` call that names a device (a device, a string, or a tensor to copy it from)."""
    if kwargs.get("device") is not None:
        return True
    for a in args[1:]:
        if isinstance(a, (torch.device, str, torch.Tensor, int)) and not isinstance(a, bool):
            return True
    return False


def where() -> str:
    """file:line (function) of the innermost frame outside torch, plus this repository's innermost
    frame when the first is in a library."""
    frame = sys._getframe(1)
    outside, ours = None, None
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if path != _HERE and not path.startswith(_TORCH_DIR):
            label = f"{path}:{frame.f_lineno} ({frame.f_code.co_name})"
            if path.startswith(REPO + os.sep) and "site-packages" not in path:
                label = f"{os.path.relpath(path, REPO)}:{frame.f_lineno} ({frame.f_code.co_name})"
                ours = ours or label
            outside = outside or label
            if ours:
                break
        frame = frame.f_back
    if outside is None:
        return "<unknown>"
    return outside if ours in (None, outside) else f"{outside} via {ours}"


@dataclass
class Event:
    kind: str  # "read", "sync", "from_data", "h2d"
    call: str  # the torch call
    where: str  # file:line (function)

    def __str__(self) -> str:
        return f"{self.where}: {self.call} [{self.kind}]"


class StallRecorder(TorchFunctionMode):
    """Records blocking calls while ``recording`` is True (a TorchFunctionMode: use ``with``)."""

    def __init__(self):
        super().__init__()
        self.recording = False
        self.events: list[Event] = []

    def _record(self, kind: str, call: str) -> None:
        if self.recording:
            self.events.append(Event(kind, call, where()))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if name in _READS and args and isinstance(args[0], torch.Tensor) and not _is_fresh(args[0]):
            self._record("read", f"Tensor.{name}")
        elif (
            _data_dependent(name, args, kwargs)
            and args
            and isinstance(args[0], torch.Tensor)
            and not _is_fresh(args[0])
        ):
            self._record("sync", f"{name} (output size read from the device)")
        elif (
            name in _FROM_DATA
            and kwargs.get("device") is not None
            and (name == "new_tensor" or _has_python_data(args[0] if args else kwargs.get("data")))
        ):
            self._record("from_data", f"torch.{name}(python data, device=...)")
        elif name == "new_tensor" and args and not _is_fresh(args[0]):
            self._record("from_data", "Tensor.new_tensor(python data) on a device tensor")
        elif name in ("to", "cuda") and args and _is_fresh(args[0]) and (name == "cuda" or _names_device(args, kwargs)):
            self._record("h2d", f"Tensor.{name} of a fresh host tensor")
        elif name not in ("to", "cuda"):
            tensors = list(_tensors(args)) + list(_tensors(kwargs))
            fresh = [t for t in tensors if _is_fresh(t)]
            if fresh and len(fresh) < len(tensors) and any(t.dim() > 0 for t in fresh):
                self._record("h2d", f"{name} mixes a fresh host tensor into a device op")

        out = func(*args, **kwargs)

        # Freshness: host-made tensors and what is computed from them only.
        if name in _FACTORIES:
            first = args[0] if args else kwargs.get("data")
            if name in _LIKE:
                if _is_fresh(first) and kwargs.get("device") is None:
                    _mark(out)
            elif kwargs.get("device") is None and not (isinstance(first, torch.Tensor) and not _is_fresh(first)):
                _mark(out)
        elif name == "from_numpy":
            _mark(out)
        elif name in ("to", "cuda") and (name == "cuda" or _names_device(args, kwargs)):
            # Moved to the device: not fresh (on the CPU `to` returns the same tensor).
            for t in _tensors(out):
                if _is_fresh(t):
                    delattr(t, _FRESH)
        else:
            tensors = list(_tensors(args)) + list(_tensors(kwargs))
            if tensors and all(_is_fresh(t) for t in tensors):
                _mark(out)
        return out


class StepWindows(pl.Callback):
    """Splits the recorder's events by training step: window i runs from the start of batch i to
    the start of batch i + 1 (the step, the optimiser, the hooks after it and the fetch, transfer
    and augmentation of the next batch)."""

    def __init__(self, recorder: StallRecorder):
        self.recorder = recorder
        self.windows: list[list[Event]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.recorder.recording:
            self.windows.append(self.recorder.events)
        self.recorder.events = []
        self.recorder.recording = True

    def on_train_end(self, trainer, pl_module) -> None:
        self.recorder.recording = False  # the last window is cut short: not counted
