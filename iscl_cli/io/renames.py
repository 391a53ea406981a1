"""Renames that ``os.replace`` cannot do: one that never replaces, and one that swaps two names.

Both are single system calls where the system has them (Linux ``renameat2``, macOS
``renamex_np``), so no other process can slip in between a check and the rename. Where
it has not, ``rename_no_replace`` falls back to a hard link (atomic for files) and
``exchange`` says it could not, so that the caller can fall back.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path

_LINUX_NOREPLACE, _LINUX_EXCHANGE = 1, 2  # <linux/fs.h>
_MACOS_SWAP, _MACOS_EXCL = 0x2, 0x4  # <stdio.h>
_AT_FDCWD = -100
_UNSUPPORTED = (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP)


def rename_no_replace(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``; ``FileExistsError`` when ``target`` exists, however recently it appeared."""
    if _rename_with_flags(source, target, _LINUX_NOREPLACE, _MACOS_EXCL):
        return
    if source.is_dir():
        # rename(2) refuses a non-empty folder or a file at target; only an empty folder could be replaced.
        if target.exists() or target.is_symlink():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
        os.rename(source, target)
        return
    os.link(source, target)  # fails with FileExistsError when target exists, atomically
    os.unlink(source)


def exchange(first: Path, second: Path) -> bool:
    """Swap the names of two existing paths in one step; False where the system cannot."""
    return _rename_with_flags(first, second, _LINUX_EXCHANGE, _MACOS_SWAP)


def _rename_with_flags(source: Path, target: Path, linux_flag: int, macos_flag: int) -> bool:
    """The flagged rename system call; False when it is not available here (nothing was renamed)."""
    call = _flagged_rename()
    if call is None:
        return False
    flag = linux_flag if sys.platform.startswith("linux") else macos_flag
    if call(os.fsencode(source), os.fsencode(target), flag) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(source), None, str(target))


@functools.cache
def _flagged_rename() -> Callable[[bytes, bytes, int], int] | None:
    """``(source, target, flags) -> int`` from the C library, or None on systems without one."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    if hasattr(libc, "renameat2"):
        renameat2 = libc.renameat2
        renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        return lambda source, target, flags: renameat2(_AT_FDCWD, source, _AT_FDCWD, target, flags)
    if hasattr(libc, "renamex_np"):
        renamex_np = libc.renamex_np
        renamex_np.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        return renamex_np
    return None
