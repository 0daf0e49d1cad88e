"""A client for the ALP protocol, written from docs/PROTOCOL.md alone.

Public API::

    from alp_client import Identity, connect, pair

    identity = Identity.generate("my-client")
    async with await connect("127.0.0.1:7117", identity, "alp1...") as link:
        await link.ping(1)
        info = await link.info()
        part = await link.get_blob("ab12...", byte_range=(0, 100))

The modules hold the pure parts (node ids, tickets, handshake messages,
envelopes, hash tree, records, receipts) so each can be checked against the
spec's test vectors.
"""

from .addresses import SocketAddress
from .codes import CloseCode, ErrorCode, ResetCode
from .errors import AlpError, HandshakeRefused, LinkClosed, ProtocolError, RemoteError, StreamReset
from .identity import Identity, NodeId
from .link import BlobPart, Link, NodeInfo, connect, pair
from .receipts import Receipt
from .tickets import Ticket

__all__ = [
    "AlpError",
    "BlobPart",
    "CloseCode",
    "ErrorCode",
    "HandshakeRefused",
    "Identity",
    "Link",
    "LinkClosed",
    "NodeId",
    "NodeInfo",
    "ProtocolError",
    "Receipt",
    "RemoteError",
    "ResetCode",
    "SocketAddress",
    "StreamReset",
    "Ticket",
    "connect",
    "pair",
]
