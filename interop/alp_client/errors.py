"""Exceptions raised by the client.

Every failure the peer reports carries its numeric code: a connection close
(:class:`LinkClosed`), a stream reset (:class:`StreamReset`) or an ``err``
response (:class:`RemoteError`). Failures this client detects itself are
:class:`ProtocolError` (the peer broke the protocol: a bad frame, a record
that does not open, a tree or receipt that does not verify) or
:class:`HandshakeRefused` (this client refused the responder).
"""

from __future__ import annotations

from .codes import error_name


class AlpError(Exception):
    """Base class of every error raised by this package."""


class ProtocolError(AlpError):
    """The peer sent something the protocol does not allow, or that fails
    verification."""


class LinkClosed(AlpError):
    """The connection was closed.

    ``code`` is the QUIC error code. ``application`` is true for an
    application close (CONNECTION_CLOSE type 0x1d), whose codes are the
    protocol's close codes (:class:`~alp_client.codes.CloseCode`); false for
    a transport-level close (type 0x1c, e.g. a QUIC or TLS failure).
    """

    def __init__(self, code: int, reason: str, application: bool = True) -> None:
        kind = "" if application else "transport "
        super().__init__(f"connection closed, {kind}code {code}: {reason!r}")
        self.code = code
        self.reason = reason
        self.application = application


class StreamReset(AlpError):
    """The peer reset the stream (RESET_STREAM) with ``code``
    (:class:`~alp_client.codes.ResetCode`)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"stream reset by the peer, code {code}")
        self.code = code


class RemoteError(AlpError):
    """The responder answered a request with ``err``.

    ``code`` is the error code (:class:`~alp_client.codes.ErrorCode`),
    ``name`` its spec name (``"not_found"``, or ``"unknown(N)"``), and
    ``message`` the responder's human-readable text.
    """

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.name = error_name(code)
        self.message = message
        super().__init__(f"{self.name} (code {code}): {message}")


class HandshakeRefused(AlpError):
    """This client refused the responder during the handshake and closed the
    connection with ``code`` (2: handshake failed, 8: unexpected peer)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"handshake refused with close code {code}: {reason}")
        self.code = code
        self.reason = reason
