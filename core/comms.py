"""What an algorithm holds to talk: the channel, this update's neighbourhood, a round counter and the
count of rejected messages. Receivers validate every payload (shape, finiteness, the simplex) and
reject what fails, counting the reason; learning continues without it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from confide.channels import Channel, Inbox, Message
from confide.channels.plain_state import from_plain


@dataclass(frozen=True)
class Neighbourhood:
    """Who talks to whom this update.

    ``mask[i, j]`` (static, ``[N, N]``) or ``mask[m, i, j]`` (per sample, ``[M, N, N]``) is True when
    agent j is a neighbour of agent i (decision 10). ``talks`` is False in a communication gap.
    """

    mask: np.ndarray
    talks: bool = True

    @property
    def per_sample(self) -> bool:
        return self.mask.ndim == 3

    def links(self) -> list[tuple[int, int]]:
        """Directed pairs (sender j, receiver i) that exchange anything this update."""
        if not self.talks:
            return []
        any_mask = self.mask.any(axis=0) if self.per_sample else self.mask
        receivers, senders = np.nonzero(any_mask)
        return [(int(j), int(i)) for i, j in zip(receivers, senders, strict=True)]

    def samples(self, sender: int, receiver: int) -> np.ndarray | None:
        """Sample indices where ``sender`` is ``receiver``'s neighbour; None means every sample."""
        if not self.per_sample:
            return None
        return np.nonzero(self.mask[:, receiver, sender])[0].astype(np.int32)


ReceiverPolicy = Literal["skip", "hold", "zero"]
# Kinds whose rows describe this update's batch: a held copy is only valid within the same update.
# Every other kind (parameters, statistics) stays meaningful across updates.
BATCH_KINDS = frozenset({"policy", "anticipation", "suggestion", "value", "reward", "advantage"})
DISTRIBUTION_ARRAYS = frozenset({"probs"})


class Comms:
    """An algorithm's handle on the network: exchange messages, count rejections and late arrivals,
    and apply the receiver policy for messages that do not arrive.

    A delayed message arrives in a later round than it was sent in. The inbox ``exchange`` returns holds
    only messages of the current round, so no algorithm mistakes a stale message for a current one;
    late ones are counted per kind in ``late``. Given the algorithm's ``kinds``, a message of any other
    kind is rejected and counted (``unknown_kind``).

    Receiver policy for an expected message that is missing this round (lost, late, over budget,
    rejected by the link). A receiver expects one message per link and kind that the protocol sends this
    round (its neighbours are known), so the expectation is the round's outgoing list:

    * ``skip`` (default, the papers' gap protocol): nothing is delivered; the algorithm leaves out the
      terms that need it.
    * ``hold``: the newest earlier message on that link and kind is delivered again, relabelled to this
      round, if it is still about the same data — from this update for batch kinds (``BATCH_KINDS``),
      from any earlier round for parameters and statistics. Its age in rounds is recorded.
    * ``zero``: arrays of the expected shape filled with zeros (distributions: the uniform distribution,
      the zero-information fill), integer index arrays kept. For parameters this shrinks the consensus
      towards zero: an ablation, not a recommendation.

    Filled messages are counted per kind in ``filled``; algorithms still validate them like any message.
    """

    def __init__(
        self,
        channel: Channel,
        n_agents: int,
        hold: bool = False,
        kinds: Sequence[str] | None = None,
        policy: ReceiverPolicy = "skip",
    ) -> None:
        if policy not in ("skip", "hold", "zero"):
            raise ValueError(f"receiver policy must be skip, hold or zero, got {policy!r}")
        self.channel = channel
        self.n_agents = n_agents
        self.kinds = None if kinds is None else frozenset(kinds)  # None: accept any kind
        self.policy = policy
        self.hold = hold or policy == "hold"  # keep the newest message per link and kind
        self.round = 0
        self.update_start = 0  # first round of the current update (``begin_update``)
        self.rejected: Counter[str] = Counter()
        self.late: Counter[str] = Counter()
        self.filled: Counter[str] = Counter()
        self.filled_age = 0  # total age in rounds of held messages delivered again
        self.delivered = 0
        self.held: dict[tuple[int, int, str], Message] = {}

    def begin_update(self) -> None:
        """Mark the start of an update: held batch messages from earlier updates become invalid."""
        self.update_start = self.round

    def exchange(self, outgoing: Sequence[Message]) -> Inbox:
        """Send one round of messages and return this round's inbox; advances the round counter."""
        inbox = self.channel.exchange(self.round, outgoing)
        current = []
        for message in inbox.messages():
            key = (message.sender, message.receiver, message.kind)
            if self.kinds is not None and message.kind not in self.kinds:
                self.reject("unknown_kind")
                continue
            if message.round == self.round:
                current.append(message)
            else:
                self.late[message.kind] += 1
            held = self.held.get(key)
            if self.hold and (held is None or held.round <= message.round):
                self.held[key] = message
        if self.policy != "skip":
            current += self._fill_missing(outgoing, current)
        self.round += 1
        self.delivered += len(current)
        return Inbox(current)

    def _fill_missing(self, outgoing: Sequence[Message], arrived: Sequence[Message]) -> list[Message]:
        got = {(m.sender, m.receiver, m.kind) for m in arrived}
        fills = []
        for sent in outgoing:
            key = (sent.sender, sent.receiver, sent.kind)
            if key in got or (self.kinds is not None and sent.kind not in self.kinds):
                continue
            if self.policy == "hold":
                since = self.update_start if sent.kind in BATCH_KINDS else 0
                old = self.latest_held(*key, since_round=since)
                if old is None or old.round == self.round:
                    continue
                self.filled_age += self.round - old.round
                fill = Message(old.sender, old.receiver, old.kind, self.round, old.payload)
            else:
                fill = sent.with_payload({k: _zero_like(k, v) for k, v in sent.payload.items()})
            self.filled[sent.kind] += 1
            fills.append(fill.roundtrip())
        return fills

    def latest_held(self, sender: int, receiver: int, kind: str, since_round: int) -> Message | None:
        """The newest message of ``kind`` on the link sent in round ``since_round`` or later, if any."""
        message = self.held.get((sender, receiver, kind))
        return message if message is not None and message.round >= since_round else None

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    def state_dict(self) -> dict:
        """Round counters, counts, and the held messages (the channel saves its own state)."""
        held = [  # payloads as their wire bytes: a checkpoint holds tensors and plain values only
            [
                m.sender,
                m.receiver,
                m.kind,
                m.round,
                torch.frombuffer(bytearray(m.encoded_payload()), dtype=torch.uint8),
            ]
            for m in self.held.values()
        ]
        return {
            "round": self.round,
            "update_start": self.update_start,
            "rejected": dict(self.rejected),
            "late": dict(self.late),
            "filled": dict(self.filled),
            "filled_age": self.filled_age,
            "delivered": self.delivered,
            "held": held,
        }

    def load_state_dict(self, state: dict) -> None:
        self.round = int(state["round"])
        self.rejected = Counter(state["rejected"])
        self.late = Counter(state.get("late", {}))
        self.update_start = int(state.get("update_start", 0))
        self.filled = Counter(state.get("filled", {}))
        self.filled_age = int(state.get("filled_age", 0))
        self.delivered = int(state["delivered"])
        self.held = {}
        for plain in state.get("held", []):
            m = from_plain(plain)
            self.held[(m.sender, m.receiver, m.kind)] = m


def _zero_like(name: str, array: np.ndarray) -> np.ndarray:
    """The ``zero`` policy's fill: zeros, the uniform distribution for probabilities, indices kept."""
    if array.dtype.kind != "f":
        return array.copy()
    if name in DISTRIBUTION_ARRAYS and array.ndim >= 1 and array.shape[-1] > 0:
        return np.full_like(array, 1.0 / array.shape[-1])
    return np.zeros_like(array)


def distribution_messages(
    probs: Tensor, neighbourhood: Neighbourhood, kind: str, round: int, head_of_receiver: bool
) -> list[Message]:
    """Messages carrying action distributions on the batch states.

    Args:
        probs: ``[N, H, M, A]`` every agent's head probabilities (detached).
        head_of_receiver: if True, sender j sends its head for the receiver i (π^{ji}: an anticipation
            or suggestion); otherwise its own policy π^{jj}.
    Per-sample neighbourhoods send only the samples where the two are neighbours, with their indices.
    """
    out = []
    arr = probs.detach().numpy()
    heads = arr.shape[1]
    for sender, receiver in neighbourhood.links():
        h = receiver if head_of_receiver else (sender if heads > 1 else 0)
        idx = neighbourhood.samples(sender, receiver)
        rows = arr[sender, h] if idx is None else arr[sender, h][idx]
        payload = {"probs": np.ascontiguousarray(rows, dtype=np.float32)}
        if idx is not None:
            payload["index"] = idx
        out.append(Message(sender, receiver, kind, round, payload))
    return out


def gather_distributions(
    inbox: Inbox, kind: str, comms: Comms, n_samples: int, n_actions: int, neighbourhood: Neighbourhood
) -> tuple[Tensor, Tensor]:
    """Stack the distributions of ``kind`` each agent received.

    Returns ``probs [N(receiver), N(sender), M, A]`` float32 and ``received [N, N, M]`` bool. Invalid
    messages (wrong shape, NaN/inf, off the simplex, bad index, unknown sender, not a neighbour) are
    rejected and counted in ``comms.rejected``.
    """
    n = comms.n_agents
    probs = np.zeros((n, n, n_samples, n_actions), dtype=np.float32)
    received = np.zeros((n, n, n_samples), dtype=bool)
    for message in inbox.messages():
        if message.kind != kind:
            continue
        reason = _check_distribution(message, n, n_samples, n_actions, neighbourhood)
        if reason is not None:
            comms.reject(f"{kind}:{reason}")
            continue
        i, j = message.receiver, message.sender
        rows = message.payload["probs"]
        idx = message.payload.get("index")
        if idx is None:
            probs[i, j] = rows
            received[i, j] = True
        else:
            probs[i, j, idx] = rows
            received[i, j, idx] = True
    return torch.from_numpy(probs), torch.from_numpy(received)


def _check_distribution(
    message: Message, n: int, n_samples: int, n_actions: int, neighbourhood: Neighbourhood
) -> str | None:
    i, j = message.receiver, message.sender
    if not (0 <= i < n and 0 <= j < n) or i == j:
        return "bad_address"
    keys = set(message.payload)
    if not keys <= {"probs", "index"} or "probs" not in keys:
        return "bad_keys"
    rows = message.payload["probs"]
    idx = message.payload.get("index")
    if neighbourhood.per_sample:
        if idx is None or idx.ndim != 1 or idx.dtype.kind not in "iu":
            return "bad_index"
        if idx.size and (idx.min() < 0 or idx.max() >= n_samples or np.unique(idx).size != idx.size):
            return "bad_index"
        if not neighbourhood.mask[idx, i, j].all():
            return "not_neighbour"
        expected = (idx.size, n_actions)
    else:
        if idx is not None:
            return "bad_index"
        if not neighbourhood.mask[i, j]:
            return "not_neighbour"
        expected = (n_samples, n_actions)
    if rows.shape != expected or rows.dtype.kind != "f":
        return "bad_shape"
    if not np.isfinite(rows).all():
        return "non_finite"
    if (rows < 0).any() or (np.abs(rows.sum(axis=-1) - 1) > 1e-3).any():
        return "not_a_distribution"
    return None
