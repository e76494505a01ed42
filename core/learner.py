"""The plumbing every stacked learner shares, so an algorithm's file holds only its update."""

from __future__ import annotations

import torch
from torch import Tensor

from confide.core.population import NetworkSizes, Population, PopulationOptimiser
from confide.core.ppo import PpoSettings


class StackedLearner:
    """What every stacked learner holds: a population, its optimiser, the PPO settings, a generator.

    Algorithms subclass this once and add only their ``update`` (and extra state): acting with the
    own-policy heads and saving/restoring networks and optimisers live here.
    """

    message_kinds: tuple[str, ...] = ()
    dp_sgd = None  # PS/VPS set a ``privacy.dp_sgd.DpSgd`` here; its accountant is saved with the networks

    def __init__(
        self,
        name: str,
        n_agents: int,
        state_dim: int,
        n_actions: int,
        heads: int,
        ppo: PpoSettings,
        sizes: NetworkSizes,
        generator: torch.Generator,
        critics: bool = True,
    ) -> None:
        self.name = name
        self.ppo = ppo
        self.generator = generator
        self.population = Population(n_agents, state_dim, n_actions, heads, sizes, generator, critics)
        self.optimiser = PopulationOptimiser(self.population, ppo.actor_lr, ppo.critic_lr, ppo.max_grad_norm)

    def act_logits(self, states: Tensor) -> Tensor:
        """``[N, B, A]`` logits of every agent's own policy on states ``[B, S]``."""
        return self.population.own_logits(states)

    def state_dict(self) -> dict:
        state = {"population": self.population.state_dict(), "optimiser": self.optimiser.state_dict()}
        if self.dp_sgd is not None:
            state["dp_sgd"] = self.dp_sgd.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.population.load_state_dict(state["population"])
        self.optimiser.load_state_dict(state["optimiser"])
        if self.dp_sgd is not None:
            self.dp_sgd.load_state_dict(state["dp_sgd"])
