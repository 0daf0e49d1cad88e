"""Blob tickets and folder manifests (PROTOCOL.md: "Blob tickets",
"Folders"), written from the spec alone.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from . import bech32m
from .addresses import SocketAddress, decode_address_list, encode_address_list
from .identity import NodeId
from .kdf import derive_key

BLOB_TICKET_HRP = "alpblob"
BLOB_TICKET_DIGEST_CONTEXT = "alp blob ticket v1"
MANIFEST_MAGIC = b"ALPCOLL1"


def ticket_digest(secret: bytes) -> bytes:
    """What the sender keeps of a ticket's secret."""
    return derive_key(BLOB_TICKET_DIGEST_CONTEXT, secret)


def check_name(name: str) -> None:
    """``ValueError`` unless ``name`` can name one file in a folder."""
    if name in ("", ".", ".."):
        raise ValueError("a name is needed, not '.' or '..'")
    if len(name.encode()) > 255:
        raise ValueError("longer than 255 bytes")
    if "/" in name:
        raise ValueError("it holds a '/'")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
        raise ValueError("it holds a control character")


def check_path(path: str) -> None:
    """``ValueError`` unless ``path`` stays inside the folder."""
    if len(path.encode()) > 4096 or path.startswith("/"):
        raise ValueError("too long or absolute")
    for part in path.split("/"):
        check_name(part)


@dataclass(frozen=True)
class BlobTicket:
    sender: NodeId
    secret: bytes = field(repr=False)
    hash: bytes
    size: int
    folder: bool
    name: str
    addresses: tuple[SocketAddress, ...] = ()

    def encode(self) -> bytes:
        name = self.name.encode()[:255].decode(errors="ignore").encode()
        return (
            bytes([1])
            + self.sender.key
            + self.secret
            + self.hash
            + struct.pack(">QBB", self.size, 1 if self.folder else 0, len(name))
            + name
            + encode_address_list(list(self.addresses))
        )

    def __str__(self) -> str:
        return bech32m.encode(BLOB_TICKET_HRP, self.encode())

    @classmethod
    def parse(cls, text: str) -> BlobTicket:
        data = bech32m.decode(text.strip(), BLOB_TICKET_HRP)
        if len(data) < 107 or data[0] != 1:
            raise ValueError("blob ticket: too short or unknown version")
        size, kind, name_len = struct.unpack(">QBB", data[97:107])
        if kind not in (0, 1):
            raise ValueError("blob ticket: unknown kind")
        name = data[107 : 107 + name_len]
        if len(name) != name_len:
            raise ValueError("blob ticket: name cut short")
        addresses, end = decode_address_list(data, 107 + name_len)
        if end != len(data):
            raise ValueError("blob ticket: trailing bytes")
        return cls(NodeId(data[1:33]), data[33:65], data[65:97], size, kind == 1, name.decode(), tuple(addresses))


@dataclass(frozen=True)
class FolderEntry:
    path: str
    mode: int
    size: int
    hash: bytes


def encode_manifest(entries: list[FolderEntry]) -> bytes:
    entries = sorted(entries, key=lambda e: e.path.encode())
    out = MANIFEST_MAGIC + struct.pack(">I", len(entries))
    for e in entries:
        check_path(e.path)
        path = e.path.encode()
        out += struct.pack(">H", len(path)) + path + struct.pack(">IQ", e.mode & 0o777, e.size) + e.hash
    return out


def decode_manifest(data: bytes) -> list[FolderEntry]:
    if not data.startswith(MANIFEST_MAGIC) or len(data) < 12:
        raise ValueError("not a folder manifest")
    (count,) = struct.unpack(">I", data[8:12])
    at, out = 12, []
    for _ in range(count):
        if at + 2 > len(data):
            raise ValueError("truncated")
        (n,) = struct.unpack(">H", data[at : at + 2])
        path = data[at + 2 : at + 2 + n].decode()
        at += 2 + n
        if at + 44 > len(data):
            raise ValueError("truncated")
        mode, size = struct.unpack(">IQ", data[at : at + 12])
        digest = data[at + 12 : at + 44]
        at += 44
        check_path(path)
        if mode & ~0o777:
            raise ValueError("mode has bits other than permissions")
        if out and out[-1].path.encode() >= path.encode():
            raise ValueError("not sorted, or a path twice")
        out.append(FolderEntry(path, mode, size, digest))
    if at != len(data):
        raise ValueError("trailing bytes")
    return out
