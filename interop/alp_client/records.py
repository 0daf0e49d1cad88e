"""Encrypted records of a blob transfer (PROTOCOL.md: "Records").

The part's stream is cut into records of 65536 plaintext bytes (the last
one shorter, possibly empty), each sealed with ChaCha20-Poly1305 under a
per-transfer key, a nonce of the record counter and a last-record flag, and
associated data naming the blob and the part.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .errors import ProtocolError
from .kdf import derive_key

RECORD_PLAINTEXT = 65536
TAG_SIZE = 16
RECORD_FRAME = RECORD_PLAINTEXT + TAG_SIZE
TRANSFER_KEY_CONTEXT = "alp blob transfer key v1"
RECORD_AD_PREFIX = b"alp blob record v1"


def transfer_key(session_secret: bytes, transfer_id: bytes) -> bytes:
    """``derive_key("alp blob transfer key v1", session_secret || transfer_id)``."""
    return derive_key(TRANSFER_KEY_CONTEXT, session_secret + transfer_id)


def record_nonce(counter: int, last: bool) -> bytes:
    """``counter u64 || 00 00 00 || last``."""
    return struct.pack(">Q", counter) + b"\0\0\0" + (b"\x01" if last else b"\x00")


def record_ad(blob_hash: bytes, start: int, end: int, size: int) -> bytes:
    """``"alp blob record v1" || hash || start u64 || end u64 || size u64``,
    ``[start, end)`` being the part as widened."""
    return RECORD_AD_PREFIX + blob_hash + struct.pack(">QQQ", start, end, size)


def seal_record(key: bytes, counter: int, last: bool, ad: bytes, plaintext: bytes) -> bytes:
    """One record: ciphertext then the 16-byte tag."""
    return ChaCha20Poly1305(key).encrypt(record_nonce(counter, last), plaintext, ad)


class RecordOpener:
    """Opens a transfer's records in order.

    A record shorter than a full one (65552 bytes) is the final one; nothing
    may be opened after it.
    """

    def __init__(self, key: bytes, ad: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._ad = ad
        self.counter = 0
        self.finished = False

    def open(self, record: bytes) -> tuple[bytes, bool]:
        """Decrypt the next record; returns its plaintext and whether it is
        the final one. Raises :class:`ProtocolError` if it does not open."""
        if self.finished:
            raise ProtocolError("a record after the final record")
        if len(record) < TAG_SIZE:
            raise ProtocolError(f"record {self.counter}: {len(record)} bytes, shorter than a tag")
        last = len(record) < RECORD_FRAME
        try:
            plaintext = self._aead.decrypt(record_nonce(self.counter, last), record, self._ad)
        except InvalidTag:
            raise ProtocolError(f"record {self.counter} does not authenticate") from None
        self.counter += 1
        self.finished = last
        return plaintext, last
