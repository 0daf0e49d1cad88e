"""A small strict CBOR (RFC 8949) codec for envelopes and verb bodies
(PROTOCOL.md: "CBOR rules").

The encoder writes what senders must: definite lengths, the shortest form of
every integer and length, text strings for ``str``, byte strings for
``bytes``, no tags. The decoder accepts only that (it is stricter than the
spec requires of receivers: alp's senders must obey the same rules, so any
deviation is worth seeing), and also rejects repeated map keys and bytes
after the top-level item.

Python values: ``int``, ``bytes``, ``str``, ``list``, ``dict``, ``bool``,
``None`` and (decoding only) ``float``.
"""

from __future__ import annotations

import struct
from typing import Any

MAX_DEPTH = 32

_UINT, _NINT, _BSTR, _TSTR, _ARRAY, _MAP, _TAG, _SIMPLE = range(8)


class CBORError(ValueError):
    """Bytes that are not strict CBOR, or a value that cannot be encoded."""


def _head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for info, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if value < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | info]) + struct.pack(fmt, value)
    raise CBORError(f"integer {value} does not fit in 64 bits")


def encode(value: Any) -> bytes:
    """Encode ``value`` (no floats) in the form senders must use."""
    if value is False:
        return b"\xf4"
    if value is True:
        return b"\xf5"
    if value is None:
        return b"\xf6"
    if isinstance(value, int):
        return _head(_UINT, value) if value >= 0 else _head(_NINT, -1 - value)
    if isinstance(value, bytes):
        return _head(_BSTR, len(value)) + value
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _head(_TSTR, len(raw)) + raw
    if isinstance(value, (list, tuple)):
        return _head(_ARRAY, len(value)) + b"".join(encode(item) for item in value)
    if isinstance(value, dict):
        return _head(_MAP, len(value)) + b"".join(encode(k) + encode(v) for k, v in value.items())
    raise CBORError(f"cannot encode a {type(value).__name__}")


def decode(data: bytes) -> Any:
    """Decode exactly one strict CBOR item filling all of ``data``."""
    decoder = _Decoder(data)
    value = decoder.item(0)
    if decoder.pos != len(data):
        raise CBORError(f"{len(data) - decoder.pos} bytes after the top-level item")
    return value


class _Decoder:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise CBORError("truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def argument(self, info: int) -> int:
        if info < 24:
            return info
        if info > 27:
            raise CBORError("indefinite length or reserved additional information")
        size = 1 << (info - 24)
        value = int.from_bytes(self.take(size), "big")
        if value < (24 if size == 1 else 1 << (4 * size)):
            raise CBORError("an integer or length not in its shortest form")
        return value

    def item(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise CBORError("nested too deeply")
        (initial,) = self.take(1)
        major, info = initial >> 5, initial & 31
        if major == _SIMPLE:
            return self.simple(info)
        arg = self.argument(info)
        if major == _UINT:
            return arg
        if major == _NINT:
            return -1 - arg
        if major == _BSTR:
            return self.take(arg)
        if major == _TSTR:
            try:
                return self.take(arg).decode("utf-8")
            except UnicodeDecodeError as e:
                raise CBORError("a text string that is not UTF-8") from e
        if major == _ARRAY:
            return [self.item(depth + 1) for _ in range(arg)]
        if major == _MAP:
            result: dict[Any, Any] = {}
            for _ in range(arg):
                key = self.item(depth + 1)
                if not isinstance(key, (str, int, bytes)) or isinstance(key, bool):
                    raise CBORError("a map key that is not a string or integer")
                if key in result:
                    raise CBORError(f"repeated map key {key!r}")
                result[key] = self.item(depth + 1)
            return result
        raise CBORError("a tag")

    def simple(self, info: int) -> Any:
        if info == 20:
            return False
        if info == 21:
            return True
        if info == 22:
            return None
        if info == 25:
            return struct.unpack(">e", self.take(2))[0]
        if info == 26:
            return struct.unpack(">f", self.take(4))[0]
        if info == 27:
            return struct.unpack(">d", self.take(8))[0]
        raise CBORError(f"unsupported simple value or break (additional information {info})")
