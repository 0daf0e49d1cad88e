//! Workgroups on a serving node: the logs it holds (on disk, appended
//! before anything acts on them), their folded state, replication with
//! the other members, the scheduler that assigns and runs tasks, and the
//! control socket the CLI's `alp wg` commands act through.
//!
//! One process writes a profile's logs: the running `alp serve`. Every
//! change goes through [`Workgroups`], which checks it, stores it, folds
//! it and announces it ([`Change`]) to the scheduler, the watchers and the
//! replication.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use alp_blobstore::store::Store;
use alp_profiles::config::Config;
use alp_protocol::NodeId;
use alp_workgroup::body::Card;
use alp_workgroup::log::Equivocation;
use alp_workgroup::state::MemberStatus;
use alp_workgroup::store::{GroupFiles, StoreError};
use alp_workgroup::{Body, Event, EventId, GroupId, Log, Refused, State};
use ed25519_dalek::SigningKey;
use tokio::sync::broadcast;

pub(crate) mod api;
pub(crate) mod approval;
pub(crate) mod control;
pub(crate) mod dispatch;
pub(crate) mod links;
pub(crate) mod overview;
pub(crate) mod planner;
pub(crate) mod provenance;
pub(crate) mod replicate;
pub(crate) mod tools;
pub(crate) mod verbs;
pub(crate) mod worker;

use links::Links;

/// Most groups a node holds (invitations included).
const MAX_GROUPS: usize = 256;
/// Most invitations one peer may have pending here.
const INVITATIONS_PER_PEER: usize = 4;

/// Events a group took, as they were taken.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    /// The group.
    pub(crate) group: GroupId,
    /// Its new events, in the order they were taken.
    pub(crate) events: Vec<Event>,
}

/// A workgroup operation failed; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WgError {
    /// No such group here.
    #[error("no workgroup {0} here (see `alp wg list`)")]
    Unknown(String),
    /// More than one group has that name.
    #[error("more than one workgroup is called {0}: use its id (see `alp wg list`)")]
    Ambiguous(String),
    /// The request makes no sense as asked.
    #[error("{0}")]
    Invalid(String),
    /// The log refused it.
    #[error("{0}")]
    Refused(#[from] Refused),
    /// The event could not be made.
    #[error("{0}")]
    Event(#[from] alp_workgroup::EventError),
    /// The disk.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// One group held by this node.
#[derive(Debug)]
struct Group {
    files: GroupFiles,
    log: Log,
    /// Shared with readers: a read takes a pointer, a change copies it only
    /// while someone still reads the old one.
    state: Arc<State>,
    /// When this node last heard of each attempt (its assignment, claim,
    /// renewal or reports), on its own clock.
    heard: HashMap<(EventId, u32), Instant>,
}

impl Group {
    fn new(files: GroupFiles, log: Log) -> Self {
        let state = Arc::new(State::fold(&log));
        Self { files, log, state, heard: HashMap::new() }
    }

    /// Folds events the log just took.
    fn advance(&mut self, added: &[Event]) {
        self.hear(added);
        Arc::make_mut(&mut self.state).advance(&self.log, added);
    }

    /// Appends `events` (already in the log); if the disk refuses them,
    /// goes back to what the disk holds, so that no event this node did not
    /// store is ever served or built on.
    fn store(&mut self, events: &[Event]) -> Result<(), StoreError> {
        let Err(e) = self.files.append(events) else { return Ok(()) };
        tracing::error!("cannot store workgroup events: {e}");
        match GroupFiles::open(self.files.dir()) {
            Ok((files, log, _)) => *self = Group::new(files, log),
            Err(again) => tracing::error!("and cannot read the log back: {again}"),
        }
        Err(e)
    }

    /// Notes the attempts `events` speak of as heard of now.
    fn hear(&mut self, events: &[Event]) {
        let now = Instant::now();
        for e in events {
            if let Some(key) = attempt_of(e.body()) {
                self.heard.insert(key, now);
            }
        }
    }
}

/// The task and attempt an event reports on, if any.
fn attempt_of(body: &Body) -> Option<(EventId, u32)> {
    match body {
        Body::Assign(b) => Some((EventId(b.task), b.attempt)),
        Body::Claim(b) | Body::Renew(b) => Some((EventId(b.task), b.attempt)),
        Body::Progress(b) => Some((EventId(b.task), b.attempt)),
        Body::InputNeeded(b) => Some((EventId(b.task), b.attempt)),
        Body::Spend(b) => Some((EventId(b.task), b.attempt)),
        _ => None,
    }
}

/// The workgroups of this node's profile.
#[derive(Debug)]
pub(crate) struct Workgroups {
    me: NodeId,
    key: SigningKey,
    root: PathBuf,
    groups: Mutex<BTreeMap<GroupId, Group>>,
    changes: broadcast::Sender<Change>,
    started: Instant,
}

impl Workgroups {
    /// Opens every group under `root`, as `key`'s node. A group whose log
    /// does not check out is left out, and said so in the log.
    pub(crate) fn open(root: &Path, key: SigningKey) -> Self {
        let mut groups = BTreeMap::new();
        match alp_workgroup::store::list(root) {
            Ok(dirs) => {
                for dir in dirs {
                    match GroupFiles::open(&dir) {
                        Ok((files, log, opened)) => {
                            if opened.cut_bytes > 0 {
                                tracing::warn!(
                                    dir = %dir.display(),
                                    bytes = opened.cut_bytes,
                                    "a write to this workgroup log was cut short (a crash?); set it aside"
                                );
                            }
                            groups.insert(log.group(), Group::new(files, log));
                        }
                        Err(e) => tracing::error!("workgroup not loaded: {e}"),
                    }
                }
            }
            Err(e) => tracing::error!("cannot list workgroups: {e}"),
        }
        let (changes, _) = broadcast::channel(1024);
        Self {
            me: key.verifying_key().into(),
            key,
            root: root.to_owned(),
            groups: Mutex::new(groups),
            changes,
            started: Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<GroupId, Group>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This node.
    pub(crate) fn me(&self) -> NodeId {
        self.me
    }

    /// How long this node has been running.
    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Changes as they happen.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Every group's state.
    pub(crate) fn states(&self) -> Vec<Arc<State>> {
        self.lock().values().map(|g| g.state.clone()).collect()
    }

    /// One group's state.
    pub(crate) fn state(&self, group: GroupId) -> Option<Arc<State>> {
        self.lock().get(&group).map(|g| g.state.clone())
    }

    /// Runs `f` on a group's log.
    pub(crate) fn with_log<T>(&self, group: GroupId, f: impl FnOnce(&Log) -> T) -> Option<T> {
        self.lock().get(&group).map(|g| f(&g.log))
    }

    /// How long since this node heard of `attempt` of `task` (`None`: not
    /// since it started).
    pub(crate) fn silent_for(&self, group: GroupId, task: EventId, attempt: u32) -> Option<Duration> {
        self.lock().get(&group).and_then(|g| g.heard.get(&(task, attempt))).map(Instant::elapsed)
    }

    /// The group named `name`: its id (or an id prefix of 6 hex digits or
    /// more), else its name. A name that matches more than one group, or
    /// both a name and an id, is ambiguous.
    pub(crate) fn resolve(&self, name: &str) -> Result<GroupId, WgError> {
        let groups = self.lock();
        let hex = name.len() >= 6 && name.bytes().all(|b| b.is_ascii_hexdigit());
        let by_id = groups.keys().filter(|id| hex && id.to_string().starts_with(&name.to_ascii_lowercase()));
        let by_name = groups.values().filter(|g| g.state.name == name).map(|g| &g.state.group);
        let mut found: Vec<GroupId> = by_id.chain(by_name).copied().collect();
        found.sort();
        found.dedup();
        match found.len() {
            1 => Ok(found[0]),
            0 => Err(WgError::Unknown(name.to_owned())),
            _ => Err(WgError::Ambiguous(name.to_owned())),
        }
    }

    /// Creates a group from its first event, signed here.
    pub(crate) fn create(&self, body: Body) -> Result<GroupId, WgError> {
        let header = alp_workgroup::Header {
            group: None,
            author: self.me,
            seq: 1,
            prev: None,
            clock: 1,
            time_ms: now_ms(),
            deps: Vec::new(),
        };
        let genesis = Event::sign(&self.key, header, body)?;
        let mut groups = self.lock();
        if groups.len() >= MAX_GROUPS {
            return Err(WgError::Invalid(format!("this node holds {MAX_GROUPS} workgroups already")));
        }
        let (files, log) = GroupFiles::create(&self.root, &genesis)?;
        let id = log.group();
        groups.insert(id, Group::new(files, log));
        drop(groups);
        let _ = self.changes.send(Change { group: id, events: vec![genesis] });
        Ok(id)
    }

    /// Writes this node's next event in `group`: signed, checked, stored
    /// and synced to disk, folded, then announced.
    pub(crate) fn write(&self, group: GroupId, body: Body, deps: Vec<EventId>) -> Result<Event, WgError> {
        self.write_with(group, body, deps, false)
    }

    /// [`Self::write`], but only if the group would count the event: for
    /// what people ask for, so that nothing the group refuses is written.
    pub(crate) fn write_counted(&self, group: GroupId, body: Body, deps: Vec<EventId>) -> Result<Event, WgError> {
        self.write_with(group, body, deps, true)
    }

    fn write_with(&self, group: GroupId, body: Body, deps: Vec<EventId>, counted: bool) -> Result<Event, WgError> {
        let mut groups = self.lock();
        let g = groups.get_mut(&group).ok_or_else(|| WgError::Unknown(group.short()))?;
        let header = g.log.next_header(self.me, deps, now_ms());
        let event = Event::sign(&self.key, header, body)?;
        if counted && let Some(why) = g.state.refusal(&event) {
            return Err(WgError::Invalid(format!("the group does not accept that: {why}")));
        }
        g.log.ingest(event.clone())?;
        g.store(std::slice::from_ref(&event))?;
        g.advance(std::slice::from_ref(&event));
        drop(groups);
        let _ = self.changes.send(Change { group, events: vec![event.clone()] });
        Ok(event)
    }

    /// Takes events (and evidence) from another member, in the order
    /// given: each is checked as if nothing about the sender were known.
    /// Returns those stored and why others were not.
    pub(crate) fn ingest(
        &self,
        group: GroupId,
        events: Vec<Event>,
        evidence: Vec<(Event, Event)>,
    ) -> Result<(Vec<Event>, Vec<String>), WgError> {
        let mut groups = self.lock();
        let g = groups.get_mut(&group).ok_or_else(|| WgError::Unknown(group.short()))?;
        let (mut added, mut refused, mut proofs) = (Vec::new(), Vec::new(), Vec::new());
        for event in events {
            match g.log.ingest(event.clone()) {
                Ok(alp_workgroup::Ingested::Added) => added.push(event),
                Ok(alp_workgroup::Ingested::Duplicate) => {}
                Err(e @ Refused::Equivocation { .. }) => {
                    refused.push(e.to_string());
                    if let Refused::Equivocation { proof, new: true } = e {
                        proofs.push(*proof);
                    }
                }
                Err(e) => refused.push(e.to_string()),
            }
        }
        for (a, b) in evidence {
            if g.log.add_evidence(a.clone(), b.clone()) {
                proofs.push(Equivocation { kept: a, other: b });
            }
        }
        g.store(&added)?;
        for p in &proofs {
            tracing::warn!(
                "workgroup {}: {} signed two events as number {} of its feed",
                g.state.name,
                p.author(),
                p.seq()
            );
            g.files.append_evidence(p)?;
        }
        if !added.is_empty() || !proofs.is_empty() {
            g.advance(&added);
        }
        drop(groups);
        if !added.is_empty() {
            let _ = self.changes.send(Change { group, events: added.clone() });
        }
        Ok((added, refused))
    }

    /// Takes a group this node does not hold yet, from `inviter`: the
    /// events must start with the group's creation and hold an invitation
    /// of this node that counts. Returns the group if it was new.
    pub(crate) fn accept_invitation(&self, inviter: NodeId, events: &[Event]) -> Result<Option<GroupId>, WgError> {
        let genesis = events.first().ok_or_else(|| WgError::Invalid("no events".into()))?;
        let group = genesis.id();
        if self.lock().contains_key(&group) {
            return Ok(None);
        }
        if self.declined(group).exists() {
            return Err(WgError::Invalid("this node declined that invitation".into()));
        }
        let mut log = Log::new(genesis.clone())?;
        for e in &events[1..] {
            log.ingest(e.clone())?;
        }
        let state = State::fold(&log);
        let invited = state.members.get(&self.me).is_some_and(|m| m.status == MemberStatus::Invited);
        if !invited || state.active(&inviter).is_none() {
            return Err(WgError::Invalid("not an invitation to this node from a member".into()));
        }
        let mut groups = self.lock();
        if groups.contains_key(&group) {
            return Ok(None);
        }
        let pending = groups
            .values()
            .filter(|g| g.state.members.get(&self.me).is_some_and(|m| m.status == MemberStatus::Invited))
            .filter(|g| g.log.genesis().author() == genesis.author())
            .count();
        if pending >= INVITATIONS_PER_PEER {
            return Err(WgError::Invalid(format!(
                "{INVITATIONS_PER_PEER} invitations from that creator are pending here"
            )));
        }
        if groups.len() >= MAX_GROUPS {
            return Err(WgError::Invalid(format!("this node holds {MAX_GROUPS} workgroups already")));
        }
        let (mut files, _) = GroupFiles::create(&self.root, genesis)?;
        files.append(&events[1..])?;
        groups.insert(group, Group::new(files, log));
        drop(groups);
        let _ = self.changes.send(Change { group, events: events.to_vec() });
        Ok(Some(group))
    }

    /// Drops a group this node is invited to (or no longer in): its files
    /// move aside (`<root>/.declined-<id>`), nothing is sent, and the same
    /// invitation pushed again is refused.
    pub(crate) fn forget(&self, group: GroupId) -> Result<(), WgError> {
        let mut groups = self.lock();
        let g = groups.get(&group).ok_or_else(|| WgError::Unknown(group.short()))?;
        if g.state.active(&self.me).is_some() {
            return Err(WgError::Invalid("this node is a member: leave the group first (`alp wg leave`)".into()));
        }
        let dir = g.files.dir().to_owned();
        let aside = self.declined(group);
        if aside.exists() {
            std::fs::remove_dir_all(&aside).map_err(|source| StoreError::Io { path: aside.clone(), source })?;
        }
        std::fs::rename(&dir, &aside).map_err(|source| StoreError::Io { path: dir, source })?;
        groups.remove(&group);
        Ok(())
    }

    /// Where a declined group's files are kept.
    fn declined(&self, group: GroupId) -> std::path::PathBuf {
        self.root.join(format!(".declined-{group}"))
    }

    /// The stored bytes of a group's log, read under the lock (no write
    /// is half done).
    pub(crate) fn stored_log(&self, group: GroupId) -> Result<Vec<u8>, WgError> {
        let groups = self.lock();
        let g = groups.get(&group).ok_or_else(|| WgError::Unknown(group.short()))?;
        let path = g.files.dir().join("events");
        std::fs::read(&path).map_err(|source| WgError::Store(StoreError::Io { path, source }))
    }

    /// The directory of a group's files.
    pub(crate) fn dir_of(&self, group: GroupId) -> PathBuf {
        GroupFiles::dir_of(&self.root, group)
    }
}

/// Everything the workgroup side of a serving node works with.
#[derive(Debug)]
pub(crate) struct WgNode {
    /// The logs and their state.
    pub(crate) wg: Arc<Workgroups>,
    /// Kept connections to members.
    pub(crate) links: Arc<Links>,
    /// The profile's blobs (task inputs and artefacts).
    pub(crate) store: Store,
    /// The profile's configuration.
    pub(crate) config: Config,
    /// The agent: its model (shared with peers' asks), setup and ledger.
    pub(crate) asks: Arc<crate::ask::AskService>,
    /// The attempts running here.
    pub(crate) runner: dispatch::Runner,
    /// The couriers to the other members.
    pub(crate) replicator: Arc<replicate::Replicator>,
    /// Blob transfers under way in this process, served or fetched.
    pub(crate) transfers: alp_link::Transfers,
    /// Held across a read-modify-write of a group's policy.
    pub(crate) edits: std::sync::Mutex<()>,
}

impl WgNode {
    /// This profile's capability card, from its config and model.
    pub(crate) fn card(&self) -> Card {
        let w = &self.config.workgroup;
        let model = &self.config.model;
        let models = if model.provider.is_empty() { vec!["local".to_owned()] } else { vec![model.provider.clone()] };
        Card { bio: w.bio.clone(), models, tools: w.tools.clone(), capacity: w.capacity.max(1), prices: Vec::new() }
    }
}

/// Starts the workgroup side of a serving node: the scheduler, the
/// replication and the control socket at `socket`.
pub(crate) async fn start(node: Arc<WgNode>, socket: PathBuf) -> std::io::Result<()> {
    let listener = control::bind(&socket).await?;
    tokio::spawn(control::serve(node.clone(), listener, socket));
    tokio::spawn(dispatch::run(node.clone()));
    node.replicator.start_all();
    tokio::spawn(links::announce(node.links.clone()));
    Ok(())
}

/// Wall-clock time, Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests;
