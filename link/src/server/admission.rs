//! Who gets a connection slot. Two budgets, so that strangers cannot
//! crowd out trusted peers:
//!
//! - *pending*: connections that have not proven an identity yet (QUIC
//!   handshake, then the Noise handshake), each with a short deadline. A
//!   quarter full, new connections must first prove their address (a QUIC
//!   Retry), so a flood from forged addresses holds nothing. Half full, one
//!   address (one /64 for IPv6) may hold only a few. Full, a newcomer
//!   takes the slot of the oldest connection of the address holding the
//!   most, if that address holds more than the newcomer's does: slots
//!   spread evenly over addresses, and connections that never finish
//!   cannot keep a real handshake out.
//! - *peers*: authenticated connections, at most a few per peer and a cap
//!   in all.
//!
//! Pure bookkeeping with time passed in: the server asks it what to do
//! with each connection and tells it when one ends.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use alp_protocol::NodeId;

/// The budgets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budgets {
    /// Unauthenticated connections at once.
    pub(crate) pending: u32,
    /// Unauthenticated connections at once from one address (or /64).
    pub(crate) pending_per_address: u32,
    /// Authenticated connections at once, in all.
    pub(crate) peers: u32,
    /// Authenticated connections at once from one peer.
    pub(crate) per_peer: u32,
}

/// What to do with a new connection attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Accept it into pending slot `id`; if `evict` is given, that older
    /// pending connection must be closed to make room.
    Accept { id: u64, evict: Option<u64> },
    /// Answer with a QUIC Retry: the address must prove itself first.
    Retry,
    /// Refuse it.
    Refuse(Refused),
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Refused {
    /// Too many unauthenticated connections from this address.
    Address,
    /// The pending budget is full, and spread evenly over addresses.
    Busy,
    /// This peer has as many connections as it may.
    Peer,
    /// The authenticated budget is full.
    Full,
}

impl Refused {
    /// A short reason, for logs and close frames.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refused::Address => "too many unauthenticated connections from this address",
            Refused::Busy => "busy: too many connections are being set up",
            Refused::Peer => "too many connections from this peer",
            Refused::Full => "connection limit reached",
        }
    }
}

/// The slots in use.
#[derive(Debug)]
pub(crate) struct Admission {
    budgets: Budgets,
    next_id: u64,
    /// Pending connections by id (ids grow with time: the first is the oldest).
    pending: BTreeMap<u64, (IpAddr, Instant)>,
    pending_by_address: HashMap<IpAddr, u32>,
    peers: HashMap<NodeId, u32>,
    peers_total: u32,
}

/// The address a per-address cap counts: IPv4 as is, IPv6 by its /64
/// (one host usually has a whole /64).
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        },
    }
}

impl Admission {
    pub(crate) fn new(budgets: Budgets) -> Self {
        Self {
            budgets,
            next_id: 0,
            pending: BTreeMap::new(),
            pending_by_address: HashMap::new(),
            peers: HashMap::new(),
            peers_total: 0,
        }
    }

    /// Pending connections now.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether `parts` of the pending budget (in quarters) are in use.
    fn used(&self, quarters: u64) -> bool {
        self.pending.len() as u64 * 4 >= u64::from(self.budgets.pending.max(1)) * quarters
    }

    /// A new connection attempt from `ip` (`validated`: its address is
    /// proven, by a Retry token or an earlier connection).
    pub(crate) fn admit(&mut self, ip: IpAddr, validated: bool, now: Instant) -> Admit {
        if !validated && self.used(1) {
            return Admit::Retry;
        }
        let ip = bucket(ip);
        let here = self.pending_by_address.get(&ip).copied().unwrap_or(0);
        if self.used(2) && here >= self.budgets.pending_per_address.max(1) {
            return Admit::Refuse(Refused::Address);
        }
        let mut evict = None;
        if self.used(4) {
            match self.oldest_of_the_heaviest_address() {
                Some((id, held)) if held > here + 1 => {
                    self.end_pending(id);
                    evict = Some(id);
                }
                _ => return Admit::Refuse(Refused::Busy),
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, (ip, now));
        *self.pending_by_address.entry(ip).or_default() += 1;
        Admit::Accept { id, evict }
    }

    /// The oldest pending connection of the address that holds the most,
    /// and how many that address holds.
    fn oldest_of_the_heaviest_address(&self) -> Option<(u64, u32)> {
        let (&heaviest, &held) = self.pending_by_address.iter().max_by_key(|(_, n)| **n)?;
        self.pending.iter().find(|(_, (ip, _))| *ip == heaviest).map(|(&id, _)| (id, held))
    }

    /// Pending connection `id` ended (authenticated, refused, timed out or
    /// evicted). Ending one twice is harmless.
    pub(crate) fn end_pending(&mut self, id: u64) {
        let Some((ip, _)) = self.pending.remove(&id) else { return };
        if let Some(n) = self.pending_by_address.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.pending_by_address.remove(&ip);
            }
        }
    }

    /// An authenticated connection of `peer` wants a slot.
    pub(crate) fn admit_peer(&mut self, peer: NodeId) -> Result<(), Refused> {
        let n = self.peers.get(&peer).copied().unwrap_or(0);
        if n >= self.budgets.per_peer.max(1) {
            return Err(Refused::Peer);
        }
        if self.peers_total >= self.budgets.peers.max(1) {
            return Err(Refused::Full);
        }
        self.peers.insert(peer, n + 1);
        self.peers_total += 1;
        Ok(())
    }

    /// An authenticated connection of `peer` ended.
    pub(crate) fn end_peer(&mut self, peer: NodeId) {
        if let Some(n) = self.peers.get_mut(&peer) {
            *n -= 1;
            self.peers_total = self.peers_total.saturating_sub(1);
            if *n == 0 {
                self.peers.remove(&peer);
            }
        }
    }
}

/// Refusals, counted, and logged at most once per [`LOG_EVERY`] so that a
/// flood cannot flood the log too.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    counts: BTreeMap<&'static str, u64>,
    retries: u64,
    since: Option<Instant>,
}

/// How often refusals are summarised in the log at most.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);

impl RefusalLog {
    /// Counts a refusal (or a retry); returns the summary to log if one is due.
    pub(crate) fn count(&mut self, what: Option<&'static str>, now: Instant) -> Option<String> {
        match what {
            Some(reason) => *self.counts.entry(reason).or_default() += 1,
            None => self.retries += 1,
        }
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) < LOG_EVERY {
            return None;
        }
        let mut parts: Vec<String> = self.counts.iter().map(|(r, n)| format!("{n} ({r})")).collect();
        if self.retries > 0 {
            parts.push(format!("{} asked to prove their address", self.retries));
        }
        let secs = now.saturating_duration_since(since).as_secs();
        *self = RefusalLog { since: Some(now), ..RefusalLog::default() };
        Some(format!("in the last {secs}s, connections refused: {}", parts.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Budgets = Budgets { pending: 8, pending_per_address: 2, peers: 3, per_peer: 2 };

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn one_address_gets_only_its_share_once_the_budget_is_half_used() {
        let mut a = Admission::new(B);
        let t = Instant::now();
        // Unloaded: one address may take more than its share.
        for _ in 0..4 {
            assert!(matches!(a.admit(ip(2), true, t), Admit::Accept { evict: None, .. }));
        }
        // Half full: not any more; another address still gets in.
        assert_eq!(a.admit(ip(2), true, t), Admit::Refuse(Refused::Address));
        assert!(matches!(a.admit(ip(1), true, t), Admit::Accept { .. }));
    }

    #[test]
    fn when_busy_unproven_addresses_must_prove_themselves_first() {
        let mut a = Admission::new(B);
        let t = Instant::now();
        assert!(matches!(a.admit(ip(1), false, t), Admit::Accept { .. }));
        assert!(matches!(a.admit(ip(2), false, t), Admit::Accept { .. }));
        // A quarter of 8 in use: busy.
        assert_eq!(a.admit(ip(3), false, t), Admit::Retry);
        assert!(matches!(a.admit(ip(3), true, t), Admit::Accept { .. }));
    }

    #[test]
    fn a_full_pending_budget_makes_the_heaviest_address_give_way_to_a_lighter_one() {
        let mut a = Admission::new(B);
        let t = Instant::now();
        let mut ids = Vec::new();
        for i in 0..8u8 {
            // Addresses 10 (twice, the first ones) and 11 to 16.
            match a.admit(ip(10 + i.saturating_sub(1)), true, t) {
                Admit::Accept { id, evict: None } => ids.push(id),
                other => panic!("{other:?}"),
            }
        }
        // A newcomer takes the slot of the oldest of the address holding two.
        match a.admit(ip(99), true, t) {
            Admit::Accept { evict: Some(old), .. } => assert_eq!(old, ids[0]),
            other => panic!("{other:?}"),
        }
        assert_eq!(a.pending(), 8);
        assert_eq!(a.pending_by_address.get(&ip(10)), Some(&1));
        // Now every address holds one: nobody gives way to a second one.
        assert_eq!(a.admit(ip(99), true, t), Admit::Refuse(Refused::Busy));
    }

    #[test]
    fn a_flood_from_many_addresses_cannot_keep_another_out() {
        let b = Budgets { pending: 128, pending_per_address: 16, peers: 256, per_peer: 4 };
        let mut a = Admission::new(b);
        let t = Instant::now();
        let accepted = (0..1000).filter(|_| matches!(a.admit(ip(2), true, t), Admit::Accept { .. })).count();
        assert_eq!(accepted, 64, "one address stops at half the budget");
        // Forty more addresses, over and over: they fill the budget and take
        // slots from the heaviest, until slots are spread evenly.
        for round in 0..50 {
            for last in 10..50 {
                let _ = a.admit(ip(last), true, t + Duration::from_millis(round));
            }
        }
        assert_eq!(a.pending(), 128);
        let most = a.pending_by_address.values().max().copied().unwrap();
        let least = a.pending_by_address.values().min().copied().unwrap();
        assert!(most - least <= 1, "spread evenly: {least} to {most}");
        // A newcomer still gets in.
        assert!(matches!(a.admit(ip(1), true, t), Admit::Accept { evict: Some(_), .. }));
    }

    #[test]
    fn ending_frees_the_slot_once() {
        let mut a = Admission::new(B);
        let t = Instant::now();
        let Admit::Accept { id, .. } = a.admit(ip(2), true, t) else { panic!() };
        a.end_pending(id);
        a.end_pending(id);
        assert_eq!(a.pending(), 0);
        assert!(a.pending_by_address.is_empty());
    }

    #[test]
    fn peers_have_their_own_caps() {
        let mut a = Admission::new(B);
        let id = |seed: u8| NodeId::from(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key());
        let (p, q, r) = (id(1), id(2), id(3));
        assert_eq!(a.admit_peer(p), Ok(()));
        assert_eq!(a.admit_peer(p), Ok(()));
        assert_eq!(a.admit_peer(p), Err(Refused::Peer));
        assert_eq!(a.admit_peer(q), Ok(()));
        assert_eq!(a.admit_peer(r), Err(Refused::Full));
        a.end_peer(p);
        assert_eq!(a.admit_peer(r), Ok(()));
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(bucket(a), bucket(b));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(bucket(mapped), IpAddr::from([10, 0, 0, 1]));
    }

    #[test]
    fn refusals_are_summarised_at_most_every_ten_seconds() {
        let mut log = RefusalLog::default();
        let t = Instant::now();
        let mut lines = 0;
        for i in 0..10_000u64 {
            if log.count(Some("busy"), t + Duration::from_millis(i * 3)).is_some() {
                lines += 1;
            }
        }
        assert_eq!(lines, 2, "30 s of refusals make two summary lines");
    }
}
