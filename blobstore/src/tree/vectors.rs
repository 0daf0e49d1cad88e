//! The hash-tree test vectors of docs/PROTOCOL.md: a blob of three full
//! groups and 100 bytes (byte `i` is `i % 251`), its group chaining
//! values, parents, hash, and the verified stream of groups 1 and 2.
//!
//! `ALP_PRINT_VECTORS=1 cargo test -p alp-blobstore vectors -- --nocapture`
//! prints every value instead of checking it.

#![cfg(test)]

use super::*;

const SIZE: u64 = 3 * GROUP_SIZE + 100;

fn data() -> Vec<u8> {
    (0..SIZE).map(|i| (i % 251) as u8).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `value` against the frozen `expected` hex and against the value
/// docs/PROTOCOL.md lists under `name` (or prints it).
fn check(name: &str, value: &[u8], expected: &str) {
    if std::env::var_os("ALP_PRINT_VECTORS").is_some() {
        println!("{name}: {}", hex(value));
        return;
    }
    assert_eq!(hex(value), expected, "vector {name} changed: the tree changed");
    assert_eq!(in_spec(name).as_deref(), Some(expected), "docs/PROTOCOL.md differs on `{name}`");
}

/// The value the spec's "Test vectors" section gives for `name`: the
/// indented lines after `name (n bytes):`.
fn in_spec(name: &str) -> Option<String> {
    let doc = include_str!("../../../docs/PROTOCOL.md");
    let section = doc.split("\n## Test vectors").nth(1)?;
    let mut lines = section.lines().skip_while(|l| !l.starts_with(&format!("{name} (")));
    lines.next()?;
    Some(lines.map_while(|l| l.strip_prefix("    ")).map(str::trim).collect())
}

fn group(data: &[u8], i: u64) -> &[u8] {
    let start = (i * GROUP_SIZE) as usize;
    &data[start..data.len().min(start + GROUP_SIZE as usize)]
}

#[test]
fn vectors() {
    let data = data();
    assert_eq!(groups(SIZE), 4);
    let cvs: Vec<_> = (0..4).map(|i| group_cv(i, group(&data, i))).collect();
    check("group 0 cv", &cvs[0], "5384f9b342c6cb86badedcbe662b0e980476a8db17db3cc1f13b19329749ab1f");
    check("group 1 cv", &cvs[1], "406632eceb31aa6735f072ad0554f5963f4082b5139978455b44f67732cf949d");
    check("group 2 cv", &cvs[2], "bccbba6c1168012dc733c21a85cc8500576e28489a119e848307770260b3c87f");
    check("group 3 cv", &cvs[3], "0f6c19030c124c2c53d63f374553a7920c358e2f61102cc345c6204d300e8ebc");

    let mut b = TreeBuilder::new(SIZE);
    let mut slots = [[0u8; 64]; 3];
    for i in 0..4 {
        for p in b.push(group(&data, i)) {
            slots[p.index as usize] = p.to_bytes();
        }
    }
    let (rest, hash) = b.finish();
    for p in rest {
        slots[p.index as usize] = p.to_bytes();
    }
    assert_eq!(hash, blake3::hash(&data), "the tree's root is BLAKE3 of the blob");
    check(
        "parent 0 (groups 0..4)",
        &slots[0],
        "1e03bf3657c5076623059f21d92f2ec634dd276b07e3760625c73416f343d8573a1fd76367b286cc740469c8ab54886838391d7740f3cc487f41822d114ff84c",
    );
    check(
        "parent 1 (groups 0..2)",
        &slots[1],
        "5384f9b342c6cb86badedcbe662b0e980476a8db17db3cc1f13b19329749ab1f406632eceb31aa6735f072ad0554f5963f4082b5139978455b44f67732cf949d",
    );
    check(
        "parent 2 (groups 2..4)",
        &slots[2],
        "bccbba6c1168012dc733c21a85cc8500576e28489a119e848307770260b3c87f0f6c19030c124c2c53d63f374553a7920c358e2f61102cc345c6204d300e8ebc",
    );
    check("blob hash", hash.as_bytes(), "d819f4b82ed43f97f49088c668f7c142ecdc899f73b3b7e619069b9fbd6230e0");

    // The stream of groups [1, 3): parents and groups in pre-order.
    let steps: Vec<_> = stream_order(SIZE, vec![(1, 3)]).collect();
    assert_eq!(steps, [Step::Parent(0), Step::Parent(1), Step::Group(1), Step::Parent(2), Step::Group(2)]);
    let mut stream = Vec::new();
    let mut v = Verifier::new(hash, SIZE, vec![(1, 3)]);
    for step in steps {
        match step {
            Step::Parent(i) => {
                v.parent(&slots[i as usize]).unwrap();
                stream.extend_from_slice(&slots[i as usize]);
            }
            Step::Group(i) => {
                v.group(group(&data, i)).unwrap();
                stream.extend_from_slice(group(&data, i));
            }
        }
    }
    assert!(v.is_done());
    assert_eq!(stream.len(), 3 * 64 + 2 * GROUP_SIZE as usize);
    check(
        "blake3 of the stream of groups 1..3",
        blake3::hash(&stream).as_bytes(),
        "babc5ce4f5c876dbfb1d00dc737e2cd5c673b864faf393fe1ad14e416e122e9d",
    );
}
