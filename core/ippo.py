"""IPPO — independent PPO on individual rewards (de Witt et al. 2020; AS Fig. 6 "independent PPO").

Each agent runs clipped PPO on its own reward with its own critic and sends nothing. Its adaptive-KL
sibling IPPO-KL lives in ``confide.core.dpo`` (it is DPO's objective without the √KL term).
"""

from __future__ import annotations

import torch
from torch import Tensor

from confide.core.comms import Comms, Neighbourhood
from confide.core.learner import StackedLearner
from confide.core.population import NetworkSizes
from confide.core.ppo import (
    PpoSettings,
    advantages_and_targets,
    categorical_entropy,
    clipped_surrogate,
    critic_step,
    minibatch_indices,
)
from confide.core.rollout import Rollout

MESSAGE_KINDS: tuple[str, ...] = ()


class IndependentPPO(StackedLearner):
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
        super().__init__("ippo", n_agents, state_dim, n_actions, 1, ppo, sizes, generator)

    def update(self, rollout: Rollout, comms: Comms, neighbourhood: Neighbourhood) -> dict[str, float]:
        return clipped_ppo_update(self, rollout)


def clipped_ppo_update(
    learner: StackedLearner, rollout: Rollout, advantages: tuple[Tensor, Tensor | None] | None = None
) -> dict[str, float]:
    """Independent clipped-PPO steps of every agent (shared by IPPO, VPS, VS, CL and IMR).

    ``advantages`` = (Â ``[M, N]``, critic targets ``[M, N]``); by default each agent's own GAE. With
    targets None the agents have no critics to train (CL: a central unit evaluates).
    """
    pop = learner.population
    states, actions = rollout.flat_states(), rollout.flat_actions()
    old_logp_a = rollout.log_probs.reshape(-1, pop.n_agents).T  # [N, M]
    if advantages is None:
        advantages = advantages_and_targets(pop, rollout, learner.ppo)
    adv, targets = advantages
    for _ in range(learner.ppo.iterations):
        for idx in minibatch_indices(states.shape[0], learner.ppo.minibatches, learner.generator):
            logp = torch.log_softmax(pop.own_logits(states[idx]), dim=-1)
            logp_a = logp.gather(-1, actions[idx].T.unsqueeze(-1)).squeeze(-1)
            ratio = (logp_a - old_logp_a[:, idx]).exp()
            surrogate = clipped_surrogate(ratio, adv[idx].T, learner.ppo.clip_eps)
            entropy = categorical_entropy(logp)
            loss = -(surrogate + learner.ppo.entropy_coef * entropy).mean(dim=1)
            learner.optimiser.step_actor(loss.sum())
            if targets is not None:
                closs = critic_step(pop, learner.optimiser, states[idx], targets[idx])
    with torch.no_grad():  # the update's result on the whole batch
        logp = torch.log_softmax(pop.own_logits(states), dim=-1)
        log_r = logp.gather(-1, actions.T.unsqueeze(-1)).squeeze(-1) - old_logp_a
    stats = {
        "loss/surrogate": float(surrogate.detach().mean()),
        "entropy/mean": float(categorical_entropy(logp).mean()),  # the policies' (nats)
        # KL(π_old ‖ π_new) by the unbiased k3 estimator r − 1 − log r on the sampled actions: the step
        # IPPO took, to compare with DPO's exact "kl/mean"
        "kl/approx": float((log_r.exp() - 1 - log_r).mean()),
    }
    if targets is not None:
        stats["loss/critic"] = float(closs.mean())
    return stats
