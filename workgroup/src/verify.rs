//! Re-checking a stored log from its bytes, naming the first bad event:
//! an edited byte or a forged author (the signature fails), an event
//! deleted (something refers to it, or its author's feed has a gap), a
//! pair reordered (an event comes before one it refers to), or
//! equivocation (one author, two events with one sequence number).

use std::collections::HashMap;
use std::fmt;

use crate::event::{Event, EventError, EventId, MAX_EVENT};
use crate::log::{Log, Refused};

/// A log file's events, as frames: `u32` length, then the event's bytes.
pub fn frames(bytes: &[u8]) -> impl Iterator<Item = Result<(u64, &[u8]), u64>> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at == bytes.len() {
            return None;
        }
        let start = at;
        let Some(len) = bytes.get(at..at + 4).map(|h| u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize) else {
            at = bytes.len();
            return Some(Err(start as u64));
        };
        match bytes.get(at + 4..at + 4 + len) {
            Some(frame) if len <= MAX_EVENT => {
                at += 4 + len;
                Some(Ok((start as u64, frame)))
            }
            _ => {
                at = bytes.len();
                Some(Err(start as u64))
            }
        }
    })
}

/// Appends one frame.
pub fn push_frame(out: &mut Vec<u8>, event: &[u8]) {
    out.extend_from_slice(&(event.len() as u32).to_be_bytes());
    out.extend_from_slice(event);
}

/// The first problem found in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The event's position in the file, from 1.
    pub index: usize,
    /// Its byte offset.
    pub offset: u64,
    /// Its id, if it decoded.
    pub id: Option<EventId>,
    /// What is wrong, for people.
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event #{} (byte {}", self.index, self.offset)?;
        if let Some(id) = self.id {
            write!(f, ", id {}", id.short())?;
        }
        write!(f, "): {}", self.what)
    }
}

/// The result of re-checking a log.
#[derive(Debug, Clone)]
pub struct Report {
    /// Events that checked out, in file order, as a log.
    pub log: Option<Log>,
    /// Events checked.
    pub events: usize,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

/// Re-checks every signature, chain link and reference of the log in
/// `bytes` (the frames of a group's events file) and stops at the first
/// bad event.
pub fn verify(bytes: &[u8]) -> Report {
    let mut decoded: Vec<(u64, Event)> = Vec::new();
    for (i, frame) in frames(bytes).enumerate() {
        let problem = |offset, id, what: String| Report {
            log: None,
            events: i,
            problem: Some(Problem { index: i + 1, offset, id, what }),
        };
        match frame {
            Err(offset) => return problem(offset, None, "cut short: the file ends inside this event".into()),
            Ok((offset, frame)) => match Event::decode(frame) {
                Ok(e) => decoded.push((offset, e)),
                Err(EventError::BadSignature) => {
                    let what = "edited or forged: its signature does not verify against the author it names";
                    return problem(offset, None, what.into());
                }
                Err(e) => return problem(offset, None, format!("edited or damaged: it no longer decodes ({e})")),
            },
        }
    }
    let position: HashMap<EventId, usize> = decoded.iter().enumerate().map(|(i, (_, e))| (e.id(), i)).collect();
    let mut log: Option<Log> = None;
    for (i, (offset, event)) in decoded.iter().enumerate() {
        let problem = |what: String| Report {
            log: None,
            events: i,
            problem: Some(Problem { index: i + 1, offset: *offset, id: Some(event.id()), what }),
        };
        let Some(log) = log.as_mut() else {
            match Log::new(event.clone()) {
                Ok(l) => log = Some(l),
                Err(_) => return problem("the log does not start with the group's creation".into()),
            }
            continue;
        };
        let refused = match log.ingest(event.clone()) {
            Ok(_) => continue,
            Err(r) => r,
        };
        let what = match refused {
            Refused::Missing { missing, .. } => match position.get(&missing) {
                Some(j) if *j > i => format!("reordered: it comes before event #{}, which it refers to", j + 1),
                _ => format!("an event was deleted: it refers to {}, which is not in the log", missing.short()),
            },
            Refused::BrokenChain(_) => {
                let h = event.header();
                format!("an event was deleted or reordered in {}'s feed before its number {}", h.author.short(), h.seq)
            }
            Refused::Equivocation { proof: e, .. } => format!(
                "equivocation: {} signed two different events as number {} of its feed ({} and {})",
                e.author().short(),
                e.seq(),
                e.kept.id().short(),
                e.other.id().short()
            ),
            other => other.to_string(),
        };
        return problem(what);
    }
    Report { events: decoded.len(), log, problem: None }
}

#[cfg(test)]
mod tests;
