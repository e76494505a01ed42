"""Benchmark: end-to-end AS training against the FLOP limit, and the peak memory of an N = 30 AS run.

Prints, from one run on this machine (1 torch thread):

- the FLOP limit: GFLOP/s of a large square matmul (best of both measurements, before and after);
- AS training on C. Predation (the papers' networks, 128 → 64, ReLU; T = 30, B = 32 episodes, so one
  update sees 960 env-steps; 3 epochs, one full-batch minibatch each) at N = 8 and N = 30: env-steps/s
  through the trainer's own update loop (rollout, neighbourhood, AS messages, the actor and critic
  updates), the share of wall time inside ``learner.update``, and the FLOP-limited env-steps/s the
  issue defines: 960 env-steps per ``3 × update_flops(N)`` (the N² actors' matrix products of one
  minibatch update, ``networks.update_flops``) at the measured peak. The first update is a warm-up and
  is not timed;
- the same at N = 30 with the shared-trunk actors (``algo.network = "shared_trunk"``, a different
  model), against the exact model's rate;
- peak RSS of a complete ``confide train`` AS run at N = 30 (a child process running the CLI's ``main``
  reports its own ``VmHWM``; ``ru_maxrss`` would include the peak of this parent, which forked it).

Run: ``confide bench end_to_end`` or ``python -m confide.benchmarks.end_to_end [--sizes 8,30]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from confide.benchmarks.networks import matmul_peak, update_flops
from confide.core.trainer import _one_update, make_run_env, start_run
from confide.experiments.config import AlgoConfig, EnvConfig, RunConfig, TrainConfig

HORIZON, BATCH, EPOCHS = 30, 32, 3  # C. Predation's T; B episodes per update; AS's K = 3 iterations
MM_FLOPS = 2 * 2048**3


def as_config(n: int, updates: int, batch: int = BATCH, network: str = "exact") -> RunConfig:
    """AS on C. Predation with the papers' network sizes and PPO settings (only N and B set here)."""
    return RunConfig(
        env=EnvConfig(name="predation", agents=n),
        algo=AlgoConfig(name="as", network=network),
        train=TrainConfig(updates=updates, batch=batch, progress=False, threads=1),
    )


def training_rate(n: int, updates: int, network: str = "exact") -> tuple[float, float]:
    """(env-steps/s, share of wall time in ``learner.update``) over ``updates`` timed updates."""
    config = as_config(n, updates + 1, network=network)
    env = make_run_env(config)
    run = start_run(config, env)
    inner = run.learner.update
    spent = [0.0]

    def timed_update(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    run.learner.update = timed_update  # the instance attribute shadows the method for this run only
    _one_update(run, env, 0)  # warm-up: first allocations
    spent[0] = 0.0
    start = time.perf_counter()
    for update in range(1, updates + 1):
        _one_update(run, env, update)
    wall = time.perf_counter() - start
    return updates * BATCH * HORIZON / wall, spent[0] / wall


def flop_limited_rate(n: int, peak_gflops: float) -> float:
    """Env-steps/s if the N² actors' matrix products ran at the peak and nothing else took time."""
    return BATCH * HORIZON / (EPOCHS * update_flops(n, BATCH * HORIZON) / (peak_gflops * 1e9))


def peak_rss_mib(n: int, updates: int) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of ``confide train --algo as --agents n`` in a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-c", _CLI_THEN_PEAK, "train", "--algo", "as", "--env", "predation"]
        cmd += ["--agents", str(n), "--updates", str(updates), "--batch", str(BATCH), "--threads", "1"]
        cmd += ["--no-progress", "--out", str(Path(tmp) / "run")]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"confide {' '.join(cmd[3:])} exited with {done.returncode}")
        return float(done.stdout.strip().splitlines()[-1]), time.perf_counter() - start


_CLI_THEN_PEAK = """import sys
from confide.benchmarks.soak import peak_rss_mib
from confide.cli import main
status = main(sys.argv[1:])
print(peak_rss_mib())
sys.exit(status)
"""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="8,30", help="N values")
    p.add_argument("--updates", default="5,2", help="timed updates per N (after one warm-up)")
    p.add_argument("--rss-updates", type=int, default=3, help="updates of the N = 30 run whose RSS is taken")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(s) for s in args.updates.split(",")]
    if len(counts) != len(sizes):
        raise SystemExit("--updates needs one count per --sizes entry")
    print(f"torch {torch.__version__}, 1 thread; AS on C. Predation, T={HORIZON}, B={BATCH}, {EPOCHS} epochs")
    peaks = [matmul_peak()]
    rows = []
    for n, updates in zip(sizes, counts, strict=True):
        rate, share = training_rate(n, updates)
        rows.append((n, updates, rate, share))
        print(f"  N={n:3d}: {rate:8.1f} env-steps/s ({updates} updates; {share:.0%} of wall in the update)")
    peaks.append(matmul_peak())
    peak = MM_FLOPS / min(t.best() for t in peaks) / 1e9
    print(f"FLOP limit (large matmul, best of before/after): {peak:.1f} GFLOP/s")
    print("    N   env-steps/s   FLOP-limited env-steps/s   fraction")
    for n, _, rate, _ in rows:
        limit = flop_limited_rate(n, peak)
        print(f"  {n:3d}   {rate:11.1f}   {limit:24.1f}   {rate / limit:8.0%}")
    exact = {n: rate for n, _, rate, _ in rows}.get(30)
    if exact is not None:
        trunk, share = training_rate(30, counts[sizes.index(30)], network="shared_trunk")
        print(
            f"shared-trunk actors (a different model), N=30: {trunk:.1f} env-steps/s ({share:.0%} in the update),"
            f" {trunk / exact:.2f}x the exact model"
        )
    rss, wall = peak_rss_mib(30, args.rss_updates)
    print(
        f"peak RSS of `confide train --algo as --agents 30 --batch {BATCH} --updates {args.rss_updates}`:"
        f" {rss:,.0f} MiB ({wall:.0f} s)"
    )


if __name__ == "__main__":
    main()
