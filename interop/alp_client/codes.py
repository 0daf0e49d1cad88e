"""Numeric codes of the protocol (PROTOCOL.md: "Connection close codes",
"Requests" reset codes, "Error codes").

Receivers must accept codes they do not know, so every place that carries a
code keeps the raw ``int``; these enums only give the known ones a name.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """QUIC application error codes in CONNECTION_CLOSE."""

    NORMAL = 0
    PROTOCOL_VIOLATION = 1
    HANDSHAKE_FAILED = 2
    NOT_TRUSTED = 3
    TICKET_REFUSED = 4
    RATE_LIMITED = 5
    HANDSHAKE_TIMEOUT = 6
    SHUTTING_DOWN = 7
    UNEXPECTED_PEER = 8
    BUSY = 9
    MISBEHAVING = 10


class ResetCode(IntEnum):
    """QUIC application error codes in RESET_STREAM and STOP_SENDING."""

    FRAME_TOO_LARGE = 1
    MALFORMED = 2
    TIMEOUT = 3
    BUSY = 4
    DAMAGED = 5


class ErrorCode(IntEnum):
    """Codes of an ``err`` response."""

    BAD_REQUEST = 1
    UNKNOWN_VERB = 2
    FORBIDDEN = 3
    TOO_LARGE = 4
    RATE_LIMITED = 5
    BUSY = 6
    NOT_FOUND = 7
    INTERNAL = 8

    @property
    def wire_name(self) -> str:
        """The name the spec gives the code, e.g. ``"not_found"``."""
        return self.name.lower()


def error_name(code: int) -> str:
    """The spec's name of an error code, or ``"unknown(N)"`` for others."""
    try:
        return ErrorCode(code).wire_name
    except ValueError:
        return f"unknown({code})"
