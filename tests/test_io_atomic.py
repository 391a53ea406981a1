import errno
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from iscl_cli.errors import IsclError
from iscl_cli.io import atomic
from iscl_cli.io.atomic import atomic_path, clean_leftovers

REPOSITORY = Path(__file__).resolve().parents[1]


def hidden_names(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


def test_an_output_that_appears_meanwhile_is_kept_without_replace(tmp_path):
    final = tmp_path / "vol.tif"
    with pytest.raises(IsclError, match="vol.tif: appeared while this output was being written"):
        with atomic_path(final, replace=False) as temporary:
            temporary.write_bytes(b"mine")
            final.write_bytes(b"theirs")  # another process finished first
    assert final.read_bytes() == b"theirs"
    assert hidden_names(tmp_path) == []


def test_replace_false_refuses_a_folder_over_a_folder(tmp_path):
    final = tmp_path / "series"
    final.mkdir()
    (final / "a.dcm").write_bytes(b"theirs")
    with pytest.raises(IsclError, match="appeared while"):
        with atomic_path(final, replace=False) as temporary:
            temporary.mkdir()
            (temporary / "a.dcm").write_bytes(b"mine")
    assert (final / "a.dcm").read_bytes() == b"theirs"


def write_after_everyone_is_ready(final, content, barrier, results):
    try:
        with atomic_path(final, replace=False) as temporary:
            temporary.write_text(content)
            barrier.wait(timeout=30)  # both outputs are complete; only the renames remain
        results.put(("ok", content))
    except IsclError as error:
        results.put(("refused", str(error)))


def test_two_processes_writing_one_output_one_wins_one_is_refused(tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    final = tmp_path / "vol.tif"
    writers = [context.Process(target=write_after_everyone_is_ready, args=(final, name, barrier, results))
               for name in ("x", "y")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
    outcomes = sorted(results.get(timeout=5) for _ in writers)
    assert [status for status, _ in outcomes] == ["ok", "refused"]
    assert final.read_text() == outcomes[0][1]
    assert "appeared while" in outcomes[1][1]
    assert hidden_names(tmp_path) == []


def test_replacing_a_folder_swaps_it_whole(tmp_path):
    final = tmp_path / "series"
    final.mkdir()
    (final / "old.dcm").write_bytes(b"old")
    with atomic_path(final) as temporary:
        temporary.mkdir()
        (temporary / "new.dcm").write_bytes(b"new")
    assert os.listdir(final) == ["new.dcm"]
    assert hidden_names(tmp_path) == []


def test_without_an_atomic_swap_a_folder_is_moved_aside_and_back_on_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "exchange", lambda first, second: False)
    final = tmp_path / "series"
    final.mkdir()
    (final / "old.dcm").write_bytes(b"old")
    with atomic_path(final) as temporary:
        temporary.mkdir()
        (temporary / "new.dcm").write_bytes(b"new")
    assert os.listdir(final) == ["new.dcm"]
    assert hidden_names(tmp_path) == []


KILLED_DURING_OVERWRITE = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from iscl_cli.io import atomic
    if sys.argv[2] == "no-swap":
        atomic.exchange = lambda first, second: False
    real_replace = atomic.os.replace
    def replace_then_die(source, target):
        real_replace(source, target)
        os._exit(9)  # killed between the two steps of the replacement
    atomic.os.replace = replace_then_die
    atomic.remove_path = lambda path: os._exit(9)
    final = Path(sys.argv[1])
    with atomic.atomic_path(final) as temporary:
        temporary.mkdir()
        (temporary / "new.dcm").write_bytes(b"new")
""")


@pytest.mark.parametrize("mode", ["swap", "no-swap"])
def test_a_kill_while_replacing_a_folder_leaves_the_old_or_the_new_never_none(tmp_path, mode):
    final = tmp_path / "series"
    final.mkdir()
    (final / "old.dcm").write_bytes(b"old")
    killed = subprocess.run([sys.executable, "-c", KILLED_DURING_OVERWRITE, str(final), mode], cwd=REPOSITORY)
    assert killed.returncode == 9
    assert final.is_dir() or any(name.startswith(".series.old-") for name in hidden_names(tmp_path))
    clean_leftovers(tmp_path)
    assert sorted(os.listdir(final)) in (["new.dcm"], ["old.dcm"])
    assert hidden_names(tmp_path) == []


def test_leftovers_of_dead_processes_are_removed_and_live_ones_kept(tmp_path, notes):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f".vol.tif.tmp-{atomic.HOST}-{dead_pid}-0123abcd").write_bytes(b"partial")
    (tmp_path / f".ser.tmp-{atomic.HOST}-{dead_pid}-0123abce").mkdir()
    (tmp_path / f".checkpoint.pt.tmp-{atomic.HOST}-{os.getpid()}-0123abcf").write_bytes(b"in progress")
    (tmp_path / f".x.tif.tmp-otherhost-{dead_pid}-0123abd0").write_bytes(b"another machine's")
    clean_leftovers(tmp_path)
    assert hidden_names(tmp_path) == sorted([f".checkpoint.pt.tmp-{atomic.HOST}-{os.getpid()}-0123abcf",
                                             f".x.tif.tmp-otherhost-{dead_pid}-0123abd0"])
    assert "removed 2 unfinished output(s)" in notes.text


def test_a_full_disk_is_said_in_words(tmp_path, monkeypatch):
    final = tmp_path / "vol.tif"
    with pytest.raises(IsclError, match="vol.tif: no space left on device; nothing was written"):
        with atomic_path(final) as temporary:
            temporary.write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda folder: SimpleNamespace(free=0))
    with pytest.raises(IsclError, match="no space left on device"):
        with atomic_path(final) as temporary:
            raise OSError("262144 requested and 261968 written")  # numpy's short write, no errno
    assert not final.exists() and hidden_names(tmp_path) == []
