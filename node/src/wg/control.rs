//! The control socket: how `alp wg` commands act through the running node.
//! A Unix socket in the profile directory (itself owner-only), mode 0600,
//! and every connection's peer credentials are checked: only the user
//! running the node gets in. One JSON request per connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use alp_workgroup::body::{
    Budget, Cancel, MemberRoles, Note, Policy, Remove, Reply as ReplyBody, TaskCreate, WithCard,
};
use alp_workgroup::state::{MemberStatus, TaskStatus};
use alp_workgroup::{Body, EventId, GroupId, State};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::api::{self, GroupView, Namer, Reply, Request};
use super::{WgError, WgNode};

/// Longest request line.
const MAX_REQUEST: usize = 1 << 20;
/// Time a client has to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the control socket at `path` (replacing a stale one; refusing if
/// another node answers there).
pub(crate) async fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("another node is serving this profile ({} answers)", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the control socket until the process ends.
pub(crate) async fn serve(node: Arc<WgNode>, listener: UnixListener, path: PathBuf) {
    // The socket file is ours: its owner is the user this node runs as.
    use std::os::unix::fs::MetadataExt;
    let uid = match std::fs::metadata(&path) {
        Ok(m) => m.uid(),
        Err(e) => {
            tracing::error!(socket = %path.display(), "control socket unusable: {e}");
            return;
        }
    };
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, say: wait rather than spin.
                tracing::warn!("control socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == uid => {}
            _ => {
                tracing::warn!(socket = %path.display(), "refused a control connection from another user");
                continue;
            }
        }
        let node = node.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(node, stream).await {
                tracing::debug!("control connection: {e}");
            }
        });
    }
}

async fn handle(node: Arc<WgNode>, stream: UnixStream) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(MAX_REQUEST as u64));
    let mut line = String::new();
    tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request"))??;
    // An operation of the node's registry, or else a workgroup request.
    let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
    if let Some(op) = value.get("op").and_then(|o| o.as_str()).and_then(crate::service::find) {
        let (progress, mut lines) = tokio::sync::mpsc::unbounded_channel();
        let run = tokio::time::timeout(op.timeout, (op.run)(node, value, progress));
        tokio::pin!(run);
        let mut probe = [0u8; 1];
        let reply = loop {
            tokio::select! {
                r = &mut run => break match r {
                    Ok(Ok(v)) => Reply::Ok(v),
                    Ok(Err(e)) => Reply::Error { message: e.to_string(), exit: e.exit() },
                    Err(_) => Reply::Error { message: format!("{} took longer than {:?}", op.name, op.timeout), exit: 1 },
                },
                Some(line) = lines.recv() => send(&mut write, &serde_json::json!({ "progress": line })).await?,
                // The client went away (Ctrl-C): dropping the operation
                // cancels it.
                n = reader.read(&mut probe) => if matches!(n, Ok(0) | Err(_)) {
                    return Ok(());
                },
            }
        };
        while let Ok(line) = lines.try_recv() {
            send(&mut write, &serde_json::json!({ "progress": line })).await?;
        }
        return send(&mut write, &reply).await;
    }
    let request: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            let reply = Reply::Error { message: format!("bad control request: {e}"), exit: 2 };
            return send(&mut write, &reply).await;
        }
    };
    if let Request::Watch { group } = &request {
        return watch(&node, group, &mut write).await;
    }
    let n = node.clone();
    let reply = match tokio::task::spawn_blocking(move || answer(&n, request)).await {
        Ok(Ok(v)) => Reply::Ok(v),
        Ok(Err(e)) => {
            let usage =
                matches!(e, WgError::Invalid(_) | WgError::Unknown(_) | WgError::Ambiguous(_) | WgError::Event(_));
            let exit = if usage { 2 } else { 1 };
            Reply::Error { message: e.to_string(), exit }
        }
        Err(e) => Reply::Error { message: format!("the node failed: {e}"), exit: 1 },
    };
    send(&mut write, &reply).await
}

async fn send(write: &mut (impl AsyncWriteExt + Unpin), value: &impl serde::Serialize) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await
}

/// Streams every new event of the group until the client goes away.
async fn watch(node: &WgNode, group: &str, write: &mut (impl AsyncWriteExt + Unpin)) -> std::io::Result<()> {
    let mut changes = node.wg.subscribe();
    let group = match node.wg.resolve(group) {
        Ok(g) => g,
        Err(e) => return send(write, &Reply::Error { message: e.to_string(), exit: 2 }).await,
    };
    send(write, &Reply::Ok(serde_json::json!({"watching": group.to_string()}))).await?;
    loop {
        let change = match changes.recv().await {
            Ok(c) => c,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                let message = format!("this watcher fell behind and missed {n} changes: see `alp wg log`");
                return send(write, &Reply::Error { message, exit: 1 }).await;
            }
            Err(_) => return Ok(()),
        };
        if change.group != group {
            continue;
        }
        let state = node.wg.state(group);
        for e in &change.events {
            let refused =
                state.as_ref().and_then(|s| s.refused.iter().find(|r| r.id == e.id()).map(|r| r.reason.clone()));
            let view = api::event_view(e, &node.namer(), refused);
            send(write, &view).await?;
        }
    }
}

/// Carries out one request.
fn answer(node: &Arc<WgNode>, request: Request) -> Result<serde_json::Value, WgError> {
    let wg = &node.wg;
    let json = |v: &dyn erased::Json| v.to_json();
    match request {
        Request::Create { name, briefing, budget, roles, lease_secs, max_attempts, max_depth } => {
            let d = Policy::default();
            let policy = Policy {
                lease_secs: lease_secs.unwrap_or(d.lease_secs),
                max_attempts: max_attempts.unwrap_or(d.max_attempts),
                max_depth: max_depth.unwrap_or(d.max_depth),
            };
            if wg.resolve(&name).is_ok() {
                return Err(WgError::Invalid(format!("a workgroup called {name} exists already")));
            }
            let group =
                wg.create(Body::Create(alp_workgroup::body::Create { name, briefing, budget, policy, roles }))?;
            wg.write(group, Body::Card(WithCard { card: node.card() }), vec![])?;
            Ok(serde_json::json!({"id": group.to_string()}))
        }
        Request::Invite { group, peer, roles, admin } => {
            let group = wg.resolve(&group)?;
            let target = node.links.peers().get(&peer).map_err(|e| WgError::Invalid(e.to_string()))?;
            let state = state_of(node, group)?;
            if !state.is_admin(&wg.me()) {
                return Err(WgError::Invalid("only an admin of the group invites".into()));
            }
            if state.active(&target.node_id).is_some() {
                return Err(WgError::Invalid(format!("{peer} is a member already")));
            }
            let body = MemberRoles { member: *target.node_id.as_bytes(), roles, admin };
            let event = wg.write_counted(group, Body::Invite(body), vec![])?;
            Ok(serde_json::json!({"event": event.id().to_string(), "invited": target.node_id.to_string()}))
        }
        Request::Join { group } => {
            let group = wg.resolve(&group)?;
            let event = node.join(group)?;
            Ok(serde_json::json!({"event": event.id().to_string()}))
        }
        Request::Leave { group } => {
            let group = wg.resolve(&group)?;
            let event = wg.write_counted(group, Body::Leave(Note { text: String::new() }), vec![])?;
            Ok(serde_json::json!({"event": event.id().to_string()}))
        }
        Request::Remove { group, member } => {
            let group = wg.resolve(&group)?;
            let state = state_of(node, group)?;
            let target = node.member_named(&state, &member)?;
            let event = wg.write_counted(group, Body::Remove(Remove { member: *target.as_bytes() }), vec![])?;
            Ok(serde_json::json!({"event": event.id().to_string()}))
        }
        Request::Card { group } => {
            let group = wg.resolve(&group)?;
            let event = wg.write_counted(group, Body::Card(WithCard { card: node.card() }), vec![])?;
            Ok(serde_json::json!({"event": event.id().to_string()}))
        }
        Request::Note { group, text } => {
            let group = wg.resolve(&group)?;
            let event = wg.write_counted(group, Body::Note(Note { text }), vec![])?;
            Ok(serde_json::json!({"event": event.id().to_string()}))
        }
        Request::List => {
            let namer = node.namer();
            let me = wg.me();
            let list: Vec<serde_json::Value> = wg
                .states()
                .iter()
                .map(|s| {
                    let open = s.tasks.values().filter(|t| !t.status.is_terminal()).count();
                    serde_json::json!({
                        "id": s.group.to_string(),
                        "name": s.name,
                        "me": s.members.get(&me).map_or("none".to_owned(), |m| format!("{:?}", m.status).to_lowercase()),
                        "creator": namer.name(&s.creator),
                        "members": s.members.values().filter(|m| m.is_active()).count(),
                        "open_tasks": open,
                        "tasks": s.tasks.len(),
                    })
                })
                .collect();
            Ok(serde_json::Value::Array(list))
        }
        Request::Status { group, task } => {
            let group = wg.resolve(&group)?;
            let state = state_of(node, group)?;
            match task {
                Some(t) => {
                    let id = task_id(&state, &t)?;
                    Ok(json(&api::task_view(&state, &state.tasks[&id], &node.namer())))
                }
                None => Ok(json(&node.group_view(&state))),
            }
        }
        Request::Task {
            group,
            goal,
            to,
            role,
            mut inputs,
            input_hashes,
            budget,
            deadline_secs,
            after,
            optional,
            tier,
        } => {
            let tier = crate::cmd::wg_govern::tier(tier.as_deref())?;
            let group = wg.resolve(&group)?;
            let state = state_of(node, group)?;
            let mut waits = Vec::new();
            for (text, optional) in after.iter().map(|t| (t, false)).chain(optional.iter().map(|t| (t, true))) {
                let id = task_id(&state, text)?;
                if !waits.iter().any(|w: &alp_workgroup::body::After| w.task == id.0) {
                    waits.push(alp_workgroup::body::After { task: id.0, optional });
                }
            }
            for text in input_hashes {
                inputs.push(node.input_by_hash(&state, &text)?);
            }
            let to = match to.as_deref() {
                None => None,
                Some(name) => Some(*node.member_named(&state, name)?.as_bytes()),
            };
            if let Some(role) = &role {
                let roles: std::collections::BTreeSet<&String> =
                    state.members.values().filter(|m| m.is_active()).flat_map(|m| &m.roles).collect();
                if !roles.contains(role) {
                    let have: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                    return Err(WgError::Invalid(format!(
                        "nobody in {} has the role `{role}` (roles: {}); invite a member with it (`alp wg invite {} PEER --role {role}`)",
                        state.name,
                        if have.is_empty() { "none".to_owned() } else { have.join(", ") },
                        state.name
                    )));
                }
            }
            if state.budget.tokens.is_some() && budget.tokens.is_none() {
                return Err(WgError::Invalid(
                    "this group has a token budget: give the task one (--budget-tokens N)".into(),
                ));
            }
            if state.budget.usd_micros.is_some() && budget.usd_micros.is_none() {
                return Err(WgError::Invalid(
                    "this group has a dollar budget: give the task one (--budget-usd X)".into(),
                ));
            }
            let deadline_ms = deadline_secs.map(|s| super::now_ms() + s * 1000);
            // The tasks it waits for are among the event's references, so
            // that every member folds them first.
            let refs: Vec<EventId> = waits.iter().map(|w| EventId(w.task)).collect();
            let spec = TaskCreate { goal, to, role, inputs, budget, deadline_ms, parent: None, after: waits, tier };
            let event = wg.write_counted(group, Body::TaskCreate(spec), refs)?;
            let state = state_of(node, group)?;
            let task = state
                .tasks
                .get(&event.id())
                .ok_or_else(|| WgError::Invalid("the group did not take the task".into()))?;
            Ok(
                serde_json::json!({"task": event.id().to_string(), "status": task.status.as_str(), "reason": task.reason}),
            )
        }
        Request::Reply { task, text } => {
            let (group, state, id) = find_task(node, &task)?;
            if state.tasks[&id].status != TaskStatus::InputRequired {
                return Err(WgError::Invalid("that task is not waiting for an answer".into()));
            }
            let event = wg.write_counted(group, Body::Reply(ReplyBody { task: id.0, text }), vec![id])?;
            Ok(serde_json::json!({"event": event.id().to_string()}))
        }
        Request::Cancel { group, task, reason } => {
            let (group, id, deps) = match (group, task) {
                (_, Some(t)) => {
                    let (group, _, id) = find_task(node, &t)?;
                    (group, Some(id.0), vec![id])
                }
                (Some(g), None) => (wg.resolve(&g)?, None, vec![]),
                (None, None) => return Err(WgError::Invalid("name a task, or a group with --all".into())),
            };
            let event = wg.write_counted(group, Body::Cancel(Cancel { task: id, reason }), deps)?;
            Ok(serde_json::json!({"event": event.id().to_string()}))
        }
        Request::Log { group } => {
            let group = wg.resolve(&group)?;
            let state = state_of(node, group)?;
            let namer = node.namer();
            let refused: std::collections::HashMap<EventId, &str> =
                state.refused.iter().map(|r| (r.id, r.reason.as_str())).collect();
            // Copy the events (shared pointers) out of the lock; format outside it.
            let events: Vec<alp_workgroup::Event> =
                wg.with_log(group, |log| log.ordered().into_iter().cloned().collect()).unwrap_or_default();
            let views: Vec<api::EventView> = events
                .iter()
                .map(|e| api::event_view(e, &namer, refused.get(&e.id()).map(|r| (*r).to_owned())))
                .collect();
            Ok(serde_json::to_value(views).unwrap_or_default())
        }
        Request::Verify { group } => {
            let group = wg.resolve(&group)?;
            verify(node, group)
        }
        Request::Plan { group, goal } => {
            let group = wg.resolve(&group)?;
            let state = state_of(node, group)?;
            let view = json(&node.group_view(&state));
            let limits = crate::cmd::wg_plan::Limits::of(&node.config.workgroup);
            let members = crate::cmd::wg_plan::Group::from_view(&view, limits);
            let plan = tokio::runtime::Handle::current().block_on(async {
                if let Some(planner) = super::planner::planner(&state, &wg.me()) {
                    let node = node.clone();
                    return crate::cmd::wg_plan::propose_with(&members, &goal, async |messages: &mut Vec<_>| {
                        super::planner::ask(&node, group, planner, messages).await
                    })
                    .await;
                }
                let selected = node.asks.provider().await?;
                let setup = node.asks.setup().without_tools();
                crate::cmd::wg_plan::propose(&setup, selected.provider(), &members, &goal).await
            });
            let (graph, refused) = plan.map_err(WgError::Invalid)?;
            Ok(serde_json::json!({"graph": graph, "refused": refused}))
        }
        Request::Provenance { hash } => {
            let bytes: [u8; 32] = alp_profiles::unhex(hash.trim())
                .ok_or_else(|| WgError::Invalid("give the artefact's full hash (64 hex digits)".into()))?;
            let namer = node.namer();
            let receipts = |hash: &[u8; 32]| super::provenance::receipts(&node.store, hash, &namer);
            node.wg
                .states()
                .iter()
                .find_map(|state| super::provenance::trace(state, &bytes, &namer, &receipts))
                .ok_or_else(|| {
                    WgError::Invalid(format!(
                        "blob {hash} was not made by a task of any workgroup here: no provenance to show"
                    ))
                })
        }
        Request::Node => Ok(node.overview()),
        Request::Policy { group, change } => crate::cmd::wg_govern::answer_policy(node, &group, change),
        Request::Decide { subject, approve, reason } => {
            crate::cmd::wg_govern::answer_decide(node, &subject, approve, reason)
        }
        Request::Decline { group } => {
            let group = wg.resolve(&group)?;
            wg.forget(group)?;
            Ok(serde_json::json!({"declined": group.to_string()}))
        }
        Request::Watch { .. } => Err(WgError::Invalid("watch is streamed".into())),
    }
}

/// Re-checks the group's stored log (read under the group's lock, so no
/// write is half done) and evidence.
pub(crate) fn verify(node: &WgNode, group: GroupId) -> Result<serde_json::Value, WgError> {
    let bytes = node.wg.stored_log(group)?;
    verify_bytes(&bytes, &node.wg.dir_of(group), &node.namer())
}

/// Re-checks the log in `dir` (without a running node).
pub(crate) fn verify_dir(dir: &Path, namer: &Namer) -> Result<serde_json::Value, WgError> {
    let path = dir.join("events");
    let bytes = std::fs::read(&path)
        .map_err(|source| WgError::Store(alp_workgroup::store::StoreError::Io { path: path.clone(), source }))?;
    verify_bytes(&bytes, dir, namer)
}

fn verify_bytes(bytes: &[u8], dir: &Path, namer: &Namer) -> Result<serde_json::Value, WgError> {
    let report = alp_workgroup::verify::verify(bytes);
    let evidence = alp_workgroup::store::read_evidence(dir)?;
    let equivocations: Vec<String> = evidence
        .iter()
        .map(|(a, b)| {
            format!(
                "{} signed two different events as number {} of its feed ({} and {})",
                namer.name(&a.author()),
                a.header().seq,
                a.id().short(),
                b.id().short()
            )
        })
        .collect();
    Ok(serde_json::json!({
        "events": report.events,
        "ok": report.problem.is_none() && equivocations.is_empty(),
        "problem": report.problem.as_ref().map(ToString::to_string),
        "equivocations": equivocations,
    }))
}

fn state_of(node: &WgNode, group: GroupId) -> Result<Arc<State>, WgError> {
    node.wg.state(group).ok_or_else(|| WgError::Unknown(group.short()))
}

/// The task of `state` whose id is or starts with `text` (6 digits at least).
pub(crate) fn task_id(state: &State, text: &str) -> Result<EventId, WgError> {
    let text = text.trim();
    let found: Vec<EventId> =
        state.tasks.keys().filter(|id| text.len() >= 6 && id.to_string().starts_with(text)).copied().collect();
    match found.len() {
        1 => Ok(found[0]),
        0 => Err(WgError::Invalid(format!("no task {text} in {} (see `alp wg status {}`)", state.name, state.name))),
        _ => Err(WgError::Invalid(format!("more than one task starts with {text}: give more of its id"))),
    }
}

/// The task whose id is or starts with `text`, in whichever group has it.
fn find_task(node: &WgNode, text: &str) -> Result<(GroupId, Arc<State>, EventId), WgError> {
    let mut found = Vec::new();
    for state in node.wg.states() {
        if let Ok(id) = task_id(&state, text) {
            found.push((state.group, state, id));
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(WgError::Invalid(format!("no task {text} in any workgroup here (see `alp wg status NAME`)"))),
        _ => Err(WgError::Invalid(format!("more than one task starts with {text}: give more of its id"))),
    }
}

/// Whether this node is invited (not yet a member).
pub(crate) fn is_invited(state: &State, me: &alp_protocol::NodeId) -> bool {
    state.members.get(me).is_some_and(|m| m.status == MemberStatus::Invited)
}

impl WgNode {
    /// Accepts this node's invitation to `group`: checks that every member
    /// is a trusted peer, then writes the join with this node's card.
    pub(crate) fn join(&self, group: GroupId) -> Result<alp_workgroup::Event, WgError> {
        let wg = &self.wg;
        let me = wg.me();
        let state = state_of(self, group)?;
        if !is_invited(&state, &me) {
            return Err(WgError::Invalid(format!("this node has no open invitation to {}", state.name)));
        }
        let strangers: Vec<String> = state
            .members
            .values()
            .filter(|m| m.is_active() && m.node != me)
            .filter(|m| !matches!(self.links.peers().find(&m.node), Ok(Some(_))))
            .map(|m| m.node.to_string())
            .collect();
        if !strangers.is_empty() {
            return Err(WgError::Invalid(format!(
                "members of {} must trust each other: pair with {} first (`alp invite` / `alp pair`)",
                state.name,
                strangers.join(", ")
            )));
        }
        let invite = wg
            .with_log(group, |log| {
                log.ordered()
                    .into_iter()
                    .rev()
                    .find(|e| matches!(e.body(), Body::Invite(i) if i.member == *me.as_bytes()))
                    .map(|e| e.id())
            })
            .flatten()
            .ok_or_else(|| WgError::Invalid("the invitation is missing from the log".into()))?;
        let event = wg.write_counted(group, Body::Join(WithCard { card: self.card() }), vec![invite])?;
        Ok(event)
    }

    /// A task input named by its hash: a blob of this node's store, or an
    /// artefact some task of the group produced (fetched by whoever runs
    /// the task from the member that made it).
    pub(crate) fn input_by_hash(&self, state: &State, text: &str) -> Result<alp_workgroup::body::Artefact, WgError> {
        let hash: alp_blobstore::BlobHash =
            text.parse().map_err(|_| WgError::Invalid(format!("{text:?} is not a blob hash")))?;
        let made = state
            .tasks
            .values()
            .filter_map(|t| t.output.as_ref())
            .flat_map(|o| o.artefacts.iter())
            .find(|a| a.hash == *hash.as_bytes())
            .cloned();
        if let Some(a) = made {
            return Ok(a);
        }
        match self.store.get(&hash) {
            Ok(info) => Ok(alp_workgroup::body::Artefact {
                name: hash.to_string()[..12].to_owned(),
                hash: *hash.as_bytes(),
                size: info.size,
            }),
            Err(_) => Err(WgError::Invalid(format!(
                "no blob {text} here, and no task of {} made it: add the file with --input FILE",
                state.name
            ))),
        }
    }

    /// The member of `state` named `name`: a peer name, `me`, or a node id.
    pub(crate) fn member_named(&self, state: &State, name: &str) -> Result<alp_protocol::NodeId, WgError> {
        let node = if name == "me" {
            self.wg.me()
        } else if let Ok(id) = name.parse::<alp_protocol::NodeId>() {
            id
        } else {
            self.links.peers().get(name).map_err(|e| WgError::Invalid(e.to_string()))?.node_id
        };
        if !state.members.contains_key(&node) {
            return Err(WgError::Invalid(format!("{name} is not a member of {}", state.name)));
        }
        Ok(node)
    }

    /// The group as `alp wg status` shows it.
    pub(crate) fn group_view(&self, s: &State) -> GroupView {
        let namer = self.namer();
        let me = self.wg.me();
        let last_seen = |node: &alp_protocol::NodeId| {
            self.wg.with_log(s.group, |log| log.last_of(node).map(|e| e.header().time_ms)).flatten()
        };
        let (tokens, usd) = s.available();
        GroupView {
            schema: api::STATUS_SCHEMA.to_owned(),
            id: s.group.to_string(),
            name: s.name.clone(),
            briefing: s.briefing.clone(),
            me: s.members.get(&me).map_or("none".to_owned(), |m| format!("{:?}", m.status).to_lowercase()),
            budget: s.budget,
            spent_tokens: s.spent.tokens,
            spent_usd: api::usd(s.spent.usd_micros),
            available_tokens: tokens,
            available_usd: usd.map(api::usd),
            spent_by_model: s
                .spent_by_model
                .iter()
                .map(|(m, u)| (m.clone(), u.tokens, api::usd(u.usd_micros)))
                .collect(),
            lease_secs: s.policy.lease_secs,
            max_attempts: s.policy.max_attempts,
            max_depth: s.policy.max_depth,
            members: s
                .members
                .values()
                .map(|m| {
                    api::member_view(s, m, &namer, m.node == me || self.links.is_connected(&m.node), last_seen(&m.node))
                })
                .collect(),
            tasks: s.task_order.iter().filter_map(|id| s.tasks.get(id)).map(|t| api::task_view(s, t, &namer)).collect(),
            policy: crate::cmd::wg_govern::governance_view(s, &namer),
            pending_approvals: s
                .pending_approvals()
                .map(|a| crate::cmd::wg_govern::approval_view(s, a, &namer))
                .collect(),
            running: s.running(),
            events: s.events,
            refused_events: s.refused.len(),
            equivocations: s.forks.iter().map(|(n, seq)| (namer.name(n), *seq)).collect(),
        }
    }

    /// Names nodes by their peer names here.
    pub(crate) fn namer(&self) -> Namer {
        let names = self.links.peers().load().unwrap_or_default().into_iter().map(|p| (p.node_id, p.name.to_string()));
        Namer { me: Some(self.wg.me()), names: names.collect() }
    }
}

/// Serialises the views without naming each type.
mod erased {
    pub(super) trait Json {
        fn to_json(&self) -> serde_json::Value;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or_default()
        }
    }
}

/// The budget of a request, for the CLI.
pub(crate) fn budget(usd: Option<f64>, tokens: Option<u64>) -> Result<Budget, WgError> {
    let usd_micros = match usd {
        None => None,
        Some(x) if x.is_finite() && x >= 0.0 => Some((x * 1e6).round() as u64),
        Some(x) => return Err(WgError::Invalid(format!("a budget of ${x} makes no sense"))),
    };
    Ok(Budget { usd_micros, tokens })
}
