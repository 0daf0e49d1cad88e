"""Authenticated links to a node, and the requests made over them
(PROTOCOL.md: "Handshake", "Requests", "Blobs").

::

    async with await connect("127.0.0.1:7117", identity, node_id) as link:
        version = await link.ping(42)
        part = await link.get_blob(blob_hash)

Every network wait is bounded by the link's ``timeout`` (seconds): a
request, including a whole blob transfer, raises ``TimeoutError`` past it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from typing import Any

from . import cbor
from .addr_records import AddrRecord
from .addresses import SocketAddress
from .codes import CloseCode
from .envelope import (
    check_map,
    decode_response,
    encode_request,
    is_bstr,
    is_range,
    is_tstr,
    is_tstr_list,
    is_uint,
)
from .errors import HandshakeRefused, ProtocolError
from .framing import (
    HANDSHAKE_FRAME_LIMIT,
    RECEIPT_FRAME_LIMIT,
    RECORD_FRAME_LIMIT,
    REQUEST_FRAME_LIMIT,
    encode_frame,
    read_frame,
)
from .handshake import HandshakeFailure, IdentityPayload, InitiatorHandshake
from .identity import Identity, NodeId
from .receipts import Receipt
from .records import RecordOpener, record_ad, transfer_key
from .tickets import Ticket
from .transport import QuicConnectionLink, Stream, open_quic
from .tree import StreamVerifier, group_count, part_bytes, widen

DEFAULT_TIMEOUT = 10.0
PROTOCOL_VERSION_PREFIX = "alp/1 "


@dataclass(frozen=True)
class NodeInfo:
    """The answer to ``link.info``."""

    node_id: NodeId
    display_name: str
    version: str
    verbs: list[str]
    #: The node's signed address record, checked (``None`` if it sent none).
    record: AddrRecord | None = None


@dataclass(frozen=True)
class BlobPart:
    """A verified part of a blob: ``data`` is the bytes ``[start, end)`` of
    the blob ``hash`` of ``size`` bytes (the asked range widened to whole
    16 KiB groups); ``receipt`` is the sender's signed receipt for it."""

    hash: bytes
    size: int
    start: int
    end: int
    data: bytes
    receipt: Receipt

    def __bytes__(self) -> bytes:
        return self.data


def parse_hash(blob_hash: bytes | str) -> bytes:
    """A blob hash given as 32 bytes or as 64 hex digits."""
    raw = bytes.fromhex(blob_hash) if isinstance(blob_hash, str) else blob_hash
    if len(raw) != 32:
        raise ValueError("a blob hash is 32 bytes")
    return raw


class Link:
    """An authenticated connection to one node. Use :func:`connect` or
    :func:`pair` to make one, and ``async with`` (or :meth:`close`) to end
    it."""

    def __init__(
        self,
        identity: Identity,
        exit_stack: AsyncExitStack,
        quic: QuicConnectionLink,
        peer: IdentityPayload,
        binding: bytes,
        session_secret: bytes,
        timeout: float,
    ) -> None:
        self.identity = identity
        self.peer = peer
        self.binding = binding
        self.session_secret = session_secret
        self.timeout = timeout
        self._exit_stack = exit_stack
        self._quic = quic
        self._request_ids = itertools.count(1)

    @property
    def peer_node_id(self) -> NodeId:
        """The responder's node id, as authenticated by the handshake."""
        return self.peer.node_id

    @property
    def cipher_suite(self) -> str:
        """The TLS cipher suite the QUIC connection negotiated."""
        return self._quic.cipher_suite

    async def __aenter__(self) -> Link:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection (code 0) and wait until it is closed."""
        await asyncio.wait_for(self._exit_stack.aclose(), self.timeout)

    def open_stream(self) -> Stream:
        """A new request stream, for sending raw frames (tests, extensions)."""
        return self._quic.open_stream()

    async def open_request(self, verb: str, body: Any) -> tuple[Stream, Any]:
        """Send a request (``body`` is CBOR-encoded, the stream finished) and
        read its response frame. Returns the stream, for verbs that send more
        frames, and the decoded ``ok`` value; raises :class:`RemoteError`
        for an ``err`` answer."""
        request_id = next(self._request_ids)
        stream = self.open_stream()
        stream.send(encode_frame(encode_request(verb, request_id, cbor.encode(body))), fin=True)
        response = decode_response(await read_frame(stream, REQUEST_FRAME_LIMIT, "response frame"))
        if response.id != request_id:
            raise ProtocolError(f"response id {response.id}, request id {request_id}")
        return stream, response.body(f"{verb} response body")

    async def request(self, verb: str, body: Any) -> Any:
        """A request whose answer is one response frame: returns the decoded
        ``ok`` value, or raises :class:`RemoteError`."""

        async def exchange() -> Any:
            stream, value = await self.open_request(verb, body)
            await stream.expect_end("response")
            return value

        return await asyncio.wait_for(exchange(), self.timeout)

    async def ping(self, nonce: int) -> str:
        """``link.ping``: returns the responder's protocol version
        (``"alp/1 ..."``) after checking that it echoed ``nonce``."""
        answer = check_map(
            await self.request("link.ping", {"nonce": nonce}),
            "link.ping response",
            {"nonce": is_uint, "version": is_tstr},
        )
        if answer["nonce"] != nonce:
            raise ProtocolError(f"link.ping echoed {answer['nonce']}, sent {nonce}")
        if not answer["version"].startswith(PROTOCOL_VERSION_PREFIX):
            raise ProtocolError(f"link.ping version {answer['version']!r}")
        return answer["version"]

    async def info(self) -> NodeInfo:
        """``link.info``: who the responder is and what this client may call."""
        answer = check_map(
            await self.request("link.info", {}),
            "link.info response",
            {"node_id": is_tstr, "display_name": is_tstr, "version": is_tstr, "verbs": is_tstr_list},
            {"addrs": is_bstr},
        )
        try:
            node_id = NodeId.parse(answer["node_id"])
        except ValueError as e:
            raise ProtocolError(f"link.info node_id: {e}") from e
        record = None
        if "addrs" in answer:
            try:
                # Checked against the node the handshake authenticated.
                record = AddrRecord.verify(answer["addrs"], self.peer.node_id, int(time.time()))
            except ValueError as e:
                raise ProtocolError(f"link.info addrs: {e}") from e
        return NodeInfo(node_id, answer["display_name"], answer["version"], answer["verbs"], record)

    async def get_blob(
        self, blob_hash: bytes | str, byte_range: tuple[int, int] | None = None, transfer_id: bytes | None = None
    ) -> BlobPart:
        """``blob.get``: fetch the whole blob, or the part covering
        ``byte_range = (start, end)``, and check every record, the hash tree
        and the receipt before returning it. ``transfer_id`` defaults to 16
        random bytes (never reuse one on a link)."""
        blob_hash = parse_hash(blob_hash)
        transfer_id = os.urandom(16) if transfer_id is None else transfer_id
        body: dict[str, Any] = {"hash": blob_hash, "transfer_id": transfer_id}
        if byte_range is not None:
            body["range"] = list(byte_range)
        return await asyncio.wait_for(self._get_blob(blob_hash, transfer_id, body, byte_range), self.timeout)

    async def _get_blob(
        self, blob_hash: bytes, transfer_id: bytes, body: dict[str, Any], byte_range: tuple[int, int] | None
    ) -> BlobPart:
        stream, value = await self.open_request("blob.get", body)
        answer = check_map(value, "blob.get response", {"size": is_uint, "range": is_range})
        size = answer["size"]
        start, end = answer["range"]
        try:
            g0, g1 = widen(*byte_range, size) if byte_range is not None else (0, group_count(size))
        except ValueError as e:
            raise ProtocolError(f"blob.get answered ok for a range outside the blob: {e}") from e
        if (start, end) != part_bytes(size, g0, g1):
            raise ProtocolError(f"blob.get range [{start}, {end}) is not the asked range widened")

        opener = RecordOpener(transfer_key(self.session_secret, transfer_id), record_ad(blob_hash, start, end, size))
        verifier = StreamVerifier(blob_hash, size, g0, g1)
        last = False
        while not last:
            record = await read_frame(stream, RECORD_FRAME_LIMIT, f"record {opener.counter}")
            plaintext, last = opener.open(record)
            verifier.feed(plaintext)
        data = verifier.finish()

        try:
            receipt = Receipt.decode(await read_frame(stream, RECEIPT_FRAME_LIMIT, "receipt"))
        except ValueError as e:
            raise ProtocolError(f"receipt: {e}") from e
        this_transfer = replace(
            receipt,
            hash=blob_hash,
            size=size,
            start=start,
            end=end,
            sender=self.peer_node_id,
            receiver=self.identity.node_id,
            transfer_id=transfer_id,
            binding=self.binding,
        )
        if receipt != this_transfer:
            raise ProtocolError("the receipt names another transfer")
        if not receipt.verify():
            raise ProtocolError("the receipt's signature does not verify")
        await stream.expect_end("receipt")
        return BlobPart(blob_hash, size, start, end, data, receipt)


async def _handshake(
    quic: QuicConnectionLink, identity: Identity, expected: NodeId, ticket: Ticket | None
) -> tuple[IdentityPayload, bytes, bytes]:
    """Run the handshake on the connection's first stream; returns the
    responder's identity, the binding and the session secret."""
    binding = quic.binding()
    handshake = InitiatorHandshake(identity, binding, ticket)
    stream = quic.open_stream()
    stream.send(encode_frame(handshake.frame1()))
    try:
        responder = handshake.read_frame2(await read_frame(stream, HANDSHAKE_FRAME_LIMIT, "handshake frame 2"))
        if responder.node_id != expected:
            raise HandshakeFailure(CloseCode.UNEXPECTED_PEER, f"frame 2 came from {responder.node_id}, not {expected}")
        stream.send(encode_frame(handshake.frame3()), fin=True)
        handshake.read_frame4(await read_frame(stream, HANDSHAKE_FRAME_LIMIT, "handshake frame 4"))
    except HandshakeFailure as e:
        quic.close_with(e.code, e.reason)
        raise HandshakeRefused(e.code, e.reason) from e
    await stream.expect_end("handshake frame 4")
    return responder, binding, handshake.session_secret


async def _open_link(
    address: SocketAddress, identity: Identity, expected: NodeId, ticket: Ticket | None, timeout: float
) -> Link:
    stack = AsyncExitStack()
    try:
        quic = await asyncio.wait_for(stack.enter_async_context(open_quic(address)), timeout)
        peer, binding, secret = await asyncio.wait_for(_handshake(quic, identity, expected, ticket), timeout)
    except BaseException:
        await stack.aclose()
        raise
    return Link(identity, stack, quic, peer, binding, secret, timeout)


async def connect(
    address: str | SocketAddress, identity: Identity, expected_node_id: NodeId | str, timeout: float = DEFAULT_TIMEOUT
) -> Link:
    """Dial ``address`` in trusted mode as ``identity`` and authenticate the
    node ``expected_node_id``. Waits for frame 4 (the responder accepted
    this client), so a refusal raises :class:`LinkClosed` (code 3 when this
    client is not a peer there) here rather than at the first request."""
    if isinstance(address, str):
        address = SocketAddress.parse(address)
    if isinstance(expected_node_id, str):
        expected_node_id = NodeId.parse(expected_node_id)
    return await _open_link(address, identity, expected_node_id, None, timeout)


async def pair(
    ticket: str | Ticket,
    identity: Identity,
    address: str | SocketAddress | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Link:
    """Redeem a pairing ticket as ``identity`` (XXpsk3): dial ``address``, or
    the ticket's first address, and authenticate the inviter. Returns the
    link once the inviter has accepted the ticket (frame 4); this client is
    then one of its peers, with the default permissions. The inviter's node
    id is ``link.peer_node_id``."""
    if isinstance(ticket, str):
        ticket = Ticket.parse(ticket)
    if address is None:
        if not ticket.addresses:
            raise ValueError("the ticket has no address: pass one")
        address = ticket.addresses[0]
    elif isinstance(address, str):
        address = SocketAddress.parse(address)
    return await _open_link(address, identity, ticket.inviter, ticket, timeout)
