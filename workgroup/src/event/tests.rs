use proptest::prelude::*;

use super::*;
use crate::body::{Body, Note};
use crate::testing::Group;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn note_header(g: &Group, i: usize) -> Header {
    g.log.next_header(g.node(i), vec![], 5)
}

#[test]
fn a_signed_event_decodes_to_itself() {
    let mut g = Group::new(2);
    let e = g.note(1, "hello");
    let back = Event::decode(e.bytes()).unwrap();
    assert_eq!(back.id(), e.id());
    assert_eq!(back.header(), e.header());
    assert_eq!(back.body(), e.body());
    assert_eq!(back.group(), g.log.group());
}

#[test]
fn every_flipped_byte_is_refused() {
    let mut g = Group::new(2);
    let e = g.note(1, "flip me");
    for i in 0..e.bytes().len() {
        let mut bytes = e.bytes().to_vec();
        bytes[i] ^= 0x01;
        assert!(Event::decode(&bytes).is_err(), "byte {i} flipped was accepted");
    }
}

#[test]
fn an_event_signed_by_another_key_is_refused() {
    let g = Group::new(2);
    // Signed by member 1's key but naming member 0 as author: forged.
    let header = note_header(&g, 0);
    let body = Body::Note(Note { text: "forged".into() });
    assert!(Event::sign(&g.keys[1], header.clone(), body.clone()).is_err());
    let honest = Event::sign(&g.keys[0], header, body).unwrap();
    let mut bytes = honest.bytes().to_vec();
    let n = bytes.len();
    let forged = key(9).sign(&[EVENT_CONTEXT, &bytes[..n - 64]].concat());
    bytes[n - 64..].copy_from_slice(&forged.to_bytes());
    assert_eq!(Event::decode(&bytes).err(), Some(EventError::BadSignature));
}

#[test]
fn layout_rules_are_enforced() {
    let g = Group::new(1);
    let k = &g.keys[0];
    let good = note_header(&g, 0);
    let body = || Body::Note(Note { text: String::new() });
    let bad = |h: Header| Event::sign(k, h, body()).err();
    assert!(bad(Header { seq: 0, ..good.clone() }).is_some(), "seq 0");
    assert!(bad(Header { prev: None, ..good.clone() }).is_some(), "no prev after seq 1");
    assert!(bad(Header { deps: vec![EventId([2; 32]), EventId([1; 32])], ..good.clone() }).is_some(), "unsorted");
    assert!(bad(Header { deps: vec![EventId([1; 32]); 2], ..good.clone() }).is_some(), "duplicate dep");
    assert!(bad(Header { deps: (0..17u8).map(|i| EventId([i + 1; 32])).collect(), ..good.clone() }).is_some());
    assert!(bad(Header { clock: 0, ..good.clone() }).is_some(), "clock 0");
    assert!(bad(Header { group: None, ..good.clone() }).is_some(), "a note cannot start a group");
    let big = Body::Note(Note { text: "x".repeat(MAX_BODY) });
    assert!(matches!(Event::sign(k, good.clone(), big), Err(EventError::TooLarge(_))));
    assert!(Event::sign(k, good, body()).is_ok());
}

#[test]
fn bodies_must_be_canonical() {
    // The same note with its text as an indefinite-length string: same
    // value, other bytes, refused.
    let canonical = Body::Note(Note { text: "hi".into() }).encode().1;
    assert_eq!(Body::decode(9, &canonical).unwrap(), Body::Note(Note { text: "hi".into() }));
    let mut other = canonical.clone();
    let at = other.iter().rposition(|b| *b == 0x62).unwrap(); // text(2) "hi"
    other.splice(at..at + 1, [0x7f, 0x62]);
    other.push(0xff);
    assert!(Body::decode(9, &other).is_err());
    assert!(Body::decode(99, &canonical).is_err(), "unknown kind");
}

#[test]
fn ids_are_text_and_back() {
    let id = EventId([0xab; 32]);
    assert_eq!(id.to_string().parse::<EventId>().unwrap(), id);
    assert_eq!(id.short().len(), 12);
    assert!("xyz".parse::<EventId>().is_err());
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Event::decode(&bytes);
    }

    #[test]
    fn truncations_are_refused(cut in 0usize..200) {
        let mut g = Group::new(1);
        let e = g.note(0, "some text to cut");
        let n = e.bytes().len();
        prop_assert!(Event::decode(&e.bytes()[..cut.min(n - 1)]).is_err());
    }

    #[test]
    fn notes_round_trip(text in "\\PC{0,200}") {
        let mut g = Group::new(1);
        let e = g.note(0, &text);
        let back = Event::decode(e.bytes()).unwrap();
        prop_assert_eq!(back.body(), &Body::Note(Note { text }));
    }
}

#[test]
fn risk_tiers_parse_in_any_case() {
    use crate::body::Risk;
    assert_eq!("HIGH".parse::<Risk>(), Ok(Risk::High));
    assert_eq!(" critical ".parse::<Risk>(), Ok(Risk::Critical));
    assert!("urgent".parse::<Risk>().unwrap_err().contains("low, medium, high or critical"));
}
