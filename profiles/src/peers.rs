//! The trusted-peer list (`peers.toml`): who may connect, where to reach
//! them, and which verbs each may call on this node.
//!
//! Every change is a read-modify-write under the profile lock followed by an
//! atomic replace, so concurrent `alp peer …` commands never lose an update.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use alp_protocol::addr_record::AddrRecord;
use alp_protocol::{NodeId, Verb};
use serde::{Deserialize, Serialize};

use crate::fsutil::{LockError, ProfileLock};
use crate::name::{Name, NameError};
use crate::tomlfile::{self, FileError, Versioned};

/// A trusted peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// The local name for this peer.
    pub name: Name,
    /// Its identity.
    pub node_id: NodeId,
    /// Where to reach it, tried in order.
    #[serde(default)]
    pub addrs: Vec<PeerAddr>,
    /// Those of `addrs` this node made up rather than the peer announced:
    /// the peer gave a port on an unspecified IP (it was not serving, so
    /// it knew no better), and the IP is the one its connection came from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observed: Vec<PeerAddr>,
    /// The verbs it may call on this node.
    pub allow: BTreeSet<Verb>,
    /// When it was added (Unix seconds).
    pub added_at: u64,
    /// When it last completed a handshake with this node (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<u64>,
    /// The Noise static key it proved (with a signature by `node_id`) in
    /// its last handshake: a handshake presenting it again skips the
    /// signature check. Written by the node; a wrong value only costs
    /// that check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_key: Option<NoiseKey>,
    /// Tools the model may use when answering this peer's `agent.ask`
    /// (none unless granted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ask_tools: Vec<String>,
    /// Tokens this peer's asks may spend per UTC day.
    #[serde(default = "default_ask_tokens")]
    pub ask_daily_tokens: u64,
    /// US dollars this peer's asks may spend per UTC day (0: only the
    /// profile's own caps apply).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ask_daily_cost: f64,
    /// Addresses learned from the network, newest first (at most
    /// [`MAX_LEARNED`], each forgotten [`LEARNED_TTL`] after it last
    /// worked): tried before `addrs`, so a peer that moved is found again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learned: Vec<Learned>,
    /// When the newest address record learned from this peer expires
    /// (Unix seconds): one expiring earlier is older, or a replay, and
    /// changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_until: Option<u64>,
}

/// An address of a peer learned from the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learned {
    /// Where.
    pub addr: std::net::SocketAddr,
    /// How it was learned.
    pub how: How,
    /// When it last worked or was announced (Unix seconds).
    pub at: u64,
    /// When the peer's signed address record that announced it expires
    /// (Unix seconds): it is not tried after that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
}

impl Learned {
    /// Whether it is still worth a dial at `now`.
    pub fn live(&self, now: u64) -> bool {
        now.saturating_sub(self.at) < LEARNED_TTL && self.until.is_none_or(|u| u > now)
    }
}

/// How an address was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// The peer announced it: in an authenticated handshake, or in a
    /// signed address record (then with an expiry).
    Announced,
    /// The peer's running node connected from it (behind a NAT, the
    /// address its packets come from, which others can answer to).
    Seen,
    /// This node dialled it and the peer authenticated there.
    Dialled,
    /// Found on the local network (mDNS), under the peer's tag.
    Lan,
}

/// Learned addresses kept per peer.
pub const MAX_LEARNED: usize = 8;
/// Of those, addresses found on the LAN (unauthenticated until dialled).
pub const MAX_LAN: usize = 2;
/// A learned address is dropped this long after it last worked (seconds).
pub const LEARNED_TTL: u64 = 30 * 24 * 3600;

impl Peer {
    /// Notes that `addr` worked (or was announced) at `now`: it moves to
    /// the front; stale and surplus entries go.
    pub fn learn(&mut self, addr: std::net::SocketAddr, how: How, now: u64) {
        let Some(addr) = learnable(addr) else { return };
        self.learned.retain(|l| l.addr != addr && l.live(now));
        self.learned.insert(0, Learned { addr, how, at: now, until: None });
        // LAN announcements are not authenticated: at most [`MAX_LAN`] of
        // them, and over the cap they go before anything else does.
        let mut lan = 0;
        self.learned.retain(|l| {
            lan += usize::from(l.how == How::Lan);
            l.how != How::Lan || lan <= MAX_LAN
        });
        while self.learned.len() > MAX_LEARNED {
            let i = self.learned.iter().rposition(|l| l.how == How::Lan).unwrap_or(self.learned.len() - 1);
            self.learned.remove(i);
        }
    }

    /// Takes the addresses of a signed address record valid until `until`
    /// (Unix seconds) in place of an older record's. A record that
    /// expires before the newest one learned ([`Peer::record_until`]) is
    /// older, or a replay: it changes nothing. Addresses go after
    /// everything learned otherwise, so that what worked is still tried
    /// first, and over the cap they give way first (after LAN finds); what
    /// was learned otherwise is left as it is. Loopback addresses are kept
    /// only when `local` (the record came over a link on this host).
    pub fn learn_announced(&mut self, addrs: &[std::net::SocketAddr], now: u64, until: u64, local: bool) {
        self.learned.retain(|l| l.live(now));
        if self.record_until.is_some_and(|u| u > until) {
            return;
        }
        self.record_until = Some(until);
        self.learned.retain(|l| l.until.is_none());
        let usable = addrs.iter().filter_map(|a| learnable(*a)).filter(|a| local || !a.ip().is_loopback());
        for addr in usable {
            if !self.learned.iter().any(|l| l.addr == addr) {
                self.learned.push(Learned { addr, how: How::Announced, at: now, until: Some(until) });
            }
        }
        while self.learned.len() > MAX_LEARNED {
            let i = (self.learned.iter().rposition(|l| l.how == How::Lan))
                .or_else(|| self.learned.iter().rposition(|l| l.until.is_some()))
                .unwrap_or(self.learned.len() - 1);
            self.learned.remove(i);
        }
    }

    /// The addresses to try at `now`, best first: learned ones still live,
    /// newest first, then the configured ones not among them.
    pub fn dial_order(&self, now: u64) -> Vec<PeerAddr> {
        let mut out: Vec<PeerAddr> = self.learned.iter().filter(|l| l.live(now)).map(|l| l.addr.into()).collect();
        for a in &self.addrs {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }
}

/// `addr` as learned addresses keep it (IPv4 plain, never mapped), if it
/// is worth keeping at all.
fn learnable(addr: std::net::SocketAddr) -> Option<std::net::SocketAddr> {
    let addr = std::net::SocketAddr::new(addr.ip().to_canonical(), addr.port());
    // 240.0.0.0/4 are the link's virtual addresses of relayed paths.
    let relayed = matches!(addr.ip(), std::net::IpAddr::V4(v4) if v4.octets()[0] >= 240);
    let useless = addr.port() == 0 || addr.ip().is_unspecified() || addr.ip().is_multicast() || relayed;
    (!useless).then_some(addr)
}

/// The daily token allowance of a newly trusted peer's asks.
pub const DEFAULT_ASK_TOKENS: u64 = 100_000;

fn default_ask_tokens() -> u64 {
    DEFAULT_ASK_TOKENS
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl Peer {
    /// A new peer with least-privilege permissions.
    pub fn new(name: Name, node_id: NodeId, addrs: Vec<PeerAddr>, now: u64) -> Self {
        let allow = Verb::DEFAULT_ALLOWED.into_iter().collect();
        Self {
            name,
            node_id,
            addrs,
            observed: Vec::new(),
            allow,
            added_at: now,
            last_seen: None,
            noise_key: None,
            ask_tools: Vec::new(),
            ask_daily_tokens: DEFAULT_ASK_TOKENS,
            ask_daily_cost: 0.0,
            learned: Vec::new(),
            record_until: None,
        }
    }
}

/// The addresses to record for a peer that announced `announced` over a
/// connection from `from`: each as announced, except that an unspecified
/// IP (a node that was not serving gives its configured listen address),
/// or a loopback one seen from elsewhere, becomes `from`. Returns them
/// all, and those so made up (observed).
pub fn placed(announced: &[std::net::SocketAddr], from: Option<std::net::IpAddr>) -> (Vec<PeerAddr>, Vec<PeerAddr>) {
    // An IPv4 peer seen on a dual-stack socket shows as ::ffff:a.b.c.d.
    let from = from.map(|ip| ip.to_canonical());
    let (mut all, mut observed) = (Vec::new(), Vec::new());
    for a in announced.iter().filter(|a| a.port() != 0) {
        let stand_in = a.ip().is_unspecified() || (a.ip().is_loopback() && from.is_some_and(|f| !f.is_loopback()));
        let (addr, made): (PeerAddr, bool) = match (stand_in, from) {
            (false, _) => ((*a).into(), false),
            (true, Some(ip)) => (std::net::SocketAddr::new(ip, a.port()).into(), true),
            (true, None) => continue,
        };
        if !all.contains(&addr) {
            if made {
                observed.push(addr.clone());
            }
            all.push(addr);
        }
    }
    (all, observed)
}

/// A Noise static public key, as 64 hex digits in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoiseKey(pub [u8; 32]);

impl Serialize for NoiseKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&tomlfile::hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for NoiseKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        tomlfile::unhex(&text).map(Self).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// `HOST:PORT`, where HOST is an IP address (IPv6 in brackets) or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerAddr(String);

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address '{0}': expected HOST:PORT, e.g. 192.0.2.7:7117, [2001:db8::1]:7117 or host.example:7117")]
pub struct AddrError(String);

impl FromStr for PeerAddr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || AddrError(s.chars().take(100).collect());
        if s.parse::<std::net::SocketAddr>().is_ok() {
            return Ok(Self(s.to_owned()));
        }
        let (host, port) = s.rsplit_once(':').ok_or_else(err)?;
        port.parse::<u16>().map_err(|_| err())?;
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
            return Err(err());
        }
        Ok(Self(s.to_owned()))
    }
}

impl From<std::net::SocketAddr> for PeerAddr {
    fn from(a: std::net::SocketAddr) -> Self {
        Self(a.to_string())
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for PeerAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PeerAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A peer operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// No peer by that name.
    #[error(
        "unknown peer '{name}'{}: see `alp peer list`, or add it with `alp peer add NAME NODE_ID`",
        did_you_mean(suggestion)
    )]
    Unknown {
        /// The name given.
        name: String,
        /// The closest known name, if one is close.
        suggestion: Option<String>,
    },
    /// The name is already taken.
    #[error(
        "a peer named '{name}' already exists (node id {node_id}): pick another name or `alp peer remove {name}` first"
    )]
    DuplicateName {
        /// The existing peer's name.
        name: Name,
        /// The existing peer's id.
        node_id: NodeId,
    },
    /// The node id is already trusted under another name.
    #[error("node id {node_id} is already trusted as peer '{existing}'")]
    DuplicateNodeId {
        /// The id.
        node_id: NodeId,
        /// The existing entry's name.
        existing: Name,
    },
    /// The node id is this profile's own.
    #[error("{0} is this profile's own node id: a profile cannot trust itself")]
    OwnId(NodeId),
    /// The peer list cannot be read or written.
    #[error("peer list {0}")]
    File(#[from] FileError),
    /// The profile lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A name was invalid.
    #[error(transparent)]
    Name(#[from] NameError),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeersFile {
    version: u32,
    #[serde(default, rename = "peer")]
    peers: Vec<Peer>,
}

crate::tomlfile::versioned_file!(PeersFile, 1, peers);

/// The peer list of one profile.
///
/// A long-lived store (the server's) asks for the list on every connection
/// and request; parsing it costs about 9 µs per peer, so the list is kept
/// as last read and read again only when the file changed (another size,
/// inode or change time, which moves with every write: every save
/// replaces the file). Clones share that copy.
#[derive(Debug, Clone)]
pub struct PeerStore {
    path: PathBuf,
    lock: PathBuf,
    cache: Arc<Mutex<Option<Cached>>>,
}

/// The list as read from a file with this stamp.
#[derive(Debug)]
struct Cached {
    stamp: Stamp,
    peers: Arc<Vec<Peer>>,
}

/// What tells one version of the file from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    inode: u64,
    changed: (i64, i64),
}

impl Stamp {
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Self { len: m.len(), inode: m.ino(), changed: (m.ctime(), m.ctime_nsec()) })
    }
}

impl PeerStore {
    /// The store in `path`, serialised by the lock file `lock`.
    pub fn new(path: &Path, lock: &Path) -> Self {
        Self { path: path.to_owned(), lock: lock.to_owned(), cache: Arc::default() }
    }

    /// The list, read again only if the file changed since the last read.
    fn current(&self) -> Result<Arc<Vec<Peer>>, PeerError> {
        // The stamp is taken before reading: a change during the read
        // shows as a new stamp next time, never as a stale list.
        let stamp = Stamp::of(&self.path);
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let (Some(stamp), Some(cached)) = (stamp, cache.as_ref())
            && cached.stamp == stamp
        {
            return Ok(cached.peers.clone());
        }
        let file: PeersFile = tomlfile::load(&self.path)?;
        check_unique(&file.peers).map_err(|e| FileError::Corrupt { path: self.path.clone(), reason: e.to_string() })?;
        let peers = Arc::new(file.peers);
        *cache = stamp.map(|stamp| Cached { stamp, peers: peers.clone() });
        Ok(peers)
    }

    /// All peers, in file order. A missing file is an empty list.
    pub fn load(&self) -> Result<Vec<Peer>, PeerError> {
        Ok(self.current()?.as_ref().clone())
    }

    /// The peer with this node id, if trusted.
    pub fn find(&self, node_id: &NodeId) -> Result<Option<Peer>, PeerError> {
        Ok(self.current()?.iter().find(|p| p.node_id == *node_id).cloned())
    }

    /// The peer called `name`.
    pub fn get(&self, name: &str) -> Result<Peer, PeerError> {
        self.current()?
            .iter()
            .find(|p| p.name.as_str() == name)
            .cloned()
            .ok_or_else(|| unknown(&self.current().unwrap_or_default(), name))
    }

    /// Runs `f` on the list under the profile lock and saves the result if
    /// `f` succeeds. Nothing is written if it fails.
    pub fn update<R>(&self, f: impl FnOnce(&mut Vec<Peer>) -> Result<R, PeerError>) -> Result<R, PeerError> {
        let _lock = ProfileLock::acquire(&self.lock)?;
        let mut peers = self.load()?;
        let out = f(&mut peers)?;
        check_unique(&peers)?;
        let file = PeersFile { version: PeersFile::VERSION, peers };
        let comment = "Trusted peers of this profile. Edit with `alp peer ...`.";
        tomlfile::save(&self.path, comment, &file)?;
        Ok(out)
    }

    /// Records that `node_id` completed a handshake at `now` (Unix
    /// seconds), proving `noise_key`. Unknown ids are ignored.
    pub fn mark_seen(&self, node_id: &NodeId, now: u64, noise_key: NoiseKey) -> Result<(), PeerError> {
        self.seen(node_id, now, noise_key, &[], None)
    }

    /// Records that dialling `node_id` at `addr` authenticated it at `now`
    /// with `noise_key`.
    pub fn dialled(
        &self,
        node_id: &NodeId,
        now: u64,
        noise_key: NoiseKey,
        addr: std::net::SocketAddr,
    ) -> Result<(), PeerError> {
        self.update(|peers| {
            if let Some(p) = peers.iter_mut().find(|p| p.node_id == *node_id) {
                p.last_seen = Some(now);
                p.noise_key = Some(noise_key);
                p.learn(addr, How::Dialled, now);
            }
            Ok(())
        })
    }

    /// Learns the addresses of `record`, a signed address record already
    /// checked to be `node_id`'s and valid at `now`, until `until` (at
    /// most its expiry; [`Peer::learn_announced`]; `local`: it came over a
    /// link on this host). Writes nothing when the entry would barely
    /// change: every link to the peer brings a record, and one learned
    /// within the hour is as good.
    pub fn announced(
        &self,
        node_id: &NodeId,
        record: &AddrRecord,
        now: u64,
        until: u64,
        local: bool,
    ) -> Result<(), PeerError> {
        let until = until.min(record.expires_at);
        let learn = |p: &mut Peer| p.learn_announced(&record.addrs, now, until, local);
        let changes = |p: &Peer| {
            let mut after = p.clone();
            learn(&mut after);
            let shape = |q: &Peer| q.learned.iter().map(|l| (l.addr, l.how)).collect::<Vec<_>>();
            let later =
                |(a, b): (&Learned, &Learned)| a.until.unwrap_or(0) >= b.until.unwrap_or(0).saturating_add(3600);
            let newer = after.record_until.unwrap_or(0) >= p.record_until.unwrap_or(0).saturating_add(3600);
            shape(&after) != shape(p) || after.learned.iter().zip(&p.learned).any(later) || newer
        };
        if !self.find(node_id)?.is_some_and(|p| changes(&p)) {
            return Ok(());
        }
        self.update(|peers| {
            if let Some(p) = peers.iter_mut().find(|p| p.node_id == *node_id) {
                learn(p);
            }
            Ok(())
        })
    }

    /// [`Self::mark_seen`], also taking the addresses the peer announced
    /// in its handshake when its entry has none (a peer that paired from a
    /// command, not from its running node, becomes reachable once its
    /// node calls). Addresses set by hand are never replaced.
    pub fn seen(
        &self,
        node_id: &NodeId,
        now: u64,
        noise_key: NoiseKey,
        announced: &[std::net::SocketAddr],
        from: Option<std::net::SocketAddr>,
    ) -> Result<(), PeerError> {
        let from_ip = from.map(|f| f.ip());
        self.update(|peers| {
            if let Some(p) = peers.iter_mut().find(|p| p.node_id == *node_id) {
                p.last_seen = Some(now);
                p.noise_key = Some(noise_key);
                let (all, observed) = placed(announced, from_ip);
                if p.addrs.is_empty() {
                    (p.addrs, p.observed) = (all.clone(), observed);
                }
                // What a serving node announces, and where its packets come
                // from (the address a NAT gave its serving socket). A
                // command's handshake announces nothing and comes from a
                // passing port: neither is kept.
                if !announced.is_empty() {
                    for a in all.iter().rev().filter_map(|a| a.to_string().parse().ok()) {
                        p.learn(a, How::Announced, now);
                    }
                    if let Some(f) = from {
                        p.learn(f, How::Seen, now);
                    }
                }
            }
            Ok(())
        })
    }

    /// Adds `peer`, refusing a duplicate name or node id.
    pub fn add(&self, peer: Peer) -> Result<(), PeerError> {
        self.update(|peers| {
            peers.push(peer);
            Ok(())
        })
    }

    /// Removes the peer called `name` and returns it.
    pub fn remove(&self, name: &str) -> Result<Peer, PeerError> {
        self.update(|peers| {
            let i = position(peers, name)?;
            Ok(peers.remove(i))
        })
    }

    /// Renames the peer called `name` to `new` (its permissions, keys and
    /// addresses stay; shares and workgroups name it by node id).
    pub fn rename(&self, name: &str, new: Name) -> Result<Peer, PeerError> {
        self.update(|peers| {
            let i = position(peers, name)?;
            peers[i].name = new;
            Ok(peers[i].clone())
        })
    }

    /// Changes what `name` may call; returns the new permission set.
    pub fn set_allowed(&self, name: &str, verbs: &[Verb], allowed: bool) -> Result<Peer, PeerError> {
        self.update(|peers| {
            let i = position(peers, name)?;
            let peer = &mut peers[i];
            for v in verbs {
                if allowed {
                    peer.allow.insert(*v)
                } else {
                    peer.allow.remove(v)
                };
            }
            Ok(peer.clone())
        })
    }
}

/// A free local name for a peer that calls itself `display_name`: the
/// name made safe (lower case, `-` for other characters), then `-2`, `-3`…
/// until it is not taken.
pub fn suggest_name(display_name: &str, peers: &[Peer]) -> Name {
    let safe: String = display_name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .collect();
    let base: String = safe.trim_start_matches(|c: char| !c.is_ascii_alphanumeric()).chars().take(56).collect();
    let base = if base.is_empty() { "peer".to_owned() } else { base };
    let taken = |n: &str| peers.iter().any(|p| p.name.as_str() == n);
    (1..)
        .map(|i| if i == 1 { base.clone() } else { format!("{base}-{i}") })
        .find(|n| !taken(n))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(Name::fallback)
}

fn position(peers: &[Peer], name: &str) -> Result<usize, PeerError> {
    peers.iter().position(|p| p.name.as_str() == name).ok_or_else(|| unknown(peers, name))
}

/// "No such peer", with the closest name among `peers` if one is close.
fn unknown(peers: &[Peer], name: &str) -> PeerError {
    let suggestion = crate::suggest::closest(name, peers.iter().map(|p| p.name.as_str()));
    PeerError::Unknown { name: name.to_owned(), suggestion }
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion.as_ref().map_or_else(String::new, |s| format!(" (did you mean '{s}'?)"))
}

fn check_unique(peers: &[Peer]) -> Result<(), PeerError> {
    for (i, p) in peers.iter().enumerate() {
        for earlier in &peers[..i] {
            if earlier.name == p.name {
                return Err(PeerError::DuplicateName { name: earlier.name.clone(), node_id: earlier.node_id });
            }
            if earlier.node_id == p.node_id {
                return Err(PeerError::DuplicateNodeId { node_id: p.node_id, existing: earlier.name.clone() });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn learned_addresses_are_newest_first_bounded_and_expire() {
        let id = id(1);
        let mut p = Peer::new("bob".parse().unwrap(), id, vec!["192.0.2.1:7117".parse().unwrap()], 0);
        let a = |port: u16| std::net::SocketAddr::from(([198, 51, 100, 1], port));
        p.learn(a(1), How::Announced, 100);
        p.learn(a(2), How::Seen, 200);
        p.learn(a(1), How::Dialled, 300);
        assert_eq!(
            p.learned.iter().map(|l| (l.addr.port(), l.how)).collect::<Vec<_>>(),
            [(1, How::Dialled), (2, How::Seen)]
        );
        // Learned first, then the configured address.
        let order: Vec<String> = p.dial_order(300).iter().map(ToString::to_string).collect();
        assert_eq!(order, ["198.51.100.1:1", "198.51.100.1:2", "192.0.2.1:7117"]);
        // A mapped IPv4 address is stored as IPv4; port 0 and unspecified IPs are not kept.
        p.learn("[::ffff:198.51.100.1]:3".parse().unwrap(), How::Seen, 400);
        p.learn(a(0), How::Seen, 400);
        p.learn("0.0.0.0:9".parse().unwrap(), How::Seen, 400);
        assert_eq!(p.learned[0].addr, a(3));
        assert_eq!(p.learned.len(), 3);
        for port in 10..30 {
            p.learn(a(port), How::Seen, 500);
        }
        assert_eq!(p.learned.len(), MAX_LEARNED);
        // Entries not renewed within the TTL go at the next change.
        p.learn(a(99), How::Seen, 500 + LEARNED_TTL);
        assert_eq!(p.learned.len(), 1);
    }

    /// A signed record's addresses go after what worked, expire with the
    /// record, and never push out an address that worked.
    #[test]
    fn addresses_from_a_record_follow_what_worked_and_expire_with_it() {
        let mut p = Peer::new("bob".parse().unwrap(), id(1), vec![], 0);
        let a = |port: u16| std::net::SocketAddr::from(([198, 51, 100, 1], port));
        p.learn(a(1), How::Dialled, 100);
        p.learn_announced(&[a(2), a(1), "[::ffff:198.51.100.1]:3".parse().unwrap(), a(0)], 100, 1_000, false);
        let shape = |p: &Peer| p.learned.iter().map(|l| (l.addr.port(), l.how, l.until)).collect::<Vec<_>>();
        assert_eq!(
            shape(&p),
            [(1, How::Dialled, None), (2, How::Announced, Some(1_000)), (3, How::Announced, Some(1_000))]
        );
        // A newer record replaces the older one's addresses; an older one
        // (or a replay) changes nothing.
        p.learn_announced(&[a(3), a(5)], 200, 2_000, false);
        assert_eq!(
            shape(&p),
            [(1, How::Dialled, None), (3, How::Announced, Some(2_000)), (5, How::Announced, Some(2_000))]
        );
        let before = p.clone();
        p.learn_announced(&[a(6)], 300, 1_900, false);
        assert_eq!(p, before);
        // Even when none of its addresses is kept as a record's (they all
        // worked already), the newest record's expiry is remembered.
        let mut q = Peer::new("carol".parse().unwrap(), id(2), vec![], 0);
        q.learn(a(1), How::Dialled, 100);
        q.learn_announced(&[a(1)], 100, 5_000, false);
        q.learn_announced(&[a(9)], 100, 4_000, false);
        assert_eq!(q.learned.len(), 1);
        // Expired ones are not dialled, and go at the next change.
        let order = |now| p.dial_order(now).iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(order(1_500), ["198.51.100.1:1", "198.51.100.1:3", "198.51.100.1:5"]);
        assert_eq!(order(2_000), ["198.51.100.1:1"]);
        p.learn(a(4), How::Seen, 2_000);
        assert_eq!(shape(&p), [(4, How::Seen, None), (1, How::Dialled, None)]);
        // A loopback address is kept only from a record that came over a
        // link on this host.
        p.learn_announced(&["127.0.0.1:7".parse().unwrap(), a(8)], 2_000, 3_000, false);
        assert_eq!(p.learned.iter().map(|l| l.addr.port()).collect::<Vec<_>>(), [4, 1, 8]);
        p.learn_announced(&["127.0.0.1:7".parse().unwrap()], 2_000, 3_000, true);
        assert_eq!(p.learned.iter().map(|l| l.addr.port()).collect::<Vec<_>>(), [4, 1, 7]);
        // Over the cap, a record's addresses give way; what worked stays.
        for port in 10..20 {
            p.learn(a(port), How::Seen, 2_100);
        }
        p.learn_announced(&[a(50), a(51)], 2_200, 3_000, false);
        assert_eq!(p.learned.len(), MAX_LEARNED);
        assert!(p.learned.iter().all(|l| l.until.is_none()), "{:?}", p.learned);
    }

    #[test]
    fn an_unspecified_announced_ip_becomes_the_observed_one() {
        let a = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        let from = Some("192.0.2.9".parse().unwrap());
        let (all, observed) = placed(&[a("0.0.0.0:7118"), a("198.51.100.1:7118"), a("0.0.0.0:7118")], from);
        let p = |s: &str| s.parse::<PeerAddr>().unwrap();
        assert_eq!(all, [p("192.0.2.9:7118"), p("198.51.100.1:7118")]);
        assert_eq!(observed, [p("192.0.2.9:7118")]);
        // Not knowing where it came from, an unspecified IP is dropped;
        // so is port 0.
        assert_eq!(placed(&[a("[::]:1"), a("192.0.2.1:0")], None), (vec![], vec![]));
        // Loopback seen from elsewhere, and an IPv4-mapped source.
        let mapped = Some("::ffff:192.0.2.9".parse().unwrap());
        let (all, observed) = placed(&[a("127.0.0.1:5"), a("0.0.0.0:5")], mapped);
        assert_eq!((all.clone(), observed), (vec![p("192.0.2.9:5")], vec![p("192.0.2.9:5")]));
        // Loopback seen from loopback stays.
        assert_eq!(placed(&[a("127.0.0.1:5")], Some("127.0.0.1".parse().unwrap())).0, [p("127.0.0.1:5")]);
    }

    use super::*;
    use ed25519_dalek::SigningKey;

    fn id(n: u8) -> NodeId {
        SigningKey::from_bytes(&[n; 32]).verifying_key().into()
    }

    fn store() -> (tempfile::TempDir, PeerStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = PeerStore::new(&dir.path().join("peers.toml"), &dir.path().join(".lock"));
        (dir, s)
    }

    fn peer(name: &str, n: u8) -> Peer {
        Peer::new(name.parse().unwrap(), id(n), vec!["127.0.0.1:7117".parse().unwrap()], 1)
    }

    #[test]
    fn add_list_remove_round_trip() {
        let (_d, s) = store();
        assert!(s.load().unwrap().is_empty());
        s.add(peer("bob", 1)).unwrap();
        s.add(peer("carol", 2)).unwrap();
        let all = s.load().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], peer("bob", 1));
        assert_eq!(s.remove("bob").unwrap().node_id, id(1));
        assert_eq!(s.load().unwrap().len(), 1);
        assert!(matches!(s.remove("bob"), Err(PeerError::Unknown { .. })));
    }

    #[test]
    fn seen_records_the_time_and_the_noise_key() {
        let (_d, s) = store();
        s.add(peer("alice", 1)).unwrap();
        s.mark_seen(&id(1), 77, NoiseKey([0xab; 32])).unwrap();
        s.mark_seen(&id(9), 78, NoiseKey([1; 32])).unwrap();
        let p = s.get("alice").unwrap();
        assert_eq!((p.last_seen, p.noise_key), (Some(77), Some(NoiseKey([0xab; 32]))));
        let text = std::fs::read_to_string(&s.path).unwrap();
        assert!(text.contains(&format!("noise_key = \"{}\"", "ab".repeat(32))), "{text}");
        assert_eq!(s.load().unwrap().len(), 1);
        // Anything but 64 hex digits is refused, not misread.
        for bad in ["ab", "zz".repeat(32).as_str(), "ab".repeat(33).as_str()] {
            std::fs::write(&s.path, text.replace(&"ab".repeat(32), bad)).unwrap();
            assert!(s.load().is_err(), "{bad}");
        }
    }

    #[test]
    fn duplicates_are_refused_and_nothing_is_written() {
        let (_d, s) = store();
        s.add(peer("bob", 1)).unwrap();
        let before = std::fs::read(&s.path).unwrap();
        let e = s.add(peer("bob", 2)).unwrap_err();
        assert!(matches!(e, PeerError::DuplicateName { .. }), "{e}");
        let e = s.add(peer("robert", 1)).unwrap_err();
        assert!(e.to_string().contains("'bob'"), "{e}");
        assert_eq!(std::fs::read(&s.path).unwrap(), before);
    }

    #[test]
    fn permissions_default_to_ping_and_info() {
        let (_d, s) = store();
        s.add(peer("bob", 1)).unwrap();
        assert_eq!(s.get("bob").unwrap().allow, Verb::DEFAULT_ALLOWED.into_iter().collect());
        let p = s.set_allowed("bob", &[Verb::BlobGet], true).unwrap();
        assert!(p.allow.contains(&Verb::BlobGet));
        let p = s.set_allowed("bob", &[Verb::LinkPing], false).unwrap();
        assert!(!p.allow.contains(&Verb::LinkPing));
        assert_eq!(s.get("bob").unwrap(), p);
    }

    #[test]
    fn the_kept_list_follows_every_change_to_the_file() {
        let (d, s) = store();
        let other = PeerStore::new(&s.path, &d.path().join(".lock"));
        assert!(s.load().unwrap().is_empty());
        // Another store (another process) saves: seen at once.
        other.add(peer("alice", 1)).unwrap();
        assert_eq!(s.find(&id(1)).unwrap().unwrap().name.as_str(), "alice");
        other.set_allowed("alice", &[Verb::BlobGet], true).unwrap();
        assert!(s.get("alice").unwrap().allow.contains(&Verb::BlobGet));
        // A file replaced by hand, and one edited in place.
        let text = std::fs::read_to_string(&s.path).unwrap();
        let tmp = d.path().join("edited");
        std::fs::write(&tmp, text.replace("alice", "carol")).unwrap();
        std::fs::rename(&tmp, &s.path).unwrap();
        assert_eq!(s.find(&id(1)).unwrap().unwrap().name.as_str(), "carol");
        std::fs::write(&s.path, text.replace("alice", "dave-long-name")).unwrap();
        assert_eq!(s.find(&id(1)).unwrap().unwrap().name.as_str(), "dave-long-name");
        // Damage after a good read is reported, not hidden by the copy.
        std::fs::write(&s.path, "not toml [").unwrap();
        assert!(s.load().is_err());
        // And a removed file is an empty list again.
        std::fs::remove_file(&s.path).unwrap();
        assert!(s.load().unwrap().is_empty());
    }

    #[test]
    fn corrupt_file_is_reported_and_kept() {
        let (_d, s) = store();
        for bad in ["not toml [", "version = 9\n", "version = 1\n[[peer]]\nname = \"x\"\n"] {
            std::fs::write(&s.path, bad).unwrap();
            let e = s.add(peer("bob", 1)).unwrap_err();
            assert!(matches!(e, PeerError::File(FileError::Corrupt { .. })), "{e}");
            assert!(e.to_string().contains("peers.toml"));
            assert_eq!(std::fs::read_to_string(&s.path).unwrap(), bad);
        }
    }

    #[test]
    fn concurrent_updates_are_not_lost() {
        let (_d, s) = store();
        let handles: Vec<_> = (0..16u8)
            .map(|n| {
                let s = s.clone();
                std::thread::spawn(move || s.add(peer(&format!("p{n}"), n + 1)).unwrap())
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(s.load().unwrap().len(), 16);
    }

    #[test]
    fn suggested_names_are_valid_and_free() {
        let taken = vec![peer("bob", 1), peer("bob-2", 2)];
        assert_eq!(suggest_name("Bob", &taken).as_str(), "bob-3");
        assert_eq!(suggest_name("Ada Lovelace!", &[]).as_str(), "ada-lovelace-");
        assert_eq!(suggest_name("../etc", &[]).as_str(), "etc");
        assert_eq!(suggest_name("", &[]).as_str(), "peer");
        assert_eq!(suggest_name("日本", &[]).as_str(), "peer");
        assert!(suggest_name(&"x".repeat(500), &[]).as_str().len() <= 64);
    }

    #[test]
    fn addresses_are_validated() {
        for ok in ["127.0.0.1:7117", "[::1]:1", "host.example:80", "localhost:0"] {
            assert!(ok.parse::<PeerAddr>().is_ok(), "{ok}");
        }
        for bad in ["", "host", "host:", ":80", "host:99999", "a b:1", "-x:1", "::1:80x"] {
            assert!(bad.parse::<PeerAddr>().is_err(), "{bad}");
        }
    }
}
