//! `alp wg provenance HASH`: how an artefact came to be, from the group's
//! log alone: the task that made it, who ran it with which model, what it
//! was given (its inputs, and the results of the tasks it waited for), and
//! so on back, each step naming the signed events it rests on, the
//! approvals it ran under, and, for each file this node received, the
//! sender's signed receipts (checked here).

use std::collections::BTreeSet;

use alp_workgroup::body::Artefact;
use alp_workgroup::state::Task;
use alp_workgroup::{EventId, State};
use serde_json::{Value, json};

use super::api::Namer;

/// Most steps followed back.
const MAX_STEPS: usize = 256;

/// The chain behind the artefact `hash` in `state`, or `None` if no task of
/// this group made it.
pub(crate) fn trace(
    state: &State,
    hash: &[u8; 32],
    namer: &Namer,
    receipts: &dyn Fn(&[u8; 32]) -> Vec<Value>,
) -> Option<Value> {
    let maker = maker_of(state, hash)?;
    let name = maker.output.as_ref()?.artefacts.iter().find(|a| &a.hash == hash)?.name.clone();
    let mut seen = BTreeSet::new();
    let mut steps = Vec::new();
    let mut queue = vec![maker.id];
    while let Some(id) = queue.pop() {
        if steps.len() >= MAX_STEPS || !seen.insert(id) {
            continue;
        }
        let Some(task) = state.tasks.get(&id) else { continue };
        let inputs: Vec<Value> = task
            .spec
            .inputs
            .iter()
            .map(|a| {
                let from = maker_of(state, &a.hash);
                if let Some(t) = from {
                    queue.push(t.id);
                }
                let mut v = artefact(a, from.map(|t| t.id));
                v["receipts"] = receipts(&a.hash).into();
                v
            })
            .collect();
        let after: Vec<Value> = task
            .spec
            .after
            .iter()
            .map(|d| {
                queue.push(EventId(d.task));
                json!({"task": EventId(d.task).to_string(), "optional": d.optional})
            })
            .collect();
        if let Some(p) = task.spec.parent {
            queue.push(EventId(p));
        }
        let mut s = step(task, inputs, after, namer);
        if let Some(list) = s["artefacts"].as_array_mut() {
            for a in list {
                let hash = a["hash"].as_str().and_then(alp_profiles::unhex::<32>);
                a["receipts"] = hash.map(|h| receipts(&h)).unwrap_or_default().into();
            }
        }
        // The approvals it ran under: its own, and its tool calls'.
        s["approvals"] =
            state.approvals_of(&task.id).map(|a| crate::cmd::wg_govern::approval_view(state, a, namer)).collect();
        s["tier"] = json!(task.tier.as_str());
        steps.push(s);
    }
    Some(json!({
        "schema": "alp.wg.provenance/1",
        "hash": hex(hash),
        "name": name,
        "group": state.group.to_string(),
        "group_name": state.name,
        "steps": steps,
    }))
}

/// The completed task whose result first named `hash` (in the order
/// tasks were created), if any.
fn maker_of<'a>(state: &'a State, hash: &[u8; 32]) -> Option<&'a Task> {
    state
        .task_order
        .iter()
        .filter_map(|id| state.tasks.get(id))
        .find(|t| t.output.as_ref().is_some_and(|o| o.artefacts.iter().any(|a| &a.hash == hash)))
}

fn artefact(a: &Artefact, made_by: Option<EventId>) -> Value {
    json!({"name": a.name, "hash": hex(&a.hash), "size": a.size, "made_by": made_by.map(|t| t.to_string())})
}

fn step(task: &Task, inputs: Vec<Value>, after: Vec<Value>, namer: &Namer) -> Value {
    let output = task.output.as_ref();
    let attempt = output.and_then(|o| task.attempts.iter().find(|a| a.n == o.attempt));
    json!({
        "task": task.id.to_string(),
        "goal": task.spec.goal,
        "status": task.status.as_str(),
        "created_by": namer.name(&task.creator),
        "created_event": task.id.to_string(),
        "run_by": output.map(|o| namer.name(&o.by)),
        "attempt": output.map(|o| o.attempt),
        "model": attempt.and_then(|a| a.spend.as_ref()).map(|s| s.model.clone()),
        "result_event": output.map(|o| o.event.to_string()),
        "assigned_by_event": attempt.map(|a| a.assigned_by.to_string()),
        "artefacts": output.map(|o| o.artefacts.iter().map(|a| artefact(a, Some(task.id))).collect::<Vec<_>>()),
        "inputs": inputs,
        "after": after,
        "parent": task.spec.parent.map(|p| EventId(p).to_string()),
    })
}

/// The receipts this node holds for blob `hash`: who sent it, what range,
/// and whether it checks out (the sender's signature, for this blob, to
/// this node).
pub(crate) fn receipts(store: &alp_blobstore::store::Store, hash: &[u8; 32], namer: &Namer) -> Vec<Value> {
    let key = *hash;
    let hash = alp_blobstore::BlobHash::from(blake3::Hash::from_bytes(key));
    store
        .receipts(&hash)
        .unwrap_or_default()
        .iter()
        .filter_map(|bytes| alp_protocol::receipt::SignedReceipt::decode(bytes).ok())
        .map(|r| {
            json!({
                "from": namer.name(&r.receipt.sender),
                "size": r.receipt.size,
                "range": [r.receipt.start, r.receipt.end],
                "time": r.receipt.time,
                "signature_valid": r.verify().is_ok()
                    && r.receipt.hash == key
                    && namer.me.is_none_or(|me| r.receipt.receiver == me),
            })
        })
        .collect()
}

fn hex(bytes: &[u8; 32]) -> String {
    alp_profiles::hex(bytes)
}
