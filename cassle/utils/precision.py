"""What ``--precision auto`` means (pretraining and linear evaluation share the rule).

auto = bf16 mixed precision on a GPU with *native* bf16 (compute capability 8.0 or newer: A100,
H100, ...), else full fp32. ``torch.cuda.is_bf16_supported()`` alone also answers True on older
GPUs (V100) where bf16 is only emulated and slow, so the capability is checked too. On those GPUs
auto trains in fp32; ``--precision 16`` (read as ``16-mixed``) gives the reference's fp16.
"""

from __future__ import annotations

import torch


def native_bf16() -> bool:
    """True when the current CUDA device computes bf16 natively (capability >= 8.0)."""
    if not torch.cuda.is_available():
        return False
    major, _minor = torch.cuda.get_device_capability()
    return major >= 8 and torch.cuda.is_bf16_supported()


def auto_precision(on_gpu: bool) -> str:
    """``--precision auto`` resolved: "bf16-mixed" on a GPU with native bf16, else "32-true"."""
    return "bf16-mixed" if on_gpu and native_bf16() else "32-true"


def normalise_precision(value) -> str:
    """The user's spelling in Lightning's: 16 -> 16-mixed (fp16, as the reference), bf16 -> bf16-mixed."""
    text = str(value)
    return {"16": "16-mixed", "bf16": "bf16-mixed", "32": "32-true"}.get(text, text)
