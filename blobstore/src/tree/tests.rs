//! The tree against `blake3::hash`, at every size boundary.

use super::*;
use proptest::prelude::*;

const G: u64 = GROUP_SIZE;

fn data(size: u64) -> Vec<u8> {
    (0..size).map(|i| (i.wrapping_mul(31) ^ (i >> 7)) as u8).collect()
}

/// Builds hash and outboard (parents by pre-order slot).
fn build(data: &[u8]) -> (blake3::Hash, Vec<Option<[u8; 64]>>) {
    let size = data.len() as u64;
    let mut b = TreeBuilder::new(size);
    let mut outboard = vec![None; (groups(size) - 1) as usize];
    let mut store = |ps: Vec<Parent>| {
        for p in ps {
            assert!(outboard[p.index as usize].replace(p.to_bytes()).is_none(), "slot {} written twice", p.index);
        }
    };
    for chunk in data.chunks(G as usize) {
        store(b.push(chunk));
    }
    if data.is_empty() {
        store(b.push(&[]));
    }
    let (rest, hash) = b.finish();
    store(rest);
    (hash, outboard)
}

/// The pre-order stream a sender would send for `wanted`.
fn encode(data: &[u8], outboard: &[Option<[u8; 64]>], wanted: &[(u64, u64)]) -> Vec<Result<[u8; 64], Vec<u8>>> {
    fn go(
        start: u64,
        len: u64,
        n: u64,
        data: &[u8],
        ob: &[Option<[u8; 64]>],
        wanted: &[(u64, u64)],
        out: &mut Vec<Result<[u8; 64], Vec<u8>>>,
    ) {
        if !wanted.iter().any(|&(a, b)| a < start + len && start < b) {
            return;
        }
        if len == 1 {
            let lo = (start * G) as usize;
            let hi = (lo + G as usize).min(data.len());
            out.push(Err(data[lo.min(data.len())..hi].to_vec()));
            return;
        }
        out.push(Ok(ob[preorder_index(start, len, n).unwrap() as usize].unwrap()));
        let l = left_len(len);
        go(start, l, n, data, ob, wanted, out);
        go(start + l, len - l, n, data, ob, wanted, out);
    }
    let n = groups(data.len() as u64);
    let mut out = Vec::new();
    go(0, n, n, data, outboard, wanted, &mut out);
    out
}

fn verify(v: &mut Verifier, stream: &[Result<[u8; 64], Vec<u8>>]) -> Result<Vec<u64>, VerifyError> {
    let mut got = Vec::new();
    for item in stream {
        match item {
            Ok(pair) => {
                v.parent(pair)?;
            }
            Err(bytes) => got.push(v.group(bytes)?),
        }
    }
    Ok(got)
}

const SIZES: &[u64] = &[
    0,
    1,
    1023,
    1024,
    1025,
    G - 1,
    G,
    G + 1,
    2 * G,
    2 * G + 1,
    3 * G,
    4 * G - 1,
    4 * G,
    5 * G + 7,
    16 * G,
    17 * G + 1,
    33 * G,
];

#[test]
fn tree_hash_equals_blake3_at_every_boundary() {
    for &size in SIZES {
        let d = data(size);
        let (hash, outboard) = build(&d);
        assert_eq!(hash, blake3::hash(&d), "size {size}");
        assert!(outboard.iter().all(Option::is_some), "size {size}: every parent slot filled");
    }
}

#[test]
fn whole_blob_streams_verify() {
    for &size in SIZES {
        let d = data(size);
        let (hash, ob) = build(&d);
        let n = groups(size);
        let mut v = Verifier::all(hash, size);
        let got = verify(&mut v, &encode(&d, &ob, &[(0, n)])).unwrap();
        assert_eq!(got, (0..n).collect::<Vec<_>>(), "size {size}");
        assert!(v.is_done());
    }
}

#[test]
fn ranges_stream_only_what_is_needed() {
    let size = 17 * G + 5;
    let d = data(size);
    let (hash, ob) = build(&d);
    for wanted in [vec![(0, 1)], vec![(17, 18)], vec![(3, 9)], vec![(1, 2), (10, 12)]] {
        let stream = encode(&d, &ob, &wanted);
        let mut v = Verifier::new(hash, size, wanted.clone());
        let got = verify(&mut v, &stream).unwrap();
        let expect: Vec<u64> = wanted.iter().flat_map(|&(a, b)| a..b).collect();
        assert_eq!(got, expect);
        assert!(v.is_done());
        let groups_sent = stream.iter().filter(|i| i.is_err()).count();
        assert_eq!(groups_sent, expect.len(), "no unrequested group is sent");
    }
}

#[test]
fn a_flipped_bit_anywhere_is_caught_at_that_item() {
    let size = 5 * G + 7;
    let d = data(size);
    let (hash, ob) = build(&d);
    let stream = encode(&d, &ob, &[(0, groups(size))]);
    for i in 0..stream.len() {
        let mut bad = stream.clone();
        match &mut bad[i] {
            Ok(pair) => pair[i % 64] ^= 1,
            Err(bytes) => {
                let j = i % bytes.len().max(1);
                if let Some(b) = bytes.get_mut(j) {
                    *b ^= 0x80;
                }
            }
        }
        let mut v = Verifier::all(hash, size);
        let err = verify(&mut v, &bad).unwrap_err();
        match (&stream[i], err) {
            (Ok(_), VerifyError::Parent { .. }) | (Err(_), VerifyError::Group(_)) => {}
            (_, e) => panic!("item {i}: wrong error {e}"),
        }
    }
}

#[test]
fn truncated_extended_or_wrong_size_streams_fail() {
    let size = 3 * G + 1;
    let d = data(size);
    let (hash, ob) = build(&d);
    let stream = encode(&d, &ob, &[(0, groups(size))]);
    let mut v = Verifier::all(hash, size);
    verify(&mut v, &stream[..stream.len() - 1]).unwrap();
    assert!(!v.is_done(), "a truncated stream is not complete");
    let mut v = Verifier::all(hash, size);
    let mut longer = stream.clone();
    longer.push(Err(vec![0]));
    assert_eq!(verify(&mut v, &longer), Err(VerifyError::Extra));
    // The same bytes announced with another size fail.
    let mut v = Verifier::all(hash, size + 1);
    assert!(verify(&mut v, &stream).is_err());
    // A group with an extra byte fails even if its prefix is right.
    let mut v = Verifier::all(blake3::hash(b"abc"), 3);
    assert_eq!(v.group(b"abcd"), Err(VerifyError::Group(0)));
}

#[test]
fn stream_order_matches_the_reference_encoder() {
    for &size in SIZES {
        let d = data(size);
        let (_, ob) = build(&d);
        let n = groups(size);
        for wanted in [vec![(0, n)], vec![(n / 2, n)], vec![(0, 1), (n - 1, n)]] {
            let reference = encode(&d, &ob, &wanted);
            let steps: Vec<Step> = stream_order(size, wanted.clone()).collect();
            assert_eq!(steps.len(), reference.len(), "size {size}");
            for (step, item) in steps.iter().zip(&reference) {
                match (step, item) {
                    (Step::Parent(i), Ok(pair)) => assert_eq!(ob[*i as usize].unwrap(), *pair),
                    (Step::Group(g), Err(bytes)) => {
                        let lo = (*g * G) as usize;
                        assert_eq!(&d[lo..lo + bytes.len()], &bytes[..]);
                    }
                    other => panic!("size {size}: mismatch {other:?}"),
                }
            }
        }
    }
}

#[test]
fn preorder_slots_are_a_permutation() {
    for n in 1..200u64 {
        let mut seen = vec![false; (n - 1) as usize];
        fn walk(start: u64, len: u64, n: u64, seen: &mut [bool]) {
            if len == 1 {
                return;
            }
            let i = preorder_index(start, len, n).unwrap() as usize;
            assert!(!seen[i]);
            seen[i] = true;
            let l = left_len(len);
            walk(start, l, n, seen);
            walk(start + l, len - l, n, seen);
        }
        walk(0, n, n, &mut seen);
        assert!(seen.iter().all(|s| *s), "n = {n}");
    }
    assert_eq!(preorder_index(0, 3, 5), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_sizes_and_ranges(size in 0u64..(40 * G), a in 0u64..40, len in 1u64..8) {
        let d = data(size);
        let (hash, ob) = build(&d);
        prop_assert_eq!(hash, blake3::hash(&d));
        let n = groups(size);
        let start = a % n;
        let wanted = vec![(start, (start + len).min(n))];
        let mut v = Verifier::new(hash, size, wanted.clone());
        let got = verify(&mut v, &encode(&d, &ob, &wanted)).unwrap();
        prop_assert_eq!(got, (wanted[0].0..wanted[0].1).collect::<Vec<_>>());
        prop_assert!(v.is_done());
    }
}
