"""Benchmark: stepping speed of C. Predation, the matrix games, Exchange, C. Navigation and the random
stochastic game.

Prints, from one run on this machine, env-steps per second (an env-step is one step of all agents in
one episode: ``batch × steps / seconds``) at batch 1, 32 and 256 for each environment, the best of
``--repeats`` timings, with uniformly random actions drawn beforehand so that only ``step`` is timed
(resets at the horizon are included). ``--clock cpu`` times this process's CPU seconds instead of wall
seconds, which stays meaningful when other jobs share the cores. Also prints how long the exact optimum
and floor of each environment take to compute the first time.

Run: ``python -m confide.benchmarks.envs_small [--clock cpu]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from confide.envs.exchange import Exchange
from confide.envs.matrix_games import MATRIX_GAMES, MatrixGameEnv
from confide.envs.navigation import CooperativeNavigation
from confide.envs.predation import CooperativePredation
from confide.envs.stochastic_game import RandomStochasticGame

ENVS: dict[str, Callable[..., object]] = {
    "predation (N=8)": lambda batch_size: CooperativePredation(8, batch_size),
    "matrix game 1": lambda batch_size: MatrixGameEnv(MATRIX_GAMES[0], batch_size),
    "exchange": lambda batch_size: Exchange(3, batch_size),
    "navigation": lambda batch_size: CooperativeNavigation(3, batch_size),
    "stochastic_game": lambda batch_size: RandomStochasticGame(6, batch_size),
}


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def steps_per_second(
    make: Callable[..., object],
    batch_size: int,
    steps: int,
    seed: int = 0,
    repeats: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Episode-steps per second of ``steps`` batched steps (``batch_size × steps`` episode-steps), the
    best of ``repeats`` timings on ``clock``."""
    env = make(batch_size=batch_size)
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, env.n_actions, size=(steps, batch_size, env.n_agents))
    best = float("inf")
    for _ in range(repeats):
        env.reset(rng)
        start = clock()
        for t, a in enumerate(actions):
            if t and t % env.horizon == 0 or env.horizon == 1:
                env.reset(rng)
            env.step(a)
        best = min(best, clock() - start)
    return batch_size * steps / max(best, 1e-9)


def solve_seconds(make: Callable[..., object]) -> tuple[float, float, float, float]:
    """``(optimum, seconds, floor, seconds)`` of a fresh environment's first computation."""
    env = make(batch_size=1)
    start = time.perf_counter()
    optimum = env.optimal_collective_return()
    middle = time.perf_counter()
    floor, _ = env.floor_collective_return()
    return optimum, middle - start, floor, time.perf_counter() - middle


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600, help="batched steps timed per (env, batch)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per (env, batch); the best is kept")
    parser.add_argument(
        "--clock", choices=tuple(CLOCKS), default="wall", help="wall or this process's CPU time"
    )
    parser.add_argument("--no-solve", action="store_true", help="skip timing the optimum and floor")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be >= 1")
    batches = (1, 32, 256)
    clock = CLOCKS[args.clock]
    print(
        f"env-steps/s ({args.steps} batched steps, random actions, best of {args.repeats}, {args.clock} clock)"
    )
    print(f"{'env':<18}" + "".join(f"{'B=' + str(b):>14}" for b in batches))
    for name, make in ENVS.items():
        rates = [steps_per_second(make, b, args.steps, repeats=args.repeats, clock=clock) for b in batches]
        print(f"{name:<18}" + "".join(f"{r:>14,.0f}" for r in rates))
    if not args.no_solve:
        print("\nfirst computation of the exact optimum and floor (collective returns)")
        for name, make in ENVS.items():
            optimum, t_opt, floor, t_floor = solve_seconds(make)
            print(
                f"{name:<18} optimum {optimum:>12.4f} ({t_opt:5.2f} s)   floor {floor:>12.4f} ({t_floor:5.2f} s)"
            )


if __name__ == "__main__":
    main()
