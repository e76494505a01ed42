"""Soak test: train AS for a given number of minutes and watch the resident memory stay flat.

Runs ``confide.core.trainer.train`` itself (the loop every run uses: rollout, messages, update, a
metrics row kept per update) on C. Predation, AS, the papers' networks, ``--agents`` (default 8) and
``--batch`` (default 32) episodes per update, 1 thread, with an effectively endless update count; a
hook after each rollout prints the process's RSS (``VmRSS`` of ``/proc/self/status``) once a minute
and stops the run after ``--minutes``. At the end it prints the max/min ratio of the per-minute RSS
samples from minute 1 on (minute 0, before the first update has allocated its workspace, is shown
but left out), and the update count.

Run: ``confide bench soak`` (30 minutes) or ``python -m confide.benchmarks.soak --minutes 30``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from confide.core.rollout import Rollout
from confide.core.trainer import train
from confide.experiments.config import AlgoConfig, EnvConfig, RunConfig, TrainConfig


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_mib() -> float:
    """This process's resident set size in MiB (Linux ``/proc``)."""
    return _status_mib("VmRSS")


def peak_rss_mib() -> float:
    """This process's own peak RSS in MiB (``VmHWM``: unlike ``ru_maxrss``, not the forking parent's)."""
    return _status_mib("VmHWM")


class _TimeUp(Exception):
    """Raised by the hook to end the endless run (no result files are written)."""


class RssLog:
    """The once-a-minute RSS samples of a run, taken from the trainer's per-update hook."""

    def __init__(self, minutes: float) -> None:
        self.start = time.perf_counter()
        self.minutes = minutes
        self.samples: list[tuple[float, int, float]] = [(0.0, 0, rss_mib())]  # (minute, updates, MiB)
        print(f"  minute {0:5.1f}  updates {0:6d}  RSS {self.samples[0][2]:8.1f} MiB", flush=True)

    def __call__(self, update: int, rollout: Rollout) -> None:
        minute = (time.perf_counter() - self.start) / 60
        if minute >= len(self.samples) or minute >= self.minutes:
            self.samples.append((minute, update, rss_mib()))
            print(
                f"  minute {minute:5.1f}  updates {update:6d}  RSS {self.samples[-1][2]:8.1f} MiB", flush=True
            )
        if minute >= self.minutes:
            raise _TimeUp

    def ratio(self) -> float:
        """max/min of the samples from minute 1 on (all samples if the run was shorter)."""
        values = [mib for minute, _, mib in self.samples if minute >= 1] or [s[2] for s in self.samples]
        return max(values) / min(values)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--agents", type=int, default=8)
    p.add_argument("--batch", type=int, default=32, help="episodes per update")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    config = RunConfig(
        env=EnvConfig(name="predation", agents=args.agents),
        algo=AlgoConfig(name="as"),
        train=TrainConfig(updates=1_000_000, batch=args.batch, seed=args.seed, threads=1, progress=False),
    )
    print(
        f"soak: AS on C. Predation, N={args.agents}, batch {args.batch}, {args.minutes:g} minutes, 1 thread"
    )
    log = RssLog(args.minutes)
    try:
        train(config, observe=log)
    except _TimeUp:
        pass
    values = [mib for minute, _, mib in log.samples if minute >= 1]
    print(
        f"RSS from minute 1 on: min {min(values, default=float('nan')):.1f} MiB,"
        f" max {max(values, default=float('nan')):.1f} MiB, max/min {log.ratio():.4f}"
        f" ({(log.ratio() - 1) * 100:.2f}% growth bound); {log.samples[-1][1]} updates"
    )


if __name__ == "__main__":
    main()
