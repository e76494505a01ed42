"""Figure files: one paper figure (or one panel of it) as a sweep with two scales, a claim and checks.

``experiments/figures/<id>.toml`` is a sweep file (``experiments.sweep``: ``title``, ``seeds``, ``base``,
``grid``) plus what a reproduction needs to say whether the paper's result holds::

    title = "AS Fig. 2, C. Predation (N = 8, `as` payoffs): AS against VS, VPS and PS"
    paper = "as"                    # as | ss | dpo: whose conventions (payoffs, units) apply
    figure = "Fig. 2"               # the figure (and panel) in the paper
    claim = "AS's total return matches or exceeds …"   # the paper's stated result, quoted briefly
    metric = "return"               # what is measured: return | cooperation | heads | exact
    expect = ["as >= vs", "as > ps"]                   # the claim as checks on the metric (optional)
    notes = "The paper names no …"  # confide's choices where the paper is silent (optional)
    blocked = "…"                   # why it cannot run yet; then nothing runs (optional)
    seeds = 5
    [base]                          # the run config every grid point starts from
    env = { name = "predation", agents = 8, scheme = "as" }
    [grid]
    "algo.name" = ["as", "vs", "vps", "ps"]
    [scales.quick]                  # both scales are required
    budget = "pipeline check"       # where the seeds and budget come from (stated or chosen)
    seeds = 2                       # replaces ``seeds``
    base.train = { updates = 10, batch = 4 }   # deep-merged into ``base``
    # grid = { … }                  # replaces the grid keys it names
    [scales.paper]
    budget = "5 seeds (Sec. 5.3); the budget is not stated: 1000 updates × 16 episodes (choice)"
    base.train = { updates = 1000, batch = 16 }

``quick`` runs in minutes and checks the pipeline; ``paper`` uses the paper's seeds and budget as far as
the paper states them (``budget`` says where it does not). The id is the file name.

Labels. A grid point is named by its values: ``algo.name`` by the algorithm (``as``), any other key by
its last part (``rho=0.1``; the whole dotted key if two keys end alike), joined by commas
(``kind=radius,period=2``). Expectations use these labels.

Expectations, checked on the metric's main score per seed (``experiments.reproduce``):

* ``"a > b"``: a scores higher than b (the 95% bootstrap interval of P(a > b) lies above 1/2 and the
  one-sided rank test gives p <= 0.05);
* ``"a >= b"``: a matches or exceeds b (b is not higher by that rule; with few seeds this is weak);
* ``"a >= 0.9"``: a reaches the number (the IQM's 95% interval's lower end, or at least the IQM).

Each paper's own settings: a C. Predation figure of AS must set ``env.scheme = "as"`` and one of SS
``"ss"`` (decision 1); a check refuses a file that leaves it to the default. ``metric = "exact"``
(DPO Fig. 11) runs no sweep: ``[exact]`` holds ``m_hat``, ``c`` and ``iterations`` of
``core.dpo_exact``, and a scale may override them (``[scales.quick.exact]``).
"""

from __future__ import annotations

import math
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from confide.experiments.config import ConfigError, merge
from confide.experiments.sweep import SWEEP_KEYS, Sweep, format_value, points, sweep_from_dict

FIGURES_DIR = Path(__file__).resolve().parent / "figures"
Paper = Literal["as", "ss", "dpo"]
Metric = Literal["return", "cooperation", "heads", "exact"]
Scale = Literal["quick", "paper"]
PAPERS: tuple[str, ...] = typing.get_args(Paper)
METRICS: tuple[str, ...] = typing.get_args(Metric)
SCALES: tuple[str, ...] = typing.get_args(Scale)
PAPER_FILES = {"as": "000_9541aced14aed718", "ss": "001_32c95e9dce044c48", "dpo": "002_896df4796e519d9e"}
PAPER_NAMES = {"as": "AS", "ss": "SS", "dpo": "DPO"}
FIGURE_KEYS = ("paper", "figure", "claim", "metric", "expect", "notes", "blocked", "scales", "exact")
SCALE_KEYS = ("budget", "seeds", "base", "grid", "exact")
EXACT_KEYS = ("m_hat", "c", "iterations")
EXPECTATION = re.compile(r"^\s*(\S+)\s*(>=|>)\s*(\S+)\s*$")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


@dataclass(frozen=True)
class Expectation:
    """``left op right``: ``right`` is a label or, with ``>=``, a number (``threshold``)."""

    text: str
    left: str
    op: Literal[">", ">="]
    right: str
    threshold: float | None


def parse_expectation(text: str, where: str) -> Expectation:
    match = EXPECTATION.match(text) if isinstance(text, str) else None
    _check(match is not None, f"{where}: expectation {text!r} is not 'a > b', 'a >= b' or 'a >= number'")
    left, op, right = match.groups()
    try:
        threshold = float(right)
    except ValueError:
        threshold = None
    _check(threshold is None or op == ">=", f"{where}: a threshold takes '>=', not {text!r}")
    return Expectation(text.strip(), left, op, right, threshold)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ScaleSpec:
    budget: str
    seeds: int | list[int] | None = None
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    exact: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Figure:
    """A parsed figure file; :meth:`sweep` gives the sweep of one scale."""

    id: str
    path: Path
    title: str
    paper: Paper
    figure: str
    claim: str
    metric: Metric
    expect: tuple[Expectation, ...]
    notes: str
    blocked: str
    seeds: Any
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    scales: dict[str, ScaleSpec]
    exact: dict[str, Any]

    @property
    def runnable(self) -> bool:
        return not self.blocked

    def sweep_data(self, scale: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The sweep mapping of ``scale``; ``overrides`` (``updates``, ``batch``, ``seeds``) shrink it."""
        _check(scale in SCALES, f"unknown scale {scale!r} (known: {', '.join(SCALES)})")
        s = self.scales[scale]
        data = {
            "title": self.title,
            "base": merge(self.base, s.base),
            "grid": {**self.grid, **s.grid},
            "seeds": self.seeds if s.seeds is None else s.seeds,
        }
        overrides = overrides or {}
        train = {k: overrides[k] for k in ("updates", "batch") if overrides.get(k) is not None}
        if train:
            data["base"] = merge(data["base"], {"train": train})
        if overrides.get("seeds") is not None:
            data["seeds"] = overrides["seeds"]
        return data

    def sweep(self, scale: str, overrides: dict[str, Any] | None = None) -> Sweep:
        return sweep_from_dict(self.sweep_data(scale, overrides), f"figure {self.id} ({scale})")

    def exact_params(self, scale: str) -> dict[str, Any]:
        return {**self.exact, **self.scales[scale].exact}

    def labels(self, scale: str) -> list[str]:
        """The grid points' labels in file order (``base`` for an empty grid)."""
        if self.metric == "exact":
            return []
        sweep = self.sweep(scale)
        return [point_label(point, list(sweep.grid)) for _, point in points(sweep)]


def point_label(point: dict[str, Any], keys: list[str]) -> str:
    """``as``, ``rho=0.1``, ``kind=radius,period=2``: see the module docstring."""
    tails = [k.split(".")[-1] for k in keys]
    parts = []
    for key, tail in zip(keys, tails, strict=True):
        if key not in point:
            continue
        value = format_value(point[key])
        if key == "algo.name":
            parts.append(value)
        else:
            parts.append(f"{tail if tails.count(tail) == 1 else key}={value}")
    return ",".join(parts) or "base"


def _scale(data: Any, where: str, exact: bool) -> ScaleSpec:
    _check(isinstance(data, dict), f"{where}: expected a table")
    unknown = sorted(set(data) - set(SCALE_KEYS))
    _check(not unknown, f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(SCALE_KEYS)})")
    budget = data.get("budget", "")
    _check(isinstance(budget, str) and budget.strip() != "", f"{where}: budget must say where it comes from")
    for key in ("base", "grid", "exact"):
        _check(isinstance(data.get(key, {}), dict), f"{where}: {key} must be a table")
    if exact:
        _check(not (set(data) & {"seeds", "base", "grid"}), f"{where}: an exact figure takes only exact")
    return ScaleSpec(
        budget, data.get("seeds"), data.get("base", {}), data.get("grid", {}), data.get("exact", {})
    )


def _text(data: dict[str, Any], key: str, where: str, required: bool = True) -> str:
    value = data.get(key, "")
    _check(isinstance(value, str), f"{where}: {key} must be a string")
    _check(not required or value.strip() != "", f"{where}: {key} is required")
    return " ".join(value.split())


def figure_from_dict(fig_id: str, data: Any, path: Path) -> Figure:
    """Check a figure mapping's shape, its scales, its paper's payoffs and its expectations' labels."""
    where = f"figure file {path}"
    _check(isinstance(data, dict), f"{where}: expected a table")
    unknown = sorted(set(data) - set(SWEEP_KEYS) - set(FIGURE_KEYS))
    _check(not unknown, f"{where}: unknown key(s) {', '.join(unknown)}")
    paper, metric = data.get("paper"), data.get("metric")
    _check(paper in PAPERS, f"{where}: paper must be one of {', '.join(PAPERS)}, got {paper!r}")
    _check(metric in METRICS, f"{where}: metric must be one of {', '.join(METRICS)}, got {metric!r}")
    exact = metric == "exact"
    scales = data.get("scales", {})
    _check(
        isinstance(scales, dict) and set(scales) == set(SCALES),
        f"{where}: needs exactly the scales {', '.join(SCALES)} ([scales.quick], [scales.paper])",
    )
    expect = data.get("expect", [])
    _check(isinstance(expect, list), f"{where}: expect must be a list of strings")
    exact_params = data.get("exact", {})
    if exact:
        _check(not (set(data) & {"base", "grid", "seeds"}), f"{where}: an exact figure runs no sweep")
        _check(isinstance(exact_params, dict), f"{where}: exact must be a table")
    figure = Figure(
        id=fig_id,
        path=path,
        title=_text(data, "title", where),
        paper=paper,
        figure=_text(data, "figure", where),
        claim=_text(data, "claim", where),
        metric=metric,
        expect=tuple(parse_expectation(e, where) for e in expect),
        notes=_text(data, "notes", where, required=False),
        blocked=_text(data, "blocked", where, required=False),
        seeds=data.get("seeds", 1),
        base=data.get("base", {}),
        grid=data.get("grid", {}),
        scales={s: _scale(scales[s], f"{where}: scales.{s}", exact) for s in SCALES},
        exact=exact_params,
    )
    for scale in SCALES:
        if exact:
            params = figure.exact_params(scale)
            _check(set(params) == set(EXACT_KEYS), f"{where}: exact needs {', '.join(EXACT_KEYS)}")
            _check(
                all(isinstance(v, int | float) and math.isfinite(v) for v in params.values()),
                f"{where}: exact values must be finite numbers",
            )
            continue
        sweep = figure.sweep(scale)
        env = sweep.base.get("env", {})
        if paper in ("as", "ss") and env.get("name") == "predation":
            _check(
                env.get("scheme") == paper,
                f"{where}: an {PAPER_NAMES[paper]} figure on C. Predation must set env.scheme = {paper!r}",
            )
        labels = figure.labels(scale)
        for e in figure.expect:
            for side in (e.left, None if e.threshold is not None else e.right):
                _check(
                    side is None or side in labels,
                    f"{where}: expectation {e.text!r} names {side!r}, not a grid point ({', '.join(labels)})",
                )
    return figure


def _natural(text: str) -> list[Any]:
    """Sort key that puts ``fig2`` before ``fig11``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def figure_ids(directory: Path = FIGURES_DIR) -> list[str]:
    """The figure ids (file names) under ``directory``, in paper and figure order."""
    return sorted((p.stem for p in directory.glob("*.toml")), key=_natural)


def load_figure(fig_id: str, directory: Path = FIGURES_DIR) -> Figure:
    """Read ``<directory>/<fig_id>.toml``; an unknown id or a bad file is a one-line ``ConfigError``."""
    known = figure_ids(directory)
    _check(
        isinstance(fig_id, str) and fig_id in known,
        f"unknown figure {fig_id!r}; list them with: confide reproduce --list",
    )
    path = directory / f"{fig_id}.toml"
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"figure file {path}: {(str(err).splitlines() or ['unreadable'])[0]}") from None
    return figure_from_dict(fig_id, data, path)


def load_figures(directory: Path = FIGURES_DIR) -> list[Figure]:
    return [load_figure(i, directory) for i in figure_ids(directory)]
