//! What a blob receiver reads from peers and from disk: a verified stream
//! with fuzz-chosen damage, the bodies of the blob verbs, partial-blob
//! state files and the store's usage totals; and the rule for what a
//! transfer moves next. Nothing panics; an undamaged stream verifies; any
//! flipped bit or cut is refused; files that decode re-encode to the same
//! bytes; the next part lies in what is wanted and is not yet held.
#![no_main]

use alp_blobstore::part::{Next, Part, next_part};
use alp_blobstore::store::Usage;
use alp_blobstore::store::partial::{Ranges, decode_state, encode_state};
use alp_blobstore::tree::{GROUP_SIZE, Step, TreeBuilder, Verifier, groups, stream_order};
use alp_protocol::envelope::{self, BlobGetRequest, BlobGetResponse, BlobPutDone, BlobPutRequest, BlobPutResponse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = envelope::from_cbor::<BlobGetRequest>(data);
    let _ = envelope::from_cbor::<BlobGetResponse>(data);
    let _ = envelope::from_cbor::<BlobPutRequest>(data);
    let _ = envelope::from_cbor::<BlobPutResponse>(data);
    let _ = envelope::from_cbor::<BlobPutDone>(data);
    if let Some((size, owner, have)) = decode_state(data) {
        assert_eq!(encode_state(size, &owner, &have), data);
    }
    if let Some(usage) = std::str::from_utf8(data).ok().and_then(Usage::decode) {
        assert_eq!(Usage::decode(&usage.encode()), Some(usage));
    }
    next_part_holds(data);

    // A blob of up to 13 groups and a wanted range, both from the input;
    // then its correct stream, damaged as the rest of the input says.
    let Some((head, damage)) = data.split_first_chunk::<8>() else { return };
    let size = u64::from(u32::from_le_bytes([head[0], head[1], head[2], 0])) % (13 * GROUP_SIZE + 1);
    let blob: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(u64::from(head[3]) | 1) >> 3) as u8).collect();
    let n = groups(size);
    let a = u64::from(head[4]) % n;
    let b = (a + 1 + u64::from(head[5]) % n).min(n);
    let mut builder = TreeBuilder::new(size);
    let mut parents = vec![[0u8; 64]; usize::try_from(n - 1).unwrap_or(0)];
    let chunks: Vec<&[u8]> = if size == 0 { vec![&[][..]] } else { blob.chunks(GROUP_SIZE as usize).collect() };
    let mut all = Vec::new();
    for c in chunks {
        all.extend(builder.push(c));
    }
    let (rest, hash) = builder.finish();
    all.extend(rest);
    for p in all {
        parents[p.index as usize] = p.to_bytes();
    }
    let mut stream = Vec::new();
    for step in stream_order(size, vec![(a, b)]) {
        match step {
            Step::Parent(i) => stream.extend_from_slice(&parents[i as usize]),
            Step::Group(g) => {
                let s = (g * GROUP_SIZE) as usize;
                stream.extend_from_slice(&blob[s..(s + GROUP_SIZE as usize).min(blob.len())]);
            }
        }
    }
    let (full, original) = (stream.len(), stream.clone());
    for d in damage.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([d[0], d[1]])) * 7;
        if at < stream.len() {
            stream[at] ^= d[2];
        }
    }
    if head[6] & 1 == 1 && !stream.is_empty() {
        stream.truncate(usize::from(head[7]) % stream.len());
    }
    // Flips may cancel out: damage is whatever differs in the end.
    let damaged = stream != original;
    let mut v = Verifier::new(hash, size, vec![(a, b)]);
    let mut input = &stream[..];
    let ok = loop {
        match v.next_is_parent() {
            None => break input.is_empty(),
            Some(true) => {
                let Some((pair, r)) = input.split_first_chunk::<64>() else { break false };
                if v.parent(pair).is_err() {
                    break false;
                }
                input = r;
            }
            Some(false) => {
                let Some((_, len)) = v.next_group_len() else { break false };
                if input.len() < len || v.group(&input[..len]).is_err() {
                    break false;
                }
                input = &input[len..];
            }
        }
    };
    assert_eq!(ok, !damaged, "a stream of {full} bytes, damaged: {damaged}");
});

/// Held ranges and a wanted part from the input: what `next_part` picks
/// is wanted, and held only when a whole unpublished blob needs its last
/// group again.
fn next_part_holds(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<6>() else { return };
    let size = u64::from(u32::from_le_bytes([head[0], head[1], head[2], 0])) * 3;
    let n = groups(size);
    let mut have = Ranges::default();
    for r in rest.chunks_exact(2) {
        let a = u64::from(r[0]) % n;
        have.insert(a, (a + u64::from(r[1]) % 8).min(n));
    }
    let a = u64::from(head[3]) % n;
    let wanted = Part::of_groups(size, (a, (a + 1 + u64::from(head[4]) % n).min(n)));
    if let Next::Move(p) = next_part(size, &have, wanted, head[5] & 1 == 1) {
        assert!(wanted.groups.0 <= p.groups.0 && p.groups.1 <= wanted.groups.1 && p.groups.0 < p.groups.1);
        assert!(!have.contains(p.groups.0, p.groups.1) || head[5] & 1 == 1);
    }
}
