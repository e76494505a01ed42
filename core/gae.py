"""Generalised advantage estimation (Schulman et al. 2016; AS/SS Eq. 17), vectorised over episodes
and agents, and the λ-return critic targets every algorithm shares (decision 11)."""

from __future__ import annotations

import torch
from torch import Tensor


def gae(
    rewards: Tensor, values: Tensor, next_values: Tensor, ends: Tensor, gamma: float, lam: float
) -> Tensor:
    """Advantages ``[T, ...]``.

    Args:
        rewards: ``[T, ...]`` r_t.
        values: ``[T, ...]`` V(s_t).
        next_values: ``[T, ...]`` V(s_{t+1}) (ignored where the episode ends at t).
        ends: ``[T, ...]`` bool (broadcastable), True where the episode ends after step t: no
            bootstrapping and no advantage flows back across the boundary.
        gamma, lam: discount and GAE λ.

    The loop runs over time only; every other axis is one tensor op.
    """
    cont = (~ends).to(rewards.dtype)
    deltas = rewards + gamma * next_values * cont - values
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * cont[t] * running
        adv[t] = running
    return adv


def gae_reference(rewards, values, next_values, ends, gamma: float, lam: float) -> list[float]:
    """Element-by-element definition for one trajectory (lists of floats), for tests."""
    T = len(rewards)
    out = []
    for t in range(T):
        total, weight = 0.0, 1.0
        for k in range(t, T):
            c = 0.0 if ends[k] else 1.0
            delta = rewards[k] + gamma * next_values[k] * c - values[k]
            total += weight * delta
            if ends[k]:
                break
            weight *= gamma * lam
        out.append(total)
    return out
