"""Atomic writes: build the output under a temporary name, rename it into place at the end.

Readers of the output folder then see either the old result or the complete new one,
never half a file, and an error leaves nothing behind under the final name. Temporary
names say which process on which machine made them, so that what a killed process left
behind is cleaned up the next time iscl writes into that folder.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from iscl_cli.errors import IsclError
from iscl_cli.io.renames import exchange, rename_no_replace

LOG = logging.getLogger("iscl")

LOW_SPACE_BYTES = 2**20
"""Free space below which a write error without an error code is taken for a full disk."""

LEFTOVER_NAME = re.compile(r"^\.(?P<final>.+)\.(?P<purpose>tmp|old)-(?P<host>[A-Za-z0-9]*)-(?P<pid>\d+)-[0-9a-f]{8}$")
"""``.NAME.tmp-HOST-PID-TOKEN`` (being written) and ``.NAME.old-HOST-PID-TOKEN`` (moved aside while replaced)."""

HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32]

_swept_folders: set[Path] = set()


@contextmanager
def atomic_path(final: Path, replace: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``final``; on success move it to ``final``.

    The caller creates a file or a folder at the yielded path. When the ``with`` block
    ends normally, that file or folder takes the name ``final``. An existing file or
    folder there is replaced when ``replace`` is true; otherwise it is kept and an
    IsclError says so, even when it appeared while the output was being built. When the
    block raises, the temporary file or folder is removed and ``final`` is untouched; a
    full disk becomes an IsclError saying so. The parent folder of ``final`` is created
    if needed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(final.parent)
    temporary = _sibling(final, "tmp")
    try:
        yield temporary
        _move_into_place(temporary, final, replace)
    except BaseException as error:
        disk_full = is_disk_full(error, final.parent)  # asked before removing the temporary frees its space
        remove_path(temporary)
        if disk_full:
            raise IsclError("no space left on device; nothing was written", final) from None
        raise


def is_disk_full(error: BaseException, folder: Path) -> bool:
    """Whether ``error`` from writing into ``folder`` means the file system is full.

    Some writers lose the error code (numpy: ``262144 requested and 261968 written``,
    torch: ``file write failed``); for those the free space decides.
    """
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(error, RuntimeError) or (isinstance(error, OSError) and not error.errno):
        try:
            return shutil.disk_usage(folder).free < LOW_SPACE_BYTES
        except OSError:
            return False
    return False


def remove_path(path: Path) -> None:
    """Delete a file or a folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def ensure_not_input(out_path: Path, source: Path) -> None:
    """Refuse an output that would replace the input or a folder holding it."""
    out_resolved, source_resolved = Path(out_path).resolve(), Path(source).resolve()
    if out_resolved == source_resolved or out_resolved in source_resolved.parents:
        raise IsclError(f"output would replace the input {source}; choose another output", out_path)


def clean_leftovers(folder: Path) -> None:
    """Remove the temporary outputs that stopped iscl processes on this machine left in
    ``folder``, and put back a folder an interrupted replacement had moved aside (once per
    folder and process)."""
    folder = Path(folder)
    key = folder.resolve()
    if key in _swept_folders:
        return
    _swept_folders.add(key)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    removed = 0
    for name in names:
        match = LEFTOVER_NAME.match(name)
        if match is None or match["host"] != HOST or _process_alive(int(match["pid"])):
            continue
        leftover, final = folder / name, folder / match["final"]
        if match["purpose"] == "old" and not (final.exists() or final.is_symlink()):
            os.replace(leftover, final)
            LOG.warning("%s: put back (an interrupted --overwrite had moved it aside)", final)
            continue
        remove_path(leftover)
        removed += 1
    if removed:
        LOG.warning("%s: removed %d unfinished output(s) left by stopped iscl processes", folder, removed)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _sibling(final: Path, purpose: str) -> Path:
    """A hidden, unused name in the same folder as ``final`` (same file system, so renames are atomic)."""
    return final.with_name(f".{final.name}.{purpose}-{HOST}-{os.getpid()}-{secrets.token_hex(4)}")


def _move_into_place(temporary: Path, final: Path, replace: bool) -> None:
    """Rename ``temporary`` to ``final``; replace what is there only when ``replace``."""
    if not replace:
        try:
            rename_no_replace(temporary, final)
        except FileExistsError:
            raise IsclError("appeared while this output was being written (another iscl process?) and was kept; "
                            "pass --overwrite to replace it", final) from None
    elif temporary.is_dir() and final.is_dir() and not final.is_symlink():
        _replace_folder(temporary, final)
    else:
        os.replace(temporary, final)


def _replace_folder(temporary: Path, final: Path) -> None:
    """Put the folder ``temporary`` in the place of the folder ``final``; at every moment
    ``final`` names the old or the new folder."""
    if exchange(temporary, final):
        remove_path(temporary)  # now the old folder
        return
    # No atomic swap here: move the old folder aside first (clean_leftovers puts it back
    # if this process is killed before the new one is in place).
    old = _sibling(final, "old")
    os.replace(final, old)
    try:
        os.replace(temporary, final)
    except BaseException:
        os.replace(old, final)
        raise
    remove_path(old)
