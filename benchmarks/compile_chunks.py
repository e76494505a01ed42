"""Benchmark: ``torch.compile`` of the chunk kernels against confide's hand-written eager path.

Why confide has no compiled path: the issue measured ``torch.compile`` of per-agent banks in chunks of
4 heads as the fastest option of its time (N = 30: ~1.45 s against ~1.9 s eager, 1 thread). This
prints, from one run, the forward + backward of all N² actors (N → 128 → 64 → 2, 960 samples; no loss,
no optimiser) with ``StackedMLP``'s eager chunked autograd function and with the same chunks done by
inductor-compiled forward and backward functions (activations kept per chunk, default mode, static
shapes), plus the compile time (cold, or less when inductor's on-disk cache is warm).

Run: ``python -m confide.benchmarks.compile_chunks [--sizes 8,30] [--chunk 4]`` (takes 1–3 minutes).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import Tensor

from confide.core.networks import StackedMLP

SAMPLES = 960


def chunk_forward(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, w3: Tensor, b3: Tensor):
    h1 = torch.relu(torch.baddbmm(b1.unsqueeze(1), x.expand(w1.shape[0], -1, -1), w1))
    h2 = torch.relu(torch.baddbmm(b2.unsqueeze(1), h1, w2))
    return torch.baddbmm(b3.unsqueeze(1), h2, w3), h1, h2


def chunk_backward(x: Tensor, w2: Tensor, w3: Tensor, h1: Tensor, h2: Tensor, g: Tensor):
    tb = torch.ops.aten.threshold_backward
    g2 = tb(torch.bmm(g, w3.transpose(1, 2)), h2, 0.0)
    g1 = tb(torch.bmm(g2, w2.transpose(1, 2)), h1, 0.0)
    gw1 = torch.bmm(x.T.expand(g1.shape[0], -1, -1), g1)
    return (
        gw1,
        g1.sum(1),
        torch.bmm(h1.transpose(1, 2), g2),
        g2.sum(1),
        torch.bmm(h2.transpose(1, 2), g),
        g.sum(1),
    )


def compare(n: int, chunk: int, repeats: int) -> tuple[float, float, float]:
    """(eager seconds, compiled seconds, compile seconds) per forward + backward of the N² actors."""
    gen = torch.Generator().manual_seed(0)
    groups = n * n
    bank = StackedMLP(groups, (n, 128, 64, 2), gen, chunk_groups=chunk)
    params = bank.group_parameters()
    x = torch.randn(SAMPLES, n, generator=gen)
    grad_out = torch.randn(groups, SAMPLES, 2, generator=gen)
    w1, w2, w3, b1, b2, b3 = (p.detach() for p in params)
    forward = torch.compile(chunk_forward, dynamic=False)
    backward = torch.compile(chunk_backward, dynamic=False)
    start = time.perf_counter()
    _, h1, h2 = forward(x, w1[:chunk], b1[:chunk], w2[:chunk], b2[:chunk], w3[:chunk], b3[:chunk])
    backward(x, w2[:chunk], w3[:chunk], h1, h2, grad_out[:chunk])
    compile_seconds = time.perf_counter() - start

    def eager() -> None:
        torch.autograd.grad(bank(x), params, grad_out)

    def compiled() -> None:
        saved = []
        for s in range(0, groups, chunk):
            c = slice(s, s + chunk)
            saved.append(forward(x, w1[c], b1[c], w2[c], b2[c], w3[c], b3[c]))
        for (_, h1, h2), s in zip(saved, range(0, groups, chunk), strict=True):
            c = slice(s, s + chunk)
            backward(x, w2[c], w3[c], h1, h2, grad_out[c])

    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    eager(), compiled()
    for _ in range(repeats):
        for name, fn in (("eager", eager), ("compiled", compiled)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["eager"]), statistics.median(times["compiled"]), compile_seconds


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sizes", default="8,30")
    p.add_argument("--chunk", type=int, default=4, help="groups per compiled chunk (the issue used 4)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); forward + backward of N² actors")
    for n in [int(s) for s in args.sizes.split(",")]:
        eager, compiled, compile_seconds = compare(n, args.chunk, repeats=5 if n <= 16 else 3)
        print(
            f"  N={n:3d}, chunks of {args.chunk}: eager {eager * 1e3:8.1f} ms  compiled {compiled * 1e3:8.1f} ms"
            f"  (compiled/eager {compiled / eager:4.2f}; compile {compile_seconds:5.1f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
