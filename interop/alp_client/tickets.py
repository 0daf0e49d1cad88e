"""Pairing tickets (PROTOCOL.md: "Pairing tickets").

A ticket is ``version u8 = 1 || inviter node id [32] || secret [32] ||
address list``, written as bech32m with prefix ``alpticket``. Both sides
derive the ticket id (sent in clear) and the XXpsk3 pre-shared key from the
secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import bech32m
from .addresses import SocketAddress, decode_address_list, encode_address_list
from .identity import NodeId
from .kdf import derive_key

TICKET_HRP = "alpticket"
TICKET_VERSION = 1
TICKET_ID_CONTEXT = "alp pairing ticket id v1"
PSK_CONTEXT = "alp pairing psk v1"


def ticket_id(secret: bytes) -> bytes:
    """``derive_key("alp pairing ticket id v1", secret)[0..16]``."""
    return derive_key(TICKET_ID_CONTEXT, secret)[:16]


def ticket_psk(secret: bytes) -> bytes:
    """``derive_key("alp pairing psk v1", secret)``."""
    return derive_key(PSK_CONTEXT, secret)


@dataclass(frozen=True)
class Ticket:
    """A pairing ticket: who invites, the 32-byte secret, and where to dial."""

    inviter: NodeId
    secret: bytes = field(repr=False)
    addresses: tuple[SocketAddress, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Ticket:
        """Parse the text form (``alpticket1...``)."""
        return cls.decode(bech32m.decode(text.strip(), TICKET_HRP))

    @classmethod
    def decode(cls, data: bytes) -> Ticket:
        """Parse the binary form; ``ValueError`` if malformed."""
        if len(data) < 66:
            raise ValueError("ticket: too short")
        if data[0] != TICKET_VERSION:
            raise ValueError(f"ticket: version {data[0]}, expected {TICKET_VERSION}")
        addresses, end = decode_address_list(data, 65)
        if end != len(data):
            raise ValueError("ticket: trailing bytes")
        return cls(NodeId(data[1:33]), data[33:65], tuple(addresses))

    def encode(self) -> bytes:
        """The binary form."""
        return bytes([TICKET_VERSION]) + self.inviter.key + self.secret + encode_address_list(list(self.addresses))

    def __str__(self) -> str:
        return bech32m.encode(TICKET_HRP, self.encode())

    @property
    def id(self) -> bytes:
        """The 16-byte ticket id sent in frame 1."""
        return ticket_id(self.secret)

    @property
    def psk(self) -> bytes:
        """The XXpsk3 pre-shared key."""
        return ticket_psk(self.secret)
