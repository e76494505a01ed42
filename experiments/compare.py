"""Run a grid of algorithms × seeds (in parallel processes, one torch thread each) and write the report."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path
from typing import Any

from confide.experiments.checkpoint import checkpoint_path, run_is_complete
from confide.experiments.config import config_from_dict, merge
from confide.experiments.report import write_report


def _run_one(job: tuple[dict[str, Any], str]) -> tuple[str, str]:
    """Train one run; an unfinished run with a checkpoint (same config) continues from it."""
    from confide.core.trainer import train

    data, out = job
    config = config_from_dict(data)
    resume = checkpoint_path(out).exists()
    s = train(config, out, progress=False, resume=resume).summary
    score = s["normalized_return"]
    shown = (
        f"normalised return {score:.3f}"
        if score is not None
        else f"collective return {s['collective_return']:.1f}"
    )
    return out, f"{shown} ({s['wall_seconds']:.0f}s{', resumed' if resume else ''})"


def run_comparison(
    base: dict[str, Any], algos: list[str], seeds: int, out: Path, workers: int | None, progress: bool = True
) -> Path:
    """Train every (algorithm, seed) under ``out/<algo>_s<seed>`` and write ``out/report.md``.

    Rerunning into the same ``out`` skips runs already complete and resumes interrupted ones.
    """
    jobs = []
    for algo in algos:
        for seed in range(seeds):
            data = merge(base, {"algo": {"name": algo}, "train": {"seed": seed, "progress": False}})
            config_from_dict(data)
            run_dir = out / f"{algo}_s{seed}"
            if not run_is_complete(run_dir):
                jobs.append((data, str(run_dir)))
    out.mkdir(parents=True, exist_ok=True)
    workers = max(1, workers or min(len(jobs), os.cpu_count() or 1))
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=False)
        task = bar.add_task(f"{len(jobs)} runs", total=len(jobs))
        bar.start()
    try:
        with mp.get_context("spawn").Pool(workers) as pool:
            for path, line in pool.imap_unordered(_run_one, jobs) if jobs else ():
                if bar is not None:
                    bar.console.print(f"{Path(path).name}: {line}")
                    bar.update(task, advance=1)
    finally:
        if bar is not None:
            bar.stop()
    first = config_from_dict(base)
    title = f"{first.env.name} N={first.env.agents}: {', '.join(algos)} × {seeds} seeds"
    return write_report(out, title)
