//! Replication. Each other member has a courier: one task that alone
//! sends to that member, so events reach it in order and a member that
//! does not answer holds up only its own courier. A courier is poked on
//! every change and then sends each group's events the member lacks (it
//! knows the member's heads from its last answer); every
//! `workgroup.sync_interval` it also catches up both ways (`wg.sync`, then
//! pushing back what the member lacks). A member that was offline catches
//! up when it returns; members that cannot reach each other catch up
//! through those that can.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use alp_protocol::{NodeId, Verb};
use alp_workgroup::state::MemberStatus;
use alp_workgroup::sync::{self, PushRequest, PushResponse, SyncRequest, SyncResponse};
use alp_workgroup::{Event, GroupId};
use serde_bytes::ByteBuf;
use tokio::sync::Notify;

use super::Workgroups;
use super::links::{LinkError, Links};

/// Most `wg.sync` rounds in one catch-up (each moves a batch).
const MAX_ROUNDS: usize = 1000;

/// What a member holds of each group, as far as this node knows.
type Known = HashMap<GroupId, BTreeMap<NodeId, u64>>;

/// The couriers of this node.
#[derive(Debug)]
pub(crate) struct Replicator {
    wg: Arc<Workgroups>,
    links: Arc<Links>,
    every: Duration,
    couriers: Mutex<HashMap<NodeId, Arc<Notify>>>,
}

impl Replicator {
    pub(crate) fn new(wg: Arc<Workgroups>, links: Arc<Links>, every: Duration) -> Arc<Self> {
        Arc::new(Self { wg, links, every: every.max(Duration::from_millis(200)), couriers: Mutex::default() })
    }

    /// Wakes the couriers of every other member of `group` (starting those
    /// that do not run yet).
    pub(crate) fn poke(self: &Arc<Self>, group: GroupId) {
        for node in others(&self.wg, group) {
            self.courier(node).notify_one();
        }
    }

    /// Starts a courier for every member of every group.
    pub(crate) fn start_all(self: &Arc<Self>) {
        for state in self.wg.states() {
            self.poke(state.group);
        }
    }

    fn courier(self: &Arc<Self>, node: NodeId) -> Arc<Notify> {
        let mut couriers = self.couriers.lock().unwrap_or_else(PoisonError::into_inner);
        couriers
            .entry(node)
            .or_insert_with(|| {
                let wake = Arc::new(Notify::new());
                tokio::spawn(courier(self.clone(), node, wake.clone()));
                wake
            })
            .clone()
    }
}

/// One member's courier: delivers on every poke, catches up on a timer.
async fn courier(r: Arc<Replicator>, node: NodeId, wake: Arc<Notify>) {
    let mut known: Known = HashMap::new();
    let mut tick = tokio::time::interval(r.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let full = tokio::select! {
            () = wake.notified() => false,
            _ = tick.tick() => true,
        };
        let groups: Vec<GroupId> =
            r.wg.states().iter().map(|s| s.group).filter(|g| others(&r.wg, *g).contains(&node)).collect();
        for group in groups {
            let (invitee, member) = (is_invitee(&r.wg, group, node), is_member(&r.wg, group, node));
            let result = if invitee && !known.contains_key(&group) {
                // It does not hold the group yet: the invitation is all of it.
                push_all(&r.wg, &r.links, node, group).await.map(|heads| {
                    known.insert(group, heads);
                })
            } else if (full && member) || !known.contains_key(&group) {
                // A former member is asked once what it holds, then told
                // only how its membership ended (see `deliver`).
                sync_with(&r.wg, &r.links, node, group, &mut known).await
            } else {
                deliver(&r.wg, &r.links, node, group, &mut known).await
            };
            if let Err(e) = result {
                // What it last said it held stays the best guess: the next
                // poke delivers from there, the timer tries a catch-up.
                tracing::debug!("workgroup courier to {}: {e}", r.links.name_of(node));
            }
        }
    }
}

/// Sends `node` the events of `group` it lacks, as far as `known` says.
async fn deliver(
    wg: &Workgroups,
    links: &Links,
    node: NodeId,
    group: GroupId,
    known: &mut Known,
) -> Result<(), LinkError> {
    // A member that left or was removed gets events only up to that
    // point, so that it learns it, and nothing after.
    let theirs = known.get(&group).cloned().unwrap_or_default();
    let cutoff = wg.state(group).and_then(|s| s.members.get(&node).and_then(|m| m.ended_clock));
    let lacking: Vec<Event> = wg
        .with_log(group, |l| {
            l.missing_for(&theirs)
                .into_iter()
                .filter(|e| cutoff.is_none_or(|c| e.header().clock <= c))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if lacking.is_empty() {
        return Ok(());
    }
    let heads = push(links, node, group, &lacking).await?;
    known.insert(group, heads);
    Ok(())
}

/// Sends `events` of `group` to `node`, in batches; returns what it then
/// holds.
pub(crate) async fn push(
    links: &Links,
    node: NodeId,
    group: GroupId,
    events: &[Event],
) -> Result<BTreeMap<NodeId, u64>, LinkError> {
    let mut rest: Vec<&Event> = events.iter().collect();
    let mut heads = BTreeMap::new();
    while !rest.is_empty() {
        let (batch, _) = sync::batch(&rest);
        let n = batch.len();
        let body = PushRequest { group: group.0, events: batch, evidence: Vec::new() };
        let answer: PushResponse = links.request(node, Verb::WgPush, &body).await?;
        if let Some(why) = answer.refused.first() {
            tracing::debug!(peer = %links.name_of(node), "some events were refused: {why}");
        }
        heads = sync::heads_map(&answer.heads);
        rest.drain(..n);
    }
    Ok(heads)
}

/// Everyone who is or was in `group` (or invited to it) but this node.
pub(crate) fn others(wg: &Workgroups, group: GroupId) -> Vec<NodeId> {
    let me = wg.me();
    wg.state(group).map(|s| s.members.keys().filter(|n| **n != me).copied().collect()).unwrap_or_default()
}

/// Whether `node` is invited to `group` and has not joined: it does not
/// hold the group, so it gets all of it.
fn is_invitee(wg: &Workgroups, group: GroupId, node: NodeId) -> bool {
    wg.state(group).and_then(|s| s.members.get(&node).map(|m| m.status == MemberStatus::Invited)).unwrap_or(false)
}

/// Whether `node` is an active member of `group`.
fn is_member(wg: &Workgroups, group: GroupId, node: NodeId) -> bool {
    wg.state(group).is_some_and(|s| s.active(&node).is_some())
}

async fn push_all(
    wg: &Workgroups,
    links: &Links,
    node: NodeId,
    group: GroupId,
) -> Result<BTreeMap<NodeId, u64>, LinkError> {
    let all: Vec<Event> = wg.with_log(group, |l| l.ordered().into_iter().cloned().collect()).unwrap_or_default();
    push(links, node, group, &all).await
}

/// Catches up with `node` on `group`: fetches what it has that this node
/// lacks, then pushes what it lacks; records what it then holds.
pub(crate) async fn sync_with(
    wg: &Arc<Workgroups>,
    links: &Links,
    node: NodeId,
    group: GroupId,
    known: &mut Known,
) -> Result<(), LinkError> {
    let mut theirs = BTreeMap::new();
    let mut fetched = 0;
    for _ in 0..MAX_ROUNDS {
        let heads = wg.with_log(group, |l| sync::heads_list(&l.heads())).unwrap_or_default();
        let answer: SyncResponse = links.request(node, Verb::WgSync, &SyncRequest { group: group.0, heads }).await?;
        theirs = sync::heads_map(&answer.heads);
        let (more, n) = (answer.more, answer.events.len());
        let received = decode(answer.events, answer.evidence);
        let mut problems = received.refused;
        let wg2 = wg.clone();
        let taken = tokio::task::spawn_blocking(move || wg2.ingest(group, received.events, received.evidence)).await;
        let added = match taken {
            Ok(Ok((added, refused))) => {
                problems.extend(refused);
                added.len()
            }
            Ok(Err(e)) => {
                tracing::warn!("workgroup sync: {e}");
                break;
            }
            Err(_) => break,
        };
        fetched += added;
        if let Some(why) = problems.first() {
            tracing::warn!(peer = %links.name_of(node), "workgroup events refused: {why}");
        }
        // Done, or nothing new taken though more waits (do not ask for the
        // same batch again).
        if !more || n == 0 || added == 0 {
            break;
        }
    }
    known.insert(group, theirs);
    deliver(wg, links, node, group, known).await?;
    if fetched > 0 {
        tracing::info!(peer = %links.name_of(node), fetched, "workgroup caught up");
    }
    Ok(())
}

/// Events and evidence as received: those that decode (each is checked
/// again by the log), and why the others did not.
pub(crate) struct Received {
    pub(crate) events: Vec<Event>,
    pub(crate) evidence: Vec<(Event, Event)>,
    pub(crate) refused: Vec<String>,
}

/// Decodes events and evidence as received.
pub(crate) fn decode(events: Vec<ByteBuf>, evidence: Vec<(ByteBuf, ByteBuf)>) -> Received {
    let mut refused = Vec::new();
    let events = events
        .iter()
        .filter_map(|b| Event::decode(b).map_err(|e| refused.push(format!("an event was refused: {e}"))).ok())
        .collect();
    let evidence = evidence
        .iter()
        .take(sync::MAX_EVIDENCE)
        .filter_map(|(a, b)| Some((Event::decode(a).ok()?, Event::decode(b).ok()?)))
        .collect();
    Received { events, evidence, refused }
}
