"""``federate``: one run as a Flower federation — agents as ClientApps, the relay as the ServerApp — that
writes the same ``config.json``, ``metrics.jsonl`` and ``summary.json`` fields as ``confide train``, plus
Flower's wire bytes (``flower_bytes``) and what went wrong (``federation``).

Backends (the same ``Relay`` and ``AgentNode`` on each): ``inprocess`` (``InProcessGrid``: one process,
Ray-free, real Flower messages through Flower's serialisation); ``ray`` (Flower's simulation runtime
via ``flwr run`` on a SuperLink in simulation mode) and ``deployment`` (SuperLink + SuperNodes), both
through ``flower_app`` and launched by ``backends``.

Metrics rows hold what the relay can know: the returns the agents disclose (one mean return per agent
per update), bytes, rejections and the public joint-action rates. The learners' loss statistics and the
head diagnostics of ``confide train`` need every agent's networks, which no one holds here, so the
rows leave them out. No checkpoints: a federated run is not resumable.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal, get_args

import torch
from flwr.app import Context, RecordDict
from flwr.serverapp import ServerApp

from confide.channels.stack import ChannelSettings
from confide.core.registry import build_learner
from confide.core.trainer import DEFAULT_TOPOLOGY, RunResult, make_run_env, run_summary
from confide.experiments import hyperparameters as hp
from confide.experiments.config import ConfigError, RunConfig, config_from_dict
from confide.experiments.io import append_jsonl, atomic_write_json, atomic_write_jsonl
from confide.federation.central_dp import CentralDpSettings
from confide.federation.client import NODE_CONFIG_KEY, RUN_CONFIG_KEY, AgentNode, node_count
from confide.federation.grid import SUPERLINK_NODE_ID, InProcessGrid
from confide.federation.secure_aggregation import (
    CENTRAL_DP_RUN_CONFIG_KEY,
    SECAGG_RUN_CONFIG_KEY,
    SECURE_ALGOS,
    SecAggSettings,
)
from confide.federation.server import DEFAULT_TIMEOUT, Relay

Backend = Literal["inprocess", "ray", "deployment"]
BACKENDS: tuple[str, ...] = get_args(Backend)
FIRST_NODE_ID = 1000  # Flower node ids of the in-process nodes: FIRST_NODE_ID + node


def check_federable(config: RunConfig, backend: str, secagg: bool = False, central_dp: bool = False) -> None:
    """Refuse what the federation cannot run as ``confide train`` does (``ConfigError``)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise ConfigError("--backend ray needs Ray: .venv/bin/pip install -c constraints.txt -e '.[ray]'")
    if config.algo.name == "cl" and hp.ppo_settings(config).minibatches > 1:
        raise ConfigError(
            "federate: cl with ppo.minibatches > 1 is not supported: in confide train every CL agent's "
            "generator also draws the central critic's minibatches, which an agent's node never trains"
        )
    if secagg and central_dp:
        raise ConfigError(
            "--secagg and --central-dp together need client-side clipping (Flower's server-side "
            "clipping sees each vector, which SecAgg+ hides); not wired"
        )
    if secagg or central_dp:
        check_averaging(config, "--secagg" if secagg else "--central-dp")


def check_averaging(config: RunConfig, flag: str) -> None:
    """SecAgg+ and DP-FedAvg compute a plain mean: PS/VPS consensus on the complete graph, over the
    ideal channel (the channel layers act on individual messages, which these rounds do not send)."""
    kind = config.topology.kind or DEFAULT_TOPOLOGY.get(config.env.name, "complete")
    if config.algo.name not in SECURE_ALGOS:
        raise ConfigError(f"{flag} averages PS/VPS parameters; {config.algo.name} sends no consensus vector")
    if kind != "complete":
        raise ConfigError(f"{flag} needs the complete graph (topology {kind}: the mean is not the MH mix)")
    if config.channel != ChannelSettings():
        raise ConfigError(f"{flag} needs the ideal channel (no [channel] layers)")


def flower_run_config(
    config: RunConfig, secagg: SecAggSettings | None = None, central_dp: CentralDpSettings | None = None
) -> dict[str, str]:
    """What every node and the ServerApp read from ``Context.run_config``: the config as JSON, the
    SecAgg+ and central-DP settings ("" when off)."""
    run_config = {
        RUN_CONFIG_KEY: json.dumps(config.to_dict()),
        SECAGG_RUN_CONFIG_KEY: json.dumps(dataclasses.asdict(secagg)) if secagg is not None else "",
        CENTRAL_DP_RUN_CONFIG_KEY: json.dumps(dataclasses.asdict(central_dp)) if central_dp else "",
    }
    if config_from_dict(json.loads(run_config[RUN_CONFIG_KEY])) != config:  # what every node rebuilds
        raise ConfigError("federate: the config does not survive its JSON form unchanged")
    return run_config


def federate(
    config: RunConfig,
    run_dir: str | Path | None = None,
    backend: Backend = "inprocess",
    *,
    progress: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    nodes: Sequence[AgentNode] | None = None,
    secagg: SecAggSettings | None = None,
    central_dp: CentralDpSettings | None = None,
) -> RunResult:
    """Run ``config`` as a federation; write its result files to ``run_dir`` if given.

    ``nodes`` (one per node: agents 0..N−1, then the central unit for CL and centralised PPO) lets a
    caller wrap ClientApps in Flower mods or inspect a node afterwards; by default plain ``AgentNode``s.
    ``timeout``: seconds a node may take to answer before it is counted lost.
    ``secagg``: run PS/VPS consensus by Flower's SecAgg+ (the relay learns only the mean).
    ``central_dp``: run PS/VPS consensus as DP-FedAvg releases (Flower's server-side fixed clipping).
    Raises ``ConfigError``, ``FederationError`` (no node left), ``DivergenceError``, ``ResultWriteError``.
    """
    check_federable(config, backend, secagg is not None, central_dp is not None)
    torch.set_num_threads(config.train.threads)
    started = time.perf_counter()
    env = make_run_env(config)  # for the summary's public constants (optimum, floor); never stepped
    kinds = build_learner(config, env.state_dim, env.n_actions, torch.Generator()).message_kinds
    run_config = flower_run_config(config, secagg, central_dp)
    if backend != "inprocess":  # Flower's runtimes: the ServerApp writes the results in its process
        from confide.federation.backends import run_external

        if nodes is not None:
            raise ValueError("nodes= is for the in-process backend (Flower's runtimes load flower_app)")
        return run_external(backend, config, run_config, run_dir, timeout)
    n_nodes = node_count(config)
    nodes = list(nodes) if nodes is not None else [AgentNode() for _ in range(n_nodes)]
    if len(nodes) != n_nodes:
        raise ValueError(f"{config.algo.name} with {config.env.agents} agents needs {n_nodes} nodes")
    out = Path(run_dir) if run_dir is not None else None
    if out is not None:
        start_files(out, config, backend)
    bar = _progress(config, progress)

    def on_update(row: dict[str, Any]) -> None:
        if out is not None:  # one appended row per update; rewritten atomically at the end
            append_jsonl(out / "metrics.jsonl", [row])
            atomic_write_json(out / "summary.json", incomplete_summary(config, backend, len(relay.metrics)))
        if bar is not None:
            bar.update(1, collective_return=row["collective_return"])

    relay = Relay(config, kinds, env.n_actions, n_nodes, timeout, on_update, secagg, central_dp)
    server_app = ServerApp()
    server_app.main()(relay.main)
    grid_nodes = [(FIRST_NODE_ID + k, node.app, {NODE_CONFIG_KEY: k}) for k, node in enumerate(nodes)]
    grid = InProcessGrid(grid_nodes, run_config, observer=relay.flower_bytes)
    try:
        with grid:
            server_app(grid, Context(grid.run_id, SUPERLINK_NODE_ID, {}, RecordDict(), run_config))
    finally:
        for node in nodes:
            node.close()
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - started
    summary = federation_summary(config, env, relay, kinds, wall, backend, grid)
    if out is not None:
        atomic_write_jsonl(out / "metrics.jsonl", relay.metrics)  # durable before the run says complete
        atomic_write_json(out / "summary.json", summary)
    return RunResult(summary, relay.metrics, relay.tap.transcript_digest())


def federation_summary(
    config: RunConfig,
    env: Any,
    relay: Relay,
    kinds: Sequence[str],
    wall: float,
    backend: str,
    grid: InProcessGrid | None,
) -> dict[str, Any]:
    """``confide train``'s summary fields from the relay's records, plus ``backend``, ``flower_bytes``
    and ``federation``."""
    view = SimpleNamespace(
        metrics=relay.metrics,
        meter=relay.meter,
        learner=SimpleNamespace(message_kinds=tuple(kinds)),
        comms=relay.comms_totals(),
        channel=relay.channel,
        tap=relay.tap,
    )
    summary = run_summary(config, env, view, wall)  # type: ignore[arg-type]  # the fields train writes
    summary["backend"] = backend
    summary["flower_bytes"] = flower_bytes_report(relay, kinds)
    summary["federation"] = {
        "nodes": relay.n_nodes,
        **relay.faults.to_dict(),
        "late_replies": grid.late_replies if grid is not None else None,
        "timing": {  # wall-clock, like wall_seconds: a request round includes the nodes' compute
            "rounds": dict(relay.broadcasts),
            "round_ms_mean": {
                phase: 1e3 * relay.broadcast_seconds[phase] / count
                for phase, count in relay.broadcasts.items()
            },
            "flower_messages": sum(relay.flower_bytes.messages.values()),
            "codec_ms_per_message": 1e3 * grid.codec_seconds / max(1, grid.codec_calls) if grid else None,
        },
    }
    if relay.secagg is not None:
        summary["federation"]["secure_aggregation"] = {
            **dataclasses.asdict(relay.secagg),
            **relay.secure,
            "flower_bytes": {d: int(relay.flower_bytes.by_phase[f"{d}/secagg"]) for d in ("up", "down")},
        }
    if relay.central_dp is not None:
        summary["federation"]["central_dp"] = {**relay.central_dp.summary(), **relay.secure}
    return summary


def flower_bytes_report(relay: Relay, kinds: Sequence[str]) -> dict[str, Any]:
    """Per message kind: the meter's payload bytes (confide's codec, one count per message sent) beside
    the Flower bytes of the records carrying those messages, up (node → relay) and down (relay → node);
    then Flower's totals per direction and per protocol phase (framing, control and actions included)."""
    fb, meter = relay.flower_bytes, relay.meter
    names = dict.fromkeys([*kinds, *meter.bytes_by_kind, *fb.by_kind["up"], *fb.by_kind["down"]])
    by_kind = {
        kind: {
            "messages": int(meter.messages_by_kind.get(kind, 0)),
            "payload": int(meter.bytes_by_kind.get(kind, 0)),
            "flower_up": int(fb.by_kind["up"][kind]),
            "flower_down": int(fb.by_kind["down"][kind]),
        }
        for kind in names
    }
    return {
        "by_kind": by_kind,
        "total": {"up": int(fb.total["up"]), "down": int(fb.total["down"])},
        "messages": {"up": int(fb.messages["up"]), "down": int(fb.messages["down"])},
        "envelope": {"up": int(fb.envelope["up"]), "down": int(fb.envelope["down"])},
        "by_phase": dict(sorted(fb.by_phase.items())),
    }


def bytes_table(summary: dict[str, Any]) -> str:
    """The meter's payload bytes beside Flower's bytes per message kind, Flower's totals, and faults."""
    fb = summary["flower_bytes"]
    lines = [
        f"{'kind':<16}{'messages':>10}{'payload B':>14}{'Flower up B':>14}{'Flower down B':>15}{'framing up':>12}"
    ]
    for kind, k in fb["by_kind"].items():
        framing = f"{k['flower_up'] / k['payload']:.2f}x" if k["payload"] else "-"
        lines.append(
            f"{kind:<16}{k['messages']:>10,}{k['payload']:>14,}{k['flower_up']:>14,}{k['flower_down']:>15,}{framing:>12}"
        )
    t, m = fb["total"], fb["messages"]
    lines.append(
        f"all Flower messages (control, actions, reports, framing): up {t['up']:,} B in {m['up']:,}, "
        f"down {t['down']:,} B in {m['down']:,}"
    )
    f = summary["federation"]
    if f["lost_nodes"] or f["rejected"]:
        lost = ", ".join(
            f"node {n} at update {v['update']} ({v['reason']})" for n, v in f["lost_nodes"].items()
        )
        lines.append(f"faults: lost {lost or 'none'}; relay rejected {sum(f['rejected'].values())}")
    return "\n".join(lines)


def start_files(out: Path, config: RunConfig, backend: str) -> None:
    """Create ``out`` and mark the run incomplete with no rows, before the first round: metrics rows are
    then appended, so rows of an earlier run there must not survive (called wherever the relay runs)."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", config.to_dict())
    atomic_write_jsonl(out / "metrics.jsonl", [])
    atomic_write_json(out / "summary.json", incomplete_summary(config, backend, 0))


def incomplete_summary(config: RunConfig, backend: str, done: int) -> dict[str, Any]:
    return {
        "algo": config.algo.name,
        "env": config.env.name,
        "agents": config.env.agents,
        "seed": config.train.seed,
        "updates": done,
        "updates_planned": config.train.updates,
        "backend": backend,
        "complete": False,
    }


def _progress(config: RunConfig, enabled: bool):
    if not enabled:
        return None
    from confide.experiments.progress import ProgressBar

    return ProgressBar(config.train.updates, f"{config.algo.name} seed {config.train.seed} (federated)")
