"""The blob hash tree over 16 KiB groups, and the stream of a part
(PROTOCOL.md: "Blobs", "Hash tree").

A blob of ``n = max(1, ceil(size / 16384))`` groups has ``n - 1`` parents.
A part ``[g0, g1)`` travels as the pre-order walk of the tree from the root,
skipping subtrees that hold none of its groups: each parent on the way as
its 64 bytes ``left_cv || right_cv``, each group as its bytes.
:class:`StreamVerifier` checks such a stream item by item as it arrives.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .blake3_tree import parent_cv, subtree_cv
from .errors import ProtocolError
from .kdf import blake3_hash

GROUP_SIZE = 16384
CHUNKS_PER_GROUP = 16
PARENT_SIZE = 64


def group_count(size: int) -> int:
    """``max(1, ceil(size / 16384))``."""
    return max(1, -(-size // GROUP_SIZE))


def group_bytes(size: int, group: int) -> tuple[int, int]:
    """The byte range ``[start, end)`` of ``group`` in a blob of ``size``."""
    return group * GROUP_SIZE, min((group + 1) * GROUP_SIZE, size)


def part_bytes(size: int, g0: int, g1: int) -> tuple[int, int]:
    """The byte range ``[g0 * 16384, min(g1 * 16384, size))`` of a part."""
    return g0 * GROUP_SIZE, min(g1 * GROUP_SIZE, size)


def widen(start: int, end: int, size: int) -> tuple[int, int]:
    """The groups ``[g0, g1)`` covering the byte range ``[start, end)``.

    Raises ``ValueError`` if the range is outside the blob: it must satisfy
    ``start < min(end, size)``, or for an empty blob ``start == 0``.
    """
    if size == 0:
        if start != 0:
            raise ValueError("range outside the empty blob")
        return 0, 1
    stop = min(end, size)
    if not start < stop:
        raise ValueError(f"range [{start}, {end}) is outside a blob of {size} bytes")
    return start // GROUP_SIZE, -(-stop // GROUP_SIZE)


def group_value(data: bytes, group: int) -> bytes:
    """``cv(g)``: the chaining value of the BLAKE3 subtree of group ``group``
    (its chunks counted from ``16 * group``), for blobs of two or more groups."""
    return subtree_cv(data, CHUNKS_PER_GROUP * group)


def _left_len(length: int) -> int:
    """Groups in the left child of a node spanning ``length >= 2`` groups:
    the largest power of two below ``length``."""
    return 1 << ((length - 1).bit_length() - 1)


@dataclass(frozen=True)
class Item:
    """One element of a part's stream: a parent spanning groups
    ``[start, start + length)`` (``length >= 2``), or the group ``start``
    (``length == 1``)."""

    start: int
    length: int

    @property
    def is_group(self) -> bool:
        return self.length == 1


def stream_items(n: int, g0: int, g1: int) -> Iterator[Item]:
    """The items of the stream of groups ``[g0, g1)`` of an ``n``-group tree,
    in pre-order."""

    def walk(start: int, length: int) -> Iterator[Item]:
        if start >= g1 or start + length <= g0:
            return
        yield Item(start, length)
        if length > 1:
            left = _left_len(length)
            yield from walk(start, left)
            yield from walk(start + left, length - left)

    return walk(0, n)


def stream_length(size: int, g0: int, g1: int) -> int:
    """Bytes in the stream of the part ``[g0, g1)``."""
    n = group_count(size)
    total = 0
    for item in stream_items(n, g0, g1):
        if item.is_group:
            start, end = group_bytes(size, item.start)
            total += end - start
        else:
            total += PARENT_SIZE
    return total


class HashTree:
    """The whole tree of a blob held in memory: group values, parents in
    pre-order, the hash, and the stream of any part (what a sender sends)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.n = group_count(self.size)
        self.group_values = (
            [group_value(data[s:e], g) for g, (s, e) in ((g, group_bytes(self.size, g)) for g in range(self.n))]
            if self.n > 1
            else []
        )
        self.parents: dict[tuple[int, int], bytes] = {}
        self.hash = blake3_hash(data) if self.n == 1 else self._value(0, self.n)

    def _value(self, start: int, length: int) -> bytes:
        """Value of the node spanning ``[start, start + length)``, recording
        parents as it goes (for the root: the blob's hash)."""
        if length == 1:
            return self.group_values[start]
        left = _left_len(length)
        children = self._value(start, left) + self._value(start + left, length - left)
        self.parents[(start, length)] = children
        return parent_cv(children[:32], children[32:], root=length == self.n)

    def parents_in_preorder(self) -> list[bytes]:
        """The ``n - 1`` parents, slot 0 (the root) first."""
        return [self.parents[(i.start, i.length)] for i in stream_items(self.n, 0, self.n) if not i.is_group]

    def stream(self, g0: int, g1: int) -> bytes:
        """The stream of the part ``[g0, g1)``."""
        out = bytearray()
        for item in stream_items(self.n, g0, g1):
            if item.is_group:
                start, end = group_bytes(self.size, item.start)
                out += self.data[start:end]
            else:
                out += self.parents[(item.start, item.length)]
        return bytes(out)


class StreamVerifier:
    """Checks the stream of the part ``[g0, g1)`` of the blob ``blob_hash``
    of ``size`` bytes as bytes arrive, before any byte is used.

    :meth:`feed` takes plaintext in any pieces and raises
    :class:`ProtocolError` at the first item that does not verify, or at any
    byte past the last item; :meth:`finish` checks that nothing is missing
    and returns the part's data.
    """

    def __init__(self, blob_hash: bytes, size: int, g0: int, g1: int) -> None:
        self.size = size
        self.n = group_count(size)
        self._items = list(stream_items(self.n, g0, g1))
        self._next = 0
        self._expected: dict[tuple[int, int], bytes] = {(0, self.n): blob_hash}
        self._buffer = bytearray()
        self._data = bytearray()

    def _item_size(self, item: Item) -> int:
        if not item.is_group:
            return PARENT_SIZE
        start, end = group_bytes(self.size, item.start)
        return end - start

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the stream, verifying every item they complete."""
        self._buffer += chunk
        while self._next < len(self._items):
            item = self._items[self._next]
            size = self._item_size(item)
            if len(self._buffer) < size:
                return
            body = bytes(self._buffer[:size])
            del self._buffer[:size]
            self._verify(item, body)
            self._next += 1
        if self._buffer:
            raise ProtocolError(f"{len(self._buffer)} bytes after the end of the part's stream")

    def _verify(self, item: Item, body: bytes) -> None:
        expected = self._expected.pop((item.start, item.length))
        is_root = item.start == 0 and item.length == self.n
        if item.is_group:
            if self.n == 1:
                actual = blake3_hash(body)
            else:
                actual = group_value(body, item.start)
            if actual != expected:
                raise ProtocolError(f"group {item.start} does not match the hash tree")
            self._data += body
            return
        if parent_cv(body[:32], body[32:], root=is_root) != expected:
            what = "the root parent does not hash to the blob's hash" if is_root else "a parent does not verify"
            raise ProtocolError(f"{what} (groups {item.start}..{item.start + item.length})")
        left = _left_len(item.length)
        self._expected[(item.start, left)] = body[:32]
        self._expected[(item.start + left, item.length - left)] = body[32:]

    def finish(self) -> bytes:
        """Check that the whole stream arrived; returns the part's bytes."""
        self.feed(b"")  # verifies a zero-length item: the empty blob's group
        if self._next < len(self._items) or self._buffer:
            raise ProtocolError("the part's stream is incomplete")
        return bytes(self._data)
