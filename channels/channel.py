"""The channel interface and the ideal in-process channel.

A channel carries one exchange round's messages from senders to receivers' inboxes. Layers (meter,
tap, and later delay, drops, encryption, DP noise, a Flower transport) wrap a channel and are
channels themselves, middleware of one shape: ``exchange(round, outgoing) -> Inbox``. Algorithms only
ever see this interface.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

from confide.channels.message import Message


class Inbox:
    """The messages delivered in one round, grouped by receiver, then by (sender, kind)."""

    def __init__(self, messages: Sequence[Message] = ()) -> None:
        self._by_receiver: dict[int, list[Message]] = defaultdict(list)
        for message in messages:
            self._by_receiver[message.receiver].append(message)

    def for_agent(self, receiver: int) -> list[Message]:
        """Messages delivered to ``receiver`` (in sending order)."""
        return list(self._by_receiver.get(receiver, ()))

    def messages(self) -> list[Message]:
        """All delivered messages."""
        return [m for msgs in self._by_receiver.values() for m in msgs]

    def __len__(self) -> int:
        return sum(len(m) for m in self._by_receiver.values())


class Channel(Protocol):
    """Carries messages; a layer wraps another channel and is one itself."""

    def exchange(self, round: int, outgoing: Sequence[Message]) -> Inbox:
        """Send ``outgoing`` in exchange round ``round`` and return what is delivered this round."""
        ...


class IdealChannel:
    """Delivers every message at once, intact, as a serialised copy (no object is shared)."""

    def exchange(self, round: int, outgoing: Sequence[Message]) -> Inbox:
        for message in outgoing:
            if message.round != round:
                raise ValueError(f"message sent in round {message.round} during round {round}")
        return Inbox([m.roundtrip() for m in outgoing])
