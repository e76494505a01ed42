"""Metering: exact bytes on the wire per message kind and per directed link."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from confide.channels.channel import Channel, Inbox
from confide.channels.message import Message


class Meter:
    """Counts the serialised payload bytes of every message handed to the wrapped channel.

    Counting happens on the sending side: a message costs bandwidth whether or not it arrives.
    """

    def __init__(self, inner: Channel) -> None:
        self.inner = inner
        self.bytes_by_kind: Counter[str] = Counter()
        self.bytes_by_link: Counter[tuple[int, int]] = Counter()
        self.messages_by_kind: Counter[str] = Counter()

    def exchange(self, round: int, outgoing: Sequence[Message]) -> Inbox:
        for message in outgoing:
            size = message.payload_bytes()
            self.bytes_by_kind[message.kind] += size
            self.bytes_by_link[(message.sender, message.receiver)] += size
            self.messages_by_kind[message.kind] += 1
        return self.inner.exchange(round, outgoing)

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_by_kind.values())

    def bytes_sent_summary(self, kinds: Sequence[str]) -> dict[str, int]:
        """``{"total": …, kind: …}`` with every declared kind present (zero if never sent)."""
        out = {"total": self.total_bytes}
        for kind in kinds:
            out[kind] = int(self.bytes_by_kind.get(kind, 0))
        for kind, value in self.bytes_by_kind.items():
            out.setdefault(kind, int(value))
        return out

    def state_dict(self) -> dict[str, Any]:
        """The counters as plain lists and dicts, to resume a run's byte totals exactly."""
        return {
            "bytes_by_kind": dict(self.bytes_by_kind),
            "bytes_by_link": [[s, r, b] for (s, r), b in self.bytes_by_link.items()],
            "messages_by_kind": dict(self.messages_by_kind),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.bytes_by_kind = Counter(state["bytes_by_kind"])
        self.bytes_by_link = Counter({(int(s), int(r)): b for s, r, b in state["bytes_by_link"]})
        self.messages_by_kind = Counter(state["messages_by_kind"])
