"""A per-link byte budget per exchange round; what does not fit is dropped, not queued.

Each directed link may carry at most ``bytes_per_round`` payload bytes per round (``payload_bytes()``,
the size ``Meter`` counts, so ciphertext when placed below encryption; routing fields are free, as in
the meter). Messages are admitted greedily in sending order: one that does not fit in what is left of
its link's budget is dropped and counted under ``losses["over_budget"]``; a later, smaller message on
the same link may still fit. The budget resets every round.

Why drop rather than queue: a queue would hand stale messages to the transport in a later round,
which the transport contract forbids (``IdealChannel`` only takes current-round messages), and it
would mix transmission delay into a layer whose question is "what fits". Latency is the delay
layer's job; compression (``quantise``) is how an algorithm gets more through a thin link.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from confide.channels.channel import Channel, Inbox
from confide.channels.message import Message


class BandwidthLayer:
    """Drops the messages that overflow a directed link's byte budget in a round."""

    def __init__(self, inner: Channel, bytes_per_round: int) -> None:
        if bytes_per_round <= 0:
            raise ValueError(f"bytes_per_round must be > 0, got {bytes_per_round}")
        self.inner = inner
        self.bytes_per_round = bytes_per_round
        self.losses: Counter[str] = Counter({"over_budget": 0})
        self.bytes_dropped = 0

    def exchange(self, round: int, outgoing: Sequence[Message]) -> Inbox:
        used: Counter[tuple[int, int]] = Counter()
        kept = []
        for message in outgoing:
            link = (message.sender, message.receiver)
            size = message.payload_bytes()
            if used[link] + size <= self.bytes_per_round:
                used[link] += size
                kept.append(message)
            else:
                self.losses["over_budget"] += 1
                self.bytes_dropped += size
        return self.inner.exchange(round, kept)

    def state_dict(self) -> dict[str, Any]:
        return {"losses": dict(self.losses), "bytes_dropped": self.bytes_dropped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.losses = Counter(state["losses"])
        self.bytes_dropped = int(state["bytes_dropped"])
