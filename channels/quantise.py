"""Compression of float payloads before they hit the wire: float16, or 8 bits with a scale and offset.

The quantised arrays are what gets encoded, so the meter (and the bandwidth budget, and encryption)
see the smaller message; the receiver gets float32 back.

- ``"float16"``: every floating array is cast to float16 (relative error ≤ 2⁻¹¹; values that overflow
  float16 (|x| ≥ 65520) are an error at the sender). Receivers cast float16 arrays to float32.
- ``"int8"``: every floating array x becomes ``name`` uint8 q = round((x − lo)/s) plus a companion
  ``name#q8`` float32 ``[lo, s]`` with lo = min x, s = (max x − lo)/255 (rounded up to a float32),
  so |x − (lo + q·s)| ≤ s/2 before the final float32 rounding. Per-array cost: one byte per element
  plus ``array_wire_bytes(name + "#q8", (2,), 4)`` (15 + len(name) bytes). A constant array has s = 0
  and comes back exact. Non-finite values are an error at the sender.

Integer and bool arrays (e.g. sample ``index``) pass untouched. After dequantising, ``probs`` rows of
distribution kinds are projected back onto the simplex (post-processing; quantisation moves row
sums by up to A·s/2, more than receivers' 1e-3 tolerance). A payload whose companions do not match
is rejected and counted under ``rejected["malformed"]``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from confide.channels.channel import Channel, Inbox
from confide.channels.codec import MalformedPayload
from confide.channels.dp_noise import DISTRIBUTION_ARRAY, DISTRIBUTION_KINDS, project_onto_simplex
from confide.channels.message import Message

Quantisation = Literal["float16", "int8"]
SCALE_SUFFIX = "#q8"


def quantise_int8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(q uint8 of x's shape, float32 [offset, scale])`` with |x − dequantise| ≤ scale/2."""
    values = np.asarray(x, dtype=np.float64)
    if values.size == 0:
        return np.zeros(values.shape, np.uint8), np.zeros(2, np.float32)
    if not np.isfinite(values).all():
        raise ValueError("cannot quantise an array with NaN or inf to 8 bits")
    lo64, hi64 = float(values.min()), float(values.max())
    lo = np.float32(lo64)
    if float(lo) > lo64:  # keep lo ≤ min so that q ≥ 0 needs no clipping
        lo = np.nextafter(lo, np.float32(-np.inf))
    scale = np.float32((hi64 - float(lo)) / 255.0)
    if float(scale) * 255.0 < hi64 - float(lo):  # keep lo + 255·scale ≥ max
        scale = np.nextafter(scale, np.float32(np.inf))
    if scale == 0:
        q = np.zeros(values.shape, np.uint8)
    else:
        q = np.clip(np.rint((values - float(lo)) / float(scale)), 0, 255).astype(np.uint8)
    return q, np.array([lo, scale], dtype=np.float32)


def dequantise_int8(q: np.ndarray, offset_scale: np.ndarray) -> np.ndarray:
    """float32 ``offset + q · scale``."""
    lo, scale = (float(v) for v in offset_scale)
    return (lo + q.astype(np.float64) * scale).astype(np.float32)


def quantise_payload(payload: dict[str, np.ndarray], mode: Quantisation) -> dict[str, np.ndarray]:
    """The payload with every floating array quantised (names kept; int8 adds ``name#q8``)."""
    out: dict[str, np.ndarray] = {}
    for name, value in payload.items():
        if value.dtype.kind != "f":
            out[name] = value
        elif mode == "float16":
            cast = value.astype(np.float16)
            if (np.isinf(cast) & np.isfinite(value)).any():
                raise ValueError(f"array {name!r} exceeds float16's range")
            out[name] = cast
        else:
            out[name], out[name + SCALE_SUFFIX] = quantise_int8(value)
    return out


def dequantise_payload(payload: dict[str, np.ndarray], mode: Quantisation) -> dict[str, np.ndarray]:
    """Inverse of ``quantise_payload`` up to the rounding; raises ``MalformedPayload`` on mismatches."""
    if mode == "float16":
        return {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in payload.items()}
    for name, value in payload.items():
        if name.endswith(SCALE_SUFFIX):
            base = name[: -len(SCALE_SUFFIX)]
            if base not in payload or payload[base].dtype != np.uint8:
                raise MalformedPayload(f"{name!r} without a uint8 array {base!r}")
            if value.dtype != np.float32 or value.shape != (2,) or not np.isfinite(value).all():
                raise MalformedPayload(f"{name!r} must be two finite float32 numbers")
    out: dict[str, np.ndarray] = {}
    for name, value in payload.items():
        if not name.endswith(SCALE_SUFFIX):
            params = payload.get(name + SCALE_SUFFIX)
            out[name] = value if params is None else dequantise_int8(value, params)
    return out


class QuantiseLayer:
    """Quantises outgoing float arrays and dequantises (to float32) what is delivered."""

    def __init__(self, inner: Channel, mode: Quantisation) -> None:
        if mode not in ("float16", "int8"):
            raise ValueError(f"unknown quantisation {mode!r}")
        self.inner = inner
        self.mode: Quantisation = mode
        self.rejected: Counter[str] = Counter({"malformed": 0})

    def exchange(self, round: int, outgoing: Sequence[Message]) -> Inbox:
        sent = [m.with_payload(quantise_payload(m.payload, self.mode)) for m in outgoing]
        delivered = []
        for message in self.inner.exchange(round, sent).messages():
            try:
                payload = dequantise_payload(message.payload, self.mode)
            except MalformedPayload:
                self.rejected["malformed"] += 1
                continue
            probs = payload.get(DISTRIBUTION_ARRAY)
            if (
                message.kind in DISTRIBUTION_KINDS
                and probs is not None
                and probs.dtype.kind == "f"
                and probs.ndim
                and probs.size
            ):
                payload[DISTRIBUTION_ARRAY] = project_onto_simplex(probs).astype(np.float32)
            delivered.append(message.with_payload(payload))
        return Inbox(delivered)

    def state_dict(self) -> dict[str, Any]:
        return {"rejected": dict(self.rejected)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rejected = Counter(state["rejected"])
