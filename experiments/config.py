"""Run configuration: nested frozen dataclasses, validated at construction, loaded from JSON/TOML.

One source of truth: the resolved config (defaults from the papers' tables filled in) is written
beside every run as ``config.json``. Every check raises ``ConfigError`` with a one-line message.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from confide.channels.stack import ChannelSettings

EnvName = Literal[
    "predation",
    "matrix",
    "exchange",
    "navigation",
    "cleanup",
    "harvest",
    "stochastic_game",
    "mpe_spread",
    "mpe_line",
    "mpe_circle",
]
AlgoName = Literal[
    "as",
    "as_peer",
    "ss",
    "dpo",
    "dpo_shared",
    "dpo_no_sqrt_kl",
    "dpo_no_kl",
    "ippo",
    "ippo_kl",
    "vs",
    "vps",
    "ps",
    "cl",
    "imr",
    "centralized_ppo",
    "independent_ppo",
    "iql",
]
ENV_NAMES: tuple[str, ...] = typing.get_args(EnvName)
ALGO_NAMES: tuple[str, ...] = typing.get_args(AlgoName)
SHARED_TRUNK_ALGOS = ("as", "as_peer", "ss")  # learners with N policy heads per agent (algo.network)
DP_SGD_ALGOS = ("ps", "vps")  # learners whose shared bank DP-SGD trains (algo.dp_sgd_*)


class ConfigError(ValueError):
    """A bad configuration value; the message is one line meant for the user."""


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _show(value: Any, limit: int = 60) -> str:
    """``repr`` cut to one short line, so an error about a huge or odd value stays one line."""
    text = repr(value).replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _key(key: Any) -> str:
    return key if isinstance(key, str) and key.isidentifier() else _show(key, 40)


def _check_types(section: Any, where: str) -> None:
    """Check every scalar field of a config section against its type hint, at construction.

    Values built in Python (not only loaded from files) are checked too; ints given for floats are
    stored as floats.
    """
    hints = typing.get_type_hints(type(section))
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            _check(isinstance(value, hints[f.name]), f"{f.name}: expected a section, got {_show(value)}")
            continue
        object.__setattr__(section, f.name, _coerce(value, hints[f.name], f"{where}.{f.name}"))


def _in_range(value: Any, low: float, high: float, name: str) -> None:
    if value is not None:
        _check(low <= value <= high, f"{name} must be in {low}..{high}, got {_show(value)}")


# Each environment's agent count when the config leaves it out, and the counts it accepts.
DEFAULT_AGENTS = {
    "predation": 8,
    "matrix": 2,
    "exchange": 3,
    "navigation": 3,
    "cleanup": 5,
    "harvest": 5,
    "stochastic_game": 6,
    "mpe_spread": 5,
    "mpe_line": 5,
    "mpe_circle": 5,
}
AGENT_RANGE = {
    "matrix": (2, 2),
    "exchange": (3, 3),
    "navigation": (2, 3),
    "cleanup": (2, 6),
    "harvest": (2, 9),
}


@dataclass(frozen=True)
class EnvConfig:
    name: EnvName = "predation"
    agents: int | None = None  # None = the environment's own (DEFAULT_AGENTS)
    scheme: Literal["as", "ss"] = "ss"  # C. Predation reward scheme (decision 1)
    game: int = 1  # matrix game 1..4 (DPO App. C)
    reward: Literal["individual", "team"] = "individual"  # team: every agent gets the team reward
    game_seed: int = 0  # the stochastic game's tables (a property of the game, not of the run)
    firing: bool = False  # Cleanup/Harvest penalty beam (Christoffersen et al.'s default: off)

    def __post_init__(self) -> None:
        _check(
            isinstance(self.name, str) and self.name in ENV_NAMES,
            f"env.name: unknown environment {_show(self.name)} (known: {', '.join(ENV_NAMES)})",
        )
        if self.agents is None:
            object.__setattr__(self, "agents", DEFAULT_AGENTS[self.name])
        _check_types(self, "env")
        low, high = AGENT_RANGE.get(self.name, (2, 64))
        _check(
            low <= self.agents <= high,
            f"env.agents must be in {low}..{high} for {self.name}, got {self.agents}",
        )
        _check(1 <= self.game <= 4, f"env.game must be 1..4, got {self.game}")
        _check(0 <= self.game_seed < 2**32, f"env.game_seed must be in 0..2^32-1, got {self.game_seed}")


@dataclass(frozen=True)
class AlgoConfig:
    name: AlgoName = "as"
    rho: float | None = None  # AS/SS penalty weight ρ; None = the paper's table
    ratio_product_clip: float | None = None  # decision 8, default off
    d_target: float | None = None  # DPO/IPPO-KL; None = table
    delta: float | None = None  # DPO/IPPO-KL Eq. 21 tolerance: adapt β outside [d/δ, d·δ]; None = 1.5
    omega: float | None = None  # DPO/IPPO-KL Eq. 21 step: β·ω or β/ω; None = 2
    one_over_n: bool | None = None  # DPO's 1/N factor; None = per variant
    imr_bonus: float | None = None  # IMR's intrinsic reward ξ per cooperative act; None = table
    receiver_policy: Literal["skip", "hold", "zero"] = "skip"  # a missing message (core/comms.py)
    # AS/SS actors: "exact" = the papers' N separate MLPs per agent; "shared_trunk" = each agent's N
    # heads share its hidden layers (AS/SS Sec. 6 remedy; a different model, labelled in summaries).
    network: Literal["exact", "shared_trunk"] = "exact"
    # DP-SGD of the shared bank (PS: policy heads, VPS: critics; privacy/dp_sgd.py, docs/leakage.md):
    # per-sample L2 clip C (None = off), noise multiplier σ (std σ·C; 0 = clip only), δ of the report.
    dp_sgd_clip: float | None = None
    dp_sgd_noise: float = 0.0
    dp_sgd_delta: float = 1e-5

    def __post_init__(self) -> None:
        _check(
            isinstance(self.name, str) and self.name in ALGO_NAMES,
            f"algo.name: unknown algorithm {_show(self.name)} (known: {', '.join(ALGO_NAMES)})",
        )
        _check_types(self, "algo")
        _check(self.rho is None or self.rho >= 0, f"algo.rho must be >= 0, got {self.rho}")
        _check(
            self.ratio_product_clip is None or self.ratio_product_clip > 1,
            f"algo.ratio_product_clip must be > 1, got {self.ratio_product_clip}",
        )
        _check(self.d_target is None or self.d_target > 0, f"algo.d_target must be > 0, got {self.d_target}")
        _check(self.delta is None or self.delta > 1, f"algo.delta must be > 1, got {self.delta}")
        _check(self.omega is None or self.omega > 1, f"algo.omega must be > 1, got {self.omega}")
        _check(
            self.imr_bonus is None or self.imr_bonus >= 0,
            f"algo.imr_bonus must be >= 0, got {self.imr_bonus}",
        )
        _check(
            self.network == "exact" or self.name in SHARED_TRUNK_ALGOS,
            f"algo.network {self.network!r} applies to {', '.join(SHARED_TRUNK_ALGOS)} only, not {self.name}",
        )
        dp_on = self.dp_sgd_clip is not None or self.dp_sgd_noise != 0
        _check(
            not dp_on or self.name in DP_SGD_ALGOS,
            f"algo.dp_sgd_*: DP-SGD applies to {', '.join(DP_SGD_ALGOS)} only, not {self.name}",
        )
        _check(
            self.dp_sgd_clip is None or 0 < self.dp_sgd_clip < float("inf"),
            f"algo.dp_sgd_clip must be > 0, got {self.dp_sgd_clip}",
        )
        _check(
            0 <= self.dp_sgd_noise < float("inf"), f"algo.dp_sgd_noise must be >= 0, got {self.dp_sgd_noise}"
        )
        _check(not dp_on or self.dp_sgd_clip is not None, "algo.dp_sgd_noise needs algo.dp_sgd_clip")
        _check(0 < self.dp_sgd_delta < 1, f"algo.dp_sgd_delta must be in (0, 1), got {self.dp_sgd_delta}")


@dataclass(frozen=True)
class PpoConfig:
    """Overrides of the PPO settings; None takes the paper's table (``hyperparameters.py``)."""

    gamma: float | None = None
    gae_lambda: float | None = None
    clip_eps: float | None = None
    actor_lr: float | None = None
    critic_lr: float | None = None
    iterations: int | None = None
    minibatches: int | None = None
    max_grad_norm: float | None = None
    entropy_coef: float | None = None
    center_advantages: bool | None = None
    standardise_advantages: bool | None = None

    def __post_init__(self) -> None:
        _check_types(self, "ppo")
        for name in ("gamma", "gae_lambda"):
            v = getattr(self, name)
            _check(v is None or 0 <= v <= 1, f"ppo.{name} must be in [0, 1], got {v}")
        for name in ("clip_eps", "actor_lr", "critic_lr"):
            v = getattr(self, name)
            _check(v is None or 0 < v <= 1, f"ppo.{name} must be in (0, 1], got {v}")
        _in_range(self.iterations, 1, 10_000, "ppo.iterations")
        _in_range(self.minibatches, 1, 65_536, "ppo.minibatches")
        for name in ("max_grad_norm", "entropy_coef"):
            v = getattr(self, name)
            _check(v is None or v >= 0, f"ppo.{name} must be >= 0, got {v}")


@dataclass(frozen=True)
class TopologyConfig:
    kind: Literal["complete", "ring", "line", "radius", "random_partners"] | None = None  # None = env default
    radius: float = 0.1
    partners: int = 2
    period: int = 1

    def __post_init__(self) -> None:
        _check_types(self, "topology")
        _check(self.radius > 0, f"topology.radius must be > 0, got {self.radius}")
        _check(self.partners >= 1, f"topology.partners must be >= 1, got {self.partners}")
        _in_range(self.period, 1, 1_000_000, "topology.period")


@dataclass(frozen=True)
class TrainConfig:
    updates: int = 300
    batch: int = 16  # parallel episodes per update
    seed: int = 0
    threads: int = 1
    progress: bool = True
    checkpoint_every: int = 10  # updates between checkpoints (0: only at the end and on SIGTERM/SIGINT)
    tensorboard: bool = False  # also write the metrics as TensorBoard events (<run dir>/tensorboard)

    def __post_init__(self) -> None:
        _check_types(self, "train")
        _check(self.updates >= 1, f"train.updates must be >= 1, got {self.updates}")
        _check(self.updates <= 1_000_000, f"train.updates must be at most 1000000, got {self.updates}")
        _check(1 <= self.batch <= 65536, f"train.batch must be in 1..65536, got {self.batch}")
        _check(0 <= self.seed < 2**63, f"train.seed must be a non-negative integer, got {_show(self.seed)}")
        _check(1 <= self.threads <= 256, f"train.threads must be in 1..256, got {self.threads}")
        _in_range(self.checkpoint_every, 0, 1_000_000, "train.checkpoint_every")


# Fields that may differ between a checkpoint and the run resuming it: they change no number.
RESUMABLE_CHANGES: tuple[str, ...] = ("train.checkpoint_every", "train.progress", "train.tensorboard")


CENTRAL_ADVANTAGES = ("cl", "centralized_ppo", "vs", "iql")
"""Algorithms whose advantages do not come from ``core.ppo.advantages_and_targets``."""

DPO_FAMILY = ("dpo", "dpo_shared", "dpo_no_sqrt_kl", "dpo_no_kl", "ippo_kl")
"""DPO, its public-code variant, its ablations and IPPO-KL: one learner (``core.dpo``), no ratio clip."""
_NO_ENTROPY = "its actor loss has no entropy term"
_NO_CLIP = "it does not clip the ratio (a KL penalty bounds the step)"
UNUSED_PPO_FIELDS: dict[str, dict[str, str]] = {
    **{name: {"entropy_coef": _NO_ENTROPY} for name in ("as", "as_peer", "ss")},
    **{name: {"clip_eps": _NO_CLIP} for name in DPO_FAMILY},
}
"""PPO overrides an algorithm's loss would ignore, with the reason: setting one is an error, not a no-op.
IQL is left out: it is a DQN with its own settings (``IqlSettings``) and uses only ``ppo.gamma``, and a
sweep's base commonly sets PPO keys for all its algorithms (docs/decisions.md)."""
NEUTRAL_PPO_VALUES: dict[str, Any] = {"entropy_coef": 0.0}
"""Values an unused field may still take: they ask for what the algorithm does anyway (a grid over
``ppo.entropy_coef = [0, 0.01]`` across AS and IPPO runs its AS points at 0)."""


@dataclass(frozen=True)
class RunConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    ppo: PpoConfig = field(default_factory=PpoConfig)
    topology: TopologyConfig = field(default_factory=TopologyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    channel: ChannelSettings = field(default_factory=ChannelSettings)  # ideal by default (docs/channels.md)

    def __post_init__(self) -> None:
        """Checks that span sections (a schedule or an environment would otherwise fail mid-run)."""
        _check_types(self, "")
        kind, n = self.topology.kind, self.env.agents
        _check(
            kind != "radius" or self.env.name == "predation",
            f"topology.kind radius needs agent positions; env {self.env.name!r} has none",
        )
        _check(
            kind != "random_partners" or self.topology.partners <= n - 1,
            f"topology.partners must be at most env.agents - 1 = {n - 1}, got {self.topology.partners}",
        )
        _check(
            not self.ppo.standardise_advantages or self.algo.name not in CENTRAL_ADVANTAGES,
            f"ppo.standardise_advantages applies to each agent's own GAE advantages; {self.algo.name} "
            "forms its advantages otherwise (a central critic, shared values or Q-learning)",
        )
        for name, reason in UNUSED_PPO_FIELDS.get(self.algo.name, {}).items():
            value = getattr(self.ppo, name)
            _check(
                value is None or (name in NEUTRAL_PPO_VALUES and value == NEUTRAL_PPO_VALUES[name]),
                f"ppo.{name} has no effect on {self.algo.name}: {reason}; remove it",
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a type hint; return it (ints accepted for floats). Raises ConfigError."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        what = {"env.name": "environment", "algo.name": "algorithm"}.get(where, "value")
        ok = isinstance(value, str | int | float | bool | None) and any(
            value == a and type(value) is type(a) for a in allowed
        )
        _check(ok, f"{where}: unknown {what} {_show(value)} (known: {', '.join(map(str, allowed))})")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None:
            _check(type(None) in args, f"{where}: must not be null")
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {_show(value)}")
    if hint is str:
        _check(isinstance(value, str), f"{where}: expected a string, got {_show(value)}")
        return value
    if hint is bool:
        _check(isinstance(value, bool), f"{where}: expected true/false, got {_show(value)}")
        return value
    if hint is int:
        _check(
            isinstance(value, int) and not isinstance(value, bool),
            f"{where}: expected an integer, got {_show(value)}",
        )
        return int(value)
    if hint is float:
        _check(
            isinstance(value, int | float) and not isinstance(value, bool),
            f"{where}: expected a number, got {_show(value)}",
        )
        try:
            v = float(value)
        except OverflowError:
            raise ConfigError(f"{where}: expected a finite number, got {_show(value)}") from None
        _check(v == v and abs(v) != float("inf"), f"{where}: expected a finite number, got {_show(value)}")
        return v
    if dataclasses.is_dataclass(hint):
        return section_from_dict(hint, value, where)
    if origin is tuple:  # tuple[str, ...] from a JSON/TOML list
        _check(isinstance(value, list | tuple), f"{where}: expected a list, got {_show(value)}")
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        return tuple(_coerce(v, item, f"{where}[]") for v in value)
    raise ConfigError(f"{where}: unsupported type")


def section_from_dict(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    _check(isinstance(data, dict), f"{where or 'config'}: expected a table/object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted((k for k in data if k not in names), key=repr)
    _check(
        not unknown,
        f"{where + ': ' if where else ''}unknown key(s) {', '.join(map(_key, unknown))} "
        f"(known: {', '.join(sorted(names))})",
    )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as err:  # a section that validates itself (ChannelSettings)
        raise ConfigError(f"{where}: {err}") from None


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Validate a config mapping (every key, type and range) into a ``RunConfig``; raises ConfigError."""
    return section_from_dict(RunConfig, data, "")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or TOML config file into a dict (validated later by ``config_from_dict``)."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except (OSError, ValueError) as err:  # ValueError: a NUL byte in the path
        reason = getattr(err, "strerror", None) or str(err)
        raise ConfigError(f"cannot read config file {_show(str(p), 200)}: {reason}") from err
    try:
        if p.suffix.lower() == ".toml":
            data = tomllib.loads(text.decode())
        else:
            data = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        first = (str(err).splitlines() or ["nested too deeply"])[0]
        raise ConfigError(f"config file {p} is not valid {p.suffix.lstrip('.') or 'JSON'}: {first}") from err
    _check(isinstance(data, dict), f"config file {p}: the top level must be a table/object")
    return data


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` (e.g. CLI flags) into ``base`` (e.g. a config file)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
