//! One blob from several peers at once: the missing groups are cut into
//! ranges, and each source takes the next range when it is free, so a fast
//! peer moves more than a slow one. Every range is its own `blob.get`
//! transfer, verified group by group and signed for by its sender, into
//! one partial copy (see [`SharedPartial`]).
//!
//! A source that fails (stalls past the request timeout, sends data that
//! does not verify, refuses) is dropped and its range goes back to the
//! others. At the end, a free source also fetches the range that has been
//! running longest elsewhere; whichever finishes first wins and the other
//! is stopped and dropped, so one slow peer does not hold up the end.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use alp_blobstore::BlobHash;
use alp_blobstore::store::Store;
use alp_blobstore::tree::{GROUP_SIZE, groups};

use super::blobs::open_partial;
use super::{Fetched, Held, Link, RequestError, Via};
use crate::transfer::{self, Progress, SharedPartial, TransferError};

/// Groups per range handed to a source (1 MiB): small enough that the
/// sources share the work evenly and a range fetched twice at the end
/// wastes little, large enough that a request per range costs nothing.
const RANGE_GROUPS: u64 = 64;

/// A peer to fetch from.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// Its link.
    pub link: &'a Link,
    /// Its name, for reports.
    pub name: &'a str,
}

/// What one source did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceReport {
    /// Its name.
    pub name: String,
    /// Payload bytes it sent: whole ranges it completed, and about what
    /// verified of a range it was stopped in or failed (a range fetched
    /// from two sources at the end counts for both).
    pub received: u64,
    /// Ranges it completed.
    pub parts: u32,
    /// Why it was dropped, if it was.
    pub dropped: Option<String>,
}

/// The result of [`get_blob_from_many`].
#[derive(Debug)]
pub struct FromMany {
    /// The blob, whole (or what verified, if every source failed first).
    pub fetched: Fetched,
    /// Each source's share.
    pub sources: Vec<SourceReport>,
}

/// A range being fetched.
struct Running {
    id: u64,
    source: usize,
    range: (u64, u64),
    started: Instant,
    /// Another source fetches it too.
    twinned: bool,
    stop: std::sync::Arc<tokio::sync::Notify>,
}

#[derive(Default)]
struct Plan {
    queue: VecDeque<(u64, u64)>,
    running: Vec<Running>,
    next_id: u64,
}

/// What a free source does next.
enum Next {
    /// Fetch this range (job id, range, stop signal).
    Fetch(u64, (u64, u64), std::sync::Arc<tokio::sync::Notify>),
    /// Nothing to take now, but ranges still run elsewhere: one may fail
    /// and come back. Wait, then ask again.
    Wait,
    /// Nothing is left.
    Done,
}

impl Plan {
    fn next(&mut self, source: usize) -> Next {
        let (range, twin) = match self.queue.pop_front() {
            Some(r) => (r, false),
            None => {
                // The end: help with the range running longest elsewhere.
                let Some(oldest) =
                    self.running.iter_mut().filter(|r| r.source != source && !r.twinned).min_by_key(|r| r.started)
                else {
                    return if self.running.is_empty() { Next::Done } else { Next::Wait };
                };
                oldest.twinned = true;
                (oldest.range, true)
            }
        };
        self.next_id += 1;
        let stop = std::sync::Arc::new(tokio::sync::Notify::new());
        // A twin is never twinned again: two copies of a range at most.
        let job =
            Running { id: self.next_id, source, range, started: Instant::now(), twinned: twin, stop: stop.clone() };
        self.running.push(job);
        Next::Fetch(self.next_id, range, stop)
    }

    /// Job `id` ended; others fetching the same range are stopped.
    fn finished(&mut self, id: u64) {
        let Some(at) = self.running.iter().position(|r| r.id == id) else { return };
        let done = self.running.remove(at);
        self.running.retain(|r| {
            let twin = r.range == done.range;
            if twin {
                r.stop.notify_one();
            }
            !twin
        });
    }

    /// Job `id` ends without a transfer (its range was already here): no
    /// other job is touched.
    fn dropped(&mut self, id: u64) {
        self.running.retain(|r| r.id != id);
    }

    /// Job `id` failed: its range goes back first in line, unless a twin
    /// still fetches it.
    fn failed(&mut self, id: u64) {
        let Some(at) = self.running.iter().position(|r| r.id == id) else { return };
        let job = self.running.remove(at);
        if !self.running.iter().any(|r| r.range == job.range) {
            self.queue.push_front(job.range);
        }
    }
}

/// The first group of `hash` from `source` (which tells the size), then
/// the last (which proves it: only the last group's place in the tree
/// depends on the exact size). A source whose size does not hold is
/// refused, and what it sent is dropped.
async fn first_and_last_group(
    source: &Source<'_>,
    via: Via,
    store: &Store,
    hash: BlobHash,
    progress: Progress<'_>,
) -> Result<Fetched, RequestError> {
    let first = source.link.get_blob_via(via, store, hash, Some((0, 1)), progress).await?;
    let size = match &first.blob {
        Held::Partial(p) if p.size() > GROUP_SIZE => p.size(),
        _ => return Ok(first),
    };
    drop(first.blob);
    match source.link.get_blob_via(via, store, hash, Some((size - 1, size)), progress).await {
        Ok(mut last) => {
            last.received += first.received;
            let mut receipts = first.receipts;
            receipts.append(&mut last.receipts);
            last.receipts = receipts;
            Ok(last)
        }
        Err(e) => {
            // Its first group verifies under any size with the same top of
            // the tree: nothing of it is trusted.
            let (store, h) = (store.clone(), hash);
            let _ = tokio::task::spawn_blocking(move || store.remove_partial(&h)).await;
            Err(e)
        }
    }
}

/// Fetches blob `hash` from `sources` in parallel into `store`, asking
/// each `via`; `progress` is told the bytes verified here so far. Fails
/// only if every source failed before the blob was whole (what verified
/// is kept for the next try).
pub async fn get_blob_from_many(
    sources: &[Source<'_>],
    via: Via,
    store: &Store,
    hash: BlobHash,
    progress: Progress<'_>,
) -> Result<FromMany, RequestError> {
    let mut reports: Vec<SourceReport> = sources
        .iter()
        .map(|s| SourceReport { name: s.name.to_owned(), received: 0, parts: 0, dropped: None })
        .collect();
    if let Ok(info) = store.get(&hash) {
        let fetched = Fetched { blob: Held::Complete(info), received: 0, receipts: Vec::new() };
        return Ok(FromMany { fetched, sources: reports });
    }
    // The size: from what is here, or from the first source that has it
    // (asking for its first group, which is then here too).
    let mut first_error = None;
    let mut receipts = Vec::new();
    let mut received = 0;
    let partial = match store.partial_info(&hash).map_err(TransferError::from)? {
        Some(known) => open_partial(store, hash, known.size).await?,
        None => {
            let mut opened = None;
            for (i, s) in sources.iter().enumerate() {
                match first_and_last_group(s, via, store, hash, progress).await {
                    Ok(Fetched { blob: Held::Partial(p), received: n, receipts: r }) => {
                        (received, receipts) = (n, r);
                        reports[i].received += n;
                        reports[i].parts += 2;
                        opened = Some(*p);
                        break;
                    }
                    Ok(whole) => return Ok(FromMany { fetched: whole, sources: reports }),
                    Err(e) => {
                        reports[i].dropped = Some(e.to_string());
                        first_error.get_or_insert(e);
                    }
                }
            }
            match opened {
                Some(p) => p,
                None => return Err(first_error.unwrap_or_else(|| super::blobs::wire_error("no source to fetch from"))),
            }
        }
    };
    if let Ok(info) = store.get(&hash) {
        // Completed by the transfer this one waited for.
        let fetched = Fetched { blob: Held::Complete(info), received: 0, receipts: Vec::new() };
        return Ok(FromMany { fetched, sources: reports });
    }
    let size = partial.size();
    let mut plan = Plan::default();
    for (a, b) in partial.missing(0, groups(size)) {
        let mut at = a;
        while at < b {
            let end = (at + RANGE_GROUPS).min(b);
            plan.queue.push_back((at, end));
            at = end;
        }
    }
    let base = partial.have_bytes();
    let shared = SharedPartial::new(partial);
    let plan = Mutex::new(plan);
    // Told whenever a range ends, for sources waiting for work.
    let changed = tokio::sync::Notify::new();
    let moved = AtomicU64::new(0);
    let report = |done: u64| progress((base + done).min(size), size);
    let workers = sources.iter().enumerate().filter(|(i, _)| reports[*i].dropped.is_none()).map(|(i, s)| {
        let (shared, plan, moved, report, changed) = (shared.clone(), &plan, &moved, &report, &changed);
        async move {
            let mut mine = (0u64, 0u32, Vec::new(), None);
            loop {
                let next = plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner).next(i);
                let (id, (a, b), stop) = match next {
                    Next::Fetch(id, range, stop) => (id, range, stop),
                    Next::Wait => {
                        // Woken when a range ends; a missed wake costs 100 ms.
                        let _ = tokio::time::timeout(std::time::Duration::from_millis(100), changed.notified()).await;
                        continue;
                    }
                    Next::Done => break,
                };
                // What of the range is still missing (a twin may have filled some).
                let gaps = shared.with(|p| p.missing(a, b));
                let (Some(first), Some(last)) = (gaps.first(), gaps.last()) else {
                    plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner).dropped(id);
                    changed.notify_waiters();
                    continue;
                };
                let bytes = (first.0 * GROUP_SIZE, (last.1 * GROUP_SIZE).min(size));
                let seen = AtomicU64::new(0);
                let tick = |done: u64, _: u64| {
                    let before = seen.swap(done, Ordering::Relaxed);
                    let total =
                        moved.fetch_add(done.saturating_sub(before), Ordering::Relaxed) + done.saturating_sub(before);
                    report(total);
                };
                let fetch = s.link.get_range_into(via, store, (hash, size), bytes, shared.clone(), &tick);
                let outcome = tokio::select! {
                    r = fetch => Some(r),
                    () = stop.notified() => None,
                };
                let mut plan = plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let go_on = match outcome {
                    Some(Ok((receipt, n))) => {
                        plan.finished(id);
                        mine.0 += n;
                        mine.1 += 1;
                        mine.2.push(receipt);
                        true
                    }
                    // Its twin elsewhere finished first: too slow to wait for.
                    None => {
                        // What it verified before it was stopped is kept.
                        mine.0 += seen.load(Ordering::Relaxed);
                        plan.finished(id);
                        mine.3 = Some("slower than the others: its last range was fetched elsewhere".to_owned());
                        false
                    }
                    Some(Err(e)) => {
                        mine.0 += seen.load(Ordering::Relaxed);
                        plan.failed(id);
                        tracing::info!(source = s.name, "dropped: {e}");
                        mine.3 = Some(e.to_string());
                        false
                    }
                };
                drop(plan);
                changed.notify_waiters();
                if !go_on {
                    break;
                }
            }
            (i, mine)
        }
    });
    let results = futures_util::future::join_all(workers).await;
    for (i, (n, parts, mut r, dropped)) in results {
        reports[i].received += n;
        reports[i].parts += parts;
        reports[i].dropped = reports[i].dropped.take().or(dropped);
        receipts.append(&mut r);
    }
    // Stopped transfers may still hand their last writes over: wait for
    // the partial to be ours alone.
    let mut shared = Some(shared);
    let partial = loop {
        match shared.take().map(SharedPartial::into_inner_or_back) {
            Some(Ok(p)) => break p,
            Some(Err(back)) => {
                shared = Some(back);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            None => unreachable!(),
        }
    };
    // What this fetch added here, each group once.
    received += partial.have_bytes().saturating_sub(base);
    if !partial.is_complete() {
        // Keep what verified for the next try.
        let mut p = partial;
        let (p, _) = tokio::task::spawn_blocking(move || {
            let r = p.checkpoint();
            (p, r)
        })
        .await
        .map_err(|e| super::blobs::wire_error(&format!("checkpoint failed: {e}")))?;
        let kept = p.have_bytes();
        drop(p);
        let why = reports.iter().filter_map(|r| r.dropped.clone()).next().unwrap_or_default();
        return Err(RequestError::Interrupted {
            source: TransferError::Wire(format!("every source failed; the first said: {why}")),
            kept,
            size,
        });
    }
    let blob = {
        let info = transfer::publish(partial).await?;
        super::blobs::note_fetched(store, &hash, &receipts);
        Held::Complete(info)
    };
    Ok(FromMany { fetched: Fetched { blob, received, receipts }, sources: reports })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_source_takes_the_next_range_then_twins_the_oldest() {
        let mut plan = Plan::default();
        plan.queue.extend([(0, 256), (256, 300)]);
        let Next::Fetch(a, ra, _) = plan.next(0) else { panic!() };
        let Next::Fetch(b, rb, _) = plan.next(1) else { panic!() };
        assert_eq!((ra, rb), ((0, 256), (256, 300)));
        // Source 1 is done; the queue is empty: it twins source 0's range.
        plan.finished(b);
        let Next::Fetch(c, rc, _) = plan.next(1) else { panic!() };
        assert_eq!(rc, (0, 256));
        // Nothing more to twin, but ranges still run: wait, they may fail.
        assert!(matches!(plan.next(2), Next::Wait));
        plan.finished(c);
        assert!(plan.running.is_empty(), "the slower twin is stopped");
        assert!(matches!(plan.next(2), Next::Done));
        let _ = a;
    }

    #[test]
    fn a_failed_range_goes_back_first_unless_a_twin_has_it() {
        let mut plan = Plan::default();
        plan.queue.extend([(0, 1), (1, 2)]);
        let Next::Fetch(a, _, _) = plan.next(0) else { panic!() };
        plan.failed(a);
        assert_eq!(plan.queue.front(), Some(&(0, 1)));
        let Next::Fetch(b, _, _) = plan.next(0) else { panic!() };
        let Next::Fetch(_, _, _) = plan.next(1) else { panic!() };
        let Next::Fetch(_, twin, _) = plan.next(2) else { panic!() };
        assert_eq!(twin, (0, 1));
        plan.failed(b);
        assert_eq!(plan.queue.len(), 0, "its twin still fetches it");
    }

    #[test]
    fn a_range_found_complete_ends_only_its_own_job() {
        let mut plan = Plan::default();
        plan.queue.push_back((0, 1));
        let Next::Fetch(a, _, stop_a) = plan.next(0) else { panic!() };
        let Next::Fetch(b, _, _) = plan.next(1) else { panic!() };
        plan.dropped(b);
        assert_eq!(plan.running.len(), 1, "the original still runs, its receipt to come");
        assert!(plan.running.iter().any(|r| r.id == a));
        drop(stop_a);
    }
}
