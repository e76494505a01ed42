"""The ``confide`` command: ``train`` one run (or ``--resume`` one), ``compare`` a grid with a report,
``sweep`` a sweep file (``experiments.sweep``), ``dpo-exact``, ``leak`` (the leakage study,
``experiments.leakage_study``).

Bad input (unknown names, out-of-range values, a config file with unknown keys or wrong types, an
unreadable checkpoint, a run directory that cannot be written) ends with one line on stderr and exit
status 2; never a traceback. A diverged run ends with one line and status 1; SIGTERM/SIGINT stop
``train`` after the current update with a checkpoint, status 128 + the signal number.

Every command is parsed and validated by a *plan* function before anything runs, so
:func:`check_command` can validate an argument list without running it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from confide.experiments.checkpoint import CheckpointError, checkpoint_path, run_is_complete
from confide.experiments.config import (
    ALGO_NAMES,
    ENV_NAMES,
    ConfigError,
    RunConfig,
    config_from_dict,
    load_config_file,
    merge,
)
from confide.experiments.tensorboard_log import check_tensorboard_available

EXIT_USAGE = 2
EXIT_DIVERGED = 1
Plan = Callable[[], int]
# Flags that change the results; --resume takes the run's own config and refuses them.
CONFIG_FLAGS = (
    "env",
    "agents",
    "scheme",
    "game",
    "reward",
    "updates",
    "batch",
    "topology",
    "partners",
    "period",
    "rho",
    "network",
    "threads",
    "config",
    "out",
    "algo",
    "seed",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"confide: error: {_one_line(message)}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


TENSORBOARD_HELP = "also log each run's metrics to TensorBoard (<run dir>/tensorboard)"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", help=f"environment ({', '.join(ENV_NAMES)}); default predation")
    p.add_argument("--agents", type=int, help="number of agents N (default 8)")
    p.add_argument("--scheme", help="C. Predation reward scheme: ss (default) or as")
    p.add_argument("--game", type=int, help="matrix game 1..4")
    p.add_argument(
        "--reward", help="individual (default; private rewards) or team (every agent gets the mean)"
    )
    p.add_argument("--updates", type=int, help="number of updates (default 300)")
    p.add_argument("--batch", type=int, help="parallel episodes per update (default 16)")
    p.add_argument("--topology", help="complete, ring, line, radius, random_partners (default: the env's)")
    p.add_argument("--partners", type=int, help="random partners per agent (topology random_partners)")
    p.add_argument("--period", type=int, help="talk every k updates (default 1)")
    p.add_argument("--rho", type=float, help="AS/SS penalty weight ρ (default: the paper's table)")
    p.add_argument(
        "--network", help="AS/SS actors: exact (default, the papers') or shared_trunk (a different model)"
    )
    p.add_argument("--threads", type=int, help="torch threads per run (default 1)")
    p.add_argument(
        "--checkpoint-every", type=int, help="updates between checkpoints (default 10; 0: only at the end)"
    )
    p.add_argument("--config", help="JSON or TOML config file; flags override it")
    p.add_argument("--out", help="output directory (default runs/<name>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--tensorboard", action="store_true", help=TENSORBOARD_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="confide", description="Multi-agent RL under private rewards: train, compare, report."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    t = sub.add_parser("train", help="train one run")
    _common(t)
    t.add_argument("--algo", help=f"algorithm ({', '.join(ALGO_NAMES)})")
    t.add_argument("--seed", type=int, help="run seed (default 0)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its checkpoint")
    c = sub.add_parser("compare", help="train algorithms × seeds and write a report")
    _common(c)
    c.add_argument("--algos", default="as,ss,dpo,ippo", help="comma-separated algorithms")
    c.add_argument("--seeds", type=int, default=3, help="number of seeds (0..seeds-1)")
    c.add_argument("--workers", type=int, default=None, help="parallel runs (default: number of cores)")
    w = sub.add_parser("sweep", help="run a sweep file (grid × seeds), resumable, and write its report")
    w.add_argument("file", help="sweep file (TOML or JSON): base config, grid of dotted keys, seeds")
    w.add_argument("--out", help="sweep directory (default runs/sweep_<file name>); rerun to resume")
    w.add_argument("--workers", type=int, default=None, help="parallel runs (default: number of cores)")
    w.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster (auto, host:port, ray://…)")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    w.add_argument("--tensorboard", action="store_true", help=TENSORBOARD_HELP)
    d = sub.add_parser("dpo-exact", help="the exact DPO iteration on the four matrix games (DPO Fig. 11)")
    d.add_argument("--out", default="runs/dpo_exact", help="output directory")
    d.add_argument("--m-hat", type=float, default=0.1, help="scaled-down M̂ (decision 7)")
    d.add_argument("--c", type=float, default=10.0, help="the KL constant C")
    d.add_argument("--iterations", type=int, default=2000)
    k = sub.add_parser("leak", help="the leakage study: what observers learn of a private reward weight")
    k.add_argument("--env", default="predation", help="environment with a private parameter: predation")
    k.add_argument("--agents", type=int, default=4, help="number of agents N (default 4)")
    k.add_argument("--algos", default="dpo,as,ss,vs,vps,ps", help="comma-separated algorithms")
    k.add_argument("--runs", type=int, default=40, help="shadow runs per algorithm, half train the attacker")
    k.add_argument("--updates", type=int, default=10, help="updates per shadow run (default 10)")
    k.add_argument("--batch", type=int, default=8, help="episodes per update (default 8)")
    k.add_argument("--target", type=int, default=0, help="the agent whose weight is the secret (default 0)")
    k.add_argument(
        "--encrypt",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="encrypt the links, adding the encrypted-eavesdropper view (default on)",
    )
    k.add_argument("--out", help="study directory (default runs/leak_<env>_n<agents>); rerun to resume")
    k.add_argument("--workers", type=int, default=1, help="parallel shadow runs (default 1)")
    f = sub.add_parser("federate", help="train one run as a Flower federation (agents as ClientApps)")
    _common(f)
    f.add_argument("--algo", help=f"algorithm ({', '.join(ALGO_NAMES)})")
    f.add_argument("--seed", type=int, help="run seed (default 0)")
    f.add_argument(
        "--backend",
        default="inprocess",
        help="inprocess (default: one process, no Ray), ray (Flower's simulation runtime via flwr run) or "
        "deployment (SuperLink + SuperNodes on loopback); see docs/federation.md",
    )
    f.add_argument("--timeout", type=float, default=300.0, help="seconds before a silent node is lost")
    f.add_argument(
        "--secagg",
        action="store_true",
        help="PS/VPS on the complete graph: consensus by Flower's SecAgg+ (the relay learns only the mean)",
    )
    f.add_argument(
        "--write-app",
        metavar="DIR",
        help="write this run's Flower App to DIR and exit (deployment on several machines: "
        "docs/federation.md); --out is then the run directory on the SuperLink's machine",
    )
    f.add_argument(
        "--central-dp",
        nargs=2,
        type=float,
        metavar=("SIGMA", "CLIP"),
        help="PS/VPS on the complete graph: consensus as DP-FedAvg releases (Flower's server-side fixed "
        "clipping to norm CLIP, noise multiplier SIGMA, Opacus RDP accountant)",
    )
    b = sub.add_parser("bench", help="speed benchmarks (the same as python -m confide.benchmarks)")
    b.add_argument("names", nargs="*", help="benchmarks to run (default set: benchmarks/__main__.py DEFAULT)")
    r = sub.add_parser("reproduce", help="reproduce a paper figure (experiments/figures/<id>.toml)")
    r.add_argument("id", nargs="*", help="figure id(s), e.g. as_fig2_predation (see --list)")
    r.add_argument("--all", action="store_true", help="every runnable figure, their runs in one pool")
    r.add_argument("--list", action="store_true", help="list the figure ids, their settings and scales")
    r.add_argument("--summary", action="store_true", help="regenerate the results page from the figure files")
    r.add_argument("--scale", choices=("quick", "paper"), default="quick", help="quick (default) or paper")
    r.add_argument("--out", help="directory (default runs/reproduce/<id>_<scale>; several: the root)")
    r.add_argument("--workers", type=int, default=None, help="parallel runs (default: number of cores)")
    r.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster (auto, host:port, ray://…)")
    r.add_argument("--page", help="results page to update (default: the repository's docs/RESULTS.md)")
    r.add_argument("--updates", type=int, help="shrink: updates per run (paper: shown as reduced)")
    r.add_argument("--batch", type=int, help="shrink: episodes per update (paper: shown as reduced)")
    r.add_argument("--seeds", type=int, help="shrink: number of seeds (paper: shown as reduced)")
    r.add_argument("--measure-only", action="store_true", help="measure the runs complete so far, train none")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    s = sub.add_parser(
        "report",
        help="regenerate the results page (docs/RESULTS.md) from the figure files and the records it "
        "stores, every claim rechecked from its per-seed scores (the same as reproduce --summary)",
    )
    s.add_argument("--page", help="results page (default: the repository's docs/RESULTS.md)")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {"env": {}, "algo": {}, "train": {}, "topology": {}}
    pairs = [
        ("env", "name", args.env),
        ("env", "agents", args.agents),
        ("env", "scheme", args.scheme),
        ("env", "game", args.game),
        ("env", "reward", args.reward),
        ("train", "updates", args.updates),
        ("train", "batch", args.batch),
        ("train", "threads", args.threads),
        ("train", "checkpoint_every", args.checkpoint_every),
        ("topology", "kind", args.topology),
        ("topology", "partners", args.partners),
        ("topology", "period", args.period),
        ("algo", "rho", args.rho),
        ("algo", "network", args.network),
        ("algo", "name", getattr(args, "algo", None)),
        ("train", "seed", getattr(args, "seed", None)),
        ("train", "tensorboard", True if args.tensorboard else None),
    ]
    for section, key, value in pairs:
        if value is not None:
            out[section][key] = value
    return {k: v for k, v in out.items() if v}


def _path(value: str, flag: str) -> Path:
    if "\x00" in value or not value:
        raise ConfigError(f"{flag}: not a usable path: {value!r}")
    return Path(value)


def _base_dict(args: argparse.Namespace) -> dict[str, Any]:
    base = load_config_file(_path(args.config, "--config")) if args.config else {}
    overrides = _overrides(args)
    for section in overrides:
        if section in base and not isinstance(base[section], dict):
            raise ConfigError(f"{section}: expected a table/object, got {type(base[section]).__name__}")
    return merge(base, overrides)


def plan_train(args: argparse.Namespace) -> Plan:
    from confide.core.trainer import train

    if args.resume is not None:
        out, config = _resume_target(args)
    else:
        config = config_from_dict(_base_dict(args))
        name = f"{time.strftime('%Y%m%d-%H%M%S')}_{config.env.name}_n{config.env.agents}_{config.algo.name}_s{config.train.seed}"
        out = _path(args.out, "--out") if args.out else Path("runs") / name
        if checkpoint_path(out).exists() and not run_is_complete(out):
            raise ConfigError(
                f"{out} holds an unfinished run; continue it with --resume {out} or pick another --out"
            )
    if config.train.tensorboard:  # the flag, a config file or the resumed run's own config.json
        check_tensorboard_available()

    def run() -> int:
        result = train(
            config, out, progress=not args.no_progress, resume=args.resume is not None, stop_on_signals=True
        )
        s = result.summary
        norm = "n/a (no optimum known)" if s["normalized_return"] is None else f"{s['normalized_return']:.3f}"
        print(
            f"normalised return {norm}  collective return {s['collective_return']:.1f}  "
            f"bytes/agent/update {s['bytes_per_agent_per_update']:,.0f}  wall {s['wall_seconds']:.1f}s"
        )
        print(f"run written to {out}")
        return 0

    return run


def _resume_target(args: argparse.Namespace) -> tuple[Path, RunConfig]:
    """The run directory and its own config (``config.json``), with only --checkpoint-every changed."""
    given = [f"--{flag}" for flag in CONFIG_FLAGS if getattr(args, flag, None) is not None]
    if given:
        raise ConfigError(f"--resume continues a run with its own config; drop {', '.join(given)}")
    out = _path(args.resume, "--resume")
    if not (out / "config.json").is_file():
        raise ConfigError(f"--resume: {out} is not a run directory (no config.json)")
    data = load_config_file(out / "config.json")
    if args.checkpoint_every is not None:
        data = merge(data, {"train": {"checkpoint_every": args.checkpoint_every}})
    if args.tensorboard:
        data = merge(data, {"train": {"tensorboard": True}})
    return out, config_from_dict(data)


def plan_compare(args: argparse.Namespace) -> Plan:
    from confide.experiments.compare import run_comparison

    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    if not algos:
        raise ConfigError("--algos is empty")
    for a in algos:
        if a not in ALGO_NAMES:
            raise ConfigError(f"unknown algorithm {a!r} (known: {', '.join(ALGO_NAMES)})")
    if not 1 <= args.seeds <= 1000:
        raise ConfigError(f"--seeds must be in 1..1000, got {args.seeds}")
    if args.workers is not None and not 1 <= args.workers <= 256:
        raise ConfigError(f"--workers must be in 1..256, got {args.workers}")
    base = _base_dict(args)
    if config_from_dict(base).train.tensorboard:  # validate once before starting anything
        check_tensorboard_available()
    out = _path(args.out, "--out") if args.out else Path("runs") / f"compare_{time.strftime('%Y%m%d-%H%M%S')}"

    def run() -> int:
        report = run_comparison(base, algos, args.seeds, out, args.workers, progress=not args.no_progress)
        print(f"report written to {report}")
        return 0

    return run


def plan_sweep(args: argparse.Namespace) -> Plan:
    from confide.experiments.sweep import check_ray_available, check_run_dirs, expand, load_sweep, run_sweep

    path = _path(args.file, "sweep file")
    sweep = load_sweep(path)
    runs = expand(sweep)  # every grid point validated before anything runs
    if args.workers is not None and not 1 <= args.workers <= 256:
        raise ConfigError(f"--workers must be in 1..256, got {args.workers}")
    if args.ray is not None:
        if not args.ray.strip():
            raise ConfigError("--ray: empty address")
        check_ray_available()
    if args.tensorboard:
        sweep = dataclasses.replace(sweep, base=merge(sweep.base, {"train": {"tensorboard": True}}))
    if args.tensorboard or any(config_from_dict(data).train.tensorboard for _, data in runs):
        check_tensorboard_available()
    out = _path(args.out, "--out") if args.out else Path("runs") / f"sweep_{path.stem}"
    check_run_dirs(runs, out)

    def run() -> int:
        result = run_sweep(
            sweep, out, workers=args.workers, ray_address=args.ray, progress=not args.no_progress
        )
        print(
            f"{len(runs)} runs: {len(result.skipped)} already complete, {len(result.ran)} run now, "
            f"{len(result.failed)} failed"
        )
        print(f"report written to {result.report}")
        if result.failed:
            run_id, error = next(iter(result.failed.items()))
            return _fail(
                f"{len(result.failed)} run(s) failed (see {result.out / 'sweep.json'}); {run_id}: {error}",
                EXIT_DIVERGED,
            )
        return 0

    return run


def plan_dpo_exact(args: argparse.Namespace) -> Plan:
    from confide.core.dpo_exact import fig11_traces, plot_dpo_exact
    from confide.envs.matrix_games import MATRIX_GAMES

    finite = math.isfinite(args.m_hat) and math.isfinite(args.c)
    if not (finite and 1 <= args.iterations <= 1_000_000 and args.m_hat >= 0 and args.c > 0):
        raise ConfigError("--iterations must be in 1..1000000, --m-hat a finite number >= 0 and --c > 0")
    out = _path(args.out, "--out")

    def run() -> int:
        traces = fig11_traces(m_hat=args.m_hat, c=args.c, iterations=args.iterations)
        out.mkdir(parents=True, exist_ok=True)
        plot_dpo_exact(traces, out / "dpo_exact.png")
        for g, tr in zip(MATRIX_GAMES, traces, strict=True):
            print(
                f"{g.name}: p,q ({tr.p[0]:.2f}, {tr.q[0]:.2f}) -> ({tr.p[-1]:.3f}, {tr.q[-1]:.3f})  "
                f"J {tr.J[0]:.3f} -> {tr.J[-1]:.3f} (optimum {g.optimum():.1f}) in {len(tr.J) - 1} steps, "
                f"converged={tr.converged}"
            )
        print(f"plot written to {out / 'dpo_exact.png'}")
        return 0

    return run


def plan_leak(args: argparse.Namespace) -> Plan:
    from confide.experiments.leakage_study import LeakStudy, run_study

    study = LeakStudy(  # validates every flag (ConfigError)
        env=args.env,
        agents=args.agents,
        algos=tuple(a.strip() for a in args.algos.split(",") if a.strip()),
        runs=args.runs,
        updates=args.updates,
        batch=args.batch,
        target=args.target,
        encrypt=args.encrypt,
        workers=args.workers,
    )
    out = _path(args.out, "--out") if args.out else Path("runs") / f"leak_{study.env}_n{study.agents}"

    def run() -> int:
        result = run_study(study, out, progress=sys.stderr.isatty())
        print(f"table written to {result.table}, plot to {result.plot} ({result.wall_seconds:.0f}s)")
        return 0

    return run


def plan_federate(args: argparse.Namespace) -> Plan:
    from confide.federation.central_dp import CentralDpSettings
    from confide.federation.runner import bytes_table, check_federable, federate
    from confide.federation.secure_aggregation import SecAggSettings
    from confide.federation.server import FederationError

    config = config_from_dict(_base_dict(args))
    if config.train.tensorboard:
        raise ConfigError(
            "federate: --tensorboard is not supported (a federation run logs metrics.jsonl only)"
        )
    check_federable(config, args.backend, args.secagg, args.central_dp is not None)
    secagg = SecAggSettings() if args.secagg else None
    try:
        central_dp = CentralDpSettings(*args.central_dp) if args.central_dp is not None else None
    except ValueError as err:
        raise ConfigError(f"--central-dp: {err}") from None
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ConfigError(f"--timeout must be a number of seconds > 0, got {args.timeout}")
    c = config
    name = f"{time.strftime('%Y%m%d-%H%M%S')}_federate_{c.env.name}_n{c.env.agents}_{c.algo.name}_s{c.train.seed}"
    out = _path(args.out, "--out") if args.out else Path("runs") / name

    if args.write_app:
        from confide.federation.backends import write_deployment_app
        from confide.federation.runner import flower_run_config

        app_dir = _path(args.write_app, "--write-app")

        def write() -> int:
            run_config = flower_run_config(config, secagg, central_dp)
            write_deployment_app(app_dir, config, run_config, str(out.absolute()), args.timeout)
            print(f"Flower App written to {app_dir}; submit it with: flwr run {app_dir} <superlink> --stream")
            return 0

        return write

    def run() -> int:
        try:
            result = federate(
                config,
                out,
                args.backend,
                progress=not args.no_progress,
                timeout=args.timeout,
                secagg=secagg,
                central_dp=central_dp,
            )
        except FederationError as err:
            return _fail(f"the federation stopped: {err}", EXIT_DIVERGED)
        s = result.summary
        norm = "n/a (no optimum known)" if s["normalized_return"] is None else f"{s['normalized_return']:.3f}"
        print(
            f"normalised return {norm}  collective return {s['collective_return']:.1f}  wall {s['wall_seconds']:.1f}s"
        )
        print(bytes_table(s))
        print(f"run written to {out}")
        return 0

    return run


def plan_reproduce(args: argparse.Namespace) -> Plan:
    from confide.experiments.reproduce import list_lines, prepare
    from confide.experiments.results_page import DEFAULT_PAGE, regenerate

    if [args.list, args.summary, bool(args.id), args.all].count(True) != 1:
        raise ConfigError("reproduce: give one of a figure id (or several), --all, --list or --summary")
    page = _path(args.page, "--page") if args.page else DEFAULT_PAGE
    if args.list:
        lines = list_lines()  # every figure file validated
        return lambda: print("\n".join(lines)) or 0
    if args.summary:
        return lambda: print(f"results page written to {regenerate(page)}") or 0
    shrink = {"updates": args.updates, "batch": args.batch, "seeds": args.seeds}
    out = _path(args.out, "--out") if args.out else None
    workers, ray, progress = args.workers, args.ray, not args.no_progress
    if args.all or len(args.id) > 1:
        return _plan_reproduce_batch(args, None if args.all else args.id, out, shrink, page)
    job = prepare(
        args.id[0], args.scale, out=out, workers=workers, ray_address=ray, overrides=shrink, page=page
    )
    job.progress, job.train = progress, not args.measure_only

    def run() -> int:
        record, failed = job.run()
        for check in record["checks"]:
            print(f"{check['expect']}: {check['measured']} -> {check['verdict']}")
        updated = f"; page {page} updated" if job.on_page else ""
        print(f"result written to {job.out / 'result.md'}{updated}")
        if failed:
            run_id, error = next(iter(failed.items()))
            return _fail(f"{len(failed)} run(s) failed; {run_id}: {error}", EXIT_DIVERGED)
        return 0

    return run


def _plan_reproduce_batch(
    args: argparse.Namespace, ids: list[str] | None, out: Path | None, shrink: dict[str, Any], page: Path
) -> Plan:
    """Several figures (None: every runnable one) in one call, their runs in one pool."""
    from confide.experiments.reproduce_all import prepare_batch

    batch = prepare_batch(
        ids,
        args.scale,
        root=out,
        workers=args.workers,
        ray_address=args.ray,
        overrides=shrink,
        page=page,
        progress=not args.no_progress,
    )
    batch.train = not args.measure_only

    def run() -> int:
        records, failed = batch.run()
        for record in records:
            verdicts = "; ".join(f"{c['expect']} -> {c['verdict']}" for c in record["checks"])
            print(f"{record['id']}: {record['runs_complete']}/{record['shape']['runs']} complete. {verdicts}")
        updated = f"; page {page} updated" if any(j.on_page for j in batch.jobs) else ""
        print(f"{len(records)} figures written under {batch.root} (index.md){updated}")
        if failed:
            run_id, error = next(iter(failed.items()))
            return _fail(f"{len(failed)} run(s) failed; {run_id}: {error}", EXIT_DIVERGED)
        return 0

    return run


def plan_bench(args: argparse.Namespace) -> Plan:
    from confide.benchmarks.__main__ import check_names, run_benchmarks

    names = check_names(args.names)  # ConfigError on an unknown name
    return lambda: run_benchmarks(names)


def plan_report(args: argparse.Namespace) -> Plan:
    from confide.experiments.results_page import DEFAULT_PAGE, regenerate

    page = _path(args.page, "--page") if args.page else DEFAULT_PAGE
    if not page.is_file():
        raise ConfigError(f"report: no results page at {page} (confide reproduce writes one)")
    return lambda: print(f"results page written to {regenerate(page)}") or 0


PLANS: dict[str, Callable[[argparse.Namespace], Plan]] = {
    "train": plan_train,
    "federate": plan_federate,
    "compare": plan_compare,
    "sweep": plan_sweep,
    "dpo-exact": plan_dpo_exact,
    "leak": plan_leak,
    "reproduce": plan_reproduce,
    "bench": plan_bench,
    "report": plan_report,
}


def _one_line(text: object) -> str:
    return " ".join(str(text).split("\n")).replace("\r", " ")


def _fail(message: object, status: int) -> int:
    print(f"confide: error: {_one_line(message)}", file=sys.stderr)
    return status


def _dispatch(argv: list[str] | None, execute: bool) -> int:
    from confide.core.trainer import DivergenceError, TrainingInterrupted

    args = build_parser().parse_args(argv)
    try:
        plan = PLANS[args.command](args)
        return plan() if execute else 0
    except (ConfigError, CheckpointError) as err:
        return _fail(err, EXIT_USAGE)
    except TrainingInterrupted as err:
        print(f"confide: {err}; continue with: confide train --resume {err.run_dir}", file=sys.stderr)
        return 128 + err.signal_number
    except DivergenceError as err:
        return _fail(f"the run diverged: {err}", EXIT_DIVERGED)
    except KeyboardInterrupt:
        print("confide: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # disk full, read-only or missing directory: the message names the file
        filename = getattr(err, "filename", None)
        return _fail(f"{err.strerror or err}{': ' + str(filename) if filename else ''}", EXIT_USAGE)


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv``; returns the exit status."""
    return _dispatch(argv, execute=True)


def check_command(argv: list[str]) -> int:
    """Parse and validate ``argv`` exactly as :func:`main` does without running anything.

    Returns 0 if the command would start, otherwise the exit status after the one-line error.
    """
    try:
        return _dispatch(argv, execute=False)
    except SystemExit as exit_:
        return int(exit_.code or 0)
