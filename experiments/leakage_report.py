"""What the leakage study writes: the Markdown table (``leakage.md``), the JSON of every interval
(``leakage.json``) and the plot of bits and AUC per algorithm × view (``leakage.png``)."""

from __future__ import annotations

import io
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from confide.experiments.io import atomic_write_bytes
from confide.privacy.estimators import LeakageReport

if TYPE_CHECKING:
    from confide.experiments.leakage_study import LeakStudy

VIEW_LABELS = {
    "T0": "behaviour only",
    "T1": "curious neighbour",
    "T2": "link eavesdropper, plaintext",
    "T2enc": "link eavesdropper, encrypted",
    "T3": "curious relay/server",
    "T4": "colluding neighbours",
}


def _ci(i: Any, digits: int = 2) -> str:
    return f"{i.estimate:.{digits}f} [{i.low:.{digits}f}, {i.high:.{digits}f}]"


def render_table(
    study: LeakStudy,
    reports: dict[tuple[str, str], LeakageReport],
    stats: dict[str, dict[str, np.ndarray]],
    wall: float,
) -> str:
    """The Markdown table: one row per algorithm × view, then the shadow runs' own statistics."""
    train_idx, test_idx = study.split()
    run_wall = sum(float(s["wall_seconds"].sum()) for s in stats.values())
    lines = [
        f"# Leakage of agent {study.target}'s private approach weight: {study.env}, N = {study.agents}",
        "",
        f"`{study.command()}`",
        "",
        f"Secret: w_{study.target} ∈ {{0.5, 1.5}} (prior ½ each; H = 1 bit); other agents' weights drawn "
        f"from the same prior. {study.runs} shadow runs per algorithm ({study.updates} updates × "
        f"{study.batch} episodes each), attacker trained on {len(train_idx)} runs and tested on "
        f"{len(test_idx)} held-out runs with other seeds. Intervals: 95 % bootstrap over held-out runs. "
        f"Observers: T1 agent {study.observers('T1')[0]}, T2 link {study.observers('T2')}, T4 agents "
        f"{study.observers('T4')}. Wall time: {wall:.0f} s this invocation, {run_wall:.0f} s of training "
        "in the cached shadow runs. How to read it: `docs/leakage.md`.",
        "",
        "Every number is one attack's lower bound on what the view reveals; 0 bits means this attack found "
        "nothing. Attacker: the L2 penalty cross-validation chose, or *prior* when the prior-only attacker won "
        "(it abstains: AUC 0.50 [0.50, 0.50] then says nothing was learned, not that the leak is known to be "
        "0). Δ: paired excess over T0 (raw bits). The shuffled control (secrets permuted) shows the noise "
        "level of this design; about 1 row in 20 lands outside chance by chance alone.",
        "",
        "| algorithm | view | AUC [95% CI] | TPR@1%FPR [95% CI] | bits [95% CI] | Δbits vs T0 [95% CI] "
        "| ΔAUC vs T0 [95% CI] | attacker | shuffled: AUC [95% CI], bits |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for algo in study.algos:
        for view in study.views:
            r = reports[(algo, view)]
            a = r.attack
            lines.append(
                f"| {algo} | {view} {VIEW_LABELS[view]} | {_ci(a.auc)} | {_ci(a.tpr_at_fpr)} | {_ci(a.bits, 3)} "
                f"| {_ci(r.excess.bits, 3)} | {_ci(r.excess.auc)} "
                f"| {'prior' if np.isinf(a.l2) else f'λ={a.l2:g}'} "
                f"| {_ci(r.shuffled.auc)}, {r.shuffled.bits.estimate:.3f} |"
            )
    lines += [
        "",
        "Shadow runs (mean over runs): normalised return, bytes per agent per update, messages per run.",
        "",
        "| algorithm | normalised return | bytes/agent/update | messages |",
        "| --- | --- | --- | --- |",
    ]
    for algo in study.algos:
        s = stats[algo]
        lines.append(
            f"| {algo} | {np.mean(s['normalized_return']):.3f} | {np.mean(s['bytes_per_agent_per_update']):,.0f} "
            f"| {np.mean(s['messages']):,.0f} |"
        )
    return "\n".join(lines) + "\n"


def as_json(
    study: LeakStudy, reports: dict[tuple[str, str], LeakageReport], stats: dict[str, dict[str, np.ndarray]]
) -> dict[str, Any]:
    """Every interval as ``[estimate, low, high]``, the study's settings and the per-run statistics."""

    def iv(i: Any) -> list[float]:
        return [i.estimate, i.low, i.high]

    rows = []
    for (algo, view), r in reports.items():
        a = r.attack
        rows.append(
            {
                "algo": algo,
                "view": view,
                "auc": iv(a.auc),
                "tpr_at_1pct_fpr": iv(a.tpr_at_fpr),
                "bits": iv(a.bits),
                "bits_raw": iv(a.bits_raw),
                "excess_bits": iv(r.excess.bits),
                "excess_auc": iv(r.excess.auc),
                "shuffled_auc": iv(r.shuffled.auc),
                "shuffled_bits": iv(r.shuffled.bits),
                "l2": None if np.isinf(a.l2) else a.l2,
                "n_train": a.n_train,
                "n_test": a.n_test,
            }
        )
    runs = {a: {k: np.asarray(v).tolist() for k, v in s.items()} for a, s in stats.items()}
    return {"study": {**asdict(study), "algos": list(study.algos)}, "results": rows, "runs": runs}


def plot_leakage(study: LeakStudy, reports: dict[tuple[str, str], LeakageReport], path: Path) -> None:
    """Bits and AUC per algorithm (groups) × view (bars) with 95 % intervals; chance as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 1.4 * len(study.algos) * len(study.views) / 3), 7))
    width = 0.8 / len(study.views)
    x = np.arange(len(study.algos))
    for ax, metric, chance in ((axes[0], "bits", 0.0), (axes[1], "auc", 0.5)):
        for v, view in enumerate(study.views):
            ivs = [getattr(reports[(a, view)].attack, metric) for a in study.algos]
            est = np.array([i.estimate for i in ivs])
            err = np.array([[i.estimate - i.low for i in ivs], [i.high - i.estimate for i in ivs]])
            ax.bar(x + (v - (len(study.views) - 1) / 2) * width, est, width, yerr=err, capsize=2, label=view)
        ax.axhline(chance, color="black", linewidth=0.8)
        ax.set_xticks(x, study.algos)
        ax.set_ylabel("bits (lower bound)" if metric == "bits" else "AUC")
    axes[0].set_title(f"What each view reveals about w_{study.target} ({study.env}, N = {study.agents})")
    axes[0].legend(ncol=len(study.views), fontsize=8)
    axes[1].set_ylim(0, 1.05)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
