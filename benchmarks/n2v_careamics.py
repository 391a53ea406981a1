"""Noise2Void anchor for benchmarks/quality.py: CAREamics trained on noisy images only, within a wall-clock budget.

Runs in its own Python environment, because CAREamics pins torchvision (and so a torch
release) that the project's environment does not have; it imports nothing from iscl.
Set one up once (several GB: PyPI's torch 2.9.1 is a CUDA build on x86_64):

    python3 -m venv .venv-n2v
    .venv-n2v/bin/pip install torch==2.9.1 torchvision==0.24.1 careamics==0.3.5

``quality.py --n2v-python .venv-n2v/bin/python`` then calls this script for every noise
model. Training follows CAREamics' own defaults for N2V (its 2-level U-Net, 64x64
patches, 8-fold augmentation, mean/std normalisation, Adam with ReduceLROnPlateau),
except that it stops when ``--seconds`` of training have passed (Lightning's
``max_time``), so N2V gets the same wall-clock budget as iscl. Images come and go as
``.npy`` stacks in physical units (quality.py reads TIFF and DICOM with iscl's readers);
the test stack is predicted with CAREamics' tiling.

    .venv-n2v/bin/python benchmarks/n2v_careamics.py --train noisy_train.npy --test test_noisy.npy \\
        --out n2v.npy --seconds 600 --workdir n2v-run
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from careamics import CAREamist
from careamics.config import create_advanced_n2v_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, required=True, help="noisy training images, an (N, Y, X) .npy")
    parser.add_argument("--test", type=Path, required=True, help="noisy images to denoise, an (N, Y, X) .npy")
    parser.add_argument("--out", type=Path, required=True, help="where to write the denoised (N, Y, X) float32 .npy")
    parser.add_argument("--seconds", type=float, required=True, help="training wall-clock budget")
    parser.add_argument("--workdir", type=Path, required=True, help="CAREamics' checkpoints and logs")
    parser.add_argument("--seed", type=int, default=1, help="CAREamics wants a positive seed")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--patch-size", type=int, default=64)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    images = np.load(args.train).astype(np.float32)
    patches = len(images) * (images.shape[1] // args.patch_size) * (images.shape[2] // args.patch_size)
    # Every epoch walks the data once; with max_time in charge, epochs only pace validation.
    config = create_advanced_n2v_config(
        experiment_name="n2v_anchor", data_type="array", axes="SYX",
        patch_size=[args.patch_size, args.patch_size], batch_size=args.batch_size, num_epochs=10_000,
        num_workers=0, seed=args.seed, logger="none", n_val_patches=max(1, min(8, patches // 4)),
        trainer_params={"max_time": timedelta(seconds=args.seconds), "enable_progress_bar": False},
    )
    started = time.perf_counter()
    careamist = CAREamist(config, work_dir=args.workdir, enable_progress_bar=False)
    careamist.train(train_data=images)
    train_seconds = time.perf_counter() - started
    test = np.load(args.test).astype(np.float32)
    started = time.perf_counter()
    side = 2 ** int(np.floor(np.log2(min(256, *test.shape[-2:]))))
    predictions, _ = careamist.predict(test, axes="SYX", tile_size=(side, side), tile_overlap=(48, 48)
                                       if side > 48 else (side // 2, side // 2))
    predict_seconds = time.perf_counter() - started
    stack = np.asarray(predictions, dtype=np.float32).reshape(test.shape)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, stack)
    print(json.dumps({"train_seconds": train_seconds, "predict_seconds": predict_seconds,
                      "epochs": careamist.trainer.current_epoch, "steps": careamist.trainer.global_step}))


if __name__ == "__main__":
    main()
