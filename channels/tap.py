"""Taps: a transcript of who sent what to whom, for determinism checks and the privacy work."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from typing import Any

from confide.channels.channel import Channel, Inbox
from confide.channels.codec import decode_payload
from confide.channels.message import Message


@dataclass(frozen=True)
class TranscriptEntry:
    """What an observer of the sending side records about one message."""

    round: int
    sender: int
    receiver: int
    kind: str
    size: int
    digest: str  # sha256 of the serialised payload


class Tap:
    """Records every message handed to the wrapped channel; optionally keeps full payloads.

    ``keep_payloads`` stores the messages themselves (memory grows with the run), which the privacy
    attacks need; the digest-only transcript is enough to prove two runs sent identical bytes.
    """

    def __init__(self, inner: Channel, keep_payloads: bool = False) -> None:
        self.inner = inner
        self.keep_payloads = keep_payloads
        self.entries: list[TranscriptEntry] = []
        self.payloads: list[Message] = []

    def exchange(self, round: int, outgoing: Sequence[Message]) -> Inbox:
        for message in outgoing:
            data = message.encoded_payload()
            self.entries.append(
                TranscriptEntry(
                    message.round,
                    message.sender,
                    message.receiver,
                    message.kind,
                    len(data),
                    hashlib.sha256(data).hexdigest(),
                )
            )
            if self.keep_payloads:
                self.payloads.append(message)
        return self.inner.exchange(round, outgoing)

    def transcript_digest(self) -> str:
        """One hash of the whole transcript, in order."""
        h = hashlib.sha256()
        for e in self.entries:
            h.update(f"{e.round},{e.sender},{e.receiver},{e.kind},{e.size},{e.digest};".encode())
        return h.hexdigest()

    def state_dict(self) -> dict[str, Any]:
        """The transcript so far (entries as tuples, kept payloads in wire form), so a resumed run's
        digest covers the messages sent before the interruption."""
        return {
            "entries": [astuple(e) for e in self.entries],
            "payloads": [(m.sender, m.receiver, m.kind, m.round, m.encoded_payload()) for m in self.payloads],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.entries = [TranscriptEntry(*e) for e in state["entries"]]
        self.payloads = [Message(s, r, k, n, decode_payload(data)) for s, r, k, n, data in state["payloads"]]
