"""Bech32m (BIP-350) for node ids and tickets (PROTOCOL.md: "Node ids",
"Pairing tickets").

Bytes are regrouped 8 -> 5 bits, most significant first, zero-padded; a
decoder requires the padding bits to be zero, so each byte string has
exactly one spelling. BIP-173's 90-character limit does not apply: strings
of up to 1023 characters (the checksum's design length) are accepted.
"""

from __future__ import annotations

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
MAX_LENGTH = 1023
_BECH32M_CONST = 0x2BC830A3
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = ((checksum & 0x1FFFFFF) << 5) ^ value
        for i, generator in enumerate(_GENERATOR):
            if (top >> i) & 1:
                checksum ^= generator
    return checksum


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _to_5bit(data: bytes) -> list[int]:
    acc = bits = 0
    out = []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append((acc >> bits) & 31)
    if bits:
        out.append((acc << (5 - bits)) & 31)
    return out


def _from_5bit(values: list[int]) -> bytes:
    acc = bits = 0
    out = bytearray()
    for value in values:
        acc = (acc << 5) | value
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits >= 5:
        raise ValueError("bech32m: a whole 5-bit group of padding")
    if acc & ((1 << bits) - 1):
        raise ValueError("bech32m: non-zero padding bits")
    return bytes(out)


def encode(hrp: str, data: bytes) -> str:
    """Encode ``data`` under the human-readable part ``hrp``, in lower case."""
    values = _to_5bit(data)
    polymod = _polymod(_hrp_expand(hrp) + values + [0] * 6) ^ _BECH32M_CONST
    checksum = [(polymod >> (5 * (5 - i))) & 31 for i in range(6)]
    text = hrp + "1" + "".join(CHARSET[v] for v in values + checksum)
    if len(text) > MAX_LENGTH:
        raise ValueError(f"bech32m: {len(text)} characters, over {MAX_LENGTH}")
    return text


def decode(text: str, hrp: str) -> bytes:
    """Decode a bech32m string whose human-readable part must be ``hrp``.

    Accepts all-lower or all-upper case, rejects mixed case, a bech32 (not
    bech32m) checksum, another prefix and non-zero padding bits.
    """
    if len(text) > MAX_LENGTH:
        raise ValueError(f"bech32m: {len(text)} characters, over {MAX_LENGTH}")
    if any(not 33 <= ord(c) <= 126 for c in text):
        raise ValueError("bech32m: character outside US-ASCII 33..126")
    if text.lower() != text and text.upper() != text:
        raise ValueError("bech32m: mixed case")
    text = text.lower()
    separator = text.rfind("1")
    if separator < 1 or separator + 7 > len(text):
        raise ValueError("bech32m: no separator, or a checksum too short")
    if text[:separator] != hrp:
        raise ValueError(f"bech32m: prefix {text[:separator]!r}, expected {hrp!r}")
    try:
        values = [CHARSET.index(c) for c in text[separator + 1 :]]
    except ValueError:
        raise ValueError("bech32m: character outside the bech32 alphabet") from None
    if _polymod(_hrp_expand(hrp) + values) != _BECH32M_CONST:
        raise ValueError("bech32m: bad checksum")
    return _from_5bit(values[:-6])
