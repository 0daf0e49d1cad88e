//! Outstanding pairing tickets. Only values derived one way from each
//! ticket's secret are stored: its public id and its pre-shared key.

use std::path::{Path, PathBuf};

use alp_protocol::handshake::TicketId;
use alp_protocol::ticket::TicketSecret;
use serde::{Deserialize, Serialize};

use crate::fsutil::{LockError, ProfileLock};
use crate::tomlfile::{self, FileError, hex, unhex};

/// One outstanding ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredTicket {
    /// Hex of the public ticket id.
    pub id: String,
    /// Hex of the pre-shared key derived from the secret.
    psk: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds after which the ticket is refused.
    pub expires_at: u64,
    /// Redemptions left.
    pub uses_left: u32,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketsFile {
    version: u32,
    #[serde(default, rename = "ticket")]
    tickets: Vec<StoredTicket>,
}

crate::tomlfile::versioned_file!(TicketsFile, 1, tickets);

/// The ticket store could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TicketStoreError {
    /// The file cannot be read or written.
    #[error("ticket store {0}")]
    File(#[from] FileError),
    /// The profile lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
}

/// The tickets of one profile.
#[derive(Debug, Clone)]
pub struct TicketStore {
    path: PathBuf,
    lock: PathBuf,
}

impl TicketStore {
    /// The store in `path`, serialised by the lock file `lock`.
    pub fn new(path: &Path, lock: &Path) -> Self {
        Self { path: path.to_owned(), lock: lock.to_owned() }
    }

    /// Records a new ticket; also drops expired ones.
    pub fn add(
        &self,
        secret: &TicketSecret,
        ttl_secs: u64,
        uses: u32,
        now: u64,
    ) -> Result<StoredTicket, TicketStoreError> {
        let ticket = StoredTicket {
            id: hex(&secret.id().0),
            psk: hex(&secret.psk()),
            created_at: now,
            expires_at: now.saturating_add(ttl_secs),
            uses_left: uses.max(1),
        };
        self.update(now, |tickets| tickets.push(ticket.clone()))?;
        Ok(ticket)
    }

    /// The pre-shared key of a live ticket (unexpired, with uses left).
    pub fn psk_for(&self, id: TicketId, now: u64) -> Result<Option<[u8; 32]>, TicketStoreError> {
        let file: TicketsFile = tomlfile::load(&self.path)?;
        Ok(file.tickets.iter().find(|t| live(t, &id, now)).and_then(|t| unhex::<32>(&t.psk)))
    }

    /// Uses up one redemption. `false` if the ticket is gone, expired or
    /// used up (for example by a concurrent redemption).
    pub fn consume(&self, id: TicketId, now: u64) -> Result<bool, TicketStoreError> {
        self.update(now, |tickets| {
            let Some(i) = tickets.iter().position(|t| live(t, &id, now)) else {
                return false;
            };
            tickets[i].uses_left -= 1;
            if tickets[i].uses_left == 0 {
                tickets.remove(i);
            }
            true
        })
    }

    fn update<R>(&self, now: u64, f: impl FnOnce(&mut Vec<StoredTicket>) -> R) -> Result<R, TicketStoreError> {
        let _lock = ProfileLock::acquire(&self.lock)?;
        let mut file: TicketsFile = tomlfile::load(&self.path)?;
        file.tickets.retain(|t| t.expires_at > now && t.uses_left > 0);
        let out = f(&mut file.tickets);
        tomlfile::save(&self.path, "Outstanding pairing tickets (hashed). Created by `alp invite`.", &file)?;
        Ok(out)
    }
}

fn live(t: &StoredTicket, id: &TicketId, now: u64) -> bool {
    t.expires_at > now && t.uses_left > 0 && unhex::<16>(&t.id) == Some(id.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, TicketStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = TicketStore::new(&dir.path().join("tickets.toml"), &dir.path().join(".lock"));
        (dir, s)
    }

    #[test]
    fn single_use_ticket_is_consumed_once() {
        let (_d, s) = store();
        let secret = TicketSecret([1; 32]);
        s.add(&secret, 600, 1, 1000).unwrap();
        assert_eq!(s.psk_for(secret.id(), 1001).unwrap(), Some(secret.psk()));
        assert!(s.consume(secret.id(), 1001).unwrap());
        assert!(!s.consume(secret.id(), 1002).unwrap());
        assert_eq!(s.psk_for(secret.id(), 1002).unwrap(), None);
    }

    #[test]
    fn multi_use_and_expiry() {
        let (_d, s) = store();
        let secret = TicketSecret([2; 32]);
        s.add(&secret, 10, 2, 1000).unwrap();
        assert!(s.consume(secret.id(), 1001).unwrap());
        assert!(s.psk_for(secret.id(), 1009).unwrap().is_some());
        assert_eq!(s.psk_for(secret.id(), 1010).unwrap(), None);
        assert!(!s.consume(secret.id(), 1010).unwrap());
    }

    #[test]
    fn the_secret_is_never_stored() {
        let (d, s) = store();
        let secret = TicketSecret([0xab; 32]);
        s.add(&secret, 10, 1, 0).unwrap();
        let text = std::fs::read_to_string(d.path().join("tickets.toml")).unwrap();
        assert!(!text.contains(&hex(&secret.0)));
        assert!(text.contains(&hex(&secret.id().0)));
    }

    #[test]
    fn unknown_ids_are_refused() {
        let (_d, s) = store();
        s.add(&TicketSecret([3; 32]), 10, 1, 0).unwrap();
        assert_eq!(s.psk_for(TicketSecret([4; 32]).id(), 1).unwrap(), None);
    }
}
