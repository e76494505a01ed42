"""PS — policy parameter sharing (Zhang & Zavlanos 2019, "Distributed off-policy actor-critic with
policy consensus"; the baseline of ``000_…`` and ``001_…`` Sec. 5.2).

Agent i keeps its own estimate of the *joint* policy: one head π^{ij} per agent j (a ``Population`` with
``heads = N``), and acts with its own head π^{ii}. From its own reward only it trains every head: head j
with the action agent j took and i's own advantage Â_i (GAE of i's own critic), by the clipped PPO
surrogate on that head's probability ratio,

    L_i = − Σ_j E[ min(ξ^{ij} Â_i, clip(ξ^{ij}, 1−ε, 1+ε) Â_i) ],   ξ^{ij} = π^{ij}(a_j|s) / π^{ij}_old(a_j|s),

with π^{ij}_old the head at the start of the update. (This is the likelihood-ratio gradient of the joint
policy Π_j π^{ij}(a_j|s) for i's reward, clipped head by head. a_j was drawn from j's own head π^{jj}, not
π^{ij}; no correction is applied — consensus keeps the heads close, and i never sees π^{jj}.) Critics
are independent (own reward, λ-return targets, decision 11).

After the update's iterations, one consensus step on the whole policy bank of each agent (all N heads,
``confide.core.consensus``): message kind ``policy_params``, the flattened N heads as float32, to each
neighbour; the new policy is the Metropolis–Hastings weighted mean of the own and the accepted
received vectors. Averaging the estimates averages the agents' gradients, i.e. follows the collective
reward. In a communication gap nothing is sent and no consensus happens (decision 9).

With ``dp_sgd`` settings (``algo.dp_sgd_clip``) the policy bank, the thing PS sends, trains by DP-SGD
(``confide.privacy.dp_sgd``): per-sample, per-agent clipping and Gaussian noise before Adam.
"""

from __future__ import annotations

import torch

from confide.core.comms import Comms, Neighbourhood
from confide.core.consensus import consensus_round
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
from confide.privacy.dp_sgd import DpSgdSettings

POLICY_PARAMS = "policy_params"
MESSAGE_KINDS: tuple[str, ...] = (POLICY_PARAMS,)


class PolicyParameterSharing(StackedLearner):
    """N agents, each with N policy heads (its joint-policy estimate) and one critic, stacked."""

    message_kinds = MESSAGE_KINDS

    def __init__(
        self,
        n_agents: int,
        state_dim: int,
        n_actions: int,
        ppo: PpoSettings,
        sizes: NetworkSizes,
        generator: torch.Generator,
        dp_sgd: DpSgdSettings | None = None,
    ) -> None:
        super().__init__("ps", n_agents, state_dim, n_actions, n_agents, ppo, sizes, generator)
        self.dp_sgd = None
        if dp_sgd is not None:
            from confide.privacy.dp_sgd import DpSgd  # imports Opacus: only when DP-SGD is on

            opt = self.optimiser
            self.dp_sgd = DpSgd(
                dp_sgd, self.population.policy, opt.actor, n_agents, opt.max_grad_norm, ppo.minibatches
            )

    def update(self, rollout: Rollout, comms: Comms, neighbourhood: Neighbourhood) -> dict[str, float]:
        pop, n = self.population, self.population.n_agents
        states, actions = rollout.flat_states(), rollout.flat_actions()
        m = states.shape[0]
        adv, targets = advantages_and_targets(pop, rollout, self.ppo)
        # Head j of every agent is scored on a_j: index [N(i), N(j), M, 1].
        act = actions.T.reshape(1, n, m, 1).expand(n, n, m, 1)
        with torch.no_grad():
            old_logp_a = torch.log_softmax(pop.all_logits(states), dim=-1).gather(-1, act).squeeze(-1)
        for _ in range(self.ppo.iterations):
            for idx in minibatch_indices(m, self.ppo.minibatches, self.generator):
                logp = torch.log_softmax(self._all_logits(states[idx]), dim=-1)  # [N, N, m, A]
                logp_a = logp.gather(-1, act[:, :, idx]).squeeze(-1)  # [N, N, m]
                ratio = (logp_a - old_logp_a[:, :, idx]).exp()
                surrogate = clipped_surrogate(ratio, adv[idx].T.unsqueeze(1), self.ppo.clip_eps)
                entropy = categorical_entropy(logp)  # of each head; the joint entropy is their sum
                loss = -(surrogate + self.ppo.entropy_coef * entropy).sum(dim=1).mean(dim=1)  # [N]
                if self.dp_sgd is None:
                    self.optimiser.step_actor(loss.sum())
                else:
                    self.dp_sgd.step(loss.sum())
                closs = critic_step(pop, self.optimiser, states[idx], targets[idx])
        stats = {"loss/surrogate": float(surrogate.detach().mean()), "loss/critic": float(closs.mean())}
        stats.update(consensus_round(pop.actor_parameters(), n, POLICY_PARAMS, comms, neighbourhood))
        return stats

    def _all_logits(self, states: torch.Tensor) -> torch.Tensor:
        """``[N, N, m, A]`` every head's logits, through DP-SGD's per-sample-gradient view when it is on."""
        if self.dp_sgd is None:
            return self.population.all_logits(states)
        return self.dp_sgd.forward(states).view(
            self.population.n_agents, self.population.heads, len(states), -1
        )
