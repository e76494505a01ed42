"""Observer diagnostics of the learned heads (AS Fig. 7, SS Fig. 5), computed by the experimenter
from the agents' networks after an update; they play no part in learning.

For every ordered pair (i, j), i ≠ j, on the update's states:
- ``approach``: mean over states of π^{ij}(cooperative action of j | s) — the proportion of
  "approach" in i's anticipation of (or suggestion to) j;
- ``mse``: mean over states of (π^{jj}(a_j|s) − π^{ij}(a_j|s))², a_j the action j took.
"""

from __future__ import annotations

import torch

from confide.core.population import Population
from confide.core.rollout import Rollout


@torch.no_grad()
def head_diagnostics(population: Population | None, rollout: Rollout) -> dict[str, float]:
    if population is None:  # no per-agent networks (centralised joint-action PPO)
        return {}
    n = population.n_agents
    if population.heads != n:
        return own_policy_diagnostics(population, rollout)
    states, actions = rollout.flat_states(), rollout.flat_actions()
    probs = torch.softmax(population.all_logits(states), dim=-1)  # [N, N, M, A]
    m = states.shape[0]
    act = actions.T.reshape(1, n, m, 1).expand(n, n, m, 1)
    p_taken = probs.gather(-1, act).squeeze(-1)  # [N(i), N(j), M]: π^{ij}(a_j|s)
    own = torch.diagonal(p_taken).T  # [N, M]: π^{jj}(a_j|s)
    mse = ((p_taken - own.unsqueeze(0)) ** 2).mean(dim=-1)  # [N, N]
    off = ~torch.eye(n, dtype=torch.bool)
    out = {"heads/mse_mean": float(mse[off].mean())}
    approach = None
    if rollout.cooperative is not None and bool((rollout.cooperative >= 0).any()):
        coop = rollout.cooperative.reshape(-1, n).T.reshape(1, n, m, 1).expand(n, n, m, 1)
        approach = _masked_mean(probs.gather(-1, coop.clamp(min=0).long()).squeeze(-1), coop[..., 0] >= 0)
        out["heads/approach_mean"] = float(approach[off].mean())
        own_approach = torch.diagonal(approach)
        out["policy/approach_mean"] = float(own_approach.mean())
    if n <= 4:
        for i in range(n):
            for j in range(n):
                if i != j:
                    out[f"heads/mse/{i}->{j}"] = float(mse[i, j])
                    if approach is not None:
                        out[f"heads/approach/{i}->{j}"] = float(approach[i, j])
    return out


@torch.no_grad()
def own_policy_diagnostics(population: Population, rollout: Rollout) -> dict[str, float]:
    """Mean probability each agent's own policy gives the cooperative action (e.g. "approach")."""
    if rollout.cooperative is None or not bool((rollout.cooperative >= 0).any()):
        return {}
    n = population.n_agents
    probs = torch.softmax(population.own_logits(rollout.flat_states()), dim=-1)  # [N, M, A]
    coop = rollout.cooperative.reshape(-1, n).T.unsqueeze(-1).long()
    p = probs.gather(-1, coop.clamp(min=0)).squeeze(-1)
    return {"policy/approach_mean": float(_masked_mean(p, coop[..., 0] >= 0).mean())}


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis of the entries where ``mask`` holds (a cooperative act exists: an
    environment marks states without one by −1); NaN-free: 0 where nothing counts."""
    mask = mask.to(x.dtype)
    return (x * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def joint_action_rates(rollout: Rollout) -> dict[str, float]:
    """Rates of the cooperative act in the actions actually taken (SS Fig. 3 for N = 2).

    ``actions/cooperate`` is the fraction of agent-steps that cooperated; ``actions/all_cooperate`` and
    ``actions/none_cooperate`` the fractions of steps where every / no agent did (C-C and D-D at N = 2;
    C-D is the rest). Environments mark agent-steps without a cooperative act by −1: those count as
    not cooperating (e.g. Harvest: no scarce apple to spare).
    """
    if rollout.cooperative is None:
        return {}
    coop = rollout.actions == rollout.cooperative  # [T, B, N]
    return {
        "actions/cooperate": float(coop.float().mean()),
        "actions/all_cooperate": float(coop.all(dim=-1).float().mean()),
        "actions/none_cooperate": float((~coop).all(dim=-1).float().mean()),
    }
