//! Chat sessions: every turn recorded as JSON lines under the profile.
//!
//! A session file is `sessions/ID.jsonl`; IDs sort by start time. The
//! first line describes the session, each further line is one message.
//! Secrets (API keys the process knows of) are replaced by `[REDACTED]`
//! before anything is written. Lines are appended and flushed to disk at
//! the end of every exchange, so a crash loses at most the exchange in
//! flight.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::provider::{Message, Role};

/// Session files larger than this are refused when loading.
const MAX_SESSION_FILE: u64 = 64 << 20;

/// One line of a session file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    /// The first line.
    Meta { started: u64, provider: String, model: String },
    /// One message.
    Message { ts: u64, message: Message },
}

/// Why a session could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no session {0:?} in this profile (see `alp sessions list`)")]
    NotFound(String),
    #[error("no session to continue in this profile; start one without --continue")]
    NoneYet,
    #[error("session id {0:?} is not valid (ids look like 20261122T061500Z-3f9a)")]
    BadId(String),
    #[error("{given:?} matches several sessions ({}): give more of the id", candidates.join(", "))]
    Ambiguous { given: String, candidates: Vec<String> },
    #[error("session file {path} is damaged at line {line}: {reason}; move it aside to start afresh")]
    Damaged { path: PathBuf, line: usize, reason: String },
    #[error("session file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Replaces known secrets in text that is about to be stored.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Redacts the values of `*_API_KEY`, `*_TOKEN` and `*_SECRET`
    /// variables of the environment, and `extra`.
    pub fn from_env(extra: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = std::env::vars()
            .filter(|(k, _)| k.ends_with("_API_KEY") || k.ends_with("_TOKEN") || k.ends_with("_SECRET"))
            .map(|(_, v)| v)
            .chain(extra)
            .filter(|v| v.len() >= 8)
            .collect();
        secrets.sort();
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn redact(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_owned(), |t, s| t.replace(s.as_str(), "[REDACTED]"))
    }
}

/// An open session, appended to as the conversation goes on.
#[derive(Debug)]
pub struct Session {
    pub id: String,
    path: PathBuf,
    file: File,
    redactor: Redactor,
}

/// A summary for `alp sessions list`.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub id: String,
    pub started: u64,
    pub provider: String,
    pub model: String,
    pub messages: usize,
    /// The first user message, cut to 80 characters.
    pub title: String,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Session {
    /// Starts a new session in `dir`.
    pub fn create(dir: &Path, provider: &str, model: &str, redactor: Redactor) -> Result<Self, SessionError> {
        let io = |source| SessionError::Io { path: dir.to_owned(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let now = std::time::SystemTime::now();
        let secs = alp_profiles::unix_now();
        let stamp = humantime::format_rfc3339_seconds(now).to_string().replace([':', '-'], "");
        let suffix = getrandom::u32().unwrap_or(0) & 0xffff;
        let id = format!("{stamp}-{suffix:04x}");
        let path = dir.join(format!("{id}.jsonl"));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|source| SessionError::Io { path: path.clone(), source })?;
        let mut s = Session { id, path, file, redactor };
        s.write(&[Line::Meta { started: secs, provider: provider.into(), model: model.into() }])?;
        Ok(s)
    }

    /// Opens session `id` (or the latest with `None`) and returns it with
    /// its messages.
    pub fn resume(dir: &Path, id: Option<&str>, redactor: Redactor) -> Result<(Self, Vec<Message>), SessionError> {
        let id = match id {
            Some(id) => resolve(dir, id)?,
            None => latest(dir)?.ok_or(SessionError::NoneYet)?,
        };
        let path = dir.join(format!("{id}.jsonl"));
        if !path.exists() {
            return Err(SessionError::NotFound(id));
        }
        let (_, messages) = load(&path)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|source| SessionError::Io { path: path.clone(), source })?;
        Ok((Session { id, path, file, redactor }, messages))
    }

    /// Appends messages (redacted) and syncs them to disk.
    pub fn append(&mut self, messages: &[Message]) -> Result<(), SessionError> {
        let ts = alp_profiles::unix_now();
        let lines: Vec<Line> = messages
            .iter()
            .map(|m| {
                let mut m = m.clone();
                m.content = self.redactor.redact(&m.content);
                for c in &mut m.tool_calls {
                    if let Ok(v) = serde_json::from_str(&self.redactor.redact(&c.arguments.to_string())) {
                        c.arguments = v;
                    }
                }
                Line::Message { ts, message: m }
            })
            .collect();
        self.write(&lines)
    }

    fn write(&mut self, lines: &[Line]) -> Result<(), SessionError> {
        let io = |source| SessionError::Io { path: self.path.clone(), source };
        let mut buf = Vec::new();
        for l in lines {
            serde_json::to_writer(&mut buf, l).map_err(|e| io(e.into()))?;
            buf.push(b'\n');
        }
        self.file.write_all(&buf).map_err(io)?;
        self.file.sync_data().map_err(io)
    }
}

/// The session `given` names: its whole id, or a unique start or end of
/// one (the short random end, `3f9a`, is enough).
pub fn resolve(dir: &Path, given: &str) -> Result<String, SessionError> {
    if !valid_id(given) {
        return Err(SessionError::BadId(given.into()));
    }
    let ids = list_ids(dir)?;
    if ids.iter().any(|i| i == given) {
        return Ok(given.to_owned());
    }
    let found: Vec<String> = ids.into_iter().filter(|i| i.starts_with(given) || i.ends_with(given)).collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(SessionError::NotFound(given.to_owned())),
        _ => Err(SessionError::Ambiguous { given: given.to_owned(), candidates: found }),
    }
}

/// The session written to last (ids name the second a session started,
/// so two started in one second are told apart by their files' times).
pub fn latest(dir: &Path) -> Result<Option<String>, SessionError> {
    let when = |id: &String| std::fs::metadata(dir.join(format!("{id}.jsonl"))).and_then(|m| m.modified()).ok();
    Ok(list_ids(dir)?.into_iter().max_by(|a, b| when(a).cmp(&when(b)).then_with(|| a.cmp(b))))
}

/// Deletes session `id` (as [`resolve`] finds it); returns its full id.
pub fn remove(dir: &Path, id: &str) -> Result<String, SessionError> {
    let id = resolve(dir, id)?;
    let path = dir.join(format!("{id}.jsonl"));
    std::fs::remove_file(&path).map_err(|source| SessionError::Io { path, source })?;
    Ok(id)
}

/// Deletes the sessions last written to before `cutoff`; returns their ids.
pub fn prune(dir: &Path, cutoff: std::time::SystemTime) -> Result<Vec<String>, SessionError> {
    let mut gone = Vec::new();
    for id in list_ids(dir)? {
        let path = dir.join(format!("{id}.jsonl"));
        let modified = std::fs::metadata(&path).and_then(|m| m.modified());
        if modified.is_ok_and(|t| t < cutoff) {
            std::fs::remove_file(&path).map_err(|source| SessionError::Io { path, source })?;
            gone.push(id);
        }
    }
    Ok(gone)
}

/// Session ids in `dir`, oldest first.
pub fn list_ids(dir: &Path) -> Result<Vec<String>, SessionError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(SessionError::Io { path: dir.to_owned(), source }),
    };
    let mut ids: Vec<String> = rd
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".jsonl").map(str::to_owned))
        .filter(|id| valid_id(id))
        .collect();
    ids.sort();
    Ok(ids)
}

/// Reads a session file: its meta line and messages.
pub fn load(path: &Path) -> Result<(Option<Line>, Vec<Message>), SessionError> {
    let io = |source| SessionError::Io { path: path.to_owned(), source };
    let file = File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.len() > MAX_SESSION_FILE {
        return Err(SessionError::Damaged { path: path.into(), line: 0, reason: "larger than 64 MiB".into() });
    }
    let mut meta = None;
    let mut messages = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(&line).map_err(|e| SessionError::Damaged {
            path: path.into(),
            line: n + 1,
            reason: e.to_string(),
        })?;
        match parsed {
            Line::Message { message, .. } => messages.push(message),
            m @ Line::Meta { .. } => meta = Some(m),
        }
    }
    Ok((meta, messages))
}

/// Summaries of every session in `dir`, oldest first.
pub fn summaries(dir: &Path) -> Result<Vec<Summary>, SessionError> {
    list_ids(dir)?
        .into_iter()
        .map(|id| {
            let (meta, messages) = load(&dir.join(format!("{id}.jsonl")))?;
            let (started, provider, model) = match meta {
                Some(Line::Meta { started, provider, model }) => (started, provider, model),
                _ => (0, String::new(), String::new()),
            };
            let title = messages
                .iter()
                .find(|m| m.role == Role::User)
                .map(|m| m.content.lines().next().unwrap_or("").chars().take(80).collect())
                .unwrap_or_default();
            Ok(Summary { id, started, provider, model, messages: messages.len(), title })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_append_resume_and_redact() {
        let d = tempfile::tempdir().unwrap();
        let r = Redactor { secrets: vec!["sk-very-secret".into()] };
        let mut s = Session::create(d.path(), "openai", "m", r.clone()).unwrap();
        s.append(&[Message::new(Role::User, "my key is sk-very-secret"), Message::new(Role::Assistant, "ok")]).unwrap();
        let id = s.id.clone();
        drop(s);
        let raw = std::fs::read_to_string(d.path().join(format!("{id}.jsonl"))).unwrap();
        assert!(!raw.contains("sk-very-secret") && raw.contains("[REDACTED]"), "{raw}");
        let (mut s, msgs) = Session::resume(d.path(), None, r.clone()).unwrap();
        assert_eq!((s.id.as_str(), msgs.len()), (id.as_str(), 2));
        s.append(&[Message::new(Role::User, "again")]).unwrap();
        let (_, msgs) = Session::resume(d.path(), Some(&id), r).unwrap();
        assert_eq!(msgs.len(), 3);
        let sum = summaries(d.path()).unwrap();
        assert_eq!((sum.len(), sum[0].messages, sum[0].title.as_str()), (1, 3, "my key is [REDACTED]"));
    }

    #[test]
    fn bad_ids_and_damaged_files() {
        let d = tempfile::tempdir().unwrap();
        let r = Redactor::default();
        assert!(matches!(Session::resume(d.path(), None, r.clone()), Err(SessionError::NoneYet)));
        assert!(matches!(Session::resume(d.path(), Some("../x"), r.clone()), Err(SessionError::BadId(_))));
        assert!(matches!(Session::resume(d.path(), Some("nope"), r.clone()), Err(SessionError::NotFound(_))));
        std::fs::write(
            d.path().join("x1.jsonl"),
            "{\"type\":\"meta\",\"started\":1,\"provider\":\"p\",\"model\":\"m\"}\nnot json\n",
        )
        .unwrap();
        let e = Session::resume(d.path(), Some("x1"), r).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("x1.jsonl"), "{e}");
    }
}
