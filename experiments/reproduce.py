"""``confide reproduce <id>``: run one paper figure (``experiments/figures/<id>.toml``, format in
``experiments.figure_spec``) and say whether confide reproduces it.

The figure's sweep at the chosen scale goes through the sweep runner (``experiments.sweep.run_sweep``:
parallel, resumable, Ray), which writes its own ``report.md``. Then ``result.md`` and ``result.json``
put the paper's claim beside confide's measurement (``experiments.figure_measure``: units, statistics,
checks) with the figure's plots, and the figure's row of the results page (``docs/RESULTS.md``,
``experiments.results_page``) is updated. DPO Fig. 11 runs the exact iteration of ``core.dpo_exact``
with the scaled-down M̂ of decision 7 instead of a sweep.

``--updates``/``--batch``/``--seeds`` shrink a scale further. Shrinking ``quick`` gives a "custom" run, a
pipeline check whose result is written but never put on the results page; shrinking ``paper`` gives a
"reduced" reproduction (the largest that fits a machine), shown on the page as reduced until a full
``paper`` run replaces it. Rerunning into the same ``--out`` resumes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from confide.experiments.config import ConfigError, TrainConfig
from confide.experiments.figure_measure import (
    UNITS,
    checks,
    load_points,
    main_key,
    measurement_table,
    write_plots,
)
from confide.experiments.figure_spec import (
    PAPER_FILES,
    PAPER_NAMES,
    SCALES,
    Figure,
    load_figure,
    load_figures,
)
from confide.experiments.html_report import write_html
from confide.experiments.io import atomic_write_bytes, atomic_write_json
from confide.experiments.provenance import code_note, code_spread
from confide.experiments.sweep import (
    Sweep,
    SweepResult,
    check_ray_available,
    check_run_dirs,
    expand,
    points,
    run_sweeps,
)

NORMALISATION = {
    "as": "AS plots 'normalized final total returns' but never defines the normalisation: confide shows "
    "the raw collective (total) return and its own normalised return, not the paper's numbers.",
    "ss": "SS's averaged return = collective return / (N·T) (SS Sec. 5.3). SS does not define the further "
    "normalisation of its Fig. 2; confide adds its own normalised return where an optimum is known.",
    "dpo": "DPO plots the team episode return = confide's collective return / N (team reward mode).",
}


def default_out(fig_id: str, label: str) -> Path:
    return Path("runs") / "reproduce" / f"{fig_id}_{label}"


SHRINK_KEYS = ("updates", "batch", "seeds")


def out_label(scale: str, overrides: dict[str, Any]) -> str:
    """``quick``/``paper``, or with a shrink its values, e.g. ``paper_updates400_seeds3``.

    Each shrink gets its own directory, so the command a results-page row names reruns into the runs
    it measured (and trains nothing if they are complete) instead of colliding with another shrink's.
    """
    shrink = "".join(f"_{key}{overrides[key]}" for key in SHRINK_KEYS if key in overrides)
    return f"{scale}{shrink}"


def sweep_shape(sweep: Sweep) -> dict[str, Any]:
    """Runs, grid points, seeds, updates and episodes per update, read from the sweep's mapping (so a
    blocked figure, whose configs do not validate, is described too)."""
    train = sweep.base.get("train", {})
    n_points = len(points(sweep))
    return {
        "runs": n_points * len(sweep.seeds),
        "points": n_points,
        "seeds": len(sweep.seeds),
        "updates": train.get("updates", TrainConfig.updates),
        "batch": train.get("batch", TrainConfig.batch),
    }


def scale_shape(figure: Figure, scale: str) -> dict[str, Any]:
    if figure.metric == "exact":
        return {"runs": 4, "iterations": int(figure.exact_params(scale)["iterations"])}
    return sweep_shape(figure.sweep(scale))


def describe_shape(shape: dict[str, Any]) -> str:
    if "iterations" in shape:
        return f"4 games × ≤{shape['iterations']} exact iterations"
    p, s = shape["points"], shape["seeds"]
    return (
        f"{shape['runs']} runs ({p} point{'s' * (p != 1)} × {s} seed{'s' * (s != 1)}) × "
        f"{shape['updates']} updates × {shape['batch']} episodes"
    )


def rerun_command(figure: Figure, scale: str, overrides: dict[str, Any]) -> str:
    shrink = "".join(f" --{k} {v}" for k, v in overrides.items())
    return f"confide reproduce {figure.id} --scale {scale}{shrink}"


def _shown_path(out: Path) -> str:
    """``out`` relative to the working directory when inside it (a page should not name one machine)."""
    try:
        return str(out.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(out)


def _record(
    figure: Figure, scale: str, overrides: dict[str, Any], out: Path, shape: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": figure.id,
        "paper": figure.paper,
        "figure": figure.figure,
        "scale": scale,
        "custom": bool(overrides),
        "reduced": bool(overrides) and scale == "paper",
        "command": rerun_command(figure, scale, overrides),
        "date": time.strftime("%Y-%m-%d"),
        "out": _shown_path(out),
        "shape": shape,
    }


def _head(figure: Figure, record: dict[str, Any]) -> list[str]:
    scale, custom = record["scale"], record["custom"]
    budget = figure.scales[scale].budget
    if custom:
        budget = f"shrunk by the command line from the scale's budget ({budget})"
    lines = [
        f"# {figure.title}",
        "",
        f"- **Paper:** {PAPER_NAMES[figure.paper]} (`{PAPER_FILES[figure.paper]}.txt`), {figure.figure}.",
        f"- **The paper's claim:** {figure.claim}",
        f"- **Scale:** `{scale}`{' (reduced)' if record.get('reduced') else ' (custom)' if custom else ''}, "
        f"{describe_shape(record['shape'])}: {budget}.",
        f"- **Rerun:** `{record['command']}`",
    ]
    if record.get("reduced"):
        lines.append("- **A reduced reproduction:** below the paper scale's budget (the largest that fit).")
    elif scale == "quick" or custom:
        lines.append("- **A pipeline check, not a reproduction:** far below the paper's budget.")
    if figure.notes:
        lines.append(f"- **confide's choices:** {figure.notes}")
    return lines


def _checks_table(found: list[dict[str, str]]) -> list[str]:
    lines = ["| check | confide | verdict |", "| --- | --- | --- |"]
    return lines + [f"| {c['expect']} | {c['measured']} | {c['verdict']} |" for c in found]


def measure_sweep(
    figure: Figure, record: dict[str, Any], sweep: Sweep, out: Path, failed: dict[str, str]
) -> dict[str, Any]:
    """Write ``result.md``, ``result.json`` and the plots of a finished sweep; return the record."""
    pts = load_points(sweep, out)
    main = main_key(figure, pts)
    found = checks(figure, pts, main)
    plots = write_plots(figure, pts, main, out)
    versions, mixed = code_spread([r["summary"] for p in pts for r in p.runs])
    record.update(
        {
            "code_versions": versions,
            "runs_mixed_code": mixed,
            "runs_complete": sum(len(p.runs) for p in pts),
            "run_seconds": sum(r["summary"]["wall_seconds"] for p in pts for r in p.runs),
            "failed": sorted(failed),
            "main": main,
            "main_unit": UNITS[main],
            "points": [
                {"label": p.label, "n": len(p.runs), "per_seed": [float(v) for v in p.values(main)]}
                for p in pts
            ],
            "checks": found,
        }
    )
    lines = [
        *_head(figure, record),
        f"- **Units:** {NORMALISATION[figure.paper]}",
        "",
        "## confide's measurement",
        "",
        f"Main score: {UNITS[main]}. Each run is scored over its last 10% of updates (the heads' columns "
        "also over the first 10%); a cell is the interquartile mean (IQM) over seeds with a 95% "
        "stratified-bootstrap interval.",
        "",
        *measurement_table(figure, pts, main),
    ]
    if found:
        lines += ["", "## The claim, checked", "", *_checks_table(found), ""]
        lines.append(
            "P(a > b): the probability that a run of a beats a run of b (ties count a half), with a 95% "
            "bootstrap interval over seeds and the exact one-sided rank (Mann–Whitney) test's p. `a > b` "
            "holds when the interval lies above 1/2 and p <= 0.05 (with 3 vs 3 seeds: every run of a "
            "above every run of b); `a >= b` unless b is higher by that rule (a weak test with few "
            "seeds: read the intervals); `a >= x`: the IQM's 95% interval's lower end. With 2–3 seeds a "
            "bootstrap interval cannot reach beyond the seeds it has: it is optimistic."
        )
    if code_note(versions, mixed):
        lines += ["", code_note(versions, mixed)]
    if failed:
        lines += [
            "",
            f"Failed runs ({len(failed)}): " + "; ".join(f"`{k}`: {v}" for k, v in sorted(failed.items())),
        ]
    pooled = record.get("pooled_figures", 1)
    call = f"this call, {pooled} figures in one pool" if pooled > 1 else "this call"
    lines += [
        "",
        f"{record['runs_complete']} of {record['shape']['runs']} runs complete, {record['run_seconds']:.0f} s of "
        f"training summed over runs ({call}: {record['wall_seconds']:.0f} s). The sweep's own table: "
        "[report.md](report.md).",
        "",
        "## Plots",
        "",
        *[f"![{p.stem}]({p.name})\n" for p in plots],
    ]
    atomic_write_bytes(out / "result.md", ("\n".join(lines).rstrip() + "\n").encode())
    write_html(out / "result.md")
    atomic_write_json(out / "result.json", record)
    return record


def run_exact(figure: Figure, record: dict[str, Any], out: Path) -> dict[str, Any]:
    """DPO Fig. 11 by the exact Eq. 17 iteration (``core.dpo_exact``) with the scaled-down M̂."""
    from confide.core.dpo_exact import FIG11_STARTS, fig11_traces, plot_dpo_exact, theorem_m_hat
    from confide.envs.matrix_games import MATRIX_GAMES

    p = figure.exact_params(record["scale"])
    traces = fig11_traces(m_hat=float(p["m_hat"]), c=float(p["c"]), iterations=int(p["iterations"]))
    out.mkdir(parents=True, exist_ok=True)
    plot_dpo_exact(traces, out / "dpo_exact.png")
    table = [
        "| game | start (p, q) | J₀ → J_T | optimum | steps | converged | smallest ΔJ |",
        "|" + " --- |" * 7,
    ]
    games = []
    for g, tr in zip(MATRIX_GAMES, traces, strict=True):
        dj = float(np.diff(tr.J).min()) if tr.n_steps else 0.0
        games.append(
            {
                "game": g.name,
                "J0": float(tr.J[0]),
                "JT": float(tr.J[-1]),
                "optimum": g.optimum(),
                "min_dJ": dj,
            }
        )
        games[-1]["converged"] = bool(tr.converged)
        table.append(
            f"| {g.name} | {FIG11_STARTS[g.name]} | {tr.J[0]:.3f} → {tr.J[-1]:.3f} | {g.optimum():.1f} | "
            f"{tr.n_steps} | {'yes' if tr.converged else 'no'} | {dj:+.1e} |"
        )
    monotone = sum(g["min_dJ"] >= -1e-9 for g in games)
    converged = sum(g["converged"] for g in games)
    spans = [float(g.payoff.max() - g.payoff.min()) for g in MATRIX_GAMES]
    trapped = [
        g["game"] for g, span in zip(games, spans, strict=True) if g["JT"] < g["optimum"] - 0.01 * span
    ]
    found = [
        {
            "expect": "J(π_t) never decreases",
            "measured": f"{monotone}/4 games (ΔJ ≥ −1e-9 at every step)",
            "verdict": "holds" if monotone == 4 else "does not hold",
        },
        {
            "expect": "(p_t, q_t) converge",
            "measured": f"{converged}/4 games within {p['iterations']} steps",
            "verdict": "holds" if converged == 4 else "not within the budget",
        },
        {
            "expect": "games 1 and 2 can stop at a sub-optimum",
            "measured": "more than 1% of the payoff range below the optimum: "
            + (", ".join(trapped) or "none"),
            "verdict": "as the paper reports" if trapped == ["matrix_game_1", "matrix_game_2"] else "differs",
        },
    ]
    record.update(
        {
            "runs_complete": 4,
            "failed": [],
            "main": "J",
            "main_unit": "J(π_T)",
            "games": games,
            "checks": found,
        }
    )
    frozen = ", ".join(f"{theorem_m_hat(g):.1f}" for g in MATRIX_GAMES)
    lines = [
        *_head(figure, record),
        f"- **Decision 7:** M̂ = {p['m_hat']} (scaled down), C = {p['c']}. With the theorem's M̂ ({frozen} "
        "for games 1–4) the √KL penalty outweighs the gain and the iteration does not move at all.",
        "",
        "## confide's measurement",
        "",
        *table,
        "",
        "## The claim, checked",
        "",
        *_checks_table(found),
        "",
        "## Plot",
        "",
        "![exact DPO iteration](dpo_exact.png)",
    ]
    atomic_write_bytes(out / "result.md", ("\n".join(lines) + "\n").encode())
    write_html(out / "result.md")
    atomic_write_json(out / "result.json", record)
    return record


@dataclass
class Reproduction:
    """A validated reproduction, ready to :meth:`run`; nothing has run or been written yet."""

    figure: Figure
    scale: str
    out: Path
    overrides: dict[str, Any]
    workers: int | None = None
    ray_address: str | None = None
    page: Path | None = None
    progress: bool = True
    train: bool = True  # False: measure the runs complete so far, train nothing

    @property
    def custom(self) -> bool:
        return bool(self.overrides)

    @property
    def on_page(self) -> bool:
        """Whether the result goes on the results page: every run but a shrunk ``quick``."""
        return self.page is not None and (not self.custom or self.scale == "paper")

    def sweep(self) -> Sweep | None:
        """The sweep to run (None for the exact iteration)."""
        return None if self.figure.metric == "exact" else self.figure.sweep(self.scale, self.overrides)

    def run(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Run the figure, write ``result.md`` and (unless custom) update the results page.

        Returns the record (``result.json``) and the failed runs (run id -> one-line error)."""
        started = time.perf_counter()
        sweep = self.sweep()
        result = None
        if sweep is not None:
            (result,) = run_sweeps(
                [(sweep, self.out)],
                workers=self.workers,
                ray_address=self.ray_address,
                progress=self.progress,
                train=self.train,
            )
        return self.finish(result, started)

    def finish(
        self, result: SweepResult | None, started: float, pooled: int = 1
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Measure the finished sweep ``result`` (or run the exact iteration when it is None), write
        ``result.md`` and update the page. ``pooled``: figures whose runs shared the call's pool."""
        from confide.experiments.results_page import record_result

        failed: dict[str, str] = {}
        if result is None:
            record = _record(self.figure, self.scale, {}, self.out, scale_shape(self.figure, self.scale))
            record["wall_seconds"] = 0.0
            record = run_exact(self.figure, record, self.out)
        else:
            sweep = self.figure.sweep(self.scale, self.overrides)
            failed = result.failed
            record = _record(self.figure, self.scale, self.overrides, result.out, sweep_shape(sweep))
            record["wall_seconds"] = time.perf_counter() - started
            record["pooled_figures"] = pooled
            record = measure_sweep(self.figure, record, sweep, result.out, failed)
        record["wall_seconds"] = time.perf_counter() - started
        atomic_write_json(self.out / "result.json", record)
        if self.on_page:
            record_result(self.page, record)
        return record, failed


def prepare(
    fig_id: str,
    scale: str = "quick",
    *,
    out: Path | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    overrides: dict[str, Any] | None = None,
    page: Path | None = None,
    progress: bool = True,
) -> Reproduction:
    """Load and validate everything a reproduction needs; any problem is a one-line ``ConfigError``.

    ``overrides``: ``updates``, ``batch``, ``seeds`` (None entries ignored) shrink the scale further.
    """
    figure = load_figure(fig_id)
    if figure.blocked:
        raise ConfigError(f"{fig_id} cannot run yet: {figure.blocked}")
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r} (known: {', '.join(SCALES)})")
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if workers is not None and not 1 <= workers <= 256:
        raise ConfigError(f"--workers must be in 1..256, got {workers}")
    out = Path(out) if out is not None else default_out(fig_id, out_label(scale, overrides))
    if figure.metric == "exact":
        if overrides or ray_address is not None:
            raise ConfigError(
                f"{fig_id} runs the exact iteration: --updates, --batch, --seeds, --ray do not apply"
            )
    else:
        sweep = figure.sweep(scale, overrides)
        check_run_dirs(expand(sweep), out)  # every config validated; another config's runs refused
        if ray_address is not None:
            if not ray_address.strip():
                raise ConfigError("--ray: empty address")
            check_ray_available()
    return Reproduction(figure, scale, out, overrides, workers, ray_address, page, progress)


def list_lines() -> list[str]:
    """One line per figure: id, paper and figure, environment, what each scale runs, and why a blocked
    figure cannot run."""
    lines = []
    for f in load_figures():
        if f.metric == "exact":
            where = "matrix games 1–4 (exact iteration)"
        else:
            env = f.base.get("env", {})
            where = env.get("name", "predation") + (f" N={env['agents']}" if "agents" in env else "")
            where += f" ({env['scheme']} payoffs)" if "scheme" in env else ""
        scales = "; ".join(f"{s}: {describe_shape(scale_shape(f, s))}" for s in SCALES)
        blocked = f" — CANNOT RUN YET: {f.blocked}" if f.blocked else ""
        lines.append(f"{f.id}  [{PAPER_NAMES[f.paper]} {f.figure}; {where}]  {scales}{blocked}")
    return lines
