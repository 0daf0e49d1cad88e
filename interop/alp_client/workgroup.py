"""Workgroup events (PROTOCOL.md: "Workgroups", "Events"): the signed,
fixed-layout records of a workgroup's log, with canonical CBOR bodies.

This module writes and reads events; it does not fold them into a
group's state.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import cbor
from .errors import ProtocolError
from .identity import Identity
from .kdf import blake3_hash

EVENT_CONTEXT = b"alp wg event v1"
VERSION = 1
MAX_DEPS = 16
MAX_BODY = 64 * 1024
ZERO = bytes(32)

#: Kind numbers, by name.
KINDS = {
    "create": 1, "invite": 2, "join": 3, "leave": 4, "remove": 5, "card": 6, "roles": 7, "budget": 8,
    "note": 9, "task": 10, "assign": 11, "claim": 12, "renew": 13, "progress": 14, "input-needed": 15,
    "reply": 16, "complete": 17, "fail": 18, "cancel": 19, "spend": 20,
}  # fmt: skip


@dataclass(frozen=True)
class Event:
    """A decoded, signature-checked event."""

    group: bytes | None
    author: bytes
    seq: int
    prev: bytes | None
    clock: int
    time_ms: int
    deps: tuple[bytes, ...]
    kind: int
    body: Any
    id: bytes
    raw: bytes

    @property
    def group_id(self) -> bytes:
        """The group it belongs to: its own id for a group's first event."""
        return self.group or self.id


def unsigned(
    group: bytes | None,
    author: bytes,
    seq: int,
    prev: bytes | None,
    clock: int,
    time_ms: int,
    deps: list[bytes],
    kind: int,
    body: dict[str, Any],
) -> bytes:
    """The bytes an author signs (after the context) and hashes into the id.
    ``body`` is a dict whose keys are in the kind's field order."""
    deps = sorted(deps)
    if len(deps) > MAX_DEPS or len(set(deps)) != len(deps):
        raise ValueError("at most 16 distinct deps")
    encoded = cbor.encode(body)
    if len(encoded) > MAX_BODY:
        raise ValueError("body over 64 KiB")
    return b"".join(
        [
            bytes([VERSION]),
            group or ZERO,
            author,
            struct.pack(">Q", seq),
            prev or ZERO,
            struct.pack(">QQ", clock, time_ms),
            bytes([len(deps)]),
            *deps,
            bytes([kind]),
            struct.pack(">I", len(encoded)),
            encoded,
        ]
    )


def sign(identity: Identity, unsigned_bytes: bytes) -> bytes:
    """The encoded event: the unsigned bytes and the author's signature."""
    return unsigned_bytes + identity.sign(EVENT_CONTEXT + unsigned_bytes)


def decode(raw: bytes) -> Event:
    """Decodes an event and checks its signature and canonical body."""
    if len(raw) < 64 + 1 + 32 + 32 + 8 + 32 + 8 + 8 + 1 + 1 + 4:
        raise ProtocolError("workgroup event: truncated")
    body_start = 1 + 32 + 32 + 8 + 32 + 8 + 8
    unsigned_bytes, signature = raw[:-64], raw[-64:]
    if unsigned_bytes[0] != VERSION:
        raise ProtocolError("workgroup event: unknown version")
    group, author = unsigned_bytes[1:33], unsigned_bytes[33:65]
    (seq,) = struct.unpack(">Q", unsigned_bytes[65:73])
    prev = unsigned_bytes[73:105]
    clock, time_ms = struct.unpack(">QQ", unsigned_bytes[105:121])
    count = unsigned_bytes[body_start]
    at = body_start + 1
    deps = tuple(unsigned_bytes[at + 32 * i : at + 32 * (i + 1)] for i in range(count))
    at += 32 * count
    kind = unsigned_bytes[at]
    (length,) = struct.unpack(">I", unsigned_bytes[at + 1 : at + 5])
    encoded = unsigned_bytes[at + 5 :]
    if len(encoded) != length or length > MAX_BODY:
        raise ProtocolError("workgroup event: body length does not match")
    try:
        body = cbor.decode(encoded)
    except cbor.CBORError as e:
        raise ProtocolError(f"workgroup event: body: {e}") from e
    if cbor.encode(body) != encoded:
        raise ProtocolError("workgroup event: body not in canonical form")
    try:
        Ed25519PublicKey.from_public_bytes(author).verify(signature, EVENT_CONTEXT + unsigned_bytes)
    except InvalidSignature as e:
        raise ProtocolError("workgroup event: the signature does not verify") from e
    return Event(
        group=None if group == ZERO else group,
        author=author,
        seq=seq,
        prev=None if prev == ZERO else prev,
        clock=clock,
        time_ms=time_ms,
        deps=deps,
        kind=kind,
        body=body,
        id=blake3_hash(unsigned_bytes),
        raw=raw,
    )
