"""Benchmark: DPO's networks on the stochastic game, first layer as a product against as a lookup.

The stochastic game's state is a one-hot of 100 states, so ``StackedMLP(one_hot_input=True)`` reads
row ``s`` of the first weight instead of multiplying by the one-hot (same parameters, same forward
values bitwise; ``tests/test_one_hot_input.py``). This prints, from one run on this machine, the time of
one PPO epoch of DPO's 6 agents on one update's batch (16 episodes × 100 steps = 1,600 samples): actor
(100 → 128 → 128 → 5) and critic (100 → 128 → 128 → 1) forward, a loss, backward, per-agent clipping
and Adam, for both first layers, and the ratio product / lookup (median of paired interleaved rounds;
CPU time in brackets). A DPO update is 15 such epochs plus the rollout.

Run: ``python -m confide.benchmarks.one_hot_lookup`` (or ``confide bench one_hot_lookup``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from confide.benchmarks.networks import interleaved, ratios
from confide.core.population import NetworkSizes, Population, PopulationOptimiser

AGENTS, STATES, ACTIONS, SAMPLES = 6, 100, 5, 1600
SIZES = NetworkSizes((128, 128), (128, 128))


def epoch(one_hot: bool) -> Callable[[], None]:
    """One actor and one critic step of all agents on ``SAMPLES`` one-hot states."""
    gen = torch.Generator().manual_seed(0)
    sizes = NetworkSizes(SIZES.actor_hidden, SIZES.critic_hidden, one_hot_states=one_hot)
    pop = Population(AGENTS, STATES, ACTIONS, 1, sizes, gen)
    opt = PopulationOptimiser(pop, 5e-4, 5e-4, max_grad_norm=0.5)
    states = torch.nn.functional.one_hot(torch.randint(0, STATES, (SAMPLES,), generator=gen), STATES).float()
    actions = torch.randint(0, ACTIONS, (AGENTS, SAMPLES, 1), generator=gen)
    advantages = torch.randn(AGENTS, SAMPLES, generator=gen)
    targets = torch.randn(AGENTS, SAMPLES, generator=gen)

    def run() -> None:
        logp = pop.own_logits(states).log_softmax(-1).gather(-1, actions).squeeze(-1)
        opt.step_actor(-(logp.exp() * advantages).mean(dim=1).sum())
        opt.step_critic((pop.values(states) - targets).pow(2).mean(dim=1).sum())

    return run


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    wall = time.perf_counter()
    times = interleaved({"product": epoch(False), "lookup": epoch(True)}, args.repeats)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print(f"one PPO epoch of DPO's {AGENTS} agents on {SAMPLES} stochastic-game states (actor + critic)")
    for name, t in times.items():
        print(
            f"  first layer as a {name:8s} {1e3 * t.median():7.1f} ms  ({1e3 * t.median(cpu=True):.1f} ms CPU)"
        )
    print(f"  product / lookup: {ratios(times['product'], times['lookup'])}")
    print(f"benchmark wall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
