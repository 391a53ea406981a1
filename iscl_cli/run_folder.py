"""A training run's folder: claimed by one process at a time, never silently reused.

It holds ``config.json`` (the settings), ``metrics.jsonl`` (one JSON line per step),
``checkpoint.pt`` (to resume), ``model.pt`` (the result) and ``previews/``. A new run
gets a folder no run has used: ``--out`` when it holds no run yet (with ``--overwrite``
the old run's files are removed first), else a fresh ``iscl-runs/run-DATE-TIME``, with
``-2``, ``-3`` ... when another run started in the same second. While a run goes on, its
folder is locked (``flock`` on the folder itself), so a second ``iscl train`` into it or a
``--resume`` of it is refused rather than writing there too; the system drops the lock
when the process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from iscl_cli.checkpoint import CHECKPOINT_FILE, MODEL_FILE, RUNS_DIR
from iscl_cli.errors import IsclError
from iscl_cli.io.atomic import atomic_path, is_disk_full, remove_path

LOG = logging.getLogger("iscl")

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
PREVIEWS_DIR = "previews"
RUN_FILES = (CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE, MODEL_FILE, PREVIEWS_DIR)
"""What a run writes; a folder holding any of them holds a run."""


class RunFolder:
    """A run folder whose lock this process holds until ``release`` (or the end of a ``with`` block)."""

    def __init__(self, path: Path, created: bool) -> None:
        self.path = path
        self.created = created  # by this process, so it may be removed again if the run never starts
        self._lock = _lock(path)

    @classmethod
    def claim_new(cls, out: str | Path | None, root: Path, overwrite: bool = False) -> RunFolder:
        """The folder for a new run: ``out`` (created if needed) or a fresh one under ``root/iscl-runs/``.

        Refuses an ``out`` that holds a run unless ``overwrite``, which removes that run's files.
        """
        if out is None:
            return cls._claim_fresh(root / RUNS_DIR, datetime.now().strftime("run-%Y%m%d-%H%M%S"))
        path = Path(out)
        try:
            path.mkdir(parents=True)
            created = True
        except FileExistsError:
            created = False
        except OSError as error:
            raise IsclError(f"cannot write the run folder ({error.strerror})", path) from None
        folder = cls(path, created)
        earlier = [name for name in RUN_FILES if (path / name).exists()]
        if earlier and not overwrite:
            folder.release()
            raise IsclError(f"already holds a training run ({', '.join(earlier)}); continue it with --resume {path}, "
                            "replace it with --overwrite, or choose another --out", path)
        for name in earlier:
            remove_path(path / name)
        folder._check_writable()
        return folder

    @classmethod
    def claim_existing(cls, path: Path) -> RunFolder:
        """The folder of a run to resume."""
        return cls(path, created=False)

    @classmethod
    def _claim_fresh(cls, parent: Path, stem: str) -> RunFolder:
        path, number = parent / stem, 1
        while True:
            try:
                path.mkdir(parents=True)  # atomic: of two runs started in the same second, one gets "-2"
                break
            except FileExistsError:
                number += 1
                path = parent / f"{stem}-{number}"
            except OSError as error:
                raise IsclError(f"cannot write the run folder ({error.strerror})", path) from None
        folder = cls(path, created=True)
        folder._check_writable()
        return folder

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()

    def release(self) -> None:
        if self._lock >= 0:
            os.close(self._lock)  # closing the descriptor drops the flock
            self._lock = -1

    @contextmanager
    def discarded_on_failure(self) -> Iterator[None]:
        """Remove a folder this process created when the block fails: a run that never started leaves nothing."""
        try:
            yield
        except BaseException:
            if self.created:
                remove_path(self.path)
            raise

    def write_config(self, config: dict[str, Any]) -> None:
        with atomic_path(self.path / CONFIG_FILE) as temporary:
            temporary.write_text(json.dumps(config, indent=2))

    @contextmanager
    def metrics(self) -> Iterator[MetricsLog]:
        """``metrics.jsonl`` opened for appending one record per step."""
        path = self.path / METRICS_FILE
        with path.open("a") as stream:
            yield MetricsLog(path, stream)

    def keep_metrics_until(self, step: int) -> None:
        """Drop the metric lines logged after the checkpoint a resumed run restarts from,
        and lines a power loss or a full disk tore (noted)."""
        path = self.path / METRICS_FILE
        if not path.exists():
            return
        kept, torn = [], 0
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                torn += 1
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
                kept.append(line)
        if torn:
            LOG.warning("%s: dropped %d unreadable line(s) (torn by an interruption or a full disk)", path, torn)
        with atomic_path(path) as temporary:
            temporary.write_text("".join(line + "\n" for line in kept))

    def _check_writable(self) -> None:
        probe = self.path / f".write-test-{os.getpid()}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            self.release()
            raise IsclError(f"cannot write the run folder ({error.strerror})", self.path) from None


class MetricsLog:
    """Appends one JSON line per step, flushed at once (a crash loses at most the line being written)."""

    def __init__(self, path: Path, stream: TextIO) -> None:
        self.path, self._stream = path, stream

    def append(self, record: dict[str, Any]) -> None:
        try:
            self._stream.write(json.dumps(record) + "\n")
            self._stream.flush()
        except OSError as error:
            reason = "no space left on device" if is_disk_full(error, self.path.parent) else error.strerror
            raise IsclError(f"cannot write ({reason}); continue with --resume {self.path.parent} when fixed",
                            self.path) from None


def _lock(path: Path) -> int:
    """An open descriptor of the folder ``path`` holding its exclusive lock; refuses a folder in use."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError as error:
        raise IsclError(f"cannot open the run folder ({error.strerror})", path) from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise IsclError("is in use by another iscl train process; wait for it to end or choose another --out",
                        path) from None
    except OSError as error:  # file systems without locks (some network mounts): go on, but say so
        LOG.warning("%s: cannot lock the run folder (%s); do not train into it from two processes at once",
                    path, error.strerror)
    return descriptor
