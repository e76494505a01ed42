"""The unit of communication: one message from one agent to another in one exchange round.

Every piece of information an algorithm shares (distributions, values, parameters, statistics)
travels as a ``Message`` through a ``Channel``; nothing else crosses between agents. The payload is
a mapping of named numpy arrays so it can be serialised exactly, metered and tapped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from confide.channels.codec import decode_payload, encode_payload


@dataclass(frozen=True)
class Message:
    """One message.

    Attributes:
        sender: agent index that sends it.
        receiver: agent index it is addressed to.
        kind: the message kind declared by the sending algorithm (e.g. ``"policy"``).
        round: the global exchange round in which it was sent (``update * K + iteration``).
        payload: named arrays; the receiver sees copies, never the sender's objects.
    """

    sender: int
    receiver: int
    kind: str
    round: int
    payload: dict[str, np.ndarray] = field(default_factory=dict)

    def encoded_payload(self) -> bytes:
        """The payload as it goes on the wire (see ``confide.channels.codec``)."""
        return encode_payload(self.payload)

    def payload_bytes(self) -> int:
        """Exact size of the serialised payload in bytes."""
        return len(self.encoded_payload())

    def with_payload(self, payload: dict[str, np.ndarray]) -> Message:
        """A copy of this message carrying another payload (used by layers that transform payloads)."""
        return Message(self.sender, self.receiver, self.kind, self.round, payload)

    def roundtrip(self) -> Message:
        """The message as a receiver sees it after serialisation: fresh arrays, nothing shared."""
        return self.with_payload(decode_payload(self.encoded_payload()))
