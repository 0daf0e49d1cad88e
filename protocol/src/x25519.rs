//! Faster primitives for snow, from aws-lc-rs, plugged in through snow's
//! resolver interface (nothing here implements cryptography itself).
//!
//! - X25519: the handshake puts several X25519 operations in a row on the
//!   connect path; aws-lc's is about twice as fast on this project's
//!   machines as snow's pure-Rust default (28 µs against 61 to 70 µs).
//!   A long-running node can hand responders ephemeral keys made ahead of
//!   time ([`crate::handshake::KeySource`]; the node's pool runs outside
//!   this crate), taking key generation off the connect path too.
//! - SHA-256: the Noise hash; aws-lc uses the CPU's SHA extensions where
//!   present, which makes every MixHash and HKDF cheaper than BLAKE2s.
//!
//! ChaChaPoly and the RNG stay snow's defaults.

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{BoxedCryptoResolver, CryptoResolver, DefaultResolver, FallbackResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

use crate::handshake::KeySource;

/// What a handshake's X25519 slots draw on besides snow's defaults.
#[derive(Clone, Default)]
pub(crate) struct Slots {
    /// This node's static key pair, so that building a handshake does not
    /// derive its public key again.
    pub(crate) known: Option<Arc<KeyPair>>,
    /// Shared with the handshake that owns the slots (a dial's prepared key).
    pub(crate) scratch: Option<SharedScratch>,
    /// Ephemeral keys made ahead of time (a responder's pool).
    pub(crate) source: Option<Arc<dyn KeySource>>,
}

/// snow's default resolver with X25519 from aws-lc-rs.
pub(crate) fn resolver(slots: Slots) -> BoxedCryptoResolver {
    Box::new(FallbackResolver::new(Box::new(AwsLc(slots)), Box::new(DefaultResolver)))
}

struct AwsLc(Slots);

/// What a handshake's X25519 slots share with the handshake that owns
/// them: an ephemeral key pair made ahead, which snow's key generation
/// takes, and an agreement worked out ahead, which `dh` hands back
/// instead of computing it.
#[derive(Default)]
pub(crate) struct Scratch {
    reserved: Option<Arc<KeyPair>>,
    ready: Option<Ready>,
}

/// An agreement between `own` (this side's ephemeral public key) and `peer`.
struct Ready {
    own: [u8; 32],
    peer: [u8; 32],
    secret: Zeroizing<[u8; 32]>,
}

pub(crate) type SharedScratch = Arc<Mutex<Scratch>>;

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch").field("ready", &self.ready.is_some()).finish_non_exhaustive()
    }
}

impl Scratch {
    /// Makes the handshake's ephemeral key pair now (or takes one from
    /// `source`); snow's key generation then takes it.
    pub(crate) fn reserve(shared: &SharedScratch, source: Option<&dyn KeySource>) -> bool {
        let pair = match source.and_then(|s| s.take()) {
            Some(key) => key.into_pair(),
            None => match KeyPair::generate(&mut |buf| getrandom::fill(buf).is_ok()) {
                Some(pair) => pair,
                None => return false,
            },
        };
        let Ok(mut scratch) = shared.lock() else { return false };
        scratch.reserved = Some(Arc::new(pair));
        true
    }

    /// Agrees the reserved ephemeral key with `peer` now, so that the
    /// handshake's own agreement with that key later costs nothing.
    /// Returns false when no key is reserved or `peer` is not a usable key
    /// (the handshake then fails or computes as usual).
    pub(crate) fn precompute(shared: &SharedScratch, peer: &[u8; 32]) -> bool {
        let Some(pair) = shared.lock().ok().and_then(|s| s.reserved.clone()) else { return false };
        let mut secret = Zeroizing::new([0u8; 32]);
        if pair.agree(peer, secret.as_mut()).is_err() {
            return false;
        }
        let Ok(mut scratch) = shared.lock() else { return false };
        scratch.ready = Some(Ready { own: pair.public, peer: *peer, secret });
        true
    }

    /// The agreement of `own` with `peer`, if it was worked out ahead.
    fn take(&mut self, own: &[u8; 32], peer: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
        let hit = self.ready.as_ref().is_some_and(|r| r.own == *own && r.peer == peer);
        hit.then(|| self.ready.take().map(|r| r.secret)).flatten()
    }
}

impl CryptoResolver for AwsLc {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        None
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::new(X25519Dh { pair: None, slots: self.0.clone() })),
            _ => None,
        }
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        match choice {
            HashChoice::SHA256 => Some(Box::new(Sha256(None))),
            _ => None,
        }
    }

    fn resolve_cipher(&self, _: &CipherChoice) -> Option<Box<dyn Cipher>> {
        None
    }
}

/// An X25519 private key, its public key, and aws-lc's parsed form of the
/// private key (parsing derives the public key, which costs about a
/// third of an agreement, so it is done once per key).
pub(crate) struct KeyPair {
    private: Zeroizing<[u8; 32]>,
    public: [u8; 32],
    key: PrivateKey,
}

impl KeyPair {
    /// Any 32 bytes are a valid X25519 private key (it is clamped).
    pub(crate) fn from_private(private: &[u8]) -> Option<Self> {
        let private: [u8; 32] = private.try_into().ok()?;
        let key = PrivateKey::from_private_key(&X25519, &private).ok()?;
        let public = key.compute_public_key().ok()?.as_ref().try_into().ok()?;
        Some(Self { private: Zeroizing::new(private), public, key })
    }

    /// A key pair from 32 bytes drawn with `rng` (which returns false
    /// when it fails).
    pub(crate) fn generate(rng: &mut dyn FnMut(&mut [u8]) -> bool) -> Option<Self> {
        let mut private = Zeroizing::new([0u8; 32]);
        rng(private.as_mut()).then(|| Self::from_private(private.as_ref()))?
    }

    /// The private key bytes.
    pub(crate) fn private(&self) -> &[u8] {
        self.private.as_ref()
    }

    /// The public key.
    pub(crate) fn public(&self) -> &[u8; 32] {
        &self.public
    }

    /// Agrees with `peer` (its first 32 bytes; snow passes longer buffers)
    /// into `out`.
    fn agree(&self, peer: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let peer = peer.get(..32).ok_or(snow::Error::Dh)?;
        // aws-lc refuses low-order points (an all-zero shared secret).
        agreement::agree(&self.key, UnparsedPublicKey::new(&X25519, peer), snow::Error::Dh, |secret| {
            out.get_mut(..secret.len()).ok_or(snow::Error::Dh)?.copy_from_slice(secret);
            Ok(())
        })
    }
}

struct X25519Dh {
    pair: Option<Arc<KeyPair>>,
    slots: Slots,
}

impl Dh for X25519Dh {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        32
    }

    fn priv_len(&self) -> usize {
        32
    }

    fn set(&mut self, privkey: &[u8]) {
        let known = self.slots.known.as_ref().filter(|k| {
            privkey.len() == 32 && aws_lc_rs::constant_time::verify_slices_are_equal(k.private(), privkey).is_ok()
        });
        // A key snow cannot use leaves the slot empty, and `dh` then fails.
        self.pair = known.cloned().or_else(|| KeyPair::from_private(privkey).map(Arc::new));
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        let reserved = self.slots.scratch.as_ref().and_then(|s| s.lock().ok()).and_then(|mut s| s.reserved.take());
        let pair = match reserved {
            Some(pair) => pair,
            None => Arc::new(match self.slots.source.as_ref().and_then(|s| s.take()) {
                Some(key) => key.into_pair(),
                None => KeyPair::generate(&mut |buf| rng.try_fill_bytes(buf).is_ok()).ok_or(snow::Error::Dh)?,
            }),
        };
        self.pair = Some(pair);
        Ok(())
    }

    fn pubkey(&self) -> &[u8] {
        self.pair.as_ref().map_or(&[0; 32], |p| &p.public)
    }

    fn privkey(&self) -> &[u8] {
        self.pair.as_ref().map_or(&[0; 32], |p| p.private())
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let pair = self.pair.as_ref().ok_or(snow::Error::Dh)?;
        let peer = pubkey.get(..32).ok_or(snow::Error::Dh)?;
        let ready =
            self.slots.scratch.as_ref().and_then(|s| s.lock().ok()).and_then(|mut s| s.take(&pair.public, peer));
        match ready {
            Some(secret) => {
                out.get_mut(..32).ok_or(snow::Error::Dh)?.copy_from_slice(secret.as_ref());
                Ok(())
            }
            None => pair.agree(peer, out),
        }
    }
}

/// SHA-256 as snow's `Hash`; snow builds HMAC and HKDF on top.
struct Sha256(Option<aws_lc_rs::digest::Context>);

impl Hash for Sha256 {
    fn name(&self) -> &'static str {
        "SHA256"
    }

    fn block_len(&self) -> usize {
        64
    }

    fn hash_len(&self) -> usize {
        32
    }

    fn reset(&mut self) {
        self.0 = Some(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256));
    }

    fn input(&mut self, data: &[u8]) {
        self.0.get_or_insert_with(|| aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256)).update(data);
    }

    fn result(&mut self, out: &mut [u8]) {
        let ctx = self.0.take().unwrap_or_else(|| aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256));
        let digest = ctx.finish();
        let len = out.len().min(32);
        out[..len].copy_from_slice(&digest.as_ref()[..len]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dh() -> X25519Dh {
        X25519Dh { pair: None, slots: Slots::default() }
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 7748, section 6.1.
    #[test]
    fn rfc7748_vectors() {
        let mut alice = dh();
        alice.set(&unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
        assert_eq!(alice.pubkey(), unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"));
        let mut bob = dh();
        bob.set(&unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"));
        assert_eq!(bob.pubkey(), unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"));
        let mut shared = [0u8; 32];
        alice.dh(bob.pubkey(), &mut shared).unwrap();
        assert_eq!(shared.to_vec(), unhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"));
    }

    /// The known static key is reused only for its own private key.
    #[test]
    fn the_known_key_is_used_only_for_its_own_private_key() {
        let known = Arc::new(KeyPair::from_private(&[5; 32]).unwrap());
        let mut k = X25519Dh { pair: None, slots: Slots { known: Some(known.clone()), ..Slots::default() } };
        k.set(&[5; 32]);
        assert!(Arc::ptr_eq(k.pair.as_ref().unwrap(), &known));
        k.set(&[6; 32]);
        assert!(!Arc::ptr_eq(k.pair.as_ref().unwrap(), &known));
        let mut check = dh();
        check.set(&[6; 32]);
        assert_eq!(k.pubkey(), check.pubkey());
        // A key of the wrong length leaves the slot empty: agreement fails.
        k.set(&[6; 31]);
        assert!(k.dh(check.pubkey(), &mut [0; 32]).is_err());
    }

    /// What `Initiator::prepare` relies on: snow's key generation takes
    /// the reserved key, and its agreement with the precomputed peer is
    /// the precomputed one (used once), equal to a fresh agreement.
    #[test]
    fn the_reserved_key_and_precomputed_agreement_are_used() {
        let scratch = SharedScratch::default();
        assert!(Scratch::reserve(&scratch, None));
        let peer = KeyPair::from_private(&[8; 32]).unwrap();
        assert!(Scratch::precompute(&scratch, &peer.public));
        let reserved = scratch.lock().unwrap().reserved.clone().unwrap();
        let mut e = X25519Dh { pair: None, slots: Slots { scratch: Some(scratch.clone()), ..Slots::default() } };
        let mut rng = snow::resolvers::DefaultResolver.resolve_rng().unwrap();
        e.generate(rng.as_mut()).unwrap();
        assert!(Arc::ptr_eq(e.pair.as_ref().unwrap(), &reserved));
        let mut out = [0u8; 32];
        e.dh(&peer.public, &mut out).unwrap();
        assert!(scratch.lock().unwrap().ready.is_none(), "the precomputed agreement was used");
        let mut direct = [0u8; 32];
        reserved.agree(&peer.public, &mut direct).unwrap();
        assert_eq!(out, direct);
        // Another peer key is agreed afresh.
        let other = KeyPair::from_private(&[9; 32]).unwrap();
        e.dh(&other.public, &mut out).unwrap();
        reserved.agree(&other.public, &mut direct).unwrap();
        assert_eq!(out, direct);
    }

    #[test]
    fn low_order_points_are_refused() {
        let mut k = dh();
        k.set(&[7; 32]);
        let mut out = [0u8; 32];
        assert!(k.dh(&[0; 32], &mut out).is_err());
        assert!(k.dh(&[1; 31], &mut out).is_err());
        // A longer buffer is read as its first 32 bytes, as snow expects.
        let mut long = k.pubkey().to_vec();
        long.extend_from_slice(&[0xee; 24]);
        assert!(k.dh(&long, &mut out).is_ok());
    }

    #[test]
    fn sha256_matches_a_known_digest() {
        let mut h = Sha256(None);
        h.reset();
        h.input(b"ab");
        h.input(b"c");
        let mut out = [0u8; 32];
        h.result(&mut out);
        assert_eq!(out.to_vec(), unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    }

    /// A key from the source is used when nothing is reserved; an empty
    /// source means a fresh key.
    #[test]
    fn keys_come_from_the_source_then_from_the_rng() {
        struct One(Mutex<Option<crate::handshake::EphemeralKey>>);
        impl KeySource for One {
            fn take(&self) -> Option<crate::handshake::EphemeralKey> {
                self.0.lock().unwrap().take()
            }
        }
        let key = crate::handshake::EphemeralKey::from_private([3; 32]).unwrap();
        let public = *key.public();
        let source: Arc<dyn KeySource> = Arc::new(One(Mutex::new(Some(key))));
        let mut e = X25519Dh { pair: None, slots: Slots { source: Some(source), ..Slots::default() } };
        let mut rng = snow::resolvers::DefaultResolver.resolve_rng().unwrap();
        e.generate(rng.as_mut()).unwrap();
        assert_eq!(e.pubkey(), public);
        e.generate(rng.as_mut()).unwrap();
        assert_ne!(e.pubkey(), public);
        let mut check = dh();
        check.set(e.privkey());
        assert_eq!(check.pubkey(), e.pubkey());
    }

    /// Handshakes between this resolver and snow's default interoperate.
    #[test]
    fn interoperates_with_snows_default() {
        interop("Noise_XX_25519_ChaChaPoly_BLAKE2s");
        interop("Noise_XX_25519_ChaChaPoly_SHA256");
    }

    fn interop(name: &str) {
        let params = || name.parse().unwrap();
        let ours = snow::Builder::with_resolver(params(), resolver(Slots::default()));
        let k1 = ours.generate_keypair().unwrap();
        let theirs = snow::Builder::new(params());
        let k2 = theirs.generate_keypair().unwrap();
        let mut i = ours.local_private_key(&k1.private).unwrap().build_initiator().unwrap();
        let mut r = theirs.local_private_key(&k2.private).unwrap().build_responder().unwrap();
        let (mut m, mut p) = ([0u8; 512], [0u8; 512]);
        let n = i.write_message(&[], &mut m).unwrap();
        r.read_message(&m[..n], &mut p).unwrap();
        let n = r.write_message(&[], &mut m).unwrap();
        i.read_message(&m[..n], &mut p).unwrap();
        let n = i.write_message(b"hi", &mut m).unwrap();
        let got = r.read_message(&m[..n], &mut p).unwrap();
        assert_eq!(&p[..got], b"hi");
        assert_eq!(r.get_remote_static().unwrap(), k1.public.as_slice());
    }
}
