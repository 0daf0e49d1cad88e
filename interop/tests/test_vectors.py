"""Checks every test vector of docs/PROTOCOL.md with alp_client.

The expected values are parsed out of PROTOCOL.md itself (the "Node ids"
vector and the "Test vectors" section), so the spec and this test cannot
drift apart: a value missing from the document fails the test.

Run: python -m unittest tests.test_vectors (from interop/).
"""

from __future__ import annotations

import re
import unittest
import warnings
from pathlib import Path

import blake3
from noise.connection import Keypair, NoiseConnection

from alp_client import bech32m, cbor
from alp_client.addr_records import AddrRecord
from alp_client.addresses import SocketAddress
from alp_client.errors import ProtocolError
from alp_client.blake3_tree import parent_cv, subtree_cv
from alp_client.handshake import (
    NOISE_PAIR,
    NOISE_TRUSTED,
    ROLE_INITIATOR,
    ROLE_RESPONDER,
    HandshakeFailure,
    IdentityPayload,
    InitiatorHandshake,
    frame1_header,
    prologue,
    session_secret,
)
from alp_client.identity import Identity, NodeId
from alp_client.receipts import Receipt
from alp_client.records import RecordOpener, record_ad, seal_record, transfer_key
from alp_client.sharing import BlobTicket, FolderEntry, decode_manifest, encode_manifest, ticket_digest
from alp_client.tickets import Ticket
from alp_client.tree import HashTree, StreamVerifier, stream_length

SPEC = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"


def _load_spec() -> tuple[str, dict[str, bytes]]:
    """The spec's text and its labelled hex values: ``label (N bytes):``
    followed by indented hex lines; N is checked."""
    text = SPEC.read_text(encoding="utf-8")
    values = {}
    for match in re.finditer(r"^(\S[^\n]*?) \((\d+) bytes\):\n((?:    [0-9a-f]+\n)+)", text, re.MULTILINE):
        label, length, hex_lines = match.group(1), int(match.group(2)), match.group(3)
        value = bytes.fromhex("".join(hex_lines.split()))
        assert len(value) == length, f"{label}: {len(value)} bytes, the spec says {length}"
        values[label] = value
    return text, values


SPEC_TEXT, VECTORS = _load_spec()


def vector(label: str) -> bytes:
    """The spec's value labelled ``label``."""
    if label not in VECTORS:
        raise AssertionError(f"PROTOCOL.md has no vector {label!r}")
    return VECTORS[label]


def spec_match(pattern: str) -> str:
    """The first group of ``pattern`` in the spec."""
    match = re.search(pattern, SPEC_TEXT)
    if match is None:
        raise AssertionError(f"PROTOCOL.md does not contain {pattern!r}")
    return match.group(1)


# Inputs, from "Test vectors" / "Inputs".
ALICE = Identity.from_seed(b"\x07" * 32, "alice")
BOB = Identity.from_seed(b"\x09" * 32, "bob")
ADDRESSES = (SocketAddress.parse("127.0.0.1:7117"),)
BINDING = b"\x0b" * 32
ALICE_EPHEMERAL = b"\x21" * 32
BOB_EPHEMERAL = b"\x22" * 32
TICKET = Ticket(BOB.node_id, b"\x05" * 32, ADDRESSES)
TRANSFER_ID = b"\x01" * 16


def replay_responder(
    responder: Identity, header: bytes, frame1: bytes, frame3: bytes, psk: bytes | None
) -> tuple[bytes, bytes, bytes, bytes]:
    """Run the responder's side with noiseprotocol and the fixed ephemeral
    key; returns frame 2, frame 4, k1 and k2."""
    noise = NoiseConnection.from_name(NOISE_PAIR if psk else NOISE_TRUSTED)
    noise.set_as_responder()
    noise.set_prologue(prologue(BINDING, header))
    noise.set_keypair_from_private_bytes(Keypair.STATIC, responder.noise_static_private)
    if psk is not None:
        noise.set_psks(psk=psk)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        noise.set_keypair_from_private_bytes(Keypair.EPHEMERAL, BOB_EPHEMERAL)
        noise.start_handshake()
    assert frame1.startswith(header)
    assert noise.read_message(frame1[len(header) :]) == b""
    payload = IdentityPayload.create(responder, ROLE_RESPONDER, responder.noise_static_public, ADDRESSES)
    frame2 = bytes(noise.write_message(payload.encode()))
    noise.read_message(frame3)
    k1 = noise.noise_protocol.cipher_state_decrypt.k
    k2 = noise.noise_protocol.cipher_state_encrypt.k
    return frame2, noise.encrypt(b"\x00"), k1, k2


class NodeIdVectors(unittest.TestCase):
    def test_seed_07_gives_the_documented_key_and_text(self) -> None:
        public = bytes.fromhex(spec_match(r"Vector \(seed `07×32`, public key\n`([0-9a-f]{64})`"))
        text = spec_match(r"Vector \(seed `07×32`[^`]*`[0-9a-f]{64}`\):\n\n```\n(alp1[a-z0-9]+)\n```")
        self.assertEqual(ALICE.node_id.key, public)
        self.assertEqual(str(ALICE.node_id), text)
        self.assertEqual(len(text), 62)
        self.assertEqual(NodeId.parse(text), ALICE.node_id)
        self.assertEqual(NodeId.parse(text.upper()), ALICE.node_id)

    def test_decoders_reject_what_the_spec_rejects(self) -> None:
        text = str(ALICE.node_id)
        values = [bech32m.CHARSET.index(c) for c in text[4:-6]]

        def spell(hrp: str, data: list[int], constant: int) -> str:
            polymod = bech32m._polymod(bech32m._hrp_expand(hrp) + data + [0] * 6) ^ constant
            checksum = [(polymod >> (5 * (5 - i))) & 31 for i in range(6)]
            return hrp + "1" + "".join(bech32m.CHARSET[v] for v in data + checksum)

        self.assertEqual(spell("alp", values, 0x2BC830A3), text)
        rejected = {
            "mixed case": text[:10] + text[10:].upper(),
            "bech32 checksum": spell("alp", values, 1),
            "other prefix": spell("alq", values, 0x2BC830A3),
            "non-zero padding": spell("alp", values[:-1] + [values[-1] | 1], 0x2BC830A3),
            "31 bytes": bech32m.encode("alp", ALICE.node_id.key[:31]),
            "not a point": bech32m.encode("alp", b"\x02" + bytes(31)),
            "a typo": text[:20] + ("q" if text[20] != "q" else "p") + text[21:],
        }
        for what, bad in rejected.items():
            with self.subTest(what), self.assertRaises(ValueError):
                NodeId.parse(bad)


class IdentityVectors(unittest.TestCase):
    def test_keys_and_identity_payloads(self) -> None:
        for name, identity, role in (("alice", ALICE, ROLE_INITIATOR), ("bob", BOB, ROLE_RESPONDER)):
            with self.subTest(name):
                self.assertEqual(identity.node_id.key, vector(f"{name} ed25519 public"))
                self.assertEqual(identity.noise_static_private, vector(f"{name} noise static private"))
                self.assertEqual(identity.noise_static_public, vector(f"{name} noise static public"))
                payload = IdentityPayload.create(identity, role, identity.noise_static_public, ADDRESSES)
                expected = vector(f"{name} identity payload ({role.decode()})")
                self.assertEqual(payload.encode(), expected)
                decoded = IdentityPayload.decode(expected)
                self.assertEqual(decoded, payload)
                self.assertTrue(decoded.verify(role, identity.noise_static_public))
                other_role = ROLE_RESPONDER if role == ROLE_INITIATOR else ROLE_INITIATOR
                self.assertFalse(decoded.verify(other_role, identity.noise_static_public))
                self.assertFalse(decoded.verify(role, bytes(32)))

    def test_malformed_payloads_are_rejected(self) -> None:
        good = vector("alice identity payload (I)")
        for what, bad in {
            "trailing byte": good + b"\x00",
            "short": good[:-1],
            "family 5": good[:-7] + b"\x05" + good[-6:],
            "nine addresses": good[:-8] + b"\x09" + good[-7:] * 9,
            "name over 64": good[:96] + b"\x41" + b"a" * 65 + b"\x00",
        }.items():
            with self.subTest(what), self.assertRaises(ValueError):
                IdentityPayload.decode(bad)


class TrustedHandshakeVectors(unittest.TestCase):
    def test_prologue_frames_keys_and_session_secret(self) -> None:
        header = frame1_header()
        self.assertEqual(prologue(BINDING, header), vector("prologue, trusted"))
        alice = InitiatorHandshake(ALICE, BINDING, addresses=ADDRESSES, ephemeral_private=ALICE_EPHEMERAL)
        frame1 = alice.frame1()
        self.assertEqual(frame1, vector("trusted frame 1"))
        responder = alice.read_frame2(vector("trusted frame 2"))
        self.assertEqual(responder.node_id, BOB.node_id)
        self.assertEqual(responder.display_name, "bob")
        self.assertEqual(alice.responder_static, BOB.noise_static_public)
        frame3 = alice.frame3()
        self.assertEqual(frame3, vector("trusted frame 3"))
        alice.read_frame4(vector("trusted frame 4"))
        self.assertEqual(alice.k1, vector("trusted split k1"))
        self.assertEqual(alice.k2, vector("trusted split k2"))
        self.assertEqual(alice.session_secret, vector("trusted session secret"))

        frame2, frame4, k1, k2 = replay_responder(BOB, header, frame1, frame3, psk=None)
        self.assertEqual(frame2, vector("trusted frame 2"))
        self.assertEqual(frame4, vector("trusted frame 4"))
        self.assertEqual(session_secret(k1, k2), vector("trusted session secret"))

    def test_sizes_are_as_documented(self) -> None:
        self.assertEqual(len(vector("prologue, trusted")), 55)
        self.assertEqual(len(vector("trusted frame 1")), 34)
        self.assertEqual(len(vector("trusted frame 2")), 32 + 48 + len(vector("bob identity payload (R)")) + 16)
        self.assertEqual(len(vector("trusted frame 3")), 48 + len(vector("alice identity payload (I)")) + 16)
        self.assertEqual(len(vector("trusted frame 4")), 17)

    def test_a_tampered_frame_2_fails(self) -> None:
        alice = InitiatorHandshake(ALICE, BINDING, addresses=ADDRESSES, ephemeral_private=ALICE_EPHEMERAL)
        alice.frame1()
        tampered = bytearray(vector("trusted frame 2"))
        tampered[100] ^= 1
        with self.assertRaises(HandshakeFailure):
            alice.read_frame2(bytes(tampered))

    def test_another_binding_fails(self) -> None:
        alice = InitiatorHandshake(ALICE, b"\x0c" * 32, addresses=ADDRESSES, ephemeral_private=ALICE_EPHEMERAL)
        alice.frame1()
        with self.assertRaises(HandshakeFailure):
            alice.read_frame2(vector("trusted frame 2"))


class PairingVectors(unittest.TestCase):
    def test_ticket(self) -> None:
        text = spec_match(r"ticket text:\n    (alpticket1[a-z0-9]+)\n")
        self.assertEqual(TICKET.id, vector("ticket id"))
        self.assertEqual(TICKET.psk, vector("ticket psk"))
        self.assertEqual(str(TICKET), text)
        self.assertEqual(len(text), 133)  # "a ticket with one IPv4 address is 133 characters"
        self.assertEqual(Ticket.parse(text), TICKET)
        self.assertEqual(Ticket.parse(text.upper()), TICKET)

    def test_longest_ticket_round_trips(self) -> None:
        eight_v6 = tuple(SocketAddress.parse(f"[2001:db8::{i}]:{7000 + i}") for i in range(8))
        ticket = Ticket(ALICE.node_id, b"\x05" * 32, eight_v6)
        self.assertEqual(len(str(ticket)), 365)  # "with eight IPv6 ones 365"
        self.assertEqual(Ticket.parse(str(ticket)), ticket)

    def test_prologue_frames_and_session_secret(self) -> None:
        # Alice (seed 07, ephemeral 21) redeems bob's ticket: she initiates,
        # bob (seed 09, ephemeral 22) responds, as in the trusted handshake.
        header = frame1_header(TICKET)
        self.assertEqual(prologue(BINDING, header), vector("prologue, pairing"))
        self.assertEqual(len(vector("prologue, pairing")), 71)
        alice = InitiatorHandshake(ALICE, BINDING, TICKET, ADDRESSES, ephemeral_private=ALICE_EPHEMERAL)
        frame1 = alice.frame1()
        self.assertEqual(frame1, vector("pairing frame 1"))
        self.assertEqual(len(frame1), 66)
        self.assertEqual(alice.read_frame2(vector("pairing frame 2")).node_id, BOB.node_id)
        frame3 = alice.frame3()
        self.assertEqual(frame3, vector("pairing frame 3"))
        alice.read_frame4(vector("pairing frame 4"))
        self.assertEqual(alice.session_secret, vector("pairing session secret"))

        frame2, frame4, k1, k2 = replay_responder(BOB, header, frame1, frame3, psk=TICKET.psk)
        self.assertEqual(frame2, vector("pairing frame 2"))
        self.assertEqual(frame4, vector("pairing frame 4"))
        self.assertEqual(session_secret(k1, k2), vector("pairing session secret"))

    def test_a_wrong_secret_fails_at_frame_2(self) -> None:
        wrong = Ticket(BOB.node_id, b"\x06" * 32, ADDRESSES)
        alice = InitiatorHandshake(ALICE, BINDING, wrong, ADDRESSES, ephemeral_private=ALICE_EPHEMERAL)
        alice.frame1()
        with self.assertRaises(HandshakeFailure):
            alice.read_frame2(vector("pairing frame 2"))


class TransferVectors(unittest.TestCase):
    BLOB_HASH = b"\x07" * 32

    def test_transfer_key_and_record(self) -> None:
        key = transfer_key(vector("trusted session secret"), TRANSFER_ID)
        self.assertEqual(key, vector("transfer key"))
        ad = record_ad(self.BLOB_HASH, 0, 100000, 100000)
        record = seal_record(key, 0, True, ad, b"alp")
        self.assertEqual(record, vector("record"))
        self.assertEqual(RecordOpener(key, ad).open(record), (b"alp", True))

    def test_older_record_vector(self) -> None:
        expected = bytes.fromhex(spec_match(r"session secret `01×32`[\s\S]*?gives the record `([0-9a-f]+)`"))
        key = transfer_key(b"\x01" * 32, TRANSFER_ID)
        record = seal_record(key, 0, True, record_ad(self.BLOB_HASH, 0, 100000, 100000), b"alp")
        self.assertEqual(record, expected)

    def test_records_fail_out_of_place(self) -> None:
        key = transfer_key(vector("trusted session secret"), TRANSFER_ID)
        ad = record_ad(self.BLOB_HASH, 0, 100000, 100000)
        full = seal_record(key, 0, False, ad, bytes(65536))
        cases = {
            "another range": (RecordOpener(key, record_ad(self.BLOB_HASH, 0, 99999, 100000)), [vector("record")]),
            "full record sealed as final": (RecordOpener(key, ad), [seal_record(key, 0, True, ad, bytes(65536))]),
            "full record cut short": (RecordOpener(key, ad), [full[:-1]]),
            "duplicated record": (RecordOpener(key, ad), [full, full]),
            "record after the final": (RecordOpener(key, ad), [vector("record"), vector("record")]),
        }
        for what, (opener, records) in cases.items():
            with self.subTest(what), self.assertRaises(ProtocolError):
                for record in records:
                    opener.open(record)

    def test_address_record(self) -> None:
        addresses = [SocketAddress.parse("203.0.113.1:7117"), SocketAddress.parse("[2001:db8::1]:7117")]
        record = AddrRecord(ALICE.node_id, 1_795_000_000, 1_795_086_400, addresses)
        self.assertEqual(record.sign(ALICE), vector("address record"))
        self.assertEqual(AddrRecord.verify(vector("address record"), ALICE.node_id, 1_795_000_001), record)
        with self.assertRaisesRegex(ValueError, "expired"):
            AddrRecord.verify(vector("address record"), ALICE.node_id, 1_795_086_400)
        with self.assertRaisesRegex(ValueError, "another node"):
            AddrRecord.verify(vector("address record"), BOB.node_id, 1_795_000_001)
        tampered = bytearray(vector("address record"))
        tampered[40] ^= 1
        with self.assertRaisesRegex(ValueError, "signature"):
            AddrRecord.verify(bytes(tampered), ALICE.node_id, 1_795_000_001)

    def test_receipt(self) -> None:
        receipt = Receipt.sign(
            BOB,
            hash=self.BLOB_HASH,
            size=100000,
            start=16384,
            end=49152,
            receiver=ALICE.node_id,
            transfer_id=TRANSFER_ID,
            binding=BINDING,
            time=1795000000,
        )
        self.assertEqual(receipt.signed_message(), vector("receipt signed message"))
        self.assertEqual(receipt.encode(), vector("receipt frame"))
        decoded = Receipt.decode(vector("receipt frame"))
        self.assertEqual(decoded, receipt)
        self.assertTrue(decoded.verify())
        self.assertFalse(Receipt.decode(vector("receipt frame")[:-1] + b"\x01").verify())
        frame = vector("receipt frame")
        for what, bad in {
            "239 bytes": frame[:-1],
            "start > end": frame[:40] + (50000).to_bytes(8, "big") + frame[48:],
            "end > size": frame[:48] + (100001).to_bytes(8, "big") + frame[56:],
        }.items():
            with self.subTest(what), self.assertRaises(ValueError):
                Receipt.decode(bad)


class HashTreeVectors(unittest.TestCase):
    DATA = bytes(i % 251 for i in range(49252))

    def test_group_values_parents_hash_and_range_stream(self) -> None:
        tree = HashTree(self.DATA)
        self.assertEqual(tree.n, 4)
        for g in range(4):
            self.assertEqual(tree.group_values[g], vector(f"group {g} cv"), f"group {g}")
        parents = tree.parents_in_preorder()
        self.assertEqual(parents[0], vector("parent 0 (groups 0..4)"))
        self.assertEqual(parents[1], vector("parent 1 (groups 0..2)"))
        self.assertEqual(parents[2], vector("parent 2 (groups 2..4)"))
        self.assertEqual(tree.hash, vector("blob hash"))
        self.assertEqual(tree.hash, blake3.blake3(self.DATA).digest())

        stream = tree.stream(1, 3)
        self.assertEqual(len(stream), 32960)
        self.assertEqual(stream_length(len(self.DATA), 1, 3), 32960)
        self.assertEqual(blake3.blake3(stream).digest(), vector("blake3 of the stream of groups 1..3"))
        verifier = StreamVerifier(tree.hash, len(self.DATA), 1, 3)
        verifier.feed(stream)
        self.assertEqual(verifier.finish(), self.DATA[16384:49152])

    def test_pure_python_blake3_agrees_with_the_blake3_package(self) -> None:
        for size in (0, 1, 64, 65, 1024, 1025, 5000, 16384):
            data = self.DATA[:size]
            with self.subTest(size):
                # A lone subtree's value differs from the hash only in the ROOT
                # flag; check the merge of two halves instead.
                if size > 1024:
                    half = 1024 * (1 << (((size - 1) // 1024).bit_length() - 1))
                    root = parent_cv(subtree_cv(data[:half], 0), subtree_cv(data[half:], half // 1024), root=True)
                    self.assertEqual(root, blake3.blake3(data).digest())
        for size in (16385, 32768, 32769, 49252, 65537, 81921):
            data = (self.DATA * 2)[:size]
            with self.subTest(size):
                self.assertEqual(HashTree(data).hash, blake3.blake3(data).digest())


if __name__ == "__main__":
    unittest.main()


class WorkgroupVectors(unittest.TestCase):
    """"Test vectors" / "A workgroup": alice creates a group and writes a note."""

    def test_create_and_note(self) -> None:
        from alp_client import workgroup

        alice = ALICE
        budget = {"usd_micros": None, "tokens": 100_000}
        policy = {"lease_secs": 30, "max_attempts": 3, "max_depth": 4}
        create = {"name": "team", "briefing": "Owl facts.", "budget": budget, "policy": policy, "roles": ["lead"]}
        self.assertEqual(cbor.encode(create), vector("workgroup create body"))
        unsigned = workgroup.unsigned(None, alice.node_id.key, 1, None, 1, 1_795_000_000_000, [], 1, create)
        raw = workgroup.sign(alice, unsigned)
        self.assertEqual(raw, vector("workgroup create event"))
        genesis = workgroup.decode(raw)
        self.assertEqual(genesis.id, vector("workgroup id"))
        self.assertEqual(genesis.group_id, genesis.id)
        note = workgroup.unsigned(genesis.id, alice.node_id.key, 2, genesis.id, 2, 1_795_000_001_000, [], 9, {"text": "hello"})
        raw = workgroup.sign(alice, note)
        self.assertEqual(raw, vector("workgroup note event"))
        self.assertEqual(workgroup.decode(raw).id, vector("workgroup note id"))
        tampered = bytearray(raw)
        tampered[-70] ^= 1
        with self.assertRaises(ProtocolError):
            workgroup.decode(bytes(tampered))



class SharingVectors(unittest.TestCase):
    def test_blob_ticket(self) -> None:
        secret = b"\x05" * 32
        self.assertEqual(ticket_digest(secret), vector("blob ticket digest"))
        ticket = BlobTicket(BOB.node_id, secret, blake3.blake3(b"alp").digest(), 3, False, "notes.md", ADDRESSES)
        self.assertEqual(ticket.encode(), vector("blob ticket bytes"))
        text = spec_match(r"blob ticket text:\n    (alpblob1[a-z0-9]+)\n")
        self.assertEqual(str(ticket), text)
        self.assertEqual(BlobTicket.parse(text), ticket)

    def test_folder_manifest(self) -> None:
        files = [
            FolderEntry("bin/run", 0o755, 3, blake3.blake3(b"#!\n").digest()),
            FolderEntry("a.txt", 0o644, 4, blake3.blake3(b"alp\n").digest()),
        ]
        manifest = encode_manifest(files)
        self.assertEqual(manifest, vector("folder manifest"))
        self.assertEqual(blake3.blake3(manifest).digest(), vector("folder manifest hash"))
        self.assertEqual(decode_manifest(manifest), sorted(files, key=lambda f: f.path))

    def test_unsafe_manifests_are_refused(self) -> None:
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", "a/", "x\x00y"]:
            raw = bad.encode()
            forged = b"ALPCOLL1" + (1).to_bytes(4, "big") + len(raw).to_bytes(2, "big") + raw + bytes(44)
            with self.assertRaises(ValueError, msg=bad):
                decode_manifest(forged)
