"""How fast a discriminator learns to tell the demo's noisy patches from its clean ones.

The generators get an adversarial signal only once the discriminators tell the domains
apart, so in a short run the discriminators' learning rate decides whether anything is
learned at all. This trains the clean-domain discriminator D_Y alone (F, G and H take no
part): real = clean patches, fake = noisy patches (what D_Y sees from F while F is still
near the identity), both scored in one call as ``ISCL.train_step`` does, hinge loss
relu(1 - real) + relu(1 + fake), with the training's own optimiser (Lookahead around
RAdam, ``radam_schedule``). Data: the demo's phantoms, sizes and seed (``iscl demo``), with
the demo's noise model and training-image count unless ``--noise``/``--train-images`` say
otherwise; network: the quick preset's. Per learning rate it prints the mean hinge loss over blocks
of steps: 2 means chance, 0 means the two domains are separated.

    python benchmarks/discriminator_rates.py --lrs 1e-4 1e-3 1e-2 3e-2 --steps 300
    python benchmarks/discriminator_rates.py --noise scanline --train-images 8   # docs/training.md's table

Prints a table and writes benchmarks/results/discriminator_rates.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from iscl_cli.demo import DEMO_NOISE, DEMO_PHANTOM, DEMO_SIZES
from iscl_cli.simulate import NOISE_MODELS, make_unpaired_set
from iscl_cli.train import Run, make_train_config
from models.iscl import radam_schedule
from models.lookahead import Lookahead

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2, 3e-2], help="learning rates to compare")
    parser.add_argument("--steps", type=int, default=300, help="steps per learning rate (default 300)")
    parser.add_argument("--block", type=int, default=50, help="steps per reported mean (default 50)")
    parser.add_argument("--beta2", type=float, default=0.999, help="RAdam beta2 (default 0.999)")
    parser.add_argument("--noise", choices=tuple(NOISE_MODELS), default=DEMO_NOISE,
                        help=f"noise model of the noisy patches (default: the demo's, {DEMO_NOISE})")
    parser.add_argument("--train-images", type=int, default=DEMO_SIZES["quick"][0],
                        help=f"training images per domain (default: the demo's, {DEMO_SIZES['quick'][0]})")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "discriminator_rates.json", help="JSON to write")
    return parser.parse_args()


def hinge_losses(run: Run, lr: float, beta2: float, steps: int) -> list[float]:
    """D_Y's hinge loss at every step of ``steps``, trained from its initial weights at ``lr``."""
    torch.manual_seed(run.config.seed)
    discriminator = run.model.D_Y
    radam = torch.optim.RAdam(discriminator.parameters(), lr=lr, betas=(0.9, beta2))
    optimizer = Lookahead(radam, k=6, alpha=0.5)
    schedule = radam_schedule(radam, run.config.final_lr, steps)
    batch = run.config.batch_size
    losses = []
    for _ in range(steps):
        clean, noisy = run.clean.sample(batch), run.noisy.sample(batch)
        scores = discriminator(torch.cat([clean, noisy]))
        loss = F.relu(1 - scores[:batch]).mean() + F.relu(1 + scores[batch:]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return losses


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    _, n_test, side, _ = DEMO_SIZES["quick"]
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        data = make_unpaired_set(Path(workdir), phantom=DEMO_PHANTOM, noise=args.noise, n_train=args.train_images,
                                 n_test=n_test, shape=(side, side), seed=0)
        config = make_train_config([str(data["noisy"])], [str(data["clean"])], "quick", out=str(Path(workdir) / "run"),
                                   steps=args.steps, device="cpu", seed=0)
        for lr in args.lrs:
            run = Run(config)  # seeded from the config: same weights, same patch order for every rate
            started = time.perf_counter()
            losses = hinge_losses(run, lr, args.beta2, args.steps)
            blocks = [statistics.mean(losses[i:i + args.block]) for i in range(0, len(losses), args.block)]
            results.append({"lr": lr, "beta2": args.beta2, "block_means": blocks,
                            "seconds": time.perf_counter() - started})
            print(f"lr {lr:8.1e}  hinge per {args.block} steps: " + "  ".join(f"{b:.2f}" for b in blocks), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"noise": args.noise, "train_images": args.train_images, "steps": args.steps,
                                    "block": args.block, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
