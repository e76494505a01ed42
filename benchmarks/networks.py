"""Benchmark: confide's stacked actor banks against a per-module reference, from one run.

Prints, from one run on this machine (1 torch thread unless ``--threads``):

- the FLOP limit: GFLOP/s of a large square matmul (best of several, measured before and after the
  update table) and of batched matmul at the 128 → 64 layer shape;
- for each N, the update of all N² AS/SS actors (N → 128 → 64 → 2, ReLU) on one PPO minibatch of 960
  samples: forward, a clipped PPO surrogate per head, backward, per-agent gradient clipping, Adam step.
  confide (``Population`` + ``PopulationOptimiser``) against a per-module reference (one ``nn.Module``
  per head looped in Python, one Adam per agent), the ratio reference / confide (median of paired
  runs), and confide's rate as a fraction of the large-matmul peak. FLOPs counted are the matrix
  products that must be done: per sample and head 2·(2·N·128 + 3·128·64 + 3·64·2) (layer 1 needs no
  input gradient);
- rollout inference of all N² heads and of the N own heads on 32 states, confide against per-module;
- the update with the shared-trunk variant (``NetworkSizes(shared_trunk=True)``, a different model).

End-to-end training against the FLOP limit is ``end_to_end.py``; growth with N and batch ``scaling.py``.

Times are medians of interleaved rounds (wall clock; CPU time in brackets, which leaves out time spent
waiting for a core on a shared machine). ``torch.compile`` is compared in ``compile_chunks.py``.

Run: ``python -m confide.benchmarks.networks`` (or ``make bench``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from confide.core.networks import reference_modules
from confide.core.population import NetworkSizes, Population, PopulationOptimiser

SAMPLES = 960  # one PPO minibatch (AS/SS C. Predation)
HIDDEN = (128, 64)
ACTIONS = 2
CLIP_EPS, MAX_GRAD_NORM, LR = 0.2, 0.5, 1e-4


class Times:
    """Wall and CPU seconds of repeated calls (CPU time excludes time this process waited for a core)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def median(self, cpu: bool = False) -> float:
        return statistics.median(self.cpu if cpu else self.wall)

    def best(self, cpu: bool = False) -> float:
        return min(self.cpu if cpu else self.wall)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, Times]:
    """Times of each function: one warm-up each, then ``repeats`` rounds calling each in turn."""
    for fn in fns.values():
        fn()
    times = {name: Times() for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].cpu.append(time.process_time() - cpu)
            times[name].wall.append(time.perf_counter() - wall)
    return times


def paired_ratio(slow: Times, fast: Times, cpu: bool = False) -> float:
    """Median over rounds of slow/fast time: robust to load that drifts between rounds."""
    pairs = zip(slow.cpu, fast.cpu, strict=True) if cpu else zip(slow.wall, fast.wall, strict=True)
    return statistics.median(s / f for s, f in pairs)


def ratios(slow: Times, fast: Times) -> str:
    return f"{paired_ratio(slow, fast):4.2f}x ({paired_ratio(slow, fast, cpu=True):4.2f}x)"


def matmul_peak(size: int = 2048, repeats: int = 5) -> Times:
    """Times of a large square float32 matmul (``2·size³`` FLOPs)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    return interleaved({"mm": lambda: torch.mm(a, b, out=out)}, repeats)["mm"]


def layer_shape_rate(groups: int = 64, repeats: int = 5) -> float:
    """Best GFLOP/s of batched matmul [960, 128] · [128, 64] over ``groups`` groups."""
    a, b = torch.randn(groups, SAMPLES, HIDDEN[0]), torch.randn(groups, HIDDEN[0], HIDDEN[1])
    times = interleaved({"bmm": lambda: torch.bmm(a, b)}, repeats)["bmm"]
    return 2 * groups * SAMPLES * HIDDEN[0] * HIDDEN[1] / times.best() / 1e9


def update_flops(n: int, samples: int = SAMPLES) -> float:
    """Matmul FLOPs of one forward + backward of the N² actors (no input gradient at layer 1)."""
    h1, h2 = HIDDEN
    return 2 * samples * n * n * (2 * n * h1 + 3 * h1 * h2 + 3 * h2 * ACTIONS)


class _Batch:
    """A fixed minibatch: states [M, N], joint actions [M, N], old log-probs and advantages [N, N, M]."""

    def __init__(self, n: int, samples: int, gen: torch.Generator) -> None:
        self.states = torch.randn(samples, n, generator=gen)
        self.actions = torch.randint(ACTIONS, (samples, n), generator=gen)
        self.old_logp = torch.log(torch.rand(n, n, samples, generator=gen) * 0.8 + 0.1)
        self.adv = torch.randn(n, n, samples, generator=gen)


def _surrogate(logp_a: Tensor, old_logp: Tensor, adv: Tensor) -> Tensor:
    ratio = (logp_a - old_logp).exp()
    return -torch.minimum(ratio * adv, ratio.clamp(1 - CLIP_EPS, 1 + CLIP_EPS) * adv).mean(dim=-1)


def confide_update(pop: Population, batch: _Batch) -> Callable[[], None]:
    """One actor update of all heads through ``Population``/``PopulationOptimiser``."""
    opt = PopulationOptimiser(pop, LR, LR, MAX_GRAD_NORM)
    n = pop.n_agents
    act = batch.actions.T.reshape(1, n, -1, 1).expand(n, n, -1, 1)  # head (i, j) scores a_j

    def step() -> None:
        logp = torch.log_softmax(pop.all_logits(batch.states), dim=-1).gather(-1, act).squeeze(-1)
        opt.step_actor(_surrogate(logp, batch.old_logp, batch.adv).sum())

    return step


def reference_update(pop: Population, batch: _Batch) -> Callable[[], None]:
    """The same update with one ``nn.Module`` per head, Python loops and one Adam per agent."""
    n = pop.n_agents
    modules = reference_modules(pop.policy)
    agents = [nn.ModuleList(modules[i * n : (i + 1) * n]) for i in range(n)]
    opts = [torch.optim.Adam(agent.parameters(), lr=LR) for agent in agents]

    def step() -> None:
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        total = torch.zeros(())
        for i, agent in enumerate(agents):
            for j, module in enumerate(agent):
                logp = torch.log_softmax(module(batch.states), dim=-1)
                logp_a = logp.gather(-1, batch.actions[:, j : j + 1]).squeeze(-1)
                total = total + _surrogate(logp_a, batch.old_logp[i, j], batch.adv[i, j])
        total.backward()
        for agent, opt in zip(agents, opts, strict=True):
            nn.utils.clip_grad_norm_(agent.parameters(), MAX_GRAD_NORM)
            opt.step()

    return step


def _population(n: int, shared_trunk: bool = False, seed: int = 0) -> tuple[Population, _Batch]:
    gen = torch.Generator().manual_seed(seed)
    sizes = NetworkSizes(HIDDEN, HIDDEN, shared_trunk=shared_trunk)
    return Population(n, n, ACTIONS, n, sizes, gen, critics=False), _Batch(n, SAMPLES, gen)


def update_times(n: int, repeats: int) -> dict[str, Times]:
    pop, batch = _population(n)
    ref_pop, _ = _population(n)  # same weights: the reference copies them module by module
    return interleaved(
        {"confide": confide_update(pop, batch), "reference": reference_update(ref_pop, batch)}, repeats
    )


def inference_times(n: int, states: int = 32, repeats: int = 15) -> dict[str, Times]:
    pop, _ = _population(n)
    refs = reference_modules(pop.policy)
    x = torch.randn(states, n, generator=torch.Generator().manual_seed(1))
    own = [i * n + i for i in range(n)]

    @torch.no_grad()
    def all_heads() -> None:
        pop.all_logits(x)

    @torch.no_grad()
    def all_heads_ref() -> None:
        torch.stack([m(x) for m in refs])

    @torch.no_grad()
    def own_heads() -> None:
        pop.own_logits(x)

    @torch.no_grad()
    def own_heads_ref() -> None:
        torch.stack([refs[g](x) for g in own])

    fns = {"all": all_heads, "all_ref": all_heads_ref, "own": own_heads, "own_ref": own_heads_ref}
    return interleaved(fns, repeats)


def shared_trunk_times(n: int, repeats: int) -> dict[str, Times]:
    pop, batch = _population(n)
    trunk_pop, trunk_batch = _population(n, shared_trunk=True)
    fns = {"separate": confide_update(pop, batch), "shared_trunk": confide_update(trunk_pop, trunk_batch)}
    return interleaved(fns, repeats)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sizes", default="2,4,8,16,20,30,50", help="N values of the update table")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    wall = time.perf_counter()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    peaks = [matmul_peak()]
    mm_flops = 2 * 2048**3
    print(
        f"large matmul (2048²): {mm_flops / peaks[0].best() / 1e9:.1f} GFLOP/s;"
        f"  batched [960,128]·[128,64]: {layer_shape_rate():.1f} GFLOP/s"
    )
    print(f"\nactor update of all N² heads ({SAMPLES} samples: forward, PPO surrogate, backward, clip, Adam)")
    print("  medians of interleaved runs; ratio = reference / confide; GFLOP/s from wall (CPU) time")
    print("    N   GFLOP   confide ms  reference ms   ratio (CPU)     confide GFLOP/s")
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        t = update_times(n, repeats=5 if n <= 20 else 3)
        confide, reference = t["confide"], t["reference"]
        rows.append((n, confide))
        print(
            f"  {n:3d}  {update_flops(n) / 1e9:6.2f}  {confide.median() * 1e3:11.1f}  {reference.median() * 1e3:12.1f}"
            f"  {ratios(reference, confide)}  {update_flops(n) / confide.median() / 1e9:6.1f}"
            f" ({update_flops(n) / confide.median(cpu=True) / 1e9:.1f})",
            flush=True,
        )
    peaks.append(matmul_peak())
    peak_wall = mm_flops / min(p.best() for p in peaks) / 1e9
    peak_cpu = mm_flops / min(p.best(cpu=True) for p in peaks) / 1e9
    print(
        f"large matmul again: {mm_flops / peaks[1].best() / 1e9:.1f} GFLOP/s."
        f" FLOP limit (best of both): {peak_wall:.1f} GFLOP/s wall, {peak_cpu:.1f} CPU"
    )
    print("  confide's fraction of the limit, wall (CPU):")
    print(
        "  "
        + ", ".join(
            f"N={n} {update_flops(n) / t.median() / 1e9 / peak_wall:.0%}"
            f" ({update_flops(n) / t.median(cpu=True) / 1e9 / peak_cpu:.0%})"
            for n, t in rows
        )
    )
    print("\nrollout inference on 32 states (confide vs per-module µs, ratio wall (CPU))")
    for n in (8, 30):
        t = inference_times(n)
        med = {k: v.median() * 1e6 for k, v in t.items()}
        print(
            f"  N={n:3d}: all N² heads {med['all']:8.0f} vs {med['all_ref']:8.0f}"
            f"  {ratios(t['all_ref'], t['all'])}"
            f"   own N heads {med['own']:6.0f} vs {med['own_ref']:6.0f}  {ratios(t['own_ref'], t['own'])}",
            flush=True,
        )
    n = 30
    t = shared_trunk_times(n, repeats=3)
    trunk, separate = t["shared_trunk"].median(), t["separate"].median()
    print(
        f"\nshared-trunk variant (different model), N={n} update: {trunk * 1e3:.1f} ms"
        f" vs {separate * 1e3:.1f} ms separate heads ({ratios(t['separate'], t['shared_trunk'])} faster)"
    )
    print(f"\nbenchmark wall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
