//! Ephemeral X25519 keys made ahead of time for a serving node's
//! handshakes, on a thread of its own: the [`KeySource`] the protocol's
//! responders draw on.
//!
//! `take` hands each key out once and wakes the filler to replace it at
//! once, which spreads the work over time (refilling in bursts competed
//! with handshakes for the CPU). An empty pool only means a handshake
//! makes its own key. The thread ends when the last handle is dropped.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

use alp_protocol::handshake::{EphemeralKey, KeySource};

/// Keys kept ready.
const POOL_SIZE: usize = 64;

/// A pool of ephemeral keys, filled by a background thread.
#[derive(Debug)]
pub struct KeyPool {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    keys: Vec<EphemeralKey>,
    closed: bool,
}

impl KeyPool {
    /// Starts filling a pool. Without a thread (the system refused one),
    /// the pool stays empty and handshakes make their own keys.
    pub fn start() -> Arc<Self> {
        let shared = Arc::new(Shared::default());
        let filler = shared.clone();
        let spawned = std::thread::Builder::new().name("alp-x25519-pool".into()).spawn(move || filler.fill());
        if let Err(e) = spawned {
            tracing::debug!("no key pool thread ({e}); handshakes make their own keys");
        }
        Arc::new(Self { shared })
    }

    /// Keys ready now.
    pub fn ready(&self) -> usize {
        self.shared.lock().keys.len()
    }
}

impl KeySource for KeyPool {
    fn take(&self) -> Option<EphemeralKey> {
        let key = self.shared.lock().keys.pop();
        self.shared.changed.notify_one();
        key
    }
}

impl Drop for KeyPool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fill(&self) {
        loop {
            let Some(key) = EphemeralKey::generate(&mut |buf| getrandom::fill(buf).is_ok()) else { return };
            let mut state = self.lock();
            state.keys.push(key);
            while state.keys.len() >= POOL_SIZE && !state.closed {
                state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            if state.closed {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::{Duration, Instant};

    fn wait_for(pool: &KeyPool, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.ready() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn keys_are_valid_never_repeat_and_are_replaced() {
        let pool = KeyPool::start();
        wait_for(&pool, POOL_SIZE);
        assert_eq!(pool.ready(), POOL_SIZE);
        let mut seen = HashSet::new();
        for _ in 0..(2 * POOL_SIZE) {
            let key = pool.take().or_else(|| EphemeralKey::generate(&mut |b| getrandom::fill(b).is_ok())).unwrap();
            assert!(seen.insert(*key.public()), "a key was handed out twice");
        }
        wait_for(&pool, POOL_SIZE);
        assert_eq!(pool.ready(), POOL_SIZE, "taken keys are replaced");
    }

    #[test]
    fn the_thread_ends_with_the_pool() {
        let pool = KeyPool::start();
        wait_for(&pool, POOL_SIZE);
        let shared = Arc::downgrade(&pool.shared);
        drop(pool);
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.strong_count() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(shared.strong_count(), 0, "the filler thread still holds the pool");
    }
}
