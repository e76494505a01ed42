"""Channel state as plain values, so checkpoints load with ``torch.load(weights_only=True)`` (no
pickled classes): messages and numpy arrays become tagged lists holding their exact wire bytes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from confide.channels.codec import decode_payload, encode_payload
from confide.channels.message import Message

MESSAGE_TAG = "__message__"
ARRAY_TAG = "__ndarray__"


def _wire(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.zeros(0, dtype=torch.uint8)


def to_plain(value: Any) -> Any:
    """Replace every ``Message`` and ``np.ndarray`` inside dicts/lists/tuples by a tagged plain form."""
    if isinstance(value, Message):
        wire = _wire(value.encoded_payload())
        return [MESSAGE_TAG, value.sender, value.receiver, value.kind, value.round, wire]
    if isinstance(value, np.ndarray):
        return [ARRAY_TAG, _wire(encode_payload({"a": np.ascontiguousarray(value)}))]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_plain(v) for v in value)
    return value


def from_plain(value: Any) -> Any:
    """The inverse of ``to_plain``."""
    if isinstance(value, list) and value and value[0] == MESSAGE_TAG:
        _, sender, receiver, kind, round, wire = value
        return Message(
            int(sender), int(receiver), str(kind), int(round), decode_payload(wire.numpy().tobytes())
        )
    if isinstance(value, list) and len(value) == 2 and value[0] == ARRAY_TAG:
        return decode_payload(value[1].numpy().tobytes())["a"]
    if isinstance(value, dict):
        return {k: from_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(from_plain(v) for v in value)
    return value
