"""VS — value sharing (Du et al. 2022, as the baseline of ``000_…`` and ``001_…`` Sec. 5.2: "each agent
independently learns a value function and shares the output values with neighbours; the individual
policy is updated based on the average value").

Each agent i trains its critic V_i on its own reward (λ-return targets, decision 11). Once per update,
before its PPO iterations, it sends its value estimates on the batch to each neighbour j: message kind
``value``, payload ``values`` float32 ``[M', 2]`` = (V_i(s_m), V_i(s'_m)) per sample m, where s'_m is the
next state. With a per-sample neighbourhood only the samples where i and j are neighbours go, with
their ``index`` (int32), as for distributions (decision 10).

The estimator. At each sample agent i averages its own and the accepted received values,

    V̄_i(s_m) = (V_i(s_m) + Σ_{j∈R_i(m)} V_j(s_m)) / (1 + |R_i(m)|)   (and the same for s'_m),

R_i(m) the neighbours whose value for sample m arrived intact (in a gap, or for a lost or rejected
message, R_i(m) is empty and V̄_i = V_i). The actor's advantage is GAE on the TD error

    δ_i,t = r_i,t + γ V̄_i(s_{t+1}) − V̄_i(s_t),      Â_i,t = Σ_k (γλ)^k δ_i,t+k   (no bootstrap past an end),

used in IPPO's clipped surrogate (once per update, like IPPO).

Why this one. Agent i never learns r_j, only V_j: the TD error of the neighbourhood-average critic would
need the neighbourhood-average reward, and i's own reward is the only reward sample it has, so it stands
in for it. What the shared values can and cannot do follows from telescoping the sum (within an episode,
where the neighbour set is the same at consecutive samples):

    Â_i,t = Σ_k (γλ)^k r_i,t+k − V̄_i(s_t) + γ(1−λ) Σ_k (γλ)^k V̄_i(s_{t+k+1}).

The first two terms are i's own λ-return with V̄ as a state-dependent baseline, which does not change
the expected gradient. The neighbours' values change the direction of i's update only through the
bootstrap term, weighted by (1−λ) (0.02 at λ = 0.98); at λ = 1 VS is IPPO with another baseline. The
values carry i's influence on the neighbours' *future* returns through s', never its effect on their
immediate rewards, which only r_j would reveal. That is a property of sharing values without rewards,
not of this particular estimator (every value-only TD error telescopes the same way); it is consistent
with both papers' finding that VS does not reach cooperation. Alternatives not taken: a one-step
(λ = 0) actor advantage would make the shared values weigh more, but departs from the PPO/GAE base all
baselines share; the public DMPO code sums the neighbours' *advantages*, which are computed from their
private rewards — a different message than the values the papers describe.

When the neighbour set changes between consecutive samples (C. Predation's radius), V̄_i(s_{t+1}) at
sample t averages the neighbours of sample t, V̄_i(s_{t+1}) at sample t+1 those of t+1; the telescoping
is then approximate. That is why the next-state values travel too: each transition's TD error uses one
neighbour set.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from confide.channels import Inbox, Message
from confide.core.comms import Comms, Neighbourhood
from confide.core.gae import gae
from confide.core.ippo import clipped_ppo_update
from confide.core.learner import StackedLearner
from confide.core.population import NetworkSizes
from confide.core.ppo import PpoSettings
from confide.core.rollout import Rollout

VALUE = "value"
MESSAGE_KINDS: tuple[str, ...] = (VALUE,)


def value_messages(values: np.ndarray, neighbourhood: Neighbourhood, round: int) -> list[Message]:
    """One ``value`` message per directed link.

    Args:
        values: ``[N, M, 2]`` float32, each agent's (V(s_m), V(s'_m)) on the batch.
    """
    out = []
    for sender, receiver in neighbourhood.links():
        idx = neighbourhood.samples(sender, receiver)
        rows = values[sender] if idx is None else values[sender][idx]
        payload = {"values": np.ascontiguousarray(rows, dtype=np.float32)}
        if idx is not None:
            payload["index"] = idx
        out.append(Message(sender, receiver, VALUE, round, payload))
    return out


def check_value_message(message: Message, n: int, n_samples: int, neighbourhood: Neighbourhood) -> str | None:
    """Why a received ``value`` message is invalid, or None (same rules as distributions, no simplex)."""
    i, j = message.receiver, message.sender
    if not (0 <= i < n and 0 <= j < n) or i == j:
        return "bad_address"
    keys = set(message.payload)
    if not keys <= {"values", "index"} or "values" not in keys:
        return "bad_keys"
    if not neighbourhood.talks:
        return "not_neighbour"
    rows, idx = message.payload["values"], message.payload.get("index")
    if neighbourhood.per_sample:
        if idx is None or idx.ndim != 1 or idx.dtype.kind not in "iu":
            return "bad_index"
        if idx.size and (idx.min() < 0 or idx.max() >= n_samples or np.unique(idx).size != idx.size):
            return "bad_index"
        if not neighbourhood.mask[idx, i, j].all():
            return "not_neighbour"
        expected = (idx.size, 2)
    else:
        if idx is not None:
            return "bad_index"
        if not neighbourhood.mask[i, j]:
            return "not_neighbour"
        expected = (n_samples, 2)
    if rows.shape != expected or rows.dtype.kind != "f":
        return "bad_shape"
    if not np.isfinite(rows).all():
        return "non_finite"
    return None


def neighbourhood_average(
    own: np.ndarray, inbox: Inbox, comms: Comms, neighbourhood: Neighbourhood
) -> tuple[np.ndarray, np.ndarray]:
    """V̄ per agent and sample from its own values and the accepted received ones.

    Args:
        own: ``[N, M, 2]`` each agent's own (V(s), V(s')); agent i reads only row i.
    Returns:
        ``mean [N, M, 2]`` float64 and ``peers [N, M]`` (how many neighbours' values entered). Invalid or
        duplicate messages are rejected and counted in ``comms.rejected``.
    """
    n, m, _ = own.shape
    total = own.astype(np.float64)
    peers = np.zeros((n, m), dtype=np.int64)
    seen: set[tuple[int, int]] = set()
    for message in inbox.messages():
        if message.kind != VALUE:
            continue
        reason = check_value_message(message, n, m, neighbourhood)
        if reason is None and (message.sender, message.receiver) in seen:
            reason = "duplicate"
        if reason is not None:
            comms.reject(f"{VALUE}:{reason}")
            continue
        i, j = message.receiver, message.sender
        seen.add((j, i))
        idx = message.payload.get("index")
        rows = slice(None) if idx is None else idx.astype(np.int64)
        total[i, rows] += message.payload["values"]
        peers[i, rows] += 1
    return total / (1 + peers)[..., None], peers


class ValueSharing(StackedLearner):
    """N clipped-PPO learners whose advantages use their neighbourhood's average values."""

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
        super().__init__("vs", n_agents, state_dim, n_actions, 1, ppo, sizes, generator)

    def update(self, rollout: Rollout, comms: Comms, neighbourhood: Neighbourhood) -> dict[str, float]:
        pop, n = self.population, self.population.n_agents
        T, B = rollout.horizon, rollout.batch_size
        states = rollout.flat_states()
        with torch.no_grad():
            v = pop.values(states)  # [N, M]
            v_next = pop.values(rollout.next_states.reshape(T * B, -1))
        own = torch.stack([v, v_next], dim=-1).numpy()  # [N, M, 2]
        inbox = comms.exchange(value_messages(own, neighbourhood, comms.round))
        mean, peers = neighbourhood_average(own, inbox, comms, neighbourhood)
        vbar = torch.from_numpy(mean).float()

        def to_tbn(x: Tensor) -> Tensor:  # [N, M] -> [T, B, N]
            return x.T.reshape(T, B, n)

        ends = rollout.ends.unsqueeze(-1)
        g, lam = self.ppo.gamma, self.ppo.gae_lambda
        own_adv = gae(rollout.rewards, to_tbn(v), to_tbn(v_next), ends, g, lam)
        targets = (own_adv + to_tbn(v)).reshape(T * B, n)  # V_i's own λ-return (decision 11)
        adv = gae(rollout.rewards, to_tbn(vbar[..., 0]), to_tbn(vbar[..., 1]), ends, g, lam).reshape(T * B, n)
        shift = float((adv - own_adv.reshape(T * B, n)).abs().mean())
        if self.ppo.center_advantages:
            adv = adv - adv.mean(dim=0, keepdim=True)
        stats = clipped_ppo_update(self, rollout, (adv, targets))
        return {**stats, "values/peers": float(peers.mean()), "values/advantage_shift": shift}
