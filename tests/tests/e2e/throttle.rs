//! A pacing UDP proxy for loopback tests and benchmarks: each direction
//! limited to a rate, and optionally going silent after a number of bytes
//! (a peer that stalls with the connection still up).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A UDP proxy in front of `upstream` that paces each direction to
/// `rate` bytes per second. Stops when dropped.
pub(crate) struct Throttle {
    pub(crate) addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Throttle {
    pub(crate) fn new(upstream: SocketAddr, rate: u64) -> Self {
        Self::stalling(upstream, rate, u64::MAX)
    }

    /// [`Self::new`], dropping every datagram once `limit` bytes passed
    /// (both ways together).
    pub(crate) fn stalling(upstream: SocketAddr, rate: u64, limit: u64) -> Self {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = front.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let passed = Arc::new(AtomicU64::new(0));
        let pump = |from: UdpSocket, to: UdpSocket, dest: Option<SocketAddr>| {
            let (stop, client, passed) = (stop.clone(), client.clone(), passed.clone());
            std::thread::spawn(move || {
                from.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                // When the link is free again: idle time earns no credit, so
                // a link that was quiet does not burst beyond its rate.
                let (mut free_at, mut buf) = (Instant::now(), vec![0u8; 65_536]);
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, peer)) = from.recv_from(&mut buf) else { continue };
                    let target = match dest {
                        Some(up) => {
                            *client.lock().unwrap() = Some(peer);
                            up
                        }
                        None => match *client.lock().unwrap() {
                            Some(c) => c,
                            None => continue,
                        },
                    };
                    if passed.fetch_add(n as u64, Ordering::Relaxed) >= limit {
                        continue;
                    }
                    let _ = to.send_to(&buf[..n], target);
                    let now = Instant::now();
                    free_at = free_at.max(now) + Duration::from_secs_f64(n as f64 / rate as f64);
                    // Sleep in steps of at least 2 ms (finer sleeps overshoot
                    // and would pace below the rate): a burst stays under
                    // 2 ms worth of the rate.
                    if let Some(wait) = free_at.checked_duration_since(now).filter(|w| *w >= Duration::from_millis(2)) {
                        std::thread::sleep(wait);
                    }
                }
            })
        };
        let threads =
            vec![pump(front.try_clone().unwrap(), back.try_clone().unwrap(), Some(upstream)), pump(back, front, None)];
        Self { addr, stop, threads }
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
