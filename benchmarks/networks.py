"""Benchmark: batched actor banks against a per-module reference, and end-to-end training throughput.

Prints, from one run on this machine (1 torch thread unless --threads):
- for N = 8 and 30, the time of one PPO-style actor update of all N² heads (N → 128 → 64 → 2, 960
  samples: forward, loss, backward, Adam step) with confide's ``StackedMLP`` and with one ``nn.Module``
  per head looped in Python, and their ratio;
- the same for rollout inference of the N own-policy heads on 32 states;
- AS training throughput on C. Predation (agent-steps per second, updates included).

Run: ``python -m confide.benchmarks.networks`` (or ``make bench``).
"""

from __future__ import annotations

import argparse
import time

import torch

from confide.core.networks import StackedMLP, reference_modules


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def actor_update_times(n: int, samples: int = 960, repeats: int = 3) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(0)
    bank = StackedMLP(n * n, (n, 128, 64, 2), gen)
    refs = reference_modules(bank)
    x = torch.randn(samples, n, generator=gen)
    adv = torch.randn(n * n, samples, generator=gen)
    opt = torch.optim.Adam(bank.group_parameters(), lr=1e-4)
    ref_opt = torch.optim.Adam(refs.parameters(), lr=1e-4)

    def batched() -> None:
        opt.zero_grad()
        logp = torch.log_softmax(bank(x), -1)[..., 0]
        (-(logp * adv).mean(dim=1)).sum().backward()
        opt.step()

    def reference() -> None:
        ref_opt.zero_grad()
        total = 0.0
        for g, module in enumerate(refs):
            logp = torch.log_softmax(module(x), -1)[:, 0]
            total = total + (-(logp * adv[g]).mean())
        total.backward()
        ref_opt.step()

    return _time(batched, repeats), _time(reference, repeats)


def inference_times(n: int, states: int = 32, repeats: int = 20) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(0)
    bank = StackedMLP(n * n, (n, 128, 64, 2), gen)
    refs = reference_modules(bank)
    own = torch.arange(n) * n + torch.arange(n)
    x = torch.randn(states, n, generator=gen)

    @torch.no_grad()
    def batched() -> None:
        bank(x, own)

    @torch.no_grad()
    def reference() -> None:
        torch.stack([refs[int(g)](x) for g in own])

    return _time(batched, repeats), _time(reference, repeats)


def training_throughput(n: int, updates: int, batch: int) -> float:
    from confide.core.trainer import train
    from confide.experiments.config import AlgoConfig, EnvConfig, RunConfig, TrainConfig

    cfg = RunConfig(
        env=EnvConfig(agents=n), algo=AlgoConfig(name="as"), train=TrainConfig(updates=updates, batch=batch)
    )
    t = time.perf_counter()
    result = train(cfg)
    wall = time.perf_counter() - t
    return result.summary["env_steps"] * n / wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sizes", default="8,30")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print("actor update of all N² heads (960 samples, forward+backward+Adam):")
    for n in [int(s) for s in args.sizes.split(",")]:
        fast, slow = actor_update_times(n)
        flops = 3 * 2 * 960 * n * n * (n * 128 + 128 * 64 + 64 * 2)
        print(
            f"  N={n:3d}: batched {fast * 1e3:8.1f} ms  per-module {slow * 1e3:8.1f} ms  ratio {slow / fast:5.2f}x"
            f"  ({flops / fast / 1e9:.1f} GFLOP/s batched)"
        )
    print("rollout inference of the N own heads (32 states):")
    for n in [int(s) for s in args.sizes.split(",")]:
        fast, slow = inference_times(n)
        print(
            f"  N={n:3d}: batched {fast * 1e6:8.1f} µs  per-module {slow * 1e6:8.1f} µs  ratio {slow / fast:5.2f}x"
        )
    for n, updates in ((8, 20), (30, 3)):
        rate = training_throughput(n, updates, 16)
        print(
            f"AS training on C. Predation N={n}, batch 16: {rate:,.0f} agent-steps/s ({rate / n:,.0f} env-steps/s)"
        )


if __name__ == "__main__":
    main()
