"""``python -m confide.benchmarks [name ...]``: run the benchmarks, each printing ratios measured in
its own single run. Without names: all of them (several minutes on 1 thread; run on a quiet machine)."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("networks", "envs_small", "envs_grid", "envs_mpe", "channel_layers")


def main(argv: list[str] | None = None) -> int:
    names = list(argv if argv is not None else sys.argv[1:]) or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(f"confide.benchmarks.{name}").main([])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
