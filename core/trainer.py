"""One training run: env batch → agents act → rollout → messages out → channel → inboxes → updates →
metrics, once per update; writes ``config.json``, ``metrics.jsonl`` and ``summary.json``.

Runs survive: every file is replaced atomically, ``summary.json`` says ``"complete": false`` until the
last update is done, a checkpoint is written every ``train.checkpoint_every`` updates and at the end,
and ``train(..., resume=True)`` continues from it with results identical to an uninterrupted run.
A NaN/inf in a statistic or a parameter stops the run (``DivergenceError``)."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from confide.channels import Channel, ChannelStack, IdealChannel, Message, Meter, Tap, build_channel
from confide.core.comms import Comms, Neighbourhood
from confide.core.diagnostics import head_diagnostics, joint_action_rates
from confide.core.registry import Learner, build_learner
from confide.core.rollout import Rollout, collect_rollout
from confide.envs import make_env
from confide.envs.base import VecEnv
from confide.envs.team_reward import TeamReward
from confide.experiments.checkpoint import (
    CheckpointError,
    StopRequests,
    checkpoint_path,
    config_differences,
    load_checkpoint,
    run_is_complete,
    save_checkpoint,
)
from confide.experiments.config import ConfigError, RunConfig
from confide.experiments.io import append_jsonl, atomic_write_json, atomic_write_jsonl
from confide.experiments.provenance import code_version
from confide.experiments.tensorboard_log import TensorBoardLog
from confide.topologies import NeighbourSchedule
from confide.topologies import TopologyConfig as GraphConfig

code_version()  # fingerprint the sources now, as imported (``experiments.provenance``)

DEFAULT_TOPOLOGY = {"predation": "radius", "navigation": "line"}  # every other environment: complete


@dataclass
class RunResult:
    summary: dict[str, Any]
    metrics: list[dict[str, Any]]
    transcript_digest: str
    wire_payloads: tuple[Message, ...] = ()
    """The wire tap's messages in sending order (ciphertext when encrypted); empty unless
    ``train(..., keep_payloads=True)``."""


NATIVE_TEAM_MODE = ("stochastic_game", "mpe_spread", "mpe_line", "mpe_circle")


def make_run_env(config: RunConfig, env_kwargs: dict[str, Any] | None = None) -> VecEnv:
    """The run's batched environment; a constructor's refusal becomes a one-line ``ConfigError``.

    ``env.reward = "team"`` uses the environment's own team mode where it has one (the stochastic game,
    MPE), else the ``TeamReward`` wrapper (every agent gets the mean reward). ``env_kwargs`` go to the
    constructor too (e.g. a private reward parameter, issue 7).
    """
    e = config.env
    kwargs: dict[str, Any] = {}
    if e.name == "predation":
        kwargs["scheme"] = e.scheme
    elif e.name == "matrix":
        from confide.envs.matrix_games import MATRIX_GAMES

        kwargs["game"] = MATRIX_GAMES[e.game - 1]
    elif e.name == "stochastic_game":
        kwargs["seed"] = e.game_seed
    elif e.name in ("cleanup", "harvest"):
        kwargs["firing"] = e.firing
    if e.name in NATIVE_TEAM_MODE:
        kwargs["reward_mode"] = "team" if e.reward == "team" else "private"
    kwargs.update(env_kwargs or {})
    try:
        env = make_env(e.name, e.agents, config.train.batch, **kwargs)
    except ValueError as err:
        raise ConfigError(f"env: {err}") from None
    return TeamReward(env) if e.reward == "team" and e.name not in NATIVE_TEAM_MODE else env


def make_schedule(config: RunConfig, rng: np.random.Generator) -> NeighbourSchedule:
    t = config.topology
    kind = t.kind or DEFAULT_TOPOLOGY.get(config.env.name, "complete")
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


def channel_rng(seed: int) -> np.random.Generator:
    """The channel layers' stream: the fourth child of the run seed (the first three are ``seeds``')."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3])


def build_run_channel(config: RunConfig) -> tuple[ChannelStack, Meter, Tap]:
    """The configured layers around ``IdealChannel`` with the meter and tap on the wire (below
    encryption: they count and record what a link carries). Nodes: the N agents and a central unit
    with id N (CL, centralised PPO)."""
    wire: dict[str, Any] = {}

    def on_wire(channel: Channel) -> Channel:
        wire["meter"] = Meter(channel)
        wire["tap"] = Tap(wire["meter"])
        return wire["tap"]

    stack = build_channel(
        config.channel, config.env.agents + 1, channel_rng(config.train.seed), IdealChannel(), on_wire
    )
    return stack, wire["meter"], wire["tap"]


@dataclass
class RunState:
    """Everything that changes during a run, and nothing else: exactly what a checkpoint holds.

    Each update collects whole fresh episodes, so at an update boundary the environments hold nothing
    but their generator's state; the topology schedule owns its generator (``state_dict`` saves it).
    """

    learner: Learner
    comms: Comms
    channel: ChannelStack
    meter: Meter
    tap: Tap
    schedule: NeighbourSchedule
    env_rng: np.random.Generator
    generator: torch.Generator
    metrics: list[dict[str, Any]]

    def state_dict(self) -> dict[str, Any]:
        return {
            "learner": self.learner.state_dict(),
            "comms": self.comms.state_dict(),
            "channel": self.channel.state_dict(),
            "meter": self.meter.state_dict(),
            "tap": self.tap.state_dict(),
            "schedule": self.schedule.state_dict(),
            "env_rng": self.env_rng.bit_generator.state,
            "torch_rng": self.generator.get_state(),
            "metrics": list(self.metrics),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.comms.load_state_dict(state["comms"])
        self.channel.load_state_dict(state["channel"])
        self.meter.load_state_dict(state["meter"])
        self.tap.load_state_dict(state["tap"])
        self.schedule.load_state_dict(state["schedule"])
        self.env_rng.bit_generator.state = state["env_rng"]
        self.generator.set_state(state["torch_rng"])
        self.metrics = list(state["metrics"])


def start_run(config: RunConfig, env: VecEnv) -> RunState:
    """A run at update 0: networks, the channel stack (``build_run_channel``) and generators."""
    env_rng, topo_rng, generator = seeds(config.train.seed)
    learner: Learner = build_learner(config, env.state_dim, env.n_actions, generator)
    channel, meter, tap = build_run_channel(config)
    comms = Comms(channel, config.env.agents, kinds=learner.message_kinds, policy=config.algo.receiver_policy)
    schedule = make_schedule(config, topo_rng)
    return RunState(learner, comms, channel, meter, tap, schedule, env_rng, generator, [])


class TrainingInterrupted(Exception):
    """SIGTERM/SIGINT stopped the run at an update boundary after writing a checkpoint."""

    def __init__(self, signal_name: str, signal_number: int, updates_done: int, run_dir: Path | None):
        self.signal_number = signal_number
        self.run_dir = run_dir
        where = f"; checkpoint in {run_dir}" if run_dir is not None else ""
        super().__init__(f"stopped by {signal_name} after update {updates_done}{where}")


def train(
    config: RunConfig,
    run_dir: str | Path | None = None,
    progress: bool = False,
    *,
    resume: bool = False,
    stop_on_signals: bool = False,
    env_kwargs: dict[str, Any] | None = None,
    observe: Callable[[int, Rollout], None] | None = None,
    keep_payloads: bool = False,
) -> RunResult:
    """Train one run; if ``run_dir`` is given, write its result files and checkpoints there.

    ``resume`` continues from ``run_dir``'s checkpoint (from update 0 if none was written yet); the
    result is the same, bit for bit, as an uninterrupted run. ``stop_on_signals`` makes SIGTERM/SIGINT
    stop the run at the end of the current update with a checkpoint (``TrainingInterrupted``).
    Hooks for studies (issue 7): ``env_kwargs`` go to the environment's constructor (not in the config:
    a resumed run needs them again); ``observe(update, rollout)`` sees each update's rollout (not those
    of updates restored by ``resume``); ``keep_payloads`` makes the wire tap keep every message
    (``RunResult.wire_payloads``).
    Raises ``CheckpointError`` (a checkpoint that is unreadable or for another config),
    ``DivergenceError`` and ``ResultWriteError`` (disk full, read-only directory).
    """
    torch.set_num_threads(config.train.threads)
    started = time.perf_counter()
    env = make_run_env(config, env_kwargs)
    run = start_run(config, env)
    run.tap.keep_payloads = keep_payloads
    out = Path(run_dir) if run_dir is not None else None
    wall_before, code_history = 0.0, [code_version()]
    if resume:
        if out is None:
            raise ValueError("resume needs the run directory")
        wall_before, code_history = _restore(run, config, out)
    if out is not None:
        _start_files(config, out, run.metrics, keep_checkpoint=resume, code_history=code_history)
    bar = _progress(config, progress, done=len(run.metrics))
    board = TensorBoardLog(out, len(run.metrics)) if config.train.tensorboard and out is not None else None
    updates, every = config.train.updates, config.train.checkpoint_every
    try:
        with StopRequests(stop_on_signals) as stop:
            for update in range(len(run.metrics), updates):
                row = _one_update(run, env, update, observe)
                run.metrics.append(row)
                done = update + 1
                if out is not None:
                    append_jsonl(out / "metrics.jsonl", [row])  # rewritten atomically at the end
                    if done == updates or (every and done % every == 0) or stop.signal is not None:
                        wall = wall_before + time.perf_counter() - started
                        save_checkpoint(
                            checkpoint_path(out), config.to_dict(), done, wall, run.state_dict(), code_history
                        )
                        atomic_write_json(
                            out / "summary.json", _incomplete_summary(config, done, code_history)
                        )
                if board is not None:
                    board.log(update, row)
                if bar is not None:
                    bar.update(1, collective_return=row["collective_return"])
                if stop.signal is not None and done < updates:
                    raise TrainingInterrupted(stop.signal.name, int(stop.signal), done, out)
    finally:
        if bar is not None:
            bar.close()
        if board is not None:
            board.close()
    wall = wall_before + time.perf_counter() - started
    summary = run_summary(config, env, run, wall, code_history)
    if out is not None:
        atomic_write_jsonl(out / "metrics.jsonl", run.metrics)  # durable before the run says complete
        atomic_write_json(out / "summary.json", summary)
    return RunResult(summary, run.metrics, run.tap.transcript_digest(), tuple(run.tap.payloads))


def _one_update(
    run: RunState, env: VecEnv, update: int, observe: Callable[[int, Rollout], None] | None = None
) -> dict[str, Any]:
    """Rollout, neighbourhood, the learner's update and the metrics row; stops on divergence."""
    learner, meter, comms = run.learner, run.meter, run.comms
    comms.begin_update()
    sample_actions = getattr(learner, "sample_actions", None)  # a joint-action controller samples itself
    rollout = collect_rollout(
        env, learner.act_logits, run.env_rng, run.generator, sample_actions=sample_actions
    )
    if observe is not None:
        observe(update, rollout)
    neighbourhood = neighbourhood_for(run.schedule, update, rollout)
    before = meter.total_bytes
    stats = learner.update(rollout, comms, neighbourhood)
    check_parameters(learner, comms.n_agents, update)
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
    return row


def _restore(run: RunState, config: RunConfig, out: Path) -> tuple[float, list[str]]:
    """Load ``out``'s checkpoint into ``run``; return the wall time already spent (0 without one) and
    the code versions that trained the run so far, this process's last (``experiments.provenance``).

    Resuming with other code than wrote the checkpoint is allowed (a fix to a report module should not
    cost a week of training) but never silent: a warning now, two entries in ``code_history`` later."""
    path = checkpoint_path(out)
    if not path.exists():
        if run_is_complete(out):
            raise CheckpointError(f"{out} holds a complete run; there is nothing to resume")
        return 0.0, [code_version()]
    checkpoint = load_checkpoint(path)
    differs = config_differences(checkpoint["config"], config.to_dict())
    if differs:
        raise CheckpointError(f"checkpoint {path} is for another config (differs in {', '.join(differs)})")
    if checkpoint["updates_done"] >= config.train.updates and run_is_complete(out):
        raise CheckpointError(f"{out} holds a complete run; there is nothing to resume")
    try:
        run.load_state_dict(checkpoint["state"])
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"checkpoint {path} does not fit this run ({first[:120]})") from err
    if len(run.metrics) != checkpoint["updates_done"]:
        raise CheckpointError(f"checkpoint {path} is inconsistent (metrics rows != updates done)")
    history = list(checkpoint["code_history"])
    if history[-1] != code_version() and checkpoint["updates_done"] < config.train.updates:
        warnings.warn(
            f"{out}: resuming a run trained so far by code {history[-1]} with code {code_version()}; "
            "its summary.json lists both (code_history)",
            stacklevel=3,
        )
        history.append(code_version())
    return float(checkpoint["wall_seconds"]), history


def _start_files(
    config: RunConfig,
    out: Path,
    metrics: list[dict[str, Any]],
    keep_checkpoint: bool,
    code_history: list[str],
) -> None:
    """Mark the run incomplete before any update, so a crash is never read as a finished run."""
    out.mkdir(parents=True, exist_ok=True)
    if not keep_checkpoint:
        checkpoint_path(out).unlink(missing_ok=True)  # a stale checkpoint of an earlier run here
    atomic_write_json(out / "config.json", config.to_dict())
    atomic_write_jsonl(out / "metrics.jsonl", metrics)
    atomic_write_json(out / "summary.json", _incomplete_summary(config, len(metrics), code_history))


def _incomplete_summary(config: RunConfig, done: int, code_history: list[str]) -> dict[str, Any]:
    """What ``summary.json`` says while a run is unfinished (or after it crashed): never aggregated."""
    return {
        "algo": config.algo.name,
        "env": config.env.name,
        "agents": config.env.agents,
        "seed": config.train.seed,
        "updates": done,
        "updates_planned": config.train.updates,
        "code": code_history[-1],
        "code_history": code_history,
        "complete": False,
    }


class DivergenceError(RuntimeError):
    """A NaN or infinity in a training statistic or a parameter: the run stops rather than report
    garbage, and no checkpoint is written after it (the last one holds finite values)."""


def check_parameters(learner: Learner, n_agents: int, update: int) -> None:
    """Raise ``DivergenceError`` naming the agent and the tensor if any learner tensor is not finite.

    Walks ``learner.state_dict()`` (networks, optimiser moments, extra state such as DPO's β), so it
    covers every learner. A tensor whose axis 0 is a multiple of N is split into N agents' blocks.
    """
    for name, tensor in _tensors(learner.state_dict()):
        if not tensor.is_floating_point():
            continue
        bad = ~torch.isfinite(tensor)
        if not bad.any():
            continue
        who = "agent ?"
        if tensor.dim() >= 1 and tensor.shape[0] % n_agents == 0:
            rows = bad.reshape(tensor.shape[0], -1).any(dim=1).nonzero().flatten()
            who = f"agent {int(rows[0]) // (tensor.shape[0] // n_agents)}"
        raise DivergenceError(
            f"update {update}, {who}: {name} holds {int(bad.sum())} NaN/inf value(s) after the update"
        )


def _tensors(state: Any, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    if isinstance(state, torch.Tensor):
        return [(prefix, state)]
    if isinstance(state, dict):
        return [t for k, v in state.items() for t in _tensors(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(state, list | tuple):
        return [t for i, v in enumerate(state) for t in _tensors(v, f"{prefix}[{i}]")]
    return []


def _check_finite(row: dict[str, Any], update: int) -> None:
    for key, value in row.items():
        if isinstance(value, float) and not np.isfinite(value):
            raise DivergenceError(f"update {update}: statistic {key} is {value}")
        if isinstance(value, list):
            for agent, v in enumerate(value):
                if isinstance(v, float) and not np.isfinite(v):
                    raise DivergenceError(f"update {update}, agent {agent}: statistic {key} is {v}")


def channel_summary(config: RunConfig, channel: ChannelStack) -> dict[str, Any]:
    """What the network did: its settings, losses, rejections per layer and reason, message counts,
    and each agent's (ε, δ) when DP noise is on."""
    out: dict[str, Any] = {
        "settings": dataclasses.asdict(config.channel),
        "counts": channel.counts(),
        "losses": channel.losses(),
        "rejections": channel.rejections(),
    }
    if config.channel.dp_mechanism != "none":
        out["privacy"] = {
            str(agent): {"epsilon": e, "delta": d} for agent, (e, d) in channel.privacy().items()
        }
    return out


def run_summary(
    config: RunConfig, env: VecEnv, run: RunState, wall: float, code_history: list[str] | None = None
) -> dict[str, Any]:
    """The fields of `summary.json` (also written by `confide federate`, from the relay's view).
    ``code_history``: the code versions that trained the run, oldest first (default: this process's);
    ``"code"`` is the last of them."""
    code_history = code_history or [code_version()]
    metrics, meter, learner, comms = run.metrics, run.meter, run.learner, run.comms
    n, updates = config.env.agents, len(metrics)
    tail = metrics[-max(1, updates // 10) :]
    r = float(np.mean([m["collective_return"] for m in tail]))
    optimum = env.optimal_collective_return()  # None where no optimum is known (Cleanup, Harvest, MPE)
    r_opt = None if optimum is None else float(optimum)
    r_floor, floor_kind = env.floor_collective_return()
    summary = {
        "algo": config.algo.name,
        "network": config.algo.network,  # "shared_trunk": not the papers' model (AS/SS Sec. 6 remedy)
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
        "normalized_return": None if r_opt is None else (r - r_floor) / (r_opt - r_floor),
        "bytes_sent": meter.bytes_sent_summary(learner.message_kinds),
        "bytes_per_agent_per_update": meter.total_bytes / (n * updates),
        "messages_rejected": dict(comms.rejected),
        "messages_late": dict(comms.late),
        "messages_filled": dict(comms.filled),
        "filled_mean_age_rounds": comms.filled_age / max(1, sum(comms.filled.values())),
        "channel": channel_summary(config, run.channel),
        "wall_seconds": wall,
        "transcript_digest": run.tap.transcript_digest(),
        "code": code_history[-1],
        "code_history": code_history,
        "complete": True,
    }
    if config.env.name == "predation":
        summary["scheme"] = config.env.scheme
    summary["reward"] = config.env.reward
    dp_sgd = getattr(learner, "dp_sgd", None)  # PS/VPS trained by DP-SGD: each agent's (ε, δ)
    if dp_sgd is not None:
        summary["dp_sgd"] = dp_sgd.report()
    return summary


def _progress(config: RunConfig, enabled: bool, done: int = 0):
    if not enabled:
        return None
    from confide.experiments.progress import ProgressBar

    bar = ProgressBar(config.train.updates, f"{config.algo.name} seed {config.train.seed}")
    if done:
        bar.update(done, collective_return=float("nan"))
    return bar
