"""Benchmark: what the channel layers cost per exchange, bytes and wall time, in one run.

One exchange is AS at N = 8 on a complete graph: 56 messages (every directed link) of kind ``policy``
carrying ``probs`` float32 [480, 2]. For each stack it prints the metered bytes per exchange (a
``Meter`` in the wire hook, so ciphertext when encrypted), the median wall time of one exchange
(encrypt + transport + decrypt, after a warm-up that derives the link keys) and both as ratios to the
ideal channel, plus the one-off key set-up (X25519 + HKDF for all 2·56 link ends).

Run: ``python -m confide.benchmarks.channel_layers``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from confide.channels import Message, Meter
from confide.channels.stack import ChannelSettings, build_channel

STACKS: dict[str, ChannelSettings] = {
    "ideal": ChannelSettings(),
    "encrypt": ChannelSettings(encrypt=True),
    "int8": ChannelSettings(quantisation="int8"),
    "int8 + encrypt": ChannelSettings(quantisation="int8", encrypt=True),
    "gaussian DP + encrypt": ChannelSettings(dp_mechanism="gaussian", encrypt=True),
}


def policy_messages(n: int, round: int, probs: np.ndarray) -> list[Message]:
    return [Message(s, r, "policy", round, {"probs": probs}) for s in range(n) for r in range(n) if s != r]


def measure(settings: ChannelSettings, n: int, samples: int, repeats: int) -> tuple[int, float, float]:
    """(bytes per exchange, median seconds per exchange, seconds of the first exchange)."""
    probs = np.random.default_rng(0).dirichlet(np.ones(2), size=samples).astype(np.float32)
    meters: list[Meter] = []

    def wire(channel):
        meters.append(Meter(channel))
        return meters[-1]

    stack = build_channel(settings, n, np.random.default_rng(0), wire=wire)
    rounds = [policy_messages(n, t, probs) for t in range(repeats + 1)]
    start = time.perf_counter()
    stack.exchange(0, rounds[0])
    first = time.perf_counter() - start
    per_exchange = meters[0].total_bytes
    times = []
    for t in range(1, repeats + 1):
        start = time.perf_counter()
        stack.exchange(t, rounds[t])
        times.append(time.perf_counter() - start)
    return per_exchange, statistics.median(times), first


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--samples", type=int, default=480)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    n_messages = args.agents * (args.agents - 1)
    print(f"{n_messages} messages of probs float32 [{args.samples}, 2] per exchange (N = {args.agents})")
    print(
        f"{'stack':<24}{'bytes/exchange':>16}{'× ideal':>9}{'ms/exchange':>13}{'× ideal':>9}{'first ms':>10}"
    )
    base_bytes = base_time = None
    for name, settings in STACKS.items():
        size, seconds, first = measure(settings, args.agents, args.samples, args.repeats)
        base_bytes = base_bytes or size
        base_time = base_time or seconds
        print(
            f"{name:<24}{size:>16,}{size / base_bytes:>9.3f}{seconds * 1e3:>13.3f}{seconds / base_time:>9.2f}"
            f"{first * 1e3:>10.2f}"
        )
    enc, _, _ = measure(STACKS["encrypt"], args.agents, args.samples, 1)
    ideal, _, _ = measure(STACKS["ideal"], args.agents, args.samples, 1)
    print(
        f"encryption adds {enc - ideal:,} B per exchange = {(enc - ideal) // n_messages} B per message (28 AEAD + 11 framing)"
    )


if __name__ == "__main__":
    main()
