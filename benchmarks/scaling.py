"""Benchmark: how the N² actor update's time and memory grow with N and with the batch size.

For every N in ``--sizes`` and batch of ``--episodes`` (× 30 steps = samples per minibatch), one child
process builds the AS/SS actor bank (N² heads, N → 128 → 64 → 2, ReLU) and times the update of
``networks.confide_update`` (forward, clipped PPO surrogate, backward, per-agent clip, Adam; one warm-up,
then the median of ``--repeats``). Memory per cell, from that child: the parameters with their Adam
state and gradients (4 copies), the activation workspace the bank keeps between updates, and the
child's peak RSS (its ``VmHWM``, which includes torch itself: ~0.3 GB at N = 2; not ``ru_maxrss``, which
on Linux also holds the peak of the parent that forked it).

Run: ``confide bench scaling`` or ``python -m confide.benchmarks.scaling [--sizes 2,8,20,30,50]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from confide.benchmarks.networks import _Batch, _population, confide_update, update_flops
from confide.benchmarks.soak import peak_rss_mib

HORIZON = 30


def cell(n: int, samples: int, repeats: int) -> dict[str, float]:
    """Time and memory of the N² actor update on ``samples`` samples (run in a child process)."""
    torch.set_num_threads(1)
    pop, _ = _population(n)
    step = confide_update(pop, _Batch(n, samples, torch.Generator().manual_seed(1)))
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    params = sum(p.numel() * p.element_size() for p in pop.actor_parameters())
    workspace = pop.policy._workspace.free
    return {
        "seconds": statistics.median(times),
        "param_state_mib": 4 * params / 2**20,
        "workspace_mib": 0.0 if workspace is None else workspace.numel() * workspace.element_size() / 2**20,
        "peak_rss_mib": peak_rss_mib(),
    }


def measure(n: int, samples: int, repeats: int) -> dict[str, float]:
    """``cell`` in a fresh child process (so that each cell's peak memory is its own)."""
    cmd = [sys.executable, "-m", "confide.benchmarks.scaling", "--cell", str(n), str(samples), str(repeats)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {done.returncode}: {done.stderr.strip()[-200:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="2,8,20,30,50", help="N values")
    p.add_argument("--episodes", default="8,32,128", help="episodes per minibatch (× 30 steps)")
    p.add_argument("--repeats", type=int, default=2, help="timed updates per cell after one warm-up")
    p.add_argument("--cell", nargs=3, type=int, metavar=("N", "SAMPLES", "REPEATS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.cell:
        print(json.dumps(cell(*args.cell)))
        return
    print(
        f"torch {torch.__version__}, 1 thread; N² actor update (N → 128 → 64 → 2), one child process per cell"
    )
    print(
        "    N  episodes  samples    GFLOP   update ms   GFLOP/s   params+grad+Adam MiB   workspace MiB   peak RSS MiB"
    )
    for n in [int(s) for s in args.sizes.split(",")]:
        for episodes in [int(s) for s in args.episodes.split(",")]:
            samples = episodes * HORIZON
            r = measure(n, samples, args.repeats)
            flops = update_flops(n, samples)
            print(
                f"  {n:3d}  {episodes:8d}  {samples:7d}  {flops / 1e9:7.2f}  {r['seconds'] * 1e3:10.1f}"
                f"  {flops / r['seconds'] / 1e9:8.1f}  {r['param_state_mib']:21.1f}  {r['workspace_mib']:14.1f}"
                f"  {r['peak_rss_mib']:13,.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
