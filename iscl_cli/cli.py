"""The ``iscl`` command line: parses arguments, calls the library, prints.

Results (the model path, output paths, ``--json``) go to stdout; progress, notes and
errors to stderr. Every command turns an ``IsclError`` into one line on stderr and exit
status 1; any other exception is one line too, with the traceback only under ``--debug``.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from iscl_cli import __version__
from iscl_cli.devices import PRECISIONS
from iscl_cli.errors import IsclError, unexpected_error_line
from iscl_cli.inference import TileOptions
from iscl_cli.tiling import BLEND_MODES
from iscl_cli.train import DEFAULT_PRESET, PRESETS, STRUCTURED_NOISE_RATES, TrainConfig

EXIT_STATUS = ("Exit status: 0 done; 1 a problem with an input, option or output (one 'error:' line on stderr "
               "per problem; other inputs are still done); 2 the command line itself is wrong (a misspelt option, "
               "a missing value); 130 interrupted (Ctrl-C).")

app = typer.Typer(
    name="iscl",
    help="Unpaired denoising of TIFF stacks and DICOM series with ISCL (Lee & Jeong, IEEE TMI 2021).",
    epilog=EXIT_STATUS,
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help: rich's shows flags as taking a <bool> value
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
LOG = logging.getLogger("iscl")


class StderrNotes(logging.Handler):
    """Prints the library's notes (``logging.getLogger("iscl")``) as ``note: ...`` lines on
    stderr; under ``--debug`` also the traceback a note carries."""

    def emit(self, record: logging.LogRecord) -> None:
        err.print(f"note: {record.getMessage()}", markup=False)
        if record.exc_info and LOG.isEnabledFor(logging.DEBUG):
            err.print("".join(traceback.format_exception(*record.exc_info)).rstrip(), markup=False)


def setup_notes(debug: bool = False) -> None:
    """Notes to stderr; ``--debug`` adds debug notes and tracebacks."""
    LOG.handlers = [StderrNotes()]
    LOG.setLevel(logging.DEBUG if debug else logging.INFO)
    LOG.propagate = False


def quiet_notes(quiet: bool) -> None:
    """``--quiet`` hides the informational notes (not under ``--debug``)."""
    if quiet and not LOG.isEnabledFor(logging.DEBUG):
        LOG.setLevel(logging.WARNING)


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn IsclError into ``error: ...`` and exit 1; Ctrl-C into exit 130; never a traceback
    unless ``--debug`` asks for one."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except IsclError as error:
            err.print(f"error: {error}", markup=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt as interrupt:
            err.print(f"interrupted: {str(interrupt) or 'nothing half-written was left behind'}", markup=False)
            raise typer.Exit(130) from None
        except Exception as error:  # a bug in iscl: still one line, and the traceback on request
            if LOG.isEnabledFor(logging.DEBUG):
                err.print(traceback.format_exc().rstrip(), markup=False)
            err.print(f"error: {unexpected_error_line(error)}", markup=False)
            raise typer.Exit(1) from None

    return wrapper


def version_callback(value: bool) -> None:
    if value:
        out.print(f"iscl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=version_callback, is_eager=True,
                                                    help="Print the version and exit.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Print debug notes, and the Python traceback of an "
                                                        "unexpected error (for a bug report).")] = False,
) -> None:
    """Unpaired denoising of TIFF stacks and DICOM series with ISCL."""
    setup_notes(debug)


ChannelOption = Annotated[Optional[int], typer.Option(
    "--channel", help="For multi-channel/RGB data: the channel (0-based) to use; required when there is more than one.")]
DeviceOption = Annotated[str, typer.Option(help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps.")]
ThreadsOption = Annotated[Optional[int], typer.Option(
    help="CPU threads for torch (default: torch's, one per core); on a machine that other jobs keep busy, "
         "fewer run faster (see docs/install.md).", show_default=False)]

DEFAULT_TILES = TileOptions()
# The default overlap as a fraction of the default tile, so that it follows --tile-size.
DEFAULT_OVERLAP = DEFAULT_TILES.overlap if isinstance(DEFAULT_TILES.overlap, float) \
    else DEFAULT_TILES.overlap / DEFAULT_TILES.tile_size
PRESET_CONFIGS = {name: TrainConfig.from_preset(name, noisy=[], clean=[]) for name in PRESETS}
DEFAULT_CONFIG = PRESET_CONFIGS[DEFAULT_PRESET]
STRUCTURED_LR, STRUCTURED_D_LR = STRUCTURED_NOISE_RATES


def per_preset(setting: str) -> str:
    """The default of a preset-given option, for its help: ``the preset's: standard 1500, quick 1000, ...``."""
    values = {name: getattr(config, setting) for name, config in PRESET_CONFIGS.items()}
    def shown(value: Any) -> str:
        return "as --lr" if value is None else value if isinstance(value, str) else f"{value:g}"

    return "the preset's: " + ", ".join(f"{name} {shown(value)}" for name, value in values.items())


@app.command(epilog=EXIT_STATUS)
@reports_errors
def inspect(
    paths: Annotated[list[str], typer.Argument(help="TIFF files, DICOM files or folders, or glob patterns.")],
    channel: ChannelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list instead of text (an input that "
                                                         "cannot be read is an entry with path and error).")] = False,
) -> None:
    """Show what iscl reads from each input: format, series, slices, shape, dtype, value range, spacing.

    Every file is reported; problems are 'error:' lines on stderr, and the exit status is then 1."""
    from iscl_cli.inspect import describe_inputs

    descriptions, problems = describe_inputs(paths, channel=channel)
    if as_json:
        failures = [{"path": problem.path, "error": str(problem)} for problem in problems]
        out.print(json.dumps(descriptions + failures, indent=2, default=str), markup=False)
    else:
        for description in descriptions:
            out.print(f"[bold]{description.pop('path')}[/bold]")
            for key, value in description.items():
                out.print(f"  {key:<18} {value}", markup=False)
    for problem in problems:
        err.print(f"error: {problem}", markup=False)
    if problems:
        raise typer.Exit(1)


def parse_assignments(settings: list[str], words: bool = False) -> dict[str, bool | int | float | str]:
    """``["gen_base=16", "sigma=0.5", "identity_start=false"]`` -> ``{"gen_base": 16, "sigma": 0.5,
    "identity_start": False}`` (for --net and --param); with ``words``, a value that is not a
    number stays text (``architecture=unet``)."""
    parsed: dict[str, bool | int | float | str] = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep:
            raise IsclError(f"expected NAME=VALUE (got {setting!r})")
        if value.strip().lower() in ("true", "false"):
            parsed[key.strip()] = value.strip().lower() == "true"
            continue
        try:
            parsed[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else float(value)
        except ValueError:
            if not words:
                raise IsclError(f"{key}: {value!r} is not a number") from None
            parsed[key.strip()] = value.strip()
    return parsed


class TrainProgress:
    """On stderr: a rich bar on a terminal, plain periodic lines otherwise (and on every step
    that validates); nothing with ``--quiet``."""

    def __init__(self, quiet: bool, every: int) -> None:
        self.quiet, self.every = quiet, every
        self.bar: Progress | None = None
        self.task = None
        self.validation = ""

    def __enter__(self) -> TrainProgress:
        if not self.quiet and err.is_terminal:
            self.bar = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[losses]}"), TextColumn("{task.fields[validation]}"),
                                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                console=err, redirect_stdout=out.is_terminal)
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, report: Any) -> None:
        losses = report.losses
        brief = f"D {losses.get('d_total', float('nan')):.3f} G {losses.get('g_total', float('nan')):.3f} " \
                f"H {losses.get('h_total', float('nan')):.3f}"
        rate = f"{1.0 / max(report.seconds_per_step, 1e-9):.2f} it/s"
        if "val_psnr" in report.scores:
            self.validation = f"val PSNR {report.scores['val_psnr']:.2f} dB (input {report.scores['noisy_psnr']:.2f})"
        if self.bar is not None:
            if self.task is None:
                self.task = self.bar.add_task("train", total=report.total, completed=report.step - 1,
                                              losses=brief, validation=self.validation, rate=rate)
            self.bar.update(self.task, completed=report.step, losses=brief, validation=self.validation, rate=rate)
        elif not self.quiet and (report.step % self.every == 0 or report.step == report.total or report.scores):
            line = f"step {report.step}/{report.total}  {brief}  lr {losses.get('lr', 0):.2e}  {rate}"
            err.print(f"{line}  {self.validation}" if report.scores else line, markup=False)


def options_given(ctx: typer.Context) -> dict[str, str]:
    """The options typed on the command line: parameter name -> its flag."""
    return {parameter.name: parameter.opts[0] for parameter in ctx.command.params
            if ctx.get_parameter_source(parameter.name).name == "COMMANDLINE"}  # the enum lives in typer's private click


def spread_option_values(args: list[str], options: Sequence[str]) -> list[str]:
    """``--noisy a b c --clean d e`` -> ``--noisy a --noisy b --noisy c --clean d --clean e``
    for ``options``: what the shell makes of ``--noisy raw/*.tif`` becomes what iscl reads."""
    spread: list[str] = []
    current: str | None = None
    awaiting_value = False
    for index, arg in enumerate(args):
        if arg == "--":
            return spread + args[index:]
        if arg.startswith("-"):
            name, has_value, _ = arg.partition("=")
            current = name if name in options else None
            awaiting_value = current is not None and not has_value
            spread.append(arg)
        elif current is not None and not awaiting_value:
            spread += [current, arg]
        else:
            spread.append(arg)
            awaiting_value = False
    return spread


class SpreadListOptions(TyperCommand):
    """A command whose file-list options take every value up to the next option."""

    list_options = ("--noisy", "--clean", "--val-noisy", "--val-clean")

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, spread_option_values(args, self.list_options))


@app.command(cls=SpreadListOptions, epilog=EXIT_STATUS)
@reports_errors
def train(
    ctx: typer.Context,
    noisy: Annotated[list[str], typer.Option("--noisy", help="Noisy images: folders, files or globs; takes every path up to the next option (--noisy raw/*.tif).")] = [],
    clean: Annotated[list[str], typer.Option("--clean", help="Clean reference images, unrelated to the noisy ones; every path up to the next option.")] = [],
    out_dir: Annotated[Optional[str], typer.Option("--out", help="Run folder (default: ./iscl-runs/run-DATE-TIME).")] = None,
    preset: Annotated[str, typer.Option(help=f"{', '.join(PRESETS)}: standard takes about 15 minutes on a quiet 2-core CPU, quick (the same networks, fewer steps) about 3, paper is the paper's settings, for a GPU (docs/training.md#presets).")] = DEFAULT_PRESET,
    steps: Annotated[Optional[int], typer.Option(help="Training iterations; with --resume, more extend the run.", show_default=per_preset("steps"))] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Patches per domain per iteration.", show_default=per_preset("batch_size"))] = None,
    patch_size: Annotated[Optional[int], typer.Option(help="Side of the square training patches.", show_default=per_preset("patch_size"))] = None,
    lr: Annotated[Optional[float], typer.Option(help=f"Initial learning rate of F, G and H (RAdam; decays to {DEFAULT_CONFIG.final_lr:g}); standard and quick take {STRUCTURED_LR:g} where the noise is structured, not pixel-independent (docs/training.md#learning-rates-and-noise-structure).", show_default=per_preset("lr"))] = None,
    d_lr: Annotated[Optional[float], typer.Option("--d-lr", help=f"The discriminators' initial learning rate; standard and quick take {STRUCTURED_D_LR:g} where the noise is structured. Giving --lr or --d-lr keeps both as given.", show_default=per_preset("d_lr"))] = None,
    beta2: Annotated[Optional[float], typer.Option(help="RAdam's beta2; lower values shorten its built-in warm-up.", show_default=per_preset("beta2"))] = None,
    device: DeviceOption = DEFAULT_CONFIG.device,
    threads: ThreadsOption = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed and data, same run.")] = DEFAULT_CONFIG.seed,
    resume: Annotated[Optional[Path], typer.Option(help="Continue a run from its folder (or checkpoint.pt); only --steps, --device, --threads and the --*-every options can change.")] = None,
    init_from: Annotated[Optional[Path], typer.Option("--init-from", help="Fine-tune: start a new run from this model's five networks and intensity mapping (a model.pt or its run folder).")] = None,
    val_noisy: Annotated[list[str], typer.Option("--val-noisy", help="Paired validation: noisy images (with --val-clean).")] = [],
    val_clean: Annotated[list[str], typer.Option("--val-clean", help="Paired validation: their clean versions, same order.")] = [],
    val_every: Annotated[int, typer.Option(help="Validate every N steps (PSNR/SSIM in metrics.jsonl and the progress line).")] = DEFAULT_CONFIG.val_every,
    checkpoint_every: Annotated[int, typer.Option(help="Write checkpoint.pt every N steps.")] = DEFAULT_CONFIG.checkpoint_every,
    preview_every: Annotated[int, typer.Option(help="Write a preview PNG and redraw curves.png every N steps.")] = DEFAULT_CONFIG.preview_every,
    window: Annotated[Optional[str], typer.Option(help="Fixed intensity window LO,HI in physical units (e.g. -1000,1000 for CT in HU) instead of fitted percentiles.")] = None,
    focus: Annotated[Optional[str], typer.Option(help="Intensity range LO,HI in physical units that gets most of the networks' range (e.g. -160,240 for soft tissue in HU); values outside it stay, compressed (docs/training.md#intensity-mapping).")] = None,
    per_domain: Annotated[bool, typer.Option("--per-domain", help="Fit a separate intensity range to each domain (for different contrasts; see docs/training.md).")] = False,
    stabilize: Annotated[Optional[str], typer.Option(help="Variance stabilisation of shot noise (generalized Anscombe transform): auto (where the noisy data show pixel-independent Poisson-Gaussian noise), on or off; measured to cost PSNR on simulated fluorescence, so off by default (docs/training.md#variance-stabilisation).", show_default=per_preset("stabilize"))] = None,
    noise_orientation: Annotated[Optional[str], typer.Option(help="The direction of the noise: rows (scan artefacts along the rows: line jitter, charging trails), columns, any (none), or auto (measured on the noisy data); noisy patches are trained, and tiles averaged, only in the poses that keep it (docs/training.md#noise-orientation).", show_default=per_preset("noise_orientation"))] = None,
    net: Annotated[list[str], typer.Option("--net", help="Override a network setting of the preset, NAME=VALUE (e.g. --net gen_base=24); repeatable. --net gamma=W fixes the ensemble weight, which standard and quick otherwise choose after training (docs/training.md#the-ensemble-weight).")] = [],
    export: Annotated[bool, typer.Option("--export", help="Save only F and H in the model file (inference only, smaller).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the training run already in --out (its model, checkpoint, metrics and previews).")] = False,
    channel: ChannelOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors and the model path.")] = False,
) -> None:
    """Learn a denoiser from a folder of noisy scans and an unrelated folder of clean references."""
    from iscl_cli.intensity import parse_window
    from iscl_cli.devices import use_threads
    from iscl_cli.distributed import torchrun_world
    from iscl_cli.train import RESUMABLE_SETTINGS, make_train_config, train as run_training

    world = torchrun_world()
    quiet_notes(quiet or not world.is_main)  # under torchrun, rank 0's notes stand for all
    use_threads(threads)
    config, changes = None, None
    if resume is not None:
        given = options_given(ctx)
        changes = {name: ctx.params[name] for name in RESUMABLE_SETTINGS if name in given}
        ignored = [flag for name, flag in given.items() if name not in (*RESUMABLE_SETTINGS, "resume", "threads", "quiet")]
        if ignored:
            LOG.warning("--resume continues with the run's stored settings; ignoring %s", ", ".join(ignored))
    elif not noisy or not clean:
        raise IsclError("give both --noisy and --clean (or --resume RUN_FOLDER)")
    else:
        config = make_train_config(
            noisy, clean, preset, network=parse_assignments(net, words=True), out=out_dir, steps=steps,
            batch_size=batch_size, patch_size=patch_size, lr=lr, d_lr=d_lr, beta2=beta2, device=device, seed=seed,
            val_noisy=val_noisy or None, val_clean=val_clean or None, val_every=val_every,
            checkpoint_every=checkpoint_every, preview_every=preview_every,
            window=parse_window(window) if window else None, focus=parse_window(focus, "--focus") if focus else None,
            per_domain=per_domain, stabilize=stabilize, noise_orientation=noise_orientation, export=export,
            channel=channel,
            init_from=None if init_from is None else str(init_from.resolve()),
        )
    with TrainProgress(quiet or not world.is_main, every=10) as progress:
        model_path = run_training(config, resume=resume, progress=progress, overwrite=overwrite, changes=changes,
                                  world=world)
    if world.is_main:
        out.print(str(model_path), markup=False)


@app.command(epilog=EXIT_STATUS)
@reports_errors
def denoise(
    inputs: Annotated[list[str], typer.Argument(help="TIFF files, DICOM files or folders, or globs.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder (created if needed).")],
    model: Annotated[Optional[Path], typer.Option(help="Model file or run folder (default: newest ./iscl-runs/*/model.pt).")] = None,
    tile_size: Annotated[int, typer.Option(help="Largest tile side in pixels (tiles are balanced to fit the slice).")] = DEFAULT_TILES.tile_size,
    overlap: Annotated[float, typer.Option(help="Least tile overlap: a fraction of the tile (< 1) or pixels (>= 1).")] = DEFAULT_OVERLAP,
    blend: Annotated[str, typer.Option(help=f"Overlap blending window: {', '.join(BLEND_MODES)}.")] = DEFAULT_TILES.blend,
    batch_size: Annotated[int, typer.Option(help="Tiles per forward pass; on a GPU, slices smaller than that share one.")] = DEFAULT_TILES.batch_size,
    symmetries: Annotated[int, typer.Option(help="Denoise each tile in this many of its 8 flips/rotations and average (1, 2, 4 or 8; 1 is 8 times faster); at most the poses the model was trained on (2 for noise along the scan rows, docs/training.md#noise-orientation).")] = DEFAULT_TILES.symmetries,
    precision: Annotated[Optional[str], typer.Option(help=f"What the networks compute in: {', '.join(PRECISIONS)} (default bf16 on a CUDA GPU that has it, else fp32; docs/tiling.md#precision).", show_default=False)] = None,
    device: DeviceOption = "auto",
    threads: ThreadsOption = None,
    channel: ChannelOption = None,
    write_noise: Annotated[bool, typer.Option("--write-noise", help="Also write the removed noise (input - output) as <name>.noise.tif (float32).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace outputs that already exist.")] = False,
    allow_clipping: Annotated[bool, typer.Option("--allow-clipping", help="Denoise slices even when most of their pixels lie outside the model's intensity range (they are clipped to it).")] = False,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Leave inputs whose outputs exist alone (a re-run after a failure does only what is missing).")] = False,
    shard: Annotated[Optional[str], typer.Option(help="K/N: denoise only every N-th input, starting at input K (from 0), of the order one run would take; N such runs (a job array) cover the inputs exactly once, a series or stack never split (docs/distributed.md).", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no notes; the results and errors still appear.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary on stdout.")] = False,
) -> None:
    """Denoise TIFF stacks and DICOM series with a trained model; writes the same format to -o."""
    from iscl_cli.allocator import limit_malloc_arenas
    from iscl_cli.checkpoint import load_model, resolve_model_path
    from iscl_cli.denoise import plan_outputs, run_plan
    from iscl_cli.distributed import Shard, gathered_in_order, parse_shard, process_group, rank_device, torchrun_world
    from iscl_cli.inference import tile_alignment
    from iscl_cli.devices import resolve_device, use_threads

    quiet_notes(quiet)
    if overwrite and skip_existing:
        raise IsclError("--overwrite and --skip-existing contradict each other; choose one")
    own_shard = Shard() if shard is None else parse_shard(shard)
    use_threads(threads)
    limit_malloc_arenas()  # before the slice-reading thread starts: keeps the peak flat over long stacks
    started = time.perf_counter()
    world = torchrun_world()
    with process_group(world):
        loaded = load_model(resolve_model_path(model, Path.cwd()), rank_device(resolve_device(device), world))
        tiles = TileOptions(tile_size=tile_size, overlap=int(overlap) if overlap >= 1 else overlap, blend=blend,
                            batch_size=batch_size, symmetries=symmetries, precision=precision,
                            ).validated(tile_alignment(loaded.model), next(loaded.model.parameters()).device)
        plan = plan_outputs(inputs, output, overwrite=overwrite, write_noise=write_noise, channel=channel,
                            skip_existing=skip_existing).shard(own_shard).shard(world.shard)
        show_bar = not quiet and err.is_terminal and world.is_main  # one bar (rank 0's share), not one per rank

        def report(job: Any) -> None:
            if job.error:
                err.print(f"error: {job.error}", markup=False)
            elif job.skipped:
                err.print(f"note: {job.volume.source}: skipped, {job.output} exists (--skip-existing)", markup=False)
            else:
                if not as_json:
                    out.print(f"{job.volume.source} -> {job.output} ({len(job.volume)} slices, {job.seconds:.1f} s, "
                              f"removed-noise structure {job.noise_check.overall:+.2f})", markup=False)
                warning = job.noise_check.warning(str(job.volume.source))
                if warning:
                    err.print(f"warning: {warning}", markup=False)

        with Progress(TextColumn("denoising"), BarColumn(), MofNCompleteColumn(), TextColumn("slices"),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=not show_bar,
                      redirect_stdout=out.is_terminal) as bar:  # results piped to a file stay out of the bar
            task = bar.add_task("slices", total=plan.total_slices)
            jobs = run_plan(plan, loaded, output, tiles, on_slice=lambda: bar.advance(task), on_job=report,
                            allow_clipping=allow_clipping)
        summaries = gathered_in_order(world, [job.summary() for job in jobs])  # every rank's, in the planned order
    failed = [summary["input"] for summary in summaries if summary["status"] == "failed"]
    if as_json and world.is_main:
        totals = {"model": str(loaded.path), "jobs": summaries,
                  "slices": sum(summary["slices"] for summary in summaries if summary["status"] == "ok"),
                  "failed": len(failed), "processes": world.size, "seconds": round(time.perf_counter() - started, 3)}
        out.print(json.dumps(totals, indent=2), markup=False)
    if failed and len(summaries) > 1 and world.is_main:
        err.print(f"error: {len(failed)} of {len(summaries)} input(s) failed: " + ", ".join(failed), markup=False)
    if failed:  # on every rank, so that torchrun's exit status says it too
        raise typer.Exit(1)


@app.command(epilog=EXIT_STATUS)
@reports_errors
def info(
    models: Annotated[list[Path], typer.Argument(help="Model files (model.pt) or run folders.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the card as a JSON object (a list of them for "
                                                         "several models).")] = False,
) -> None:
    """Print a model file's card: architecture, training data, steps, intensity mapping, versions."""
    from iscl_cli.checkpoint import read_model_card
    from iscl_cli.model_card import format_card

    cards, problems = [], []
    for model in models:
        try:
            cards.append(read_model_card(model))
        except IsclError as error:
            problems.append(error)
    if as_json and cards:
        out.print(json.dumps(cards if len(models) > 1 else cards[0], indent=2, default=str), markup=False)
    elif cards:
        out.print("\n\n".join(map(format_card, cards)), markup=False)
    for problem in problems:
        err.print(f"error: {problem}", markup=False)
    if problems:
        raise typer.Exit(1)


@app.command(epilog=EXIT_STATUS)
@reports_errors
def simulate(
    noise: Annotated[str, typer.Argument(help="Noise model (see `iscl simulate --list`).")] = "",
    input_path: Annotated[Optional[Path], typer.Argument(metavar="INPUT", help="Clean TIFF stack.")] = None,
    output_path: Annotated[Optional[Path], typer.Argument(metavar="OUTPUT", help="Noisy TIFF stack to write.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    param: Annotated[list[str], typer.Option("--param", "-p", help="Noise parameter NAME=VALUE; repeatable.")] = [],
    list_models: Annotated[bool, typer.Option("--list", help="List the noise models and their parameters.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Write a noisy TIFF stack from a clean one with a noise model practitioners meet."""
    from iscl_cli.simulate import NOISE_MODELS, describe_noise_models, simulate_stack

    if list_models or not noise:
        out.print(describe_noise_models(), markup=False)
        return
    if noise not in NOISE_MODELS:
        raise IsclError(f"unknown noise model {noise!r}; choose one of {', '.join(NOISE_MODELS)}")
    if input_path is None or output_path is None:
        raise IsclError("give INPUT and OUTPUT TIFF paths")
    simulate_stack(input_path, output_path, noise, seed=seed, overwrite=overwrite, **parse_assignments(param))
    out.print(str(output_path), markup=False)


@app.command(epilog=EXIT_STATUS)
@reports_errors
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the example data, run and results.")] = Path("iscl-demo"),
    full: Annotated[bool, typer.Option("--full", help=f"A longer, better run: 48 images per domain of 256x256, the standard preset ({PRESETS['standard']['steps']} steps, about 20 minutes on a 2-core CPU).")] = False,
    device: DeviceOption = "auto",
    threads: ThreadsOption = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start again in a folder that holds an earlier or interrupted demo (its results are replaced).")] = False,
) -> None:
    """Make an unpaired example, train on it, denoise a held-out stack, print PSNR/SSIM, save a preview."""
    from iscl_cli.demo import run_demo
    from iscl_cli.devices import use_threads

    use_threads(threads)
    result = run_demo(out_dir, full=full, device=device, seed=seed, overwrite=overwrite,
                      say=lambda line: out.print(line, markup=False))
    out.print(f"preview: {result['preview']}", markup=False)


if __name__ == "__main__":
    app()
