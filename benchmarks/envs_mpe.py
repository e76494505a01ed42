"""Benchmark: environment steps per second of the batched MPE tasks.

Prints, from one run on this machine, for simple spread, line control and circle control (5 agents,
both reward modes) at batch 1, 32 and 256: episode-steps per second (one batched ``step`` of ``B``
episodes counts ``B``), the best of a few full 25-step episodes of uniform-random actions (action
drawing and reset excluded), and each batch size's speed-up over batch 1.

Run: ``python -m confide.benchmarks.envs_mpe``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from confide.envs.mpe_tasks import REWARD_MODES, CircleControl, LineControl, MpeTask, SimpleSpread

TASKS: dict[str, type[MpeTask]] = {"spread": SimpleSpread, "line": LineControl, "circle": CircleControl}


def env_steps_per_second(cls: type[MpeTask], batch: int, reward_mode: str, repeats: int = 5) -> float:
    """Best-of-``repeats`` episode-steps per second over a full episode of random actions."""
    env = cls(5, batch, reward_mode=reward_mode)
    rng = np.random.default_rng(0)
    best = float("inf")
    for _ in range(repeats):
        env.reset(rng)
        actions = rng.integers(0, env.n_actions, size=(env.horizon, batch, env.n_agents))
        start = time.perf_counter()
        for t in range(env.horizon):
            env.step(actions[t])
        best = min(best, time.perf_counter() - start)
    return env.horizon * batch / best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(
        f"{'task':<8} {'mode':<8} " + " ".join(f"{f'B={b} steps/s':>16}" for b in args.batches) + "  speed-up"
    )
    for name, cls in TASKS.items():
        for mode in REWARD_MODES:
            rates = [env_steps_per_second(cls, b, mode, args.repeats) for b in args.batches]
            ratios = " ".join(f"{r / rates[0]:.0f}x" for r in rates[1:])
            print(f"{name:<8} {mode:<8} " + " ".join(f"{r:>16,.0f}" for r in rates) + f"  {ratios}")


if __name__ == "__main__":
    main()
