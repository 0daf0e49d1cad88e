"""Request and response envelopes (PROTOCOL.md: "Requests").

::

    request  = { "verb": tstr (<= 32 bytes), "id": uint, "body": bstr }
    response = { "id": uint, "ok": bstr }
             / { "id": uint, "err": { "code": uint, "message": tstr (<= 1024 bytes) } }

``body`` and ``ok`` hold the verb's own CBOR value, encoded on its own.
:func:`check_map` validates such values: required and optional keys, each
with its type; unknown keys are rejected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import cbor
from .errors import ProtocolError, RemoteError

MAX_VERB = 32
MAX_MESSAGE = 1024
MAX_U64 = (1 << 64) - 1


def is_uint(value: Any) -> bool:
    """``uint``: an unsigned integer that fits in 64 bits (not a ``bool``)."""
    return type(value) is int and 0 <= value <= MAX_U64


def is_tstr(value: Any) -> bool:
    """``tstr``."""
    return type(value) is str


def is_bstr(value: Any) -> bool:
    """``bstr``."""
    return type(value) is bytes


def is_map(value: Any) -> bool:
    """A map."""
    return type(value) is dict


def is_range(value: Any) -> bool:
    """``[uint, uint]``."""
    return type(value) is list and len(value) == 2 and all(is_uint(v) for v in value)


def is_tstr_list(value: Any) -> bool:
    """``[* tstr]``."""
    return type(value) is list and all(is_tstr(v) for v in value)


def check_map(
    value: Any,
    what: str,
    required: dict[str, Callable[[Any], bool]],
    optional: dict[str, Callable[[Any], bool]] | None = None,
) -> dict[str, Any]:
    """Check that ``value`` is a map with exactly the ``required`` keys and
    perhaps some ``optional`` ones, each value passing its type check.
    Returns it; raises :class:`ProtocolError` naming ``what`` otherwise."""
    optional = optional or {}
    if type(value) is not dict:
        raise ProtocolError(f"{what}: not a map")
    for key in value:
        if key not in required and key not in optional:
            raise ProtocolError(f"{what}: unknown key {key!r}")
    for key in required:
        if key not in value:
            raise ProtocolError(f"{what}: missing key {key!r}")
    for key, check in {**required, **optional}.items():
        if key in value and not check(value[key]):
            raise ProtocolError(f"{what}: {key!r} has the wrong type: {value[key]!r}")
    return value


def decode_value(data: bytes, what: str) -> Any:
    """Decode strict CBOR, reporting failures as :class:`ProtocolError`."""
    try:
        return cbor.decode(data)
    except cbor.CBORError as e:
        raise ProtocolError(f"{what}: {e}") from e


def encode_request(verb: str, request_id: int, body: bytes) -> bytes:
    """A request envelope (the frame's payload)."""
    if len(verb.encode("utf-8")) > MAX_VERB:
        raise ValueError(f"verb {verb!r} over {MAX_VERB} bytes")
    return cbor.encode({"verb": verb, "id": request_id, "body": body})


@dataclass(frozen=True)
class Response:
    """A decoded response envelope: ``ok`` holds the encoded body of a
    success, ``error`` the :class:`RemoteError` of a failure."""

    id: int
    ok: bytes | None
    error: RemoteError | None

    def body(self, what: str) -> Any:
        """The decoded ``ok`` value; raises the :class:`RemoteError` of an
        ``err`` response."""
        if self.error is not None:
            raise self.error
        assert self.ok is not None
        return decode_value(self.ok, what)


def decode_response(payload: bytes) -> Response:
    """Decode a response envelope strictly (:class:`ProtocolError` if it is
    not one)."""
    value = decode_value(payload, "response envelope")
    if type(value) is dict and "err" in value:
        envelope = check_map(value, "response envelope", {"id": is_uint, "err": is_map})
        err = check_map(envelope["err"], "response err", {"code": is_uint, "message": is_tstr})
        if len(err["message"].encode("utf-8")) > MAX_MESSAGE:
            raise ProtocolError(f"response err: message over {MAX_MESSAGE} bytes")
        return Response(envelope["id"], None, RemoteError(err["code"], err["message"]))
    envelope = check_map(value, "response envelope", {"id": is_uint, "ok": is_bstr})
    return Response(envelope["id"], envelope["ok"], None)
