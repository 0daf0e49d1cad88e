"""Transfer receipts (PROTOCOL.md: "Receipts").

The sender signs ``"alp blob receipt v2" || body``; the receipt frame is
the 176-byte body followed by the 64-byte signature.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from .identity import Identity, NodeId

RECEIPT_CONTEXT = b"alp blob receipt v2"
BODY_SIZE = 176
RECEIPT_SIZE = BODY_SIZE + 64


@dataclass(frozen=True)
class Receipt:
    """A signed statement that ``sender`` sent ``receiver`` the part
    ``[start, end)`` of the blob ``hash`` of ``size`` bytes, in transfer
    ``transfer_id`` over the connection with TLS exporter value ``binding``,
    at Unix time ``time``."""

    hash: bytes
    size: int
    start: int
    end: int
    sender: NodeId
    receiver: NodeId
    transfer_id: bytes
    binding: bytes
    time: int
    signature: bytes

    def body(self) -> bytes:
        """The 176-byte fixed layout."""
        return (
            self.hash
            + struct.pack(">QQQ", self.size, self.start, self.end)
            + self.sender.key
            + self.receiver.key
            + self.transfer_id
            + self.binding
            + struct.pack(">Q", self.time)
        )

    def signed_message(self) -> bytes:
        """``"alp blob receipt v2" || body``: what the signature covers."""
        return RECEIPT_CONTEXT + self.body()

    def encode(self) -> bytes:
        """The 240-byte receipt frame."""
        return self.body() + self.signature

    @classmethod
    def decode(cls, frame: bytes) -> Receipt:
        """Parse a receipt frame; ``ValueError`` if it is not 240 bytes, has
        ``start > end`` or ``end > size``, or names an invalid node id."""
        if len(frame) != RECEIPT_SIZE:
            raise ValueError(f"receipt of {len(frame)} bytes, expected {RECEIPT_SIZE}")
        size, start, end = struct.unpack(">QQQ", frame[32:56])
        if start > end or end > size:
            raise ValueError(f"receipt range [{start}, {end}) of a blob of {size} bytes")
        (time,) = struct.unpack(">Q", frame[168:176])
        return cls(
            hash=frame[:32],
            size=size,
            start=start,
            end=end,
            sender=NodeId(frame[56:88]),
            receiver=NodeId(frame[88:120]),
            transfer_id=frame[120:136],
            binding=frame[136:168],
            time=time,
            signature=frame[176:],
        )

    @classmethod
    def sign(
        cls,
        sender: Identity,
        *,
        hash: bytes,
        size: int,
        start: int,
        end: int,
        receiver: NodeId,
        transfer_id: bytes,
        binding: bytes,
        time: int,
    ) -> Receipt:
        """A receipt signed by ``sender``."""
        unsigned = cls(hash, size, start, end, sender.node_id, receiver, transfer_id, binding, time, b"")
        return replace(unsigned, signature=sender.sign(unsigned.signed_message()))

    def verify(self) -> bool:
        """Whether the signature verifies with the sender's node id."""
        return self.sender.verify(self.signature, self.signed_message())
