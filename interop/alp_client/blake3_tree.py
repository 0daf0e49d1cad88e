"""BLAKE3 internals that the ``blake3`` package does not expose: chaining
values of subtrees and parent nodes (the Rust crate's ``blake3::hazmat``).

Pure Python, about 10 ms per 16 KiB: fine for tests and small blobs. Plain
hashes and ``derive_key`` come from the ``blake3`` package (see
:mod:`alp_client.kdf`); this module is checked against it in the tests.
"""

from __future__ import annotations

import struct

IV = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)
CHUNK_START = 1
CHUNK_END = 2
PARENT = 4
ROOT = 8
CHUNK_LEN = 1024
BLOCK_LEN = 64
_PERMUTATION = (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
_M32 = 0xFFFFFFFF


def _schedules() -> tuple[tuple[int, ...], ...]:
    order = list(range(16))
    rounds = []
    for _ in range(7):
        rounds.append(tuple(order))
        order = [order[p] for p in _PERMUTATION]
    return tuple(rounds)


_SCHEDULES = _schedules()


def _g(a: int, b: int, c: int, d: int, x: int, y: int) -> tuple[int, int, int, int]:
    a = (a + b + x) & _M32
    d ^= a
    d = ((d >> 16) | (d << 16)) & _M32
    c = (c + d) & _M32
    b ^= c
    b = ((b >> 12) | (b << 20)) & _M32
    a = (a + b + y) & _M32
    d ^= a
    d = ((d >> 8) | (d << 24)) & _M32
    c = (c + d) & _M32
    b ^= c
    b = ((b >> 7) | (b << 25)) & _M32
    return a, b, c, d


def compress(cv: tuple[int, ...], block: bytes, counter: int, block_len: int, flags: int) -> tuple[int, ...]:
    """BLAKE3's compression function; returns the 8-word chaining value."""
    m = struct.unpack("<16I", block.ljust(BLOCK_LEN, b"\0"))
    s0, s1, s2, s3, s4, s5, s6, s7 = cv
    s8, s9, s10, s11 = IV[0], IV[1], IV[2], IV[3]
    s12, s13, s14, s15 = counter & _M32, (counter >> 32) & _M32, block_len, flags
    for sc in _SCHEDULES:
        s0, s4, s8, s12 = _g(s0, s4, s8, s12, m[sc[0]], m[sc[1]])
        s1, s5, s9, s13 = _g(s1, s5, s9, s13, m[sc[2]], m[sc[3]])
        s2, s6, s10, s14 = _g(s2, s6, s10, s14, m[sc[4]], m[sc[5]])
        s3, s7, s11, s15 = _g(s3, s7, s11, s15, m[sc[6]], m[sc[7]])
        s0, s5, s10, s15 = _g(s0, s5, s10, s15, m[sc[8]], m[sc[9]])
        s1, s6, s11, s12 = _g(s1, s6, s11, s12, m[sc[10]], m[sc[11]])
        s2, s7, s8, s13 = _g(s2, s7, s8, s13, m[sc[12]], m[sc[13]])
        s3, s4, s9, s14 = _g(s3, s4, s9, s14, m[sc[14]], m[sc[15]])
    return (s0 ^ s8, s1 ^ s9, s2 ^ s10, s3 ^ s11, s4 ^ s12, s5 ^ s13, s6 ^ s14, s7 ^ s15)


def _chunk_cv(chunk: bytes, counter: int) -> bytes:
    """Chaining value of one chunk of at most 1024 bytes with chunk counter
    ``counter``."""
    cv: tuple[int, ...] = IV
    blocks = max(1, -(-len(chunk) // BLOCK_LEN))
    for i in range(blocks):
        block = chunk[i * BLOCK_LEN : (i + 1) * BLOCK_LEN]
        flags = CHUNK_START if i == 0 else 0
        if i == blocks - 1:
            flags |= CHUNK_END
        cv = compress(cv, block, counter, len(block), flags)
    return struct.pack("<8I", *cv)


def parent_cv(left: bytes, right: bytes, root: bool = False) -> bytes:
    """Value of a parent node from its children's chaining values: its
    chaining value, or with ``root`` the hash of the whole input."""
    flags = PARENT | (ROOT if root else 0)
    # Plain hashing: the key words are the IV.
    return struct.pack("<8I", *compress(IV, left + right, 0, BLOCK_LEN, flags))


def subtree_cv(data: bytes, chunk_counter: int) -> bytes:
    """Chaining value of the (non-root) BLAKE3 subtree over ``data``, whose
    first chunk has counter ``chunk_counter``. ``data`` must be a valid
    subtree there (Rust: ``set_input_offset(1024 * chunk_counter)``,
    ``update(data)``, ``finalize_non_root()``)."""
    if len(data) <= CHUNK_LEN:
        return _chunk_cv(data, chunk_counter)
    chunks = -(-len(data) // CHUNK_LEN)
    left_chunks = 1 << ((chunks - 1).bit_length() - 1)  # largest power of two below
    split = left_chunks * CHUNK_LEN
    return parent_cv(subtree_cv(data[:split], chunk_counter), subtree_cv(data[split:], chunk_counter + left_chunks))
