"""Build a bad, encrypted or privatised network from one settings object, in one fixed layer order.

A researcher changes ``ChannelSettings``, never an algorithm. Each layer wraps the next and is a
``Channel`` itself; ``exchange`` goes down the list on the way out and back up with the inbox:

    sender → DP noise → quantise → encrypt → [wire hook: meter, eavesdropper tap] → bandwidth → drops
           → delay → transport
    receiver ← (nothing) ← dequantise ← decrypt + verify ← … ← held until due ← transport

Why this order:
- DP noise first: everything after it is post-processing, so compressing, encrypting or losing a
  noised array costs no privacy; the accountant counts releases even if they are later lost.
- quantise before encrypt: ciphertext does not compress, and the smaller plaintext is what is sealed.
- encrypt before the wire: the meter, the tap and the bandwidth budget see ciphertext, i.e. the real
  bytes with the AEAD overhead, and an eavesdropper on a link sees no plaintext.
- bandwidth before drops: a transmitted message spends its link's budget whether or not it is lost.
- drops before delay: a lost message is never in flight.
- delay just above the transport: it holds what the transport delivered, so the transport only ever
  sees current-round messages; decryption happens on the way up, after the delay, so sequence
  numbers are checked in arrival order.

Inactive layers (ideal settings) are left out; with all defaults the stack is the transport itself,
bit-exact. Every random choice comes from ``rng``: it is split into one child per layer slot, in a
fixed order, whether or not the layer is active, so turning on drops does not change the delays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

import numpy as np

from confide.channels.bandwidth import BandwidthLayer
from confide.channels.channel import Channel, IdealChannel, Inbox
from confide.channels.delay import DelayLayer
from confide.channels.dp_noise import DEFAULT_NOISED_ARRAYS, DEFAULT_UNIFORM_MIX, DPNoiseLayer, Neighbouring
from confide.channels.drops import BernoulliLoss, DropLayer, GilbertElliottLoss, LossModel
from confide.channels.encryption import REJECTION_REASONS, EncryptionLayer
from confide.channels.message import Message
from confide.channels.plain_state import from_plain, to_plain
from confide.channels.quantise import QuantiseLayer

DPMechanism = Literal["none", "gaussian", "laplace"]
Compression = Literal["none", "float16", "int8"]
Loss = Literal["none", "bernoulli", "gilbert_elliott"]
LAYER_ORDER: tuple[str, ...] = ("dp_noise", "quantise", "encryption", "bandwidth", "drops", "delay")


@dataclass(frozen=True)
class ChannelSettings:
    """Every channel-layer parameter; the defaults are the ideal channel."""

    dp_mechanism: DPMechanism = "none"
    """DP noise on shared arrays: none, Gaussian (L2 clip, RDP accounting) or Laplace (L1 clip, pure ε)."""
    dp_clip_norm: float = 1.0
    """C: each noised array is clipped to norm C (L2 for Gaussian, L1 for Laplace)."""
    dp_noise_multiplier: float = 1.0
    """σ: Gaussian std, or Laplace scale b, in units of the sensitivity Δ."""
    dp_neighbouring: Neighbouring = "replace"
    """Neighbouring relation: ``replace`` (Δ = 2C) or ``zero_out`` (Δ = C)."""
    dp_arrays: tuple[str, ...] = DEFAULT_NOISED_ARRAYS
    """Payload arrays that are noised (in every message kind); all others are treated as public."""
    dp_delta: float = 1e-5
    """δ at which the Gaussian accountant reports ε."""
    dp_uniform_mix: float = DEFAULT_UNIFORM_MIX
    """Weight of the uniform distribution mixed into each noised, projected distribution row (post-processing)."""
    quantisation: Compression = "none"
    """Compression of float arrays on the wire: float16, or 8 bits with a per-array scale and offset."""
    encrypt: bool = False
    """AES-256-GCM per directed link, keys from X25519 + HKDF; rejects replays, tampering, misaddressing."""
    bandwidth_bytes: int | None = None
    """Payload bytes per directed link per round (None: unlimited); overflowing messages are dropped."""
    loss: Loss = "none"
    """Message loss model per directed link."""
    loss_probability: float = 0.0
    """Bernoulli loss probability."""
    burst_p: float = 0.0
    """Gilbert–Elliott P(good → bad) per message (netem p)."""
    burst_r: float = 1.0
    """Gilbert–Elliott P(bad → good) per message (netem r)."""
    burst_loss_in_bad: float = 1.0
    """Gilbert–Elliott loss probability in the bad state (netem 1 − h)."""
    burst_loss_in_good: float = 0.0
    """Gilbert–Elliott loss probability in the good state (netem 1 − k)."""
    delay_rounds: int = 0
    """Minimum latency in exchange rounds."""
    delay_jitter_rounds: int = 0
    """Latency is uniform on delay_rounds … delay_rounds + delay_jitter_rounds (FIFO per link)."""

    def __post_init__(self) -> None:
        for name, options in (
            ("dp_mechanism", DPMechanism),
            ("dp_neighbouring", Neighbouring),
            ("quantisation", Compression),
            ("loss", Loss),
        ):
            if getattr(self, name) not in get_args(options):
                raise ValueError(f"{name} must be one of {get_args(options)}, got {getattr(self, name)!r}")
        for name in ("loss_probability", "burst_p", "burst_r", "burst_loss_in_bad", "burst_loss_in_good"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        if self.loss == "gilbert_elliott" and self.burst_p + self.burst_r == 0:
            raise ValueError("Gilbert–Elliott needs burst_p + burst_r > 0 (otherwise no stationary state)")
        if self.delay_rounds < 0 or self.delay_jitter_rounds < 0:
            raise ValueError(f"delays must be >= 0, got {self.delay_rounds}, {self.delay_jitter_rounds}")
        if self.bandwidth_bytes is not None and self.bandwidth_bytes <= 0:
            raise ValueError(f"bandwidth_bytes must be > 0 or None, got {self.bandwidth_bytes}")
        if self.dp_clip_norm <= 0 or self.dp_noise_multiplier <= 0:
            raise ValueError(
                f"dp_clip_norm and dp_noise_multiplier must be > 0, got {self.dp_clip_norm}, {self.dp_noise_multiplier}"
            )
        if not 0.0 < self.dp_delta < 1.0:
            raise ValueError(f"dp_delta must be in (0, 1), got {self.dp_delta}")
        if not 0.0 <= self.dp_uniform_mix < 1.0:
            raise ValueError(f"dp_uniform_mix must be in [0, 1), got {self.dp_uniform_mix}")
        if not all(isinstance(a, str) and a for a in self.dp_arrays):
            raise ValueError(f"dp_arrays must be non-empty names, got {self.dp_arrays!r}")

    @property
    def loss_model(self) -> LossModel | None:
        if self.loss == "bernoulli":
            return BernoulliLoss(self.loss_probability)
        if self.loss == "gilbert_elliott":
            return GilbertElliottLoss(
                self.burst_p, self.burst_r, self.burst_loss_in_bad, self.burst_loss_in_good
            )
        return None


class Layer(Protocol):
    """What every layer offers besides ``exchange``: checkpointable state."""

    def exchange(self, round: int, outgoing: Sequence[Message]) -> Inbox: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ChannelStack:
    """The composed layers as one channel, with the counters a run reports.

    Conservation, at every round: ``sent = delivered + lost + rejected + in_flight`` (see ``counts``).
    """

    def __init__(
        self, top: Channel, layers: dict[str, Layer], settings: ChannelSettings, n_agents: int
    ) -> None:
        self.top = top
        self.layers = layers
        self.settings = settings
        self.n_agents = n_agents
        self.sent = 0
        self.delivered = 0

    def exchange(self, round: int, outgoing: Sequence[Message]) -> Inbox:
        self.sent += len(outgoing)
        inbox = self.top.exchange(round, outgoing)
        self.delivered += len(inbox)
        return inbox

    def rejections(self) -> dict[str, dict[str, int]]:
        """Receiver-side rejections per layer per reason (all keys present, zeros when inactive)."""
        quantise, encryption = self.layers.get("quantise"), self.layers.get("encryption")
        return {
            "quantise": {"malformed": quantise.rejected["malformed"] if quantise else 0},
            "encryption": {r: encryption.rejected[r] if encryption else 0 for r in REJECTION_REASONS},
        }

    def losses(self) -> dict[str, dict[str, int]]:
        """In-network losses per layer per reason (all keys present)."""
        bandwidth, drops = self.layers.get("bandwidth"), self.layers.get("drops")
        return {
            "bandwidth": {"over_budget": bandwidth.losses["over_budget"] if bandwidth else 0},
            "drops": {"lost": drops.losses["lost"] if drops else 0},
        }

    @property
    def in_flight(self) -> int:
        delay = self.layers.get("delay")
        return delay.in_flight if delay else 0

    def counts(self) -> dict[str, int]:
        """``sent``, ``delivered``, ``lost``, ``rejected``, ``in_flight`` message counts so far."""
        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "lost": sum(sum(r.values()) for r in self.losses().values()),
            "rejected": sum(sum(r.values()) for r in self.rejections().values()),
            "in_flight": self.in_flight,
        }

    def privacy(self) -> dict[int, tuple[float, float]]:
        """``{agent: (ε, δ)}`` spent so far; (0, 0) for every agent when no DP noise is configured."""
        dp = self.layers.get("dp_noise")
        if dp is None:
            return {agent: (0.0, 0.0) for agent in range(self.n_agents)}
        return dp.accountant.report(self.n_agents, self.settings.dp_delta)

    def state_dict(self) -> dict[str, Any]:
        """Every active layer's state plus the stack's counters (the wire hook and transport not included)."""
        return to_plain(
            {
                "sent": self.sent,
                "delivered": self.delivered,
                "layers": {name: layer.state_dict() for name, layer in self.layers.items()},
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = from_plain(state)
        if set(state["layers"]) != set(self.layers):
            raise ValueError(
                f"checkpoint has layers {sorted(state['layers'])}, stack has {sorted(self.layers)}"
            )
        self.sent = int(state["sent"])
        self.delivered = int(state["delivered"])
        for name, layer in self.layers.items():
            layer.load_state_dict(state["layers"][name])


def build_channel(
    settings: ChannelSettings,
    n_agents: int,
    rng: np.random.Generator,
    inner: Channel | None = None,
    wire: Callable[[Channel], Channel] | None = None,
) -> ChannelStack:
    """Compose the layers in ``LAYER_ORDER`` around ``inner`` (default ``IdealChannel``).

    Args:
        n_agents: number of nodes that exchange messages (agents plus any central unit); ids 0..n-1.
        rng: derived from the run seed by the caller; split here into one stream per layer slot.
        wire: wraps the channel just below encryption, e.g. ``lambda c: Tap(Meter(c))``: the meter
            then counts ciphertext bytes and the tap records what an eavesdropper on the link sees.
    """
    dp_rng, key_rng, drop_rng, delay_rng = rng.spawn(4)
    channel: Channel = inner if inner is not None else IdealChannel()
    layers: dict[str, Layer] = {}
    if settings.delay_rounds or settings.delay_jitter_rounds:
        hi = settings.delay_rounds + settings.delay_jitter_rounds
        channel = layers["delay"] = DelayLayer(channel, settings.delay_rounds, hi, delay_rng)
    if settings.loss_model is not None:
        channel = layers["drops"] = DropLayer(channel, settings.loss_model, drop_rng)
    if settings.bandwidth_bytes is not None:
        channel = layers["bandwidth"] = BandwidthLayer(channel, settings.bandwidth_bytes)
    if wire is not None:
        channel = wire(channel)
    if settings.encrypt:
        channel = layers["encryption"] = EncryptionLayer(channel, n_agents, key_rng)
    if settings.quantisation != "none":
        channel = layers["quantise"] = QuantiseLayer(channel, settings.quantisation)
    if settings.dp_mechanism != "none":
        channel = layers["dp_noise"] = DPNoiseLayer(
            channel,
            mechanism=settings.dp_mechanism,
            clip_norm=settings.dp_clip_norm,
            noise_multiplier=settings.dp_noise_multiplier,
            rng=dp_rng,
            neighbouring=settings.dp_neighbouring,
            arrays=settings.dp_arrays,
            uniform_mix=settings.dp_uniform_mix,
        )
    ordered = {name: layers[name] for name in LAYER_ORDER if name in layers}
    return ChannelStack(channel, ordered, settings, n_agents)
