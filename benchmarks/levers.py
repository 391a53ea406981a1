"""One training lever measured: ``iscl train`` with given options on a fixed exploration data set.

The data set is never a benchmark one: ``make_unpaired_set`` with seed 100 (the quality
benchmark uses seeds 1 and 2), ``--train-images`` unpaired images per domain of
``--side`` pixels and ``--test-slices`` held-out pairs. Training runs through the library's
``train`` with the options given (those of ``iscl train``), validating on the held-out
pairs every ``--val-every`` steps (validation changes nothing in training). The saved model
is then scored on the held-out pairs four ways: the ensemble output with 8-fold symmetry
averaging (what ``iscl denoise`` gives by default) and without, F alone and ``x - H(x)``
alone (both without averaging); and, with ``--gammas``, the 8-pose ensemble at each of
those weights of F (gamma only weighs the ensemble at inference, so one trained model
serves them all), each also with the label-free structure score of what it removed
(``iscl_cli.noise_check``). ``chosen_gamma`` is the weight training chose on transplant
pairs (``iscl_cli.ensemble_weight``), which the first score uses. docs/levers.md quotes its lines.

    python benchmarks/levers.py charging paper-rates --preset paper --steps 1500 --batch-size 4 \\
        --patch-size 64 --net gen_base=16 --net gen_blocks=3 --net ext_width=16 --net ext_depth=8 \\
        --net disc_base=16 --net disc_layers=3
    python benchmarks/levers.py charging standard --preset standard

``--score-only`` skips training and scores the model already in the run folder.

Appends one JSON line per run to benchmarks/results/levers.jsonl and prints the scores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iscl_cli.checkpoint import load_model
from iscl_cli.cli import parse_assignments
from iscl_cli.demo import read_stack, stack_scores
from iscl_cli.inference import TileOptions, tiled_in_physical_units
from iscl_cli.intensity import STABILIZE_CHOICES, parse_window
from iscl_cli.noise_check import structure_score
from iscl_cli.noise_orientation import ORIENTATION_CHOICES
from iscl_cli.simulate import make_unpaired_set
from iscl_cli.train import DEFAULT_PRESET, make_train_config, train

RESULTS = Path(__file__).resolve().parent / "results" / "levers.jsonl"
PHANTOM_FOR_NOISE = {"poisson_gaussian": "fluorescence", "lowdose_ct": "ct"}
EXPLORATION_SEED = 100


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("noise", help="noise model (iscl simulate --list)")
    parser.add_argument("name", help="a name for this setting (the run folder and the JSON line)")
    parser.add_argument("--preset", default=DEFAULT_PRESET)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--patch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--d-lr", type=float)
    parser.add_argument("--beta2", type=float)
    parser.add_argument("--window", help="LO,HI, as iscl train --window")
    parser.add_argument("--focus", help="LO,HI, as iscl train --focus")
    parser.add_argument("--stabilize", choices=STABILIZE_CHOICES, help="as iscl train --stabilize")
    parser.add_argument("--noise-orientation", choices=ORIENTATION_CHOICES, help="as iscl train --noise-orientation")
    parser.add_argument("--net", action="append", default=[], help="NAME=VALUE, as iscl train --net")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--phantom", help="the images the noise is put on (iscl simulate's phantoms; default: "
                                          "fluorescence for poisson_gaussian, ct for lowdose_ct, else em)")
    parser.add_argument("--train-images", type=int, default=24)
    parser.add_argument("--test-slices", type=int, default=8)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--data-seed", type=int, default=EXPLORATION_SEED)
    parser.add_argument("--val-every", type=int, default=250)
    parser.add_argument("--workdir", type=Path, default=Path("levers-work"),
                        help="data and run folders (default ./levers-work)")
    parser.add_argument("--score-only", action="store_true", help="score the run folder's model.pt, do not train")
    parser.add_argument("--gammas", type=float, nargs="+", default=[],
                        help="also score the 8-pose ensemble with these weights of F, e.g. 0 0.25 0.5 0.75 1")
    return parser.parse_args()


def exploration_data(args: argparse.Namespace) -> dict[str, Path]:
    """The data set for this noise model, phantom and size, generated once and reused."""
    usual = PHANTOM_FOR_NOISE.get(args.noise, "em")
    phantom = args.phantom or usual
    on = "" if phantom == usual else f"-on-{phantom}"
    root = args.workdir / "data" / f"{args.noise}{on}-s{args.data_seed}-n{args.train_images}-{args.side}"
    if not (root / "test_clean.tif").exists():
        make_unpaired_set(root, phantom, args.noise, args.train_images,
                          args.test_slices, (args.side, args.side), seed=args.data_seed)
    return {"noisy": root / "noisy", "clean": root / "clean",
            "test_noisy": root / "test_noisy.tif", "test_clean": root / "test_clean.tif"}


def exploration_sets(workdir: Path, noises: Iterable[str], data_seeds: Sequence[int],
                     train_images: int = 24) -> Iterator[tuple[str, int, dict[str, Path]]]:
    """(noise model, data seed, data set) for each of ``noises`` and ``data_seeds``: on each
    noise model's usual phantom, 256x256 images and 8 test pairs, generated once and reused."""
    for noise in noises:
        for data_seed in data_seeds:
            yield noise, data_seed, exploration_data(argparse.Namespace(
                workdir=workdir, noise=noise, phantom=None, data_seed=data_seed, train_images=train_images,
                test_slices=8, side=256))


def scores_of_parts(model_path: Path, data: dict[str, Path], gammas: list[float]) -> dict[str, Any]:
    """PSNR/SSIM of the ensemble (with and without symmetry averaging), of F, of x - H(x), and of
    the 8-pose ensemble at each of ``gammas``."""
    loaded = load_model(model_path)
    model, mapping = loaded.model, loaded.mapping
    noisy, clean = read_stack(data["test_noisy"]), read_stack(data["test_clean"])
    alignment, cpu = model.translation_step or 4, torch.device("cpu")
    parts = {"ensemble_8_poses": (model.denoise, 8, model.config.gamma), "ensemble": (model.denoise, 1, model.config.gamma),
             "F": (model.F, 1, None), "x_minus_H": (lambda x: x - model.H(x), 1, None)}
    parts |= {f"ensemble_8_poses_gamma_{gamma:g}": (model.denoise, 8, gamma) for gamma in gammas}
    trained_gamma, result = model.config.gamma, {}
    for name, (network, symmetries, gamma) in parts.items():
        model.config.gamma = trained_gamma if gamma is None else gamma
        with torch.inference_mode():
            outputs = [tiled_in_physical_units(image, network, alignment, cpu, mapping,
                                               TileOptions(symmetries=symmetries), model.config.noise_poses)
                       for image in noisy]
        scores = stack_scores(outputs, noisy, clean)
        result[name] = {"psnr": round(scores["denoised_psnr"], 2), "ssim": round(scores["denoised_ssim"], 3)}
        if gamma is not None:
            structure = np.mean([structure_score(image, output) for image, output in zip(noisy, outputs, strict=True)])
            result[name]["structure"] = round(float(structure), 3)
        result["noisy"] = {"psnr": round(scores["noisy_psnr"], 2), "ssim": round(scores["noisy_ssim"], 3)}
    model.config.gamma = trained_gamma
    result["chosen_gamma"] = loaded.card["provenance"].get("ensemble_weight", {}).get("gamma")
    return result


def main() -> None:
    args = parse_args()
    data = exploration_data(args)
    run_dir = args.workdir / "runs" / f"{args.noise}-{args.name}"
    if args.score_only:
        line = {"noise": args.noise, "name": args.name, "scored": str(run_dir / "model.pt"),
                **scores_of_parts(run_dir / "model.pt", data, args.gammas)}
        write_line(line)
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    config = make_train_config(
        [str(data["noisy"])], [str(data["clean"])], args.preset, network=parse_assignments(args.net, words=True),
        out=str(run_dir), steps=args.steps, batch_size=args.batch_size, patch_size=args.patch_size, lr=args.lr,
        d_lr=args.d_lr, beta2=args.beta2, window=parse_window(args.window) if args.window else None,
        focus=parse_window(args.focus, "--focus") if args.focus else None, stabilize=args.stabilize,
        noise_orientation=args.noise_orientation, seed=args.seed, val_noisy=[str(data["test_noisy"])],
        val_clean=[str(data["test_clean"])], val_every=args.val_every, checkpoint_every=10**9,
        preview_every=args.val_every)
    started = time.perf_counter()
    model_path = train(config)
    seconds = time.perf_counter() - started
    validation = [[record["step"], round(record["val_psnr"], 2)]
                  for record in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
                  if "val_psnr" in record]
    line = {"noise": args.noise, "name": args.name, "options": vars(args) | {"workdir": str(args.workdir)},
            "train_seconds": round(seconds, 1), "validation_psnr": validation, **scores_of_parts(model_path, data, args.gammas)}
    write_line(line)


def write_line(line: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as results:
        results.write(json.dumps(line) + "\n")
    print(json.dumps(line))


if __name__ == "__main__":
    main()
