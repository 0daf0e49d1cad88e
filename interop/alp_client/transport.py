"""QUIC transport on aioquic (PROTOCOL.md: "Transport", "Channel binding").

:func:`open_quic` dials a node: QUIC v1, ALPN ``alp/1``, server name
``alp``, any certificate (the CertificateVerify signature is still checked
by aioquic). :class:`Stream` is one bidirectional stream with exact reads
that surface the peer's RESET_STREAM as :class:`StreamReset` and a
connection close as :class:`LinkClosed`.

aioquic has no TLS exporter API, so this module hooks its key schedule to
capture the exporter master secret at the one moment the transcript is
ClientHello..server Finished (tested with aioquic 1.7.2, which
requirements.txt pins).
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aioquic import tls
from aioquic.asyncio import QuicConnectionProtocol
from aioquic.asyncio import connect as aioquic_connect
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import QuicProtocolVersion
from cryptography.hazmat.primitives import hashes

from .addresses import SocketAddress
from .codes import CloseCode
from .errors import LinkClosed, ProtocolError, StreamReset

ALPN = "alp/1"
SERVER_NAME = "alp"
BINDING_LABEL = b"EXPORTER-alp-link-binding-v1"
IDLE_TIMEOUT = 30.0
RECEIVE_WINDOW = 4 << 20

@dataclass(frozen=True)
class _ExporterSecret:
    secret: bytes
    algorithm: hashes.HashAlgorithm


# The exporter master secret of each aioquic TLS context, once derived.
_EXPORTER_SECRETS: weakref.WeakKeyDictionary[tls.Context, _ExporterSecret] = weakref.WeakKeyDictionary()
_original_setup_traffic_protection = tls.Context._setup_traffic_protection


def _capture_exporter_secret(self: tls.Context, direction: Any, epoch: tls.Epoch, label: bytes) -> None:
    """Wraps aioquic's ``Context._setup_traffic_protection``: when the 1-RTT
    server traffic secret is derived, the key schedule holds the master
    secret and the transcript ClientHello..server Finished, exactly what
    ``exporter_master_secret`` needs."""
    if epoch == tls.Epoch.ONE_RTT and label == b"s ap traffic":
        schedule = self.key_schedule
        if schedule is None or schedule.generation != 3:
            raise RuntimeError("aioquic's key schedule is not where this hook expects it")
        _EXPORTER_SECRETS[self] = _ExporterSecret(schedule.derive_secret(b"exp master"), schedule.algorithm)
    _original_setup_traffic_protection(self, direction, epoch, label)


tls.Context._setup_traffic_protection = _capture_exporter_secret  # type: ignore[method-assign]


def tls_exporter(context: tls.Context, label: bytes, exporter_context: bytes, length: int) -> bytes:
    """RFC 8446 §7.5 ``TLS-Exporter(label, context, length)`` of a finished
    aioquic TLS handshake."""
    captured = _EXPORTER_SECRETS.get(context)
    if captured is None:
        raise RuntimeError("the TLS handshake has not finished")
    algorithm = captured.algorithm

    def digest(data: bytes) -> bytes:
        h = hashes.Hash(algorithm)
        h.update(data)
        return h.finalize()

    derived = tls.hkdf_expand_label(algorithm, captured.secret, label, digest(b""), algorithm.digest_size)
    return tls.hkdf_expand_label(algorithm, derived, b"exporter", digest(exporter_context), length)


def client_configuration() -> QuicConfiguration:
    """The QUIC/TLS settings of an alp client."""
    configuration = QuicConfiguration(
        is_client=True,
        alpn_protocols=[ALPN],
        server_name=SERVER_NAME,
        verify_mode=ssl.CERT_NONE,  # any certificate: TLS does not establish identity
        idle_timeout=IDLE_TIMEOUT,
        max_data=RECEIVE_WINDOW,
    )
    configuration.supported_versions = [QuicProtocolVersion.VERSION_1]
    return configuration


class Stream:
    """One bidirectional stream opened by this client."""

    def __init__(self, connection: QuicConnectionLink, stream_id: int) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self._buffer = bytearray()
        self._fin = False
        self._reset_code: int | None = None
        self._changed = asyncio.Event()

    def send(self, data: bytes, fin: bool = False) -> None:
        """Send ``data``, then FIN if ``fin``."""
        self.connection.raise_if_closed()
        self.connection._quic.send_stream_data(self.stream_id, data, end_stream=fin)
        self.connection.transmit()

    def _notify(self) -> None:
        self._changed.set()

    def _on_data(self, data: bytes, fin: bool) -> None:
        self._buffer += data
        self._fin = self._fin or fin
        self._notify()

    def _on_reset(self, code: int) -> None:
        self._reset_code = code
        self._notify()

    async def _wait(self) -> None:
        """Wait for more data, the end of the stream, a reset or a close."""
        if self._reset_code is not None:
            raise StreamReset(self._reset_code)
        self.connection.raise_if_closed()
        self._changed.clear()
        await self._changed.wait()

    async def read_exact(self, n: int) -> bytes | None:
        """Exactly ``n`` bytes; ``None`` if the stream ended before any of
        them. Raises :class:`ProtocolError` if it ended after some,
        :class:`StreamReset` or :class:`LinkClosed`."""
        while len(self._buffer) < n:
            if self._fin:
                if self._buffer:
                    raise ProtocolError(f"the stream ended {n - len(self._buffer)} bytes short")
                return None
            await self._wait()
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def at_end(self) -> bool:
        """Whether the peer finished the stream with nothing left to read
        (waits until either bytes or the end arrive)."""
        while not self._buffer and not self._fin:
            await self._wait()
        return not self._buffer

    async def expect_end(self, after: str) -> None:
        """Raise :class:`ProtocolError` unless the stream ends here."""
        if not await self.at_end():
            raise ProtocolError(f"unexpected bytes after the {after}")


class QuicConnectionLink(QuicConnectionProtocol):
    """An aioquic connection that routes stream events to :class:`Stream`
    objects and remembers why the connection closed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.streams: dict[int, Stream] = {}
        self.closed: LinkClosed | None = None

    def raise_if_closed(self) -> None:
        """Raise the :class:`LinkClosed` of a closed connection."""
        if self.closed is not None:
            raise self.closed

    def open_stream(self) -> Stream:
        """A new bidirectional stream (it exists for the peer once data or
        FIN is sent on it)."""
        self.raise_if_closed()
        stream_id = self._quic.get_next_available_stream_id()
        stream = Stream(self, stream_id)
        self.streams[stream_id] = stream
        return stream

    def binding(self) -> bytes:
        """The channel binding: the TLS exporter value with label
        ``EXPORTER-alp-link-binding-v1``, empty context, 32 bytes."""
        return tls_exporter(self._quic.tls, BINDING_LABEL, b"", 32)

    @property
    def cipher_suite(self) -> str:
        """The negotiated TLS cipher suite, e.g. ``"AES_128_GCM_SHA256"``."""
        schedule = self._quic.tls.key_schedule
        assert schedule is not None, "the TLS handshake has not finished"
        return schedule.cipher_suite.name

    def close_with(self, code: int, reason: str) -> None:
        """Close the connection with an application close code."""
        if self.closed is None:
            self.closed = LinkClosed(code, f"closed by this client: {reason}")
        self._quic.close(error_code=code, reason_phrase=reason)
        self.transmit()

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.ConnectionTerminated):
            if self.closed is None:
                self.closed = LinkClosed(event.error_code, event.reason_phrase, application=event.frame_type is None)
            for stream in self.streams.values():
                stream._notify()
            return
        stream_id = getattr(event, "stream_id", None)
        if stream_id is None:
            return
        target = self.streams.get(stream_id)
        if target is None:
            self.close_with(CloseCode.PROTOCOL_VIOLATION, "the responder used a stream it may not open")
        elif isinstance(event, events.StreamDataReceived):
            target._on_data(event.data, event.end_stream)
        elif isinstance(event, events.StreamReset):
            target._on_reset(event.error_code)
        # STOP_SENDING needs nothing here: aioquic resets our sending side itself.


@asynccontextmanager
async def open_quic(address: SocketAddress) -> AsyncIterator[QuicConnectionLink]:
    """A QUIC connection to ``address`` with a finished TLS handshake and
    ALPN ``alp/1``; closed (code 0 unless closed before) on exit."""
    async with aioquic_connect(
        str(address.ip),
        address.port,
        configuration=client_configuration(),
        create_protocol=QuicConnectionLink,
        wait_connected=False,
    ) as protocol:
        assert isinstance(protocol, QuicConnectionLink)
        protocol.transmit()  # the Initial (aioquic holds it back without wait_connected)
        try:
            await protocol.wait_connected()
        except ConnectionError:
            # aioquic raises a bare ConnectionError; the close event says why.
            protocol.raise_if_closed()
            raise
        if protocol._quic.tls.alpn_negotiated != ALPN:
            protocol.close_with(CloseCode.PROTOCOL_VIOLATION, "ALPN alp/1 not negotiated")
            raise ProtocolError("the responder did not negotiate ALPN alp/1")
        yield protocol
