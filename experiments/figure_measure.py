"""What a reproduced figure measures: per-run numbers in each paper's units, the claim's checks, plots.

Each run is scored over its last 10% of updates (as ``summary.json`` does); a grid point's number is
the interquartile mean (IQM) over its seeds with a 95% stratified-bootstrap interval
(``experiments.stats``). Units compare like with like:

* ``averaged`` — SS's "averaged return": collective return / (N·T) (SS Sec. 5.3);
* ``team`` — DPO's team episode return: collective / N (every agent receives the team reward);
* ``collective`` — the total return AS plots; AS never defines the normalisation of its "normalized
  final total returns", so confide does not pretend to reproduce it;
* ``normalised`` — confide's own (R − R_floor)/(R_opt − R_floor), where the environment states an
  optimum (decision 14). A ``return`` figure's main score is this where it exists, else the paper's unit;
* ``cc``/``cd``/``dd`` — the rates of the joint actions taken (SS Fig. 3; C-D = 1 − C-C − D-D);
* ``approach_*``/``mse_*`` — the heads' P(approach) and MSE (AS Fig. 7, SS Fig. 5) in the first and
  the last 10% of updates.

Checks (``expect`` of a figure file) run on the per-seed main scores through the probability of
improvement P(a > b) (the chance a run of a beats a run of b), its 95% bootstrap interval and the exact
one-sided rank (Mann–Whitney) test behind it: ``a > b`` holds when the interval lies above 1/2 and the
test gives p <= 0.05 (the bootstrap alone, on 2–5 seeds, calls a false claim true 6–16% of the time);
``a >= b`` holds unless b is higher by the same rule; ``a >= x`` when the IQM's interval lies above x.
"""

from __future__ import annotations

import io
import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from confide.experiments.checkpoint import run_is_complete  # noqa: E402
from confide.experiments.config import config_from_dict  # noqa: E402
from confide.experiments.figure_spec import Expectation, Figure, point_label  # noqa: E402
from confide.experiments.io import atomic_write_bytes, read_jsonl  # noqa: E402
from confide.experiments.report import draw_score_bars, plot_cooperation, plot_heads  # noqa: E402
from confide.experiments.stats import finite, improvement, iqm_ci, mean_ci  # noqa: E402
from confide.experiments.sweep import Sweep, expand, points  # noqa: E402

ALPHA = 0.05  # a claim's rank test
UNITS = {
    "normalised": "confide's normalised return (R − R_floor)/(R_opt − R_floor)",
    "collective": "collective (total) return per episode",
    "averaged": "SS's averaged return = collective return / (N·T)",
    "team": "DPO's team return = collective return / N",
    "cc": "C-C rate (all cooperate)",
    "cd": "C-D rate (mixed)",
    "dd": "D-D rate (none cooperates)",
    "approach_first": "heads' P(approach), first 10% of updates",
    "approach_last": "heads' P(approach), last 10% of updates",
    "mse_first": "heads' MSE, first 10%",
    "mse_last": "heads' MSE, last 10%",
    "bytes": "bytes/agent/update",
}
PAPER_UNIT = {"as": "collective", "ss": "averaged", "dpo": "team"}
DIGITS = {"collective": 1, "team": 2, "bytes": 0}


def _window(metrics: list[dict[str, Any]], key: str, first: bool = False) -> float:
    """Mean of ``key`` over the first or last 10% of the updates (NaN if no row has it)."""
    k = max(1, len(metrics) // 10)
    values = [r[key] for r in (metrics[:k] if first else metrics[-k:]) if key in r]
    return float(np.mean(values)) if values else float("nan")


def run_measures(summary: dict[str, Any], metrics: list[dict[str, Any]], batch: int) -> dict[str, float]:
    """Every number a figure may show for one complete run (NaN where it does not apply)."""
    n, collective = summary["agents"], float(summary["collective_return"])
    horizon = metrics[0]["env_steps"] / batch  # steps per episode
    norm = summary["normalized_return"]
    cc, dd = _window(metrics, "actions/all_cooperate"), _window(metrics, "actions/none_cooperate")
    return {
        "normalised": float("nan") if norm is None else float(norm),
        "collective": collective,
        "averaged": collective / (n * horizon),
        "team": collective / n,
        "cc": cc,
        "cd": 1.0 - cc - dd,
        "dd": dd,
        "approach_first": _window(metrics, "heads/approach_mean", first=True),
        "approach_last": _window(metrics, "heads/approach_mean"),
        "mse_first": _window(metrics, "heads/mse_mean", first=True),
        "mse_last": _window(metrics, "heads/mse_mean"),
        "bytes": float(summary["bytes_per_agent_per_update"]),
    }


@dataclass
class Point:
    """One grid point: its label, its complete runs (``summary``, ``metrics``, ``batch``, ``measures``)
    and the number of seeds planned."""

    label: str
    runs: list[dict[str, Any]]
    planned: int

    def values(self, key: str) -> np.ndarray:
        return np.array([r["measures"][key] for r in self.runs], dtype=float)


def load_points(sweep: Sweep, out: Path) -> list[Point]:
    """The complete runs of every grid point under the sweep directory ``out``."""
    configs = dict(expand(sweep))
    result = []
    for pid, point in points(sweep):
        runs = []
        for seed in sweep.seeds:
            run_dir = out / pid / f"s{seed}"
            if not run_is_complete(run_dir):
                continue
            summary = json.loads((run_dir / "summary.json").read_text())
            metrics = read_jsonl(run_dir / "metrics.jsonl")
            batch = config_from_dict(configs[f"{pid}/s{seed}"]).train.batch
            measures = run_measures(summary, metrics, batch)
            runs.append({"summary": summary, "metrics": metrics, "batch": batch, "measures": measures})
        result.append(Point(point_label(point, list(sweep.grid)), runs, len(sweep.seeds)))
    return result


def has(pts: list[Point], key: str) -> bool:
    values = [r["measures"][key] for p in pts for r in p.runs]
    return bool(values) and bool(np.all(np.isfinite(values)))


def main_key(figure: Figure, pts: list[Point]) -> str:
    if figure.metric == "cooperation":
        return "cc"
    if figure.metric == "heads":
        return "approach_last"
    return "normalised" if has(pts, "normalised") else PAPER_UNIT[figure.paper]


def columns(figure: Figure, main: str) -> list[str]:
    """The table's columns: the main score first, and always the paper's own unit (SS: averaged)."""
    paper_unit = PAPER_UNIT[figure.paper]
    if figure.metric == "cooperation":
        return ["cc", "cd", "dd", "normalised", paper_unit]
    if figure.metric == "heads":
        return ["approach_first", "approach_last", "mse_first", "mse_last", paper_unit]
    return [main, *([paper_unit] if paper_unit != main else []), "bytes"]


def ci_text(values: np.ndarray, digits: int = 3) -> str:
    """``IQM [lo, hi]`` (95% stratified bootstrap) of the finite values; the value alone for one seed
    or no spread."""
    values = finite(values)
    if len(values) == 0:
        return "—"
    point, lo, hi = iqm_ci(values)
    if len(values) == 1 or lo == hi:
        return f"{point:,.{digits}f}"
    return f"{point:,.{digits}f} [{lo:,.{digits}f}, {hi:,.{digits}f}]"


def measurement_table(figure: Figure, pts: list[Point], main: str) -> list[str]:
    cols = columns(figure, main)
    head = ["grid point", "seeds", *(UNITS[c] for c in cols), f"per seed ({main})"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for p in pts:
        cells = [f"`{p.label}`", f"{len(p.runs)}/{p.planned}"]
        cells += [ci_text(p.values(c), DIGITS.get(c, 3)) for c in cols]
        cells.append(", ".join(f"{v:.3f}" for v in p.values(main)) or "—")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# --- the claim's checks ---------------------------------------------------------------------------


def check_expectation(e: Expectation, scores: dict[str, np.ndarray]) -> tuple[str, str]:
    """``(confide's numbers, verdict)`` for one expectation on the per-seed main scores (seeds without a
    finite score left out)."""
    x = finite(scores.get(e.left, np.array([])))
    if e.threshold is not None:
        if len(x) == 0:
            return "no complete run", "not measured"
        point, lo, _ = iqm_ci(x)
        shown = f"{e.left} {ci_text(x)}"
        if len(x) > 1 and lo >= e.threshold:
            return shown, "holds (95% interval above)"
        if point >= e.threshold:
            return shown, "holds (one seed)" if len(x) == 1 else "IQM reaches it, the interval does not"
        return shown, "does not hold"
    y = finite(scores.get(e.right, np.array([])))
    shown = f"{e.left} {ci_text(x)} vs {e.right} {ci_text(y)}"
    if len(x) < 2 or len(y) < 2:
        return shown, "too few seeds to test (need 2 each)"
    found = improvement(x, y)
    why = found.text(e.left, e.right)
    if e.op == ">":
        if found.reliable(ALPHA):
            return shown, f"holds ({why})"
        if found.p > 0.5:
            return shown, f"not shown: right direction ({why})"
        return shown, f"does not hold ({why})"
    if improvement(y, x).reliable(ALPHA):  # ">=": is the right side reliably better?
        return shown, f"does not hold: {e.right} higher ({why})"
    if found.reliable(ALPHA):
        return shown, f"holds: higher ({why})"
    return shown, f"holds: not reliably below ({why})"


def recheck(record: dict[str, Any], figure: Figure) -> dict[str, Any]:
    """A results-page record with its claim's checks recomputed from its per-seed scores, by the figure
    file's expectations and the current statistics; the MSE check (per-run heads data) stays as measured."""
    if "points" not in record:  # an exact figure (DPO Fig. 11): no seeds
        return record
    scores = {p["label"]: np.array(p["per_seed"], dtype=float) for p in record["points"]}
    kept = [c for c in record["checks"] if c["expect"] == MSE_EXPECT]
    return {**record, "checks": expectation_checks(figure, scores) + kept}


MSE_EXPECT = "the heads' MSE becomes smaller"


def mse_check(pts: list[Point]) -> dict[str, str]:
    """AS Fig. 7 / SS Fig. 5: does the heads' MSE fall from the first to the last 10% of updates? It
    holds when it falls in more than half of the runs."""
    first = np.concatenate([p.values("mse_first") for p in pts])
    last = np.concatenate([p.values("mse_last") for p in pts])
    fell = int(np.sum(last < first))
    word = "holds" if 2 * fell > len(first) else "does not hold"
    return {
        "expect": MSE_EXPECT,
        "measured": f"MSE {ci_text(first)} → {ci_text(last)}",
        "verdict": f"{word}: fell in {fell} of {len(first)} runs",
    }


def expectation_checks(figure: Figure, scores: dict[str, np.ndarray]) -> list[dict[str, str]]:
    out = []
    for e in figure.expect:
        measured, verdict = check_expectation(e, scores)
        out.append({"expect": e.text, "measured": measured, "verdict": verdict})
    return out


def checks(figure: Figure, pts: list[Point], main: str) -> list[dict[str, str]]:
    out = expectation_checks(figure, {p.label: p.values(main) for p in pts})
    if figure.metric == "heads":
        out.append(mse_check(pts))
    return out


# --- plots -----------------------------------------------------------------------------------------


def _curve(run: dict[str, Any], unit: str) -> np.ndarray:
    """One run's per-update collective return in ``unit``."""
    s, metrics = run["summary"], run["metrics"]
    r = np.array([m["collective_return"] for m in metrics], dtype=float)
    if unit == "normalised":
        lo, hi = s["floor_collective_return"], s["optimal_collective_return"]
        return (r - lo) / (hi - lo)
    if unit == "averaged":  # T = env steps per update / episodes per update
        return r / (s["agents"] * metrics[0]["env_steps"] / run["batch"])
    return r / s["agents"] if unit == "team" else r


def _save(fig: plt.Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_curves(pts: list[Point], unit: str, path: Path, title: str) -> None:
    """Learning curves in ``unit``: mean over seeds with a 95% t band, smoothed over ~2% of the run."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    draw_curves(ax, pts, unit, title)
    _save(fig, path)


def plot_panels(panels: list[tuple[str, list[Point], str]], path: Path, title: str) -> None:
    """One paper figure's environments side by side, as the paper lays them out: a panel of learning
    curves per ``(panel title, points, unit)``."""
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.4 * ncols, 3.9 * nrows), squeeze=False)
    for ax, (name, pts, unit) in zip(axes.flat, panels, strict=False):
        draw_curves(ax, pts, unit, name)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(textwrap.fill(title, 120), fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def plot_final_scores(pts: list[Point], main: str, path: Path, title: str) -> bool:
    """Final scores per grid point: the IQM over seeds as a bar with its 95% bootstrap interval, each
    seed a dot. False (nothing written) when no point has a finite score."""
    values = [(p.label, np.asarray(p.values(main), dtype=float)) for p in pts]
    shown = [(label, v[np.isfinite(v)]) for label, v in values if np.isfinite(v).any()]
    if not shown:
        return False
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(shown) + 2), 3.9))
    draw_score_bars(ax, shown, main == "normalised")
    ax.set_ylabel(textwrap.fill(f"{UNITS[main]}: IQM over seeds, 95% bootstrap interval", 45), fontsize=8)
    ax.set_title(textwrap.fill(title, 80), fontsize=9)
    _save(fig, path)
    return True


def draw_curves(ax: plt.Axes, pts: list[Point], unit: str, title: str) -> None:
    for k, p in enumerate(q for q in pts if q.runs):
        length = min(len(r["metrics"]) for r in p.runs)
        curves = np.array([_curve(r, unit)[:length] for r in p.runs])
        width = max(1, length // 50)
        if width > 1:
            kernel = np.ones(width) / width
            curves = np.array(
                [np.convolve(np.r_[np.repeat(c[:1], width - 1), c], kernel, "valid") for c in curves]
            )
        steps = np.array([m["env_steps"] for m in p.runs[0]["metrics"][:length]])
        mean, lo, hi = mean_ci(curves, axis=0)
        ax.plot(steps, mean, color=f"C{k}", label=f"{p.label} (n={len(p.runs)})")
        ax.fill_between(steps, lo, hi, color=f"C{k}", alpha=0.2)
    if unit == "normalised":
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("environment steps")
    ax.set_ylabel(textwrap.fill(UNITS[unit], 45))  # long labels wrap inside the axes' height and width
    ax.set_title(textwrap.fill(title, 90), fontsize=9)
    if ax.lines:
        ax.legend(fontsize=8)


def curve_unit(figure: Figure, pts: list[Point], main: str) -> str:
    """The unit of a figure's learning curves: its main score's for a ``return`` figure, else the
    normalised return where known (the paper's unit otherwise)."""
    if figure.metric == "return":
        return main
    return "normalised" if has(pts, "normalised") else PAPER_UNIT[figure.paper]


def write_plots(figure: Figure, pts: list[Point], main: str, out: Path) -> list[Path]:
    """``learning_curves.png`` and ``final_scores.png``, plus the C-C/C-D/D-D rates (``cooperation``)
    or the heads (``heads``)."""
    plots = [out / "learning_curves.png"]
    plot_curves(pts, curve_unit(figure, pts, main), plots[0], figure.title)
    if plot_final_scores(pts, main, out / "final_scores.png", figure.title):
        plots.append(out / "final_scores.png")
    runs = {p.label: p.runs for p in pts if p.runs}
    if figure.metric == "cooperation" and runs:
        for rs in runs.values():
            for r in rs:
                for row in r["metrics"]:
                    row["actions/mixed"] = 1.0 - row["actions/all_cooperate"] - row["actions/none_cooperate"]
        for key, name, label in [
            ("actions/all_cooperate", "rate_cc.png", "C-C rate (both cooperate)"),
            ("actions/mixed", "rate_cd.png", "C-D rate (one cooperates)"),
            ("actions/none_cooperate", "rate_dd.png", "D-D rate (both defect)"),
        ]:
            if plot_cooperation(runs, out / name, key, label):
                plots.append(out / name)
    if figure.metric == "heads" and runs and plot_heads(runs, out / "heads.png"):
        plots.append(out / "heads.png")
    return plots
