"""Atomic writes: build the output under a temporary name, rename it into place at the end.

Readers of the output folder then see either the old result or the complete new one,
never half a file, and an error leaves nothing behind under the final name.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from iscl_cli.errors import IsclError


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``final``; on success move it to ``final``.

    The caller creates a file or a folder at the yielded path. When the ``with`` block
    ends normally, that file or folder replaces ``final`` (an existing file or folder
    there is replaced); when it raises, the temporary file or folder is removed and
    ``final`` is untouched. The parent folder of ``final`` is created if needed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = _sibling(final, "tmp")
    try:
        yield temporary
        _move_into_place(temporary, final)
    except BaseException:
        remove_path(temporary)
        raise


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


def _sibling(final: Path, purpose: str) -> Path:
    """A hidden, unused name in the same folder as ``final`` (same file system, so renames are atomic)."""
    return final.with_name(f".{final.name}.{purpose}-{os.getpid()}-{secrets.token_hex(4)}")


def _move_into_place(temporary: Path, final: Path) -> None:
    """Rename ``temporary`` to ``final``, replacing what is there."""
    if temporary.is_dir() and final.is_dir() and not final.is_symlink():
        # A folder cannot be renamed over a non-empty folder: move the old one aside first.
        old = _sibling(final, "old")
        os.replace(final, old)
        try:
            os.replace(temporary, final)
        except BaseException:
            os.replace(old, final)
            raise
        remove_path(old)
    else:
        os.replace(temporary, final)
