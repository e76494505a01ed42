"""One training run: env batch → agents act → rollout → messages out → channel → inboxes → updates →
metrics, once per update; writes ``config.json``, ``metrics.jsonl`` and ``summary.json``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from confide.channels import IdealChannel, Meter, Tap
from confide.core.comms import Comms, Neighbourhood
from confide.core.diagnostics import head_diagnostics, joint_action_rates
from confide.core.registry import Learner, build_learner
from confide.core.rollout import Rollout, collect_rollout
from confide.envs import make_env
from confide.envs.base import VecEnv
from confide.envs.team_reward import TeamReward
from confide.experiments.config import RunConfig
from confide.experiments.io import atomic_write_json, atomic_write_jsonl
from confide.topologies import NeighbourSchedule
from confide.topologies import TopologyConfig as GraphConfig

DEFAULT_TOPOLOGY = {"predation": "radius", "matrix": "complete"}


@dataclass
class RunResult:
    summary: dict[str, Any]
    metrics: list[dict[str, Any]]
    transcript_digest: str


def make_run_env(config: RunConfig) -> VecEnv:
    e = config.env
    if e.name == "predation":
        env = make_env("predation", e.agents, config.train.batch, scheme=e.scheme)
    else:
        from confide.envs.matrix_games import MATRIX_GAMES

        env = make_env("matrix", e.agents, config.train.batch, game=MATRIX_GAMES[e.game - 1])
    return TeamReward(env) if e.reward == "team" else env


def make_schedule(config: RunConfig, rng: np.random.Generator) -> NeighbourSchedule:
    t = config.topology
    kind = t.kind or DEFAULT_TOPOLOGY[config.env.name]
    return NeighbourSchedule(
        GraphConfig(kind=kind, radius=t.radius, partners=t.partners, period=t.period), config.env.agents, rng
    )


def neighbourhood_for(schedule: NeighbourSchedule, update: int, rollout: Rollout) -> Neighbourhood:
    positions = None
    if rollout.positions is not None:
        positions = rollout.positions.reshape(-1, *rollout.positions.shape[2:])
    mask = schedule.mask_for_update(update, positions)
    return Neighbourhood(mask, schedule.talks(update))


def seeds(seed: int) -> tuple[np.random.Generator, np.random.Generator, torch.Generator]:
    """Independent streams for the environment, the topology and the agents, all from the run seed."""
    env_ss, topo_ss, torch_ss = np.random.SeedSequence(seed).spawn(3)
    gen = torch.Generator().manual_seed(int(torch_ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)))
    return np.random.default_rng(env_ss), np.random.default_rng(topo_ss), gen


def train(config: RunConfig, run_dir: str | Path | None = None, progress: bool = False) -> RunResult:
    """Train one run; if ``run_dir`` is given, write its result files there."""
    torch.set_num_threads(config.train.threads)
    started = time.perf_counter()
    env = make_run_env(config)
    env_rng, topo_rng, generator = seeds(config.train.seed)
    learner: Learner = build_learner(config, env.state_dim, env.n_actions, generator)
    meter = Meter(IdealChannel())
    tap = Tap(meter)
    comms = Comms(tap, config.env.agents)
    schedule = make_schedule(config, topo_rng)
    out = Path(run_dir) if run_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", config.to_dict())
    metrics: list[dict[str, Any]] = []
    live = (
        open(out / "metrics.jsonl", "w") if out is not None else None
    )  # streamed; rewritten atomically at the end
    bar = _progress(config, progress)
    updates = config.train.updates
    for update in range(updates):
        rollout = collect_rollout(env, learner.act_logits, env_rng, generator)
        neighbourhood = neighbourhood_for(schedule, update, rollout)
        before = meter.total_bytes
        stats = learner.update(rollout, comms, neighbourhood)
        row = {
            "update": update,
            "env_steps": (update + 1) * rollout.n_samples,
            "collective_return": float(rollout.collective_returns().mean()),
            "agent_returns": [float(x) for x in rollout.agent_returns().mean(dim=0)],
            "bytes_sent": meter.total_bytes - before,
            "rejected": sum(comms.rejected.values()),
            **stats,
            **head_diagnostics(learner.population, rollout),
            **joint_action_rates(rollout),
        }
        _check_finite(row, update)
        metrics.append(row)
        if live is not None:
            live.write(json.dumps(row, sort_keys=True) + "\n")
            live.flush()
        if bar is not None:
            bar.update(1, collective_return=row["collective_return"])
    if bar is not None:
        bar.close()
    if live is not None:
        live.close()
    summary = _summary(config, env, metrics, meter, learner, comms, time.perf_counter() - started)
    if out is not None:
        atomic_write_jsonl(out / "metrics.jsonl", metrics)
        atomic_write_json(out / "summary.json", summary)
    return RunResult(summary, metrics, tap.transcript_digest())


class DivergenceError(RuntimeError):
    """A NaN or infinity in a training statistic: the run stops rather than report garbage."""


def _check_finite(row: dict[str, Any], update: int) -> None:
    for key, value in row.items():
        if isinstance(value, float) and not np.isfinite(value):
            raise DivergenceError(f"update {update}: {key} is {value}")


def _summary(config, env, metrics, meter, learner, comms, wall) -> dict[str, Any]:
    n, updates = config.env.agents, len(metrics)
    tail = metrics[-max(1, updates // 10) :]
    r = float(np.mean([m["collective_return"] for m in tail]))
    r_opt = float(env.optimal_collective_return())
    r_floor, floor_kind = env.floor_collective_return()
    summary = {
        "algo": config.algo.name,
        "env": config.env.name,
        "agents": n,
        "seed": config.train.seed,
        "updates": updates,
        "env_steps": metrics[-1]["env_steps"],
        "collective_return": r,
        "optimal_collective_return": r_opt,
        "defect_collective_return": float(r_floor) if floor_kind == "all_defect" else None,
        "floor_collective_return": float(r_floor),
        "floor_kind": floor_kind,
        "normalized_return": (r - r_floor) / (r_opt - r_floor),
        "bytes_sent": meter.bytes_sent_summary(learner.message_kinds),
        "bytes_per_agent_per_update": meter.total_bytes / (n * updates),
        "messages_rejected": dict(comms.rejected),
        "wall_seconds": wall,
        "complete": True,
    }
    if config.env.name == "predation":
        summary["scheme"] = config.env.scheme
    summary["reward"] = config.env.reward
    return summary


def _progress(config: RunConfig, enabled: bool):
    if not enabled:
        return None
    from confide.experiments.progress import ProgressBar

    return ProgressBar(config.train.updates, f"{config.algo.name} seed {config.train.seed}")
