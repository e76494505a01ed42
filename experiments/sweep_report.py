"""A sweep's report: one table row per grid point, and for each swept numeric parameter a plot of the
final score against it, one line per algorithm, the interquartile mean (IQM) over seeds with a 95%
stratified-bootstrap band (``experiments.stats``).

The score is the normalised return (R − R_floor) / (R_opt − R_floor), R the mean collective return over
the last 10% of updates; for an environment with no known optimum it is the raw collective return (a
table row marks it, a plot says so on its axis). Only complete runs count; missing seeds are listed.
When other keys are swept besides the parameter and ``algo.name``, each combination of their values
gets its own panel.
"""

from __future__ import annotations

import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from confide.experiments.checkpoint import run_is_complete  # noqa: E402
from confide.experiments.config import config_from_dict  # noqa: E402
from confide.experiments.html_report import write_html  # noqa: E402
from confide.experiments.io import atomic_write_bytes  # noqa: E402
from confide.experiments.privacy_utility import (  # noqa: E402
    epsilon_table,
    has_privacy,
    plot_score_against_epsilon,
)
from confide.experiments.provenance import code_note, code_spread  # noqa: E402
from confide.experiments.report import pairwise_cells  # noqa: E402
from confide.experiments.stats import iqm_ci, probability_of_improvement_ci  # noqa: E402
from confide.experiments.sweep import Sweep, expand, format_value, points  # noqa: E402


@dataclass
class PointResult:
    """One grid point: its values, algorithm, and the summaries of its complete runs."""

    pid: str
    point: dict[str, Any]
    algo: str
    summaries: list[dict[str, Any]]
    missing: list[int]  # seeds without a complete run

    @property
    def normalised(self) -> bool:
        return all(s["normalized_return"] is not None for s in self.summaries)

    @property
    def scores(self) -> np.ndarray:
        return np.array([score(s) for s in self.summaries], dtype=float)


def score(summary: dict[str, Any]) -> float:
    """The normalised return, or the collective return where no optimum is known."""
    norm = summary["normalized_return"]
    return float(summary["collective_return"] if norm is None else norm)


def load_points(out: Path, sweep: Sweep) -> list[PointResult]:
    runs = dict(expand(sweep))
    results = []
    for pid, point in points(sweep):
        summaries, missing = [], []
        for seed in sweep.seeds:
            run_dir = out / f"{pid}/s{seed}"
            if run_is_complete(run_dir):
                summaries.append(json.loads((run_dir / "summary.json").read_text()))
            else:
                missing.append(seed)
        algo = config_from_dict(runs[f"{pid}/s{sweep.seeds[0]}"]).algo.name
        results.append(PointResult(pid, point, algo, summaries, missing))
    return results


def numeric_keys(sweep: Sweep) -> list[str]:
    """Grid keys whose values are all numbers, with at least two of them: each gets a plot."""
    return [
        k
        for k, values in sweep.grid.items()
        if len(values) >= 2 and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    ]


def crowded_on_a_linear_axis(ticks: list[float]) -> bool:
    """True for non-negative values spanning decades and spaced far from evenly (0, 0.001, 0.01): on a
    linear axis the small ones pile up, so they get a symlog axis. Even grids (1…10, 0/0.1/0.3/0.5) do not."""
    positive = [t for t in ticks if t > 0]
    if ticks[0] < 0 or len(positive) < 2 or positive[-1] / positive[0] < 10:
        return False
    span = ticks[-1] - ticks[0]
    smallest_gap = min(b - a for a, b in zip(ticks, ticks[1:], strict=False))
    return smallest_gap < 0.5 * span / (len(ticks) - 1)


def plot_score_against(results: list[PointResult], sweep: Sweep, key: str, path: Path) -> None:
    """Final score against ``key``: a line per algorithm, IQM with its 95% bootstrap band, a panel per
    combination of the other swept keys."""
    others = [k for k in sweep.grid if k not in (key, "algo.name")]
    facets: dict[tuple[str, ...], list[PointResult]] = defaultdict(list)
    for r in results:
        facets[tuple(f"{k}={format_value(r.point[k])}" for k in others)].append(r)
    colours = {a: f"C{i}" for i, a in enumerate(dict.fromkeys(r.algo for r in results))}
    ncols = min(3, len(facets))
    nrows = math.ceil(len(facets) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(6.4, 5.2 * ncols), 3.8 * nrows), squeeze=False)
    for ax, (facet, rs) in zip(axes.flat, facets.items(), strict=False):
        by_algo: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in rs:
            by_algo[r.algo][float(r.point[key])].extend(r.scores.tolist())
        for algo, by_x in by_algo.items():
            xs = sorted(x for x in by_x if by_x[x])
            if not xs:
                continue
            stats = [iqm_ci(np.array(by_x[x])) for x in xs]
            mean, lo, hi = (np.array([s[i] for s in stats], dtype=float) for i in range(3))
            ax.plot(xs, mean, marker="o", color=colours[algo], label=algo)
            ax.fill_between(xs, lo, hi, color=colours[algo], alpha=0.2)
        ax.set_xlabel(key)
        ticks = sorted({float(v) for v in sweep.grid[key]})
        if crowded_on_a_linear_axis(ticks):
            ax.set_xscale("symlog", linthresh=min(t for t in ticks if t > 0))
        ax.set_xticks(ticks, [format_value(t) for t in ticks])
        normalised = all(r.normalised for r in rs)
        ax.set_ylabel("final normalised return" if normalised else "final collective return (no optimum)")
        if facet:
            ax.set_title(", ".join(facet), fontsize=9)
        if ax.lines:
            ax.legend(fontsize=8)
    for ax in axes.flat[len(facets) :]:
        ax.set_visible(False)
    band = f"IQM over {len(sweep.seeds)} seed(s) with a 95% bootstrap band"
    fig.suptitle(f"{sweep.title}\n{band}" if sweep.title else band, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _cell(value: Any) -> str:
    return format_value(value) if not isinstance(value, str) else value


def results_table(results: list[PointResult], sweep: Sweep) -> list[str]:
    keys = list(sweep.grid)
    if "algo.name" not in keys:
        keys = ["algo", *keys]
    head = [
        *keys,
        "seeds",
        "score: IQM (95% CI)",
        "per seed",
        "collective return",
        "bytes/agent/update",
        "wall s",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in results:
        cells = [r.algo if k == "algo" else _cell(r.point[k]) for k in keys]
        if r.summaries:
            point, lo, hi = iqm_ci(r.scores)
            mark = "" if r.normalised else " †"
            s = r.summaries
            cells += [
                f"{len(s)}/{len(sweep.seeds)}",
                f"{point:.3f} [{lo:.3f}, {hi:.3f}]{mark}",
                ", ".join(f"{v:.3f}" for v in r.scores),
                f"{np.mean([x['collective_return'] for x in s]):.1f}",
                f"{np.mean([x['bytes_per_agent_per_update'] for x in s]):,.0f}",
                f"{np.mean([x['wall_seconds'] for x in s]):.1f}",
            ]
        else:
            cells += [f"0/{len(sweep.seeds)}", "—", "", "", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def task_keys(sweep: Sweep) -> list[str]:
    """Swept environment settings (``env.*`` with two or more values): each combination is a task."""
    return [k for k, values in sweep.grid.items() if k.startswith("env.") and len(values) >= 2]


def score_matrices(results: list[PointResult], sweep: Sweep) -> dict[str, np.ndarray]:
    """Per method (a combination of the non-environment keys), its normalised scores as a (runs × tasks)
    matrix: a row per seed complete on every task of that method. Empty when no environment is swept
    or a task has no known optimum (raw returns of different environments do not add up)."""
    tasks = task_keys(sweep)
    if not tasks or not all(r.normalised for r in results):
        return {}
    methods: dict[str, dict[str, dict[int, float]]] = defaultdict(dict)
    for r in results:
        method = ", ".join(f"{k}={_cell(r.point[k])}" for k in sweep.grid if k not in tasks) or r.algo
        task = ", ".join(f"{k}={_cell(r.point[k])}" for k in tasks)
        methods[method][task] = {s["seed"]: score(s) for s in r.summaries}
    matrices = {}
    for method, by_task in methods.items():
        seeds = sorted(set.intersection(*(set(v) for v in by_task.values())))
        if seeds:
            matrices[method] = np.array([[by_task[t][s] for t in sorted(by_task)] for s in seeds])
    return matrices


def aggregate_table(matrices: dict[str, np.ndarray]) -> list[str]:
    """IQM over each method's runs × tasks with a 95% stratified-bootstrap interval, and P(row > column)."""
    if not matrices:
        return []
    names = list(matrices)
    lines = [
        "## Across environments (runs × tasks)",
        "",
        "Each method's normalised scores as a matrix, a row per seed complete on every task, a column per "
        "task; IQM over the whole matrix with a 95% stratified-bootstrap interval (seeds resampled within "
        "each task), and P(row > column), the probability of improvement averaged over tasks, with its "
        "bootstrap interval (optimistic with 2–3 seeds per task).",
        "",
        "| method | runs × tasks | IQM (95% CI) | " + " | ".join(f"P(· > {n})" for n in names) + " |",
        "| --- | --- | --- |" + " --- |" * len(names),
    ]

    def cell(a: str, b: str) -> str:
        if min(len(matrices[a]), len(matrices[b])) < 2:
            return "—"
        p, lo, hi = probability_of_improvement_ci(matrices[a], matrices[b])
        return f"{p:.2f} [{lo:.2f}, {hi:.2f}]"

    for a, cells in pairwise_cells(names, cell).items():
        point, lo, hi = iqm_ci(matrices[a])
        shape = " × ".join(map(str, matrices[a].shape))
        lines.append(f"| {a} | {shape} | {point:.3f} [{lo:.3f}, {hi:.3f}] | " + " | ".join(cells) + " |")
    return lines


def write_sweep_report(out: Path, sweep: Sweep) -> tuple[Path, list[Path]]:
    """Write ``out/report.md`` and a ``score_vs_<key>.png`` per swept numeric key (when any run is
    complete); return the report's path and the plots'."""
    results = load_points(out, sweep)
    plots = []
    if any(r.summaries for r in results):
        for key in numeric_keys(sweep):
            path = out / f"score_vs_{key}.png"
            plot_score_against(results, sweep, key, path)
            plots.append(path)
        if has_privacy(results):
            path = out / "score_vs_epsilon.png"
            plot_score_against_epsilon(results, sweep.title, path)
            plots.append(path)
    total = len(results) * len(sweep.seeds)
    complete = sum(len(r.summaries) for r in results)
    lines = [
        f"# {sweep.title or 'Sweep'}",
        "",
        f"{len(results)} grid points × {len(sweep.seeds)} seed(s) ({', '.join(map(str, sweep.seeds))}): "
        f"{complete} of {total} runs complete. Base config: `{json.dumps(sweep.base, sort_keys=True)}`.",
        "",
        "Score: normalised return (R − R_floor) / (R_opt − R_floor), R the mean collective episode return "
        "over the last 10% of updates; † marks a raw collective return (no optimum known). "
        "A grid point's score is the interquartile mean over seeds with a 95% stratified-bootstrap "
        "interval (with 2–3 seeds the interval is optimistic: it cannot reach beyond them).",
        "",
        *results_table(results, sweep),
    ]
    across = aggregate_table(score_matrices(results, sweep))
    if across:
        lines += ["", *across]
    if has_privacy(results):
        lines += ["", "## Privacy (the accountant's ε per agent)", "", *epsilon_table(results)]
    mixed = code_note(*code_spread([s for r in results for s in r.summaries]))
    if mixed:
        lines += ["", mixed]
    missing = [f"{r.pid}/s{s}" for r in results for s in r.missing]
    if missing:
        lines += ["", f"Incomplete or failed runs ({len(missing)}): " + ", ".join(f"`{m}`" for m in missing)]
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![score against {p.stem.removeprefix('score_vs_')}]({p.name})\n" for p in plots]
    report = out / "report.md"
    atomic_write_bytes(report, ("\n".join(lines).rstrip() + "\n").encode())
    write_html(report)
    return report, plots
