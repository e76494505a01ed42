"""Consensus on parameter vectors over the neighbour graph (VPS: Zhang et al. 2018; PS: Zhang &
Zavlanos 2019), with Metropolis–Hastings weights, and the messages that carry the vectors.

Weights (Metropolis–Hastings, from the undirected graph of this update with degrees d_i):

    w_ij = 1 / (1 + max(d_i, d_j))  for j ∈ N_i,     w_ii = 1 − Σ_{j∈N_i} w_ij,     0 otherwise.

W is symmetric with rows summing to 1, hence doubly stochastic; w_ii ≥ 1/(1 + d_i) > 0. On a connected
graph, repeated steps x ← W x converge to the plain average of the initial vectors.

Choices (*confide's*, the papers are silent):
- **Graph of an update.** With a per-sample neighbourhood ``[M, N, N]`` (C. Predation's radius) the graph
  is the union over the batch: j is i's neighbour if they were neighbours at any sample. The mask is
  public (a fixed graph, or computed from public positions), so every agent knows every degree and
  computes its own row of W without degrees travelling on the wire.
- **What an agent mixes.** Agent i computes its new vector only from its own vector and the vectors it
  *received and accepted* this round. A neighbour whose message is missing (dropped) or rejected
  (wrong length, NaN/inf, wrong keys, not a neighbour, duplicate) is left out and the remaining weights of
  row i are renormalised to sum to 1: x_i ← Σ_{k∈K_i} w_ik x_k / Σ_{k∈K_i} w_ik with K_i = {i} ∪ accepted.
  With nothing accepted the vector is left untouched (bit for bit), so an agent that hears nothing is an
  independent learner. (Unequal drops make the effective matrix row- but not column-stochastic, so the
  fixed point may move away from the exact average; with full delivery it is W exactly.)
- **Wire format.** One message per directed link per round, payload ``{"params": float32 [P]}``, the
  sender's whole flattened bank (P = every parameter of that agent's slice, in bank order).
- Optimiser states are not mixed; each agent's Adam moments stay its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from confide.channels import Inbox, Message
from confide.core.comms import Comms, Neighbourhood


def metropolis_hastings_weights(adjacency: np.ndarray) -> np.ndarray:
    """``[N, N]`` float64 Metropolis–Hastings weights of an undirected graph.

    Args:
        adjacency: ``[N, N]`` bool, symmetric; ``adjacency[i, j]`` True when j is i's neighbour. The
            diagonal is ignored.
    """
    a = np.asarray(adjacency, dtype=bool)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency must be a square [N, N] matrix, got shape {a.shape}")
    a = a & ~np.eye(a.shape[0], dtype=bool)
    if not (a == a.T).all():
        raise ValueError("adjacency must be symmetric (links are undirected)")
    degree = a.sum(axis=1)
    w = np.where(a, 1.0 / (1.0 + np.maximum(degree[:, None], degree[None, :])), 0.0)
    np.fill_diagonal(w, 1.0 - w.sum(axis=1))
    return w


def consensus_step(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One synchronous consensus step with full delivery: row i of the result is Σ_j w_ij x_j.

    Args:
        values: ``[N, P]`` one parameter vector per agent.
        weights: ``[N, N]`` row-stochastic mixing weights (e.g. :func:`metropolis_hastings_weights`).
    Returns:
        ``[N, P]`` float64.
    """
    return np.asarray(weights, dtype=np.float64) @ np.asarray(values, dtype=np.float64)


def update_adjacency(neighbourhood: Neighbourhood) -> np.ndarray:
    """``[N, N]`` bool graph of this update: the static mask, or the union over samples; empty in a gap."""
    mask = neighbourhood.mask.any(axis=0) if neighbourhood.per_sample else neighbourhood.mask
    if not neighbourhood.talks:
        return np.zeros_like(mask, dtype=bool)
    return np.asarray(mask, dtype=bool)


def flat_parameters(params: Sequence[Tensor], n_agents: int) -> np.ndarray:
    """``[N, P]`` float32: each agent's slice of every tensor of a bank (leading group axis), flattened."""
    return torch.cat([p.detach().reshape(n_agents, -1) for p in params], dim=1).numpy()


@torch.no_grad()
def load_flat_parameters_(params: Sequence[Tensor], flat: np.ndarray, agents: np.ndarray) -> None:
    """Write rows ``agents`` of ``flat [N, P]`` back into the bank (inverse of :func:`flat_parameters`)."""
    n_agents = flat.shape[0]
    rows = torch.from_numpy(np.nonzero(agents)[0])
    offset = 0
    for p in params:
        view = p.data.view(n_agents, -1)
        size = view.shape[1]
        view[rows] = torch.from_numpy(flat[rows.numpy(), offset : offset + size]).to(p.dtype)
        offset += size


def parameter_messages(
    flat: np.ndarray, neighbourhood: Neighbourhood, kind: str, round: int
) -> list[Message]:
    """One message per directed link (sender j → receiver i) carrying j's vector ``flat[j]`` as float32."""
    return [
        Message(
            sender, receiver, kind, round, {"params": np.ascontiguousarray(flat[sender], dtype=np.float32)}
        )
        for sender, receiver in neighbourhood.links()
    ]


def check_parameter_message(
    message: Message, n_agents: int, n_params: int, adjacency: np.ndarray
) -> str | None:
    """Why a received parameter message is invalid, or None if it is fine.

    Valid: sender and receiver are distinct agents, linked in this update's graph; the payload is exactly
    ``{"params": float [n_params]}`` (the receiver's own parameter count) with finite entries.
    """
    i, j = message.receiver, message.sender
    if not (0 <= i < n_agents and 0 <= j < n_agents) or i == j:
        return "bad_address"
    if set(message.payload) != {"params"}:
        return "bad_keys"
    if not adjacency[i, j]:
        return "not_neighbour"
    vec = message.payload["params"]
    if vec.shape != (n_params,) or vec.dtype.kind != "f":
        return "bad_shape"
    if not np.isfinite(vec).all():
        return "non_finite"
    return None


def mix_received(
    own: np.ndarray, inbox: Inbox, kind: str, comms: Comms, weights: np.ndarray, adjacency: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each agent's consensus step from its own vector and the vectors it accepted.

    Args:
        own: ``[N, P]`` every agent's current vector (agent i reads only row i).
        weights: ``[N, N]`` the Metropolis–Hastings weights of ``adjacency``.
    Returns:
        ``new [N, P]`` float64 and ``accepted [N]`` int (how many peers each agent mixed in). Rows with
        nothing accepted are ``own`` unchanged. Invalid messages are counted in ``comms.rejected``.
    """
    n, p = own.shape
    total = own.astype(np.float64) * np.diag(weights)[:, None]
    mass = np.diag(weights).astype(np.float64).copy()
    accepted = np.zeros(n, dtype=np.int64)
    seen: set[tuple[int, int]] = set()
    for message in inbox.messages():
        if message.kind != kind:
            continue
        reason = check_parameter_message(message, n, p, adjacency)
        if reason is None and (message.sender, message.receiver) in seen:
            reason = "duplicate"
        if reason is not None:
            comms.reject(f"{kind}:{reason}")
            continue
        i, j = message.receiver, message.sender
        seen.add((j, i))
        total[i] += weights[i, j] * message.payload["params"].astype(np.float64)
        mass[i] += weights[i, j]
        accepted[i] += 1
    new = own.astype(np.float64)
    mixed = accepted > 0
    new[mixed] = total[mixed] / mass[mixed, None]
    return new, accepted


def consensus_round(
    params: Sequence[Tensor], n_agents: int, kind: str, comms: Comms, neighbourhood: Neighbourhood
) -> dict[str, float]:
    """Send every agent's flattened bank to its neighbours, then set each agent's slice to its
    Metropolis–Hastings mix of what it accepted (in place). In a gap nothing is sent or mixed.

    Returns metrics: ``consensus/peers`` (mean accepted peers per agent) and ``consensus/distance``
    (mean L2 distance of an agent's vector to the agents' mean after the step: an observer's
    diagnostic, computed from the container, that plays no part in learning).
    """
    adjacency = update_adjacency(neighbourhood)
    own = flat_parameters(params, n_agents)
    inbox = comms.exchange(parameter_messages(own, neighbourhood, kind, comms.round))
    new, accepted = mix_received(own, inbox, kind, comms, metropolis_hastings_weights(adjacency), adjacency)
    changed = accepted > 0
    if changed.any():
        load_flat_parameters_(params, new.astype(np.float32), changed)
    after = flat_parameters(params, n_agents).astype(np.float64)
    spread = np.linalg.norm(after - after.mean(axis=0), axis=1).mean()
    return {"consensus/peers": float(accepted.mean()), "consensus/distance": float(spread)}
