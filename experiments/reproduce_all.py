"""``confide reproduce --all`` (or several ids): many figures in one call, their runs in one pool.

Running the figures one after another would start a pool per figure and leave a core idle while each
figure's last run finishes; here every figure's pending runs go to one pool (``experiments.sweep.
run_sweeps``, longest first), then each figure is measured as ``confide reproduce <id>`` would
(``result.md``, plots, its row of the results page), and the exact iteration (DPO Fig. 11) runs in
this process. ``index.md`` under the root lists every figure with its checks and run time, and the
call's wall time. Rerunning the same call resumes: complete runs are skipped, interrupted ones resume
from their checkpoints.

``--updates``/``--batch``/``--seeds`` shrink every sweep figure (``experiments.reproduce``: a shrunk
``quick`` stays off the results page, a shrunk ``paper`` is shown as reduced); the exact iteration is
cheap and always runs unshrunk at the chosen scale.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confide.experiments.config import ConfigError
from confide.experiments.figure_measure import curve_unit, load_points, main_key, plot_panels
from confide.experiments.figure_spec import Figure, figure_ids, load_figure, load_figures
from confide.experiments.html_report import write_html
from confide.experiments.io import atomic_write_bytes, atomic_write_json
from confide.experiments.reproduce import Reproduction, default_out, describe_shape, out_label, prepare
from confide.experiments.sweep import run_sweeps


def runnable_ids() -> list[str]:
    return [f.id for f in load_figures() if f.runnable]


@dataclass
class Batch:
    """Validated reproductions ready to :meth:`run` together; nothing has run or been written yet."""

    jobs: list[Reproduction]
    scale: str
    root: Path
    workers: int | None = None
    ray_address: str | None = None
    progress: bool = True
    train: bool = True  # False: measure the runs complete so far, train nothing

    def run(self) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Run every figure; return the records and the failed runs (``<figure>/<run id>`` -> error)."""
        started = time.perf_counter()
        sweeps = [j for j in self.jobs if j.sweep() is not None]
        results = run_sweeps(
            [(j.sweep(), j.out) for j in sweeps],
            workers=self.workers,
            ray_address=self.ray_address,
            progress=self.progress,
            train=self.train,
        )
        runs_done = time.perf_counter() - started
        by_id = {j.figure.id: r for j, r in zip(sweeps, results, strict=True)}
        records, failed = [], {}
        for job in self.jobs:
            if job.figure.id in by_id:
                record, bad = job.finish(by_id[job.figure.id], started, pooled=len(sweeps))
            else:
                record, bad = job.finish(None, time.perf_counter())
            records.append(record)
            failed.update({f"{job.figure.id}/{k}": v for k, v in bad.items()})
        panels = write_panels(sweeps, self.root)
        wall = time.perf_counter() - started
        write_index(self.root / "index.md", self.scale, records, wall, runs_done, panels)
        atomic_write_json(
            self.root / "index.json",
            {"scale": self.scale, "wall_seconds": wall, "runs_seconds": runs_done, "figures": records},
        )
        return records, failed


def panel_groups(figures: list[Figure]) -> dict[str, list[Figure]]:
    """Figures that are one paper figure split by environment or setting ("Fig. 2 (Cleanup)", "Fig. 2
    (Harvest)", …), keyed by their ids' common prefix (``as_fig2``); only groups of two or more."""
    groups: dict[tuple[str, str], list[Figure]] = {}
    for f in figures:
        groups.setdefault((f.paper, f.figure.split(" (")[0]), []).append(f)
    return {
        "_".join(os.path.commonprefix([f.id.split("_") for f in members])): members
        for members in groups.values()
        if len(members) > 1
    }


def write_panels(jobs: list[Reproduction], root: Path) -> list[Path]:
    """``<prefix>_panels.png`` under ``root`` for each paper figure run as several ids: their learning
    curves side by side, a panel per environment or setting, as the paper lays them out."""
    by_id = {j.figure.id: j for j in jobs}
    written = []
    for key, members in panel_groups([j.figure for j in jobs]).items():
        panels = []
        for figure in members:
            job = by_id[figure.id]
            pts = load_points(job.sweep(), job.out)
            panels.append((figure.figure, pts, curve_unit(figure, pts, main_key(figure, pts))))
        path = root / f"{key}_panels.png"
        plot_panels(panels, path, f"{members[0].paper.upper()} {members[0].figure.split(' (')[0]}")
        written.append(path)
    return written


def write_index(
    path: Path,
    scale: str,
    records: list[dict[str, Any]],
    wall: float,
    runs: float,
    panels: Sequence[Path] = (),
) -> None:
    """One line per figure: where its result is, what ran, its checks and its summed run time."""
    lines = [
        f"# confide reproduce, {len(records)} figures at the `{scale}` scale",
        "",
        f"Wall time of the call: {wall:.0f} s ({runs:.0f} s running the pooled runs, the rest measuring, "
        "plotting and the exact iteration).",
        "",
        "| figure | ran | runs complete | compute (s, summed over runs) | checks |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in records:
        where = Path(r["out"]).name
        seconds = r.get("run_seconds", r["wall_seconds"])
        checks = "; ".join(f"`{c['expect']}` {c['verdict']}" for c in r["checks"]) or "—"
        lines.append(
            f"| [{r['id']}]({where}/result.md) | {describe_shape(r['shape'])} | "
            f"{r['runs_complete']}/{r['shape']['runs']} | {seconds:.0f} | {checks.replace('|', '/')} |"
        )
    if panels:
        lines += ["", "## Paper figures as panels", ""]
        lines += [f"![{p.stem}]({p.relative_to(path.parent)})\n" for p in panels]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    write_html(path)


def prepare_batch(
    ids: list[str] | None,
    scale: str = "quick",
    *,
    root: Path | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    overrides: dict[str, Any] | None = None,
    page: Path | None = None,
    progress: bool = True,
) -> Batch:
    """Validate every figure of ``ids`` (None: every runnable figure) before anything runs.

    Each figure's directory is ``<root>/<id>_<scale>`` (``root`` default ``runs/reproduce``), the
    same as ``confide reproduce <id>`` uses, so single and batch calls resume each other's runs."""
    if ids is None:
        ids = runnable_ids()
    if not ids:
        raise ConfigError("reproduce: no figure to run")
    known = set(figure_ids())
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ConfigError(f"unknown figure {unknown[0]!r}; list them with: confide reproduce --list")
    if len(set(ids)) != len(ids):
        raise ConfigError("reproduce: a figure id is given twice")
    shrink = {k: v for k, v in (overrides or {}).items() if v is not None}
    root = Path(root) if root is not None else default_out("all", scale).parent
    jobs = []
    for fig_id in ids:
        exact = load_figure(fig_id).metric == "exact"  # cheap: runs unshrunk, at the scale
        job = prepare(
            fig_id,
            scale,
            out=root / f"{fig_id}_{out_label(scale, {} if exact else shrink)}",
            workers=workers,
            ray_address=None if exact else ray_address,
            overrides=None if exact else shrink,
            page=page,
            progress=progress,
        )
        jobs.append(job)
    return Batch(jobs, scale, root, workers, ray_address, progress)
