//! The workgroup verbs. Every trusted peer may call them; what it gets is
//! decided here, by the group's state: `wg.sync` and `wg.push` only for a
//! group the caller is a member of or invited to (a removed member, or
//! anyone else, finds no such group), and `wg.blob` only for blobs a group
//! both nodes are active members of refers to. A workgroup never widens
//! what a peer may do outside it.

use std::sync::Arc;

use alp_blobstore::BlobHash;
use alp_link::verbs::blob_get::Visibility;
use alp_link::{Call, Handler};
use alp_protocol::NodeId;
use alp_protocol::envelope::ErrorCode;
use alp_workgroup::state::{MemberStatus, TaskStatus};
use alp_workgroup::sync::{self, PushRequest, PushResponse, SyncRequest};
use alp_workgroup::{EventId, State};

use super::Workgroups;
use super::replicate::decode;

/// Answers `wg.sync`: the events the caller lacks.
#[derive(Debug)]
pub(crate) struct WgSync(pub(crate) Arc<Workgroups>);

/// Answers `wg.push`: events (or an invitation) from a member.
#[derive(Debug)]
pub(crate) struct WgPush(pub(crate) Arc<Workgroups>);

/// Which blobs `wg.blob` serves: those named as task inputs or outputs by
/// a group where both nodes are active members.
#[derive(Debug)]
pub(crate) struct WgBlobs(pub(crate) Arc<Workgroups>);

fn no_such_group() -> String {
    "no such workgroup here".to_owned()
}

impl Handler for WgSync {
    async fn handle(&self, call: Call) {
        let answer = match call.body::<SyncRequest>() {
            Ok(req) => {
                let caller = call.session.peer;
                let theirs = sync::heads_map(&req.heads);
                let group = EventId(req.group);
                let answer = in_group(&self.0, group, &caller)
                    .then(|| self.0.with_log(group, |log| sync::answer(log, &theirs)))
                    .flatten();
                match answer {
                    Some(a) => call.ok(&a),
                    None => call.error(ErrorCode::NotFound, no_such_group()),
                }
            }
            Err(refused) => refused,
        };
        call.respond(answer).await;
    }
}

impl Handler for WgPush {
    async fn handle(&self, call: Call) {
        let req = match call.body::<PushRequest>() {
            Ok(r) => r,
            Err(refused) => return call.respond(refused).await,
        };
        let caller = call.session.peer;
        let group = EventId(req.group);
        let wg = self.0.clone();
        let work = move || -> Result<PushResponse, (ErrorCode, String)> {
            let received = decode(req.events, req.evidence);
            let mut refused = received.refused;
            let known = wg.state(group).map(|_| in_group(&wg, group, &caller));
            match known {
                Some(true) => {
                    let (added, more) = wg
                        .ingest(group, received.events, received.evidence)
                        .map_err(|e| (ErrorCode::Internal, e.to_string()))?;
                    refused.extend(more);
                    let heads = wg.with_log(group, |l| sync::heads_list(&l.heads())).unwrap_or_default();
                    Ok(PushResponse {
                        added: added.len() as u32,
                        refused: refused.into_iter().take(8).collect(),
                        heads,
                    })
                }
                Some(false) => Err((ErrorCode::NotFound, no_such_group())),
                None => {
                    // A group this node does not hold: an invitation, or nothing.
                    let heads = || wg.with_log(group, |l| sync::heads_list(&l.heads())).unwrap_or_default();
                    match wg.accept_invitation(caller, &received.events) {
                        Ok(Some(_)) => {
                            tracing::info!(peer = %caller.short(), "invited to a workgroup (`alp wg list`)");
                            let added = wg.with_log(group, |l| l.len() as u32).unwrap_or(0);
                            Ok(PushResponse { added, refused, heads: heads() })
                        }
                        Ok(None) => Ok(PushResponse { added: 0, refused, heads: heads() }),
                        Err(e) => Err((ErrorCode::NotFound, format!("{}: {e}", no_such_group()))),
                    }
                }
            }
        };
        let answer = match tokio::task::spawn_blocking(work).await {
            Ok(Ok(r)) => call.ok(&r),
            Ok(Err((code, msg))) => call.error(code, msg),
            Err(e) => call.error(ErrorCode::Internal, e.to_string()),
        };
        call.respond(answer).await;
    }
}

impl Visibility for WgBlobs {
    fn visible(&self, hash: &BlobHash, peer: &NodeId, _: Option<&[u8]>) -> bool {
        let me = self.0.me();
        self.0
            .states()
            .iter()
            .any(|s| s.active(&me).is_some() && s.active(peer).is_some() && serves(s, &me, hash.as_bytes()))
    }
}

/// Whether `node` is a member of `group`, or invited to it.
fn in_group(wg: &Workgroups, group: EventId, node: &NodeId) -> bool {
    wg.state(group).is_some_and(|s| {
        s.members.get(node).is_some_and(|m| matches!(m.status, MemberStatus::Active | MemberStatus::Invited))
    })
}

/// Whether this node (`me`) serves `hash` to the members of the group:
/// it named the blob itself, as an input of a task it created (that the
/// group took), or as an artefact of its own counted result. What others
/// name never makes this node's blobs visible.
fn serves(state: &State, me: &NodeId, hash: &[u8; 32]) -> bool {
    state.tasks.values().any(|t| {
        let input =
            t.creator == *me && t.status != TaskStatus::Rejected && t.spec.inputs.iter().any(|a| a.hash == *hash);
        let output = t.output.as_ref().is_some_and(|o| o.by == *me && o.artefacts.iter().any(|a| a.hash == *hash));
        input || output
    })
}
