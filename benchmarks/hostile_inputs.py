"""Hostile-input corpus: what a careless user and an attacker would feed iscl, and what iscl made of it.

Every case builds its files in a folder of its own, runs the real command line
(``python -m iscl_cli ...``, in a child process with a 6 GiB address-space limit and a
time limit) and is judged on what the child printed and what it left on disk:

- **as expected**: the case's expected outcome, exit 0 or one clean ``error:`` line and exit 1;
- **traceback**: a Python traceback, a crash (exit status other than 0, 1 or 2) or a hang;
- **partial files**: unfinished temporaries (``.NAME.tmp-*``, ``.NAME.old-*``) or empty
  files left behind, or files a failed command created;
- **data loss**: a file that existed before (an input, an earlier result) changed or gone,
  unless the case asked for it (``--overwrite``);
- **silent**: exit 0 with output that is wrong without a note saying so (NaN spread,
  clipping not mentioned), or a leaked library warning.

    python benchmarks/hostile_inputs.py             # all cases, about 10 minutes on 2 busy cores
    python benchmarks/hostile_inputs.py -k dicom,disk   # the cases whose name or group holds "dicom" or "disk"

    python benchmarks/hostile_inputs.py --table benchmarks/results/hostile_inputs.json   # its table, no run

Prints one line per case, the totals, and the per-group table of docs/robustness.md (in
Markdown), and writes benchmarks/results/hostile_inputs.json. Cases that need a small
tmpfs (full disks) are skipped when it cannot be mounted (not root).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import pickle
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import tifffile
import torch
from pydicom.data import get_testdata_file
from pydicom.uid import RLELossless, generate_uid

from iscl_cli.checkpoint import save_model
from iscl_cli.intensity import IntensityMapping
from models import ISCL, ISCLConfig

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPOSITORY = Path(__file__).resolve().parents[1]
ISCL_COMMAND = [sys.executable, "-m", "iscl_cli"]
ADDRESS_SPACE_LIMIT = 6 * 2**30
TIME_LIMIT_S = 180
TINY_NETWORK = dict(gen_base=4, gen_blocks=1, ext_width=4, ext_depth=3, disc_base=4, disc_layers=2)
TINY_TRAINING = ["--preset", "quick", "--steps", "4", "--batch-size", "2", "--patch-size", "16",
                 "--checkpoint-every", "2", "--device", "cpu", "--quiet",
                 *[part for name, value in TINY_NETWORK.items() for part in ("--net", f"{name}={value}")]]
UNFINISHED = re.compile(r"^\..+\.(tmp|old)-")
REMARKS = ("note: ", "warning: ")
"""stderr lines that remark on a result rather than report a problem."""
GROUP_DESCRIPTIONS = {
    "tiff": "broken, truncated, forged and bomb TIFFs; NaN pixels; odd shapes and pixel types; pipes, links, folders",
    "range": "values outside the model's intensity range",
    "output": "`-o` onto or inside an input, existing outputs",
    "options": "denoise options out of range",
    "dicom": "broken and forged DICOM headers and pixel data, RLE bombs, series",
    "model": "hostile and damaged model files, through `iscl info` and `denoise --model`",
    "train": "training data, run folders, resumes, damaged checkpoints, `--net` sizes",
    "interrupt": "`kill -9` during a denoise, an `--overwrite` of a series, training",
    "race": "two denoise runs into one output",
    "disk": "full disks (1 MiB tmpfs) during TIFF, DICOM, checkpoint and run-folder writes",
}
"""What each group of cases tries, for the table of docs/robustness.md."""


# ----------------------------------------------------------------------------- running and judging


@dataclass
class Outcome:
    """What one child process did: exit status (None when it ran past the time limit) and output."""

    code: int | None
    stdout: str
    stderr: str

    @property
    def traceback(self) -> bool:
        return (self.code is None or self.code not in (0, 1, 2) or "Traceback (most recent call last)" in self.stderr
                or "(a bug in iscl;" in self.stderr)

    @property
    def clean_error(self) -> bool:
        lines = [line for line in self.stderr.splitlines() if line.strip() and not line.startswith(REMARKS)]
        return self.code == 1 and bool(lines) and all(line.startswith("error: ") for line in lines)

    @property
    def leaked_warning(self) -> bool:
        return any("Warning" in line and not line.startswith((*REMARKS, "error: ")) for line in self.stderr.splitlines())


def iscl(folder: Path, *arguments: object, stdin: str | None = None) -> Outcome:
    """Run ``iscl ARGUMENTS`` in ``folder`` under the memory and time limits."""
    return finish(start(folder, *arguments), stdin)


def start(folder: Path, *arguments: object) -> subprocess.Popen:
    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))

    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPOSITORY)}
    return subprocess.Popen([*ISCL_COMMAND, *map(str, arguments)], cwd=folder, env=environment, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=limit_memory)


def finish(process: subprocess.Popen, stdin: str | None = None) -> Outcome:
    try:
        stdout, stderr = process.communicate(stdin, timeout=TIME_LIMIT_S)
        return Outcome(process.returncode, stdout, stderr)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        return Outcome(None, stdout, stderr + "\n(killed: ran past the time limit)")


Commands = Callable[[Path], list[Outcome]]
Check = Callable[[Path, list[Outcome]], list[str]]


@dataclass
class Case:
    """One hostile input: files to make, commands to run on them, and what is expected.

    ``expect``: "ok" (exit 0), "error" (one clean error line, exit 1) or "race" (each
    command either; ``check`` judges the whole). ``may_change``: files that existed
    before and that the case may replace (``--overwrite``); ``may_create``: files a
    failing command may leave (results of other inputs, an earlier checkpoint).
    """

    name: str
    group: str
    setup: Callable[[Path], None]
    commands: Commands
    expect: str = "error"
    check: Check | None = None
    may_change: tuple[str, ...] = ()
    may_create: tuple[str, ...] = ()
    needs_small_disk: bool = False


@dataclass
class Verdict:
    name: str
    group: str
    outcomes: list[str] = field(default_factory=list)
    findings: dict[str, list[str]] = field(default_factory=dict)
    skipped: str | None = None

    def add(self, kind: str, detail: str) -> None:
        self.findings.setdefault(kind, []).append(detail)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> content hash)."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and not path.is_symlink()}


def judge(case: Case, folder: Path) -> Verdict:
    verdict = Verdict(case.name, case.group)
    case.setup(folder)
    before = snapshot(folder)
    outcomes = case.commands(folder)
    after = snapshot(folder)
    verdict.outcomes = [f"exit {o.code}: {first_problem_line(o)}" for o in outcomes]
    for outcome in outcomes:
        if outcome.traceback:
            verdict.add("traceback", first_problem_line(outcome))
        elif case.expect == "ok" and outcome.code != 0:
            verdict.add("unexpected", f"expected success, got: {first_problem_line(outcome)}")
        elif case.expect == "error" and not outcome.clean_error:
            verdict.add("unexpected", f"expected one clean error line, got exit {outcome.code}: "
                                      f"{first_problem_line(outcome)}")
        if outcome.leaked_warning:
            verdict.add("silent", "a library warning reached stderr")
    for name in sorted(set(before) - set(after)):
        if name not in case.may_change and not name.endswith("filler"):
            verdict.add("data loss", f"{name} disappeared")
    for name in sorted(set(before) & set(after)):
        if before[name] != after[name] and name not in case.may_change and not name.endswith("filler"):
            verdict.add("data loss", f"{name} changed")
    created = sorted(set(after) - set(before))
    failed = any(outcome.code != 0 for outcome in outcomes) and case.expect != "race"
    for name in created:
        path = folder / name
        unfinished = any(UNFINISHED.match(part) for part in Path(name).parts)
        if unfinished or path.stat().st_size == 0 or (failed and not name.startswith(case.may_create)):
            verdict.add("partial", name)
    for path in folder.rglob(".*"):
        if UNFINISHED.match(path.name) and path.is_dir():
            verdict.add("partial", str(path.relative_to(folder)))
    if case.check is not None:
        try:
            problems = case.check(folder, outcomes)
        except Exception as error:  # the result is missing or unreadable: that is the finding
            problems = [f"unexpected: the result could not be checked ({type(error).__name__}: {error})"]
        for problem in problems:
            kind, _, detail = problem.partition(": ")
            verdict.add(kind, detail)
    return verdict


def first_problem_line(outcome: Outcome) -> str:
    lines = [line for line in outcome.stderr.splitlines() if line.strip() and not line.startswith(REMARKS)]
    if "Traceback (most recent call last)" in outcome.stderr:
        return "traceback: " + (lines[-1] if lines else "")
    return lines[0] if lines else "(nothing on stderr)"


# ----------------------------------------------------------------------------- shared material


class Material:
    """Model files and data every case may use, made once under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.model = self.model_file("model.pt", IntensityMapping(0.0, 1000.0, 0.0, 1000.0, "window 0,1000"))
        self.counts_model = self.model_file("counts.pt", IntensityMapping(259.0, 1758.0, 259.0, 1758.0, "shared"))
        self.ct_model = self.model_file("ct.pt", IntensityMapping(-1000.0, 1000.0, -1000.0, 1000.0, "window"))

    def model_file(self, name: str, mapping: IntensityMapping) -> Path:
        torch.manual_seed(0)
        model = ISCL(ISCLConfig(**TINY_NETWORK, instance_window=16)).eval()
        save_model(self.root / name, model, mapping, {"steps": 0, "iscl_version": "corpus"})
        return self.root / name

    def damaged_model(self, folder: Path, damage: Callable[[dict], object], name: str = "bad.pt") -> Path:
        payload = torch.load(self.model, weights_only=True)
        damage(payload)
        torch.save(payload, folder / name)
        return folder / name


def stack(path: Path, data: np.ndarray, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, data, **{"photometric": "minisblack", **options})
    return path


def counts(shape: tuple[int, ...] = (2, 48, 48), low: int = 200, high: int = 900, seed: int = 0,
           dtype: str = "uint16") -> np.ndarray:
    return np.random.default_rng(seed).integers(low, high, size=shape).astype(dtype)


def training_folders(folder: Path, noisy_dtype: str = "uint16", clean_dtype: str = "uint16") -> None:
    stack(folder / "raw" / "a.tif", counts(seed=1, dtype=noisy_dtype, high=3000 if noisy_dtype == "uint16" else 255))
    stack(folder / "ref" / "b.tif", counts(seed=2, dtype=clean_dtype, high=3000 if clean_dtype == "uint16" else 255,
                                            low=200 if clean_dtype == "uint16" else 0))


def ct_small() -> pydicom.Dataset:
    return pydicom.dcmread(get_testdata_file("CT_small.dcm"))


def ct_series(folder: Path, count: int = 3, **changes: object) -> list[Path]:
    """``count`` copies of CT_small.dcm as one series (positions 5 mm apart)."""
    folder.mkdir(parents=True, exist_ok=True)
    source, series_uid, paths = ct_small(), generate_uid(), []
    for k in range(count):
        dataset = copy.deepcopy(source)
        dataset.SeriesInstanceUID = series_uid
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        dataset.InstanceNumber = k + 1
        x, y, z = (float(v) for v in source.ImagePositionPatient)
        dataset.ImagePositionPatient = [x, y, z + 5.0 * k]
        for keyword, value in changes.items():
            setattr(dataset, keyword, value)
        dataset.save_as(folder / f"slice_{k:02d}.dcm")
        paths.append(folder / f"slice_{k:02d}.dcm")
    return paths


def dicom_with(folder: Path, name: str = "x.dcm", **changes: object) -> Path:
    dataset = ct_small()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid values these cases write on purpose
        for keyword, value in changes.items():
            if value is None:
                delattr(dataset, keyword)
            else:
                setattr(dataset, keyword, value)
        dataset.save_as(folder / name)
    return folder / name


def forged_tiff_bomb(path: Path, side: int = 50000) -> None:
    """A tiny deflate TIFF whose header claims ``side`` x ``side`` pixels."""
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8), compression="zlib", metadata=None)
    with tifffile.TiffFile(path, mode="r+b") as tif:
        for tag in ("ImageWidth", "ImageLength", "RowsPerStrip"):
            tif.pages[0].tags[tag].overwrite(side)


def real_tiff_bomb(path: Path, side: int = 50000, tile: int = 2048) -> None:
    """A deflate TIFF of ``side`` x ``side`` zeros: a few MB that decode to ``side**2`` bytes."""
    zero_tile = np.zeros((tile, tile), np.uint8)
    count = math.ceil(side / tile) ** 2
    tifffile.imwrite(path, (zero_tile for _ in range(count)), shape=(side, side), dtype=np.uint8, tile=(tile, tile),
                     compression="zlib", photometric="minisblack", metadata=None)


class Payload:
    """A pickle that would run ``touch pwned`` if a loader ever trusted it."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


# ----------------------------------------------------------------------------- checks


def output_nan_matches_input(input_name: str, output_name: str) -> Check:
    """The output is NaN exactly where the input was, and finite elsewhere."""
    def check(folder: Path, outcomes: list[Outcome]) -> list[str]:
        source, result = tifffile.imread(folder / input_name), tifffile.imread(folder / output_name)
        if not np.array_equal(np.isnan(source), np.isnan(result)):
            return [f"silent: NaN in {np.count_nonzero(np.isnan(result))} output pixels, "
                    f"{np.count_nonzero(np.isnan(source))} in the input"]
        return []
    return check


def notes_say(text: str) -> Check:
    def check(folder: Path, outcomes: list[Outcome]) -> list[str]:
        if not any(text in outcome.stderr for outcome in outcomes):
            return [f"silent: no note saying {text!r}"]
        return []
    return check


def file_untouched(name: str) -> Check:
    """An earlier result that must survive (the snapshot covers it; this says it must exist)."""
    def check(folder: Path, outcomes: list[Outcome]) -> list[str]:
        return [] if (folder / name).exists() else [f"data loss: {name} is gone"]
    return check


def one_winner(output_check: Callable[[Path], bool]) -> Check:
    """Of concurrent commands on one output exactly one succeeds and the other says why."""
    def check(folder: Path, outcomes: list[Outcome]) -> list[str]:
        codes = sorted(outcome.code for outcome in outcomes)
        problems = []
        if codes != [0, 1] or not any(outcome.clean_error for outcome in outcomes):
            problems.append(f"data loss: concurrent commands ended {codes} (expected one success, one error)")
        if not output_check(folder):
            problems.append("data loss: the surviving output is incomplete")
        return problems
    return check


def metrics_steps_are(folder_name: str, steps: list[int]) -> Callable[[Path], bool]:
    def complete(folder: Path) -> bool:
        lines = (folder / folder_name / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["step"] for line in lines] == steps
    return complete


# ----------------------------------------------------------------------------- the cases


def single(*arguments: object, stdin: str | None = None) -> Commands:
    return lambda folder: [iscl(folder, *arguments, stdin=stdin)]


def nothing(folder: Path) -> None:
    pass


def denoise_cases(m: Material) -> list[Case]:
    def denoise(*inputs: object, model: Path = m.model, extra: tuple = ()) -> Commands:
        return single("denoise", *inputs, "-o", "out", "--model", model, "--device", "cpu", "--symmetries", "1",
                      *extra)

    nan_data = np.random.default_rng(3).uniform(100, 900, (2, 48, 48)).astype(np.float32)
    nan_data[0, 20, 20] = np.nan
    inf_data = nan_data.copy()
    inf_data[1, 5, 5] = np.inf
    all_nan = np.full((1, 32, 32), np.nan, np.float32)
    mr_like = np.random.default_rng(4).uniform(-900, 900, (1, 64, 64)).astype(np.float32)
    mr_like[0, :11] = 1500  # 17 % of the pixels above a CT window's 1000
    return [
        Case("empty file", "tiff", lambda f: (f / "x.tif").write_bytes(b""), denoise("x.tif")),
        Case("text named .tif", "tiff", lambda f: (f / "x.tif").write_text("hello"), denoise("x.tif")),
        Case("TIFF magic then garbage", "tiff", lambda f: (f / "x.tif").write_bytes(b"II*\0" + os.urandom(200)),
             denoise("x.tif")),
        Case("random bytes after a TIFF header", "tiff",
             lambda f: (f / "x.tif").write_bytes(b"II*\0\x08\0\0\0" + os.urandom(4000)), denoise("x.tif")),
        Case("truncated plain TIFF", "tiff", lambda f: truncated(stack(f / "x.tif", counts((6, 64, 64))), 0.6),
             denoise("x.tif")),
        Case("truncated deflate TIFF", "tiff",
             lambda f: truncated(stack(f / "x.tif", counts((6, 64, 64)), compression="zlib"), 0.6), denoise("x.tif")),
        Case("forged deflate bomb 50000x50000", "tiff", lambda f: forged_tiff_bomb(f / "x.tif"), denoise("x.tif")),
        Case("forged bomb, inspect", "tiff", lambda f: forged_tiff_bomb(f / "x.tif"), single("inspect", "x.tif")),
        Case("real deflate bomb 50000x50000 (2.4 MB)", "tiff", lambda f: real_tiff_bomb(f / "x.tif"),
             denoise("x.tif")),
        Case("real bomb, inspect", "tiff", lambda f: real_tiff_bomb(f / "x.tif"), single("inspect", "x.tif")),
        Case("one NaN pixel", "tiff", lambda f: stack(f / "x.tif", nan_data), denoise("x.tif"), expect="ok",
             check=output_nan_matches_input("x.tif", "out/x.tif")),
        Case("inspect a stack with a NaN pixel", "tiff", lambda f: stack(f / "x.tif", nan_data),
             single("inspect", "x.tif"), expect="ok"),
        Case("NaN and inf pixels", "tiff", lambda f: stack(f / "x.tif", inf_data), denoise("x.tif"), expect="ok",
             check=notes_say("NaN or infinite pixel(s)")),
        Case("an all-NaN slice", "tiff", lambda f: stack(f / "x.tif", all_nan), denoise("x.tif"), expect="ok",
             check=output_nan_matches_input("x.tif", "out/x.tif")),
        Case("uint8 0..255 through a 259..1758 model", "range",
             lambda f: stack(f / "x.tif", counts((1, 48, 48), 0, 255, dtype="uint8")),
             denoise("x.tif", model=m.counts_model)),
        Case("the same with --allow-clipping", "range",
             lambda f: stack(f / "x.tif", counts((1, 48, 48), 0, 255, dtype="uint8")),
             denoise("x.tif", model=m.counts_model, extra=("--allow-clipping",)), expect="ok",
             check=notes_say("of the pixels lie outside the model's input range")),
        Case("17 % of an MR-like slice above a CT window", "range", lambda f: stack(f / "x.tif", mr_like),
             denoise("x.tif", model=m.ct_model), expect="ok",
             check=notes_say("of the pixels lie outside the model's input range")),
        Case("RGB without --channel", "tiff", lambda f: stack(f / "x.tif", counts((32, 32, 3), dtype="uint8"),
                                                              photometric="rgb"), denoise("x.tif")),
        Case("RGB with --channel 5", "tiff", lambda f: stack(f / "x.tif", counts((32, 32, 3), dtype="uint8"),
                                                             photometric="rgb"),
             denoise("x.tif", extra=("--channel", "5"))),
        Case("palette colour", "tiff", lambda f: stack(f / "x.tif", counts((32, 32), 0, 255, dtype="uint8"),
                                                       photometric="palette",
                                                       colormap=np.zeros((3, 256), np.uint16)), denoise("x.tif")),
        Case("complex pixels", "tiff", lambda f: stack(f / "x.tif", np.zeros((32, 32), np.complex64)),
             denoise("x.tif")),
        Case("1-bit pixels", "tiff", lambda f: stack(f / "x.tif", np.zeros((32, 32), bool)), denoise("x.tif")),
        Case("a 1x1 image", "tiff", lambda f: stack(f / "x.tif", counts((1, 1))), denoise("x.tif"), expect="ok"),
        Case("a 3x500 image", "tiff", lambda f: stack(f / "x.tif", counts((3, 500))), denoise("x.tif"),
             expect="ok"),
        Case("a folder named x.tif, empty", "tiff", lambda f: (f / "x.tif").mkdir(), denoise("x.tif")),
        Case("a FIFO inside an input folder", "tiff", lambda f: (stack(f / "in" / "a.tif", counts()),
                                                                 os.mkfifo(f / "in" / "pipe.tif")),
             denoise("in"), expect="ok"),
        Case("a FIFO named as input", "tiff", lambda f: os.mkfifo(f / "x.tif"), denoise("x.tif")),
        Case("a symlink loop", "tiff", lambda f: (f / "x.tif").symlink_to("x.tif"), denoise("x.tif")),
        Case("a pattern matching nothing", "tiff", nothing, denoise("nothing/*.tif")),
        Case("a good and a bad file", "tiff", lambda f: (stack(f / "a.tif", counts()), (f / "b.tif").write_text("x")),
             denoise("a.tif", "b.tif"), may_create=("out/a.tif",)),
        Case("-o is a file", "output", lambda f: (stack(f / "x.tif", counts()), (f / "out").write_text("a file")),
             denoise("x.tif")),
        Case("-o is the input folder", "output", lambda f: stack(f / "in" / "x.tif", counts()),
             single("denoise", "in", "-o", "in", "--model", m.model, "--device", "cpu")),
        Case("-o inside the input folder", "output", lambda f: stack(f / "in" / "x.tif", counts()),
             single("denoise", "in", "-o", "in/denoised", "--model", m.model, "--device", "cpu")),
        Case("-o onto the input file's folder", "output", lambda f: stack(f / "x.tif", counts()),
             single("denoise", "x.tif", "-o", ".", "--model", m.model, "--device", "cpu")),
        Case("an existing output without --overwrite", "output",
             lambda f: (stack(f / "x.tif", counts()), stack(f / "out" / "x.tif", counts(seed=9))), denoise("x.tif"),
             check=file_untouched("out/x.tif")),
        Case("an existing output with --overwrite", "output",
             lambda f: (stack(f / "x.tif", counts()), stack(f / "out" / "x.tif", counts(seed=9))),
             denoise("x.tif", extra=("--overwrite",)), expect="ok", may_change=("out/x.tif",)),
        Case("--tile-size 0", "options", lambda f: stack(f / "x.tif", counts()), denoise("x.tif", extra=(
            "--tile-size", "0"))),
        Case("--overlap 1e9", "options", lambda f: stack(f / "x.tif", counts()), denoise("x.tif", extra=(
            "--overlap", "1e9"))),
        Case("--batch-size 0", "options", lambda f: stack(f / "x.tif", counts()), denoise("x.tif", extra=(
            "--batch-size", "0"))),
        Case("--symmetries 3", "options", lambda f: stack(f / "x.tif", counts()), denoise("x.tif", extra=(
            "--symmetries", "3"))),
        Case("--device cuda:7 without a GPU", "options", lambda f: stack(f / "x.tif", counts()),
             single("denoise", "x.tif", "-o", "out", "--model", m.model, "--device", "cuda:7")),
    ]


def truncated(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def dicom_cases(m: Material) -> list[Case]:
    def denoise(*inputs: object, extra: tuple = ()) -> Commands:
        return single("denoise", *inputs, "-o", "out", "--model", m.ct_model, "--device", "cpu", "--symmetries", "1",
                      *extra)

    def rle_bomb(folder: Path) -> None:
        dataset = ct_small()
        dataset.compress(RLELossless)
        dataset.Rows = dataset.Columns = 65535
        dataset.save_as(folder / "x.dcm")

    def garbage(folder: Path) -> None:
        (folder / "x.dcm").write_bytes(bytes(128) + b"DICM" + os.urandom(500))

    return [
        Case("DICM marker then garbage", "dicom", garbage, denoise("x.dcm")),
        Case("truncated DICOM", "dicom", lambda f: truncated(dicom_with(f), 0.5), denoise("x.dcm")),
        Case("Rows/Columns smaller than the pixel data", "dicom", lambda f: dicom_with(f, Rows=64, Columns=64),
             denoise("x.dcm")),
        Case("Rows/Columns larger than the pixel data", "dicom", lambda f: dicom_with(f, Rows=256, Columns=256),
             denoise("x.dcm")),
        Case("RLE claiming 65535x65535", "dicom", rle_bomb, denoise("x.dcm")),
        Case("RLE bomb, inspect", "dicom", rle_bomb, single("inspect", "x.dcm")),
        Case("values above BitsStored", "dicom", lambda f: dicom_with(f, BitsStored=12, HighBit=11),
             denoise("x.dcm"), expect="ok", check=notes_say("use bits above BitsStored")),
        Case("BitsAllocated 12", "dicom", lambda f: dicom_with(f, BitsAllocated=12), denoise("x.dcm")),
        Case("no Rows", "dicom", lambda f: dicom_with(f, Rows=None), denoise("x.dcm")),
        Case("no pixel data", "dicom", lambda f: dicom_with(f, PixelData=None), denoise("x.dcm")),
        Case("no SOPInstanceUID", "dicom", lambda f: dicom_with(f, SOPInstanceUID=None), denoise("x.dcm")),
        Case("RescaleSlope 0", "dicom", lambda f: dicom_with(f, RescaleSlope=0), denoise("x.dcm")),
        Case("RescaleSlope NaN", "dicom", lambda f: dicom_with(f, RescaleSlope="NaN"), denoise("x.dcm")),
        Case("RescaleIntercept 'abcde'", "dicom", lambda f: text_in_number(dicom_with(f, RescaleIntercept="77777"),
                                                                        b"77777", b"abcde"), denoise("x.dcm")),
        Case("InstanceNumber 'abc'", "dicom", lambda f: text_in_number(dicom_with(f, InstanceNumber="777"),
                                                                     b"777", b"abc"), denoise("x.dcm")),
        Case("NumberOfFrames 1000000", "dicom", lambda f: dicom_with(f, NumberOfFrames=1000000), denoise("x.dcm")),
        Case("NumberOfFrames 0 (read as 1)", "dicom", lambda f: dicom_with(f, NumberOfFrames=0), denoise("x.dcm"),
             expect="ok"),
        Case("NumberOfFrames -1", "dicom", lambda f: dicom_with(f, NumberOfFrames=-1), denoise("x.dcm")),
        Case("SamplesPerPixel 3 on grey data", "dicom", lambda f: dicom_with(f, SamplesPerPixel=3),
             denoise("x.dcm")),
        Case("one series, two slice sizes", "dicom", lambda f: mixed_sizes(f / "ser"), denoise("ser")),
        Case("a series denoised into itself", "dicom", lambda f: ct_series(f / "ser"),
             single("denoise", "ser", "-o", "ser", "--model", m.ct_model, "--device", "cpu")),
        Case("a good series", "dicom", lambda f: ct_series(f / "ser"), denoise("ser"), expect="ok"),
        Case("a series over an existing output", "dicom", lambda f: (ct_series(f / "ser"), ct_series(f / "out" / "ser")),
             denoise("ser")),
    ]


def text_in_number(path: Path, number: bytes, text: bytes) -> None:
    """Put ``text`` where a number field holds ``number`` (pydicom refuses to write it itself)."""
    path.write_bytes(path.read_bytes().replace(number, text, 1))


def mixed_sizes(folder: Path) -> None:
    paths = ct_series(folder)
    odd = pydicom.dcmread(paths[1])
    odd.Rows = odd.Columns = 64
    odd.PixelData = np.zeros((64, 64), np.int16).tobytes()
    odd.save_as(paths[1])


def model_cases(m: Material) -> list[Case]:
    def info(name: str = "bad.pt") -> Commands:
        return single("info", name)

    def denoise_with(name: str = "bad.pt") -> Commands:
        return lambda folder: [iscl(folder, "denoise", "x.tif", "-o", "out", "--model", name, "--device", "cpu")]

    def writes(content: Callable[[Path], object]) -> Callable[[Path], None]:
        def setup(folder: Path) -> None:
            stack(folder / "x.tif", counts())
            content(folder)
        return setup

    def damaged(damage: Callable[[dict], object]) -> Callable[[Path], None]:
        return writes(lambda folder: m.damaged_model(folder, damage))

    def first_tensor(payload: dict) -> torch.Tensor:
        return next(iter(payload["nets"]["F"].values()))

    hostile = {
        "random bytes": writes(lambda f: (f / "bad.pt").write_bytes(os.urandom(5000))),
        "an empty file": writes(lambda f: (f / "bad.pt").write_bytes(b"")),
        "a pickle that runs code": writes(lambda f: torch.save({"format": "iscl-model", "x": Payload()}, f / "bad.pt")),
        "a protocol-4 pickle": writes(lambda f: (f / "bad.pt").write_bytes(pickle.dumps({"a": 1}, protocol=4))),
        "a saved list": writes(lambda f: torch.save([1, 2, 3], f / "bad.pt")),
        "gen_base=4096 in 3 KB": damaged(lambda p: p["config"].update(gen_base=4096)),
        "ext_depth=10**7": damaged(lambda p: p["config"].update(ext_depth=10**7)),
        "NaN intensity mapping": damaged(lambda p: p["intensity"].update(noisy_low=float("nan"),
                                                                          noisy_high=float("nan"))),
        "low above high": damaged(lambda p: p["intensity"].update(clean_low=5000.0)),
        "NaN weights": damaged(lambda p: first_tensor(p).fill_(float("nan"))),
        "no F network": damaged(lambda p: p["nets"].pop("F")),
        "a string format version": damaged(lambda p: p.update(format_version="1")),
        "an unknown config field": damaged(lambda p: p["config"].update(colour=3)),
        "nets is a list": damaged(lambda p: p.update(nets=[1, 2])),
        "a truncated model file": writes(lambda f: (f / "bad.pt").write_bytes(m.model.read_bytes()[:3000])),
    }
    cases = []
    for name, setup in hostile.items():
        cases.append(Case(f"info: {name}", "model", setup, info(), check=no_code_ran))
        cases.append(Case(f"denoise --model: {name}", "model", setup, denoise_with(), check=no_code_ran))
    return cases


def no_code_ran(folder: Path, outcomes: list[Outcome]) -> list[str]:
    return ["data loss: the model file ran code"] if (folder / "pwned").exists() else []


def train_cases(m: Material) -> list[Case]:
    def train(*extra: object) -> Commands:
        return single("train", "--noisy", "raw", "--clean", "ref", *TINY_TRAINING, *extra)

    def twice(*extra: object) -> Commands:
        return lambda folder: [iscl(folder, "train", "--noisy", "raw", "--clean", "ref", *TINY_TRAINING,
                                    "--out", "k8"),
                               iscl(folder, "train", "--noisy", "raw", "--clean", "ref", *TINY_TRAINING,
                                    "--out", "k8", "--seed", "1", *extra)]

    def concurrently(folder: Path) -> list[Outcome]:
        runs = [start(folder, "train", "--noisy", "raw", "--clean", "ref", *TINY_TRAINING, "--out", "run",
                      "--seed", str(seed), "--steps", "30") for seed in (0, 1)]
        return [finish(run) for run in runs]

    def same_second(folder: Path) -> list[Outcome]:
        runs = [start(folder, "train", "--noisy", "raw", "--clean", "ref", *TINY_TRAINING) for _ in range(2)]
        return [finish(run) for run in runs]

    def two_run_folders(folder: Path, outcomes: list[Outcome]) -> list[str]:
        models = list(folder.glob("iscl-runs/*/model.pt"))
        return [] if len(models) == 2 else [f"data loss: {len(models)} model(s) from two runs"]

    def interrupted_then_resumed(tear: bool, elsewhere: bool) -> Commands:
        def commands(folder: Path) -> list[Outcome]:
            first = iscl(folder, "train", "--noisy", "raw", "--clean", "ref", *TINY_TRAINING, "--out", "run",
                         "--steps", "3", "--checkpoint-every", "2")
            state = torch.load(folder / "run" / "checkpoint.pt", weights_only=False)
            state["config"]["steps"] = 6  # the interrupted run was meant to go on
            torch.save(state, folder / "run" / "checkpoint.pt")
            if tear:
                with (folder / "run" / "metrics.jsonl").open("a") as metrics:
                    metrics.write('{"step": 4, "d_tot')
            cwd = folder / "elsewhere" if elsewhere else folder
            cwd.mkdir(exist_ok=True)
            return [first, iscl(cwd, "train", "--resume", folder / "run", "--quiet")]
        return commands

    def damaged_checkpoint(damage: Callable[[dict], object]) -> Callable[[Path], None]:
        def setup(folder: Path) -> None:
            training_folders(folder)
            finish(start(folder, "train", "--noisy", "raw", "--clean", "ref", *TINY_TRAINING, "--out", "run"))
            state = torch.load(folder / "run" / "checkpoint.pt", weights_only=False)
            damage(state)
            torch.save(state, folder / "run" / "checkpoint.pt")
        return setup

    def model_as_checkpoint(folder: Path) -> None:
        (folder / "run").mkdir()
        shutil.copy(m.model, folder / "run" / "checkpoint.pt")

    def nan_in_training(folder: Path) -> None:
        training_folders(folder)
        data = np.random.default_rng(5).uniform(0, 1, (2, 48, 48)).astype(np.float32)
        data[1, 3, 3] = np.nan
        stack(folder / "raw" / "nan.tif", data)

    return [
        Case("a NaN in the noisy folder", "train", nan_in_training, train("--out", "run"),
             check=lambda f, o: [] if "nan.tif" in o[0].stderr else ["silent: the error does not name the file"]),
        Case("uint16 noisy, uint8 clean, shared range", "train", lambda f: training_folders(f, clean_dtype="uint8"),
             train("--out", "run"), expect="ok", check=notes_say("--per-domain")),
        Case("--out twice", "train", training_folders, twice(), expect="race",
             check=lambda f, o: [] if o[0].code == 0 and o[1].clean_error else ["data loss: the second run was "
                                                                                "not refused"]),
        Case("--out twice with --overwrite", "train", training_folders, twice("--overwrite"), expect="ok",
             check=lambda f, o: [] if metrics_steps_are("k8", [1, 2, 3, 4])(f) else ["data loss: mixed metrics"]),
        Case("two concurrent runs into one --out", "train", training_folders, concurrently, expect="race",
             check=one_winner(metrics_steps_are("run", list(range(1, 31))))),
        Case("two runs in the same second without --out", "train", training_folders, same_second, expect="ok",
             check=two_run_folders),
        Case("resume after a torn metrics line", "train", training_folders,
             interrupted_then_resumed(tear=True, elsewhere=False), expect="ok",
             check=lambda f, o: [] if metrics_steps_are("run", list(range(1, 7)))(f) else ["silent: metrics wrong"]),
        Case("resume from another directory", "train", training_folders,
             interrupted_then_resumed(tear=False, elsewhere=True), expect="ok"),
        Case("resume a damaged checkpoint", "train", lambda f: (training_folders(f), (f / "run").mkdir(),
                                                                (f / "run" / "checkpoint.pt").write_bytes(os.urandom(999))),
             single("train", "--resume", "run")),
        Case("resume a checkpoint without its config", "train", damaged_checkpoint(lambda s: s.pop("config")),
             single("train", "--resume", "run")),
        Case("resume a checkpoint with unknown settings", "train",
             damaged_checkpoint(lambda s: s["config"].update(colour=3)), single("train", "--resume", "run")),
        Case("resume a checkpoint without weights", "train", damaged_checkpoint(lambda s: s.pop("model")),
             single("train", "--resume", "run")),
        Case("resume a model file", "train", model_as_checkpoint, single("train", "--resume", "run")),
        Case("resume a missing folder", "train", nothing, single("train", "--resume", "nowhere")),
        Case("--net gen_base=4096", "train", training_folders, train("--out", "run", "--net", "gen_base=4096")),
        Case("--net ext_depth=100000", "train", training_folders, train("--out", "run", "--net", "ext_depth=100000")),
        Case("--patch-size 100000", "train", training_folders, train("--out", "run", "--patch-size", "100000")),
        Case("--steps -1", "train", training_folders, train("--out", "run", "--steps", "-1")),
        Case("--window nan,1", "train", training_folders, train("--out", "run", "--window", "nan,1")),
        Case("--window -inf,inf", "train", training_folders, train("--out", "run", "--window", "-inf,inf")),
        Case("empty training folders", "train", lambda f: ((f / "raw").mkdir(), (f / "ref").mkdir()),
             train("--out", "run")),
        Case("--out is a file", "train", lambda f: (training_folders(f), (f / "run").write_text("x")),
             train("--out", "run")),
    ]


def interruption_cases(m: Material) -> list[Case]:
    def killed_then_rerun(folder: Path) -> list[Outcome]:
        process = start(folder, "denoise", "big.tif", "-o", "out", "--model", m.model, "--device", "cpu")
        wait_for(lambda: any(UNFINISHED.match(p.name) for p in (folder / "out").glob(".*")), process)
        process.send_signal(signal.SIGKILL)
        process.communicate()
        left = any(UNFINISHED.match(p.name) for p in (folder / "out").glob(".*"))
        rerun = iscl(folder, "denoise", "big.tif", "-o", "out", "--model", m.model, "--device", "cpu",
                     "--symmetries", "1")
        if not left:
            rerun.stderr += "\n(corpus: the kill came too late to leave a temporary file)"
        return [rerun]

    def killed_during_overwrite(delay: float) -> tuple[Commands, Check]:
        """Denoise a series, kill a --overwrite of it ``delay`` s in, look, then run again (which cleans up)."""
        files_after_kill: list[str] = []

        def commands(folder: Path) -> list[Outcome]:
            arguments = ("denoise", "ser", "-o", "out", "--model", m.ct_model, "--device", "cpu", "--symmetries", "1")
            first = iscl(folder, *arguments)
            process = start(folder, *arguments, "--overwrite")
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.communicate()
            files_after_kill.extend(path.name for path in (folder / "out" / "ser").glob("*.dcm"))
            return [first, iscl(folder, *arguments, "--overwrite")]

        def check(folder: Path, outcomes: list[Outcome]) -> list[str]:
            count = len(files_after_kill)
            return [] if count == 12 else [f"data loss: after the kill the output series held {count} of 12 files"]

        return commands, check

    def training_killed_then_resumed(folder: Path) -> list[Outcome]:
        process = start(folder, "train", "--noisy", "raw", "--clean", "ref", *TINY_TRAINING, "--out", "run",
                        "--steps", "60", "--checkpoint-every", "1")
        wait_for(lambda: (folder / "run" / "checkpoint.pt").exists(), process)
        time.sleep(1.0)
        process.send_signal(signal.SIGKILL)
        process.communicate()
        return [iscl(folder, "train", "--resume", "run", "--quiet")]

    def racing_denoise(folder: Path) -> list[Outcome]:
        runs = [start(folder, "denoise", f"{name}/vol.tif", "-o", "oc", "--model", m.model, "--device", "cpu")
                for name in ("x", "y")]
        return [finish(run) for run in runs]

    def one_complete_result(folder: Path) -> bool:
        return tifffile.imread(folder / "oc" / "vol.tif").shape == (12, 96, 96)

    return [
        Case("kill -9 during a denoise, then run again", "interrupt", lambda f: stack(f / "big.tif",
                                                                                  counts((12, 256, 256))),
             killed_then_rerun, expect="ok", may_create=("out/big.tif",),
             check=notes_say("removed 1 unfinished output(s) left by stopped iscl processes")),
        *[Case(f"kill -9 {delay:g} s into a --overwrite of a DICOM series", "interrupt",
               lambda f: ct_series(f / "ser", 12), commands, expect="ok", check=check)
          for delay in (3.0, 4.0, 5.0, 6.0, 8.0) for commands, check in [killed_during_overwrite(delay)]],
        Case("kill -9 during training (checkpoint every step), then --resume", "interrupt", training_folders,
             training_killed_then_resumed, expect="ok",
             check=lambda f, o: [] if metrics_steps_are("run", list(range(1, 61)))(f) else ["silent: metrics wrong"]),
        Case("two denoise runs into one output", "race",
             lambda f: (stack(f / "x" / "vol.tif", counts((12, 96, 96))), stack(f / "y" / "vol.tif",
                                                                                counts((12, 96, 96), seed=1))),
             racing_denoise, expect="race", check=one_winner(one_complete_result)),
    ]


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.05)


def full_disk_cases(m: Material) -> list[Case]:
    def fill(folder: Path) -> None:
        with (folder / "disk" / "filler").open("wb", buffering=0) as stream:
            try:
                while True:
                    stream.write(bytes(4096))
            except OSError:
                pass

    def training_then_fill_at_the_checkpoint(folder: Path) -> list[Outcome]:
        """Fill the disk once the first checkpoint exists (``--checkpoint-every 2``), then go on."""
        process = start(folder, "train", "--noisy", "raw", "--clean", "ref", *TINY_TRAINING, "--out", "disk/run",
                        "--steps", "400", "--preview-every", "1000")
        wait_for(lambda: (folder / "disk" / "run" / "checkpoint.pt").exists(), process)
        fill(folder)
        return [finish(process)]

    return [
        Case("full disk during a TIFF write", "disk", lambda f: stack(f / "x.tif", counts((4, 512, 512))),
             single("denoise", "x.tif", "-o", "disk/out", "--model", m.model, "--device", "cpu", "--symmetries", "1"),
             needs_small_disk=True),
        Case("full disk during a DICOM series write", "disk", lambda f: ct_series(f / "ser", 40),
             single("denoise", "ser", "-o", "disk/out", "--model", m.ct_model, "--device", "cpu", "--symmetries", "1"),
             needs_small_disk=True),
        Case("full disk during a checkpoint", "disk", training_folders, training_then_fill_at_the_checkpoint,
             needs_small_disk=True,
             may_create=("disk/run/checkpoint.pt", "disk/run/config.json", "disk/run/metrics.jsonl", "disk/filler")),
        Case("full disk when the run folder is made", "disk", lambda f: (training_folders(f), fill(f)),
             single("train", "--noisy", "raw", "--clean", "ref", *TINY_TRAINING, "--out", "disk/run"),
             needs_small_disk=True),
    ]


# ----------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default="", help="run only cases whose name or group contains one of these "
                                               "comma-separated words")
    parser.add_argument("--workdir", type=Path, default=None, help="where the cases run (default: a temp folder)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "hostile_inputs.json", help="JSON to write")
    parser.add_argument("--table", type=Path, default=None, metavar="JSON",
                        help="print the Markdown table of an earlier run's JSON and run nothing")
    return parser.parse_args()


def mount_small_disk(folder: Path) -> bool:
    """A 1 MiB tmpfs at ``folder/disk`` (needs root)."""
    (folder / "disk").mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder / "disk")],
                             capture_output=True)
    return mounted.returncode == 0


def main() -> None:
    args = parse_args()
    if args.table is not None:
        print(markdown_table(json.loads(args.table.read_text())["summary"]))
        return
    root = Path(tempfile.mkdtemp(prefix="iscl-hostile-", dir=args.workdir))
    try:
        verdicts, seconds = run_cases(root, args.k)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    summary = {**totals(verdicts), "seconds": seconds}
    print(json.dumps(summary, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "cases": [verdict.__dict__ for verdict in verdicts]},
                                   indent=2) + "\n")
    print(markdown_table(summary))


def run_cases(root: Path, selection: str) -> tuple[list[Verdict], int]:
    """Judge every case whose name or group holds one of the comma-separated words of
    ``selection``, each in a folder under ``root``, printing one line per case."""
    material = Material(root / "material")
    cases = [case for make in (denoise_cases, dicom_cases, model_cases, train_cases, interruption_cases,
                               full_disk_cases) for case in make(material)]
    words = [word.strip().lower() for word in selection.split(",")]
    cases = [case for case in cases if any(word in f"{case.group} {case.name}".lower() for word in words)]
    verdicts = []
    started = time.perf_counter()
    for number, case in enumerate(cases, start=1):
        folder = root / f"case-{number:03d}"
        folder.mkdir()
        if case.needs_small_disk and not mount_small_disk(folder):
            verdicts.append(Verdict(case.name, case.group, skipped="cannot mount a tmpfs (needs root)"))
            continue
        try:
            verdicts.append(judge(case, folder))
        finally:
            if case.needs_small_disk:
                subprocess.run(["umount", "--lazy", str(folder / "disk")], check=False)
        verdict = verdicts[-1]
        status = ", ".join(f"{kind}: {'; '.join(details)}" for kind, details in verdict.findings.items()) or "ok"
        print(f"{number:3d} [{case.group}] {case.name}: {status} ({' | '.join(verdict.outcomes)})", flush=True)
    return verdicts, round(time.perf_counter() - started)


def totals(verdicts: list[Verdict]) -> dict[str, object]:
    """The counts over all cases, and cases / as expected / clean errors per group."""
    judged = [verdict for verdict in verdicts if verdict.skipped is None]
    count = {kind: sum(kind in verdict.findings for verdict in judged)
             for kind in ("traceback", "partial", "data loss", "silent", "unexpected")}
    groups: dict[str, dict[str, int]] = {}
    for verdict in judged:
        group = groups.setdefault(verdict.group, {"cases": 0, "as expected": 0, "clean errors": 0})
        group["cases"] += 1
        group["as expected"] += not verdict.findings
        group["clean errors"] += any(outcome.startswith("exit 1: error:") for outcome in verdict.outcomes)
    return {"cases": len(judged), "skipped": len(verdicts) - len(judged),
            "as expected": sum(group["as expected"] for group in groups.values()),
            "clean errors": sum(group["clean errors"] for group in groups.values()),
            "tracebacks": count["traceback"], "partial files": count["partial"], "data loss": count["data loss"],
            "silent": count["silent"], "unexpected": count["unexpected"], "groups": groups}


def markdown_table(summary: dict[str, object]) -> str:
    """The per-group table and the totals line of docs/robustness.md, from a run's summary."""
    lines = ["| group | what | cases | as expected | clean errors |", "|---|---|---:|---:|---:|"]
    for name, description in GROUP_DESCRIPTIONS.items():
        if name in summary["groups"]:
            group = summary["groups"][name]
            lines.append(f"| {name} | {description} | {group['cases']} | {group['as expected']} | "
                         f"{group['clean errors']} |")
    lines += ["", f"Totals: {summary['cases']} cases ({summary['skipped']} skipped), {summary['as expected']} as "
                  f"expected, {summary['clean errors']} with a clean error; "
                  f"{summary['tracebacks']} tracebacks, {summary['partial files']} partial files, "
                  f"{summary['data loss']} data loss, {summary['silent']} silent, {summary['unexpected']} unexpected "
                  f"({summary['seconds']} s)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
