"""Authenticated encryption per directed link: X25519 + HKDF keys, AES-256-GCM, replay protection.

Keys. Every node (agent, or a central unit) has an X25519 key pair drawn from the layer's generator
(so a run's ciphertexts are reproducible from its seed; see the threat notes in ``docs/channels.md``).
The sender i and receiver j of a directed link each compute X25519(own private, peer public) and
derive the link key with HKDF-SHA256 (info ``confide/link/v1`` ‖ i ‖ j), so i→j and j→i use different
keys, and each side derives its copy on its own.

Envelope. The encrypted message keeps its routing header in the clear (sender, receiver, kind, round:
what a network needs to deliver and what a meter needs to count) and carries one array::

    payload = {"ct": uint8[12 + P + 16]} = nonce ‖ AES-GCM(encode_payload(original)) ‖ tag

with nonce = receiver (u32, big-endian) ‖ seq (u64), seq a per-link counter from 0. The associated
data binds sender, receiver, round, seq and kind, so a flip of any header or ciphertext bit fails
authentication. An envelope costs exactly ``ENVELOPE_OVERHEAD_BYTES`` = 39 bytes more than the
plaintext payload: 28 for AES-GCM (12 nonce + 16 tag) and 11 for the ``ct`` array's framing.

Receiving, in this order (the first failure is the reason counted; nothing rejected is delivered):
``malformed`` (not a well-formed envelope), ``unknown_sender``, ``misaddressed`` (the receiver in
the nonce is not the one the message was delivered to), ``tampered`` (authentication fails),
``replay`` (authentic but seq not above the last accepted on the link; links are FIFO, so honest
messages arrive in increasing seq, gaps from losses allowed). Authentication comes before the replay
check, so a flipped seq is ``tampered``, never a false ``replay``.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from confide.channels.channel import Channel, Inbox
from confide.channels.codec import MalformedPayload, decode_payload
from confide.channels.message import Message

CIPHERTEXT = "ct"
NONCE_BYTES = 12
TAG_BYTES = 16
AEAD_OVERHEAD_BYTES = NONCE_BYTES + TAG_BYTES
ENVELOPE_OVERHEAD_BYTES = AEAD_OVERHEAD_BYTES + 11  # + u16 count, u8 len, "ct", dtype, ndim, u32 dim
REJECTION_REASONS: tuple[str, ...] = ("malformed", "unknown_sender", "misaddressed", "tampered", "replay")
HKDF_INFO = b"confide/link/v1"


def link_key(own: X25519PrivateKey, peer_public: bytes, sender: int, receiver: int) -> bytes:
    """The 32-byte AES key of the directed link sender → receiver, as either end derives it."""
    shared = own.exchange(X25519PublicKey.from_public_bytes(peer_public))
    info = HKDF_INFO + struct.pack("<II", sender, receiver)
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=info).derive(shared)


def associated_data(sender: int, receiver: int, round: int, kind: str, seq: int) -> bytes:
    """What GCM authenticates besides the ciphertext: the whole routing header and the sequence number."""
    return struct.pack("<qqqQ", sender, receiver, round, seq) + kind.encode()


def nonce(receiver: int, seq: int) -> bytes:
    """12 bytes, unique per link key: the intended receiver and the link's sequence number."""
    return struct.pack(">IQ", receiver, seq)


class EncryptionLayer:
    """Encrypts every outgoing message for its receiver; decrypts and verifies what is delivered."""

    def __init__(self, inner: Channel, n_nodes: int, rng: np.random.Generator) -> None:
        if not 0 < n_nodes < 2**32:
            raise ValueError(f"n_nodes must be in 1..2**32-1, got {n_nodes}")
        self.inner = inner
        self.n_nodes = n_nodes
        self._private_bytes = [rng.bytes(32) for _ in range(n_nodes)]
        self._setup()
        self._next_seq: dict[tuple[int, int], int] = {}
        self._last_seq: dict[tuple[int, int], int] = {}
        self.rejected: Counter[str] = Counter(dict.fromkeys(REJECTION_REASONS, 0))

    def _setup(self) -> None:
        self._private = [X25519PrivateKey.from_private_bytes(b) for b in self._private_bytes]
        self.public_keys = [k.public_key().public_bytes_raw() for k in self._private]
        self._sending: dict[tuple[int, int], AESGCM] = {}
        self._receiving: dict[tuple[int, int], AESGCM] = {}

    def _aead(self, sender: int, receiver: int, side: str) -> AESGCM:
        """The link's cipher as the sending or the receiving end derived it (cached)."""
        cache = self._sending if side == "send" else self._receiving
        link = (sender, receiver)
        if link not in cache:
            own, peer = (sender, receiver) if side == "send" else (receiver, sender)
            cache[link] = AESGCM(link_key(self._private[own], self.public_keys[peer], sender, receiver))
        return cache[link]

    def exchange(self, round: int, outgoing: Sequence[Message]) -> Inbox:
        delivered = self.inner.exchange(round, [self.encrypt(m) for m in outgoing])
        opened = (self.decrypt(m) for m in delivered.messages())
        return Inbox([m for m in opened if m is not None])

    def encrypt(self, message: Message) -> Message:
        """The envelope of ``message`` (same routing header, payload ``{"ct": uint8[...]}``)."""
        sender, receiver = int(message.sender), int(message.receiver)
        if not (0 <= sender < self.n_nodes and 0 <= receiver < self.n_nodes):
            raise ValueError(f"no keys for link {sender}->{receiver} among {self.n_nodes} nodes")
        link = (sender, receiver)
        seq = self._next_seq.get(link, 0)
        self._next_seq[link] = seq + 1
        iv = nonce(receiver, seq)
        aad = associated_data(sender, receiver, int(message.round), message.kind, seq)
        sealed = self._aead(sender, receiver, "send").encrypt(iv, message.encoded_payload(), aad)
        return message.with_payload({CIPHERTEXT: np.frombuffer(iv + sealed, dtype=np.uint8)})

    def decrypt(self, message: Message) -> Message | None:
        """The plaintext message, or None after counting the reason it was rejected."""
        reason, opened = self._open(message)
        if reason is not None:
            self.rejected[reason] += 1
        return opened

    def _open(self, message: Message) -> tuple[str | None, Message | None]:
        ct = message.payload.get(CIPHERTEXT)
        if set(message.payload) != {CIPHERTEXT} or ct.dtype != np.uint8 or ct.ndim != 1:
            return "malformed", None
        if ct.size < AEAD_OVERHEAD_BYTES:
            return "malformed", None
        sender, receiver = int(message.sender), int(message.receiver)
        if not 0 <= sender < self.n_nodes:
            return "unknown_sender", None
        data = ct.tobytes()
        to, seq = struct.unpack(">IQ", data[:NONCE_BYTES])
        if to != receiver or not 0 <= receiver < self.n_nodes:
            return "misaddressed", None
        try:
            aad = associated_data(sender, receiver, int(message.round), message.kind, seq)
        except (struct.error, UnicodeEncodeError):
            return "malformed", None
        try:
            plain = self._aead(sender, receiver, "receive").decrypt(
                data[:NONCE_BYTES], data[NONCE_BYTES:], aad
            )
        except InvalidTag:
            return "tampered", None
        link = (sender, receiver)
        if seq <= self._last_seq.get(link, -1):
            return "replay", None
        self._last_seq[link] = seq
        try:
            payload = decode_payload(plain)
        except MalformedPayload:
            return "malformed", None
        return None, message.with_payload(payload)

    def state_dict(self) -> dict[str, Any]:
        """Private keys (raw bytes: a checkpoint is as secret as the seed), per-link counters."""
        return {
            "private_keys": list(self._private_bytes),
            "next_seq": dict(self._next_seq),
            "last_seq": dict(self._last_seq),
            "rejected": dict(self.rejected),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._private_bytes = list(state["private_keys"])
        self.n_nodes = len(self._private_bytes)
        self._setup()
        self._next_seq = dict(state["next_seq"])
        self._last_seq = dict(state["last_seq"])
        self.rejected = Counter(state["rejected"])
