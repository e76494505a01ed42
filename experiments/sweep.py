"""Sweeps: a base config × a grid of dotted keys × seeds, run in parallel, resumable, optionally on Ray.

A sweep file (TOML or JSON) holds::

    title = "C. Predation N = 8: message drops"     # optional, heads the report
    seeds = 3                                       # seeds 0, 1, 2; or a list such as [0, 5, 9]
    [base]                                          # a run config mapping (``experiments.config``)
    env = { name = "predation", agents = 8 }
    channel = { loss = "bernoulli" }
    [grid]                                          # dotted config key -> list of values
    "algo.name" = ["as", "ss"]
    "channel.loss_probability" = [0, 0.1, 0.3]

:func:`expand` makes one run per grid point and seed (the cartesian product) and validates every one
before anything runs. A run's id names its grid point, keys sorted so reordering the file changes
nothing, and its seed: ``algo.name=as,channel.loss_probability=0.1/s0``; it is the run's directory
under the sweep directory (characters other than ``A-Za-z0-9._+-`` in values become ``_``).

:func:`run_sweep` runs what is not complete yet: a run with a checkpoint resumes from it (bit for bit
as if never interrupted, ``core.trainer``); a complete run is skipped. A run directory holding a run of
another config (the grid or base changed under the same id) is refused up front, never overwritten or
mixed into the results. ``sweep.json`` (the sweep and every run's status) is rewritten atomically as
runs finish; ``report.md`` and its plots (``experiments.sweep_report``) come last. A run that fails
(diverges, say) is recorded as failed and the others go on.

Locally the runs go to a pool of spawned processes (default: one per core, one torch thread each;
``workers=1`` runs them in this process). With ``ray_address`` each run is one Ray task
(``num_cpus`` = the run's ``train.threads``) on an existing cluster: ``"auto"`` (a cluster started
with ``ray start`` on this machine), ``"host:6379"``, ``"ray://host:10001"``, or ``"local"`` (a new
one-machine instance). Assumptions: every node has the same confide installed, and sees the sweep
directory at the same absolute path (a shared filesystem), since each task writes its own run
directory. Ray is an optional extra (``pip install 'confide[ray]'``), imported only here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import logging
import multiprocessing as mp
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from confide.experiments.checkpoint import checkpoint_path, config_differences, run_is_complete
from confide.experiments.compare import _run_one
from confide.experiments.config import ConfigError, config_from_dict, load_config_file, merge
from confide.experiments.io import atomic_write_json

SWEEP_KEYS = ("title", "base", "grid", "seeds")
MANIFEST = "sweep.json"
Status = Literal["complete", "pending", "failed"]
Job = tuple[str, dict[str, Any], str]  # run id, config mapping, run directory
JobResult = tuple[str, str | None, str]  # run directory, error (None: complete), one-line note


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: ``grid`` maps dotted config keys to their values, in file order."""

    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    title: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "base": self.base, "grid": self.grid, "seeds": list(self.seeds)}


@dataclass
class SweepResult:
    out: Path
    report: Path
    plots: list[Path]
    skipped: list[str]  # complete before this call
    ran: list[str]  # completed by this call
    failed: dict[str, str]  # run id -> one-line error


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def sweep_from_dict(data: Any, where: str = "sweep") -> Sweep:
    """Check a sweep mapping's shape (not yet the configs it expands to; :func:`expand` does)."""
    _check(isinstance(data, dict), f"{where}: expected a table/object")
    unknown = sorted(set(map(str, data)) - set(SWEEP_KEYS))
    _check(not unknown, f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(SWEEP_KEYS)})")
    title, base, grid = data.get("title", ""), data.get("base", {}), data.get("grid", {})
    _check(isinstance(title, str), f"{where}: title must be a string")
    _check(isinstance(base, dict), f"{where}: base must be a table/object (a run config)")
    _check(isinstance(grid, dict), f"{where}: grid must be a table/object of dotted keys to lists")
    train = base.get("train", {})
    _check(
        not (isinstance(train, dict) and "seed" in train),
        f"{where}: base.train.seed is set by the sweep's seeds; remove it",
    )
    for key, values in grid.items():
        parts = key.split(".")
        _check(
            all(p.isidentifier() for p in parts),
            f"{where}: grid key {key!r} is not a dotted config key (e.g. channel.loss_probability)",
        )
        _check(key != "train.seed", f"{where}: sweep seeds with the top-level seeds, not grid.train.seed")
        _check(
            isinstance(values, list) and len(values) > 0,
            f"{where}: grid.{key} must be a non-empty list of values",
        )
    seeds = data.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        _check(1 <= seeds <= 1000, f"{where}: seeds must be in 1..1000, got {seeds}")
        seeds = list(range(seeds))
    _check(
        isinstance(seeds, list)
        and len(seeds) > 0
        and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**63 for s in seeds)
        and len(set(seeds)) == len(seeds),
        f"{where}: seeds must be a count or a non-empty list of distinct non-negative integers",
    )
    return Sweep(base=base, grid={k: list(v) for k, v in grid.items()}, seeds=tuple(seeds), title=title)


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file (``.toml``, else JSON); errors are one-line ``ConfigError``s."""
    try:
        data = load_config_file(path)
    except ConfigError as err:  # the shared reader speaks of a config file
        raise ConfigError(str(err).replace("config file", "sweep file", 1)) from None
    return sweep_from_dict(data, f"sweep file {path}")


def format_value(value: Any) -> str:
    """A grid value as it appears in a run id: short, readable and safe in a file name."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, float):
        text = repr(value).removesuffix(".0")
    elif isinstance(value, int | str):
        text = str(value)
    elif isinstance(value, list):
        text = "+".join(format_value(v) for v in value) or "empty"
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text) or "_"


def point_id(point: dict[str, Any]) -> str:
    """``key=value,...`` over the sorted keys (``base`` for an empty grid); hashed past 200 bytes."""
    text = ",".join(f"{k}={format_value(point[k])}" for k in sorted(point)) or "base"
    if len(text.encode()) > 200:
        text = text[:180] + "~" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return text


def points(sweep: Sweep) -> list[tuple[str, dict[str, Any]]]:
    """Every grid point, ``(point id, {dotted key: value})``, in the product order of the file."""
    keys = list(sweep.grid)
    out: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for values in itertools.product(*(sweep.grid[k] for k in keys)):
        point = dict(zip(keys, values, strict=True))
        pid = point_id(point)
        _check(pid not in seen, f"grid points repeat the run id {pid} (a value is listed twice?)")
        seen.add(pid)
        out.append((pid, point))
    return out


def _nested(point: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in point.items():
        *sections, name = key.split(".")
        node = out
        for s in sections:
            node = node.setdefault(s, {})
            _check(isinstance(node, dict), f"grid: {key} lies inside another grid key's value")
        node[name] = value
    return out


def expand(sweep: Sweep | dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``[(run id, config mapping)]``, grid points × seeds; every config is validated (``ConfigError``
    naming the grid point)."""
    if not isinstance(sweep, Sweep):
        sweep = sweep_from_dict(sweep)
    runs = []
    for pid, point in points(sweep):
        data = merge(sweep.base, _nested(point))
        for seed in sweep.seeds:
            config = merge(data, {"train": {"seed": seed, "progress": False}})
            try:
                config_from_dict(config)
            except ConfigError as err:
                raise ConfigError(f"grid point {pid}: {err}") from None
            runs.append((f"{pid}/s{seed}", config))
    return runs


def check_run_dirs(runs: list[tuple[str, dict[str, Any]]], out: Path) -> None:
    """Refuse a sweep directory whose run of the same id was made with another config."""
    for run_id, data in runs:
        run_dir = out / run_id
        if not (run_is_complete(run_dir) or checkpoint_path(run_dir).exists()):
            continue  # nothing to keep: the run starts afresh
        try:
            saved = json.loads((run_dir / "config.json").read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"{run_dir}: unreadable config.json ({err}); remove the run directory"
            ) from None
        differs = config_differences(saved, data)  # both read through the current schema
        _check(
            not differs,
            f"{run_dir} holds a run of another config (differs in {', '.join(differs)}); "
            "use another --out or remove it",
        )


def check_ray_available() -> None:
    _check(
        importlib.util.find_spec("ray") is not None,
        "--ray needs Ray, which is not installed: pip install 'confide[ray]'",
    )


def run_job(job: Job) -> JobResult:
    """Train (or resume) one run; a failure is returned as one line, so the other runs go on. The
    result names the run by its directory (unique across the sweeps of one :func:`run_sweeps` call)."""
    _, data, out = job
    try:
        _, note = _run_one((data, out))
        return out, None, note
    except Exception as err:  # divergence, a bad checkpoint, a full disk: recorded per run
        first = (str(err).strip().splitlines() or [""])[0][:300]
        return out, f"{type(err).__name__}: {first}", ""


def _run_local(jobs: list[Job], workers: int) -> Iterator[JobResult]:
    if workers == 1:
        yield from map(run_job, jobs)
        return
    with mp.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap_unordered(run_job, jobs)


def _run_ray(jobs: list[Job], address: str, max_in_flight: int | None) -> Iterator[JobResult]:
    """One Ray task per run; at most ``max_in_flight`` submitted at once (None: Ray schedules all).

    A task whose worker dies is retried by Ray (its default), and the retry resumes from the run's
    checkpoint."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray, which is not installed: pip install 'confide[ray]'") from None
    connected_here = not ray.is_initialized()
    if connected_here:
        try:
            with warnings.catch_warnings():  # Ray's notice about GPU environment variables: no GPUs here
                warnings.simplefilter("ignore", FutureWarning)
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except Exception as err:  # Ray raises ConnectionError, RuntimeError, ValueError …
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise ConfigError(f"--ray {address}: cannot connect to Ray ({first})") from None
    task = ray.remote(run_job)
    waiting, running = list(jobs), {}
    try:
        while waiting or running:
            while waiting and (max_in_flight is None or len(running) < max_in_flight):
                job = waiting.pop(0)
                threads = config_from_dict(job[1]).train.threads
                running[task.options(num_cpus=threads).remote(job)] = job[2]
            (ready,), _ = ray.wait(list(running), num_returns=1)
            run_dir = running.pop(ready)
            try:
                yield ray.get(ready)
            except ray.exceptions.RayError as err:  # the worker died (killed, out of memory)
                yield run_dir, f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:300]}", ""
    finally:
        for ref in running:  # interrupted: the runs stop; their checkpoints let the next call resume
            ray.cancel(ref)
        if connected_here:
            ray.shutdown()


def _manifest(sweep: Sweep, runs: list[tuple[str, dict[str, Any]]], status: dict, notes: dict) -> dict:
    return {
        "sweep": sweep.to_dict(),
        "runs": [
            {"id": run_id, "seed": data["train"]["seed"], "status": status[run_id], "note": notes.get(run_id)}
            for run_id, data in runs
        ],
    }


def run_sweep(
    sweep: Sweep,
    out: Path,
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    progress: bool = True,
) -> SweepResult:
    """Run every incomplete run of ``sweep`` under ``out``, then write ``report.md`` and its plots.

    ``workers``: local processes (default: cores, at most the number of runs), or with
    ``ray_address`` the most Ray tasks in flight at once (default: as many as the cluster takes).
    """
    return run_sweeps([(sweep, Path(out))], workers=workers, ray_address=ray_address, progress=progress)[0]


@dataclass
class _Pending:
    """One sweep's bookkeeping while its runs are in the shared pool."""

    sweep: Sweep
    out: Path
    runs: list[tuple[str, dict[str, Any]]]
    status: dict[str, Status]
    skipped: list[str]  # complete before this call
    notes: dict[str, str] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def write_manifest(self) -> None:
        atomic_write_json(self.out / MANIFEST, _manifest(self.sweep, self.runs, self.status, self.notes))


def _cost(data: dict[str, Any]) -> int:
    """A rough size of one run (updates × episodes × agents), to start the longest runs first."""
    config = config_from_dict(data)
    return config.train.updates * config.train.batch * config.env.agents


def run_sweeps(
    items: list[tuple[Sweep, Path]],
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    progress: bool = True,
    train: bool = True,
) -> list[SweepResult]:
    """:func:`run_sweep` for several sweeps at once: their runs share one pool (longest first, so no
    core idles while a last long run finishes), and each sweep keeps its own directory, ``sweep.json``
    and report. Everything is checked before anything runs; the directories must differ.
    ``train=False`` runs nothing: only the reports of what is complete so far are written."""
    from confide.experiments.sweep_report import write_sweep_report

    outs = [Path(out).resolve() for _, out in items]  # Ray tasks on other nodes need the absolute path
    _check(len(set(outs)) == len(outs), "two sweeps of one call share a directory")
    pending: list[_Pending] = []
    for (sweep, _), out in zip(items, outs, strict=True):
        runs = expand(sweep)
        check_run_dirs(runs, out)
        status: dict[str, Status] = {
            r: "complete" if run_is_complete(out / r) else "pending" for r, _ in runs
        }
        skipped = [r for r, s in status.items() if s == "complete"]
        pending.append(_Pending(sweep, out, runs, status, skipped))
    if ray_address is not None:
        check_ray_available()
    owner: dict[str, tuple[_Pending, str]] = {}
    jobs: list[Job] = []
    for p in pending:
        p.out.mkdir(parents=True, exist_ok=True)
        p.write_manifest()
        for run_id, data in p.runs:
            if p.status[run_id] == "pending":
                jobs.append((run_id, data, str(p.out / run_id)))
                owner[str(p.out / run_id)] = (p, run_id)
    jobs.sort(key=lambda job: -_cost(job[1]))  # stable: equal sizes keep the file order
    if jobs and train:
        if ray_address is not None:
            results = _run_ray(jobs, ray_address, workers)
        else:
            results = _run_local(jobs, max(1, workers or min(len(jobs), os.cpu_count() or 1)))
        with _progress(len(jobs), progress) as show:
            try:
                for run_dir, error, note in results:
                    p, run_id = owner[run_dir]
                    if error is None:
                        p.status[run_id], p.notes[run_id] = "complete", note
                        p.ran.append(run_id)
                    else:
                        p.status[run_id], p.notes[run_id] = "failed", error
                        p.failed[run_id] = error
                    name = run_id if len(pending) == 1 else f"{p.out.name}/{run_id}"
                    show(f"{name}: {note or 'FAILED ' + str(error)}")
                    p.write_manifest()
            finally:
                results.close()  # stops the pool / cancels the Ray tasks if we were interrupted
    out_results = []
    for p in pending:
        report, plots = write_sweep_report(p.out, p.sweep)
        out_results.append(SweepResult(p.out, report, plots, p.skipped, p.ran, p.failed))
    return out_results


@contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Callable[[str], None]]:
    """A rich progress bar with one line per finished run; when disabled (logs, CI), the same lines
    as plain ``[k/total]`` lines on stderr, flushed, so a log of a long sweep shows its progress."""
    if not enabled:
        done = itertools.count(1)

        def plain(line: str) -> None:
            print(f"[{next(done)}/{total}] {line}", file=sys.stderr, flush=True)

        yield plain
        return
    from rich.progress import Progress

    bar = Progress(transient=False)
    task = bar.add_task(f"{total} runs", total=total)

    def show(line: str) -> None:
        bar.console.print(line)
        bar.update(task, advance=1)

    bar.start()
    try:
        yield show
    finally:
        bar.stop()
