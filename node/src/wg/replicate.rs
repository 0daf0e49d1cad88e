//! Replication: this node's new events go to every other member at once
//! (`wg.push`), and every `workgroup.sync_interval` it catches up with
//! each member (`wg.sync`, then pushing back what that member lacks). A
//! member that was offline catches up when it returns; members that cannot
//! reach each other catch up through those that can.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alp_protocol::{NodeId, Verb};
use alp_workgroup::state::MemberStatus;
use alp_workgroup::sync::{self, PushRequest, PushResponse, SyncRequest, SyncResponse};
use alp_workgroup::{Event, GroupId};
use serde_bytes::ByteBuf;

use super::Workgroups;
use super::links::{LinkError, Links};

/// Most `wg.sync` rounds in one catch-up (each moves a batch).
const MAX_ROUNDS: usize = 1000;

/// Sends `events` of `group` to `node`, in batches.
pub(crate) async fn push(links: &Links, node: NodeId, group: GroupId, events: &[Event]) -> Result<u32, LinkError> {
    let mut added = 0;
    let mut rest: Vec<&Event> = events.iter().collect();
    while !rest.is_empty() {
        let (batch, _) = sync::batch(&rest);
        let n = batch.len();
        let body = PushRequest { group: group.0, events: batch, evidence: Vec::new() };
        let answer: PushResponse = links.request(node, Verb::WgPush, &body).await?;
        added += answer.added;
        if let Some(why) = answer.refused.first() {
            tracing::debug!(peer = %links.name_of(node), "some events were refused: {why}");
        }
        rest.drain(..n);
    }
    Ok(added)
}

/// The members (and invitees) of `group` other than this node.
pub(crate) fn others(wg: &Workgroups, group: GroupId) -> Vec<NodeId> {
    let me = wg.me();
    wg.state(group)
        .map(|s| {
            s.members
                .values()
                .filter(|m| m.node != me)
                .filter(|m| matches!(m.status, MemberStatus::Active | MemberStatus::Invited))
                .map(|m| m.node)
                .collect()
        })
        .unwrap_or_default()
}

/// Hands this node's new events to every other member, each in its own
/// task; a member that cannot be reached catches up later.
pub(crate) fn announce(wg: &Arc<Workgroups>, links: &Arc<Links>, group: GroupId, events: Vec<Event>) {
    for node in others(wg, group) {
        let (wg, links, events) = (wg.clone(), links.clone(), events.clone());
        tokio::spawn(async move {
            let sent = if is_invitee(&wg, group, node) {
                push_all(&wg, &links, node, group).await
            } else {
                push(&links, node, group, &events).await
            };
            if let Err(e) = sent {
                tracing::debug!("workgroup push to {}: {e}", links.name_of(node));
            }
        });
    }
}

/// Whether `node` is invited to `group` and has not joined: it does not
/// hold the group, so it gets all of it.
fn is_invitee(wg: &Workgroups, group: GroupId, node: NodeId) -> bool {
    wg.state(group).and_then(|s| s.members.get(&node).map(|m| m.status == MemberStatus::Invited)).unwrap_or(false)
}

async fn push_all(wg: &Workgroups, links: &Links, node: NodeId, group: GroupId) -> Result<u32, LinkError> {
    let all: Vec<Event> = wg.with_log(group, |l| l.ordered().into_iter().cloned().collect()).unwrap_or_default();
    push(links, node, group, &all).await
}

/// Catches up with `node` on `group`: fetches what it has that this node
/// lacks, then pushes what it lacks. Returns events fetched and pushed.
pub(crate) async fn sync_with(
    wg: &Arc<Workgroups>,
    links: &Links,
    node: NodeId,
    group: GroupId,
) -> Result<(usize, u32), LinkError> {
    let mut fetched = 0;
    let mut theirs = BTreeMap::new();
    for _ in 0..MAX_ROUNDS {
        let heads = wg.with_log(group, |l| sync::heads_list(&l.heads())).unwrap_or_default();
        let answer: SyncResponse = links.request(node, Verb::WgSync, &SyncRequest { group: group.0, heads }).await?;
        theirs = sync::heads_map(&answer.heads);
        let more = answer.more;
        let n = answer.events.len();
        let received = decode(answer.events, answer.evidence);
        let mut problems = received.refused;
        let wg2 = wg.clone();
        let taken = tokio::task::spawn_blocking(move || wg2.ingest(group, received.events, received.evidence)).await;
        match taken {
            Ok(Ok((added, refused))) => {
                fetched += added.len();
                problems.extend(refused);
                if let Some(why) = problems.first() {
                    tracing::warn!(peer = %links.name_of(node), "workgroup events refused: {why}");
                }
                if added.is_empty() && more {
                    // Nothing new taken though more is waiting: stop rather
                    // than ask for the same batch again.
                    break;
                }
            }
            Ok(Err(e)) => {
                tracing::warn!("workgroup sync: {e}");
                break;
            }
            Err(_) => break,
        }
        if !more || n == 0 {
            break;
        }
    }
    let lacking: Vec<Event> =
        wg.with_log(group, |l| l.missing_for(&theirs).into_iter().cloned().collect()).unwrap_or_default();
    let pushed = if lacking.is_empty() { 0 } else { push(links, node, group, &lacking).await? };
    Ok((fetched, pushed))
}

/// Catches up with every member of every group now, then every `every`.
pub(crate) async fn sync_loop(wg: Arc<Workgroups>, links: Arc<Links>, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(200)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let groups: Vec<GroupId> = wg.states().iter().map(|s| s.group).collect();
        let mut rounds = tokio::task::JoinSet::new();
        for group in groups {
            for node in others(&wg, group) {
                let (wg, links) = (wg.clone(), links.clone());
                rounds.spawn(async move {
                    if is_invitee(&wg, group, node) {
                        if let Err(e) = push_all(&wg, &links, node, group).await {
                            tracing::debug!("workgroup invitation to {}: {e}", links.name_of(node));
                        }
                        return;
                    }
                    match sync_with(&wg, &links, node, group).await {
                        Ok((0, 0)) => {}
                        Ok((fetched, pushed)) => {
                            tracing::info!(peer = %links.name_of(node), fetched, pushed, "workgroup caught up")
                        }
                        Err(e) => tracing::debug!("workgroup sync: {e}"),
                    }
                });
            }
        }
        while rounds.join_next().await.is_some() {}
    }
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
