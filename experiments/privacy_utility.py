"""Privacy against utility for a sweep whose runs add DP noise on the channel: the final score against
each run's ε, so a reader compares algorithms at equal privacy rather than at equal noise multiplier.

ε is the accountant's (``summary.json`` → ``channel.privacy``), per agent, at that entry's δ. An agent
that shares more arrays per update spends more ε at the same σ, so the same σ gives each algorithm a
different ε. The x value of a grid point is the *largest* ε of any agent (the worst-protected agent),
averaged over seeds; the table also gives the mean over agents. The relay node (id N, the central
critic's node, which sends no noised array) is left out.
"""

from __future__ import annotations

import io
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from confide.experiments.io import atomic_write_bytes  # noqa: E402
from confide.experiments.stats import iqm_ci  # noqa: E402

if TYPE_CHECKING:
    from pathlib import Path

    from confide.experiments.sweep_report import PointResult


def agent_epsilons(summary: dict[str, Any]) -> np.ndarray | None:
    """Every agent's ε in one run (agents 0..N−1), or None when the run added no DP noise."""
    privacy = (summary.get("channel") or {}).get("privacy") or {}
    eps = [float(v["epsilon"]) for k, v in privacy.items() if int(k) < int(summary["agents"])]
    if not eps or not any(e > 0 for e in eps):
        return None
    return np.array(eps, dtype=float)


def has_privacy(results: list[PointResult]) -> bool:
    return any(agent_epsilons(s) is not None for r in results for s in r.summaries)


def epsilon_table(results: list[PointResult]) -> list[str]:
    """One row per grid point with runs: algorithm, point, worst-agent and mean-agent ε, score."""
    lines = [
        "| algorithm | point | δ | ε, worst agent (mean over seeds) | ε, mean over agents | score: IQM (95% CI) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        eps = [agent_epsilons(s) for s in r.summaries]
        if not r.summaries or any(e is None for e in eps):
            continue
        delta = next(v["delta"] for v in r.summaries[0]["channel"]["privacy"].values() if v["epsilon"] > 0)
        score, lo, hi = iqm_ci(r.scores)
        point = ", ".join(f"{k}={v}" for k, v in r.point.items() if k != "algo.name")
        lines.append(
            f"| {r.algo} | {point} | {delta:g} | {np.mean([e.max() for e in eps]):.3g} "
            f"| {np.mean([e.mean() for e in eps]):.3g} | {score:.3f} [{lo:.3f}, {hi:.3f}] |"
        )
    return lines


def plot_score_against_epsilon(results: list[PointResult], title: str, path: Path) -> None:
    """Final score against the worst agent's ε (log axis), a line per algorithm, the score's IQM over
    seeds with a 95% bootstrap band."""
    by_algo: dict[str, list[tuple[float, np.ndarray]]] = defaultdict(list)
    for r in results:
        eps = [agent_epsilons(s) for s in r.summaries]
        if r.summaries and all(e is not None for e in eps):
            by_algo[r.algo].append((float(np.mean([e.max() for e in eps])), r.scores))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (algo, pts) in enumerate(by_algo.items()):
        pts.sort(key=lambda p: p[0])
        xs = [p[0] for p in pts]
        stats = np.array([iqm_ci(p[1]) for p in pts], dtype=float)
        ax.plot(xs, stats[:, 0], marker="o", color=f"C{i}", label=algo)
        ax.fill_between(xs, stats[:, 1], stats[:, 2], color=f"C{i}", alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("ε of the worst-protected agent per run (accountant, log scale)")
    ax.set_ylabel("final normalised return")
    ax.set_title(title, fontsize=9)
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
