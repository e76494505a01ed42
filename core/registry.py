"""Build the learner a run config names. Every learner exposes ``name``, ``message_kinds``,
``population``, ``act_logits(states)``, ``update(rollout, comms, neighbourhood)`` and state dicts."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from confide.core.anticipation import anticipation_sharing
from confide.core.comms import Comms, Neighbourhood
from confide.core.dpo import DecentralizedPolicyOptimization
from confide.core.dual_clipped import DualClippedConfig
from confide.core.ippo import IndependentPPO
from confide.core.policy_parameter_sharing import PolicyParameterSharing
from confide.core.population import Population
from confide.core.rollout import Rollout
from confide.core.suggestion import suggestion_sharing
from confide.core.value_parameter_sharing import ValueParameterSharing
from confide.core.value_sharing import ValueSharing
from confide.experiments import hyperparameters as hp
from confide.experiments.config import RunConfig


class Learner(Protocol):
    name: str
    message_kinds: tuple[str, ...]
    population: Population

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
    if name == "ippo":
        return IndependentPPO(n, state_dim, n_actions, ppo, sizes, generator)
    baselines = {"vs": ValueSharing, "vps": ValueParameterSharing, "ps": PolicyParameterSharing}
    if name in baselines:
        return baselines[name](n, state_dim, n_actions, ppo, sizes, generator)
    return DecentralizedPolicyOptimization(
        name, n, state_dim, n_actions, ppo, hp.dpo_config(config), sizes, generator
    )
