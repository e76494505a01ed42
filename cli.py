"""The ``confide`` command: ``train`` one run, ``compare`` a grid with a report, ``dpo-exact``.

Bad input (unknown names, out-of-range values, a config file with unknown keys or wrong types) ends
with one line on stderr and exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from confide.experiments.config import (
    ALGO_NAMES,
    ENV_NAMES,
    ConfigError,
    config_from_dict,
    load_config_file,
    merge,
)

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"confide: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


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
    p.add_argument("--threads", type=int, help="torch threads per run (default 1)")
    p.add_argument("--config", help="JSON or TOML config file; flags override it")
    p.add_argument("--out", help="output directory (default runs/<name>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="confide", description="Multi-agent RL under private rewards: train, compare, report."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    t = sub.add_parser("train", help="train one run")
    _common(t)
    t.add_argument("--algo", help=f"algorithm ({', '.join(ALGO_NAMES)})")
    t.add_argument("--seed", type=int, help="run seed (default 0)")
    c = sub.add_parser("compare", help="train algorithms × seeds and write a report")
    _common(c)
    c.add_argument("--algos", default="as,ss,dpo,ippo", help="comma-separated algorithms")
    c.add_argument("--seeds", type=int, default=3, help="number of seeds (0..seeds-1)")
    c.add_argument("--workers", type=int, default=None, help="parallel runs (default: number of cores)")
    d = sub.add_parser("dpo-exact", help="the exact DPO iteration on the four matrix games (DPO Fig. 11)")
    d.add_argument("--out", default="runs/dpo_exact", help="output directory")
    d.add_argument("--m-hat", type=float, default=0.1, help="scaled-down M̂ (decision 7)")
    d.add_argument("--c", type=float, default=10.0, help="the KL constant C")
    d.add_argument("--iterations", type=int, default=2000)
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
        ("topology", "kind", args.topology),
        ("topology", "partners", args.partners),
        ("topology", "period", args.period),
        ("algo", "rho", args.rho),
        ("algo", "name", getattr(args, "algo", None)),
        ("train", "seed", getattr(args, "seed", None)),
    ]
    for section, key, value in pairs:
        if value is not None:
            out[section][key] = value
    return {k: v for k, v in out.items() if v}


def _base_dict(args: argparse.Namespace) -> dict[str, Any]:
    base = load_config_file(args.config) if args.config else {}
    return merge(base, _overrides(args))


def cmd_train(args: argparse.Namespace) -> int:
    from confide.core.trainer import train

    config = config_from_dict(_base_dict(args))
    name = f"{time.strftime('%Y%m%d-%H%M%S')}_{config.env.name}_n{config.env.agents}_{config.algo.name}_s{config.train.seed}"
    out = Path(args.out) if args.out else Path("runs") / name
    result = train(config, out, progress=not args.no_progress)
    s = result.summary
    print(
        f"normalised return {s['normalized_return']:.3f}  collective return {s['collective_return']:.1f}  "
        f"bytes/agent/update {s['bytes_per_agent_per_update']:,.0f}  wall {s['wall_seconds']:.1f}s"
    )
    print(f"run written to {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from confide.experiments.compare import run_comparison

    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    if not algos:
        raise ConfigError("--algos is empty")
    for a in algos:
        if a not in ALGO_NAMES:
            raise ConfigError(f"unknown algorithm {a!r} (known: {', '.join(ALGO_NAMES)})")
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {args.seeds}")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    base = _base_dict(args)
    config_from_dict(base)  # validate once before starting anything
    out = Path(args.out) if args.out else Path("runs") / f"compare_{time.strftime('%Y%m%d-%H%M%S')}"
    report = run_comparison(base, algos, args.seeds, out, args.workers, progress=not args.no_progress)
    print(f"report written to {report}")
    return 0


def cmd_dpo_exact(args: argparse.Namespace) -> int:
    from confide.core.dpo_exact import fig11_traces, plot_dpo_exact
    from confide.envs.matrix_games import MATRIX_GAMES

    if args.iterations < 1 or args.m_hat < 0 or args.c <= 0:
        raise ConfigError("--iterations must be >= 1, --m-hat >= 0 and --c > 0")
    out = Path(args.out)
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"train": cmd_train, "compare": cmd_compare, "dpo-exact": cmd_dpo_exact}
    try:
        return handlers[args.command](args)
    except ConfigError as err:
        print(f"confide: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("confide: interrupted", file=sys.stderr)
        return 130
    except OSError as err:
        print(f"confide: error: {err.strerror or err}: {getattr(err, 'filename', '') or ''}", file=sys.stderr)
        return 1
