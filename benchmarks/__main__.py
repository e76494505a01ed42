"""``confide bench [name ...]`` or ``python -m confide.benchmarks [name ...]``: run the benchmarks, each
printing ratios measured in its own single run. Without names: the default set (several minutes on 1
thread; run on a quiet machine). ``soak`` and ``peers`` run for many minutes and only when named."""

from __future__ import annotations

import importlib
import sys

from confide.experiments.config import ConfigError

DEFAULT = (
    "networks",
    "one_hot_lookup",
    "end_to_end",
    "envs_small",
    "envs_grid",
    "envs_mpe",
    "channel_layers",
)
BENCHMARKS = (*DEFAULT, "compile_chunks", "scaling", "peers", "soak")


def check_names(names: list[str]) -> list[str]:
    """The benchmarks to run (the default set for none); ConfigError on an unknown name."""
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ConfigError(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    return list(names) or list(DEFAULT)


def run_benchmarks(names: list[str]) -> int:
    """Run each benchmark's ``main`` with its default arguments; returns 0."""
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(f"confide.benchmarks.{name}").main([])
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        names = check_names(list(argv if argv is not None else sys.argv[1:]))
    except ConfigError as err:
        print(f"confide: error: {err}", file=sys.stderr)
        return 2
    return run_benchmarks(names)


if __name__ == "__main__":
    raise SystemExit(main())
