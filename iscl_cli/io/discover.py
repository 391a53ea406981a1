"""From what the user typed (files, folders, glob patterns) to a list of volumes.

Files are recognised by content, not by extension: TIFF by its byte-order magic, DICOM
by the 'DICM' marker (or, for old files without it, by pydicom finding DICOM elements).
Every TIFF file is one volume; DICOM files are pooled over all inputs and grouped into
series by SeriesInstanceUID, one volume per series.
"""

from __future__ import annotations

import glob
import itertools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from iscl_cli.errors import IsclError
from iscl_cli.io.dicom import DicomFile, DicomSeries
from iscl_cli.io.tiff import TiffVolume
from iscl_cli.volume import Volume

LOG = logging.getLogger("iscl")

TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")  # classic and BigTIFF, both byte orders
GLOB_CHARACTERS = "*?["
SKIPPED_NAMES_SHOWN = 3


@dataclass(frozen=True)
class Candidate:
    """A file to look at, the folder its output name is relative to, and whether the user named it."""

    path: Path
    root: Path
    named: bool


ErrorReport = Callable[[IsclError], None]


def open_volumes(specs: Sequence[str | Path], channel: int | None = None,
                 on_error: ErrorReport | None = None) -> list[Volume]:
    """Open every image volume that ``specs`` (files, folders searched recursively, glob
    patterns with ``**``) point to: TIFF volumes in the order found, then one DICOM
    series per SeriesInstanceUID in the order of their first file.

    ``channel`` picks one channel of multi-channel or RGB data (grey data ignore it).
    Files inside folders that are not images (and non-image DICOM files) are skipped with
    a note; a named file that is not an image, a missing path, a pattern matching nothing,
    a folder without images, and any damaged image raise IsclError; with ``on_error``, each
    such problem (one per file, path or series) is passed to it instead, and everything
    else is still opened.
    """

    def report(error: IsclError) -> None:
        if on_error is None:
            raise error
        on_error(error)

    tiffs: list[Volume] = []
    series: dict[str, list[tuple[DicomFile, Candidate]]] = {}
    is_image: dict[Path, bool] = {}  # every file looked at so far (named twice, opened once)
    for spec in specs:
        images_found = failed = 0
        skipped: list[Path] = []
        try:
            candidates = _candidates(spec)
        except IsclError as error:
            report(error)
            continue
        for candidate in candidates:
            resolved = candidate.path.resolve()
            if resolved not in is_image:
                try:
                    image = _open_candidate(candidate, channel, skipped)
                except IsclError as error:
                    report(error)
                    failed += 1
                    image = None
                if isinstance(image, DicomFile):
                    series.setdefault(image.series_uid, []).append((image, candidate))
                elif image is not None:
                    tiffs.append(image)
                is_image[resolved] = image is not None
            images_found += is_image[resolved]
        if not images_found and not failed:
            report(IsclError(f"no TIFF or DICOM images found here{_skipped_summary(skipped, ' (skipped: ', ')')}",
                             spec))
        if skipped:
            LOG.warning("%s: skipped files that are not TIFF or DICOM: %s", spec, _skipped_summary(skipped))
    return _with_unique_names(tiffs + _series_volumes(series, channel, report))


def _candidates(spec: str | Path) -> list[Candidate]:
    """The files ``spec`` names: itself, a folder's files (recursively), or a pattern's matches."""
    path = Path(spec)
    if path.is_file():
        return [Candidate(path, path.parent, named=True)]
    if path.is_dir():
        files = _files_under(path)
        if not files:
            raise IsclError("folder is empty", path)
        return [Candidate(file, path, named=False) for file in files]
    if path.is_symlink() and not path.exists():
        raise IsclError("a link to nothing (its target is missing, or it points back to itself)", spec)
    if path.exists():
        raise IsclError("not a file or folder but a named pipe, device or socket; iscl reads files", spec)
    if any(character in str(spec) for character in GLOB_CHARACTERS):
        matches = sorted(glob.glob(str(spec), recursive=True))
        if not matches:
            raise IsclError("no file matches this pattern", spec)
        root = _pattern_root(str(spec))
        files = [file for match in map(Path, matches) for file in ([match] if match.is_file() else _files_under(match))]
        return [Candidate(file, root, named=False) for file in files]
    if str(spec).lower() in ("true", "false"):  # `--json true`: the flag took no value, the word became an input
        raise IsclError("no such file or folder (flags such as --json take no value: leave out true/false)", spec)
    raise IsclError("no such file or folder", spec)


def _files_under(folder: Path) -> list[Path]:
    """Every regular file below ``folder`` in sorted order, skipping hidden files and folders
    (dot-names: system clutter and iscl's own unfinished outputs) and what is not a regular
    file (a named pipe or a device would block or never end when read)."""
    files = []
    for directory, subdirectories, names in os.walk(folder):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        paths = [Path(directory) / name for name in sorted(names) if not name.startswith(".")]
        files += [path for path in paths if path.is_file()]
    return files


def _pattern_root(pattern: str) -> Path:
    """The folder part of a glob pattern before its first wildcard (output names are relative to it)."""
    fixed = itertools.takewhile(lambda part: not any(c in part for c in GLOB_CHARACTERS), Path(pattern).parts)
    return Path(*fixed)


def _open_candidate(candidate: Candidate, channel: int | None, skipped: list[Path]) -> Volume | DicomFile | None:
    """A TiffVolume for a TIFF file, the header of a DICOM image file (series are formed
    later), or None for a file inside a folder that holds no image (noted in ``skipped``
    or logged)."""
    path = candidate.path
    if _is_tiff(path):
        return TiffVolume(path, channel=channel, name=path.relative_to(candidate.root).as_posix())
    dicom = DicomFile.read(path)
    if dicom is None:
        if candidate.named:
            raise IsclError("not a TIFF or DICOM file", path)
        skipped.append(path)
        return None
    reason = dicom.skip_reason()
    if reason is None:
        return dicom
    if candidate.named:
        raise IsclError(f"{reason}; nothing to denoise", path)
    LOG.warning("%s: skipped, %s", path, reason)
    return None


def _is_tiff(path: Path) -> bool:
    """TIFF magic at the start and no DICOM marker at byte 128 (a DICOM preamble may
    imitate a TIFF header, and such a file is read as DICOM)."""
    with path.open("rb") as stream:
        start = stream.read(132)
    return start[:4] in TIFF_MAGIC and start[128:132] != b"DICM"


def _skipped_summary(skipped: list[Path], before: str = "", after: str = "") -> str:
    """``a.txt, b.json and 3 more`` (empty when nothing was skipped)."""
    if not skipped:
        return ""
    shown = ", ".join(path.name for path in skipped[:SKIPPED_NAMES_SHOWN])
    more = f" and {len(skipped) - SKIPPED_NAMES_SHOWN} more" if len(skipped) > SKIPPED_NAMES_SHOWN else ""
    return f"{before}{shown}{more}{after}"


def _series_volumes(series: dict[str, list[tuple[DicomFile, Candidate]]], channel: int | None,
                    report: ErrorReport) -> list[Volume]:
    """One DicomSeries per SeriesInstanceUID, named after where its files lie; a series
    that cannot be read goes to ``report``."""
    names = {uid: _series_name(group) for uid, group in series.items()}
    volumes: list[Volume] = []
    for uid, group in series.items():
        files = [dicom for dicom, _ in group]
        name = names[uid]
        number = files[0].header.get("SeriesNumber")
        if list(names.values()).count(name) > 1 and number is not None:
            name = f"{name}_series{number}"  # several series in one folder: tell them apart by number
        try:
            volumes.append(DicomSeries(files, source=_common_folder(group), name=name, channel=channel))
        except IsclError as error:
            report(error)
    return volumes


def _series_name(group: list[tuple[DicomFile, Candidate]]) -> str:
    """A single file is named after its stem; several after the folder that holds them."""
    first_file, first = group[0]
    if len(group) == 1:
        return first_file.path.relative_to(first.root).with_suffix("").as_posix()
    folder = _common_folder(group)
    try:
        relative = folder.relative_to(first.root.resolve()).as_posix()
    except ValueError:  # the files came from several inputs
        relative = "."
    return folder.name if relative == "." else relative


def _common_folder(group: list[tuple[DicomFile, Candidate]]) -> Path:
    """The single file of a one-file series, else the deepest folder holding all its files."""
    if len(group) == 1:
        return group[0][0].path
    return Path(os.path.commonpath([str(dicom.path.resolve().parent) for dicom, _ in group]))


def _with_unique_names(volumes: list[Volume]) -> list[Volume]:
    """Give volumes that would land on the same output name a numbered suffix."""
    used: set[str] = set()
    for volume in volumes:
        name, number = volume.name, 1
        folder, slash, file_name = volume.name.rpartition("/")
        stem, dot, extensions = file_name.partition(".")  # keeps double extensions such as .ome.tif
        while name in used:
            number += 1
            name = f"{folder}{slash}{stem}_{number}{dot}{extensions}"
        if name != volume.name:
            LOG.warning("%s: output name %s is taken; using %s", volume.source, volume.name, name)
            volume.name = name
        used.add(name)
    return volumes
