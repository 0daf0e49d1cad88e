"""Node ids and identities (PROTOCOL.md: "Node ids", "Handshake": static key).

A node is its Ed25519 public key; its text form is bech32m with prefix
``alp``. An :class:`Identity` holds the Ed25519 seed and derives everything
else from it, as alp does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from . import bech32m
from .kdf import derive_key

NODE_ID_HRP = "alp"
NOISE_STATIC_KEY_CONTEXT = "alp link noise static key v1"

_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def is_valid_ed25519_point(key: bytes) -> bool:
    """Whether 32 bytes decode to a point on Ed25519 by RFC 8032 §5.1.3
    (``y`` below p; no "negative zero" ``x``)."""
    if len(key) != 32:
        return False
    y = int.from_bytes(key, "little") & ((1 << 255) - 1)
    sign = key[31] >> 7
    if y >= _P:
        return False
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    check = v * x * x % _P
    if check == (-u) % _P and check != u:
        x = x * _SQRT_M1 % _P
    elif check != u:
        return False  # no square root: not on the curve
    return not (x == 0 and sign == 1)


@dataclass(frozen=True)
class NodeId:
    """A node id: a valid Ed25519 public key. ``str()`` gives its text form."""

    key: bytes

    def __post_init__(self) -> None:
        if not is_valid_ed25519_point(self.key):
            raise ValueError("node id: not a valid Ed25519 public key")

    @classmethod
    def parse(cls, text: str) -> NodeId:
        """Parse the text form (``alp1`` + 58 characters)."""
        data = bech32m.decode(text, NODE_ID_HRP)
        if len(data) != 32:
            raise ValueError(f"node id: {len(data)} bytes, expected 32")
        return cls(data)

    def __str__(self) -> str:
        return bech32m.encode(NODE_ID_HRP, self.key)

    def __repr__(self) -> str:
        return f"NodeId({self})"

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.key).verify(signature, message)
        except Exception:  # cryptography raises InvalidSignature, or ValueError on odd keys
            return False
        return True


@dataclass(frozen=True)
class Identity:
    """A node's own identity: its Ed25519 seed (the RFC 8032 secret key) and
    display name (at most 64 bytes are sent; longer names are cut).

    The Noise static key is derived from the seed as alp derives it, so the
    handshake test vectors replay with this class.
    """

    seed: bytes = field(repr=False)
    display_name: str = ""

    def __post_init__(self) -> None:
        if len(self.seed) != 32:
            raise ValueError("identity: the seed must be 32 bytes")

    @classmethod
    def from_seed(cls, seed: bytes, display_name: str = "") -> Identity:
        """The identity with this 32-byte Ed25519 seed."""
        return cls(seed, display_name)

    @classmethod
    def generate(cls, display_name: str = "") -> Identity:
        """A new random identity."""
        return cls(os.urandom(32), display_name)

    @property
    def node_id(self) -> NodeId:
        """This identity's node id (its Ed25519 public key)."""
        return NodeId(Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes_raw())

    @property
    def noise_static_private(self) -> bytes:
        """``derive_key("alp link noise static key v1", seed)``."""
        return derive_key(NOISE_STATIC_KEY_CONTEXT, self.seed)

    @property
    def noise_static_public(self) -> bytes:
        """The X25519 public key of :attr:`noise_static_private`."""
        private = X25519PrivateKey.from_private_bytes(self.noise_static_private)
        return private.public_key().public_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)
