"""Signed address records (PROTOCOL.md: "Address records"): where a node
says it can be reached, and until when, in ``link.info``'s ``addrs``.

The node signs ``"alp/1 address record" || body``; the record is the body
followed by the 64-byte signature::

    body = node id (32) || issued at u64 BE || expires at u64 BE || address list
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .addresses import SocketAddress, decode_address_list, encode_address_list
from .identity import Identity, NodeId

ADDR_RECORD_CONTEXT = b"alp/1 address record"
MAX_LIFETIME = 7 * 24 * 3600
MAX_CLOCK_SKEW = 300
MAX_RECORD_SIZE = 32 + 8 + 8 + 1 + 8 * (1 + 16 + 2) + 64


@dataclass(frozen=True)
class AddrRecord:
    """``node_id`` can be reached at ``addresses`` from ``issued_at`` until
    ``expires_at`` (Unix seconds)."""

    node_id: NodeId
    issued_at: int
    expires_at: int
    addresses: list[SocketAddress]

    def body(self) -> bytes:
        return self.node_id.key + struct.pack(">QQ", self.issued_at, self.expires_at) + encode_address_list(self.addresses)

    def signed_message(self) -> bytes:
        """What the signature covers."""
        return ADDR_RECORD_CONTEXT + self.body()

    def sign(self, signer: Identity) -> bytes:
        """The encoded record, signed by ``signer``."""
        return self.body() + signer.sign(self.signed_message())

    @classmethod
    def verify(cls, data: bytes, signer: NodeId, now: int) -> AddrRecord:
        """Decode ``data`` and check it is ``signer``'s, signed by it, and
        valid at ``now``; ``ValueError`` says why not."""
        if len(data) > MAX_RECORD_SIZE:
            raise ValueError("address record too long")
        if len(data) < 32 + 16 + 1 + 64:
            raise ValueError("address record truncated")
        body, signature = data[:-64], data[-64:]
        node_id = NodeId(body[:32])
        issued_at, expires_at = struct.unpack(">QQ", body[32:48])
        addresses, end = decode_address_list(body, 48)
        if end != len(body):
            raise ValueError("address record: trailing bytes")
        if node_id != signer:
            raise ValueError("address record of another node")
        if not signer.verify(signature, ADDR_RECORD_CONTEXT + body):
            raise ValueError("address record signature does not verify")
        if expires_at <= now:
            raise ValueError("address record expired")
        if issued_at > now + MAX_CLOCK_SKEW or expires_at < issued_at or expires_at - issued_at > MAX_LIFETIME:
            raise ValueError("address record times out of bounds")
        return cls(node_id, issued_at, expires_at, addresses)
