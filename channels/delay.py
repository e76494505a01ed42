"""Latency: a message arrives a whole number of exchange rounds after it was sent, in order per link.

Each message draws a latency d uniformly from ``{min_rounds, …, max_rounds}`` (fixed when the two are
equal) from the layer's generator, one draw per message when random and none when fixed. A message
sent in round t is delivered in round ``max(t + d, due round of the previous message on its directed
link)``: links are FIFO like a TCP stream, so a short draw never overtakes a long one. That keeps the
latency within [min, max] (an earlier message on the link was sent no later and is due no later than
t + max). Delivered messages keep their original ``round``, so receivers can tell they are stale.

The layer hands every message to the channel below in the round it is sent, so a transport only ever
sees current-round messages (``IdealChannel`` insists on that), and holds what the transport delivers
until it is due. A message is *in flight* from its sending round until its due round.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

import numpy as np

from confide.channels.channel import Channel, Inbox
from confide.channels.message import Message


class DelayLayer:
    """Holds delivered messages back by a fixed or uniformly random number of rounds."""

    def __init__(self, inner: Channel, min_rounds: int, max_rounds: int, rng: np.random.Generator) -> None:
        if not 0 <= min_rounds <= max_rounds:
            raise ValueError(f"need 0 <= min_rounds <= max_rounds, got {min_rounds}, {max_rounds}")
        self.inner = inner
        self.min_rounds = min_rounds
        self.max_rounds = max_rounds
        self.rng = rng
        self._queue: list[tuple[int, int, Message]] = []  # heap of (due round, arrival order, message)
        self._order = 0
        self._last_due: dict[tuple[int, int], int] = {}

    def exchange(self, round: int, outgoing: Sequence[Message]) -> Inbox:
        for message in self.inner.exchange(round, outgoing).messages():
            link = (message.sender, message.receiver)
            due = max(round + self._latency(), self._last_due.get(link, round))
            self._last_due[link] = due
            heapq.heappush(self._queue, (due, self._order, message))
            self._order += 1
        ready = []
        while self._queue and self._queue[0][0] <= round:
            ready.append(heapq.heappop(self._queue)[2])
        return Inbox(ready)

    def _latency(self) -> int:
        if self.min_rounds == self.max_rounds:
            return self.min_rounds
        return int(self.rng.integers(self.min_rounds, self.max_rounds + 1))

    @property
    def in_flight(self) -> int:
        """Messages sent but not yet delivered."""
        return len(self._queue)

    def state_dict(self) -> dict[str, Any]:
        """In-flight messages (picklable ``Message`` objects), per-link due rounds, generator state."""
        return {
            "queue": list(self._queue),
            "order": self._order,
            "last_due": dict(self._last_due),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._queue = list(state["queue"])
        heapq.heapify(self._queue)
        self._order = int(state["order"])
        self._last_due = dict(state["last_due"])
        self.rng.bit_generator.state = state["rng"]
