"""``iscl demo``: the whole tool on a generated unpaired example, in minutes on a CPU.

It makes EM-like phantoms (one set clean, a different set with SEM charging artefacts),
trains with the quick preset (``--full``: more and larger images, the standard preset),
denoises a held-out noisy stack through the same code path as ``iscl denoise`` (files
written and read back), scores the result against the held-out clean stack and saves a
side-by-side preview.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from iscl_cli.checkpoint import load_model
from iscl_cli.denoise import plan_outputs, run_plan
from iscl_cli.inference import TileOptions
from iscl_cli.devices import resolve_device
from iscl_cli.errors import IsclError
from iscl_cli.io import open_volumes
from iscl_cli.io.atomic import remove_path
from iscl_cli.preview import save_panels
from iscl_cli.quality import psnr, ssim
from iscl_cli.simulate import make_unpaired_set
from iscl_cli.train import make_train_config, train

DEMO_PHANTOM = "em"
DEMO_NOISE = "charging"  # SEM charging trails: structured noise, and visibly so in the preview
# (training images per domain, held-out test slices, image side, training preset)
DEMO_SIZES = {"quick": (16, 2, 128, "quick"), "full": (48, 8, 256, "standard")}
# A smaller PSNR gain is no evidence of denoising: a model near the identity gets +0.01 dB.
LEARNED_GAIN_DB = 0.5
# What a demo writes besides its data (which it regenerates): removed by ``overwrite``.
DEMO_RESULTS = ("run", "denoised", "preview.png")


def stack_scores(denoised: list[np.ndarray], noisy: list[np.ndarray], clean: list[np.ndarray]) -> dict[str, float]:
    """Mean PSNR/SSIM of the noisy input and of the denoised output against the clean stack."""
    data_range = float(max(c.max() for c in clean) - min(c.min() for c in clean))
    scores: dict[str, float] = {}
    for label, images in (("noisy", noisy), ("denoised", denoised)):
        scores[f"{label}_psnr"] = float(np.mean([psnr(c, i, data_range) for c, i in zip(clean, images)]))
        scores[f"{label}_ssim"] = float(np.mean([ssim(c, i, data_range) for c, i in zip(clean, images)]))
    return scores


def read_stack(path: Path) -> list[np.ndarray]:
    """Every slice of the single volume at ``path``, in physical units."""
    (volume,) = open_volumes([path])
    return list(volume.slices())


def run_demo(out_dir: Path, full: bool = False, device: str = "auto", seed: int = 0,
             say: Callable[[str], None] = print, lr: float | None = None,
             network: dict[str, Any] | None = None, steps: int | None = None,
             beta2: float | None = None, d_lr: float | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Generate, train, denoise, score; returns the scores and the paths it wrote.

    A folder that holds an earlier (finished or interrupted) demo is refused unless
    ``overwrite``, which removes that demo's results first.

    ``lr``, ``d_lr``, ``beta2``, ``network`` and ``steps`` change the preset's learning rates,
    RAdam beta2, network settings and step count (for experiments such as benchmarks/demo_settings.py).
    """
    again = f"iscl demo{' --full' if full else ''} --out {shlex.quote(str(out_dir))} --overwrite"
    if not overwrite and any((out_dir / name).exists() for name in DEMO_RESULTS):
        raise IsclError(f"holds an earlier demo; start it again with `{again}`, or pass another --out", out_dir)
    for name in DEMO_RESULTS:
        remove_path(out_dir / name)
    try:
        return generate_train_denoise_score(out_dir, full=full, device=device, seed=seed, say=say, lr=lr,
                                            network=network, steps=steps, beta2=beta2, d_lr=d_lr)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"the demo in {out_dir} did not finish; `{again}` starts it again") from None


def generate_train_denoise_score(out_dir: Path, full: bool, device: str, seed: int, say: Callable[[str], None],
                                 lr: float | None, network: dict[str, Any] | None, steps: int | None,
                                 beta2: float | None, d_lr: float | None) -> dict[str, Any]:
    """The demo's four steps (``run_demo`` without its checks of the folder)."""
    n_train, n_test, side, preset = DEMO_SIZES["full" if full else "quick"]
    started = time.perf_counter()
    say(f"1/4 making unpaired {DEMO_PHANTOM} phantoms with {DEMO_NOISE} noise in {out_dir / 'data'}")
    data = make_unpaired_set(out_dir / "data", phantom=DEMO_PHANTOM, noise=DEMO_NOISE, n_train=n_train,
                             n_test=n_test, shape=(side, side), seed=seed)
    config = make_train_config([str(data["noisy"])], [str(data["clean"])], preset, out=str(out_dir / "run"),
                               network=network, steps=steps, lr=lr, d_lr=d_lr, beta2=beta2, device=device, seed=seed)
    steps = config.steps
    config = replace(config, log_every=max(steps // 10, 1), checkpoint_every=steps, preview_every=steps)
    say(f"2/4 training ({steps} steps, {preset} preset, {resolve_device(device)})")
    model_path = train(config, progress=lambda r: say(f"    step {r.step}/{r.total}") if r.step % config.log_every == 0 else None)
    say(f"3/4 denoising {data['test_noisy']} -> {out_dir / 'denoised'}")
    loaded = load_model(model_path, resolve_device(device))
    plan = plan_outputs([str(data["test_noisy"])], out_dir / "denoised", write_noise=True)
    (job,) = run_plan(plan, loaded, out_dir / "denoised", TileOptions())
    if job.error:
        raise IsclError(job.error)
    noisy, clean, denoised = (read_stack(p) for p in (data["test_noisy"], data["test_clean"], job.output))
    scores = stack_scores(denoised, noisy, clean)
    say(f"4/4 scores on {len(clean)} held-out slices (against their clean versions):")
    say(f"    noisy input   PSNR {scores['noisy_psnr']:6.2f} dB   SSIM {scores['noisy_ssim']:.3f}")
    say(f"    iscl denoised PSNR {scores['denoised_psnr']:6.2f} dB   SSIM {scores['denoised_ssim']:.3f}")
    gain = scores["denoised_psnr"] - scores["noisy_psnr"]
    if gain < LEARNED_GAIN_DB:
        say(f"    the model has not learned to denoise yet (PSNR {gain:+.2f} dB against its input): {steps} steps "
            "are too few for it to converge; try --full (see docs/quickstart.md)")
    low, high = float(min(c.min() for c in clean)), float(max(c.max() for c in clean))
    spread = float(np.percentile(np.abs(noisy[0] - denoised[0]), 99))
    preview = out_dir / "preview.png"
    save_panels(preview, [[n, d, c, n - d] for n, d, c in list(zip(noisy, denoised, clean))[:2]],
                ["noisy", "denoised", "reference", "removed noise"], [(low, high)] * 3 + [(-spread, spread)])
    say(f"done in {time.perf_counter() - started:.0f} s; model {model_path}")
    return {**scores, "model": str(model_path), "output": str(job.output), "preview": str(preview),
            "seconds": time.perf_counter() - started}
