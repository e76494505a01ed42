"""confide.envs: batched multi-agent environments with individual rewards (contract in ``base.py``).

``make_env(name, n_agents, batch_size, **kwargs)`` builds one by name:

* ``"predation"``: ``CooperativePredation`` (kwargs ``scheme``, ``horizon``; decision 1).
* ``"matrix"``: ``MatrixGameEnv`` of DPO App. C (kwarg ``game``: a ``MatrixGame`` or its name, default
  ``"matrix_game_1"``); ``n_agents`` must be 2.
* ``"exchange"`` (AS), ``"navigation"`` (C. Navigation), ``"cleanup"``, ``"harvest"`` (reconstructed
  small maps), ``"stochastic_game"`` (DPO Sec. 4.1), ``"mpe_spread"``, ``"mpe_line"``, ``"mpe_circle"``
  (DPO's MPE tasks): see each module's docstring for its rules, optimum, floor and private parameter.

The PettingZoo view of one episode lives in ``confide.envs.pettingzoo_view`` (imported on demand).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from confide.envs.base import FloorKind, Reset, StepResult, VecEnv, check_actions
from confide.envs.matrix_games import MATRIX_GAMES, MatrixGame, MatrixGameEnv, matrix_game
from confide.envs.predation import CooperativePredation

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
ENV_NAMES: tuple[str, ...] = get_args(EnvName)


def _env_class(name: str) -> Any:
    """The class behind ``name``, imported on demand (the grid and MPE modules are sizeable)."""
    if name == "exchange":
        from confide.envs.exchange import Exchange

        return Exchange
    if name == "navigation":
        from confide.envs.navigation import CooperativeNavigation

        return CooperativeNavigation
    if name == "cleanup":
        from confide.envs.cleanup import Cleanup

        return Cleanup
    if name == "harvest":
        from confide.envs.harvest import Harvest

        return Harvest
    if name == "stochastic_game":
        from confide.envs.stochastic_game import RandomStochasticGame

        return RandomStochasticGame
    from confide.envs.mpe_tasks import CircleControl, LineControl, SimpleSpread

    return {"mpe_spread": SimpleSpread, "mpe_line": LineControl, "mpe_circle": CircleControl}[name]


def has_one_hot_state(name: str) -> bool:
    """Whether ``name``'s global state is always one one-hot vector (its class's ``one_hot_state``).

    Networks on such a state look their first layer up instead of multiplying (``StackedMLP``).
    """
    if name in ("predation", "matrix"):
        return False
    return bool(getattr(_env_class(name), "one_hot_state", False))


def make_env(name: EnvName, n_agents: int, batch_size: int, **kwargs: Any) -> VecEnv:
    """Build the batched environment ``name`` with ``n_agents`` agents and ``batch_size`` episodes.

    Keyword arguments go to the environment's constructor (e.g. ``scheme`` for C. Predation, ``game``
    for the matrix games, ``reward_mode`` and ``seed`` for the stochastic game, ``firing`` for Cleanup).
    """
    if name == "predation":
        return CooperativePredation(n_agents, batch_size, **kwargs)
    if name == "matrix":
        if n_agents != 2:
            raise ValueError(f"matrix games have exactly 2 agents, got n_agents={n_agents}")
        game = kwargs.pop("game", MATRIX_GAMES[0])
        if kwargs:
            unexpected = ", ".join(sorted(kwargs))
            raise ValueError(f"unexpected arguments for matrix: {unexpected}; only 'game' is accepted")
        return MatrixGameEnv(game, batch_size)
    if name in ENV_NAMES:
        return _env_class(name)(n_agents, batch_size=batch_size, **kwargs)
    raise ValueError(f"unknown environment {name!r}; known environments: {', '.join(ENV_NAMES)}")


__all__ = [
    "ENV_NAMES",
    "MATRIX_GAMES",
    "CooperativePredation",
    "EnvName",
    "FloorKind",
    "MatrixGame",
    "MatrixGameEnv",
    "Reset",
    "StepResult",
    "VecEnv",
    "check_actions",
    "has_one_hot_state",
    "make_env",
    "matrix_game",
]
