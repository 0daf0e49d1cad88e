//! Both ends of a transfer driven in memory, over a pipe instead of a
//! QUIC stream: the whole blob, resuming from what a receiver kept, and
//! every way a sender or the path can spoil it (a flipped bit, a dropped
//! final record, swapped or duplicated records, a cut stream, a wrong or
//! missing receipt). Each failure must be refused, and keep exactly the
//! groups that verified before it.

use alp_blobstore::part::{Next, next_part};
use alp_blobstore::tree::groups;
use tokio::io::{DuplexStream, duplex};

use super::*;
use crate::wire::Framed;

/// 1 MiB and a bit: 65 groups, 17 records.
const SIZE: u64 = (1 << 20) + 123;
const SECRET: [u8; 32] = [7; 32];
const BINDING: [u8; 32] = [9; 32];

/// A sender's store holding one blob, and an empty receiver's store.
struct Pair {
    _dir: tempfile::TempDir,
    sender: Store,
    receiver: Store,
    hash: BlobHash,
    data: Vec<u8>,
    key: SigningKey,
    receiver_id: NodeId,
}

impl Pair {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sender = Store::open(&dir.path().join("sender")).unwrap();
        let receiver = Store::open(&dir.path().join("receiver")).unwrap();
        let data: Vec<u8> = (0..SIZE).map(|i| (i * 31 % 251) as u8).collect();
        let hash = sender.import(&mut data.as_slice(), SIZE, std::path::Path::new("test")).unwrap().hash;
        let receiver_id = SigningKey::from_bytes(&[2; 32]).verifying_key().into();
        Self { _dir: dir, sender, receiver, hash, data, key: SigningKey::from_bytes(&[1; 32]), receiver_id }
    }

    fn transfer(&self, part: Part, id: u8) -> Transfer {
        Transfer::new(&SECRET, TransferId([id; 16]), (self.hash, SIZE), part)
    }

    fn expect(&self) -> ExpectedReceipt {
        ExpectedReceipt { sender: self.key.verifying_key().into(), receiver: self.receiver_id, binding: BINDING }
    }

    /// Sends `part` through `path` (which may spoil it) while the receiver
    /// takes it into its partial copy; returns both sides' results.
    async fn run(
        &self,
        part: Part,
        faults: Faults,
        receipt: SignedReceipt,
        path: impl FnOnce(Framed<DuplexStream>) -> Box<dyn FrameWriteBox>,
    ) -> (Result<(), TransferError>, Result<(Partial, SignedReceipt), TransferError>) {
        let (a, b) = duplex(256 << 10);
        let (st, rt) = (self.transfer(part, 1), self.transfer(part, 1));
        let partial = self.receiver.partial(self.hash, SIZE, [0; 32]).unwrap();
        let expect = self.expect();
        let sender = async move {
            let mut out = path(Framed(a));
            // The stream ends when the sender is done, as a finished QUIC stream would.
            send(&mut out, &self.sender, &st, &receipt, faults, &silent).await
        };
        let receiver = async move {
            let mut input = Framed(b);
            receive(&mut input, partial, &rt, expect, Duration::from_secs(5), &silent).await
        };
        tokio::join!(sender, receiver)
    }

    fn receipt(&self, part: Part) -> SignedReceipt {
        self.transfer(part, 1).receipt(&self.key, self.receiver_id, BINDING)
    }

    /// Groups the receiver kept, read back from disk as a new transfer
    /// would.
    fn kept(&self) -> alp_blobstore::store::Ranges {
        self.receiver.partial_info(&self.hash).unwrap().map(|i| i.have).unwrap_or_default()
    }
}

type Written<'a> = std::pin::Pin<Box<dyn Future<Output = Result<(), WireError>> + Send + 'a>>;

/// A [`FrameWrite`] as a trait object, so tests can put a spoiler in the path.
trait FrameWriteBox: Send {
    fn write_boxed(&mut self, payload: Vec<u8>) -> Written<'_>;
}

impl<W: FrameWrite> FrameWriteBox for W {
    fn write_boxed(&mut self, payload: Vec<u8>) -> Written<'_> {
        Box::pin(self.write_frame(payload))
    }
}

impl FrameWrite for Box<dyn FrameWriteBox> {
    async fn write_frame(&mut self, payload: Vec<u8>) -> Result<(), WireError> {
        (**self).write_boxed(payload).await
    }
}

fn clean(w: Framed<DuplexStream>) -> Box<dyn FrameWriteBox> {
    Box::new(w)
}

/// The path dies after `frames` frames (the connection is lost).
struct Cut {
    inner: Framed<DuplexStream>,
    frames: usize,
}

impl FrameWrite for Cut {
    async fn write_frame(&mut self, payload: Vec<u8>) -> Result<(), WireError> {
        if self.frames == 0 {
            return Err(WireError::Stream("connection lost".into()));
        }
        self.frames -= 1;
        self.inner.write_frame(payload).await
    }
}

fn cut_after(frames: usize) -> impl FnOnce(Framed<DuplexStream>) -> Box<dyn FrameWriteBox> {
    move |inner| Box::new(Cut { inner, frames })
}

/// How many groups from the start of the blob are whole within the first
/// `records` records of a whole-blob transfer (records carry the tree's
/// parents in stream order as well as the groups).
fn whole_groups_within(records: u64) -> u64 {
    let limit = records * MAX_PLAINTEXT as u64;
    let mut at = 0;
    let mut whole = 0;
    for step in stream_order(SIZE, vec![(0, groups(SIZE))]) {
        at += match step {
            Step::Parent(_) => PARENT_SIZE,
            Step::Group(g) => (SIZE - g * GROUP_SIZE).min(GROUP_SIZE),
        };
        if at > limit {
            break;
        }
        if let Step::Group(g) = step {
            whole = g + 1;
        }
    }
    whole
}

#[tokio::test]
async fn a_whole_blob_arrives_verified_with_its_receipt() {
    let p = Pair::new();
    let all = Part::all(SIZE);
    let (sent, received) = p.run(all, Faults::default(), p.receipt(all), clean).await;
    sent.unwrap();
    let (partial, receipt) = received.unwrap();
    assert!(partial.is_complete());
    assert_eq!((receipt.receipt.start, receipt.receipt.end), (0, SIZE));
    receipt.verify().unwrap();
    let info = publish(partial).await.unwrap();
    assert_eq!(info.hash, p.hash);
    assert_eq!(std::fs::read(p.receiver.data_path(&p.hash)).unwrap(), p.data);
    p.receiver.verify(&p.hash).unwrap();
}

#[tokio::test]
async fn an_interrupted_transfer_resumes_from_the_kept_range_and_moves_only_the_rest() {
    let p = Pair::new();
    let all = Part::all(SIZE);
    // Five records get through, then the connection dies.
    let (sent, received) = p.run(all, Faults::default(), p.receipt(all), cut_after(5)).await;
    assert!(sent.is_err());
    assert!(matches!(received, Err(TransferError::Truncated(_))), "{:?}", received.err());
    let kept = p.kept();
    let within = whole_groups_within(5);
    assert!(within > 0);
    assert_eq!(kept.as_slice(), [(0, within)], "every group that verified is kept, no more");

    // The rule picks the gap; only that moves, and the blob completes.
    let Next::Move(rest) = next_part(SIZE, &kept, all, true) else { panic!("nothing to move") };
    assert_eq!(rest.groups, (within, groups(SIZE)));
    assert_eq!(rest.len(), SIZE - within * GROUP_SIZE);
    let (sent, received) = p.run(rest, Faults::default(), p.receipt(rest), clean).await;
    sent.unwrap();
    let (partial, _) = received.unwrap();
    assert!(partial.is_complete());
    publish(partial).await.unwrap();
    assert_eq!(std::fs::read(p.receiver.data_path(&p.hash)).unwrap(), p.data);
}

#[tokio::test]
async fn a_flipped_bit_is_refused_and_what_verified_before_it_is_kept() {
    let p = Pair::new();
    let all = Part::all(SIZE);
    let faults = Faults { flip_bit_in_record: Some(3), ..Faults::default() };
    let (_, received) = p.run(all, faults, p.receipt(all), clean).await;
    match received {
        Err(TransferError::Record { record: 3, .. }) => {}
        other => panic!("expected record 3 refused, got {:?}", other.err()),
    }
    assert_eq!(p.kept().as_slice(), [(0, whole_groups_within(3))]);
    assert!(p.receiver.get(&p.hash).is_err(), "nothing is published");
}

#[tokio::test]
async fn a_dropped_final_record_is_refused() {
    for skip_receipt in [false, true] {
        let p = Pair::new();
        let all = Part::all(SIZE);
        let faults = Faults { drop_final: true, skip_receipt, ..Faults::default() };
        let (sent, received) = p.run(all, faults, p.receipt(all), clean).await;
        sent.unwrap();
        match (skip_receipt, &received) {
            // The receipt arrives where the final record should: it does not open.
            (false, Err(TransferError::Record { record: 16, .. })) => {}
            // Nothing more arrives: the stream ended early.
            (true, Err(TransferError::Truncated(_))) => {}
            _ => panic!("skip_receipt {skip_receipt}: {:?}", received.err()),
        }
        assert_eq!(p.kept().as_slice(), [(0, whole_groups_within(16))]);
        assert!(p.receiver.get(&p.hash).is_err(), "nothing is published");
    }
}

#[tokio::test]
async fn swapped_or_duplicated_records_are_refused() {
    // Record 3 arrives where record 2 should; record 2 arrives again where
    // record 3 should.
    let cases = [
        (Faults { swap_record: Some(2), ..Faults::default() }, 2),
        (Faults { duplicate_record: Some(2), ..Faults::default() }, 3),
    ];
    for (faults, refused) in cases {
        let p = Pair::new();
        let all = Part::all(SIZE);
        let (_, received) = p.run(all, faults, p.receipt(all), clean).await;
        match received {
            Err(TransferError::Record { record, .. }) if record == refused => {}
            other => panic!("{faults:?}: {:?}", other.err()),
        }
        assert_eq!(p.kept().as_slice(), [(0, whole_groups_within(refused))], "{faults:?}");
    }
}

#[tokio::test]
async fn a_wrong_or_missing_receipt_is_refused_but_the_verified_data_is_kept() {
    let all = Part::all(SIZE);
    let other = SigningKey::from_bytes(&[3; 32]);
    type MakeReceipt<'a> = Box<dyn Fn(&Pair) -> SignedReceipt + 'a>;
    let cases: Vec<(&str, Faults, MakeReceipt<'_>)> = vec![
        ("bad signature", Faults { corrupt_receipt: true, ..Faults::default() }, Box::new(|p: &Pair| p.receipt(all))),
        ("missing", Faults { skip_receipt: true, ..Faults::default() }, Box::new(|p: &Pair| p.receipt(all))),
        (
            "signed by another node",
            Faults::default(),
            Box::new(move |p: &Pair| p.transfer(all, 1).receipt(&other, p.receiver_id, BINDING)),
        ),
        (
            "for another connection",
            Faults::default(),
            Box::new(|p: &Pair| p.transfer(all, 1).receipt(&p.key, p.receiver_id, [0; 32])),
        ),
        (
            "for another transfer",
            Faults::default(),
            Box::new(|p: &Pair| p.transfer(all, 2).receipt(&p.key, p.receiver_id, BINDING)),
        ),
    ];
    for (what, faults, receipt) in cases {
        let p = Pair::new();
        let (_, received) = p.run(all, faults, receipt(&p), clean).await;
        assert!(
            matches!(received, Err(TransferError::Receipt(_)) | Err(TransferError::Truncated(_))),
            "{what}: {:?}",
            received.err()
        );
        assert!(p.kept().contains(0, groups(SIZE)), "{what}: the verified groups are kept");
        assert!(p.receiver.get(&p.hash).is_err(), "{what}: nothing is published");
    }
}

#[tokio::test]
async fn a_range_moves_only_its_groups() {
    let p = Pair::new();
    let part = Part::covering(SIZE, (100_000, 200_000)).unwrap();
    let (sent, received) = p.run(part, Faults::default(), p.receipt(part), clean).await;
    sent.unwrap();
    let (partial, receipt) = received.unwrap();
    assert_eq!(partial.have().as_slice(), [part.groups]);
    assert_eq!((receipt.receipt.start, receipt.receipt.end), part.bytes);
    let mut buf = vec![0u8; 100_000];
    partial.read_at(&mut buf, 100_000).unwrap();
    assert_eq!(buf, p.data[100_000..200_000]);
}

#[tokio::test]
async fn a_sender_notices_its_own_damaged_copy_and_stops() {
    let p = Pair::new();
    let path = p.sender.data_path(&p.hash);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[5 * GROUP_SIZE as usize + 1] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let all = Part::all(SIZE);
    let (sent, received) = p.run(all, Faults::default(), p.receipt(all), clean).await;
    match sent {
        Err(e) => assert!(e.is_damage() && e.to_string().contains("group 5"), "{e}"),
        Ok(()) => panic!("a damaged copy was sent"),
    }
    assert!(received.is_err());
    assert!(p.receiver.get(&p.hash).is_err(), "nothing is published");
    // The damaged copy is out of the sender's store.
    assert!(matches!(p.sender.get(&p.hash), Err(StoreError::NotFound(_))));
}

#[test]
fn running_out_of_space_is_told_apart() {
    let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
    let e = TransferError::Store(StoreError::Io { path: "x".into(), source: full });
    assert!(out_of_space(&e));
    assert!(out_of_space(&TransferError::Store(StoreError::DiskFull { needed: 1, free: 0, reserve: 1 })));
    let other = TransferError::Store(StoreError::Io { path: "x".into(), source: std::io::Error::other("x") });
    assert!(!out_of_space(&other));
    assert!(!out_of_space(&TransferError::Truncated(0)));
}

/// The path goes silent after `frames` frames, the connection still up
/// (a sender killed without a word, a network gone); `left` counts down
/// the frames still to go through.
struct Stall {
    inner: Framed<DuplexStream>,
    left: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FrameWrite for Stall {
    async fn write_frame(&mut self, payload: Vec<u8>) -> Result<(), WireError> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.left.load(SeqCst) == 0 {
            std::future::pending::<()>().await;
        }
        self.inner.write_frame(payload).await?;
        self.left.fetch_sub(1, SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_waiting_on_a_silent_peer_hands_its_groups_to_the_next_one() {
    let p = std::sync::Arc::new(Pair::new());
    let all = Part::all(SIZE);
    let (a, b) = duplex(256 << 10);
    let left = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(5));
    let sender = {
        let (p, left) = (p.clone(), left.clone());
        tokio::spawn(async move {
            let mut out = Stall { inner: Framed(a), left };
            let _ = send(&mut out, &p.sender, &p.transfer(all, 1), &p.receipt(all), Faults::default(), &silent).await;
        })
    };
    let partial = p.receiver.partial(p.hash, SIZE, [0; 32]).unwrap();
    let (rt, expect) = (p.transfer(all, 1), p.expect());
    // An idle timeout far beyond the test: only the takeover can end it.
    let stale = tokio::spawn(async move {
        let mut input = Framed(b);
        receive(&mut input, partial, &rt, expect, Duration::from_secs(3600), &silent).await.map(|_| ())
    });
    // Once the five frames are in the pipe, the receiver reads them all
    // before it next looks for a takeover (it reads first).
    while left.load(std::sync::atomic::Ordering::SeqCst) > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (store, hash) = (p.receiver.clone(), p.hash);
    let next = tokio::task::spawn_blocking(move || store.partial(hash, SIZE, [0; 32])).await.unwrap().unwrap();
    let stale = tokio::time::timeout(Duration::from_secs(30), stale).await.expect("the stale transfer stops").unwrap();
    assert!(matches!(stale, Err(TransferError::Superseded)), "{stale:?}");
    assert!(next.is_durable(), "the new transfer resumes the partial itself");
    assert_eq!(next.have().as_slice(), [(0, whole_groups_within(5))], "with every group the stale one verified");
    sender.abort();
}

/// The path delivers a frame every `gap` (a live but slow sender).
struct Trickle {
    inner: Framed<DuplexStream>,
    gap: Duration,
}

impl FrameWrite for Trickle {
    async fn write_frame(&mut self, payload: Vec<u8>) -> Result<(), WireError> {
        tokio::time::sleep(self.gap).await;
        self.inner.write_frame(payload).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_transfer_is_not_taken_over_but_a_forced_request_stops_it() {
    let p = std::sync::Arc::new(Pair::new());
    let all = Part::all(SIZE);
    let (a, b) = duplex(256 << 10);
    let sender = {
        let p = p.clone();
        tokio::spawn(async move {
            let mut out = Trickle { inner: Framed(a), gap: Duration::from_millis(150) };
            let _ = send(&mut out, &p.sender, &p.transfer(all, 1), &p.receipt(all), Faults::default(), &silent).await;
        })
    };
    let partial = p.receiver.partial(p.hash, SIZE, [0; 32]).unwrap();
    let (rt, expect) = (p.transfer(all, 1), p.expect());
    let live = tokio::spawn(async move {
        let mut input = Framed(b);
        receive(&mut input, partial, &rt, expect, Duration::from_secs(3600), &silent).await.map(|_| ())
    });
    // A newcomer that waits 1.5 s: the holder keeps receiving, so it
    // keeps the partial, and the newcomer gets a private one.
    let store = p.receiver.clone().with_takeover_wait(Duration::from_millis(1500));
    let hash = p.hash;
    let next = tokio::task::spawn_blocking(move || store.partial(hash, SIZE, [0; 32])).await.unwrap().unwrap();
    assert!(!next.is_durable(), "a live transfer is not stopped by another");
    drop(next);
    assert!(!live.is_finished());
    // Removing the partial is forced: the live transfer stops.
    let store = p.receiver.clone();
    assert!(tokio::task::spawn_blocking(move || store.remove_partial(&hash)).await.unwrap().unwrap());
    let stopped = tokio::time::timeout(Duration::from_secs(30), live).await.expect("it stops").unwrap();
    assert!(matches!(stopped, Err(TransferError::Superseded)), "{stopped:?}");
    sender.abort();
}
