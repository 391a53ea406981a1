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


PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(device: torch.device, precision: str | None = None) -> torch.dtype | None:
    """The dtype to autocast to on ``device`` (None: fp32, no autocast) for ``precision``,
    one of ``PRECISIONS``. None picks bf16 on GPUs that support it (float32's range, so no
    loss scaling or overflow) and fp32 elsewhere: a CPU runs bf16 fast only with AMX or
    AVX-512 BF16 instructions, so on a CPU it is asked for, not assumed (docs/tiling.md)."""
    if precision is None:
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if precision not in PRECISIONS:
        raise IsclError(f"--precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")
    dtype = PRECISIONS[precision]
    if dtype is torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise IsclError(f"this GPU ({torch.cuda.get_device_name(device)}) has no bf16; pass --precision fp16 or fp32")
    return dtype


def use_threads(count: int | None) -> None:
    """Let torch use ``count`` CPU threads (None: torch's default, one per core)."""
    if count is None:
        return
    if count < 1:
        raise IsclError(f"--threads must be at least 1 (got {count})")
    torch.set_num_threads(count)
