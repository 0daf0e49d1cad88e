//! The bodies of the replication verbs, and how a batch is filled.
//!
//! `wg.sync`: the caller sends what it has (the last sequence number per
//! author) and gets back, in fold order, events it lacks (up to a batch's
//! worth; `more` says to ask again), equivocation evidence, and what the
//! responder has, so the caller can push back what the responder lacks
//! with `wg.push`. Events travel as their signed bytes; the receiver
//! decodes and checks each one as if it had never seen the sender.

use std::collections::BTreeMap;

use alp_protocol::NodeId;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::body::Key;
use crate::event::Event;
use crate::log::Log;

/// Bytes of events per batch: well inside a 1 MiB frame.
pub const BATCH_BYTES: usize = 768 * 1024;
/// Most authors in a heads list.
pub const MAX_HEADS: usize = 4096;
/// Most pieces of evidence per message.
pub const MAX_EVIDENCE: usize = 64;

/// The last sequence number held of one author's feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// The author.
    #[serde(with = "serde_bytes")]
    pub author: Key,
    /// Its last sequence number held.
    pub seq: u64,
}

/// `wg.sync` request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// The workgroup.
    #[serde(with = "serde_bytes")]
    pub group: Key,
    /// What the caller has.
    pub heads: Vec<Head>,
}

/// `wg.sync` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncResponse {
    /// Events the caller lacks, in fold order.
    pub events: Vec<ByteBuf>,
    /// Whether more are waiting: ask again.
    pub more: bool,
    /// What the responder has.
    pub heads: Vec<Head>,
    /// Equivocation evidence: pairs of events.
    pub evidence: Vec<(ByteBuf, ByteBuf)>,
}

/// `wg.push` request body: events (in fold order) and evidence the
/// receiver lacks; a node invited to a group learns of it this way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// The workgroup.
    #[serde(with = "serde_bytes")]
    pub group: Key,
    /// Events, in fold order.
    pub events: Vec<ByteBuf>,
    /// Equivocation evidence.
    pub evidence: Vec<(ByteBuf, ByteBuf)>,
}

/// `wg.push` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushResponse {
    /// Events stored.
    pub added: u32,
    /// Why others were refused (the first few).
    pub refused: Vec<String>,
    /// What the receiver now has.
    pub heads: Vec<Head>,
}

/// A heads list from a map.
pub fn heads_list(heads: &BTreeMap<NodeId, u64>) -> Vec<Head> {
    heads.iter().map(|(a, s)| Head { author: *a.as_bytes(), seq: *s }).collect()
}

/// A heads map from a list, skipping entries that are not node ids.
pub fn heads_map(heads: &[Head]) -> BTreeMap<NodeId, u64> {
    heads.iter().take(MAX_HEADS).filter_map(|h| NodeId::from_bytes(h.author).ok().map(|a| (a, h.seq))).collect()
}

/// The first batch of `events`: as many as fit in [`BATCH_BYTES`] (at
/// least one), and whether any are left.
pub fn batch(events: &[&Event]) -> (Vec<ByteBuf>, bool) {
    batch_within(events, BATCH_BYTES)
}

/// [`batch`] within `budget` bytes (but at least one event).
fn batch_within(events: &[&Event], budget: usize) -> (Vec<ByteBuf>, bool) {
    let mut out = Vec::new();
    let mut bytes = 0;
    for e in events {
        if !out.is_empty() && bytes + e.bytes().len() > budget {
            return (out, true);
        }
        bytes += e.bytes().len();
        out.push(ByteBuf::from(e.bytes().to_vec()));
    }
    (out, false)
}

/// The log's evidence (one piece per equivocating author), as sent, up
/// to `budget` bytes.
pub fn evidence_of(log: &Log, budget: usize) -> Vec<(ByteBuf, ByteBuf)> {
    let mut used = 0;
    log.evidence()
        .take(MAX_EVIDENCE)
        .take_while(|e| {
            used += e.kept.bytes().len() + e.other.bytes().len();
            used <= budget
        })
        .map(|e| (ByteBuf::from(e.kept.bytes().to_vec()), ByteBuf::from(e.other.bytes().to_vec())))
        .collect()
}

/// What the caller of `wg.sync` gets: the evidence, the events it lacks
/// (one batch; evidence and events together within [`BATCH_BYTES`]), and
/// the responder's heads.
pub fn answer(log: &Log, theirs: &BTreeMap<NodeId, u64>) -> SyncResponse {
    let evidence = evidence_of(log, BATCH_BYTES / 2);
    let spent: usize = evidence.iter().map(|(a, b)| a.len() + b.len()).sum();
    let missing = log.missing_for(theirs);
    let (events, more) = batch_within(&missing, BATCH_BYTES - spent);
    SyncResponse { events, more, heads: heads_list(&log.heads()), evidence }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Group;

    #[test]
    fn a_batch_holds_at_least_one_event_and_says_when_more_wait() {
        let mut g = Group::new(1);
        for i in 0..40 {
            g.note(0, &"x".repeat(60_000 + i));
        }
        let all: Vec<&Event> = g.log.ordered();
        let (first, more) = batch(&all);
        assert!(more && first.len() < all.len() && !first.is_empty());
        assert!(first.iter().map(|b| b.len()).sum::<usize>() <= BATCH_BYTES);
        let (rest, more) = batch(&all[first.len()..]);
        assert!(!rest.is_empty());
        let _ = more;
    }

    #[test]
    fn answers_carry_what_the_caller_lacks_in_order() {
        let mut g = Group::new(2);
        g.note(0, "a");
        g.note(1, "b");
        let theirs = BTreeMap::from([(g.node(0), 1)]);
        let answer = answer(&g.log, &theirs);
        let ids: Vec<_> = answer.events.iter().map(|b| Event::decode(b).map(|e| e.id()).ok()).collect();
        let want: Vec<_> = g.log.missing_for(&theirs).iter().map(|e| Some(e.id())).collect();
        assert_eq!(ids, want);
        assert_eq!(heads_map(&answer.heads), g.log.heads());
    }
}
