"""Message channels: the only path between agents, and composable layers around it."""

from confide.channels.channel import Channel, IdealChannel, Inbox
from confide.channels.codec import MalformedPayload, array_wire_bytes, decode_payload, encode_payload
from confide.channels.message import Message
from confide.channels.meter import Meter
from confide.channels.tap import Tap, TranscriptEntry

__all__ = [
    "Channel",
    "IdealChannel",
    "Inbox",
    "MalformedPayload",
    "Message",
    "Meter",
    "Tap",
    "TranscriptEntry",
    "array_wire_bytes",
    "decode_payload",
    "encode_payload",
]
