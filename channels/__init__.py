"""Message channels: the only path between agents, and composable layers around it."""

from confide.channels.bandwidth import BandwidthLayer
from confide.channels.channel import Channel, IdealChannel, Inbox
from confide.channels.codec import MalformedPayload, array_wire_bytes, decode_payload, encode_payload
from confide.channels.delay import DelayLayer
from confide.channels.dp_noise import DPNoiseLayer, project_onto_simplex
from confide.channels.drops import BernoulliLoss, DropLayer, GilbertElliottLoss
from confide.channels.encryption import EncryptionLayer
from confide.channels.message import Message
from confide.channels.meter import Meter
from confide.channels.quantise import QuantiseLayer
from confide.channels.stack import LAYER_ORDER, ChannelSettings, ChannelStack, build_channel
from confide.channels.tap import Tap, TranscriptEntry

__all__ = [
    "LAYER_ORDER",
    "BandwidthLayer",
    "BernoulliLoss",
    "ChannelSettings",
    "ChannelStack",
    "DPNoiseLayer",
    "DelayLayer",
    "DropLayer",
    "EncryptionLayer",
    "GilbertElliottLoss",
    "QuantiseLayer",
    "build_channel",
    "project_onto_simplex",
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
