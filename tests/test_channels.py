"""The codec, the ideal channel, the meter and the tap."""

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from confide.channels import (
    IdealChannel,
    MalformedPayload,
    Message,
    Meter,
    Tap,
    array_wire_bytes,
    decode_payload,
    encode_payload,
)

DTYPES = st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.uint8, np.float16, np.bool_])


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text(alphabet="abcxyz_", min_size=1, max_size=8),
        DTYPES.flatmap(lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, max_side=5))),
        max_size=4,
    )
)
def test_codec_roundtrip_is_exact_and_size_is_predicted(payload):
    data = encode_payload(payload)
    back = decode_payload(data)
    assert list(back) == list(payload)
    for k, v in payload.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        np.testing.assert_array_equal(back[k], v)
    assert len(data) == 2 + sum(array_wire_bytes(k, v.shape, v.dtype.itemsize) for k, v in payload.items())


def test_hand_count_of_one_distribution_message():
    probs = np.full((60, 2), 0.5, dtype=np.float32)
    # 2 (count) + 1 (name length) + 5 ("probs") + 1 (dtype) + 1 (ndim) + 2*4 (dims) + 60*2*4 (data)
    assert Message(0, 1, "policy", 0, {"probs": probs}).payload_bytes() == 2 + 1 + 5 + 1 + 1 + 8 + 480


@pytest.mark.parametrize("cut", [0, 1, 5, 17, 30])
def test_truncated_payload_is_rejected(cut):
    data = encode_payload({"probs": np.ones((3, 2), np.float32)})
    with pytest.raises(MalformedPayload):
        decode_payload(data[: len(data) - 1 - cut] if cut < len(data) - 1 else data[:1])


def test_trailing_bytes_and_unknown_dtype_are_rejected():
    data = encode_payload({"p": np.ones(2, np.float32)})
    with pytest.raises(MalformedPayload):
        decode_payload(data + b"\x00")
    bad = bytearray(data)
    bad[2 + 1 + 1] = 250  # the dtype code
    with pytest.raises(MalformedPayload):
        decode_payload(bytes(bad))


def test_ideal_channel_delivers_copies_grouped_by_receiver():
    payload = {"probs": np.array([[0.25, 0.75]], dtype=np.float32)}
    msgs = [
        Message(0, 1, "policy", 4, payload),
        Message(2, 1, "policy", 4, payload),
        Message(1, 0, "x", 4, payload),
    ]
    inbox = IdealChannel().exchange(4, msgs)
    assert len(inbox) == 3
    assert [m.sender for m in inbox.for_agent(1)] == [0, 2]
    got = inbox.for_agent(1)[0].payload["probs"]
    np.testing.assert_array_equal(got, payload["probs"])
    got[0, 0] = 9.0  # the receiver's copy is its own
    assert payload["probs"][0, 0] == 0.25


def test_channel_refuses_messages_from_another_round():
    with pytest.raises(ValueError):
        IdealChannel().exchange(1, [Message(0, 1, "k", 0, {})])


def test_meter_counts_kinds_and_links_and_tap_records_digests():
    a = {"probs": np.zeros((4, 2), np.float32)}
    b = {"v": np.zeros(3, np.float64)}
    meter = Meter(IdealChannel())
    tap = Tap(meter, keep_payloads=True)
    tap.exchange(
        0, [Message(0, 1, "policy", 0, a), Message(1, 0, "value", 0, b), Message(0, 2, "policy", 0, a)]
    )
    size_a, size_b = len(encode_payload(a)), len(encode_payload(b))
    assert meter.bytes_by_kind == {"policy": 2 * size_a, "value": size_b}
    assert meter.bytes_by_link[(0, 1)] == size_a and meter.bytes_by_link[(1, 0)] == size_b
    assert meter.total_bytes == 2 * size_a + size_b
    assert meter.bytes_sent_summary(("policy", "other")) == {
        "total": 2 * size_a + size_b,
        "policy": 2 * size_a,
        "other": 0,
        "value": size_b,
    }
    assert [(e.sender, e.receiver, e.kind) for e in tap.entries] == [
        (0, 1, "policy"),
        (1, 0, "value"),
        (0, 2, "policy"),
    ]
    assert tap.entries[0].digest == hashlib.sha256(encode_payload(a)).hexdigest()
    assert len(tap.payloads) == 3


def test_tap_without_payloads_keeps_only_its_digest_chain():
    """Memory stays flat in long runs: a digest-only tap keeps no entries, yet its digest equals the one
    of a tap that kept everything, and an old checkpoint (entries only) resumes onto the same chain."""
    msgs = [
        Message(s, r, "policy", 0, {"p": np.full(3, s + r, np.float32)}) for s in range(3) for r in range(3)
    ]
    lean, full = Tap(IdealChannel()), Tap(IdealChannel(), keep_payloads=True)
    lean.exchange(0, msgs)
    full.exchange(0, msgs)
    assert lean.entries == [] and lean.payloads == [] and lean.count == 9
    assert lean.transcript_digest() == full.transcript_digest() != Tap(IdealChannel()).transcript_digest()
    old_format = {"entries": full.state_dict()["entries"], "payloads": []}
    resumed = Tap(IdealChannel())
    resumed.load_state_dict(old_format)
    assert resumed.transcript_digest() == lean.transcript_digest() and resumed.entries == []
    reordered = Tap(IdealChannel())
    reordered.exchange(0, msgs[::-1])
    assert reordered.transcript_digest() != lean.transcript_digest()
