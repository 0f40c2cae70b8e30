"""Losses run in float32 even inside bf16/fp16 autocast.

Batch statistics, 2048x2048 cross-correlations and softmaxes over thousands of logits lose too
much with 8 (bf16) or 10 (fp16) mantissa bits; the cost is negligible next to the backbone.
float64 inputs (the tests) stay float64.
"""

from __future__ import annotations

import functools

import torch

_HALF = (torch.float16, torch.bfloat16)


def _upcast(x):
    if torch.is_tensor(x):
        return x.float() if x.dtype in _HALF else x
    if isinstance(x, (list, tuple)):
        return type(x)(_upcast(v) for v in x)
    return x


def _device_type(values) -> str:
    for v in values:
        if torch.is_tensor(v):
            return v.device.type
        if isinstance(v, (list, tuple)) and v:
            return _device_type(v)
    return "cpu"


def full_precision(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device_type = _device_type(list(args) + list(kwargs.values()))
        with torch.autocast(device_type=device_type, enabled=False):
            return fn(*_upcast(args), **{k: _upcast(v) for k, v in kwargs.items()})

    return wrapper
