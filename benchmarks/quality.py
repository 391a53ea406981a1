"""Denoising quality per noise model: iscl against BM3D, Noise2Void and a supervised bound, in one run.

For every noise model and seed a synthetic data set is made with ``make_unpaired_set``
on the phantom that model belongs to: ``--train-images`` noisy images and as many
*different* clean ones (unpaired), and ``--test-slices`` held-out pixel-aligned
noisy/clean test pairs. Low-dose CT is written as 12-bit DICOM series in HU, everything
else as 16-bit TIFF. Every method is scored on the test pairs only, in physical units
over the clean test stack's range: PSNR, SSIM, the mean signed error (output - clean, in %
of that range: a brightness drift, which PSNR cannot tell from noise) and the structure
score of the removed noise (``iscl_cli.noise_check``). Nothing is tuned on the test pairs.

- noisy: the test input itself.
- iscl: exactly what a user runs: ``iscl train --noisy DIR --clean DIR`` (the default
  preset unless ``--preset``/``--net``/``--steps`` say otherwise) and ``iscl denoise`` on
  the test stack or series, as subprocesses; the time is theirs, end to end.
- BM3D (``bm3d`` package, bench extra; profile "np"): images scaled to [0, 1] with the
  clean training images' 0.01-99.99 percentile range, sigma from the *noisy training
  images* (the median of skimage's wavelet estimate), as a user without references would.
- Noise2Void (CAREamics, ``benchmarks/n2v_careamics.py`` in its own environment given by
  ``--n2v-python``): trained on the noisy training images for as many wall-clock seconds as
  ``iscl train`` took in the same run.
- supervised: a U-Net at least as capable as iscl's default F (``--supervised-base``,
  default 32, against the default F's 16) trained with L1 on *pairs*: the clean training
  images with fresh noise of the same model. It is validated every 250 steps on further
  pairs (never the test pairs) and stops when its validation PSNR has not risen for
  ``--patience`` validations; the best weights are scored.

Targets (issue 13) are checked per noise model on the means over seeds and printed with
the table; the JSON has every number of every seed.

    python benchmarks/quality.py --n2v-python .venv-n2v/bin/python            # six models, seeds 1 2
    python benchmarks/quality.py --noise charging --seeds 1 --n2v-python ...   # one model
    python benchmarks/quality.py --noise correlated --seeds 1 --side 64 --train-images 2 \\
        --test-slices 1 --steps 2 --supervised-max-steps 2                       # smoke test

Writes benchmarks/results/quality.json (rewritten after each data set) and prints the tables.
Runs split across processes (each with its own ``--out`` and ``--workdir``) are printed
together with ``--report A.json B.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bm3d  # bench extra; imported up front so its import is not timed
import numpy as np
import torch
from skimage.restoration import estimate_sigma

from iscl_cli.checkpoint import load_model
from iscl_cli.data import augment_8fold
from iscl_cli.demo import read_stack
from iscl_cli.inference import TileOptions, tiled_in_physical_units
from iscl_cli.intensity import IntensityMapping, fit_intensity
from iscl_cli.io import open_volumes
from iscl_cli.noise_check import structure_score
from iscl_cli.phantoms import PHANTOMS
from iscl_cli.quality import psnr, ssim
from iscl_cli.simulate import add_phantom_noise, make_unpaired_set, store_phantom, unstore_phantom
from iscl_cli.train import DEFAULT_PRESET, PRESETS
from models.networks import UNet

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NOISE_MODELS = {  # noise model -> (phantom, file format)
    "film": ("em", "tiff"),
    "charging": ("em", "tiff"),
    "scanline": ("em", "tiff"),
    "correlated": ("em", "tiff"),
    "lowdose_ct": ("ct", "dicom"),
    "poisson_gaussian": ("fluorescence", "tiff"),
}
EM_MODELS = ("film", "charging", "scanline", "correlated")
WHITE_NOISE_MODELS = ("poisson_gaussian",)
# Targets of issue 13, in dB.
ABOVE_BLIND_DB = 1.0
WITHIN_SUPERVISED_DB = 3.0
WITHIN_N2V_DB = 0.5
# make_unpaired_set uses random-stream roles 0-4; these are the supervised pairs' own.
PAIR_NOISE_ROLE, VALIDATION_SOURCE_ROLE, VALIDATION_NOISE_ROLE = 1000, 1001, 1002
VALIDATION_PAIRS = 4
METHODS = ("noisy", "bm3d", "n2v", "supervised", "iscl")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--noise", nargs="+", choices=tuple(NOISE_MODELS), default=list(NOISE_MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2], help="data and training seeds (default 1 2)")
    parser.add_argument("--train-images", type=int, default=24, help="training images per domain (default 24)")
    parser.add_argument("--test-slices", type=int, default=8, help="held-out test pairs (default 8)")
    parser.add_argument("--side", type=int, default=256, help="image side in pixels (default 256)")
    parser.add_argument("--preset", default=None, help="iscl train --preset (default: iscl's default)")
    parser.add_argument("--steps", type=int, default=None, help="iscl train --steps (default: the preset's)")
    parser.add_argument("--net", action="append", default=[], help="iscl train --net NAME=VALUE; repeatable")
    parser.add_argument("--train-option", action="append", default=[],
                        help="any further iscl train option, e.g. --train-option=--lr=2e-4; repeatable")
    parser.add_argument("--methods", nargs="+", choices=METHODS[1:], default=list(METHODS[1:]),
                        help="methods to run (default all); results of the others already in --out are kept")
    parser.add_argument("--n2v-seconds", type=float, default=None,
                        help="Noise2Void's training budget (default: what iscl train took in this run)")
    parser.add_argument("--n2v-python", type=Path, default=None,
                        help="Python of an environment with CAREamics (see benchmarks/n2v_careamics.py); "
                             "without it the Noise2Void column is left out")
    parser.add_argument("--supervised-base", type=int, default=32, help="width of the supervised U-Net (default 32)")
    parser.add_argument("--supervised-max-steps", type=int, default=12000)
    parser.add_argument("--patience", type=int, default=4,
                        help="validations without a new best before the supervised training stops (default 4)")
    parser.add_argument("--reuse-runs", action="store_true",
                        help="keep a finished iscl training run found in --workdir (its training time is the sum of "
                             "its metrics' step times) instead of training again; the test stack is denoised again")
    parser.add_argument("--device", default="cpu", help="device of iscl and the supervised network (default cpu)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "quality.json")
    parser.add_argument("--report", type=Path, nargs="+", default=None,
                        help="run nothing: print the tables of these result files (e.g. of runs split across "
                             "processes), the later file's case winning where two hold the same one")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep data, runs and outputs here (default: a temporary folder)")
    return parser.parse_args()


# ----------------------------------------------------------------------------- scoring


def scores(outputs: list[np.ndarray], noisy: list[np.ndarray], clean: list[np.ndarray]) -> dict[str, float]:
    """PSNR, SSIM, mean signed error (% of range) and removed-noise structure over a test stack."""
    data_range = float(max(c.max() for c in clean) - min(c.min() for c in clean))
    return {
        "psnr": float(np.mean([psnr(c, o, data_range) for c, o in zip(clean, outputs)])),
        "ssim": float(np.mean([ssim(c, o, data_range) for c, o in zip(clean, outputs)])),
        "bias_percent": 100 * float(np.mean([np.mean(o.astype(np.float64) - c) for o, c in zip(outputs, clean)])) / data_range,
        "structure": float(np.mean([structure_score(n, o) for n, o in zip(noisy, outputs)])),
    }


def scored(method: str, outputs: list[np.ndarray], noisy: list[np.ndarray], clean: list[np.ndarray],
           case_dir: Path) -> dict[str, float]:
    """``scores``, after saving the outputs as ``CASE/outputs/METHOD.npy`` (for later looks and re-scoring)."""
    (case_dir / "outputs").mkdir(parents=True, exist_ok=True)
    np.save(case_dir / "outputs" / f"{method}.npy", np.stack(outputs).astype(np.float32))
    return scores(outputs, noisy, clean)


def training_slices(folder: Path) -> list[np.ndarray]:
    return [image for volume in open_volumes([folder]) for image in volume.slices()]


# ----------------------------------------------------------------------------- iscl, through its command line


def run_cli(arguments: list[str]) -> tuple[float, str]:
    """Run ``python -m iscl_cli ARGUMENTS``; returns its wall time and stdout; raises with its stderr on failure."""
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "iscl_cli", *arguments], capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"iscl {' '.join(arguments)} failed:\n{completed.stderr}")
    return time.perf_counter() - started, completed.stdout


def run_iscl(data: dict[str, Path], args: argparse.Namespace, seed: int, run_dir: Path) -> tuple[list[np.ndarray], dict]:
    train_args = ["train", "--noisy", str(data["noisy"]), "--clean", str(data["clean"]), "--out", str(run_dir / "run"),
                  "--seed", str(seed), "--device", args.device, "--quiet"]
    train_args += ["--preset", args.preset] if args.preset else []
    train_args += ["--steps", str(args.steps)] if args.steps else []
    train_args += [part for setting in args.net for part in ("--net", setting)] + list(args.train_option)
    if args.reuse_runs and (run_dir / "run" / "model.pt").exists():
        train_seconds = sum(json.loads(line)["seconds"]
                            for line in (run_dir / "run" / "metrics.jsonl").read_text().splitlines())
        print(f"    reusing {run_dir / 'run'} ({train_seconds:.0f} s of training steps)", flush=True)
    else:
        print(f"    iscl {' '.join(train_args)}", flush=True)
        train_seconds, _ = run_cli(train_args + ["--overwrite"] * (run_dir / "run").exists())
    denoise_seconds, summary = run_cli(["denoise", str(data["test_noisy"]), "-o", str(run_dir / "denoised"), "--model",
                                        str(run_dir / "run" / "model.pt"), "--device", args.device, "--overwrite",
                                        "--json"])
    (job,) = json.loads(summary)["jobs"]
    # the ensemble weight the model denoised with (chosen after training unless --net gamma fixed it)
    gamma = load_model(run_dir / "run" / "model.pt").model.config.gamma
    return read_stack(Path(job["output"])), {"train_seconds": train_seconds, "denoise_seconds": denoise_seconds,
                                             "seconds": train_seconds + denoise_seconds, "gamma": gamma}


# ----------------------------------------------------------------------------- BM3D


def unit_range(clean_train: list[np.ndarray]) -> tuple[float, float]:
    low, high = np.percentile(np.concatenate([c.ravel() for c in clean_train]), (0.01, 99.99))
    return float(low), float(high)


def run_bm3d(noisy_train: list[np.ndarray], test_noisy: list[np.ndarray],
             value_range: tuple[float, float]) -> tuple[list[np.ndarray], dict]:
    low, high = value_range
    started = time.perf_counter()
    sigma = float(np.median([estimate_sigma((image - low) / (high - low)) for image in noisy_train]))
    outputs = [low + (high - low) * np.asarray(bm3d.bm3d((image - low) / (high - low), sigma), dtype=np.float32)
               for image in test_noisy]
    return outputs, {"seconds": time.perf_counter() - started, "sigma": sigma}


# ----------------------------------------------------------------------------- Noise2Void (CAREamics)


def run_n2v(python: Path, noisy_train: list[np.ndarray], test_noisy: list[np.ndarray], seconds: float,
            work: Path, seed: int) -> tuple[list[np.ndarray], dict]:
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "train.npy", np.stack(noisy_train).astype(np.float32))
    np.save(work / "test.npy", np.stack(test_noisy).astype(np.float32))
    script = Path(__file__).resolve().parent / "n2v_careamics.py"
    started = time.perf_counter()
    completed = subprocess.run([str(python), str(script), "--train", str(work / "train.npy"), "--test",
                                str(work / "test.npy"), "--out", str(work / "out.npy"), "--seconds", f"{seconds:.1f}",
                                "--workdir", str(work / "careamics"), "--seed", str(seed)],
                               capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"Noise2Void failed:\n{completed.stderr[-4000:]}")
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    return list(np.load(work / "out.npy")), {**report, "seconds": time.perf_counter() - started}


# ----------------------------------------------------------------------------- supervised bound


def supervised_pairs(clean_images: list[np.ndarray], phantom: str, noise: str, seed: int,
                     role: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(noisy, clean) pairs in stored units: each clean image with fresh noise of the model,
    added in phantom units and stored like ``make_unpaired_set`` stores its images."""
    pairs = []
    for index, clean in enumerate(clean_images):
        rng = np.random.default_rng([seed, role, index])
        noisy = add_phantom_noise(unstore_phantom(clean, phantom), phantom, noise, rng, {})
        pairs.append((store_phantom(noisy, phantom).astype(np.float32), clean))
    return pairs


def paired_batch(pairs: list[tuple[np.ndarray, np.ndarray]], batch: int, patch: int,
                 rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    noisy_patches, clean_patches = [], []
    for _ in range(batch):
        noisy, clean = pairs[int(rng.integers(len(pairs)))]
        top, left = (int(rng.integers(size - patch + 1)) for size in clean.shape)
        choice = int(rng.integers(8))
        noisy_patches.append(augment_8fold(noisy[top:top + patch, left:left + patch], choice))
        clean_patches.append(augment_8fold(clean[top:top + patch, left:left + patch], choice))
    return torch.from_numpy(np.stack(noisy_patches)[:, None]), torch.from_numpy(np.stack(clean_patches)[:, None])


def run_supervised(train_pairs: list[tuple[np.ndarray, np.ndarray]], val_pairs: list[tuple[np.ndarray, np.ndarray]],
                   test_noisy: list[np.ndarray], mapping: IntensityMapping, args: argparse.Namespace,
                   seed: int) -> tuple[list[np.ndarray], dict]:
    """A U-Net on pairs (L1, Adam 1e-3, halved at every validation without a new best) until
    validation PSNR stops rising; the best weights denoise the test stack through the tiler."""
    device = torch.device(args.device)
    torch.manual_seed(seed)
    net = UNet(1, args.supervised_base, depth=2).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    model_pairs = [(mapping.to_model(n, "noisy"), mapping.to_model(c, "clean")) for n, c in train_pairs]
    rng = np.random.default_rng([seed, PAIR_NOISE_ROLE])
    tiles = TileOptions()

    def denoise_all(images: list[np.ndarray]) -> list[np.ndarray]:
        net.eval()
        with torch.inference_mode():
            outputs = [tiled_in_physical_units(image, net, net.translation_step, device, mapping, tiles) for image in images]
        net.train()
        return outputs

    data_range = mapping.clean_high - mapping.clean_low
    best, best_state, since_best, step, curve = -np.inf, None, 0, 0, []
    started = time.perf_counter()
    while step < args.supervised_max_steps and since_best < args.patience:
        for _ in range(250):
            x, y = (t.to(device) for t in paired_batch(model_pairs, 8, 64, rng))
            loss = (net(x) - y).abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        value = float(np.mean([psnr(c, o, data_range) for o, (_, c) in zip(denoise_all([n for n, _ in val_pairs]), val_pairs)]))
        curve.append([step, round(value, 3)])
        if value > best:
            best, best_state, since_best = value, {k: v.clone() for k, v in net.state_dict().items()}, 0
        else:
            since_best += 1
            for group in optimizer.param_groups:
                group["lr"] /= 2
    train_seconds = time.perf_counter() - started
    net.load_state_dict(best_state)
    started = time.perf_counter()
    outputs = denoise_all(test_noisy)
    return outputs, {"steps": step, "validation_curve": curve, "train_seconds": train_seconds,
                     "seconds": train_seconds + time.perf_counter() - started}


# ----------------------------------------------------------------------------- one data set


def benchmark_case(noise: str, seed: int, args: argparse.Namespace, workdir: Path,
                   earlier: dict[str, Any]) -> dict[str, Any]:
    """Every method in ``args.methods`` on one data set; ``earlier`` holds results kept from an earlier run."""
    phantom, file_format = NOISE_MODELS[noise]
    case_dir = workdir / f"{noise}-seed{seed}"
    print(f"{noise}, seed {seed}: {args.train_images}+{args.train_images} unpaired {phantom} images "
          f"({file_format}), {args.test_slices} test slices, {args.side}x{args.side}", flush=True)
    data = make_unpaired_set(case_dir / "data", phantom=phantom, noise=noise, n_train=args.train_images,
                             n_test=args.test_slices, shape=(args.side, args.side), seed=seed, file_format=file_format)
    noisy, clean = read_stack(data["test_noisy"]), read_stack(data["test_clean"])
    noisy_train, clean_train = training_slices(data["noisy"]), training_slices(data["clean"])
    result: dict[str, Any] = {**earlier, "noisy": scores(noisy, noisy, clean)}

    if "iscl" in args.methods:
        outputs, timing = run_iscl(data, args, seed, case_dir / "iscl")
        result["iscl"] = {**scored("iscl", outputs, noisy, clean, case_dir), **timing}
        print(f"    iscl {result['iscl']['psnr']:.2f} dB ({timing['train_seconds']:.0f} s training)", flush=True)

    if "bm3d" in args.methods:
        outputs, info = run_bm3d(noisy_train, noisy, unit_range(clean_train))
        result["bm3d"] = {**scored("bm3d", outputs, noisy, clean, case_dir), **info}

    if "n2v" in args.methods and args.n2v_python is not None:
        budget = args.n2v_seconds or result["iscl"]["train_seconds"]
        outputs, info = run_n2v(args.n2v_python, noisy_train, noisy, budget, case_dir / "n2v", seed)
        result["n2v"] = {**scored("n2v", outputs, noisy, clean, case_dir), **info, "budget_seconds": budget}

    if "supervised" in args.methods:
        make_phantom = PHANTOMS[phantom]
        validation_clean = [store_phantom(make_phantom((args.side, args.side),
                                                       np.random.default_rng([seed, VALIDATION_SOURCE_ROLE, k])),
                                          phantom).astype(np.float32) for k in range(VALIDATION_PAIRS)]
        mapping = fit_intensity(open_volumes([data["noisy"]]), open_volumes([data["clean"]]), seed=seed)
        outputs, info = run_supervised(supervised_pairs(clean_train, phantom, noise, seed, PAIR_NOISE_ROLE),
                                       supervised_pairs(validation_clean, phantom, noise, seed, VALIDATION_NOISE_ROLE),
                                       noisy, mapping, args, seed)
        result["supervised"] = {**scored("supervised", outputs, noisy, clean, case_dir), **info}
    print("    " + "  ".join(f"{m} {result[m]['psnr']:.2f}" for m in METHODS if m in result), flush=True)
    return result


# ----------------------------------------------------------------------------- summary and targets


def mean_over_seeds(cases: dict[str, dict], method: str, key: str) -> float | None:
    values = [case[method][key] for case in cases.values() if key in case.get(method, {})]
    return float(np.mean(values)) if values else None


def targets(noise: str, cases: dict[str, dict]) -> dict[str, Any]:
    """Issue 13's targets for one noise model on the means over seeds (None: not applicable or not measured)."""
    mean = {m: mean_over_seeds(cases, m, "psnr") for m in METHODS}
    if mean["iscl"] is None:
        return {}
    checks: dict[str, Any] = {
        "never_worse": all(case["iscl"]["psnr"] >= case["noisy"]["psnr"] and case["iscl"]["ssim"] >= case["noisy"]["ssim"]
                           for case in cases.values()),
    }
    blind = [mean[m] for m in ("bm3d", "n2v") if mean[m] is not None]
    if noise in WHITE_NOISE_MODELS:
        checks["within_0.5_db_of_n2v"] = None if mean["n2v"] is None else mean["iscl"] >= mean["n2v"] - WITHIN_N2V_DB
    else:
        checks["1_db_above_blind"] = mean["iscl"] >= max(blind) + ABOVE_BLIND_DB if blind else None
    if noise in EM_MODELS and mean["supervised"] is not None:
        checks["within_3_db_of_supervised"] = mean["iscl"] >= mean["supervised"] - WITHIN_SUPERVISED_DB
    return checks


def markdown_table(results: dict[str, dict[str, dict]]) -> str:
    """PSNR / SSIM per method (means over seeds) and issue 13's targets, one row per noise model."""
    header = "| noise model | " + " | ".join(METHODS) + " | targets |"
    lines = [header, "|" + "---|" * (len(METHODS) + 2)]
    for noise, cases in results.items():
        cells = []
        for method in METHODS:
            value = mean_over_seeds(cases, method, "psnr")
            cells.append("-" if value is None else f"{value:.2f} / {mean_over_seeds(cases, method, 'ssim'):.3f}")
        checks = ", ".join(f"{name}: {'-' if ok is None else 'yes' if ok else 'NO'}" for name, ok in targets(noise, cases).items())
        lines.append(f"| {noise} | " + " | ".join(cells) + f" | {checks} |")
    return "\n".join(lines)


def detail_table(results: dict[str, dict[str, dict]], key: str, form: str) -> str:
    """One value (``key``: bias_percent, structure or seconds) per noise model and method, means over seeds."""
    lines = ["| noise model | " + " | ".join(METHODS) + " |", "|" + "---|" * (len(METHODS) + 1)]
    for noise, cases in results.items():
        values = [mean_over_seeds(cases, method, key) for method in METHODS]
        lines.append(f"| {noise} | " + " | ".join("-" if v is None else format(v, form) for v in values) + " |")
    return "\n".join(lines)


def print_report(results: dict[str, dict[str, dict]], heading: str) -> None:
    print(f"\nPSNR (dB) / SSIM, {heading}:")
    print(markdown_table(results))
    for key, what, form in (("bias_percent", "mean signed error, % of the clean range", "+.2f"),
                            ("structure", "removed-noise structure score (iscl_cli.noise_check)", "+.3f"),
                            ("seconds", "wall time, s (iscl: train + denoise; n2v: its training budget + predict)", ".0f")):
        print(f"\n{what}:")
        print(detail_table(results, key, form))


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(payload, indent=2) + "\n")
    temporary.replace(path)


def main() -> None:
    args = parse_args()
    if args.report:
        merged: dict[str, dict] = {}
        for path in args.report:
            for noise, cases in json.loads(path.read_text())["results"].items():
                merged.setdefault(noise, {}).update(cases)
        ordered = {noise: merged[noise] for noise in NOISE_MODELS if noise in merged}
        print_report(ordered, f"mean over seeds, from {', '.join(map(str, args.report))}")
        return
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    payload: dict[str, Any] = {
        "commands": [*previous.get("commands", []), " ".join(sys.argv)], "preset": args.preset or DEFAULT_PRESET,
        "preset_values": PRESETS[args.preset or DEFAULT_PRESET], "net": args.net, "steps": args.steps,
        "seeds": args.seeds, "train_images": args.train_images, "test_slices": args.test_slices, "side": args.side,
        "machine": machine, "torch": torch.__version__, "results": previous.get("results", {}),
    }
    with tempfile.TemporaryDirectory(prefix="iscl-quality-") as temporary:
        workdir = args.workdir or Path(temporary)
        for noise in args.noise:
            cases = payload["results"].setdefault(noise, {})
            for seed in args.seeds:
                kept = {method: value for method, value in cases.get(str(seed), {}).items() if method not in args.methods}
                cases[str(seed)] = benchmark_case(noise, seed, args, workdir, kept)
                write_json(args.out, payload)
            payload.setdefault("targets", {})[noise] = targets(noise, cases)
            write_json(args.out, payload)
    print_report({noise: payload["results"][noise] for noise in args.noise},
                 f"mean over seeds {args.seeds}, {args.test_slices} test slices each ({machine})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
