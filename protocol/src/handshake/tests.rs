//! Both ends of the handshake driven in memory: every success and failure
//! path, without sockets.

use super::*;
use proptest::prelude::*;

struct Side {
    key: SigningKey,
    addrs: Vec<SocketAddr>,
    creds: Credentials,
}

impl Side {
    fn new(seed: u8, name: &str) -> Self {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let addrs = vec!["127.0.0.1:7117".parse().unwrap()];
        let creds = Credentials::new(&LocalIdentity { key: &key, display_name: name, addrs: &addrs }).unwrap();
        Self { key, addrs, creds }
    }
    fn local<'a>(&'a self, name: &'a str) -> LocalIdentity<'a> {
        LocalIdentity { key: &self.key, display_name: name, addrs: &self.addrs }
    }
    fn id(&self) -> NodeId {
        self.key.verifying_key().into()
    }
}

const PSK: [u8; 32] = [42; 32];
const TICKET: TicketId = TicketId([9; 16]);

struct Run {
    init_binding: Binding,
    resp_binding: Binding,
    mode: Mode,
    resp_psk: Option<[u8; 32]>,
    expected: Option<NodeId>,
}

impl Run {
    fn trusted(expected: Option<NodeId>) -> Self {
        Self { init_binding: [1; 32], resp_binding: [1; 32], mode: Mode::Trusted, resp_psk: Some(PSK), expected }
    }
    fn pair(init_psk: [u8; 32], resp_psk: Option<[u8; 32]>) -> Self {
        let mode = Mode::Pair { ticket_id: TICKET, psk: init_psk };
        Self { init_binding: [1; 32], resp_binding: [1; 32], mode, resp_psk, expected: None }
    }

    /// Drives all four frames; returns (initiator's view, responder's view).
    fn go(self, i: &Side, r: &Side) -> Result<(Established, Established), HandshakeError> {
        let (init, f1) = Initiator::start(&i.creds, self.init_binding, &self.mode, self.expected)?;
        let psk = self.resp_psk;
        let (resp, f2) = Responder::handle_hello(&r.creds, self.resp_binding, &f1, |id| {
            assert_eq!(id, TICKET);
            psk
        })?;
        let (init, f3) = init.handle_response(&f2)?;
        let (resp_done, f4) = resp.handle_finish(&f3)?.accept()?;
        let init_done = init.handle_confirmation(&f4)?;
        Ok((init_done, resp_done))
    }
}

#[test]
fn trusted_handshake_authenticates_both_sides() {
    let (alice, bob) = (Side::new(1, "alice"), Side::new(2, "bob"));
    let (a, b) = Run::trusted(Some(bob.id())).go(&alice, &bob).unwrap();
    let static_key = bob.creds.static_public().try_into().unwrap();
    let display_name = "bob".into();
    assert_eq!(a.remote, PeerHello { node_id: bob.id(), static_key, display_name, addrs: bob.addrs.clone() });
    assert_eq!(b.remote.node_id, alice.id());
    assert_eq!(b.remote.display_name, "alice");
    assert_eq!(a.session_secret, b.session_secret);
    assert_eq!(b.ticket, None);
}

/// Renewed credentials announce the new addresses, with the same static
/// key and the keys they knew; another node's identity cannot renew them.
#[test]
fn renewed_credentials_announce_new_addresses() {
    let (alice, mut bob) = (Side::new(1, "alice"), Side::new(2, "bob"));
    Run::trusted(Some(bob.id())).go(&alice, &bob).unwrap();
    let known_before = bob.creds.known().node_with(alice.key.verifying_key().as_bytes(), alice.creds.static_public());
    bob.addrs = vec!["192.0.2.9:7117".parse().unwrap()];
    let renewed = bob.creds.renewed(&bob.local("bob")).unwrap();
    assert_eq!(renewed.static_public(), bob.creds.static_public());
    bob.creds = renewed;
    let known_after = bob.creds.known().node_with(alice.key.verifying_key().as_bytes(), alice.creds.static_public());
    assert_eq!((known_before, known_after), (Some(alice.id()), Some(alice.id())));
    let (a, _) = Run::trusted(Some(bob.id())).go(&alice, &bob).unwrap();
    assert_eq!(a.remote.addrs, bob.addrs);
    assert!(bob.creds.renewed(&alice.local("alice")).is_none());
}

#[test]
fn each_handshake_has_a_fresh_session_secret() {
    let (alice, bob) = (Side::new(1, "alice"), Side::new(2, "bob"));
    let (a1, _) = Run::trusted(None).go(&alice, &bob).unwrap();
    let (a2, _) = Run::trusted(None).go(&alice, &bob).unwrap();
    assert_ne!(a1.session_secret, a2.session_secret);
}

#[test]
fn pairing_with_the_right_secret_succeeds() {
    let (alice, bob) = (Side::new(1, "alice"), Side::new(2, "bob"));
    let (a, b) = Run::pair(PSK, Some(PSK)).go(&alice, &bob).unwrap();
    assert_eq!(b.ticket, Some(TICKET));
    assert_eq!(a.remote.node_id, bob.id());
}

#[test]
fn pairing_with_a_wrong_secret_fails() {
    let (alice, bob) = (Side::new(1, "alice"), Side::new(2, "bob"));
    let err = Run::pair([0; 32], Some(PSK)).go(&alice, &bob).unwrap_err();
    assert!(matches!(err, HandshakeError::Crypto(_)), "{err}");
}

#[test]
fn pairing_with_an_unknown_ticket_fails() {
    let (alice, bob) = (Side::new(1, "alice"), Side::new(2, "bob"));
    assert_eq!(Run::pair(PSK, None).go(&alice, &bob).unwrap_err(), HandshakeError::UnknownTicket);
}

#[test]
fn a_relayed_handshake_fails() {
    // A relay terminating QUIC on both sides gives each a different binding.
    let (alice, bob) = (Side::new(1, "alice"), Side::new(2, "bob"));
    let mut run = Run::trusted(Some(bob.id()));
    run.resp_binding = [2; 32];
    let err = run.go(&alice, &bob).unwrap_err();
    assert!(matches!(err, HandshakeError::Crypto(_)), "{err}");
}

#[test]
fn the_wrong_node_is_refused_by_the_dialer() {
    let (alice, bob, carol) = (Side::new(1, "alice"), Side::new(2, "bob"), Side::new(3, "carol"));
    let err = Run::trusted(Some(carol.id())).go(&alice, &bob).unwrap_err();
    assert_eq!(err, HandshakeError::UnexpectedPeer { expected: carol.id(), got: bob.id() });
}

/// A responder that runs Noise correctly with `bob`'s static key but
/// presents an identity signature over `signed_key` in role `sign_role`.
fn respond_with(bob: &Side, sign_role: u8, signed_key: &[u8]) -> Result<(), HandshakeError> {
    respond_as(&Side::new(1, "alice"), bob, bob, sign_role, signed_key).map(drop)
}

/// `alice` dials a responder that runs Noise with `noise`'s static key and
/// presents `id`'s identity, signed over `signed_key` in role `sign_role`.
fn respond_as(
    alice: &Side,
    noise: &Side,
    id: &Side,
    sign_role: u8,
    signed_key: &[u8],
) -> Result<PeerHello, HandshakeError> {
    let binding = [1; 32];
    let (init, f1) = Initiator::start(&alice.creds, binding, &Mode::Trusted, None).unwrap();
    let mut hs = build(&noise.creds, &binding, &f1[..2], None, false, None).unwrap();
    let mut buf = [0u8; MAX_FRAME];
    hs.read_message(&f1[2..], &mut buf).unwrap();
    let payload = identity_payload(&id.local("bob"), sign_role, signed_key);
    let n = hs.write_message(&payload, &mut buf).unwrap();
    init.handle_response(&buf[..n]).map(|(a, _)| a.remote().clone())
}

#[test]
fn a_correctly_signed_static_key_is_accepted() {
    // Control for the two tests below.
    let bob = Side::new(2, "bob");
    assert_eq!(respond_with(&bob, ROLE_RESPONDER, bob.creds.static_public()), Ok(()));
}

#[test]
fn a_signature_over_another_static_key_is_refused() {
    let (bob, other) = (Side::new(2, "bob"), Side::new(3, "other"));
    assert_eq!(respond_with(&bob, ROLE_RESPONDER, other.creds.static_public()), Err(HandshakeError::BadSignature));
}

#[test]
fn a_signature_for_the_other_role_is_refused() {
    let bob = Side::new(2, "bob");
    assert_eq!(respond_with(&bob, ROLE_INITIATOR, bob.creds.static_public()), Err(HandshakeError::BadSignature));
}

#[test]
fn bad_first_frames_are_refused() {
    let bob = Side::new(2, "bob");
    let hello = |f: &[u8]| Responder::handle_hello(&bob.creds, [1; 32], f, |_| Some(PSK)).map(drop);
    assert!(matches!(hello(&[]), Err(HandshakeError::Malformed(_))));
    assert_eq!(hello(&[2, 0]), Err(HandshakeError::UnsupportedVersion(2)));
    assert!(matches!(hello(&[1, 7]), Err(HandshakeError::Malformed(_))));
    assert!(matches!(hello(&[1, 1, 0, 0]), Err(HandshakeError::Malformed(_))));
    assert!(matches!(hello(&[1, 0]), Err(HandshakeError::Crypto(_))));
}

#[test]
fn long_display_names_are_cut_on_a_char_boundary() {
    let alice = Side::new(1, "alice");
    let bob = Side::new(2, &"é".repeat(100));
    let (a, _) = Run::trusted(None).go(&alice, &bob).unwrap();
    assert!(a.remote.display_name.len() <= MAX_DISPLAY_NAME);
    assert!(a.remote.display_name.chars().all(|c| c == 'é'));
}

#[test]
fn debug_output_hides_secrets() {
    let mode = Mode::Pair { ticket_id: TICKET, psk: PSK };
    assert!(!format!("{mode:?}").contains("42"));
    let (alice, bob) = (Side::new(1, "alice"), Side::new(2, "bob"));
    let (a, _) = Run::trusted(None).go(&alice, &bob).unwrap();
    assert!(!format!("{a:?}").contains("session_secret"));
}

proptest! {
    /// Flipping any bit of any frame makes the handshake fail cleanly.
    #[test]
    fn tampering_with_any_frame_fails_cleanly(frame in 0usize..4, bit in any::<usize>()) {
        let (alice, bob) = (Side::new(1, "alice"), Side::new(2, "bob"));
        let (init, mut f1) = Initiator::start(&alice.creds, [1; 32], &Mode::Trusted, None).unwrap();
        let flip = |f: &mut Vec<u8>| { let i = bit % (f.len() * 8); f[i / 8] ^= 1 << (i % 8); };
        if frame == 0 { flip(&mut f1); }
        let Ok((resp, mut f2)) = Responder::handle_hello(&bob.creds, [1; 32], &f1, |_| None) else {
            prop_assert_eq!(frame, 0);
            return Ok(());
        };
        if frame == 1 { flip(&mut f2); }
        let res = init.handle_response(&f2).and_then(|(init, mut f3)| {
            if frame == 2 { flip(&mut f3); }
            let (_, mut f4) = resp.handle_finish(&f3)?.accept()?;
            if frame == 3 { flip(&mut f4); }
            init.handle_confirmation(&f4)
        });
        // Frame 0's version/mode bytes or the ephemeral key may survive a
        // flip only by failing later; every path must end in an error.
        prop_assert!(res.is_err());
    }

    #[test]
    fn garbage_never_panics(f1 in proptest::collection::vec(any::<u8>(), 0..200), f2 in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (alice, bob) = (Side::new(1, "alice"), Side::new(2, "bob"));
        let _ = Responder::handle_hello(&bob.creds, [1; 32], &f1, |_| Some(PSK));
        let (init, _) = Initiator::start(&alice.creds, [1; 32], &Mode::Trusted, None).unwrap();
        let _ = init.handle_response(&f2);
    }
}

#[test]
fn the_static_key_is_derived_from_the_identity_key() {
    let (a1, a2, b) = (Side::new(1, "a"), Side::new(1, "a"), Side::new(2, "b"));
    assert_eq!(a1.creds.static_public(), a2.creds.static_public());
    assert_ne!(a1.creds.static_public(), b.creds.static_public());
    // Not the identity key, nor the ed25519 key's X25519 form: its own key.
    assert_ne!(a1.creds.static_public(), a1.key.verifying_key().as_bytes());
    assert_ne!(a1.creds.static_public(), a1.key.verifying_key().to_montgomery().as_bytes());
}

#[test]
fn a_verified_static_key_is_remembered_and_used() {
    let (alice, bob) = (Side::new(1, "alice"), Side::new(2, "bob"));
    assert!(alice.creds.known().get(&bob.id()).is_none());
    Run::trusted(Some(bob.id())).go(&alice, &bob).unwrap();
    assert_eq!(alice.creds.known().get(&bob.id()).as_ref().map(|k| &k[..]), Some(bob.creds.static_public()));
    assert_eq!(bob.creds.known().get(&alice.id()).as_ref().map(|k| &k[..]), Some(alice.creds.static_public()));
    // Now the dialler can agree with bob's static key before connecting,
    // and the handshake still agrees on everything.
    let prepared = Initiator::prepare(&alice.creds, Some(bob.id()));
    assert!(prepared.has_es());
    let (init, f1) = Initiator::start_prepared(&alice.creds, prepared, [1; 32], &Mode::Trusted).unwrap();
    let (resp, f2) = Responder::handle_hello(&bob.creds, [1; 32], &f1, |_| None).unwrap();
    let (init, f3) = init.handle_response(&f2).unwrap();
    let (b, f4) = resp.handle_finish(&f3).unwrap().accept().unwrap();
    let a = init.handle_confirmation(&f4).unwrap();
    assert_eq!(a.session_secret, b.session_secret);
    assert_eq!(a.remote.node_id, bob.id());
}

#[test]
fn nothing_is_precomputed_for_an_unknown_peer() {
    let (alice, bob) = (Side::new(1, "alice"), Side::new(2, "bob"));
    assert!(!Initiator::prepare(&alice.creds, Some(bob.id())).has_es());
    assert!(!Initiator::prepare(&alice.creds, None).has_es());
}

#[test]
fn a_stale_remembered_key_costs_only_the_work() {
    // The remembered key is not the one the peer presents (a stale or
    // hand-edited peer entry): the precomputed agreement goes unused, and
    // the presented key is checked and remembered.
    let (alice, bob, carol) = (Side::new(1, "alice"), Side::new(2, "bob"), Side::new(3, "carol"));
    alice.creds.known().remember(bob.id(), carol.creds.static_public().try_into().unwrap());
    let prepared = Initiator::prepare(&alice.creds, Some(bob.id()));
    assert!(prepared.has_es());
    let (init, f1) = Initiator::start_prepared(&alice.creds, prepared, [1; 32], &Mode::Trusted).unwrap();
    let (resp, f2) = Responder::handle_hello(&bob.creds, [1; 32], &f1, |_| None).unwrap();
    let (init, f3) = init.handle_response(&f2).unwrap();
    resp.handle_finish(&f3).unwrap();
    assert_eq!(init.remote().node_id, bob.id());
    assert_eq!(alice.creds.known().get(&bob.id()).as_ref().map(|k| &k[..]), Some(bob.creds.static_public()));
}

#[test]
fn a_known_node_with_another_static_key_is_checked_again() {
    // Alice knows bob's static key. Mallory runs Noise with her own static
    // key and claims bob's identity with bob's real signature (over bob's
    // key): the remembered pair does not match, so the signature is
    // checked, and fails.
    let (alice, bob, mallory) = (Side::new(1, "alice"), Side::new(2, "bob"), Side::new(3, "mallory"));
    Run::trusted(Some(bob.id())).go(&alice, &bob).unwrap();
    let err = respond_as(&alice, &mallory, &bob, ROLE_RESPONDER, bob.creds.static_public()).unwrap_err();
    assert_eq!(err, HandshakeError::BadSignature);
    // Bob himself still gets through, on the remembered pair.
    assert_eq!(respond_as(&alice, &bob, &bob, ROLE_RESPONDER, bob.creds.static_public()).unwrap().node_id, bob.id());
}

/// A valid node id, numbered `i`.
fn numbered_id(i: u32) -> NodeId {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    SigningKey::from_bytes(&seed).verifying_key().into()
}

#[test]
fn known_keys_are_bounded() {
    let known = KnownKeys::default();
    let ids: Vec<NodeId> = (0..=MAX_KNOWN_KEYS as u32).map(numbered_id).collect();
    for id in &ids {
        known.remember(*id, [1; 32]);
    }
    assert!(known.0.lock().unwrap().len() <= MAX_KNOWN_KEYS);
    assert_eq!(known.get(ids.last().unwrap()), Some([1; 32]));
}
