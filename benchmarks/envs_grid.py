"""Benchmark: batched Cleanup and Harvest throughput, with and without egocentric observations.

Prints env-steps per second (one env-step = one episode advanced one step, so a batched step of
``B`` episodes counts ``B``) at batch 1, 32 and 256, for uniformly random actions with 5 agents,
stepping only (``step``) and stepping plus building every agent's 15×15 view (``observations()``).
Each figure is the best of ``--repeats`` runs of one 100-step episode batch (reset excluded).

Run: ``python -m confide.benchmarks.envs_grid``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from confide.envs.cleanup import Cleanup
from confide.envs.harvest import Harvest

BATCHES = (1, 32, 256)


def steps_per_second(env_cls, batch: int, observations: bool, repeats: int) -> float:
    env = env_cls(5, batch)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, env.n_actions, size=(env.horizon, batch, env.n_agents))
    best = float("inf")
    for _ in range(repeats):
        env.reset(rng)
        start = time.perf_counter()
        for a in actions:
            env.step(a)
            if observations:
                env.observations()
        best = min(best, time.perf_counter() - start)
    return env.horizon * batch / best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"{'env':<8} {'batch':>5} {'steps/s':>12} {'+ views/s':>12} {'ratio':>6}")
    for env_cls in (Cleanup, Harvest):
        for batch in BATCHES:
            bare = steps_per_second(env_cls, batch, False, args.repeats)
            views = steps_per_second(env_cls, batch, True, args.repeats)
            print(f"{env_cls.__name__:<8} {batch:>5} {bare:>12,.0f} {views:>12,.0f} {bare / views:>6.1f}")


if __name__ == "__main__":
    main()
