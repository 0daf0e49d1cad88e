"""Address lists, as carried in identity payloads and tickets
(PROTOCOL.md: "Identity payload"): a count byte (at most 8), then per
address ``family u8`` (4 or 6), the IP (4 or 16 bytes) and ``port u16``.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

MAX_ADDRESSES = 8

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class SocketAddress:
    """An IP address and UDP port."""

    ip: IPAddress
    port: int

    @classmethod
    def parse(cls, text: str) -> SocketAddress:
        """Parse ``"127.0.0.1:7117"`` or ``"[::1]:7117"``."""
        host, sep, port = text.rpartition(":")
        if not sep:
            raise ValueError(f"address {text!r} has no port")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return cls(ipaddress.ip_address(host), int(port))

    def __str__(self) -> str:
        host = f"[{self.ip}]" if self.ip.version == 6 else str(self.ip)
        return f"{host}:{self.port}"

    def encode(self) -> bytes:
        """``family u8 || ip || port u16``."""
        return bytes([self.ip.version]) + self.ip.packed + struct.pack(">H", self.port)


def encode_address_list(addresses: list[SocketAddress]) -> bytes:
    """The count byte, then each address."""
    if len(addresses) > MAX_ADDRESSES:
        raise ValueError(f"{len(addresses)} addresses, at most {MAX_ADDRESSES} allowed")
    return bytes([len(addresses)]) + b"".join(a.encode() for a in addresses)


def decode_address_list(data: bytes, offset: int) -> tuple[list[SocketAddress], int]:
    """Decode the list starting at ``data[offset]``; returns it and the offset
    after it. Raises ``ValueError`` if it is malformed or short."""
    if offset >= len(data):
        raise ValueError("address list: no count byte")
    count = data[offset]
    offset += 1
    if count > MAX_ADDRESSES:
        raise ValueError(f"address list: count {count} over {MAX_ADDRESSES}")
    addresses = []
    for _ in range(count):
        if offset >= len(data):
            raise ValueError("address list: short")
        family = data[offset]
        ip_type: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]
        if family == 4:
            ip_len, ip_type = 4, ipaddress.IPv4Address
        elif family == 6:
            ip_len, ip_type = 16, ipaddress.IPv6Address
        else:
            raise ValueError(f"address list: family {family}")
        end = offset + 1 + ip_len + 2
        if end > len(data):
            raise ValueError("address list: short")
        ip = ip_type(data[offset + 1 : offset + 1 + ip_len])
        (port,) = struct.unpack(">H", data[end - 2 : end])
        addresses.append(SocketAddress(ip, port))
        offset = end
    return addresses, offset
