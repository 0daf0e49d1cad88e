"""alp_client against a real `alp serve` on loopback.

The node runs in a temporary home (``alp --home DIR``) and is stopped with
SIGTERM at the end. The binary is ``$ALP_BIN``, by default
``../target/debug/alp`` relative to interop/. Every network wait has a
timeout, and every test is bounded as a whole.

Run: python -m unittest tests.test_against_alp (from interop/).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import subprocess
import tempfile
import time
import unittest
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import blake3
from aioquic.tls import CipherSuite

from alp_client import (
    CloseCode,
    ErrorCode,
    HandshakeRefused,
    Identity,
    Link,
    LinkClosed,
    NodeId,
    RemoteError,
    ResetCode,
    SocketAddress,
    StreamReset,
    Ticket,
    connect,
    pair,
)
from alp_client import bech32m, cbor, transport
from alp_client.framing import encode_frame, read_frame
from alp_client.tickets import ticket_psk
from alp_client.tree import GROUP_SIZE

INTEROP = Path(__file__).resolve().parents[1]
ALP_BIN = os.environ.get("ALP_BIN", str(INTEROP.parent / "target" / "debug" / "alp"))
TEST_TIMEOUT = 30.0
CLI_TIMEOUT = 30.0
TRUSTED_NAME = "py-trusted"


def bounded(test: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    """Fail an async test that runs longer than TEST_TIMEOUT."""

    @functools.wraps(test)
    async def run(self: Any) -> None:
        await asyncio.wait_for(test(self), TEST_TIMEOUT)

    return run


class Node:
    """An `alp` profile in a temporary home, and its `alp serve` process."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._address: SocketAddress | None = None
        self._node_id: NodeId | None = None

    @property
    def dir(self) -> Path:
        """The temporary directory holding the home and test files."""
        assert self._dir is not None, "Node.init() first"
        return Path(self._dir.name)

    @property
    def node_id(self) -> NodeId:
        """The profile's node id, as `alp id` prints it."""
        assert self._node_id is not None, "Node.init() first"
        return self._node_id

    @property
    def address(self) -> SocketAddress:
        """Where `alp serve` listens."""
        assert self._address is not None, "Node.start() first"
        return self._address

    def alp(self, *args: str) -> str:
        """Run ``alp --home HOME ARGS...``; returns its stdout."""
        done = subprocess.run(
            [self.binary, "--home", str(self.dir / "home"), *args],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise AssertionError(f"alp {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done.stdout

    def alp_json(self, *args: str) -> Any:
        """Run ``alp --home HOME --json ARGS...`` and parse its output."""
        return json.loads(self.alp("--json", *args))

    def init(self) -> None:
        """Create the home and the profile (`alp init`)."""
        self._dir = tempfile.TemporaryDirectory(prefix="alp-interop-")
        self.alp("init")
        self._node_id = NodeId.parse(self.alp("id").strip())

    def start(self) -> None:
        """Start `alp serve` on 127.0.0.1, port chosen by the system; waits
        for the bound address, the first line it prints."""
        stdout_path, stderr_path = self.dir / "serve.out", self.dir / "serve.err"
        with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
            self._process = subprocess.Popen(
                [self.binary, "--home", str(self.dir / "home"), "serve", "--listen", "127.0.0.1:0"],
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self._process.poll() is None:
            lines = stdout_path.read_text().splitlines(keepends=True)
            if lines and lines[0].endswith("\n"):
                self._address = SocketAddress.parse(lines[0].strip())
                return
            time.sleep(0.05)
        raise AssertionError(f"alp serve printed no address: {stderr_path.read_text()}")

    def stop(self) -> None:
        """SIGTERM `alp serve` (SIGKILL if it lingers) and remove the home."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        if self._dir is not None:
            self._dir.cleanup()


@dataclass(frozen=True)
class Blob:
    data: bytes
    hash: str


NODE = Node(ALP_BIN)
TRUSTED = Identity.generate("py-interop")
BLOBS: dict[str, Blob] = {}


def setUpModule() -> None:
    try:
        NODE.init()
        NODE.alp("peer", "add", TRUSTED_NAME, str(TRUSTED.node_id))
        NODE.alp("peer", "allow", TRUSTED_NAME, "blob.get")
        contents = {
            "empty": b"",
            "100 bytes": bytes(i % 251 for i in range(100)),
            # The spec's hash-tree vector blob: three groups and 100 bytes.
            "3 groups + 100": bytes(i % 251 for i in range(49252)),
            # 4 groups whose whole stream (data + 3 parents) is exactly one
            # record's plaintext, so it must end with an empty final record.
            "stream of 65536": bytes(i % 253 for i in range(65536 - 3 * 64)),
            "300 KiB": blake3.blake3(b"alp interop").digest(length=300 * 1024 + 7),
            "not shared": b"not shared with anyone" * 10,
        }
        for name, data in contents.items():
            path = NODE.dir / f"blob-{len(BLOBS)}"
            path.write_bytes(data)
            added = NODE.alp_json("blob", "add", str(path))
            assert added["size"] == len(data), added
            BLOBS[name] = Blob(data, added["hash"])
            if name != "not shared":
                NODE.alp("blob", "share", "--with", TRUSTED_NAME, added["hash"])
        NODE.start()
    except BaseException:
        NODE.stop()
        raise


def tearDownModule() -> None:
    NODE.stop()


async def trusted_link() -> Link:
    return await connect(NODE.address, TRUSTED, NODE.node_id)


class TrustedLink(unittest.IsolatedAsyncioTestCase):
    @bounded
    async def test_ping_and_info(self) -> None:
        async with await trusted_link() as link:
            self.assertEqual(link.peer_node_id, NODE.node_id)
            version = await link.ping(2**64 - 1)
            self.assertTrue(version.startswith("alp/1 "), version)
            info = await link.info()
            self.assertEqual(info.node_id, NODE.node_id)
            self.assertEqual(info.version, version)
            self.assertEqual(info.display_name, link.peer.display_name)
            # The workgroup verbs are open to every trusted peer (PROTOCOL.md, "Verbs").
            self.assertEqual(set(info.verbs), {"link.ping", "link.info", "blob.get", "blob.redeem", "wg.sync", "wg.push", "wg.blob"})
            # alp lists where it listens in its identity payload, and signs
            # the same in its address record, valid for a day.
            self.assertIn(NODE.address, link.peer.addresses)
            assert info.record is not None
            self.assertEqual(info.record.node_id, NODE.node_id)
            self.assertIn(NODE.address, info.record.addresses)
            self.assertEqual(info.record.expires_at - info.record.issued_at, 24 * 3600)

    @bounded
    async def test_every_cipher_suite_gives_the_same_binding_on_both_sides(self) -> None:
        # A wrong exporter value (e.g. SHA-256 where SHA-384 is due) would make
        # frame 2 fail to decrypt, since the binding is in the prologue.
        default_configuration = transport.client_configuration
        suites = (CipherSuite.AES_128_GCM_SHA256, CipherSuite.AES_256_GCM_SHA384, CipherSuite.CHACHA20_POLY1305_SHA256)
        for suite in suites:

            def only_this_suite() -> Any:
                configuration = default_configuration()
                configuration.cipher_suites = [suite]
                return configuration

            with self.subTest(suite.name), mock.patch.object(transport, "client_configuration", only_this_suite):
                async with await trusted_link() as link:
                    self.assertEqual(link.cipher_suite, suite.name)
                    await link.ping(1)

    @bounded
    async def test_an_untrusted_identity_is_refused_with_close_code_3(self) -> None:
        with self.assertRaises(LinkClosed) as refused:
            await connect(NODE.address, Identity.generate("stranger"), NODE.node_id)
        self.assertEqual(refused.exception.code, CloseCode.NOT_TRUSTED)
        self.assertTrue(refused.exception.application)

    @bounded
    async def test_another_node_than_the_one_dialled_is_refused_with_code_8(self) -> None:
        with self.assertRaises(HandshakeRefused) as refused:
            await connect(NODE.address, TRUSTED, Identity.generate().node_id)
        self.assertEqual(refused.exception.code, CloseCode.UNEXPECTED_PEER)

    @bounded
    async def test_a_connection_without_alpn_alp_1_fails_the_tls_handshake(self) -> None:
        default_configuration = transport.client_configuration

        def other_alpn() -> Any:
            configuration = default_configuration()
            configuration.alpn_protocols = ["h3"]
            return configuration

        with mock.patch.object(transport, "client_configuration", other_alpn), self.assertRaises(LinkClosed) as failed:
            await trusted_link()
        self.assertFalse(failed.exception.application)
        self.assertEqual(failed.exception.code, 0x100 + 120)  # TLS alert no_application_protocol

    def test_non_canonical_and_small_order_node_ids_are_refused(self) -> None:
        # "Node ids": canonical encoding, not of small order. y = p + 1 and
        # y = 1 with the sign bit spell the identity point (order 1).
        p_plus_1 = bytes([0xEE]) + b"\xff" * 30 + bytes([0x7F])
        negative_zero = bytes([1]) + b"\x00" * 30 + bytes([0x80])
        identity = bytes([1]) + b"\x00" * 31
        for raw in (p_plus_1, negative_zero, identity):
            with self.subTest(raw.hex()), self.assertRaises(AssertionError):
                NODE.alp("peer", "add", "bogus", bech32m.encode("alp", raw))

    @bounded
    async def test_a_silent_client_is_closed_with_code_6(self) -> None:
        async with transport.open_quic(NODE.address) as quic:
            await asyncio.wait_for(quic.wait_closed(), 8)  # link.hello_timeout is 3 s
            assert quic.closed is not None
            self.assertEqual(quic.closed.code, CloseCode.HANDSHAKE_TIMEOUT)


class Requests(unittest.IsolatedAsyncioTestCase):
    @bounded
    async def test_error_answers(self) -> None:
        async with await trusted_link() as link:
            cases = [
                ("link.nope", {}, ErrorCode.UNKNOWN_VERB),
                ("blob.put", {}, ErrorCode.FORBIDDEN),
                ("link.ping", {"nonce": 1, "extra": 2}, ErrorCode.BAD_REQUEST),
                ("link.ping", {"nonce": -1}, ErrorCode.BAD_REQUEST),
                ("link.ping", {"nonce": b"x" * 300}, ErrorCode.TOO_LARGE),  # body limit 256
            ]
            for verb, body, code in cases:
                with self.subTest(verb=verb, body=body), self.assertRaises(RemoteError) as failed:
                    await link.request(verb, body)
                self.assertEqual(failed.exception.code, code)
                self.assertEqual(failed.exception.name, code.wire_name)
            self.assertEqual((await link.request("link.info", b""))["node_id"], str(NODE.node_id))

    @bounded
    async def test_unusable_envelopes_reset_only_their_stream(self) -> None:
        async with await trusted_link() as link:
            envelope = {"verb": "link.ping", "id": 1, "body": cbor.encode({"nonce": 1}), "extra": 0}
            cases = [
                (encode_frame(cbor.encode(envelope)), ResetCode.MALFORMED),
                (encode_frame(b"\xff"), ResetCode.MALFORMED),
                ((2 << 20).to_bytes(4, "big") + b"x", ResetCode.FRAME_TOO_LARGE),
            ]
            for payload, code in cases:
                with self.subTest(code=code.name):
                    stream = link.open_stream()
                    stream.send(payload, fin=True)
                    with self.assertRaises(StreamReset) as reset:
                        await asyncio.wait_for(read_frame(stream, 1 << 20, "response"), 5)
                    self.assertEqual(reset.exception.code, code)
            await link.ping(5)


class BlobGet(unittest.IsolatedAsyncioTestCase):
    def check_part(self, link: Link, part: Any, blob: Blob, start: int, end: int) -> None:
        self.assertEqual((part.size, part.start, part.end), (len(blob.data), start, end))
        self.assertEqual(part.data, blob.data[start:end])
        receipt = part.receipt
        self.assertEqual(receipt.sender, NODE.node_id)
        self.assertEqual(receipt.receiver, TRUSTED.node_id)
        self.assertEqual(receipt.binding, link.binding)
        self.assertEqual((receipt.start, receipt.end, receipt.size), (start, end, len(blob.data)))
        self.assertLess(abs(receipt.time - time.time()), 600)

    @bounded
    async def test_whole_blobs(self) -> None:
        async with await trusted_link() as link:
            for name, blob in BLOBS.items():
                if name == "not shared":
                    continue
                with self.subTest(name):
                    part = await link.get_blob(blob.hash)
                    self.check_part(link, part, blob, 0, len(blob.data))

    @bounded
    async def test_ranges_are_widened_to_whole_groups(self) -> None:
        small, large = BLOBS["3 groups + 100"], BLOBS["300 KiB"]
        g = GROUP_SIZE
        cases = [
            ("inside one group", small, (100, 200), (0, g)),
            ("one byte of the last group", small, (49251, 49252), (3 * g, 49252)),
            ("across groups", small, (g - 10, g + 10), (0, 2 * g)),
            ("to the end", small, (20000, 49252), (g, 49252)),
            ("end past the size", small, (20000, 1 << 40), (g, 49252)),
            ("across records", large, (3 * g + 5, 13 * g + 1), (3 * g, 14 * g)),
            ("large, to the end", large, (17 * g, len(large.data)), (17 * g, len(large.data))),
            ("empty blob, start 0", BLOBS["empty"], (0, 10), (0, 0)),
        ]
        async with await trusted_link() as link:
            for what, blob, asked, (start, end) in cases:
                with self.subTest(what):
                    part = await link.get_blob(blob.hash, asked)
                    self.check_part(link, part, blob, start, end)

    @bounded
    async def test_ranges_outside_the_blob_are_bad_requests(self) -> None:
        small = BLOBS["3 groups + 100"]
        cases = [
            (small, (49252, 49300)),
            (small, (100, 100)),
            (small, (200, 100)),
            (BLOBS["empty"], (1, 2)),
        ]
        async with await trusted_link() as link:
            for blob, asked in cases:
                with self.subTest(asked=asked), self.assertRaises(RemoteError) as failed:
                    await link.get_blob(blob.hash, asked)
                self.assertEqual(failed.exception.code, ErrorCode.BAD_REQUEST)
            await link.ping(1)

    @bounded
    async def test_unshared_or_unknown_blobs_are_not_found(self) -> None:
        # Even with a range outside the blob: answering bad_request would
        # reveal that the blob is there, and its size.
        async with await trusted_link() as link:
            for blob_hash in (BLOBS["not shared"].hash, "00" * 32):
                for asked in (None, (1 << 40, (1 << 40) + 1)):
                    with self.subTest(blob_hash=blob_hash, asked=asked), self.assertRaises(RemoteError) as failed:
                        await link.get_blob(blob_hash, asked)
                    self.assertEqual(failed.exception.code, ErrorCode.NOT_FOUND)


class Pairing(unittest.IsolatedAsyncioTestCase):
    def peers(self) -> dict[str, dict[str, Any]]:
        return {entry["node_id"]: entry for entry in NODE.alp_json("peer", "list")}

    @bounded
    async def test_a_ticket_works_once(self) -> None:
        invite = NODE.alp_json("invite")
        ticket = Ticket.parse(invite["ticket"])
        self.assertEqual(ticket.inviter, NODE.node_id)
        self.assertIn(NODE.address, ticket.addresses)
        guest = Identity.generate("Py Guest")
        async with await pair(invite["ticket"], guest) as link:
            self.assertEqual(link.peer_node_id, NODE.node_id)
            await link.ping(9)
            self.assertEqual(set((await link.info()).verbs), {"link.ping", "link.info", "blob.redeem", "wg.sync", "wg.push", "wg.blob"})
        entry = self.peers()[str(guest.node_id)]
        self.assertEqual(entry["name"], "py-guest")
        self.assertEqual(set(entry["allow"]), {"link.ping", "link.info"})
        # The new peer can now connect in trusted mode.
        async with await connect(NODE.address, guest, NODE.node_id) as link:
            await link.ping(10)
        with self.assertRaises(LinkClosed) as refused:
            await pair(ticket, Identity.generate("second"))
        self.assertEqual(refused.exception.code, CloseCode.TICKET_REFUSED)

    @bounded
    async def test_a_wrong_secret_fails_at_frame_3_without_using_the_ticket(self) -> None:
        ticket = Ticket.parse(NODE.alp_json("invite")["ticket"])

        @dataclass(frozen=True)
        class WrongSecret:
            """The ticket's id with a psk from another secret."""

            inviter: NodeId
            id: bytes
            psk: bytes

        wrong = WrongSecret(ticket.inviter, ticket.id, ticket_psk(b"\x00" * 32))
        with self.assertRaises(LinkClosed) as refused:
            await pair(wrong, Identity.generate("guesser"), NODE.address)  # type: ignore[arg-type]
        self.assertEqual(refused.exception.code, CloseCode.HANDSHAKE_FAILED)
        async with await pair(ticket, Identity.generate("after a failure")) as link:
            await link.ping(1)

    @bounded
    async def test_peer_names_come_from_display_names(self) -> None:
        ticket = NODE.alp_json("invite", "--uses", "5")["ticket"]
        cases = [
            ("\u212aelvin Py.Client!", "elvin-py.client-"),  # KELVIN SIGN: not ASCII, so '-'
            ("\u212aelvin Py.Client!", "elvin-py.client--2"),
            ("!!! ...", "peer"),
            ("A" * 64, "a" * 56),
            ("A" * 64, "a" * 56 + "-2"),  # the suffix comes after the cut
        ]
        for display_name, expected in cases:
            with self.subTest(display_name):
                guest = Identity.generate(display_name)
                async with await pair(ticket, guest):
                    pass
                self.assertEqual(self.peers()[str(guest.node_id)]["name"], expected)


if __name__ == "__main__":
    unittest.main()
