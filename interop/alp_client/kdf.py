"""BLAKE3 hashing and key derivation (PROTOCOL.md: "Conventions").

``derive_key(context, material)`` is BLAKE3 in key-derivation mode with a
32-byte output; ``blake3_hash`` is the plain 32-byte hash. Both come from
the ``blake3`` package (the official implementation's bindings).
"""

from __future__ import annotations

import blake3


def derive_key(context: str, material: bytes) -> bytes:
    """BLAKE3 ``derive_key(context, material)``, 32 bytes."""
    return blake3.blake3(material, derive_key_context=context).digest()


def blake3_hash(data: bytes) -> bytes:
    """The plain 32-byte BLAKE3 hash of ``data``."""
    return blake3.blake3(data).digest()
