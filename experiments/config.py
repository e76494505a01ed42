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

EnvName = Literal["predation", "matrix"]
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
]
ENV_NAMES: tuple[str, ...] = typing.get_args(EnvName)
ALGO_NAMES: tuple[str, ...] = typing.get_args(AlgoName)


class ConfigError(ValueError):
    """A bad configuration value; the message is one line meant for the user."""


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


@dataclass(frozen=True)
class EnvConfig:
    name: EnvName = "predation"
    agents: int = 8
    scheme: Literal["as", "ss"] = "ss"  # C. Predation reward scheme (decision 1)
    game: int = 1  # matrix game 1..4 (DPO App. C)
    reward: Literal["individual", "team"] = "individual"  # team: every agent gets the mean reward

    def __post_init__(self) -> None:
        _check(
            self.name in ENV_NAMES,
            f"env.name: unknown environment {self.name!r} (known: {', '.join(ENV_NAMES)})",
        )
        _check(self.agents >= 2, f"env.agents must be at least 2, got {self.agents}")
        _check(self.agents <= 64, f"env.agents must be at most 64, got {self.agents}")
        _check(1 <= self.game <= 4, f"env.game must be 1..4, got {self.game}")
        if self.name == "matrix":
            _check(self.agents == 2, "env.agents must be 2 for the matrix games")


@dataclass(frozen=True)
class AlgoConfig:
    name: AlgoName = "as"
    rho: float | None = None  # AS/SS penalty weight ρ; None = the paper's table
    ratio_product_clip: float | None = None  # decision 8, default off
    d_target: float | None = None  # DPO/IPPO-KL; None = table
    one_over_n: bool | None = None  # DPO's 1/N factor; None = per variant

    def __post_init__(self) -> None:
        _check(
            self.name in ALGO_NAMES,
            f"algo.name: unknown algorithm {self.name!r} (known: {', '.join(ALGO_NAMES)})",
        )
        _check(self.rho is None or self.rho >= 0, f"algo.rho must be >= 0, got {self.rho}")
        _check(
            self.ratio_product_clip is None or self.ratio_product_clip > 1,
            f"algo.ratio_product_clip must be > 1, got {self.ratio_product_clip}",
        )
        _check(self.d_target is None or self.d_target > 0, f"algo.d_target must be > 0, got {self.d_target}")


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

    def __post_init__(self) -> None:
        for name in ("gamma", "gae_lambda"):
            v = getattr(self, name)
            _check(v is None or 0 <= v <= 1, f"ppo.{name} must be in [0, 1], got {v}")
        for name in ("clip_eps", "actor_lr", "critic_lr"):
            v = getattr(self, name)
            _check(v is None or v > 0, f"ppo.{name} must be > 0, got {v}")
        for name in ("iterations", "minibatches"):
            v = getattr(self, name)
            _check(v is None or v >= 1, f"ppo.{name} must be >= 1, got {v}")
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
        _check(self.radius > 0, f"topology.radius must be > 0, got {self.radius}")
        _check(self.partners >= 1, f"topology.partners must be >= 1, got {self.partners}")
        _check(self.period >= 1, f"topology.period must be >= 1, got {self.period}")


@dataclass(frozen=True)
class TrainConfig:
    updates: int = 300
    batch: int = 16  # parallel episodes per update
    seed: int = 0
    threads: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        _check(self.updates >= 1, f"train.updates must be >= 1, got {self.updates}")
        _check(1 <= self.batch <= 65536, f"train.batch must be in 1..65536, got {self.batch}")
        _check(0 <= self.seed < 2**63, f"train.seed must be a non-negative integer, got {self.seed}")
        _check(1 <= self.threads <= 256, f"train.threads must be in 1..256, got {self.threads}")


@dataclass(frozen=True)
class RunConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    ppo: PpoConfig = field(default_factory=PpoConfig)
    topology: TopologyConfig = field(default_factory=TopologyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a type hint; return it (ints accepted for floats). Raises ConfigError."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        what = {"env.name": "environment", "algo.name": "algorithm"}.get(where, "value")
        _check(value in allowed, f"{where}: unknown {what} {value!r} (known: {', '.join(map(str, allowed))})")
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
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if hint is bool:
        _check(isinstance(value, bool), f"{where}: expected true/false, got {value!r}")
        return value
    if hint is int:
        _check(
            isinstance(value, int) and not isinstance(value, bool),
            f"{where}: expected an integer, got {value!r}",
        )
        return value
    if hint is float:
        _check(
            isinstance(value, int | float) and not isinstance(value, bool),
            f"{where}: expected a number, got {value!r}",
        )
        v = float(value)
        _check(v == v and abs(v) != float("inf"), f"{where}: expected a finite number, got {value!r}")
        return v
    if dataclasses.is_dataclass(hint):
        return section_from_dict(hint, value, where)
    raise ConfigError(f"{where}: unsupported type")


def section_from_dict(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    _check(isinstance(data, dict), f"{where}: expected a table/object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    _check(
        not unknown,
        f"{where}: unknown key(s) {', '.join(map(str, unknown))} (known: {', '.join(sorted(names))})",
    )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    return section_from_dict(RunConfig, data, "")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or TOML config file into a dict (validated later by ``config_from_dict``)."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read config file {p}: {err.strerror}") from err
    try:
        if p.suffix.lower() == ".toml":
            data = tomllib.loads(text.decode())
        else:
            data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"config file {p} is not valid {p.suffix.lstrip('.') or 'JSON'}: {str(err).splitlines()[0]}"
        ) from err
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
