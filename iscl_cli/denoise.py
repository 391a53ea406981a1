"""Denoising files: volumes in, slice inference (``iscl_cli.inference``), the same format out.

A volume is streamed: the next slice is read in a background thread while the current
ones are denoised, and each result goes through a short queue to a writer thread, so
reading, computing and writing overlap and memory does not grow with the number of
slices. Slices smaller than a batch of tiles are denoised several at a time, their tiles
sharing model calls. Each input gets its own output; a failure in one is reported and
the others go on.
"""

from __future__ import annotations

import itertools
import logging
import queue
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import tifffile

from iscl_cli import __version__
from iscl_cli.checkpoint import LoadedModel
from iscl_cli.distributed import Shard
from iscl_cli.errors import IsclError, unexpected_error_line
from iscl_cli.inference import TileOptions, denoise_image, tile_alignment
from iscl_cli.input_checks import InputTally, fill_non_finite
from iscl_cli.io import open_volumes
from iscl_cli.io.atomic import atomic_path
from iscl_cli.noise_check import NoiseCheck, structure_score
from iscl_cli.volume import Volume

LOG = logging.getLogger("iscl")
NOISE_SUFFIX = ".noise.tif"
BIGTIFF_BYTES = 2**32 - 2**25  # classic TIFF offsets are 32-bit; leave room for tags
# Results waiting for the writer: enough to ride out one slow write, few enough to bound memory.
WRITE_QUEUE_DEPTH = 4
Item = TypeVar("Item")


def prefetched_slices(volume: Volume) -> Iterator[np.ndarray]:
    """The volume's slices in order, each read in a thread while the previous one is in use."""
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(volume.read_slice, 0) if len(volume) else None
        for index in range(len(volume)):
            image = pending.result()
            if index + 1 < len(volume):
                pending = reader.submit(volume.read_slice, index + 1)
            yield image


def in_groups(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """``items`` in consecutive lists of ``size`` (the last one may be shorter)."""
    iterator = iter(items)
    while group := list(itertools.islice(iterator, size)):
        yield group


class WritingAbandoned(Exception):
    """Raised inside a background writer's input when the producing side failed, so the
    writer stops and cleans up as after any error of its own."""


def write_in_background(items: Iterator[Item], write: Callable[[Iterable[Item]], None],
                        depth: int = WRITE_QUEUE_DEPTH) -> None:
    """``write(items)``, with ``write`` in a thread of its own and ``items`` produced in
    this one, at most ``depth`` items ahead, so that writing overlaps computing.

    An error on either side stops both and is raised here, the first one: the writer's
    from the next hand-over, this side's (Ctrl-C included) after the writer has seen it as
    ``WritingAbandoned`` from its input and finished, so an atomic writer leaves nothing.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=depth)
    end, abandon = object(), object()

    def received() -> Iterator[Item]:
        while (item := handoff.get()) is not end:
            if item is abandon:
                raise WritingAbandoned("the slices to write stopped coming")
            yield item

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="iscl-writer") as writer:
        writing = writer.submit(write, received())

        def hand_over(item: Any) -> bool:
            """Queue ``item``, waiting for room while the writer runs; False once it has stopped."""
            while not writing.done():
                try:
                    handoff.put(item, timeout=0.1)  # a timeout, so a writer that died is noticed
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for item in items:
                if not hand_over(item):
                    break
            hand_over(end)
        except BaseException:
            hand_over(abandon)
            raise
        writing.result()  # the writer's own error, if it had one


def noise_output_path(out_dir: Path, volume: Volume) -> Path:
    """Where ``--write-noise`` puts the removed noise: ``<name>.noise.tif``, float32."""
    return out_dir / (Path(volume.name).stem + NOISE_SUFFIX if volume.format == "tiff" else volume.name + NOISE_SUFFIX)


def denoise_volume(volume: Volume, loaded: LoadedModel, out_path: Path, tiles: TileOptions,
                   noise_path: Path | None = None, on_slice: Callable[[], None] | None = None,
                   overwrite: bool = False, allow_clipping: bool = False, slices_per_call: int | None = None,
                   background_writing: bool = True) -> NoiseCheck:
    """Denoise every slice of ``volume`` and write them in its format to ``out_path``.

    Slices are denoised ``slices_per_call`` at a time (default: ``tiles.slices_per_call``
    on the model's device), the tiles of small slices sharing model calls with results
    those of one slice at a time, and written in a thread of their own
    (``write_in_background``) unless ``background_writing`` is False.

    With ``noise_path``, the removed noise (input - output, physical units) is also written,
    as a float32 TIFF stack. Both outputs appear only when complete, and replace existing
    files only with ``overwrite`` (see ``Volume.write``). NaN and infinite pixels stay as
    they were; a slice mostly outside the model's intensity range is refused unless
    ``allow_clipping`` (``iscl_cli.input_checks``). Returns the structure score of each
    slice's removed noise (``iscl_cli.noise_check``).
    """
    check = NoiseCheck([])
    tally = InputTally(volume.source, loaded.mapping, allow_clipping)
    note = f"denoised by iscl {__version__} with model {loaded.path}"
    rows, cols = volume.shape
    if slices_per_call is None:
        slices_per_call = tiles.slices_per_call(volume.shape, tile_alignment(loaded.model),
                                                next(loaded.model.parameters()).device)
    with ExitStack() as stack:
        noise_writer = None
        if noise_path is not None:
            temporary = stack.enter_context(atomic_path(noise_path, replace=overwrite))
            big = len(volume) * rows * cols * 4 > BIGTIFF_BYTES
            noise_writer = stack.enter_context(tifffile.TiffWriter(temporary, bigtiff=big))

        def denoised_slices() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            """(input, denoised) for every slice in order."""
            indices = itertools.count()
            for images in in_groups(prefetched_slices(volume), slices_per_call):
                filled = [fill_non_finite(image) for image in images]
                for image, (_, odd) in zip(images, filled, strict=True):
                    tally.add(next(indices), image, odd)
                denoised = denoise_image(np.stack([finite for finite, _ in filled]), loaded.model,
                                         loaded.mapping, tiles)
                for image, (finite, odd), result in zip(images, filled, denoised, strict=True):
                    check.per_slice.append(structure_score(finite, result))
                    if odd is not None:
                        result[odd] = image[odd]
                    if on_slice is not None:
                        on_slice()
                    yield image, result

        def write(results: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
            def denoised_writing_noise() -> Iterator[np.ndarray]:
                for image, denoised in results:
                    if noise_writer is not None:
                        noise_writer.write(image - denoised, contiguous=True, description=note)
                    yield denoised

            volume.write(out_path, denoised_writing_noise(), note, overwrite=overwrite)

        if background_writing:
            write_in_background(denoised_slices(), write)
        else:
            write(denoised_slices())
    tally.report()
    return check


@dataclass
class DenoiseJob:
    """One input volume (or an input that could not be opened, ``spec``) and where its
    output goes; ``error`` is set when it failed, ``skipped`` when its outputs existed
    and ``--skip-existing`` left it alone."""

    spec: str
    volume: Volume | None = None
    output: Path | None = None
    noise_output: Path | None = None
    error: str | None = None
    seconds: float = 0.0
    noise_check: NoiseCheck | None = None
    skipped: bool = False

    @property
    def done(self) -> bool:
        """Denoised in this run (or, before ``run_plan``, still to be)."""
        return self.error is None and not self.skipped

    def summary(self) -> dict[str, Any]:
        return {
            "input": self.spec if self.volume is None else str(self.volume.source),
            "output": None if self.output is None else str(self.output),
            "noise_output": None if self.noise_output is None else str(self.noise_output),
            "slices": 0 if self.volume is None else len(self.volume),
            "seconds": round(self.seconds, 3),
            "status": "failed" if self.error else "skipped" if self.skipped else "ok",
            "error": self.error,
            "noise_check": None if self.noise_check is None else self.noise_check.summary(),
        }


@dataclass
class DenoisePlan:
    """Every input opened and given an output path, before any work starts; ``overwrite``:
    outputs may replace existing files."""

    jobs: list[DenoiseJob] = field(default_factory=list)
    overwrite: bool = False

    @property
    def total_slices(self) -> int:
        return sum(len(job.volume) for job in self.jobs if job.done)

    def shard(self, shard: Shard) -> DenoisePlan:
        """The plan's jobs that ``shard`` takes (every N-th of the planned order). A job is
        a whole volume, so a DICOM series or TIFF stack is never split; outputs were checked
        against the whole plan, so two shards never write the same file."""
        return DenoisePlan(jobs=shard.pick(self.jobs), overwrite=self.overwrite)


def plan_outputs(specs: Sequence[str], out_dir: Path, overwrite: bool = False, write_noise: bool = False,
                 channel: int | None = None, skip_existing: bool = False) -> DenoisePlan:
    """Open the inputs and decide each volume's output path; problems are recorded per
    file or volume, not raised.

    All inputs are opened together, so DICOM files of one series form one volume (and one
    derived series) however they were named. An output is refused when it exists (unless
    ``overwrite``; with ``skip_existing`` a volume whose outputs all exist is skipped), when
    two inputs would write the same output, or when it is one of the inputs. An ``out_dir``
    inside an input folder is refused for all inputs (raised): a later run on that folder
    would read the outputs as inputs.
    """
    for spec in specs:
        if Path(spec).is_dir() and is_inside(out_dir, Path(spec)):
            raise IsclError(f"is inside the input folder {spec}: a later run on {spec} would denoise the outputs "
                            "again; choose an -o folder outside it", out_dir)
    plan = DenoisePlan(overwrite=overwrite)

    def record_failure(error: IsclError) -> None:
        plan.jobs.append(DenoiseJob(error.path or str(error), error=str(error)))

    volumes = open_volumes(specs, channel=channel, on_error=record_failure)
    plan.jobs.extend(DenoiseJob(str(volume.source), volume=volume) for volume in volumes)
    inputs = {job.volume.source.resolve() for job in plan.jobs if job.volume is not None}
    taken: dict[Path, str] = {}
    for job in plan.jobs:
        if job.volume is None:
            continue
        job.output = out_dir / job.volume.name
        job.noise_output = noise_output_path(out_dir, job.volume) if write_noise else None
        targets = [target for target in (job.output, job.noise_output) if target is not None]
        for target in targets:
            resolved = target.resolve()
            if resolved in inputs:
                job.error = f"{job.volume.source}: output {target} is an input; choose another -o folder"
            elif resolved in taken:
                job.error = f"{job.volume.source}: output {target} would also be written for {taken[resolved]}; " \
                            "denoise them into different -o folders"
            elif target.exists() and not overwrite and not skip_existing:
                job.error = f"{job.volume.source}: output {target} exists; pass --overwrite to replace it"
            taken.setdefault(resolved, str(job.volume.source))
        present = [target for target in targets if target.exists()]
        if skip_existing and job.error is None and present:
            job.skipped = present == targets
            if not job.skipped:
                job.error = f"{job.volume.source}: output {present[0]} exists but not all its outputs do; " \
                            "pass --overwrite to write them all again"
    return plan


def is_inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (after resolving links and ``..``)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def run_plan(plan: DenoisePlan, loaded: LoadedModel, out_dir: Path, tiles: TileOptions,
             on_slice: Callable[[], None] | None = None,
             on_job: Callable[[DenoiseJob], None] | None = None, allow_clipping: bool = False) -> list[DenoiseJob]:
    """Denoise every job of ``plan`` still to do (no error, not skipped); a failing input is
    recorded and skipped. ``allow_clipping``: see ``denoise_volume``."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise IsclError(f"cannot create the output folder ({error.strerror or error})", out_dir) from error
    for job in plan.jobs:
        if job.done:
            started = time.perf_counter()
            try:
                job.noise_check = denoise_volume(job.volume, loaded, job.output, tiles, job.noise_output, on_slice,
                                                 overwrite=plan.overwrite, allow_clipping=allow_clipping)
            except IsclError as error:
                job.error = str(error)
            except OSError as error:
                job.error = f"{job.output}: cannot write ({error.strerror or error})"
            except Exception as error:  # a bug: fail this input only, the others go on
                job.error = f"{job.volume.source}: {unexpected_error_line(error)}"
                LOG.debug("%s: the traceback", job.volume.source, exc_info=True)
            job.seconds = time.perf_counter() - started
        if on_job is not None:
            on_job(job)
    return plan.jobs
