"""IPPO — independent PPO on individual rewards (de Witt et al. 2020; AS Fig. 6 "independent PPO").

Each agent runs clipped PPO on its own reward with its own critic and sends nothing. Its adaptive-KL
sibling IPPO-KL lives in ``confide.core.dpo`` (it is DPO's objective without the √KL term).
"""

from __future__ import annotations

import torch
from torch import Tensor

from confide.core.comms import Comms, Neighbourhood
from confide.core.population import NetworkSizes, Population, PopulationOptimiser
from confide.core.ppo import (
    PpoSettings,
    advantages_and_targets,
    clipped_surrogate,
    critic_step,
    minibatch_indices,
)
from confide.core.rollout import Rollout

MESSAGE_KINDS: tuple[str, ...] = ()


class IndependentPPO:
    """N clipped-PPO learners, stacked; no messages."""

    message_kinds = MESSAGE_KINDS

    def __init__(
        self,
        n_agents: int,
        state_dim: int,
        n_actions: int,
        ppo: PpoSettings,
        sizes: NetworkSizes,
        generator: torch.Generator,
    ) -> None:
        self.name = "ippo"
        self.ppo = ppo
        self.generator = generator
        self.population = Population(n_agents, state_dim, n_actions, 1, sizes, generator)
        self.optimiser = PopulationOptimiser(self.population, ppo.actor_lr, ppo.critic_lr, ppo.max_grad_norm)

    def act_logits(self, states: Tensor) -> Tensor:
        return self.population.own_logits(states)

    def update(self, rollout: Rollout, comms: Comms, neighbourhood: Neighbourhood) -> dict[str, float]:
        pop = self.population
        states, actions = rollout.flat_states(), rollout.flat_actions()
        old_logp_a = rollout.log_probs.reshape(-1, pop.n_agents).T  # [N, M]
        adv, targets = advantages_and_targets(
            pop, rollout, self.ppo.gamma, self.ppo.gae_lambda, self.ppo.center_advantages
        )
        for _ in range(self.ppo.iterations):
            for idx in minibatch_indices(states.shape[0], self.ppo.minibatches, self.generator):
                logp = torch.log_softmax(pop.own_logits(states[idx]), dim=-1)
                logp_a = logp.gather(-1, actions[idx].T.unsqueeze(-1)).squeeze(-1)
                ratio = (logp_a - old_logp_a[:, idx]).exp()
                surrogate = clipped_surrogate(ratio, adv[idx].T, self.ppo.clip_eps)
                entropy = -(logp.exp() * logp).sum(-1)
                loss = -(surrogate + self.ppo.entropy_coef * entropy).mean(dim=1)
                self.optimiser.step_actor(loss.sum())
                closs = critic_step(pop, self.optimiser, states[idx], targets[idx])
        return {"loss/surrogate": float(surrogate.detach().mean()), "loss/critic": float(closs.mean())}

    def state_dict(self) -> dict:
        return {"population": self.population.state_dict(), "optimiser": self.optimiser.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.population.load_state_dict(state["population"])
        self.optimiser.load_state_dict(state["optimiser"])
