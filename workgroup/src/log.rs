//! One workgroup's log: every event a node holds, checked as it arrives.
//!
//! An event is stored only if it belongs to this group, its author was
//! ever invited (or created the group), its author's previous event and
//! every event it depends on are already here, and its clock is above
//! theirs. So a log is always closed under references, and sending events
//! in clock order lets any member take them in one pass. Two different
//! events with the same author and sequence number are equivocation: the
//! second is refused and both are kept as evidence, which travels with
//! the log and makes every member set that author's feed aside from that
//! point.

use std::collections::{BTreeMap, HashMap, HashSet};

use alp_protocol::NodeId;

use crate::body::Body;
use crate::event::{Event, EventId, GroupId, Header, MAX_CLOCK_STEP};

/// The most events one log holds.
pub const MAX_EVENTS: usize = 1_000_000;
/// The most bytes of events one log holds.
pub const MAX_BYTES: usize = 256 << 20;
/// The most authors (the creator and every node ever invited) one log knows.
pub const MAX_AUTHORS: usize = 1024;

/// A workgroup's events.
#[derive(Debug, Clone)]
pub struct Log {
    group: GroupId,
    events: HashMap<EventId, Event>,
    /// Per author, its events by sequence number (from 1, no gaps).
    feeds: HashMap<NodeId, Vec<EventId>>,
    /// The group's creator and every node ever invited.
    authors: HashSet<NodeId>,
    /// Per equivocating author, the proof at its lowest sequence number.
    evidence: BTreeMap<NodeId, Equivocation>,
    max_clock: u64,
    bytes: usize,
}

/// Two events one author signed with the same sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equivocation {
    /// The one this node holds.
    pub kept: Event,
    /// The other.
    pub other: Event,
}

impl Equivocation {
    /// Its author.
    pub fn author(&self) -> NodeId {
        self.kept.author()
    }

    /// The sequence number both events claim.
    pub fn seq(&self) -> u64 {
        self.kept.header().seq
    }
}

/// What [`Log::ingest`] did with a valid event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored.
    Added,
    /// Already here.
    Duplicate,
}

/// Why an event was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// It belongs to another group.
    #[error("event {0} belongs to another workgroup")]
    OtherGroup(EventId),
    /// Its author was never invited.
    #[error("event {id} is by {author}, who was never invited to this workgroup")]
    UnknownAuthor {
        /// The event.
        id: EventId,
        /// Its author.
        author: NodeId,
    },
    /// Something it refers to is not here (yet).
    #[error("event {id} refers to {missing}, which this node does not have")]
    Missing {
        /// The event.
        id: EventId,
        /// What it refers to.
        missing: EventId,
    },
    /// Its prev is not its author's previous event.
    #[error("event {0} does not follow its author's previous event")]
    BrokenChain(EventId),
    /// Its clock is not above what it refers to, or jumps too far.
    #[error("event {0} has a clock out of order")]
    BadClock(EventId),
    /// Its author already signed another event with that sequence number.
    #[error("{} signed two different events as number {} of its feed (equivocation)", .proof.author(), .proof.seq())]
    Equivocation {
        /// The two events.
        proof: Box<Equivocation>,
        /// Whether this is new evidence (the author's lowest fork so far).
        new: bool,
    },
    /// The log is full.
    #[error("this workgroup's log is full ({MAX_EVENTS} events, {} MiB)", MAX_BYTES >> 20)]
    Full,
    /// The group knows as many authors as it may.
    #[error("this workgroup has {MAX_AUTHORS} members and invitees already")]
    TooManyAuthors,
    /// Not a group's first event.
    #[error("event {0} is not a group's first event")]
    NotAStart(EventId),
}

impl Log {
    /// A log holding a group's first event.
    pub fn new(genesis: Event) -> Result<Self, Refused> {
        if !matches!(genesis.body(), Body::Create(_)) || genesis.header().group.is_some() {
            return Err(Refused::NotAStart(genesis.id()));
        }
        let group = genesis.id();
        let author = genesis.author();
        Ok(Self {
            group,
            events: HashMap::from([(group, genesis)]),
            feeds: HashMap::from([(author, vec![group])]),
            authors: HashSet::from([author]),
            evidence: BTreeMap::new(),
            max_clock: 1,
            bytes: 0,
        })
    }

    /// The group's id.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The group's first event.
    pub fn genesis(&self) -> &Event {
        &self.events[&self.group]
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Never: a log holds at least its first event.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// An event by id.
    pub fn get(&self, id: &EventId) -> Option<&Event> {
        self.events.get(id)
    }

    /// Every event, in no particular order.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.events.values()
    }

    /// Every event in fold order: by clock, then id. References always
    /// come before the events that make them.
    pub fn ordered(&self) -> Vec<&Event> {
        let mut all: Vec<&Event> = self.events.values().collect();
        all.sort_unstable_by_key(|e| (e.header().clock, e.id()));
        all
    }

    /// Equivocations found so far: per author, the lowest fork.
    pub fn evidence(&self) -> impl Iterator<Item = &Equivocation> {
        self.evidence.values()
    }

    /// Whether `node` was ever invited (or created the group).
    pub fn knows(&self, node: &NodeId) -> bool {
        self.authors.contains(node)
    }

    /// The last sequence number held per author.
    pub fn heads(&self) -> BTreeMap<NodeId, u64> {
        self.feeds.iter().map(|(a, f)| (*a, f.len() as u64)).collect()
    }

    /// The latest event of `author`, if any.
    pub fn last_of(&self, author: &NodeId) -> Option<&Event> {
        self.feeds.get(author).and_then(|f| f.last()).and_then(|id| self.events.get(id))
    }

    /// The highest clock in the log.
    pub fn max_clock(&self) -> u64 {
        self.max_clock
    }

    /// The header of `author`'s next event, written at `time_ms` and
    /// referring to `deps`: the next sequence number after its last event
    /// here, and a clock above everything in the log (the author has seen
    /// it all).
    pub fn next_header(&self, author: NodeId, mut deps: Vec<EventId>, time_ms: u64) -> Header {
        deps.sort_unstable();
        deps.dedup();
        let seq = self.feeds.get(&author).map_or(0, Vec::len) as u64 + 1;
        let prev = self.last_of(&author).map(Event::id);
        // Above everything seen, but never further above what this event
        // refers to than a log accepts: an event dated far ahead by
        // someone else must not leave this author unable to write.
        let floor = prev.iter().chain(&deps).filter_map(|id| self.events.get(id)).map(|e| e.header().clock).max();
        let clock = match floor {
            Some(f) => (self.max_clock + 1).min(f + MAX_CLOCK_STEP),
            None => self.max_clock + 1,
        };
        Header { group: Some(self.group), author, seq, prev, clock, time_ms, deps }
    }

    /// The events a member holding `theirs` lacks, in fold order.
    pub fn missing_for(&self, theirs: &BTreeMap<NodeId, u64>) -> Vec<&Event> {
        let mut out: Vec<&Event> = self
            .feeds
            .iter()
            .flat_map(|(author, feed)| {
                let have = theirs.get(author).copied().unwrap_or(0).min(feed.len() as u64) as usize;
                feed[have..].iter()
            })
            .filter_map(|id| self.events.get(id))
            .collect();
        out.sort_unstable_by_key(|e| (e.header().clock, e.id()));
        out
    }

    /// Checks `event` against the log and stores it.
    pub fn ingest(&mut self, event: Event) -> Result<Ingested, Refused> {
        let id = event.id();
        if self.events.contains_key(&id) {
            return Ok(Ingested::Duplicate);
        }
        if event.header().group != Some(self.group) {
            return Err(Refused::OtherGroup(id));
        }
        let author = event.author();
        if !self.authors.contains(&author) {
            return Err(Refused::UnknownAuthor { id, author });
        }
        let seq = event.header().seq;
        let feed_len = self.feeds.get(&author).map_or(0, Vec::len) as u64;
        if seq <= feed_len {
            let kept = self.feeds[&author][(seq - 1) as usize];
            let proof = Equivocation { kept: self.events[&kept].clone(), other: event };
            let new = self.keep_evidence(proof.clone());
            return Err(Refused::Equivocation { proof: Box::new(proof), new });
        }
        if self.events.len() >= MAX_EVENTS || self.bytes + event.bytes().len() > MAX_BYTES {
            return Err(Refused::Full);
        }
        let mut floor = 0;
        for parent in event.parents() {
            let p = self.events.get(&parent).ok_or(Refused::Missing { id, missing: parent })?;
            floor = floor.max(p.header().clock);
        }
        if seq != feed_len + 1 || event.header().prev != self.last_of(&author).map(Event::id) {
            // A gap (its previous event is missing) or a fork off an earlier one.
            return match event.header().prev {
                Some(prev) if !self.events.contains_key(&prev) => Err(Refused::Missing { id, missing: prev }),
                _ => Err(Refused::BrokenChain(id)),
            };
        }
        let clock = event.header().clock;
        if clock <= floor || clock - floor > MAX_CLOCK_STEP {
            return Err(Refused::BadClock(id));
        }
        if let Body::Invite(invite) = event.body()
            && let Ok(node) = NodeId::from_bytes(invite.member)
            && !self.authors.contains(&node)
        {
            if self.authors.len() >= MAX_AUTHORS {
                return Err(Refused::TooManyAuthors);
            }
            self.authors.insert(node);
        }
        self.feeds.entry(author).or_default().push(id);
        self.max_clock = self.max_clock.max(clock);
        self.bytes += event.bytes().len();
        self.events.insert(id, event);
        Ok(Ingested::Added)
    }

    /// Records equivocation evidence received from another member, if both
    /// events are this group's, signed by one author ever invited, with one
    /// sequence number, and different. Returns whether it was new: the
    /// author's lowest fork so far.
    pub fn add_evidence(&mut self, a: Event, b: Event) -> bool {
        let same = a.author() == b.author() && a.header().seq == b.header().seq;
        let ours = a.group() == self.group && b.group() == self.group;
        if !same || !ours || a.id() == b.id() || !self.authors.contains(&a.author()) {
            return false;
        }
        let held = self.feeds.get(&a.author()).and_then(|f| f.get((a.header().seq - 1) as usize)).copied();
        let (kept, other) = if held == Some(b.id()) { (b, a) } else { (a, b) };
        self.keep_evidence(Equivocation { kept, other })
    }

    /// Keeps `proof` if it is the author's lowest fork so far.
    fn keep_evidence(&mut self, proof: Equivocation) -> bool {
        let lower = self.evidence.get(&proof.author()).is_none_or(|e| proof.seq() < e.seq());
        if lower {
            self.evidence.insert(proof.author(), proof);
        }
        lower
    }

    /// Where each equivocating author's feed is set aside from.
    pub fn forks(&self) -> HashMap<NodeId, u64> {
        self.evidence.iter().map(|(a, e)| (*a, e.seq())).collect()
    }
}

#[cfg(test)]
mod tests;
