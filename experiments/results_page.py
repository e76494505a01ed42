"""The results page, ``docs/RESULTS.md``: every figure's claim beside confide's measurement.

The page is generated: its text comes from the figure files (``experiments/figures/*.toml``) and its
measurements from the records that ``confide reproduce`` leaves, which the page itself carries in an
HTML comment at its end (``<!-- confide-results … -->``, one JSON object: figure id -> scale -> the
``result.json`` record). :func:`record_result` adds one record and rewrites the page; it holds an
exclusive ``flock`` on the page's directory for the read-modify-write, and the write is atomic, so
reproductions finishing at the same time neither lose each other's rows nor leave half a page.
``confide report`` (or ``confide reproduce --summary``; :func:`regenerate`) rewrites the page from the
figure files, keeping the records and rechecking their claims (run it after editing a figure file).

The "confide's measurement" column shows the ``paper`` scale only, or, until one exists, a ``paper``
run shrunk to fit (``--updates``/``--batch``/``--seeds``), marked as reduced; a ``quick`` run is a
pipeline check and has its own column. A figure that cannot run yet says why.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confide.experiments.figure_measure import ci_text, recheck
from confide.experiments.figure_spec import PAPER_FILES, PAPER_NAMES, Figure, load_figures
from confide.experiments.io import atomic_write_bytes
from confide.experiments.provenance import code_note
from confide.experiments.reproduce import describe_shape

CHECKOUT_PAGE = Path(__file__).resolve().parents[1] / "docs" / "RESULTS.md"
# From a checkout the repository's page; from an installed package, docs/RESULTS.md under the working
# directory (never a file inside site-packages).
DEFAULT_PAGE = CHECKOUT_PAGE if CHECKOUT_PAGE.exists() else Path("docs") / "RESULTS.md"
DATA = re.compile(r"<!-- confide-results\n(.*?)\n-->", re.S)
TITLES = {
    "as": "Learning to Cooperate under Private Rewards (Anticipation Sharing)",
    "ss": "Achieving Collective Welfare in MARL via Suggestion Sharing",
    "dpo": "A Fully Decentralized Surrogate for Multi-Agent Policy Optimization",
}
INTRO = """\
# Does confide reproduce the papers?

Every figure of the three papers that confide can run is one command, `confide reproduce <id>`, at two
scales: `--scale quick` (minutes; checks the pipeline, says nothing about the paper) and `--scale paper`
(the paper's seeds and budget as far as the paper states them; each figure file says where it does not).
`confide reproduce --list` lists the ids and what each scale runs; the figure files are
`experiments/figures/<id>.toml`. A reproduction writes `result.md` beside its runs (the claim, confide's
table, the checks and the plots) and fills its row below. `confide reproduce --all --scale quick` runs
every figure in one call, all their runs in one pool, and writes `runs/reproduce/index.md` (and
`index.html`, with every paper figure split by environment drawn as one panel plot; a complete pass, 35
figures and 262 runs on 2 workers, took 580 s here on 7 December 2026, every run complete); several ids
(`confide reproduce ss_fig3 as_fig6 --scale paper`) share a pool the same way. A `paper` run shrunk to
fit (`--updates`, `--batch`, `--seeds`) is shown as **reduced scale** until a full one replaces it.

How to read a measurement. Each run is scored over its last 10% of updates; a grid point's number is the
interquartile mean (IQM) over seeds with a 95% stratified-bootstrap interval (rliable's statistics,
`experiments/stats.py`, 10,000 resamples from a fixed generator). A claim is turned into checks on those
per-seed scores through the probability of improvement P(a > b), the chance that a run of a beats a run
of b (ties count a half), with its 95% bootstrap interval and the exact one-sided rank (Mann–Whitney)
test behind it: `a > b` holds when the interval lies above 1/2 and the test gives p <= 0.05 (with 3 vs 3
seeds that needs every run of a above every run of b, p = 1/20); `a >= b` ("matches or exceeds") holds
unless b is higher by the same rule — a weak test with few seeds, so read the intervals too; `a >= 0.9`
holds when the IQM's interval lies above. With 2–3 seeds a bootstrap interval cannot reach beyond the
seeds it has (with 3 seeds the IQM is their mean and its interval their range): it is optimistic, which
is why a claim also needs the rank test; every check says how many seeds it rests on. `confide report`
recomputes every check from the per-seed scores the page stores. A measured row starts with its
verdict: reproduced (every check holds), partly (some do) or not reproduced (none). Units compare like with like: SS's "averaged return" is the collective
return / (N·T); DPO plots the team return (collective / N); **AS never defines the normalisation of its
"normalized final total returns"**, so AS rows give the raw collective return and confide's own
normalised return (R − R_floor)/(R_opt − R_floor), which is not the paper's number. AS figures use the
`as` C. Predation payoffs and SS figures the `ss` ones (decision 1). No paper states its training budget
in its text; the `paper` scale uses confide's choice (said in each row's file).

Not covered: DPO Fig. 3 and 6 (multi-agent MuJoCo: not wired), Fig. 4, 7, 10 and 12 (SMAC: needs the
StarCraft II binary); AS Fig. 1 and 8 and SS Fig. 6 and 7 are illustrations.
"""
HEADER = (
    "| id | figure | setting | the paper's claim | command | confide's measurement (`paper` scale) "
    "| quick check |"
)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``directory`` (released on exit, also if the process dies)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_records(page: Path) -> dict[str, dict[str, Any]]:
    """The records a page carries (empty if the page does not exist or carries none)."""
    try:
        match = DATA.search(page.read_text())
    except FileNotFoundError:
        return {}
    return json.loads(match.group(1)) if match else {}


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def setting(figure: Figure) -> str:
    if figure.metric == "exact":
        p = figure.exact
        return f"matrix games 1–4, exact Eq. 17, M̂ = {p['m_hat']} (decision 7), C = {p['c']}"
    env = figure.base.get("env", {})
    parts = [env.get("name", "predation")]
    if "agents" in env:
        parts.append(f"N = {env['agents']}")
    if "scheme" in env:
        parts.append(f"`{env['scheme']}` payoffs")
    if env.get("reward") == "team":
        parts.append("team reward")
    topology = figure.base.get("topology", {})
    if "kind" in topology:
        kind = topology["kind"]
        parts.append(
            f"{topology.get('partners', 2)} random partner(s)"
            if kind == "random_partners"
            else f"{kind} graph"
        )
    if topology.get("period", 1) != 1:
        parts.append(f"talk every {topology['period']} updates")
    names = {"algo.name": "algorithms"}
    grid = "; ".join(f"{names.get(k, k)}: {', '.join(map(str, v))}" for k, v in figure.grid.items())
    return ", ".join(parts) + (f"; {grid}" if grid else "")


HOLDS = ("holds", "as the paper reports")


def verdict(record: dict[str, Any]) -> str:
    """reproduced (every check holds), partly (some do), not reproduced (none), or no check."""
    checks = record["checks"]
    if not checks:
        return "no check: read the numbers"
    held = sum(c["verdict"].startswith(HOLDS) for c in checks)
    word = "reproduced" if held == len(checks) else "partly" if held else "not reproduced"
    return f"{word} ({held} of {len(checks)} checks hold)"


def measurement(record: dict[str, Any]) -> str:
    """One cell: the verdict, the shape of the run, each grid point's score and each check's verdict."""
    shape = describe_shape(record["shape"])
    if "games" in record:
        scores = ", ".join(f"{g['game'][-1]}: {g['J0']:.2f} → {g['JT']:.2f}" for g in record["games"])
        body = f"J per game {scores}"
    else:
        parts = []
        for p in record["points"]:
            if not p["per_seed"]:
                parts.append(f"{p['label']} —")
                continue
            parts.append(f"{p['label']} {ci_text(p['per_seed'])}")
        body = f"{record['main_unit']}: " + "; ".join(parts)
    checks = "; ".join(f"`{c['expect']}` {c['verdict']}" for c in record["checks"])
    failed = f" {len(record['failed'])} run(s) failed." if record.get("failed") else ""
    done, planned = record.get("runs_complete", 0), record["shape"]["runs"]
    partial = f" Only {done} of {planned} runs complete." if done < planned else ""
    seconds = record.get("run_seconds", record["wall_seconds"])  # exact figures: the call's wall time
    what = "of training summed over runs" if "run_seconds" in record else "wall"
    head = f"**{verdict(record)}.** {record['date']}, {shape}, {seconds:,.0f} s {what}.{partial} {body}."
    mixed = code_note(record.get("code_versions", []), record.get("runs_mixed_code", 0))
    return _cell(head + (f" Checks: {checks}." if checks else "") + failed + (f" {mixed}" if mixed else ""))


def paper_measurement(records: dict[str, Any]) -> str:
    """The ``paper`` record's cell, else the reduced one's (marked), else "not run yet"."""
    if "paper" in records:
        return measurement(records["paper"])
    if "paper_reduced" in records:
        reduced = records["paper_reduced"]
        return _cell(f"**Reduced scale** (`{reduced['command']}`):") + " " + measurement(reduced)
    return "not run yet"


def quick_check(record: dict[str, Any]) -> str:
    """The pipeline check: did every run finish, and how long did it take."""
    what = "games" if "games" in record else "runs"
    done = f"{record['runs_complete']}/{record['shape']['runs']} {what} complete"
    failed = f", {len(record['failed'])} failed" if record.get("failed") else ""
    seconds = record.get("run_seconds", record["wall_seconds"])  # exact figures: the call's wall time
    return _cell(f"{record['date']}: {done}{failed}, {seconds:.0f} s of compute")


def render(figures: list[Figure], records: dict[str, dict[str, Any]]) -> str:
    lines = [INTRO]
    for paper in PAPER_NAMES:
        lines += [
            f"## {PAPER_NAMES[paper]}: {TITLES[paper]} (`{PAPER_FILES[paper]}.txt`)",
            "",
            HEADER,
            "|" + " --- |" * 7,
        ]
        for f in (f for f in figures if f.paper == paper):
            rec = records.get(f.id, {})
            if f.blocked:
                paper_cell, quick_cell = _cell(f"**cannot run yet:** {f.blocked}"), "—"
            else:
                paper_cell = paper_measurement(rec)
                quick_cell = quick_check(rec["quick"]) if "quick" in rec else "not run yet"
            command = f"`confide reproduce {f.id} --scale paper`"
            cells = [f"`{f.id}`", f.figure, setting(f), f.claim, command, paper_cell, quick_cell]
            lines.append("| " + " | ".join(_cell(c) for c in cells[:5]) + f" | {paper_cell} | {quick_cell} |")
        lines.append("")
    rows = (f"{json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(records.items()))
    data = ("{\n" + ",\n".join(rows) + "\n}").replace(">", "\\u003e")  # no "-->" inside the comment
    lines += ["<!-- confide-results", data, "-->"]
    return "\n".join(lines) + "\n"


def regenerate(page: Path = DEFAULT_PAGE) -> Path:
    """Rewrite ``page`` from the figure files, keeping the records it carries; their checks are
    recomputed from the per-seed scores (``figure_measure.recheck``), so the page follows the figure
    files' expectations and the current statistics."""
    with _locked(page.parent):
        figures = {f.id: f for f in load_figures()}
        records = {
            fid: {scale: recheck(r, figures[fid]) if fid in figures else r for scale, r in by_scale.items()}
            for fid, by_scale in read_records(page).items()
        }
        atomic_write_bytes(page, render(list(figures.values()), records).encode())
    return page


def record_result(page: Path, record: dict[str, Any]) -> Path:
    """Store ``record`` (a ``result.json``) as its figure's ``scale`` entry and rewrite ``page``."""
    with _locked(page.parent):
        records = read_records(page)
        key = "paper_reduced" if record.get("reduced") else record["scale"]
        records.setdefault(record["id"], {})[key] = record
        atomic_write_bytes(page, render(load_figures(), records).encode())
    return page
