"""Frames: a ``u32`` big-endian length, then that many bytes (PROTOCOL.md:
"Frames"). The length is checked against the context's limit before the
payload is read.
"""

from __future__ import annotations

import struct
from typing import Protocol

from .errors import ProtocolError

HANDSHAKE_FRAME_LIMIT = 1024
REQUEST_FRAME_LIMIT = 1 << 20  # link.max_frame's default
RECORD_FRAME_LIMIT = 65552
RECEIPT_FRAME_LIMIT = 240


class ByteSource(Protocol):
    """What frames are read from: one direction of a stream."""

    async def read_exact(self, n: int) -> bytes | None:
        """Exactly ``n`` bytes (``b""`` for 0); ``None`` if the stream ended
        before the first of them; :class:`ProtocolError` if it ended after
        some."""

    async def at_end(self) -> bool:
        """Whether the stream has ended (waits for data or its end)."""


def encode_frame(payload: bytes) -> bytes:
    """``u32`` length prefix, then ``payload``."""
    return struct.pack(">I", len(payload)) + payload


async def read_frame(source: ByteSource, limit: int, what: str) -> bytes:
    """Read one frame of at most ``limit`` bytes; ``what`` names it in errors.

    Raises :class:`ProtocolError` if the stream ends before or inside the
    frame, or the frame is over the limit.
    """
    header = await source.read_exact(4)
    if header is None:
        raise ProtocolError(f"the stream ended before the {what}")
    (length,) = struct.unpack(">I", header)
    if length > limit:
        raise ProtocolError(f"{what} of {length} bytes, over the limit of {limit}")
    payload = await source.read_exact(length)
    if payload is None:
        raise ProtocolError(f"the stream ended inside the {what}")
    return payload
