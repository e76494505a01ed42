"""The dual-clipped objective shared by AS and SS (AS Eq. 13–16, SS Eq. 13–16) and their update loop
(Algorithm 1 of both papers).

Agent i has its own policy π^{ii} and one head π^{ij} per peer (an *anticipation* of j's policy in AS,
a *suggestion* to j in SS). Per iteration k of K (decision 9): every agent sends its own distributions
π^{jj}_old(·|s) and its head for the receiver π^{ji}_old(·|s) on the batch states to each neighbour, then
all agents update at once (Jacobi), then old ← current. Agent i maximises

    E[ min(ξ_i ξ_{N_i} Â_i, clip(ξ_i, 1−ε, 1+ε) ξ_{N_i} Â_i)
       − κ̂_i Σ_{j∈N_i} ρ ( 1[X^{ij}] ‖π^{ij} − π^{jj}‖² + 1[X^{ii}] ‖π^{ii} − π^{ji}‖² ) ]

with ξ_i = π^{ii}(a_i|s)/π^{ii}_old(a_i|s), ξ_{N_i} = Π_{j∈N_i} π^{ij}(a_j|s)/denominator_j, where the
denominator is π^{ij}_old(a_j|s) (AS Eq. 13 as printed, ``"own_old"``) or the peer's true old policy
π^{jj}_old(a_j|s) received in its message (SS Eq. 13, ``"peer_old"``) — decision 8. X^{ij} holds where
(π^{ij}(a_j|s)/π^{jj}(a_j|s)) Â_i ≥ Â_i and X^{ii} where (π^{ii}(a_i|s)/π^{ji}(a_i|s)) Â_i ≥ Â_i (Eq. 14),
κ̂_i = mean |Â_i| over the update batch, ρ_j = ρ'_j = ρ. Where j is not a neighbour at a sample, or its
message did not arrive (a communication gap, a drop), its ratio and both its penalties are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from confide.core.comms import Comms, Neighbourhood, distribution_messages, gather_distributions
from confide.core.learner import StackedLearner
from confide.core.population import NetworkSizes
from confide.core.ppo import PpoSettings, advantages_and_targets, critic_step, minibatch_indices
from confide.core.rollout import Rollout

Denominator = Literal["own_old", "peer_old"]


@dataclass(frozen=True)
class DualClippedConfig:
    """Settings of AS/SS beyond the PPO ones."""

    rho: float = 0.1
    denominator: Denominator = "own_old"
    ratio_product_clip: float | None = None  # decision 8: optional clip of ξ_{N_i}, default off


@dataclass(frozen=True)
class PeerInbox:
    """What agent i received this iteration, stacked over receivers i and senders j.

    ``policy [N, N, M, A]`` = π^{jj}_old(·|s) sent by j to i; ``head [N, N, M, A]`` = π^{ji}_old(·|s);
    ``has_policy``/``has_head`` ``[N, N, M]`` mark what arrived.
    """

    policy: Tensor
    has_policy: Tensor
    head: Tensor
    has_head: Tensor


def dual_clipped_loss(
    logp: Tensor,
    old_logp: Tensor,
    actions: Tensor,
    adv: Tensor,
    kappa: Tensor,
    inbox: PeerInbox,
    config: DualClippedConfig,
    clip_eps: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-agent loss ``[N]`` (negated Eq. 16) on a batch of M samples.

    Args:
        logp: ``[N, N, M, A]`` log π^{ij}(·|s) of the current heads (with gradient); diagonal = own.
        old_logp: ``[N, N, M, A]`` the same at the start of this iteration (no gradient).
        actions: ``[M, N]`` joint actions a.
        adv: ``[M, N]`` Â_i.
        kappa: ``[N]`` κ̂_i.
    """
    n, _, m, a_dim = logp.shape
    eye = torch.eye(n, dtype=torch.bool)
    # log π^{ij}(a_j|s): pick each head's probability of the action agent j actually took.
    act = actions.T.reshape(1, n, m, 1).expand(n, n, m, 1)
    logp_a = logp.gather(-1, act).squeeze(-1)  # [N, N, M]
    old_a = old_logp.gather(-1, act).squeeze(-1)
    own_logp_a = torch.diagonal(logp_a).T  # [N, M]
    own_old_a = torch.diagonal(old_a).T
    xi_i = (own_logp_a - own_old_a).exp()
    if config.denominator == "own_old":
        denom = old_a
    else:
        peer_policy_a = inbox.policy.clamp_min(1e-8).log().gather(-1, act).squeeze(-1)
        denom = peer_policy_a
    in_ratio = inbox.has_policy & ~eye.unsqueeze(-1)
    log_xi_n = ((logp_a - denom) * in_ratio).sum(dim=1)  # [N, M]
    xi_n = log_xi_n.exp()
    if config.ratio_product_clip is not None:
        c = config.ratio_product_clip
        xi_n = xi_n.clamp(1.0 / c, c)
    adv_t = adv.T  # [N, M]
    surrogate = torch.minimum(xi_i * xi_n * adv_t, xi_i.clamp(1 - clip_eps, 1 + clip_eps) * xi_n * adv_t)

    probs = logp.exp()  # [N, N, M, A]
    with torch.no_grad():
        # X^{ij}: (π^{ij}(a_j|s) / π^{jj}(a_j|s)) Â_i ≥ Â_i, with π^{jj} as received.
        peer_pol_a = inbox.policy.gather(-1, act).squeeze(-1).clamp_min(1e-8)
        in_xij = (probs.gather(-1, act).squeeze(-1) / peer_pol_a) * adv_t.unsqueeze(1) >= adv_t.unsqueeze(1)
        # X^{ii}: (π^{ii}(a_i|s) / π^{ji}(a_i|s)) Â_i ≥ Â_i, with π^{ji} as received from j.
        own_act = actions.T.reshape(n, 1, m, 1).expand(n, n, m, 1)
        head_a = inbox.head.gather(-1, own_act).squeeze(-1).clamp_min(1e-8)
        own_prob_a = own_logp_a.exp().unsqueeze(1)
        in_xii = (own_prob_a / head_a) * adv_t.unsqueeze(1) >= adv_t.unsqueeze(1)
    off = ~eye.unsqueeze(-1)
    pen_ij = ((probs - inbox.policy) ** 2).sum(-1) * (in_xij & inbox.has_policy & off)
    own_probs = torch.diagonal(probs, dim1=0, dim2=1).permute(2, 0, 1).unsqueeze(1)  # [N, 1, M, A]
    pen_ii = ((own_probs - inbox.head) ** 2).sum(-1) * (in_xii & inbox.has_head & off)
    penalty = config.rho * (pen_ij + pen_ii).sum(dim=1)  # [N, M]
    loss = -surrogate.mean(dim=1) + kappa * penalty.mean(dim=1)
    stats = {
        "surrogate": surrogate.detach().mean(dim=1),
        "penalty": penalty.detach().mean(dim=1),
        "xi_n_min": xi_n.detach().min(),
        "xi_n_max": xi_n.detach().max(),
    }
    return loss, stats


class DistributionSharing(StackedLearner):
    """AS or SS: Algorithm 1 with K exchanges per update (the two differ in names and the denominator)."""

    def __init__(
        self,
        name: str,
        head_kind: str,
        n_agents: int,
        state_dim: int,
        n_actions: int,
        ppo: PpoSettings,
        config: DualClippedConfig,
        sizes: NetworkSizes,
        generator: torch.Generator,
    ) -> None:
        self.head_kind = head_kind
        self.message_kinds = ("policy", head_kind)
        self.config = config
        super().__init__(name, n_agents, state_dim, n_actions, n_agents, ppo, sizes, generator)

    def update(self, rollout: Rollout, comms: Comms, neighbourhood: Neighbourhood) -> dict[str, float]:
        pop = self.population
        states, actions = rollout.flat_states(), rollout.flat_actions()
        m = states.shape[0]
        stats: dict[str, float] = {}
        xi_min, xi_max = float("inf"), 0.0
        one_batch = self.ppo.minibatches <= 1
        for _ in range(self.ppo.iterations):
            adv, targets = advantages_and_targets(pop, rollout, self.ppo)
            kappa = adv.abs().mean(dim=0)  # κ̂_i over the whole update batch
            # With one minibatch the forward pass with gradient is π_old itself (the parameters have not
            # moved since old ← current), so it is computed once and reused: a quarter of the actor FLOPs.
            full_logp = None
            if one_batch:
                full_logp = torch.log_softmax(pop.all_logits(states), dim=-1)
                old_logp = full_logp.detach()
            else:
                with torch.no_grad():
                    old_logp = torch.log_softmax(pop.all_logits(states), dim=-1)
            old_probs = old_logp.exp()
            outgoing = distribution_messages(old_probs, neighbourhood, "policy", comms.round, False)
            outgoing += distribution_messages(old_probs, neighbourhood, self.head_kind, comms.round, True)
            inbox = comms.exchange(outgoing)
            peer_policy, has_policy = gather_distributions(
                inbox, "policy", comms, m, pop.n_actions, neighbourhood
            )
            peer_head, has_head = gather_distributions(
                inbox, self.head_kind, comms, m, pop.n_actions, neighbourhood
            )
            for idx in minibatch_indices(m, self.ppo.minibatches, self.generator):
                peers = PeerInbox(
                    peer_policy[:, :, idx], has_policy[:, :, idx], peer_head[:, :, idx], has_head[:, :, idx]
                )
                if full_logp is not None:
                    logp = full_logp
                else:
                    logp = torch.log_softmax(pop.all_logits(states[idx]), dim=-1)
                loss, s = dual_clipped_loss(
                    logp,
                    old_logp[:, :, idx],
                    actions[idx],
                    adv[idx],
                    kappa,
                    peers,
                    self.config,
                    self.ppo.clip_eps,
                )
                self.optimiser.step_actor(loss.sum())
                closs = critic_step(pop, self.optimiser, states[idx], targets[idx])
                xi_min, xi_max = min(xi_min, float(s["xi_n_min"])), max(xi_max, float(s["xi_n_max"]))
        stats["loss/surrogate"] = float(s["surrogate"].mean())
        stats["loss/penalty"] = float(s["penalty"].mean())
        stats["loss/critic"] = float(closs.mean())
        stats["kappa"] = float(kappa.mean())
        stats["xi_n/min"] = xi_min
        stats["xi_n/max"] = xi_max
        return stats
