"""Build the learner a run config names. Every learner exposes ``name``, ``message_kinds``,
``population``, ``act_logits(states)``, ``update(rollout, comms, neighbourhood)`` and state dicts."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from confide.core.anticipation import anticipation_sharing
from confide.core.centralized_learning import CentralizedLearning
from confide.core.centralized_ppo import CentralizedPPO, JointActionTooLarge
from confide.core.comms import Comms, Neighbourhood
from confide.core.dpo import DecentralizedPolicyOptimization
from confide.core.dual_clipped import DualClippedConfig
from confide.core.independent_q_learning import IndependentQLearning
from confide.core.intrinsic_moral_reward import IntrinsicMoralReward
from confide.core.ippo import IndependentPPO
from confide.core.policy_parameter_sharing import PolicyParameterSharing
from confide.core.population import Population
from confide.core.rollout import Rollout
from confide.core.suggestion import suggestion_sharing
from confide.core.value_parameter_sharing import ValueParameterSharing
from confide.core.value_sharing import ValueSharing
from confide.experiments import hyperparameters as hp
from confide.experiments.config import ConfigError, RunConfig
from confide.privacy.dp_sgd import dp_sgd_settings


class Learner(Protocol):
    name: str
    message_kinds: tuple[str, ...]
    population: Population | None  # None: no per-agent networks (centralised joint-action PPO)

    def act_logits(self, states: Tensor) -> Tensor: ...

    def update(self, rollout: Rollout, comms: Comms, neighbourhood: Neighbourhood) -> dict[str, float]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def build_learner(config: RunConfig, state_dim: int, n_actions: int, generator: torch.Generator) -> Learner:
    n = config.env.agents
    ppo = hp.ppo_settings(config)
    sizes = hp.network_sizes(config)
    name = config.algo.name
    if name in ("as", "as_peer", "ss"):
        denominator = "own_old" if name == "as" else "peer_old"
        dual = DualClippedConfig(hp.rho(config), denominator, config.algo.ratio_product_clip)
        make = suggestion_sharing if name == "ss" else anticipation_sharing
        learner = make(n, state_dim, n_actions, ppo, dual, sizes, generator)
        learner.name = name
        return learner
    if name in ("ippo", "independent_ppo"):  # "independent PPO" is the AS paper's Fig. 6 name
        learner = IndependentPPO(n, state_dim, n_actions, ppo, sizes, generator)
        learner.name = name
        return learner
    if name == "centralized_ppo":
        try:
            return CentralizedPPO(n, state_dim, n_actions, ppo, sizes, generator)
        except JointActionTooLarge as err:
            raise ConfigError(str(err)) from None
    if name == "imr":
        if config.env.name not in hp.IMR_ENVIRONMENTS:
            raise ConfigError(
                f"imr needs an environment that declares a cooperative act "
                f"({', '.join(hp.IMR_ENVIRONMENTS)}); {config.env.name!r} declares none"
            )
        return IntrinsicMoralReward(n, state_dim, n_actions, ppo, sizes, generator, hp.imr_bonus(config))
    if name == "iql":
        return IndependentQLearning(
            n, state_dim, n_actions, ppo, sizes, generator, hp.IQL, config.train.updates
        )
    if name in ("ps", "vps"):  # the parameter-sharing baselines, optionally trained by DP-SGD
        sharing = PolicyParameterSharing if name == "ps" else ValueParameterSharing
        return sharing(n, state_dim, n_actions, ppo, sizes, generator, dp_sgd_settings(config))
    baselines = {
        "vs": ValueSharing,
        "cl": CentralizedLearning,
    }
    if name in baselines:
        return baselines[name](n, state_dim, n_actions, ppo, sizes, generator)
    return DecentralizedPolicyOptimization(
        name, n, state_dim, n_actions, ppo, hp.dpo_config(config), sizes, generator
    )
