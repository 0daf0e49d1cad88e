"""The link handshake, initiator side (PROTOCOL.md: "Handshake").

Pure parts (prologue, frame 1 header, identity payloads, session secret)
are functions; :class:`InitiatorHandshake` runs the Noise state machine over
frame contents (without their ``u32`` length prefix) and does no I/O, so the
test vectors replay it byte for byte. :mod:`alp_client.link` drives it over
a QUIC stream.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from noise.connection import Keypair, NoiseConnection

from .addresses import SocketAddress, decode_address_list, encode_address_list
from .codes import CloseCode
from .identity import Identity, NodeId
from .kdf import derive_key
from .tickets import Ticket

PROTOCOL_VERSION = 1
MODE_TRUSTED = 0
MODE_PAIR = 1
NOISE_TRUSTED = b"Noise_XX_25519_ChaChaPoly_SHA256"
NOISE_PAIR = b"Noise_XXpsk3_25519_ChaChaPoly_SHA256"
PROLOGUE_PREFIX = b"alp link handshake v1"
IDENTITY_SIGNATURE_PREFIX = b"alp link identity v1"
SESSION_SECRET_CONTEXT = "alp link session secret v1"
ROLE_INITIATOR = b"I"
ROLE_RESPONDER = b"R"
MAX_DISPLAY_NAME = 64
ACCEPTED = b"\x00"


class HandshakeFailure(Exception):
    """The responder's handshake messages are not acceptable; ``code`` is the
    close code the initiator sends (2 or 8)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def frame1_header(ticket: Ticket | None = None) -> bytes:
    """The cleartext start of frame 1: ``01 00``, or ``01 01 || ticket_id``."""
    if ticket is None:
        return bytes([PROTOCOL_VERSION, MODE_TRUSTED])
    return bytes([PROTOCOL_VERSION, MODE_PAIR]) + ticket.id


def prologue(binding: bytes, header: bytes) -> bytes:
    """``"alp link handshake v1" || binding || header``."""
    if len(binding) != 32:
        raise ValueError("the channel binding is 32 bytes")
    return PROLOGUE_PREFIX + binding + header


def identity_signed_message(role: bytes, noise_static: bytes) -> bytes:
    """What an identity payload's signature covers:
    ``"alp link identity v1" || role || noise_static``."""
    return IDENTITY_SIGNATURE_PREFIX + role + noise_static


def session_secret(k1: bytes, k2: bytes) -> bytes:
    """``derive_key("alp link session secret v1", k1 || k2)`` from the raw
    Noise Split() keys in Noise order."""
    return derive_key(SESSION_SECRET_CONTEXT, k1 + k2)


def cut_display_name(name: str) -> bytes:
    """``name`` in UTF-8, cut to at most 64 bytes at a character boundary."""
    raw = name.encode("utf-8")
    if len(raw) <= MAX_DISPLAY_NAME:
        return raw
    return raw[:MAX_DISPLAY_NAME].decode("utf-8", errors="ignore").encode("utf-8")


@dataclass(frozen=True)
class IdentityPayload:
    """The identity a side sends inside the handshake."""

    node_id: NodeId
    signature: bytes
    display_name: str
    addresses: tuple[SocketAddress, ...] = ()

    @classmethod
    def create(
        cls, identity: Identity, role: bytes, noise_static: bytes, addresses: tuple[SocketAddress, ...] = ()
    ) -> IdentityPayload:
        """Sign ``noise_static`` for ``role`` with ``identity``."""
        signature = identity.sign(identity_signed_message(role, noise_static))
        name = cut_display_name(identity.display_name).decode("utf-8")
        return cls(identity.node_id, signature, name, addresses)

    def encode(self) -> bytes:
        """The fixed layout: key, signature, name length and name, addresses."""
        name = self.display_name.encode("utf-8")
        if len(name) > MAX_DISPLAY_NAME:
            raise ValueError("display name over 64 bytes")
        return self.node_id.key + self.signature + bytes([len(name)]) + name + encode_address_list(list(self.addresses))

    @classmethod
    def decode(cls, data: bytes) -> IdentityPayload:
        """Parse a payload; ``ValueError`` if malformed."""
        if len(data) < 32 + 64 + 1:
            raise ValueError("identity payload: short")
        name_len = data[96]
        if name_len > MAX_DISPLAY_NAME:
            raise ValueError(f"identity payload: display name of {name_len} bytes")
        name_end = 97 + name_len
        if name_end > len(data):
            raise ValueError("identity payload: short display name")
        name = data[97:name_end].decode("utf-8")  # UnicodeDecodeError is a ValueError
        addresses, end = decode_address_list(data, name_end)
        if end != len(data):
            raise ValueError("identity payload: trailing bytes")
        return cls(NodeId(data[:32]), data[32:96], name, tuple(addresses))

    def verify(self, role: bytes, noise_static: bytes) -> bool:
        """Whether the signature binds ``noise_static`` for ``role`` to the node id."""
        return self.node_id.verify(self.signature, identity_signed_message(role, noise_static))


class InitiatorHandshake:
    """The initiator's side of the Noise handshake, over frame contents.

    Call :meth:`frame1`, :meth:`read_frame2`, :meth:`frame3`, then
    :meth:`read_frame4`. ``ticket`` selects pair mode (XXpsk3).
    ``ephemeral_private`` fixes the ephemeral key (test vectors only).
    """

    def __init__(
        self,
        identity: Identity,
        binding: bytes,
        ticket: Ticket | None = None,
        addresses: tuple[SocketAddress, ...] = (),
        ephemeral_private: bytes | None = None,
    ) -> None:
        self.identity = identity
        self.addresses = addresses
        self.header = frame1_header(ticket)
        self.responder_static: bytes | None = None
        self.k1: bytes | None = None
        self.k2: bytes | None = None
        self._noise = NoiseConnection.from_name(NOISE_PAIR if ticket else NOISE_TRUSTED)
        self._noise.set_as_initiator()
        self._noise.set_prologue(prologue(binding, self.header))
        self._noise.set_keypair_from_private_bytes(Keypair.STATIC, identity.noise_static_private)
        if ticket is not None:
            self._noise.set_psks(psk=ticket.psk)
        with warnings.catch_warnings():
            # noiseprotocol warns when an ephemeral key is preset.
            warnings.simplefilter("ignore")
            if ephemeral_private is not None:
                self._noise.set_keypair_from_private_bytes(Keypair.EPHEMERAL, ephemeral_private)
            self._noise.start_handshake()

    def frame1(self) -> bytes:
        """Frame 1: the header, then Noise message 1 with an empty payload."""
        return self.header + bytes(self._noise.write_message(b""))

    def read_frame2(self, frame: bytes) -> IdentityPayload:
        """Read Noise message 2 and check the responder's identity payload.

        Raises :class:`HandshakeFailure` (code 2) if Noise fails, the payload
        is malformed or its signature does not cover the static key Noise
        authenticated.
        """
        try:
            payload = bytes(self._noise.read_message(frame))
        except Exception as e:  # noiseprotocol raises assorted types on bad input
            raise HandshakeFailure(CloseCode.HANDSHAKE_FAILED, f"frame 2 does not decrypt: {e!r}") from e
        static = bytes(self._noise.noise_protocol.handshake_state.rs.public_bytes)
        try:
            responder = IdentityPayload.decode(payload)
        except ValueError as e:
            raise HandshakeFailure(CloseCode.HANDSHAKE_FAILED, f"responder identity payload: {e}") from e
        if not responder.verify(ROLE_RESPONDER, static):
            raise HandshakeFailure(CloseCode.HANDSHAKE_FAILED, "responder identity signature does not verify")
        self.responder_static = static
        return responder

    def frame3(self) -> bytes:
        """Frame 3: Noise message 3 carrying this side's identity payload.
        Completes the Noise handshake (:attr:`k1`, :attr:`k2` are set)."""
        payload = IdentityPayload.create(
            self.identity, ROLE_INITIATOR, self.identity.noise_static_public, self.addresses
        )
        message = bytes(self._noise.write_message(payload.encode()))
        self.k1 = self._noise.noise_protocol.cipher_state_encrypt.k
        self.k2 = self._noise.noise_protocol.cipher_state_decrypt.k
        return message

    def read_frame4(self, frame: bytes) -> None:
        """Check frame 4: one transport message under ``k2`` whose plaintext is
        ``0x00`` (accepted). Raises :class:`HandshakeFailure` otherwise."""
        try:
            plaintext = self._noise.decrypt(bytes(frame))
        except Exception as e:  # noiseprotocol raises assorted types on bad input
            raise HandshakeFailure(CloseCode.HANDSHAKE_FAILED, f"frame 4 does not decrypt: {e!r}") from e
        if plaintext != ACCEPTED:
            raise HandshakeFailure(CloseCode.HANDSHAKE_FAILED, f"frame 4 says {plaintext.hex()}, not accepted (00)")

    @property
    def session_secret(self) -> bytes:
        """The link's session secret (after :meth:`frame3`)."""
        if self.k1 is None or self.k2 is None:
            raise RuntimeError("the handshake has not finished")
        return session_secret(self.k1, self.k2)
