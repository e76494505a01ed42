"""Run a grid of algorithms × seeds (in parallel processes, one torch thread each) and write the report."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path
from typing import Any

from confide.experiments.config import config_from_dict, merge
from confide.experiments.report import write_report


def _run_one(job: tuple[dict[str, Any], str]) -> tuple[str, float, float]:
    from confide.core.trainer import train

    data, out = job
    config = config_from_dict(data)
    result = train(config, out, progress=False)
    return out, result.summary["normalized_return"], result.summary["wall_seconds"]


def run_comparison(
    base: dict[str, Any], algos: list[str], seeds: int, out: Path, workers: int | None, progress: bool = True
) -> Path:
    """Train every (algorithm, seed) under ``out/<algo>_s<seed>`` and write ``out/report.md``."""
    jobs = []
    for algo in algos:
        for seed in range(seeds):
            data = merge(base, {"algo": {"name": algo}, "train": {"seed": seed, "progress": False}})
            config_from_dict(data)
            jobs.append((data, str(out / f"{algo}_s{seed}")))
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=False)
        task = bar.add_task(f"{len(jobs)} runs", total=len(jobs))
        bar.start()
    try:
        with mp.get_context("spawn").Pool(workers) as pool:
            for path, norm, wall in pool.imap_unordered(_run_one, jobs):
                if bar is not None:
                    bar.console.print(f"{Path(path).name}: normalised return {norm:.3f} ({wall:.0f}s)")
                    bar.update(task, advance=1)
    finally:
        if bar is not None:
            bar.stop()
    first = config_from_dict(base)
    title = f"{first.env.name} N={first.env.agents}: {', '.join(algos)} × {seeds} seeds"
    return write_report(out, title)
