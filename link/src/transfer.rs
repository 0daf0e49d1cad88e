//! Moving one part of a blob over one request stream.
//!
//! The sender walks the blob's tree in stream order (the parents and
//! groups of the part, pre-order) and seals it into records; the final
//! frame is its signed receipt. The receiver opens each record and
//! verifies every parent and group against the blob's hash before writing
//! it into the blob's partial copy, which checkpoints as it goes; the
//! caller publishes the blob once every group is there. Memory stays
//! bounded: one record and one group at a time.
//!
//! Both directions are written against [`FrameRead`] and [`FrameWrite`],
//! so the same code runs over quinn streams and, in the tests below,
//! over in-memory pipes: resume, tampering, truncation, reordering and
//! receipts are checked there without sockets.

use std::os::unix::fs::FileExt;
use std::time::Duration;

use alp_blobstore::BlobHash;
use alp_blobstore::part::Part;
use alp_blobstore::store::partial::TAKEOVER_POLL;
use alp_blobstore::store::{Partial, Store, StoreError, TakeoverProbe};
use alp_blobstore::tree::{GROUP_SIZE, PARENT_SIZE, Step, Verifier, VerifyError, stream_order};
use alp_protocol::NodeId;
use alp_protocol::receipt::{RECEIPT_LEN, SignedReceipt};
use alp_protocol::record::{
    MAX_PLAINTEXT, MAX_RECORD, Opener, RecordContext, RecordError, Sealer, TransferId, TransferKey,
};
use ed25519_dalek::SigningKey;

use crate::wire::{FrameRead, FrameWrite, WireError, reset_code};

/// A blob transfer failed. Nothing was published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// A record failed to open: tampered, reordered, duplicated, or extra.
    #[error("record {record} (payload bytes from {offset}): {source}")]
    Record {
        /// Its index.
        record: u64,
        /// Payload bytes opened before it.
        offset: u64,
        /// Why.
        source: RecordError,
    },
    /// Data that does not hash to the blob.
    #[error("{0}")]
    Verify(#[from] VerifyError),
    /// The stream ended before its final record.
    #[error("the stream ended early, after {0} payload bytes: run the same command again to retry")]
    Truncated(u64),
    /// The receipt is missing, malformed, unsigned or about another transfer.
    #[error("receipt refused: {0}")]
    Receipt(String),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stream or connection failed.
    #[error("{0}")]
    Wire(String),
    /// The peer went silent.
    #[error("no data for {0:.0} s")]
    Timeout(f64),
    /// Another transfer of the same blob took the partial copy over (a
    /// re-run, or another sender); what this one verified is kept for it.
    #[error("another transfer of this blob took over here; it carries on from what this one verified")]
    Superseded,
}

impl From<WireError> for TransferError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Reset(code) if code == reset_code::DAMAGED => TransferError::Wire(
                "the sender found its copy of the blob damaged and stopped: fetch it from another peer".into(),
            ),
            e => TransferError::Wire(e.to_string()),
        }
    }
}

impl TransferError {
    /// Whether the sender's own copy turned out to be damaged.
    pub(crate) fn is_damage(&self) -> bool {
        matches!(self, TransferError::Store(StoreError::Damaged { .. }))
    }
}

/// One transfer: which part of which blob, and its keys and bindings.
#[derive(Debug)]
pub(crate) struct Transfer {
    pub(crate) id: TransferId,
    pub(crate) key: TransferKey,
    pub(crate) context: RecordContext,
    pub(crate) hash: BlobHash,
    pub(crate) size: u64,
    pub(crate) part: Part,
}

impl Transfer {
    /// The transfer `id` of `part` of blob `hash` of `size` bytes, keyed
    /// from the session secret of the connection it runs on.
    pub(crate) fn new(session_secret: &[u8; 32], id: TransferId, (hash, size): (BlobHash, u64), part: Part) -> Self {
        let key = TransferKey::derive(session_secret, &id);
        let (start, end) = part.bytes;
        let context = RecordContext { hash: *hash.as_bytes(), start, end, size };
        Self { id, key, context, hash, size, part }
    }

    /// The sender's signed receipt for this transfer, made by `key` for
    /// `receiver` over the connection with `binding`.
    pub(crate) fn receipt(&self, key: &SigningKey, receiver: NodeId, binding: [u8; 32]) -> SignedReceipt {
        alp_protocol::receipt::Receipt {
            hash: *self.hash.as_bytes(),
            size: self.size,
            start: self.part.bytes.0,
            end: self.part.bytes.1,
            sender: key.verifying_key().into(),
            receiver,
            transfer_id: self.id,
            binding,
            time: alp_profiles::unix_now(),
        }
        .sign(key)
    }
}

/// Publishes a complete partial blob (renames and fsyncs, off the async
/// threads).
pub(crate) async fn publish(partial: Partial) -> Result<alp_blobstore::store::BlobInfo, TransferError> {
    match tokio::task::spawn_blocking(move || partial.publish()).await {
        Ok(r) => Ok(r?),
        Err(e) => Err(TransferError::Wire(format!("publishing failed: {e}"))),
    }
}

/// Whether `e` is the disk running out of space (the partial blob then
/// cannot complete: its owner removes it).
pub(crate) fn out_of_space(e: &TransferError) -> bool {
    match e {
        TransferError::Store(StoreError::DiskFull { .. }) => true,
        TransferError::Store(StoreError::Io { source, .. }) => source.kind() == std::io::ErrorKind::StorageFull,
        _ => false,
    }
}

/// A fresh random transfer id.
pub(crate) fn new_id() -> Result<TransferId, TransferError> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| TransferError::Wire(format!("random source failed: {e}")))?;
    Ok(TransferId(id))
}

/// Misbehaviours a test sender can inject, to check that receivers refuse
/// them. Not for use outside tests.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Flip one bit of this record after sealing.
    pub flip_bit_in_record: Option<u64>,
    /// Send this record after the next one.
    pub swap_record: Option<u64>,
    /// Send this record twice.
    pub duplicate_record: Option<u64>,
    /// Leave out the final record.
    pub drop_final: bool,
    /// Flip one bit of the receipt's signature.
    pub corrupt_receipt: bool,
    /// Leave out the receipt.
    pub skip_receipt: bool,
}

/// Writes records, applying `faults`.
struct RecordWriter<'a, W> {
    stream: &'a mut W,
    faults: Faults,
    index: u64,
    held: Option<Vec<u8>>,
}

impl<W: FrameWrite> RecordWriter<'_, W> {
    async fn write(&mut self, mut record: Vec<u8>, last: bool) -> Result<(), TransferError> {
        let i = self.index;
        self.index += 1;
        let f = self.faults;
        if f.flip_bit_in_record == Some(i) {
            record[0] ^= 1;
        }
        if last && f.drop_final {
            return Ok(());
        }
        if f.swap_record == Some(i) && !last {
            self.held = Some(record);
            return Ok(());
        }
        if f.duplicate_record == Some(i) {
            self.stream.write_frame(record.clone()).await?;
        }
        self.stream.write_frame(record).await?;
        if let Some(held) = self.held.take() {
            self.stream.write_frame(held).await?;
        }
        Ok(())
    }
}

/// Told how many bytes of the blob have moved so far, and of how many.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// A [`Progress`] that ignores it.
pub fn silent(_done: u64, _total: u64) {}

/// Sealed records waiting for the network, per transfer: enough to keep
/// the link busy while the reader thread fills the next ones.
const RECORDS_IN_FLIGHT: usize = 16;

/// Sends the transfer's part of its blob from `store`, then `receipt`.
///
/// A blocking thread reads the blob and its tree and seals records; this
/// task writes them to the stream. The two overlap, on separate cores.
pub(crate) async fn send(
    stream: &mut impl FrameWrite,
    store: &Store,
    transfer: &Transfer,
    receipt: &SignedReceipt,
    faults: Faults,
    progress: Progress<'_>,
) -> Result<(), TransferError> {
    let (hash, size, part) = (transfer.hash, transfer.size, transfer.part);
    let tree = store.open_tree(&hash)?;
    let data = store.open_blob(&hash)?;
    let sealer = Sealer::new(&transfer.key, &transfer.context);
    let (tx, mut rx) = tokio::sync::mpsc::channel(RECORDS_IN_FLIGHT);
    let path = store.data_path(&hash);
    let reader = tokio::task::spawn_blocking(move || {
        let source = Source { hash, size, tree: tree.as_ref(), data: &data, path };
        if let Err(e) = seal_part(&tx, &source, part, sealer) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let mut out = RecordWriter { stream, faults, index: 0, held: None };
    let total = part.len();
    let result = async {
        while let Some(sealed) = rx.recv().await {
            let Sealed { record, last, through } = sealed?;
            out.write(record, last).await?;
            progress(through, total);
            if last {
                return Ok(());
            }
        }
        Err(TransferError::Wire("the blob reader stopped early".into()))
    }
    .await;
    // Stops the reader if we stopped first.
    drop(rx);
    let _ = reader.await;
    if let Err(TransferError::Store(StoreError::Damaged { hash, what })) = &result
        && let Some(r) = store.reference(hash)
    {
        tracing::error!(%hash, "the file this blob was added from, {}, changed ({what}): add it again", r.path.display());
    } else if let Err(TransferError::Store(StoreError::Damaged { hash, what })) = &result {
        tracing::error!(%hash, "this blob is damaged on disk ({what}); it is taken out of the store");
        match store.quarantine(hash) {
            Ok(to) => tracing::error!(%hash, "moved to {}: fetch it again, or remove it", to.display()),
            Err(e) => tracing::error!(%hash, "could not take it out of the store: {e}"),
        }
    }
    result?;
    let mut receipt = receipt.encode();
    if faults.corrupt_receipt {
        receipt[200] ^= 1;
    }
    if !faults.skip_receipt {
        out.stream.write_frame(receipt.to_vec()).await?;
    }
    Ok(())
}

/// One sealed record, and how many bytes of the part it completes.
struct Sealed {
    record: Vec<u8>,
    last: bool,
    through: u64,
}

/// A stored blob, opened for sending.
struct Source<'a> {
    hash: BlobHash,
    size: u64,
    tree: Option<&'a std::fs::File>,
    data: &'a std::fs::File,
    path: std::path::PathBuf,
}

/// Reads the part in stream order (parents and groups), verifying each
/// against the blob's hash as it is read (a node never sends damage it
/// could have noticed), and seals it into records, handing each to `tx`.
/// Stops quietly if the receiver of `tx` went away.
fn seal_part(
    tx: &tokio::sync::mpsc::Sender<Result<Sealed, TransferError>>,
    src: &Source<'_>,
    part: Part,
    mut sealer: Sealer,
) -> Result<(), TransferError> {
    let (size, data) = (src.size, src.data);
    let io = |e: std::io::Error| TransferError::Store(StoreError::Io { path: src.path.clone(), source: e });
    let damaged = |e: VerifyError| TransferError::Store(StoreError::Damaged { hash: src.hash, what: e.to_string() });
    let mut verifier = Verifier::new(blake3::Hash::from_bytes(*src.hash.as_bytes()), size, vec![part.groups]);
    let mut plain = Vec::with_capacity(MAX_PLAINTEXT + GROUP_SIZE as usize);
    let mut sent = 0u64;
    let emit = |record: Result<Vec<u8>, RecordError>, last: bool, through: u64| {
        let sealed = record.map(|record| Sealed { record, last, through }).map_err(seal_error);
        tx.blocking_send(sealed).is_ok()
    };
    for step in stream_order(size, vec![part.groups]) {
        match step {
            Step::Parent(i) => {
                let mut pair = [0u8; 64];
                if let Some(tree) = src.tree {
                    tree.read_exact_at(&mut pair, i * PARENT_SIZE).map_err(io)?;
                }
                verifier.parent(&pair).map_err(damaged)?;
                plain.extend_from_slice(&pair);
            }
            Step::Group(g) => {
                let start = g * GROUP_SIZE;
                let len = (size - start).min(GROUP_SIZE) as usize;
                let at = plain.len();
                plain.resize(at + len, 0);
                data.read_exact_at(&mut plain[at..], start).map_err(io)?;
                verifier.group(&plain[at..]).map_err(damaged)?;
                sent += len as u64;
            }
        }
        while plain.len() >= MAX_PLAINTEXT {
            let record = sealer.seal(&plain[..MAX_PLAINTEXT], false);
            plain.drain(..MAX_PLAINTEXT);
            if !emit(record, false, sent.saturating_sub(plain.len() as u64)) {
                return Ok(());
            }
        }
    }
    emit(sealer.seal(&plain, true), true, part.len());
    Ok(())
}

fn seal_error(e: RecordError) -> TransferError {
    TransferError::Record { record: 0, offset: 0, source: e }
}

/// Where a receiving transfer writes what verified: a partial blob of its
/// own, or one several transfers fill at once ([`SharedPartial`]: a blob
/// fetched from several peers).
pub(crate) trait Sink: Send + 'static {
    /// The blob.
    fn hash(&self) -> BlobHash;
    /// Its size.
    fn size(&self) -> u64;
    /// Whether another transfer waits to take the partial over.
    fn takeover_probe(&self) -> TakeoverProbe;
    /// See [`Partial::write_groups`].
    fn write_groups(&mut self, first: u64, bytes: &[u8]) -> Result<(), StoreError>;
    /// See [`Partial::write_parents`].
    fn write_parents(&mut self, first: u64, pairs: &[u8]) -> Result<(), StoreError>;
    /// See [`Partial::checkpoint`].
    fn checkpoint(&mut self) -> Result<(), StoreError>;
    /// Whether this transfer alone writes the partial (it may then remove
    /// it, once released, when the disk is full).
    fn exclusive(&self) -> bool {
        true
    }
}

/// Removes the partial blob `hash` after a transfer into it ran out of
/// disk (it cannot complete), off the async threads.
pub(crate) async fn remove_when_full(store: &Store, hash: BlobHash, e: &TransferError) {
    if !out_of_space(e) {
        return;
    }
    let store = store.clone();
    if let Ok(Ok(true)) = tokio::task::spawn_blocking(move || store.remove_partial(&hash)).await {
        tracing::warn!(%hash, "removed the partial blob: the disk is full");
    }
}

impl Sink for Partial {
    fn hash(&self) -> BlobHash {
        Partial::hash(self)
    }
    fn size(&self) -> u64 {
        Partial::size(self)
    }
    fn takeover_probe(&self) -> TakeoverProbe {
        Partial::takeover_probe(self)
    }
    fn write_groups(&mut self, first: u64, bytes: &[u8]) -> Result<(), StoreError> {
        Partial::write_groups(self, first, bytes)
    }
    fn write_parents(&mut self, first: u64, pairs: &[u8]) -> Result<(), StoreError> {
        Partial::write_parents(self, first, pairs)
    }
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        Partial::checkpoint(self)
    }
}

/// One partial blob written by several transfers at once, each holding
/// the lock only while it writes a verified run. Two transfers writing
/// the same group write the same verified bytes.
#[derive(Debug, Clone)]
pub(crate) struct SharedPartial {
    inner: std::sync::Arc<std::sync::Mutex<Partial>>,
    hash: BlobHash,
    size: u64,
}

impl SharedPartial {
    pub(crate) fn new(partial: Partial) -> Self {
        let (hash, size) = (partial.hash(), partial.size());
        Self { inner: std::sync::Arc::new(std::sync::Mutex::new(partial)), hash, size }
    }

    /// Runs `f` on the partial.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Partial) -> T) -> T {
        let mut p = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut p)
    }

    /// The partial if no other transfer holds it any more, else `self`.
    pub(crate) fn into_inner_or_back(self) -> Result<Partial, Self> {
        let Self { inner, hash, size } = self;
        match std::sync::Arc::try_unwrap(inner) {
            Ok(m) => Ok(m.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner)),
            Err(inner) => Err(Self { inner, hash, size }),
        }
    }
}

impl Sink for SharedPartial {
    fn hash(&self) -> BlobHash {
        self.hash
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn takeover_probe(&self) -> TakeoverProbe {
        self.with(|p| p.takeover_probe())
    }
    fn write_groups(&mut self, first: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.with(|p| p.write_groups(first, bytes))
    }
    fn write_parents(&mut self, first: u64, pairs: &[u8]) -> Result<(), StoreError> {
        self.with(|p| p.write_parents(first, pairs))
    }
    // Never wait for the disk while the others wait for the lock: the
    // last checkpoint is taken once the partial is ours alone.
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.with(|p| p.checkpoint_soon())
    }
    fn exclusive(&self) -> bool {
        false
    }
}

/// What the receipt must say.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExpectedReceipt {
    pub(crate) sender: NodeId,
    pub(crate) receiver: NodeId,
    pub(crate) binding: [u8; 32],
}

/// Receives the transfer's part of the blob being assembled in `partial`,
/// verifying everything before writing it; returns the partial
/// (checkpointed) and the verified receipt. On failure, what verified so
/// far is checkpointed for a later transfer to resume, and the partial is
/// released.
///
/// This task reads and opens records; a blocking thread verifies and
/// writes them. The two overlap, on separate cores.
pub(crate) async fn receive<S: Sink>(
    stream: &mut impl FrameRead,
    partial: S,
    transfer: &Transfer,
    expect: ExpectedReceipt,
    idle: Duration,
    progress: Progress<'_>,
) -> Result<(S, SignedReceipt), TransferError> {
    let (hash, size, part) = (partial.hash(), partial.size(), transfer.part);
    let probe = partial.takeover_probe();
    let verifier = Verifier::new(blake3::Hash::from_bytes(*hash.as_bytes()), size, vec![part.groups]);
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(part.bytes.0));
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(RECORDS_IN_FLIGHT);
    let at = reached.clone();
    let writer = tokio::task::spawn_blocking(move || write_part(partial, verifier, rx, &at));

    let mut opener = Opener::new(&transfer.key, &transfer.context);
    let mut offset = 0u64;
    // Another transfer may ask for the partial while this one waits on
    // its peer (gone, perhaps, and not yet timed out): look now and then.
    let mut poll = tokio::time::interval(TAKEOVER_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = tokio::time::Instant::now();
    let read = async {
        while !opener.is_finished() {
            let next = tokio::time::timeout(idle, stream.read_frame(MAX_RECORD));
            tokio::pin!(next);
            let next = loop {
                tokio::select! {
                    biased;
                    r = &mut next => break r,
                    _ = poll.tick() => {
                        if probe.should_yield(heard.elapsed()) {
                            return Err(TransferError::Superseded);
                        }
                    }
                }
            };
            heard = tokio::time::Instant::now();
            let mut record = match next {
                Err(_) => return Err(TransferError::Timeout(idle.as_secs_f64())),
                Ok(Err(WireError::Finished)) => return Err(TransferError::Truncated(offset)),
                Ok(r) => r?,
            };
            let index = opener.records();
            let (n, _) =
                opener.open(&mut record).map_err(|source| TransferError::Record { record: index, offset, source })?;
            offset += n as u64;
            record.truncate(n);
            if tx.send(record).await.is_err() {
                // The writer stopped: its error says why.
                return Ok(());
            }
            let done = reached.load(std::sync::atomic::Ordering::Relaxed);
            progress(done.saturating_sub(part.bytes.0), part.len());
        }
        Ok(())
    }
    .await;
    drop(tx);
    let receipt = match &read {
        Ok(()) if opener.is_finished() => {
            Some(match tokio::time::timeout(idle, stream.read_frame(RECEIPT_LEN)).await {
                Ok(Ok(b)) => Ok(b),
                Ok(Err(e)) => Err(TransferError::Receipt(format!("missing: {e}"))),
                Err(_) => Err(TransferError::Receipt("missing: timed out".into())),
            })
        }
        _ => None,
    };
    let (partial, written) = writer.await.map_err(|e| TransferError::Wire(format!("the blob writer failed: {e}")))?;
    // The first failure is the cause: what the writer saw, then the
    // stream, then the receipt.
    let written = written?;
    read?;
    if written.leftover {
        return Err(VerifyError::Extra.into());
    }
    if !written.complete {
        return Err(TransferError::Truncated(offset));
    }
    let bytes = receipt.unwrap_or(Err(TransferError::Truncated(offset)))?;
    let receipt = check_receipt(&bytes, transfer, expect)?;
    Ok((partial, receipt))
}

/// Verifies and writes the opened records arriving on `rx` into `partial`,
/// then checkpoints it. An error is a verification or storage failure.
fn write_part<S: Sink>(
    mut partial: S,
    mut verifier: Verifier,
    mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    reached: &std::sync::atomic::AtomicU64,
) -> (S, Result<Written, TransferError>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut result = Ok(());
    while let Some(chunk) = rx.blocking_recv() {
        let mut buf = if pending.is_empty() {
            chunk
        } else {
            pending.extend_from_slice(&chunk);
            std::mem::take(&mut pending)
        };
        match consume(&buf, &mut verifier, &mut partial) {
            Ok((used, through)) => {
                if let Some(t) = through {
                    reached.store(t, std::sync::atomic::Ordering::Relaxed);
                }
                buf.drain(..used);
                pending = buf;
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    drop(rx);
    // Keep what verified, whatever happened; a failure here must not hide
    // an earlier one.
    if let (Err(e), Ok(())) = (partial.checkpoint(), &result) {
        result = Err(e.into());
    }
    let written = result.map(|()| Written { complete: verifier.is_done(), leftover: !pending.is_empty() });
    (partial, written)
}

/// How a part's stream ended, as far as the writer saw it.
struct Written {
    /// Every requested group verified.
    complete: bool,
    /// Bytes that are not a whole item, or come after the last one.
    leftover: bool,
}

/// Verifies the whole items at the front of `buf`, writing each run of
/// consecutive groups (and of consecutive parent slots) with one write,
/// after every item in it verified. Returns the bytes used and how far
/// into the blob the verified groups now reach.
fn consume(
    buf: &[u8],
    verifier: &mut Verifier,
    partial: &mut impl Sink,
) -> Result<(usize, Option<u64>), TransferError> {
    // Runs not yet written: (first index, start in buf, length).
    let mut groups: Option<(u64, usize, usize)> = None;
    let mut parents: Option<(u64, usize, usize)> = None;
    let (mut used, mut reached) = (0usize, None);
    while let Some(is_parent) = verifier.next_is_parent() {
        let rest = &buf[used..];
        if is_parent {
            let Some(pair) = rest.first_chunk::<64>() else { break };
            let parent = verifier.parent(pair)?;
            parents = match parents {
                Some((first, start, len)) if first + (len / 64) as u64 == parent.index && start + len == used => {
                    Some((first, start, len + 64))
                }
                run => {
                    if let Some((first, start, len)) = run {
                        partial.write_parents(first, &buf[start..start + len])?;
                    }
                    Some((parent.index, used, 64))
                }
            };
            used += 64;
        } else {
            let Some((index, len)) = verifier.next_group_len() else { break };
            let Some(bytes) = rest.get(..len) else { break };
            verifier.group(bytes)?;
            groups = match groups {
                Some((first, start, run))
                    if start + run == used && first * GROUP_SIZE + run as u64 == index * GROUP_SIZE =>
                {
                    Some((first, start, run + len))
                }
                run => {
                    if let Some((first, start, n)) = run {
                        partial.write_groups(first, &buf[start..start + n])?;
                    }
                    Some((index, used, len))
                }
            };
            used += len;
            reached = Some(index * GROUP_SIZE + len as u64);
        }
    }
    if let Some((first, start, len)) = parents {
        partial.write_parents(first, &buf[start..start + len])?;
    }
    if let Some((first, start, len)) = groups {
        partial.write_groups(first, &buf[start..start + len])?;
    }
    Ok((used, reached))
}

fn check_receipt(bytes: &[u8], t: &Transfer, expect: ExpectedReceipt) -> Result<SignedReceipt, TransferError> {
    let bad = |what: &str| TransferError::Receipt(what.to_owned());
    let signed = SignedReceipt::decode(bytes).map_err(|e| bad(&e.to_string()))?;
    let r = &signed.receipt;
    if r.hash != *t.hash.as_bytes() || r.size != t.size || (r.start, r.end) != t.part.bytes || r.transfer_id != t.id {
        return Err(bad("it is about another blob or transfer"));
    }
    if r.sender != expect.sender || r.receiver != expect.receiver || r.binding != expect.binding {
        return Err(bad("it names other nodes or another connection"));
    }
    signed.verify().map_err(|e| bad(&e.to_string()))?;
    Ok(signed)
}

#[cfg(test)]
mod tests;
