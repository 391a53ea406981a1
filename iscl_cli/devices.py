"""Choosing the compute device and its mixed-precision type."""

from __future__ import annotations

import torch

from iscl_cli.errors import IsclError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; a named device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise IsclError(f"unknown device {name!r}; use one of {', '.join(DEVICE_CHOICES)} (or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise IsclError("--device cuda asked for, but torch sees no CUDA GPU (is this a CPU build of torch?)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise IsclError("--device mps asked for, but MPS is not available here")
    return device


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast on GPUs that support it (no loss scaling needed); full precision elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def use_threads(count: int | None) -> None:
    """Let torch use ``count`` CPU threads (None: torch's default, one per core)."""
    if count is None:
        return
    if count < 1:
        raise IsclError(f"--threads must be at least 1 (got {count})")
    torch.set_num_threads(count)
