use super::*;
use crate::testing::Group;

/// The frames of a log, in the order its events were taken.
fn file_of(g: &Group, order: &[EventId]) -> Vec<u8> {
    let mut out = Vec::new();
    for id in order {
        push_frame(&mut out, g.log.get(id).unwrap().bytes());
    }
    out
}

fn sample() -> (Group, Vec<EventId>) {
    let mut g = Group::new(3);
    for i in 0..6 {
        g.note(i % 3, &format!("note {i}"));
    }
    let order = g.log.ordered().iter().map(|e| e.id()).collect();
    (g, order)
}

fn problem(bytes: &[u8]) -> Problem {
    verify(bytes).problem.expect("a problem")
}

#[test]
fn a_clean_log_verifies() {
    let (g, order) = sample();
    let report = verify(&file_of(&g, &order));
    assert!(report.problem.is_none(), "{:?}", report.problem);
    assert_eq!(report.events, order.len());
    assert_eq!(report.log.unwrap().len(), order.len());
}

#[test]
fn an_edited_byte_is_named() {
    let (g, order) = sample();
    let mut bytes = file_of(&g, &order);
    // A byte inside the text of event #8's body.
    let offsets: Vec<u64> = frames(&bytes).map(|f| f.unwrap().0).collect();
    let at = offsets[7] as usize + 4 + 150;
    bytes[at] ^= 0x20;
    let p = problem(&bytes);
    assert_eq!(p.index, 8);
    assert!(p.what.starts_with("edited"), "{p}");
}

#[test]
fn a_deleted_event_is_named() {
    let (g, mut order) = sample();
    let gone = order.remove(6);
    let p = problem(&file_of(&g, &order));
    assert!(p.what.contains("deleted"), "{p}");
    let _ = gone;
}

#[test]
fn a_reordered_pair_is_named() {
    let (g, mut order) = sample();
    // Two events of one author, swapped.
    let author = g.log.get(&order[7]).unwrap().author();
    let j = (8..order.len()).find(|j| g.log.get(&order[*j]).unwrap().author() == author).unwrap();
    order.swap(7, j);
    let p = problem(&file_of(&g, &order));
    assert_eq!(p.index, 8);
    assert!(p.what.contains("reordered") || p.what.contains("deleted or reordered"), "{p}");
}

#[test]
fn a_forged_author_is_named() {
    let (g, order) = sample();
    let mut bytes = file_of(&g, &order);
    // Event #5's author field replaced by another member's node id.
    let offsets: Vec<u64> = frames(&bytes).map(|f| f.unwrap().0).collect();
    let at = offsets[4] as usize + 4 + 1 + 32;
    let other = g.node(2);
    let current = &bytes[at..at + 32];
    let replacement = if current == other.as_bytes() { g.node(1) } else { other };
    bytes[at..at + 32].copy_from_slice(replacement.as_bytes());
    let p = problem(&bytes);
    assert_eq!(p.index, 5);
    assert!(p.what.contains("edited or forged"), "{p}");
}

#[test]
fn equivocation_is_named() {
    let (mut g, mut order) = sample();
    let mut h = g.fork();
    let a = g.note(1, "a");
    let b = h.note(1, "b");
    h.log.ingest(b.clone()).ok();
    order.push(a.id());
    let mut bytes = file_of(&g, &order);
    push_frame(&mut bytes, b.bytes());
    let p = problem(&bytes);
    assert!(p.what.contains("equivocation"), "{p}");
    assert_eq!(p.id, Some(b.id()));
}

#[test]
fn a_cut_short_file_is_named() {
    let (g, order) = sample();
    let bytes = file_of(&g, &order);
    let p = problem(&bytes[..bytes.len() - 10]);
    assert!(p.what.contains("cut short"), "{p}");
}
