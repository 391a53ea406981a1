"""The training loop: unpaired folders in, a model file out.

One readable loop: sample a noisy and a clean batch, run the three ISCL updates
(``ISCL.train_step``), average the generators late in training (SWA), and every so often
log, validate, preview and checkpoint. Everything it needs to continue bit-for-bit lives
in the checkpoint.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from iscl_cli import __version__
from iscl_cli.checkpoint import (ALL_NETS, CHECKPOINT_FILE, MODEL_FILE, LoadedModel, load_model, load_trusted_dict,
                                 model_file, network_skeleton, save_atomic, save_model, weight_bytes)
from iscl_cli.data import PatchSampler
from iscl_cli.devices import autocast_dtype, resolve_device
from iscl_cli.distributed import (World, average_buffers, averaged_numbers, data_parallel, from_every_rank,
                                  process_group, rank_device, rank_seed, rank_torch_seed, shared_from_main)
from iscl_cli.errors import IsclError
from iscl_cli.intensity import IntensityMapping, check_stabilize, fit_intensity, noise_variance_of
from iscl_cli.io import open_volumes
from iscl_cli.memory import format_bytes, memory_budget
from iscl_cli.inference import TileOptions, denoise_image
from iscl_cli.ensemble_weight import TRANSPLANT_PAIRS, EnsembleWeightChoice, choose_ensemble_weight
from iscl_cli.noise_check import NoiseCheck, structure_score
from iscl_cli.noise_orientation import DIRECTIONAL_RATIO, check_noise_orientation, measure_noise_orientation
from iscl_cli.noise_variance import WHITE_LAG_RATIO
from iscl_cli.curves import CURVES_FILE, plot_training_curves
from iscl_cli.preview import save_panels
from iscl_cli.run_folder import METRICS_FILE, PREVIEWS_DIR, RunFolder
from iscl_cli.validation import Validator
from iscl_cli.volume import Volume
from models.iscl import ISCL, ISCLConfig, build_optimizers

LOG = logging.getLogger("iscl")
# Copies of the weights training holds: the weights, their gradients, RAdam's two moments,
# Lookahead's slow weights, the averaged (SWA) generators and the final model.
TRAINING_WEIGHT_COPIES = 7
# Noisy training slices the trained model's removed noise is checked on.
NOISE_CHECK_SLICES = 4

# Network sizes and schedule per preset. "standard" (the default) is what docs/levers.md
# measured to beat BM3D and Noise2Void on structured noise within half an hour on a 2-core
# CPU; "quick" is the same networks and rates for fewer steps (a first look, the demo);
# "paper" is the paper's setting, for a GPU.
STANDARD_NETWORK = dict(gen_base=16, gen_blocks=3, ext_width=16, ext_depth=8, disc_base=16, disc_layers=3)
STANDARD_RATES = dict(batch_size=4, patch_size=64, lr=1e-4, d_lr=4e-4, beta2=0.99)
# lr and d_lr where the noise is structured: measured to gain on all five structured noise
# models and to lose on pixel-independent noise (docs/training.md#learning-rates-and-noise-structure).
STRUCTURED_NOISE_RATES = (2e-4, 8e-4)
PRESETS: dict[str, dict[str, Any]] = {
    "standard": dict(steps=3000, **STANDARD_RATES, network=STANDARD_NETWORK, choose_gamma=True,
                     noise_orientation="auto", structured_noise_rates=STRUCTURED_NOISE_RATES),
    "quick": dict(steps=600, **STANDARD_RATES, network=STANDARD_NETWORK, choose_gamma=True,
                  noise_orientation="auto", structured_noise_rates=STRUCTURED_NOISE_RATES),
    "paper": dict(steps=100_000, batch_size=64, patch_size=64, network=dict()),
}


DEFAULT_PRESET = "standard"
# What may change when a run is resumed (the rest defines the run and stays as stored).
RESUMABLE_SETTINGS = ("steps", "device", "checkpoint_every", "preview_every", "val_every")
# Settings that are pairs: tuples in a TrainConfig, lists in JSON.
TUPLE_SETTINGS = ("window", "focus", "structured_noise_rates")


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in the run folder and the checkpoint)."""

    noisy: list[str]
    clean: list[str]
    # Every preset sets these (PRESETS is their one home).
    steps: int
    batch_size: int
    patch_size: int
    out: str | None = None
    preset: str = DEFAULT_PRESET
    # The paper's optimiser settings; a preset may override them.
    lr: float = 1e-4
    final_lr: float = 1e-7
    beta2: float = 0.999
    d_lr: float | None = None
    # (lr, d_lr) that replace lr and d_lr where the noisy data are not pixel-independent;
    # decided when the run starts (then None), left out where --lr or --d-lr is given.
    structured_noise_rates: tuple[float, float] | None = None
    seed: int = 0
    device: str = "auto"
    network: dict[str, Any] = field(default_factory=dict)
    swa_start: float = 0.6
    checkpoint_every: int = 200
    preview_every: int = 200
    log_every: int = 10
    val_noisy: list[str] = field(default_factory=list)
    val_clean: list[str] = field(default_factory=list)
    val_every: int = 200
    window: tuple[float, float] | None = None
    focus: tuple[float, float] | None = None
    per_domain: bool = False
    stabilize: str = "off"  # variance stabilisation of shot noise: auto, on or off (iscl_cli.noise_variance)
    noise_orientation: str = "any"  # the poses noisy patches take: auto, any, rows or columns (iscl_cli.noise_orientation)
    export: bool = False
    channel: int | None = None
    init_from: str | None = None  # a model file whose five networks (and intensity mapping) the run starts from
    choose_gamma: bool = False  # choose the ensemble weight on transplant pairs after training (iscl_cli.ensemble_weight)

    @classmethod
    def from_preset(cls, preset: str, network: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
        """The preset's values, then every override that is not None; ``network`` entries
        override single network sizes of the preset. A given ``lr`` or ``d_lr`` also sets
        aside the preset's rates for structured noise: what the user chose is what trains."""
        if preset not in PRESETS:
            raise IsclError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        values = {**copy.deepcopy(PRESETS[preset]), "preset": preset}
        if overrides.get("lr") is not None or overrides.get("d_lr") is not None:
            values["structured_noise_rates"] = None
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["network"].update(network or {})
        return cls(**values).validated()

    def validated(self) -> TrainConfig:
        """Refuse values that cannot train (one clear line each)."""
        if self.steps < 1:
            raise IsclError(f"--steps must be at least 1 (got {self.steps})")
        if self.batch_size < 1:
            raise IsclError(f"--batch-size must be at least 1 (got {self.batch_size})")
        if self.patch_size < 8:
            raise IsclError(f"--patch-size must be at least 8 (got {self.patch_size})")
        if not self.lr > 0:
            raise IsclError(f"--lr must be positive (got {self.lr})")
        if self.d_lr is not None and not self.d_lr > 0:
            raise IsclError(f"--d-lr must be positive (got {self.d_lr})")
        if self.structured_noise_rates is not None and not min(self.structured_noise_rates) > 0:
            raise IsclError(f"the rates for structured noise must be positive (got {self.structured_noise_rates})")
        if not 0 < self.beta2 < 1:
            raise IsclError(f"--beta2 must lie between 0 and 1 (got {self.beta2})")
        for name in ("checkpoint_every", "preview_every", "val_every"):
            if getattr(self, name) < 1:
                raise IsclError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        check_stabilize(self.stabilize)
        check_noise_orientation(self.noise_orientation)
        if "noise_orientation" in self.network:
            raise IsclError("set the noise orientation with --noise-orientation, not --net")
        if bool(self.val_noisy) != bool(self.val_clean):
            raise IsclError("--val-noisy and --val-clean go together (paired validation images)")
        known = {f.name for f in fields(ISCLConfig)}
        unknown = set(self.network) - known
        if unknown:
            raise IsclError(f"unknown network setting(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        try:
            model_config = self.model_config()
            needed = TRAINING_WEIGHT_COPIES * weight_bytes(network_skeleton(model_config))
        except ValueError as error:
            raise IsclError(f"--net: {error}") from None
        if needed > memory_budget():
            raise IsclError(f"--net: networks of this size need about {format_bytes(needed)} of memory to train, more "
                            f"than the {format_bytes(memory_budget())} iscl allows itself here")
        if self.patch_size < model_config.min_patch_size:
            raise IsclError(f"--patch-size {self.patch_size} is smaller than the discriminators' smallest input "
                            f"({model_config.min_patch_size}); use a larger patch or fewer disc_layers")
        return self

    def model_config(self) -> ISCLConfig:
        """The networks' configuration; eval-mode instance statistics use a training-patch-sized window
        (before ``Run`` decides an ``auto`` noise orientation, the networks' default)."""
        orientation = {} if self.noise_orientation == "auto" else {"noise_orientation": self.noise_orientation}
        return ISCLConfig(**{"instance_window": self.patch_size, **orientation, **self.network})

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        for name in TUPLE_SETTINGS:
            values[name] = list(values[name]) if values[name] else None
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        values = dict(values)
        for name in TUPLE_SETTINGS:
            values[name] = tuple(values[name]) if values.get(name) else None
        return cls(**values)


@dataclass
class StepReport:
    """What the progress display gets after each step."""

    step: int
    total: int
    losses: dict[str, float]
    seconds_per_step: float
    scores: dict[str, float] = field(default_factory=dict)  # validation, on the steps that validate


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; its text says how to continue."""


ProgressCallback = Callable[[StepReport], None]


def with_absolute_paths(config: TrainConfig) -> TrainConfig:
    """``config`` with its data paths (files, folders, patterns) made absolute, so that
    ``--resume`` finds the data from any working directory."""
    def absolute(specs: list[str]) -> list[str]:
        return [os.path.abspath(spec) for spec in specs]

    return replace(config, noisy=absolute(config.noisy), clean=absolute(config.clean),
                   val_noisy=absolute(config.val_noisy), val_clean=absolute(config.val_clean))


def training_device(config: TrainConfig, world: World) -> torch.device:
    """The device a rank trains on: ``config.device``, and each rank its own GPU under torchrun."""
    return rank_device(resolve_device(config.device), world)


class Run:
    """A training run's state: data, networks, optimisers, averaged generators, random state.

    Under torchrun (``world`` of more than one rank) every rank holds a Run: the same
    weights, its own patches (drawn from ``rank_seed(seed, rank)``), gradients and running
    batch statistics averaged over the ranks after each update and step.
    """

    def __init__(self, config: TrainConfig, mapping: IntensityMapping | None = None, world: World = World()) -> None:
        self.config = config
        self.world = world
        self.device = training_device(config, world)
        self.amp_dtype = autocast_dtype(self.device)
        noisy_volumes = open_volumes(config.noisy, config.channel)
        clean_volumes = open_volumes(config.clean, config.channel)
        start = fine_tuning_start(config.init_from) if config.init_from and mapping is None else None
        if start is not None:  # the weights expect the units they were trained in
            mapping = start.mapping
        # The noise variance fit serves the rates' decision and the stabilisation: fitted once.
        needs_noise_fit = config.structured_noise_rates is not None or (mapping is None and config.stabilize != "off")
        noise_fit = noise_variance_of(noisy_volumes, config.seed) if needs_noise_fit else None
        self.mapping = mapping or fit_intensity(noisy_volumes, clean_volumes, seed=config.seed,
                                                window=config.window, per_domain=config.per_domain,
                                                focus=config.focus, stabilize=config.stabilize, noise_fit=noise_fit)
        if config.noise_orientation == "auto":
            self.config = config = replace(config, noise_orientation=decided_orientation(noisy_volumes, config.seed))
        if config.structured_noise_rates is not None:
            self.config = config = with_decided_rates(config, noise_fit.lag_ratio)
        self.rng = np.random.default_rng(rank_seed(config.seed, world.rank))
        self.noisy = PatchSampler(noisy_volumes, self.mapping, "noisy", config.patch_size, self.rng,
                                  poses=config.model_config().noise_poses)
        self.clean = PatchSampler(clean_volumes, self.mapping, "clean", config.patch_size, self.rng)
        torch.manual_seed(config.seed)
        self.model = ISCL(config.model_config())
        if start is not None:
            try:
                self.model.load_state_dict(start.model.state_dict())
            except RuntimeError:
                raise IsclError("its networks do not have the sizes given with --net; leave sizes out when "
                                "fine-tuning", config.init_from) from None
        self.model = self.model.to(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.trainer = data_parallel(self.model, self.device, world)  # before the optimisers copy any weights
        if world.size > 1:  # the ranks' random inputs (noise_inputs) differ like their patches
            torch.manual_seed(rank_torch_seed(config.seed, world.rank))
        self.optimizers = build_optimizers(self.model, lr=config.lr, final_lr=config.final_lr,
                                           total_steps=config.steps, betas=(0.9, config.beta2), d_lr=config.d_lr)
        self.swa_F = AveragedModel(self.model.F, use_buffers=True)
        self.swa_G = AveragedModel(self.model.G, use_buffers=True)
        self.swa_from = int(math.floor(config.swa_start * config.steps))
        self.step = 0
        self.last_batch: torch.Tensor | None = None

    def train_step(self) -> dict[str, float]:
        x = self.noisy.sample(self.config.batch_size).to(self.device)
        y = self.clean.sample(self.config.batch_size).to(self.device)
        if self.device.type == "cuda":
            x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)
        self.model.train()
        losses = self.trainer.train_step(x, y, *self.optimizers.step_optimizers(), amp_dtype=self.amp_dtype)
        average_buffers(self.model, self.world)
        losses = averaged_numbers(losses, self.world, self.device)
        self.optimizers.advance_schedules()
        self.step += 1
        if self.step > self.swa_from:
            self.swa_F.update_parameters(self.model.F)
            self.swa_G.update_parameters(self.model.G)
        losses["lr"] = self.optimizers.current_lr()
        self.last_batch = x
        return losses

    def final_model(self) -> ISCL:
        """The model to save: SWA-averaged generators when averaging has started, H as trained."""
        final = copy.deepcopy(self.model).cpu().eval()
        if self.step > self.swa_from:
            final.F.load_state_dict(self.swa_F.module.state_dict())
            final.G.load_state_dict(self.swa_G.module.state_dict())
        return final.to(memory_format=torch.contiguous_format)

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue from; call it on every rank (it gathers their random states)."""
        return {
            "format": "iscl-checkpoint",
            "step": self.step,
            "config": self.config.to_dict(),
            "intensity": self.mapping.to_dict(),
            "model": self.model.state_dict(),
            "optimizers": self.optimizers.state_dict(),
            "swa_F": self.swa_F.state_dict(),
            "swa_G": self.swa_G.state_dict(),
            "world_size": self.world.size,
            "random_states": from_every_rank(self.world, {"numpy": self.rng.bit_generator.state,
                                                          "torch": torch.get_rng_state()}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.model.load_state_dict(state["model"])
        self.optimizers.load_state_dict(state["optimizers"])
        if self.step > self.swa_from:  # averaging restarts when a run is extended to past this step
            self.swa_F.load_state_dict(state["swa_F"])
            self.swa_G.load_state_dict(state["swa_G"])
        # Checkpoints written before torchrun training held the one process's streams on their own.
        states = state.get("random_states") or [{"numpy": state["numpy_rng"], "torch": state["torch_rng"]}]
        own = states[self.world.rank]
        self.rng.bit_generator.state = own["numpy"]
        torch.set_rng_state(own["torch"])

    def provenance(self) -> dict[str, Any]:
        return {
            "iscl_version": __version__,
            "torch_version": str(torch.__version__),
            "trained": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "steps": self.step,
            "train_config": self.config.to_dict(),
            "noisy_data": self.noisy.summary(),
            "clean_data": self.clean.summary(),
            "device": str(self.device),
            "processes": self.world.size,
        }


def write_preview(run: Run, path: Path, count: int = 4) -> None:
    """noisy | denoised | removed noise for a few patches of the latest noisy batch."""
    model = run.model.eval()
    with torch.inference_mode():
        x = run.last_batch[:count].float()
        denoised = model.denoise(x)
    rows = [[xi[0].cpu().numpy(), di[0].cpu().numpy(), (xi - di)[0].cpu().numpy()] for xi, di in zip(x, denoised)]
    save_panels(path, rows, ["noisy", "denoised", "removed noise"], [(-1, 1), (-1, 1), (-0.5, 0.5)])


@contextmanager
def damaged_checkpoint_in_one_line(path: Path) -> Iterator[None]:
    """What reading a damaged or foreign checkpoint's contents raises, as one IsclError line."""
    try:
        yield
    except KeyError as error:
        raise IsclError(f"damaged training checkpoint: it lacks {error}", path) from None
    except (AttributeError, RuntimeError, TypeError, ValueError) as error:
        raise IsclError(f"damaged training checkpoint ({(str(error).splitlines() or [''])[0]})", path) from None


def train(config: TrainConfig | None, root: Path | None = None, resume: Path | None = None,
          progress: ProgressCallback | None = None, overwrite: bool = False,
          changes: dict[str, Any] | None = None, world: World = World()) -> Path:
    """Train a model from the unpaired folders in ``config``; returns the model file's path.

    The run gets a folder of its own (``iscl_cli.run_folder``); ``overwrite`` lets it
    replace the run in ``config.out``. With ``resume`` (a run folder or its checkpoint
    file) the run continues from its last checkpoint with the configuration stored there,
    drawing the same patches it would have drawn had it never stopped; ``changes`` (of
    ``RESUMABLE_SETTINGS``) apply on top. More ``steps`` extend a run, finished or not:
    the learning rate then follows the longer run's schedule, and the generators' weight
    averaging restarts at its 60 % when the run has not reached that step yet.

    Under torchrun (``world``), every rank calls this: only rank 0 claims the folder and
    writes into it, and a run resumes only on as many ranks as it was trained on.
    """
    if resume is not None:
        checkpoint_path = resume / CHECKPOINT_FILE if resume.is_dir() else resume
        state = load_trusted_dict(checkpoint_path, "training checkpoint")
        if state.get("format") != "iscl-checkpoint":
            raise IsclError("not an iscl training checkpoint", checkpoint_path)
        with damaged_checkpoint_in_one_line(checkpoint_path):
            stored = TrainConfig.from_dict(state["config"])
            mapping, step = IntensityMapping.from_dict(state["intensity"]), int(state["step"])
        config = resumed_config(stored, changes or {}, step)
        refuse_another_world_size(int(state.get("world_size", 1)), world, checkpoint_path)
        with process_group(world, training_device(config, world)), \
                (RunFolder.claim_existing(checkpoint_path.parent) if world.is_main else nullcontext()) as folder:
            run = Run(config, mapping=mapping, world=world)
            with damaged_checkpoint_in_one_line(checkpoint_path):
                run.load_state_dict(state)
            if folder is not None:
                folder.keep_metrics_until(run.step)
                if config != stored:
                    folder.write_config(config.to_dict())
            return train_run(run, folder, progress)
    if config is None:
        raise IsclError("nothing to train: give a configuration or a run to resume")
    config = with_absolute_paths(config.validated())
    with process_group(world, training_device(config, world)), \
            (RunFolder.claim_new(config.out, root or Path.cwd(), overwrite) if world.is_main else nullcontext()) as folder:
        if folder is None:
            return train_run(Run(config, world=world), None, progress)
        with folder.discarded_on_failure():
            run = Run(config, world=world)
            folder.write_config(run.config.to_dict())
        return train_run(run, folder, progress)


def decided_orientation(noisy: Sequence[Volume], seed: int) -> str:
    """``--noise-orientation auto``: the orientation ``measure_noise_orientation`` finds, logged."""
    orientation, ratio = measure_noise_orientation(noisy, seed)
    LOG.info("noise orientation: %s (row/column difference ratio %.2f of the noisy data; directional beyond %g)",
             orientation, ratio, DIRECTIONAL_RATIO)
    return orientation


def with_decided_rates(config: TrainConfig, lag_ratio: float) -> TrainConfig:
    """``config`` with the rates for structured noise as its ``lr`` and ``d_lr`` unless the
    noisy data's ``lag_ratio`` (``iscl_cli.noise_variance``) says they are pixel-independent
    (at most ``WHITE_LAG_RATIO``), logged; either way the choice is then made
    (``structured_noise_rates`` None)."""
    if lag_ratio <= WHITE_LAG_RATIO:
        LOG.info("noise structure: pixel-independent (lag-2/lag-1 difference variance %.2f, at most %g): learning "
                 "rates %g, discriminators %g", lag_ratio, WHITE_LAG_RATIO, config.lr, config.d_lr or config.lr)
        return replace(config, structured_noise_rates=None)
    lr, d_lr = config.structured_noise_rates
    LOG.info("noise structure: structured (lag-2/lag-1 difference variance %.2f, above %g): learning rates %g, "
             "discriminators %g", lag_ratio, WHITE_LAG_RATIO, lr, d_lr)
    return replace(config, lr=lr, d_lr=d_lr, structured_noise_rates=None)


def refuse_another_world_size(trained_on: int, world: World, checkpoint_path: Path) -> None:
    """A run continues only on as many processes as it was trained on: each drew its own
    patches, and the checkpoint holds each one's random stream."""
    if trained_on == world.size:
        return
    how = "without torchrun" if trained_on == 1 else f"under torchrun with {trained_on} processes in all"
    raise IsclError(f"this run was trained on {trained_on} process(es), not {world.size}, and continues only on as "
                    f"many (each drew its own patches; their random streams are in the checkpoint): resume it {how}",
                    checkpoint_path)


def resumed_config(stored: TrainConfig, changes: dict[str, Any], step: int) -> TrainConfig:
    """The stored configuration of a run at ``step`` with ``changes`` (of ``RESUMABLE_SETTINGS``)."""
    config = replace(stored, **changes).validated()
    if config.steps < step:
        raise IsclError(f"--steps {config.steps} is fewer than the {step} steps this run has already trained")
    return config


def train_run(run: Run, folder: RunFolder | None, progress: ProgressCallback | None = None) -> Path:
    """The training loop of a set-up run in its claimed folder, then the model file; returns its path.

    Every preview also redraws ``curves.png``; Ctrl-C becomes a ``TrainingInterrupted``
    that names the command to continue with. ``folder`` is None on the ranks other than 0
    of a torchrun job: they train alongside rank 0, which alone validates and writes."""
    config = run.config
    run_dir: Path = shared_from_main(run.world, None if folder is None else folder.path)
    writes = folder is not None
    validator = Validator(config.val_noisy, config.val_clean, run.mapping, channel=config.channel) \
        if config.val_noisy and writes else None
    if writes:
        LOG.info("training in %s (%s preset, %d of %d steps done, on %s)", run_dir, config.preset, run.step,
                 config.steps, run.device if run.world.size == 1 else f"{run.world.size} processes, rank 0 on {run.device}")
    checkpointed = run.step
    try:
        with folder.metrics() if writes else nullcontext() as metrics:
            while run.step < config.steps:
                started = time.perf_counter()
                losses = run.train_step()
                seconds = time.perf_counter() - started
                checkpoints = run.step % config.checkpoint_every == 0 or run.step == config.steps
                state = run.state_dict() if checkpoints else None  # on every rank: it gathers their random states
                scores: dict[str, float] = {}
                if writes:
                    validates = validator is not None and (run.step % config.val_every == 0 or run.step == config.steps)
                    scores = validator.evaluate(run.model) if validates else {}
                    metrics.append({"step": run.step, **losses, "seconds": seconds, **scores})
                    if run.step % config.preview_every == 0 or run.step == config.steps:
                        write_preview(run, run_dir / PREVIEWS_DIR / f"step-{run.step:06d}.png")
                        plot_training_curves(run_dir / METRICS_FILE, run_dir / CURVES_FILE)
                    if state is not None:
                        save_atomic(state, run_dir / CHECKPOINT_FILE)
                if checkpoints:
                    checkpointed = run.step
                if progress is not None:
                    progress(StepReport(run.step, config.steps, losses, seconds, scores))
    except KeyboardInterrupt:
        raise TrainingInterrupted(interruption_note(run_dir, run.step, checkpointed)) from None
    model_path = run_dir / MODEL_FILE
    if not writes:
        return model_path
    final = run.final_model()
    provenance = run.provenance()
    if chooses_ensemble_weight(config):
        choice = choose_gamma(final, run)
        final.config.gamma = choice.gamma
        provenance["ensemble_weight"] = choice.summary()
        LOG.info("ensemble weight gamma %.2f, chosen on %d noise-transplant pairs of training slices "
                 "(%.2f dB there; %.2f dB at the paper's 0.5)", choice.gamma, choice.pairs,
                 choice.psnr_by_gamma[choice.gamma], choice.psnr_by_gamma[0.5])
    check = check_removed_noise(final, run)
    LOG.info("removed-noise structure on %d noisy training slices: %+.2f (about 0 = only noise removed; "
             "docs/quality-control.md)", len(check.per_slice), check.overall)
    if check.warning("the trained model") is not None:
        LOG.warning(check.warning("the trained model"))
    save_model(model_path, final, run.mapping, {**provenance, "noise_check": check.summary()},
               export=config.export)
    return model_path


def interruption_note(run_dir: Path, step: int, checkpointed: int) -> str:
    """What Ctrl-C at ``step`` leaves, and the command that continues the run."""
    if checkpointed == 0:
        return (f"at step {step}, before the first checkpoint: nothing to continue from; start again "
                f"(`--out {shlex.quote(str(run_dir))} --overwrite` reuses its folder)")
    return (f"at step {step}; nothing half-written was left behind; continue from step {checkpointed} with: "
            f"iscl train --resume {shlex.quote(str(run_dir))}")


def spread_slices(data: PatchSampler, count: int, offset: float = 0.0) -> list[np.ndarray]:
    """Up to ``count`` slices of ``data`` spread evenly over it (``offset``, 0 to 1, shifts
    the picks by that share of their spacing), in physical units."""
    count = min(count, len(data.slots))
    spacing = len(data.slots) / count
    picks = (np.arange(count) * spacing + offset * spacing).astype(int).clip(0, len(data.slots) - 1)
    return [data.volumes[volume].read_slice(index) for volume, index in (data.slots[pick] for pick in picks)]


def check_removed_noise(model: ISCL, run: Run, slices: int = NOISE_CHECK_SLICES) -> NoiseCheck:
    """The structure score (``iscl_cli.noise_check``) of what ``model`` removes from up to
    ``slices`` noisy training slices, spread over the data."""
    tiles = TileOptions(symmetries=1)
    with torch.inference_mode():
        return NoiseCheck([structure_score(image, denoise_image(image, model, run.mapping, tiles))
                           for image in spread_slices(run.noisy, slices)])


def chooses_ensemble_weight(config: TrainConfig) -> bool:
    """Whether training ends by choosing gamma on transplant pairs: where the preset says so,
    unless ``--net gamma`` fixed it or the domains have mappings of their own (the pairs
    mix the domains' units, so they cannot judge ``x - H(x)`` there)."""
    return config.choose_gamma and "gamma" not in config.network and not config.per_domain


def choose_gamma(model: ISCL, run: Run) -> EnsembleWeightChoice:
    """``iscl_cli.ensemble_weight``'s choice on pairs of noisy and clean training slices
    (different picks in each domain, so no pair comes from one image's two versions)."""
    pairs = min(TRANSPLANT_PAIRS, len(run.noisy.slots), len(run.clean.slots))
    return choose_ensemble_weight(model, spread_slices(run.noisy, pairs),
                                  spread_slices(run.clean, pairs, offset=0.5), run.mapping)


def fine_tuning_start(path: str | Path) -> LoadedModel:
    """The model (file or run folder) a fine-tuning run starts from; it needs all five networks."""
    start = load_model(model_file(Path(path)))
    if tuple(sorted(start.card["nets"])) != tuple(sorted(ALL_NETS)):
        raise IsclError("is an exported model (F and H only); fine-tuning needs the full model.pt of its run", path)
    return start


def make_train_config(noisy: Sequence[str], clean: Sequence[str], preset: str = DEFAULT_PRESET,
                      network: dict[str, Any] | None = None, **options: Any) -> TrainConfig:
    """A validated TrainConfig from CLI-style options (None means "the preset's value").

    With ``init_from`` (fine-tuning) the networks' settings are the model's; ``network`` may
    still change the objective's weights (``lam``, ``gamma``, ...). A gamma the start model's
    training chose is not kept: it was chosen for that model's data, and is chosen again;
    so is the noise orientation (``--noise-orientation``).
    """
    if options.get("init_from"):
        card = fine_tuning_start(options["init_from"]).card
        inherited = {name: value for name, value in card["config"].items()
                     if not (name == "gamma" and "ensemble_weight" in card.get("provenance", {}))
                     and name != "noise_orientation"}
        network = {**inherited, **(network or {})}
    return TrainConfig.from_preset(preset, network=network, noisy=list(noisy), clean=list(clean), **options)
