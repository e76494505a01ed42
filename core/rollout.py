"""Rollouts: a batch of whole episodes stepped with every agent's own policy, stored ``[T, B, ...]``.

Each update collects ``B`` fresh episodes of the environment's full horizon (the papers update after
every episode; confide steps ``B`` of them in parallel). Agents observe the global state and the joint
action (public behaviour); each agent's reward is its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from confide.envs.base import VecEnv


@dataclass(frozen=True)
class Rollout:
    """One update's experience.

    Attributes:
        states: ``[T, B, S]`` float32, s_t.
        next_states: ``[T, B, S]`` float32, s_{t+1}.
        actions: ``[T, B, N]`` int64, a_t.
        log_probs: ``[T, B, N]`` log π^{ii}(a_i|s_t) of the behaviour policies.
        rewards: ``[T, B, N]`` float32 individual rewards.
        ends: ``[T, B]`` bool, the episode ends after step t (terminated or truncated: the objective
            is the finite-horizon episode return, so nothing is bootstrapped past the horizon).
        positions: ``[T, B, N, D]`` positions at s_t, or None.
        cooperative: ``[T, B, N]`` the cooperative action at s_t, or None.
    """

    states: Tensor
    next_states: Tensor
    actions: Tensor
    log_probs: Tensor
    rewards: Tensor
    ends: Tensor
    positions: np.ndarray | None
    cooperative: Tensor | None

    @property
    def horizon(self) -> int:
        return self.states.shape[0]

    @property
    def batch_size(self) -> int:
        return self.states.shape[1]

    @property
    def n_samples(self) -> int:
        return self.states.shape[0] * self.states.shape[1]

    def flat_states(self) -> Tensor:
        """``[M, S]`` with M = T·B, sample m = t·B + b."""
        return self.states.reshape(-1, self.states.shape[-1])

    def flat_actions(self) -> Tensor:
        """``[M, N]``."""
        return self.actions.reshape(-1, self.actions.shape[-1])

    def collective_returns(self) -> Tensor:
        """``[B]`` undiscounted collective return of each episode (sum over time and agents)."""
        return self.rewards.sum(dim=(0, 2))

    def agent_returns(self) -> Tensor:
        """``[B, N]`` undiscounted return of each agent."""
        return self.rewards.sum(dim=0)


def sample_categorical(logits: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Sample one action per row of ``logits [..., A]`` by inverse CDF from ``generator``.

    Returns (actions ``[...]`` int64, log-probabilities ``[...]``).
    """
    logp = torch.log_softmax(logits, dim=-1)
    cdf = logp.exp().cumsum(dim=-1)
    u = torch.rand(logits.shape[:-1], generator=generator).unsqueeze(-1)
    actions = (u > cdf).sum(dim=-1).clamp(max=logits.shape[-1] - 1)
    return actions, logp.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


ActLogits = Callable[[Tensor], Tensor]  # states [B, S] -> own-policy logits [N, B, A]
# states [B, S], generator -> actions [N, B], log-probabilities [N, B] (a learner whose agents do not act
# independently, e.g. a joint-action controller, samples for itself)
SampleActions = Callable[[Tensor, torch.Generator], tuple[Tensor, Tensor]]


@torch.no_grad()
def collect_rollout(
    env: VecEnv,
    act_logits: ActLogits,
    env_rng: np.random.Generator,
    generator: torch.Generator,
    record_cooperative: bool = True,
    sample_actions: SampleActions | None = None,
) -> Rollout:
    """Run ``env.batch_size`` episodes to the horizon with every agent acting on its own policy.

    By default each agent samples independently from ``act_logits``; ``sample_actions`` replaces that.
    """
    reset = env.reset(env_rng)
    state = reset.state
    positions = reset.positions
    T = env.horizon
    states, next_states, actions, logps, rewards, ends, poss, coops = [], [], [], [], [], [], [], []
    for _ in range(T):
        s = torch.from_numpy(np.asarray(state, dtype=np.float32))
        if sample_actions is None:
            a, lp = sample_categorical(act_logits(s), generator)  # [N, B] each
        else:
            a, lp = sample_actions(s, generator)
        a_bn = a.T.contiguous()  # [B, N]
        if record_cooperative:
            try:
                coops.append(torch.from_numpy(np.asarray(env.cooperative_action())))
            except NotImplementedError:
                record_cooperative = False
        if positions is not None:
            poss.append(np.asarray(positions))
        out = env.step(a_bn.numpy())
        states.append(s)
        next_states.append(torch.from_numpy(np.asarray(out.state, dtype=np.float32)))
        actions.append(a_bn)
        logps.append(lp.T)
        rewards.append(torch.from_numpy(np.asarray(out.rewards, dtype=np.float32)))
        done = np.asarray(out.terminated) | np.asarray(out.truncated)
        ends.append(torch.from_numpy(done))
        state, positions = out.state, out.positions
        if done.all():
            break
    return Rollout(
        states=torch.stack(states),
        next_states=torch.stack(next_states),
        actions=torch.stack(actions),
        log_probs=torch.stack(logps),
        rewards=torch.stack(rewards),
        ends=torch.stack(ends),
        positions=np.stack(poss) if poss else None,
        cooperative=torch.stack(coops) if record_cooperative and coops else None,
    )
