"""Benchmark: confide's IPPO against BenchMARL's on simple spread with 3 agents, side by side in one run.

Both train IPPO on MPE simple spread, 3 agents, 25-step episodes, 1 torch thread, for the same number
of frames (a frame is one environment step of all agents), whole training loop timed:

- confide: ``ippo`` on ``mpe_spread`` with ``--reward team`` (on MPE IPPO takes the DPO paper's
  settings: 128 → 128 ReLU MLPs on the global state, lr 5e-4, 15 epochs; 5 discrete moves, ``--batch``
  episodes per update);
- BenchMARL 1.5.2 (its defaults, VMAS ``simple_spread``; ``benchmarl_ippo_script.py``) run by the
  Python of a separate venv (``--benchmarl-python``, default ``/tmp/benchmarl_venv/bin/python``; it is
  skipped with a message where that venv is absent). Install it outside the project, never letting pip
  pick another torch: ``python -m venv /tmp/benchmarl_venv; echo torch==2.13.0 > c.txt;
  /tmp/benchmarl_venv/bin/pip install benchmarl vmas -c c.txt``.

The same reward definition: VMAS's simple spread gives every agent ``−N·Σ_l min_i ‖x_i − l‖ − 2·(pairs
of agents overlapping)`` per step (its loop adds the landmark term once per agent); confide's team
mode gives agent ``i`` ``−Σ_l min_i ‖x_i − l‖ − (agents i overlaps)``, so confide's *collective*
return (the sum over agents) equals VMAS's per-agent return, step by step. The table shows that
number per episode, averaged over the last 10% of training batches (BenchMARL: of collected batches).
The simulators differ (VMAS's physics and continuous actions against confide's MPE port and discrete
moves): the returns are on the same scale, not from the same dynamics.

Run: ``confide bench peers`` or ``python -m confide.benchmarks.peers [--frames 300000]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from confide.core.trainer import train
from confide.experiments.config import AlgoConfig, EnvConfig, RunConfig, TrainConfig

HORIZON, AGENTS = 25, 3
SCRIPT = Path(__file__).with_name("benchmarl_ippo_script.py")
DEFAULT_BENCHMARL_PYTHON = Path("/tmp/benchmarl_venv/bin/python")


def confide_ippo(frames: int, batch: int, seed: int) -> dict[str, float]:
    """Frames/s and returns of confide's IPPO on ``mpe_spread`` (3 agents, team reward)."""
    updates = max(1, frames // (HORIZON * batch))
    config = RunConfig(
        env=EnvConfig(name="mpe_spread", agents=AGENTS, reward="team"),
        algo=AlgoConfig(name="ippo"),
        train=TrainConfig(updates=updates, batch=batch, seed=seed, threads=1, progress=False),
    )
    result = train(config)  # wall_seconds: the training loop, not the summary's floor estimate
    curve = [m["collective_return"] for m in result.metrics]
    return _row(result.summary["env_steps"], result.summary["wall_seconds"], curve)


def benchmarl_ippo(python: Path, frames: int, seed: int) -> dict[str, float]:
    """Frames/s and returns of BenchMARL's IPPO, from its own venv's Python."""
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            [str(python), str(SCRIPT), str(frames), str(seed), out],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"BenchMARL exited with {done.returncode}: {tail}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return _row(result["frames"], result["seconds"], result["returns"])


def _row(frames: int, seconds: float, curve: list[float]) -> dict[str, float]:
    tail = curve[-max(1, len(curve) // 10) :]
    return {
        "frames": frames,
        "seconds": seconds,
        "frames_per_s": frames / seconds,
        "first_return": float(curve[0]),
        "final_return": float(np.mean(tail)),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=60_000, help="frames per library (the issue: 300000)")
    p.add_argument("--batch", type=int, default=32, help="confide's episodes per update")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--benchmarl-python", type=Path, default=DEFAULT_BENCHMARL_PYTHON)
    p.add_argument("--confide-frames", type=int, help="also a longer confide run of this many frames")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print(f"IPPO, simple spread, {AGENTS} agents, {HORIZON}-step episodes, 1 thread, seed {args.seed}")
    print("return: per episode, sum over agents in confide's team mode = per agent in VMAS (docstring)")
    print("  library           frames   seconds   frames/s   first return   final return (last 10%)")
    rows: dict[str, dict[str, float]] = {}

    def measured(name: str, row: dict[str, float]) -> None:
        """Print each row as soon as it is measured: a long peer run stopped later loses nothing."""
        rows[name] = row
        print(
            f"  {name:15s} {row['frames']:8,d} {row['seconds']:9.1f} {row['frames_per_s']:10,.0f}"
            f" {row['first_return']:14.1f} {row['final_return']:14.1f}",
            flush=True,
        )

    measured("confide", confide_ippo(args.frames, args.batch, args.seed))
    if args.confide_frames:
        measured(
            f"confide, {args.confide_frames // 1000}k",
            confide_ippo(args.confide_frames, args.batch, args.seed),
        )
    if args.benchmarl_python.exists():
        measured("BenchMARL 1.5.2", benchmarl_ippo(args.benchmarl_python, args.frames, args.seed))
    else:
        print(f"BenchMARL skipped: no venv at {args.benchmarl_python} (see this module's docstring)")
    if "BenchMARL 1.5.2" in rows:
        ours, theirs = rows["confide"], rows["BenchMARL 1.5.2"]
        print(f"confide / BenchMARL frames/s: {ours['frames_per_s'] / theirs['frames_per_s']:.1f}x")


if __name__ == "__main__":
    main()
