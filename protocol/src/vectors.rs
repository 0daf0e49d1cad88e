//! The test vectors of docs/PROTOCOL.md, computed by this crate from fixed
//! inputs and checked against the frozen values: a change to the wire
//! breaks a test here before it breaks another implementation.
//!
//! `ALP_PRINT_VECTORS=1 cargo test -p alp-protocol vectors -- --nocapture
//! --test-threads 1` prints every value instead of checking it.

#![cfg(test)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ed25519_dalek::SigningKey;

use crate::blob_ticket::BlobTicket;
use crate::handshake::{
    self, Binding, Credentials, EphemeralKey, Initiator, KeySource, LocalIdentity, Mode, PROLOGUE_CONTEXT, Responder,
    SESSION_CONTEXT, STATIC_KEY_CONTEXT, TicketId,
};
use crate::receipt::Receipt;
use crate::record::{RecordContext, Sealer, TRANSFER_KEY_CONTEXT, TransferId, TransferKey};
use crate::ticket::{Ticket, TicketSecret};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn printing() -> bool {
    std::env::var_os("ALP_PRINT_VECTORS").is_some()
}

/// Checks `value` against the frozen `expected` hex (or prints it).
fn check(name: &str, value: &[u8], expected: &str) {
    if printing() {
        println!("{name}: {}", hex(value));
        return;
    }
    assert_eq!(hex(value), expected, "vector {name} changed: the wire changed");
}

/// Hands out one fixed ephemeral key.
struct Fixed(Mutex<Option<EphemeralKey>>);

impl KeySource for Fixed {
    fn take(&self) -> Option<EphemeralKey> {
        self.0.lock().unwrap().take()
    }
}

fn fixed(private: [u8; 32]) -> Arc<Fixed> {
    Arc::new(Fixed(Mutex::new(EphemeralKey::from_private(private))))
}

const BINDING: Binding = [0x0b; 32];
const ALICE_SEED: [u8; 32] = [0x07; 32];
const BOB_SEED: [u8; 32] = [0x09; 32];
const ALICE_EPHEMERAL: [u8; 32] = [0x21; 32];
const BOB_EPHEMERAL: [u8; 32] = [0x22; 32];
const TICKET_SECRET: [u8; 32] = [0x05; 32];

fn addr() -> SocketAddr {
    "127.0.0.1:7117".parse().unwrap()
}

fn creds(seed: [u8; 32], name: &str, ephemeral: [u8; 32]) -> Credentials {
    let key = SigningKey::from_bytes(&seed);
    let addrs = [addr()];
    let local = LocalIdentity { key: &key, display_name: name, addrs: &addrs };
    Credentials::new(&local).unwrap().with_key_source(fixed(ephemeral))
}

/// Alice dials bob in `mode`: frames 1 to 4 and the session secret both
/// sides derived.
fn handshake(mode: &Mode, psk: Option<[u8; 32]>) -> ([Vec<u8>; 4], [u8; 32]) {
    let (a, b) = (creds(ALICE_SEED, "alice", ALICE_EPHEMERAL), creds(BOB_SEED, "bob", BOB_EPHEMERAL));
    let bob_id = SigningKey::from_bytes(&BOB_SEED).verifying_key().into();
    let (init, f1) = Initiator::start(&a, BINDING, mode, Some(bob_id)).unwrap();
    let (resp, f2) = Responder::handle_hello(&b, BINDING, &f1, |_| psk).unwrap();
    let (init, f3) = init.handle_response(&f2).unwrap();
    let (resp_done, f4) = resp.handle_finish(&f3).unwrap().accept().unwrap();
    let init_done = init.handle_confirmation(&f4).unwrap();
    assert_eq!(init_done.session_secret, resp_done.session_secret);
    ([f1, f2, f3, f4], init_done.session_secret)
}

#[test]
fn identities() {
    for (who, seed, name, role) in [("alice", ALICE_SEED, "alice", b'I'), ("bob", BOB_SEED, "bob", b'R')] {
        let key = SigningKey::from_bytes(&seed);
        check(
            &format!("{who} ed25519 public"),
            key.verifying_key().as_bytes(),
            &EXPECTED[&*format!("{who} ed25519 public")],
        );
        let private = blake3::derive_key(STATIC_KEY_CONTEXT, &seed);
        check(&format!("{who} noise static private"), &private, &EXPECTED[&*format!("{who} noise static private")]);
        let c = creds(seed, name, [0; 32]);
        check(
            &format!("{who} noise static public"),
            c.static_public(),
            &EXPECTED[&*format!("{who} noise static public")],
        );
        let local = LocalIdentity { key: &key, display_name: name, addrs: &[addr()] };
        let payload = handshake::identity_payload(&local, role, c.static_public());
        check(
            &format!("{who} identity payload ({})", role as char),
            &payload,
            &EXPECTED[&*format!("{who} identity payload ({})", role as char)],
        );
    }
}

#[test]
fn prologues() {
    let trusted = [PROLOGUE_CONTEXT, &BINDING, &[1, 0]].concat();
    check("prologue, trusted", &trusted, &EXPECTED["prologue, trusted"]);
    let id = TicketSecret(TICKET_SECRET).id();
    let pair = [PROLOGUE_CONTEXT, &BINDING, &[1, 1], &id.0].concat();
    check("prologue, pairing", &pair, &EXPECTED["prologue, pairing"]);
}

#[test]
fn a_trusted_handshake() {
    let (frames, secret) = handshake(&Mode::Trusted, None);
    for (i, f) in frames.iter().enumerate() {
        let name = format!("trusted frame {}", i + 1);
        check(&name, f, &EXPECTED[&*name]);
    }
    check("trusted session secret", &secret, &EXPECTED["trusted session secret"]);
}

/// The same trusted handshake replayed with stock `snow` (its own
/// resolver, not this crate's): the frames must match, and it exposes the
/// raw Split() keys k1 (initiator to responder) and k2 that the session
/// secret is derived from.
#[test]
fn the_split_keys_behind_the_session_secret() {
    let (frames, secret) = handshake(&Mode::Trusted, None);
    let static_private = |seed: &[u8; 32]| blake3::derive_key(STATIC_KEY_CONTEXT, seed);
    let (a_static, b_static) = (static_private(&ALICE_SEED), static_private(&BOB_SEED));
    let prologue = [PROLOGUE_CONTEXT, &BINDING, &[1, 0]].concat();
    let side = |private: &[u8; 32], ephemeral: &[u8; 32], initiator: bool| {
        let b = snow::Builder::new(handshake::NOISE_XX.parse().unwrap())
            .local_private_key(private)
            .unwrap()
            .prologue(&prologue)
            .unwrap()
            .fixed_ephemeral_key_for_testing_only(ephemeral);
        if initiator { b.build_initiator().unwrap() } else { b.build_responder().unwrap() }
    };
    let (mut i, mut r) = (side(&a_static, &ALICE_EPHEMERAL, true), side(&b_static, &BOB_EPHEMERAL, false));
    let mut buf = [0u8; 1024];
    let mut scratch = [0u8; 1024];
    // Message 1 (empty payload); frame 1 adds the two header bytes.
    let n = i.write_message(&[], &mut buf).unwrap();
    assert_eq!([&[1u8, 0][..], &buf[..n]].concat(), frames[0]);
    r.read_message(&buf[..n], &mut scratch).unwrap();
    // Messages 2 and 3 carry the identity payloads the vectors fix.
    let payload = |seed, name, role, private: &[u8; 32]| {
        let key = SigningKey::from_bytes(seed);
        let public = *crate::x25519::KeyPair::from_private(private).unwrap().public();
        handshake::identity_payload(&LocalIdentity { key: &key, display_name: name, addrs: &[addr()] }, role, &public)
    };
    let n = r.write_message(&payload(&BOB_SEED, "bob", b'R', &b_static), &mut buf).unwrap();
    assert_eq!(buf[..n], frames[1]);
    i.read_message(&buf[..n], &mut scratch).unwrap();
    let n = i.write_message(&payload(&ALICE_SEED, "alice", b'I', &a_static), &mut buf).unwrap();
    assert_eq!(buf[..n], frames[2]);
    r.read_message(&buf[..n], &mut scratch).unwrap();
    let (k1, k2) = i.dangerously_get_raw_split();
    assert_eq!(r.dangerously_get_raw_split(), (k1, k2));
    check("trusted split k1", &k1, &EXPECTED["trusted split k1"]);
    check("trusted split k2", &k2, &EXPECTED["trusted split k2"]);
    assert_eq!(blake3::derive_key(SESSION_CONTEXT, &[k1, k2].concat()), secret);
    // Frame 4: the responder's first transport message (k2, nonce 0).
    let mut r = r.into_transport_mode().unwrap();
    let n = r.write_message(&[0], &mut buf).unwrap();
    assert_eq!(buf[..n], frames[3]);
}

#[test]
fn a_pairing_handshake() {
    let t = TicketSecret(TICKET_SECRET);
    check("ticket id", &t.id().0, &EXPECTED["ticket id"]);
    check("ticket psk", &t.psk(), &EXPECTED["ticket psk"]);
    let mode = Mode::Pair { ticket_id: TicketId(t.id().0), psk: t.psk() };
    let (frames, secret) = handshake(&mode, Some(t.psk()));
    for (i, f) in frames.iter().enumerate() {
        let name = format!("pairing frame {}", i + 1);
        check(&name, f, &EXPECTED[&*name]);
    }
    check("pairing session secret", &secret, &EXPECTED["pairing session secret"]);
    let ticket =
        Ticket { node_id: SigningKey::from_bytes(&BOB_SEED).verifying_key().into(), secret: t, addrs: vec![addr()] };
    let text = ticket.to_string();
    if printing() {
        println!("ticket text: {text}");
    } else {
        assert_eq!(text, &EXPECTED["ticket text"], "vector ticket text changed");
    }
}

#[test]
fn a_blob_ticket() {
    let secret = [0x05; 32];
    check("blob ticket digest", &blake3::derive_key("alp blob ticket v1", &secret), &EXPECTED["blob ticket digest"]);
    let t = BlobTicket {
        node_id: SigningKey::from_bytes(&BOB_SEED).verifying_key().into(),
        secret,
        hash: *blake3::hash(b"alp").as_bytes(),
        size: 3,
        folder: false,
        name: "notes.md".into(),
        addrs: vec![addr()],
    };
    check("blob ticket bytes", &t.to_bytes(), &EXPECTED["blob ticket bytes"]);
    let text = t.to_string();
    if printing() {
        println!("blob ticket text: {text}");
    } else {
        assert_eq!(text, &EXPECTED["blob ticket text"], "vector blob ticket text changed");
        assert_eq!(text.parse::<BlobTicket>(), Ok(t));
    }
}

#[test]
fn a_transfer_key_record_and_receipt() {
    let (_, secret) = handshake(&Mode::Trusted, None);
    let id = TransferId([0x01; 16]);
    let key = blake3::derive_key(TRANSFER_KEY_CONTEXT, &[&secret[..], &id.0].concat());
    check("transfer key", &key, &EXPECTED["transfer key"]);
    let context = RecordContext { hash: [0x07; 32], start: 0, end: 100_000, size: 100_000 };
    let record = Sealer::new(&TransferKey::derive(&secret, &id), &context).seal(b"alp", true).unwrap();
    check("record", &record, &EXPECTED["record"]);
    let bob = SigningKey::from_bytes(&BOB_SEED);
    let receipt = Receipt {
        hash: [0x07; 32],
        size: 100_000,
        start: 16384,
        end: 49152,
        sender: bob.verifying_key().into(),
        receiver: SigningKey::from_bytes(&ALICE_SEED).verifying_key().into(),
        transfer_id: id,
        binding: BINDING,
        time: 1_795_000_000,
    };
    check("receipt signed message", &receipt.signed_message(), &EXPECTED["receipt signed message"]);
    check("receipt frame", &receipt.sign(&bob).encode(), &EXPECTED["receipt frame"]);
    // The session secret is derive_key(SESSION_CONTEXT, k1 || k2); its
    // parts are not exposed, so the context is only named here.
    assert_eq!(SESSION_CONTEXT, "alp link session secret v1");
}

#[test]
fn rendezvous_bodies() {
    use crate::envelope::{MeetRequest, MeetResponse, RelayRequest, to_cbor};
    let alice: crate::NodeId = SigningKey::from_bytes(&ALICE_SEED).verifying_key().into();
    let bob: crate::NodeId = SigningKey::from_bytes(&BOB_SEED).verifying_key().into();
    check("meet wait", &to_cbor(&MeetRequest::default()), &EXPECTED["meet wait"]);
    check("meet request", &to_cbor(&MeetRequest { want: Some(bob), record: None }), &EXPECTED["meet request"]);
    let intro = MeetResponse { peer: Some(alice), addr: Some("203.0.113.1:40000".into()), relay: false, record: None };
    check("meet introduction", &to_cbor(&intro), &EXPECTED["meet introduction"]);
    let ask = MeetResponse { peer: Some(alice), addr: None, relay: true, record: None };
    check("meet relay ask", &to_cbor(&ask), &EXPECTED["meet relay ask"]);
    check("relay request", &to_cbor(&RelayRequest { to: alice }), &EXPECTED["relay request"]);
}

#[test]
fn an_address_record() {
    use crate::addr_record::AddrRecord;
    let key = SigningKey::from_bytes(&ALICE_SEED);
    let addrs: [SocketAddr; 2] = ["203.0.113.1:7117".parse().unwrap(), "[2001:db8::1]:7117".parse().unwrap()];
    let record = AddrRecord::new(&key, &addrs, 1_795_000_000, 86_400);
    let bytes = record.sign(&key);
    check("address record", &bytes, &EXPECTED["address record"]);
    assert_eq!(AddrRecord::verify(&bytes, &record.node_id, 1_795_000_001), Ok(record));
}

/// docs/PROTOCOL.md lists the same values as this file.
#[test]
fn the_spec_lists_these_values() {
    let spec = listed_in_spec(include_str!("../../docs/PROTOCOL.md"));
    for (name, value) in VECTORS {
        assert_eq!(spec.get(*name).map(String::as_str), Some(*value), "docs/PROTOCOL.md differs on `{name}`");
    }
}

/// The vectors of the spec's "Test vectors" section: a line `name (n
/// bytes):` or `name:`, then the value on indented lines.
fn listed_in_spec(doc: &str) -> std::collections::HashMap<String, String> {
    let section = doc.split("\n## Test vectors").nth(1).unwrap_or_default();
    let mut out = std::collections::HashMap::<String, String>::new();
    let mut name: Option<&str> = None;
    for line in section.lines() {
        match (line.strip_prefix("    "), line.strip_suffix(':')) {
            (Some(value), _) => {
                if let Some(n) = name {
                    out.entry(n.to_owned()).or_default().push_str(value.trim());
                }
            }
            (None, Some(label)) => {
                name = Some(label.strip_suffix(" bytes)").and_then(|l| l.rsplit_once(" (")).map_or(label, |(n, _)| n));
            }
            (None, None) => name = None,
        }
    }
    out
}

/// The frozen values, as docs/PROTOCOL.md gives them.
static EXPECTED: std::sync::LazyLock<Lookup> = std::sync::LazyLock::new(|| Lookup(VECTORS.iter().copied().collect()));

struct Lookup(std::collections::HashMap<&'static str, &'static str>);

impl std::ops::Index<&str> for Lookup {
    type Output = str;
    fn index(&self, name: &str) -> &str {
        self.0.get(name).copied().unwrap_or("(missing)")
    }
}

const VECTORS: &[(&str, &str)] = &[
    (
        "address record",
        "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c000000006afd86c0000000006afed8400204cb0071011bcd0620010db80000000000000000000000011bcd880e2d13a79bf30317cc9a3ee40ac188884e61ae5999e141823762920f01b91f97840d2ec68a742d0ebc787ab349025e18626cfa87e323c64559643fb91fa405",
    ),
    ("meet wait", "a0"),
    (
        "meet request",
        "a16477616e74783e616c70316c35746a67777a36357272346b65386d3072786b717461706d78676c6d366c686476667574726b68717434767364306637637671746174686570",
    ),
    (
        "meet introduction",
        "a26470656572783e616c70316166397863636c7a6e336671343068343270613378746b396c7832357761347768366c3868796a7a726d34786a397a7836676b713932356577736461646472713230332e302e3131332e313a3430303030",
    ),
    (
        "meet relay ask",
        "a26470656572783e616c70316166397863636c7a6e336671343068343270613378746b396c7832357761347768366c3868796a7a726d34786a397a7836676b713932356577736572656c6179f5",
    ),
    (
        "relay request",
        "a162746f783e616c70316166397863636c7a6e336671343068343270613378746b396c7832357761347768366c3868796a7a726d34786a397a7836676b71393235657773",
    ),
    ("trusted split k1", "e859ff7c795243c952b2c5fe569a6adeee17f04b81a1528ab60c4bd20ee7be53"),
    ("trusted split k2", "a2617ed8226fd39dc2f8954242f8c05401004e1207bbefb4232cffd6f94457e8"),
    ("ticket id", "2cc8ceb402a192cf23ea36c7d9850fd1"),
    ("ticket psk", "7d0baf400e5bd0ecb52d7867e29a68f77902e21f7aa570a313006d6093a68c7a"),
    (
        "pairing frame 1",
        "01012cc8ceb402a192cf23ea36c7d9850fd17d34a4815fa6b982535e60af3bd9b49556816080f1641ff81d2b7c8ae8268a44d06602443d4ba5d8b2dbf9d9640f740b",
    ),
    (
        "pairing frame 2",
        "0faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f20c20f6fea738ac682db7b30c2f86c6f669e7cc38e9390b4acc8fe727a6801fdfc8ce270c46f835f91d6b912b8b1762b40f3606268d54724b05b1c1546c60437441fe23c266e156dd5e78a3c2bb2841554ae75094bcf83de4e131ae45cdd96165466fd9be3dc57a4eeaa993fabcb70b6dc4b453def6f69b117dd6bedbc833ce0a6ba751d75b45edd7d15be0d390e229b04987bffbdd6531d751c06a633b1ae1dbeba5b02c6e4ca5e747e611f3c",
    ),
    (
        "pairing frame 3",
        "9ac016cd6a900a2dfbb7836bc8cb6bc3962a7b88725213d58a0360b0482b05550c6978082cc497bcd0558c2153e6d2d1dd02db84b8773fd08866024f3491e06f0cc30430570b3d78fb71fbcd869fd8932b610bc096c0a6a8c9ef7b71cfc4e933900864a7495f247529110fcda9fd0dc6671315722fd65738564386dabac39383fb9ccb79a2be94978c5552022c1912c7f61fc32c98c59efb0d8392047cfe8ea90626aa7532988e0924ef534ac0ce",
    ),
    ("pairing frame 4", "0bb3415d155d6bda59c97a917f42af143c"),
    ("pairing session secret", "c054fd6ef174a22e78e4dd37d57e32dac6626cbf7a29e654a8cc3c484290eb43"),
    (
        "ticket text",
        "alpticket1q873wfpct2svwkmylduv6cp058verl0t7a4383vw6upw4jp4a8mpspg9q5zs2pg9q5zs2pg9q5zs2pg9q5zs2pg9q5zs2pg9q5zs2pg9qyz87qqqqydu6fsmw30",
    ),
    ("blob ticket digest", "76252de3ed38a77cab077e7d117bc0a77206cbae1acacd3591be7948fd4edaef"),
    (
        "blob ticket bytes",
        "01fd1724385aa0c75b64fb78cd602fa1d991fdebf76b13c58ed702eac835e9f61805050505050505050505050505050505050505050505050505050505050505056d71d092b735710449c8de2d83a16bf8eac395346dccb167bf119d90c09130fa000000000000000300086e6f7465732e6d6401047f0000011bcd",
    ),
    (
        "blob ticket text",
        "alpblob1q873wfpct2svwkmylduv6cp058verl0t7a4383vw6upw4jp4a8mpspg9q5zs2pg9q5zs2pg9q5zs2pg9q5zs2pg9q5zs2pg9q5zs2pg9d4capy4hx4csgjwgmckc8gttlr4v89f5dhxtzealzxwepsy3xraqqqqqqqqqqqqrqqyxumm5v4ejumtyqyz87qqqqydu6ykf9gc",
    ),
    ("transfer key", "d11e4976445597f710a13b1e7ed0e7fec06ed9d74ad0cf423e3badec6fb2a1de"),
    ("record", "5d64eff088a6c74a98d7340bb3d664b3147d64"),
    (
        "receipt signed message",
        "616c7020626c6f622072656365697074207632070707070707070707070707070707070707070707070707070707070707070700000000000186a00000000000004000000000000000c000fd1724385aa0c75b64fb78cd602fa1d991fdebf76b13c58ed702eac835e9f618ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c010101010101010101010101010101010b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b000000006afd86c0",
    ),
    (
        "receipt frame",
        "070707070707070707070707070707070707070707070707070707070707070700000000000186a00000000000004000000000000000c000fd1724385aa0c75b64fb78cd602fa1d991fdebf76b13c58ed702eac835e9f618ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c010101010101010101010101010101010b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b000000006afd86c05a2cb3d3e5ce28977eb913879b5baa801475c3b1fbaf43f8f54cab7f0560d8e8325fda9ae82e579e28237bb61b08317ff6f93212caaf23ec0445eff8eb622000",
    ),
    ("trusted frame 1", "01007d34a4815fa6b982535e60af3bd9b49556816080f1641ff81d2b7c8ae8268a44"),
    (
        "trusted frame 2",
        "0faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f20e9fef8ec8fd732adb03154d56a256b2f7b1d0e2ac188d02b650b44ce52341cf1de24ad67ab1164ec946ac32d5a5af3565bd6e12d0e3d0b668097af94bb03c0defc6a8cc5da8912ac4463637080e76dbd3680ab4d3a0508b94fbf92fe729def622c3fce02559aff18da1cdb41f917f7739f97651646a14d04e0d0906a0e80bbb95583cbc933024bb69cc5db8aa92f55a5f35b8af829c20e3898a906caebc3c35dc4c698d5897fdd59836aa58d",
    ),
    (
        "trusted frame 3",
        "f8a7cdec1e1de906896df6f32931f2a27d01db6fa0248577112cf4e96a22e48e752723749e3cd09efc9edd3be67d30b910c3ec7a26d7ff8111d3e49f9103b9df75f21c3042e3cab117e96b31a956952a0e1dec36fdc3772f80655f3e9863fbeacf36a7a192488462aa7f186dbbf24cd19d5e4898ac1245ca0477b4e63b51a2ba4da3c710c0aa3513654f511334f422337b32f125e943b8ab53840be6b1c88e03fe990fa45e0ba494d2eeb0e4c75d",
    ),
    ("trusted frame 4", "a72da3aff3bc9b8ffd50758098f5d07f29"),
    ("trusted session secret", "7b1cc4a71a2b8534ba4920668803ad23ad07ab0398e665d152e93ec4313d7580"),
    ("alice ed25519 public", "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"),
    ("alice noise static private", "54893bbb436710beeab7d1fbf7bfd26869559679b6b15f464537b1841cd7d3b7"),
    ("alice noise static public", "b0403741b6a3f542045bfe6e3ccc14b2f720f8015f354d7e26823b0e91a15d7f"),
    (
        "alice identity payload (I)",
        "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c244651f449384f0afd777987b60211086789fd00cca31dbcc87f9e9db37376fb122b10650dc38b7c110b9cde86e21f2d809bf340a79ebe06ab02d35563b5dc0205616c69636501047f0000011bcd",
    ),
    ("bob ed25519 public", "fd1724385aa0c75b64fb78cd602fa1d991fdebf76b13c58ed702eac835e9f618"),
    ("bob noise static private", "a06ad57b58c035f6169d03acc6711ea5e4ea13e81073df397a3d0e9ceb42e38a"),
    ("bob noise static public", "bbf36ec036418f38652a38d8e56db159de72731abaebd5254a51635fc90e657c"),
    (
        "bob identity payload (R)",
        "fd1724385aa0c75b64fb78cd602fa1d991fdebf76b13c58ed702eac835e9f618a993cffa1d05c51f8ac6b041ab3a864e8cc32d4a5b1a3cf85e5e7146993907ac2fe4d395b049baaabb154c703c66f9199907668ca0ffabf3361f1944cbfe7b0d03626f6201047f0000011bcd",
    ),
    (
        "prologue, trusted",
        "616c70206c696e6b2068616e647368616b652076310b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0100",
    ),
    (
        "prologue, pairing",
        "616c70206c696e6b2068616e647368616b652076310b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b01012cc8ceb402a192cf23ea36c7d9850fd1",
    ),
];
