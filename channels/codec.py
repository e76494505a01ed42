"""Exact, self-describing serialisation of a message payload (a dict of numpy arrays).

Wire format of one payload (all integers little-endian)::

    u16 number of arrays
    per array:  u8 name length | name (utf-8) | u8 dtype code | u8 ndim | u32 per dim | raw data

So an array named ``"probs"`` of shape ``[M, A]`` float32 costs ``1 + 5 + 1 + 1 + 2*4 + 4*M*A`` bytes
and the payload adds 2 bytes. The meter counts exactly these bytes; a hand count in the tests checks it.
Decoding validates every length, so a truncated or malformed payload raises ``MalformedPayload``
instead of producing garbage.
"""

from __future__ import annotations

import struct

import numpy as np

DTYPE_CODES: dict[str, int] = {
    "float32": 1,
    "float64": 2,
    "float16": 3,
    "int32": 4,
    "int64": 5,
    "uint8": 6,
    "int8": 7,
    "bool": 8,
    "uint16": 9,
}
CODE_DTYPES = {code: np.dtype(name) for name, code in DTYPE_CODES.items()}
MAX_ELEMENTS = 1 << 28


class MalformedPayload(ValueError):
    """A payload that cannot be decoded (truncated, unknown dtype, inconsistent sizes)."""


def array_wire_bytes(name: str, shape: tuple[int, ...], itemsize: int) -> int:
    """Bytes one array occupies on the wire (for hand counts and budget checks)."""
    n = 1
    for d in shape:
        n *= d
    return 1 + len(name.encode()) + 1 + 1 + 4 * len(shape) + itemsize * n


def encode_payload(payload: dict[str, np.ndarray]) -> bytes:
    """Serialise named arrays; raises ValueError for unsupported dtypes or names."""
    parts = [struct.pack("<H", len(payload))]
    for name, value in payload.items():
        arr = np.asarray(value, order="C")
        key = arr.dtype.name
        if key not in DTYPE_CODES:
            raise ValueError(f"payload array {name!r}: unsupported dtype {key}")
        raw_name = name.encode()
        if not 0 < len(raw_name) < 256:
            raise ValueError(f"payload array name {name!r} must be 1..255 bytes")
        parts.append(struct.pack("<B", len(raw_name)) + raw_name)
        parts.append(struct.pack("<BB", DTYPE_CODES[key], arr.ndim))
        parts.append(struct.pack(f"<{arr.ndim}I", *arr.shape))
        parts.append(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
    return b"".join(parts)


def decode_payload(data: bytes) -> dict[str, np.ndarray]:
    """Inverse of ``encode_payload``; every array is a fresh, writable copy."""
    view = memoryview(data)
    pos = 0

    def take(n: int) -> memoryview:
        nonlocal pos
        if n < 0 or pos + n > len(view):
            raise MalformedPayload("payload truncated")
        chunk = view[pos : pos + n]
        pos += n
        return chunk

    (count,) = struct.unpack("<H", take(2))
    out: dict[str, np.ndarray] = {}
    for _ in range(count):
        (name_len,) = struct.unpack("<B", take(1))
        try:
            name = bytes(take(name_len)).decode()
        except UnicodeDecodeError as err:
            raise MalformedPayload("array name is not utf-8") from err
        code, ndim = struct.unpack("<BB", take(2))
        if code not in CODE_DTYPES:
            raise MalformedPayload(f"array {name!r}: unknown dtype code {code}")
        shape = struct.unpack(f"<{ndim}I", take(4 * ndim))
        n = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if n > MAX_ELEMENTS:
            raise MalformedPayload(f"array {name!r}: {n} elements exceeds the limit")
        dtype = CODE_DTYPES[code]
        raw = take(n * dtype.itemsize)
        out[name] = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    if pos != len(view):
        raise MalformedPayload(f"{len(view) - pos} trailing bytes")
    return out
