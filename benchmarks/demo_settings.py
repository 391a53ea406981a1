"""The demo's result under other training settings: `iscl demo` with a changed learning
rates, RAdam beta2, network options or step count, to see which settings make a short CPU run learn.

Runs ``iscl_cli.demo.run_demo`` (same data, seed and scoring as ``iscl demo``) with
``--lr``, ``--d-lr``, ``--beta2``, ``--net NAME=VALUE`` and ``--steps`` applied on top of the quick preset, prints the demo's
lines with elapsed seconds and appends one JSON line with the scores to ``--log``.

    python benchmarks/demo_settings.py --out /tmp/demo-lr1e-3 --lr 1e-3
    python benchmarks/demo_settings.py --out /tmp/demo-identity --lr 1e-3 --net identity_start=true

Two runs can share a 2-core machine: ``--threads 1`` gives each one core.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from iscl_cli.cli import parse_assignments
from iscl_cli.demo import run_demo

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="demo folder (must not hold an earlier demo)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the quick preset's)")
    parser.add_argument("--d-lr", type=float, default=None, help="discriminators' learning rate (default: --lr)")
    parser.add_argument("--beta2", type=float, default=None, help="RAdam beta2 (default: the quick preset's)")
    parser.add_argument("--net", action="append", default=[], help="network setting NAME=VALUE; repeatable")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the demo's)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--log", type=Path, default=RESULTS_DIR / "demo_settings.jsonl", help="JSON lines to append to")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    network = parse_assignments(args.net)
    result = run_demo(args.out, lr=args.lr, d_lr=args.d_lr, beta2=args.beta2, network=network, steps=args.steps,
                      say=lambda line: print(f"[{time.perf_counter() - started:6.0f} s] {line}", flush=True))
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with args.log.open("a") as log:
        log.write(json.dumps({"lr": args.lr, "d_lr": args.d_lr, "beta2": args.beta2, "net": network, "steps": args.steps, **result}) + "\n")


if __name__ == "__main__":
    main()
