"""The encryption layer: round trips, real ciphertext bytes, and every single-bit flip, replay and
misaddressed message rejected and counted, never delivered."""

import dataclasses

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from confide.channels import Inbox, Message, Meter, Tap
from confide.channels.encryption import (
    AEAD_OVERHEAD_BYTES,
    CIPHERTEXT,
    ENVELOPE_OVERHEAD_BYTES,
    NONCE_BYTES,
    EncryptionLayer,
    associated_data,
    link_key,
)
from confide.channels.stack import ChannelSettings, build_channel

N = 4


class Wire:
    """A transport that delivers what it is given (no copies, no round check), after ``mutate``."""

    def __init__(self, mutate=lambda m: m) -> None:
        self.mutate = mutate

    def exchange(self, round, outgoing):
        return Inbox([self.mutate(m) for m in outgoing])


def layer(seed: int = 0) -> EncryptionLayer:
    return EncryptionLayer(Wire(), N, np.random.default_rng(seed))


def small(sender=0, receiver=1, round=3, kind="policy") -> Message:
    return Message(sender, receiver, kind, round, {"p": np.array([0.25, 0.75], np.float32)})


def rejected_total(enc: EncryptionLayer) -> int:
    return sum(enc.rejected.values())


PAYLOADS = st.dictionaries(
    st.text(alphabet="abcxyz", min_size=1, max_size=6),
    st.sampled_from([np.float32, np.float64, np.int32, np.uint8, np.bool_]).flatmap(
        lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=2, max_side=5))
    ),
    max_size=3,
)


@settings(max_examples=60, deadline=None)
@given(PAYLOADS, st.integers(0, N - 1), st.integers(0, N - 1), st.integers(0, 2**40), st.text(max_size=12))
def test_round_trip_is_exact_and_costs_exactly_the_envelope_overhead(payload, s, r, round, kind):
    enc = layer()
    msg = Message(s, r, kind, round, payload)
    sealed = enc.encrypt(msg)
    assert set(sealed.payload) == {CIPHERTEXT} and sealed.payload[CIPHERTEXT].dtype == np.uint8
    assert (sealed.sender, sealed.receiver, sealed.kind, sealed.round) == (s, r, kind, round)
    assert sealed.payload_bytes() == msg.payload_bytes() + ENVELOPE_OVERHEAD_BYTES
    assert (
        sealed.payload[CIPHERTEXT].size
        == msg.payload_bytes() + AEAD_OVERHEAD_BYTES
        == msg.payload_bytes() + 28
    )
    opened = enc.decrypt(sealed.roundtrip())
    assert opened is not None and opened.encoded_payload() == msg.encoded_payload()
    assert rejected_total(enc) == 0


def test_every_single_bit_flip_of_the_ciphertext_is_rejected():
    enc = layer()
    sealed = enc.encrypt(small())
    ct = sealed.payload[CIPHERTEXT]
    for bit in range(ct.size * 8):
        flipped = ct.copy()
        flipped[bit // 8] ^= np.uint8(1 << (bit % 8))
        before = rejected_total(enc)
        assert enc.decrypt(sealed.with_payload({CIPHERTEXT: flipped})) is None
        assert rejected_total(enc) == before + 1
    # the receiver-id bytes of the nonce show as misaddressed, every other bit fails authentication
    assert enc.rejected["misaddressed"] == 4 * 8
    assert enc.rejected["tampered"] == (ct.size - 4) * 8
    assert enc.decrypt(sealed) is not None  # rejected copies did not consume the sequence number


def _header_flips(m: Message):
    for b in range(32):
        yield dataclasses.replace(m, sender=m.sender ^ (1 << b))
        yield dataclasses.replace(m, receiver=m.receiver ^ (1 << b))
    for b in range(64):
        yield dataclasses.replace(m, round=m.round ^ (1 << b))
    raw = m.kind.encode()
    for i in range(len(raw)):
        for b in range(7):  # flips that keep the kind valid UTF-8 (ASCII)
            kind = bytearray(raw)
            kind[i] ^= 1 << b
            yield dataclasses.replace(m, kind=kind.decode())


def test_every_single_bit_flip_of_the_header_is_rejected():
    enc = layer()
    sealed = enc.encrypt(small())
    flips = list(_header_flips(sealed))
    for m in flips:
        before = rejected_total(enc)
        assert enc.decrypt(m) is None
        assert rejected_total(enc) == before + 1
    assert rejected_total(enc) == len(flips) == 32 * 2 + 64 + 6 * 7
    assert enc.rejected["replay"] == 0
    assert enc.decrypt(sealed) is not None


def test_tampering_in_the_network_is_rejected_counted_and_not_delivered():
    def flip(m):
        ct = m.payload[CIPHERTEXT].copy()
        ct[-1] ^= 1
        return m.with_payload({CIPHERTEXT: ct})

    stack = build_channel(ChannelSettings(encrypt=True), N, np.random.default_rng(0), inner=Wire(flip))
    assert len(stack.exchange(0, [small(0, 1, 0), small(2, 3, 0)])) == 0
    assert stack.rejections()["encryption"]["tampered"] == 2
    assert stack.counts()["rejected"] == 2


def test_a_replay_is_rejected_even_after_later_messages():
    enc = layer()
    first, second = enc.encrypt(small()), enc.encrypt(small())
    assert enc.decrypt(first) is not None
    assert enc.decrypt(first) is None
    assert enc.decrypt(second) is not None
    assert enc.decrypt(first) is None
    assert enc.rejected["replay"] == 2 and rejected_total(enc) == 2


def test_a_replay_through_the_network_is_rejected():
    captured: list[Message] = []

    class Replaying(Wire):
        def exchange(self, round, outgoing):
            captured.extend(outgoing)
            return Inbox(list(outgoing) + captured[:1])  # the first message ever, again

    stack = build_channel(ChannelSettings(encrypt=True), N, np.random.default_rng(0), inner=Replaying())
    assert len(stack.exchange(0, [small(0, 1, 0)])) == 1
    assert len(stack.exchange(1, [small(0, 1, 1)])) == 1
    assert stack.rejections()["encryption"]["replay"] == 2


def test_a_misaddressed_message_is_rejected():
    enc = layer()
    sealed = enc.encrypt(small(0, 1))
    assert enc.decrypt(dataclasses.replace(sealed, receiver=2)) is None
    assert enc.decrypt(dataclasses.replace(sealed, receiver=N + 5)) is None
    assert enc.rejected["misaddressed"] == 2
    assert enc.decrypt(sealed) is not None


def test_unknown_sender_and_malformed_envelopes_are_rejected():
    enc = layer()
    sealed = enc.encrypt(small(0, 1))
    assert enc.decrypt(dataclasses.replace(sealed, sender=N)) is None
    assert enc.decrypt(small(0, 1)) is None  # plaintext where an envelope is expected
    assert enc.decrypt(sealed.with_payload({CIPHERTEXT: sealed.payload[CIPHERTEXT][:20]})) is None
    assert enc.rejected["unknown_sender"] == 1 and enc.rejected["malformed"] == 2


def test_link_keys_come_from_x25519_and_hkdf_and_differ_per_direction():
    rng = np.random.default_rng(11)
    enc = EncryptionLayer(Wire(), 3, np.random.default_rng(11))
    private = [X25519PrivateKey.from_private_bytes(rng.bytes(32)) for _ in range(3)]  # same draws
    public = [k.public_key().public_bytes_raw() for k in private]
    assert public == enc.public_keys
    k01 = link_key(private[0], public[1], 0, 1)
    assert k01 == link_key(private[1], public[0], 0, 1)  # both ends agree
    assert k01 != link_key(private[0], public[1], 1, 0) != link_key(private[0], public[2], 0, 2)
    sealed = enc.encrypt(small(0, 1, 9, "value"))
    data = sealed.payload[CIPHERTEXT].tobytes()
    plain = AESGCM(k01).decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], associated_data(0, 1, 9, "value", 0))
    assert plain == small(0, 1, 9, "value").encoded_payload()


def test_the_meter_and_the_eavesdropper_see_ciphertext_and_the_receiver_plaintext():
    taps: list[Tap] = []

    def wire(channel):
        taps.append(Tap(Meter(channel), keep_payloads=True))
        return taps[-1]

    stack = build_channel(ChannelSettings(encrypt=True), N, np.random.default_rng(0), wire=wire)
    probs = np.random.default_rng(1).dirichlet(np.ones(2), size=480).astype(np.float32)
    msgs = [Message(s, r, "policy", 0, {"probs": probs}) for s in range(N) for r in range(N) if s != r]
    inbox = stack.exchange(0, msgs)
    tap = taps[0]
    plain = msgs[0].encoded_payload()
    assert tap.inner.total_bytes == sum(m.payload_bytes() + ENVELOPE_OVERHEAD_BYTES for m in msgs)
    assert [(e.sender, e.receiver, e.round, e.size) for e in tap.entries] == [
        (m.sender, m.receiver, m.round, len(plain) + ENVELOPE_OVERHEAD_BYTES) for m in msgs
    ]
    for seen in tap.payloads:
        assert set(seen.payload) == {CIPHERTEXT}
        assert probs.tobytes()[:64] not in seen.payload[CIPHERTEXT].tobytes()
    assert all(m.encoded_payload() == plain for m in inbox.messages())
    assert len({e.digest for e in tap.entries}) == len(msgs)  # same plaintext, distinct ciphertexts
