"""How much CPU this (virtual) machine really gives a busy thread: the context for every timing.

Spins one pure-Python thread for ``--seconds`` and reads the kernel's CPU accounting
(/proc/stat, Linux only) before and after. On a virtual machine the ``steal`` column counts
time the hypervisor gave our virtual CPUs to someone else; when it is large, wall-clock
timings of anything here are slow by that much, and only ratios measured in one run mean
anything.

    python benchmarks/cpu_share.py --seconds 10

Prints the shares of user, system, steal and idle time over all CPUs, and the spinning
thread's loop rate.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def cpu_times() -> dict[str, int]:
    """Cumulative CPU time per state over all CPUs, in clock ticks (the first line of /proc/stat)."""
    values = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return dict(zip(FIELDS, map(int, values)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to spin (default 10)")
    args = parser.parse_args()
    before, started, loops = cpu_times(), time.perf_counter(), 0
    while time.perf_counter() - started < args.seconds:
        for _ in range(100_000):
            pass
        loops += 1
    elapsed, after = time.perf_counter() - started, cpu_times()
    spent = {name: after[name] - before[name] for name in FIELDS}
    total = sum(spent.values()) or 1
    print(", ".join(f"{name} {100 * ticks / total:.0f} %" for name, ticks in spent.items() if ticks))
    print(f"one spinning thread: {loops * 100_000 / elapsed / 1e6:.1f} million empty loop iterations per second")


if __name__ == "__main__":
    main()
