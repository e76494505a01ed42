"""The side-by-side report of a comparison: markdown plus PNG plots, written atomically.

Plots: learning curves of the normalised collective return (mean over seeds with 95% t bands), final
normalised return per algorithm (IQM over seeds with a 95% bootstrap interval, seeds as dots), bytes sent per agent per update, and —
when the learners have peer heads — AS Fig. 7 / SS Fig. 5 style curves of the proportion of "approach"
in the heads and of the MSE between an agent's policy and the other's head of it.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import EngFormatter  # noqa: E402

from confide.experiments.html_report import write_html  # noqa: E402
from confide.experiments.io import atomic_write_bytes, read_jsonl  # noqa: E402
from confide.experiments.stats import (  # noqa: E402
    improvement,
    iqm_ci,
    mean_ci,
)


def load_runs(root: Path) -> dict[str, list[dict[str, Any]]]:
    """``{algo: [{"summary": …, "metrics": […]}, …]}`` for every complete run under ``root``."""
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for summary_path in sorted(root.glob("*/summary.json")):
        summary = json.loads(summary_path.read_text())
        if not summary.get("complete"):
            continue
        metrics = read_jsonl(summary_path.parent / "metrics.jsonl")
        label = summary["algo"] + (" [shared trunk]" if summary.get("network") == "shared_trunk" else "")
        runs[label].append({"summary": summary, "metrics": metrics, "dir": summary_path.parent.name})
    return dict(runs)


def _save(fig: plt.Figure, path: Path) -> None:
    for ax in fig.axes:
        if "steps" in ax.get_xlabel():
            ax.xaxis.set_major_formatter(EngFormatter())
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def is_normalised(runs: dict[str, list[dict[str, Any]]]) -> bool:
    """Whether the environment states an optimum; without one (Cleanup, Harvest, MPE) the report shows
    raw collective returns instead of normalised ones."""
    return all(r["summary"]["optimal_collective_return"] is not None for rs in runs.values() for r in rs)


def final_scores(rs: list[dict[str, Any]], normalised: bool) -> np.ndarray:
    key = "normalized_return" if normalised else "collective_return"
    return np.array([r["summary"][key] for r in rs], dtype=float)


def _normalised_curves(runs: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    s = runs[0]["summary"]
    lo, hi = s["floor_collective_return"], s["optimal_collective_return"]
    if hi is None:  # no optimum known: raw collective returns
        lo, hi = 0.0, 1.0
    length = min(len(r["metrics"]) for r in runs)
    curves = np.array(
        [[(m["collective_return"] - lo) / (hi - lo) for m in r["metrics"][:length]] for r in runs]
    )
    steps = np.array([m["env_steps"] for m in runs[0]["metrics"][:length]])
    return steps, curves


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or x.shape[-1] < width:
        return x
    kernel = np.ones(width) / width
    pad = np.concatenate([np.repeat(x[..., :1], width - 1, axis=-1), x], axis=-1)
    return np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="valid"), -1, pad)


def plot_learning_curves(runs: dict[str, list[dict[str, Any]]], path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for algo, rs in runs.items():
        steps, curves = _normalised_curves(rs)
        curves = _smooth(curves, max(1, curves.shape[1] // 50))
        mean, lo, hi = mean_ci(curves, axis=0)
        ax.plot(steps, mean, label=f"{algo} (n={len(rs)})")
        ax.fill_between(steps, lo, hi, alpha=0.2)
    ax.set_xlabel("environment steps (episodes × horizon)")
    ax.set_title(title)
    if is_normalised(runs):
        ax.set_ylabel("normalised collective return")
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.axhline(0.0, color="grey", lw=0.8, ls=":")
    else:
        ax.set_ylabel("collective return (no optimum known)")
    ax.legend(loc="best", fontsize=8)
    _save(fig, path)


def draw_score_bars(ax: plt.Axes, scores: list[tuple[str, np.ndarray]], normalised: bool) -> None:
    """A bar per label at the IQM of its per-seed scores, the 95% bootstrap interval, each seed a dot."""
    for k, (_, vals) in enumerate(scores):
        point, lo, hi = iqm_ci(vals)
        ax.bar(k, point, color=f"C{k}", alpha=0.6)
        ax.errorbar(k, point, yerr=[[point - lo], [hi - point]], color="black", capsize=4)
        ax.scatter(np.full(len(vals), k), vals, color="black", s=12, zorder=3)
    ax.set_xticks(range(len(scores)), [label for label, _ in scores], rotation=20 if len(scores) > 4 else 0)
    if normalised:
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")


def plot_final(runs: dict[str, list[dict[str, Any]]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.8))
    normalised = is_normalised(runs)
    draw_score_bars(ax, [(algo, final_scores(rs, normalised)) for algo, rs in runs.items()], normalised)
    what = "normalised return" if normalised else "collective return"
    ax.set_ylabel(f"final {what} (last 10% of updates)\nIQM over seeds, 95% bootstrap interval")
    _save(fig, path)


def improvement_table(runs: dict[str, list[dict[str, Any]]], normalised: bool) -> list[str]:
    """P(row > column): the chance that a run of the row's algorithm ends above a run of the column's,
    with a 95% bootstrap interval; bold where the row reliably beats the column (the interval above 1/2
    and the one-sided rank test's p <= 0.05, ``stats.Improvement``)."""
    algos = [a for a in runs if len(runs[a]) >= 2]
    if len(algos) < 2:
        return []
    scores = {a: final_scores(runs[a], normalised) for a in algos}
    lines = [
        "## Probability of improvement, P(row > column)",
        "",
        "The chance that a run of the row's algorithm ends above a run of the column's (ties count a half), "
        "with a 95% bootstrap interval over seeds; **bold** where the interval lies above 1/2 and the "
        "one-sided rank (Mann–Whitney) test gives p <= 0.05 (with 3 vs 3 seeds: every run above every run).",
        "",
        "| P(row > column) | " + " | ".join(algos) + " |",
        "| --- |" + " --- |" * len(algos),
    ]

    def cell(a: str, b: str) -> str:
        found = improvement(scores[a], scores[b])
        text = f"{found.p:.2f} [{found.lo:.2f}, {found.hi:.2f}]"
        return f"**{text}**" if found.reliable() else text

    return lines + [
        f"| {a} | " + " | ".join(cells) + " |" for a, cells in pairwise_cells(algos, cell).items()
    ]


def pairwise_cells(names: list[str], cell: Callable[[str, str], str]) -> dict[str, list[str]]:
    """A P(row > column) table's cells: ``cell(row, column)`` off the diagonal, "—" on it."""
    return {a: ["—" if a == b else cell(a, b) for b in names] for a in names}


def plot_bytes(runs: dict[str, list[dict[str, Any]]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.8))
    algos = list(runs)
    vals = [np.mean([r["summary"]["bytes_per_agent_per_update"] for r in runs[a]]) for a in algos]
    ax.bar(range(len(algos)), vals, color=[f"C{k}" for k in range(len(algos))], alpha=0.7)
    for k, v in enumerate(vals):
        ax.text(k, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(algos)), algos)
    ax.set_ylabel("bytes sent per agent per update")
    if max(vals, default=0) > 0:
        ax.set_yscale("symlog", linthresh=10)
    _save(fig, path)


def plot_cooperation(
    runs: dict[str, list[dict[str, Any]]], path: Path, key: str = "policy/approach_mean", label: str = ""
) -> bool:
    """A per-update rate in [0, 1] (default: P(cooperative action) of the own policies), mean ± 95% t."""
    if not all(key in rs[0]["metrics"][0] for rs in runs.values()):
        return False
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for k, (algo, rs) in enumerate(runs.items()):
        length = min(len(r["metrics"]) for r in rs)
        steps = np.array([m["env_steps"] for m in rs[0]["metrics"][:length]])
        vals = np.array([[m[key] for m in r["metrics"][:length]] for r in rs])
        mean, lo, hi = mean_ci(vals)
        lo, hi = np.clip(lo, 0, 1), np.clip(hi, 0, 1)  # a rate's band stays in [0, 1]
        ax.plot(steps, mean, color=f"C{k}", label=algo)
        ax.fill_between(steps, lo, hi, color=f"C{k}", alpha=0.15)
    ax.set_ylim(0, 1)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(label or "P(cooperative action) of own policies")
    ax.legend(fontsize=8)
    _save(fig, path)
    return True


def plot_heads(runs: dict[str, list[dict[str, Any]]], path: Path) -> bool:
    """Fig. 7 (AS) / Fig. 5 (SS): approach proportion and MSE of the heads, per ordered pair."""
    with_heads = {a: rs for a, rs in runs.items() if "heads/mse_mean" in rs[0]["metrics"][0]}
    if not with_heads:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for k, (algo, rs) in enumerate(with_heads.items()):
        length = min(len(r["metrics"]) for r in rs)
        steps = np.array([m["env_steps"] for m in rs[0]["metrics"][:length]])
        pair_keys = sorted(key for key in rs[0]["metrics"][0] if key.startswith("heads/approach/"))
        keys = pair_keys or ["heads/approach_mean"]
        for key in keys:
            if key not in rs[0]["metrics"][0]:
                continue
            vals = np.array([[m[key] for m in r["metrics"][:length]] for r in rs])
            mean, lo, hi = mean_ci(vals)
            lo, hi = np.clip(lo, 0, 1), np.clip(hi, 0, 1)
            axes[0].plot(steps, mean, color=f"C{k}", label=f"{algo} {key.split('/')[-1]}")
            axes[0].fill_between(steps, lo, hi, color=f"C{k}", alpha=0.15)
        mse_keys = sorted(key for key in rs[0]["metrics"][0] if key.startswith("heads/mse/")) or [
            "heads/mse_mean"
        ]
        for key in mse_keys:
            vals = np.array([[m[key] for m in r["metrics"][:length]] for r in rs])
            mean, lo, hi = mean_ci(vals)
            lo, hi = np.clip(lo, 0, 1), np.clip(hi, 0, 1)
            axes[1].plot(steps, mean, color=f"C{k}", label=f"{algo} {key.split('/')[-1]}")
            axes[1].fill_between(steps, lo, hi, color=f"C{k}", alpha=0.15)
    axes[0].set_title("proportion of 'approach' in i's head for j")
    axes[1].set_title("MSE between π^jj(a_j|s) and π^ij(a_j|s)")
    for ax in axes:
        ax.set_xlabel("environment steps")
        ax.legend(fontsize=7)
    _save(fig, path)
    return True


def write_report(root: Path, title: str) -> Path:
    """Write ``report.md`` and its plots into ``root`` (a compare directory); return the report path."""
    runs = load_runs(root)
    if not runs:
        raise FileNotFoundError(f"no complete runs under {root}")
    plot_learning_curves(runs, root / "learning_curves.png", title)
    plot_final(runs, root / "final_normalized_return.png")
    plot_bytes(runs, root / "bytes_per_agent_per_update.png")
    has_heads = plot_heads(runs, root / "heads.png")
    has_coop = plot_cooperation(runs, root / "cooperation.png")
    has_all = plot_cooperation(
        runs,
        root / "all_cooperate.png",
        "actions/all_cooperate",
        "fraction of steps where all agents cooperate",
    )
    first = next(iter(runs.values()))[0]["summary"]
    normalised = is_normalised(runs)
    optimum = (
        f"Optimal collective return {first['optimal_collective_return']:.1f}, "
        if normalised
        else "No optimum is known for this environment: scores are raw collective returns; "
    )
    lines = [
        f"# {title}",
        "",
        f"Environment `{first['env']}`"
        + (f" (scheme `{first['scheme']}`)" if "scheme" in first else "")
        + f", {first['agents']} agents. {optimum}"
        f"floor {first['floor_collective_return']:.1f} ({first['floor_kind']}). "
        "normalised return = (R − R_floor) / (R_opt − R_floor), R = mean collective episode return over the "
        "last 10% of updates. A score is the interquartile mean (IQM) over seeds with a 95% "
        "stratified-bootstrap interval (optimistic with 2–3 seeds); learning curves show the mean with a "
        "95% Student-t band.",
        "",
        f"| algorithm | seeds | {'normalised' if normalised else 'collective'} return: IQM (95% CI) | per seed "
        "| collective return | bytes/agent/update | updates | env steps | wall s (mean) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for algo, rs in runs.items():
        s = [r["summary"] for r in rs]
        vals = final_scores(rs, normalised)
        point, lo, hi = iqm_ci(vals)
        lines.append(
            f"| {algo} | {len(s)} | {point:.3f} [{lo:.3f}, {hi:.3f}] | {', '.join(f'{v:.3f}' for v in vals)} "
            f"| {np.mean([x['collective_return'] for x in s]):.1f} "
            f"| {np.mean([x['bytes_per_agent_per_update'] for x in s]):,.0f} "
            f"| {s[0]['updates']} | {s[0]['env_steps']:,} | {np.mean([x['wall_seconds'] for x in s]):.1f} |"
        )
    lines += ["", *improvement_table(runs, normalised)]
    lines += [
        "",
        "## Bytes by message kind (total per run, mean over seeds)",
        "",
        "| algorithm | " + " | ".join(["kind", "bytes"]) + " |",
        "| --- | --- | --- |",
    ]
    for algo, rs in runs.items():
        kinds = rs[0]["summary"]["bytes_sent"]
        for kind in kinds:
            lines.append(
                f"| {algo} | {kind} | {np.mean([r['summary']['bytes_sent'].get(kind, 0) for r in rs]):,.0f} |"
            )
    lines += [
        "",
        "## Plots",
        "",
        "![learning curves](learning_curves.png)",
        "",
        "![final normalised return](final_normalized_return.png)",
        "",
        "![bytes per agent per update](bytes_per_agent_per_update.png)",
    ]
    if has_coop:
        lines += ["", "![own policies' cooperation rate](cooperation.png)"]
    if has_all:
        lines += ["", "![all agents cooperate (C-C at N = 2)](all_cooperate.png)"]
    if has_heads:
        lines += ["", "![heads: approach proportion and MSE](heads.png)"]
    report = root / "report.md"
    atomic_write_bytes(report, ("\n".join(lines) + "\n").encode())
    write_html(report)
    return report
