use super::*;
use crate::body::{MemberRoles, Note};
use crate::testing::Group;

#[test]
fn events_need_what_they_refer_to() {
    let mut g = Group::new(2);
    let a = g.sign(1, Body::Note(Note { text: "a".into() }), vec![]);
    // Not ingested: the next event of member 1 refers to it as prev.
    let mut other = g.fork();
    other.log.ingest(a.clone()).unwrap();
    let b = other.sign(1, Body::Note(Note { text: "b".into() }), vec![]);
    assert_eq!(g.log.ingest(b.clone()), Err(Refused::Missing { id: b.id(), missing: a.id() }));
    assert_eq!(g.log.ingest(a), Ok(Ingested::Added));
    assert_eq!(g.log.ingest(b.clone()), Ok(Ingested::Added));
    assert_eq!(g.log.ingest(b), Ok(Ingested::Duplicate));
}

#[test]
fn strangers_cannot_write() {
    let mut g = Group::new(1);
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[77; 32]);
    let header = g.log.next_header(stranger.verifying_key().into(), vec![g.log.group()], 9);
    let e = Event::sign(&stranger, header, Body::Note(Note { text: "let me in".into() })).unwrap();
    assert!(matches!(g.log.ingest(e), Err(Refused::UnknownAuthor { .. })));
    // Invited, it may (whether it counts is the fold's business).
    let invite = MemberRoles { member: *stranger.verifying_key().as_bytes(), roles: vec![], admin: false };
    g.write(0, Body::Invite(invite), vec![]);
    let header = g.log.next_header(stranger.verifying_key().into(), vec![g.log.group()], 10);
    let e = Event::sign(&stranger, header, Body::Note(Note { text: "hello".into() })).unwrap();
    assert_eq!(g.log.ingest(e), Ok(Ingested::Added));
}

#[test]
fn equivocation_is_refused_and_kept_as_evidence() {
    let mut g = Group::new(2);
    let mut h = g.fork();
    let a = g.note(1, "version a");
    let b = h.note(1, "version b");
    assert_eq!(a.header().seq, b.header().seq);
    match g.log.ingest(b.clone()) {
        Err(Refused::Equivocation { proof: e, new }) => {
            assert!(new);
            assert_eq!((e.kept.id(), e.other.id()), (a.id(), b.id()));
        }
        other => panic!("expected equivocation, got {other:?}"),
    }
    assert_eq!(g.log.evidence().count(), 1);
    assert_eq!(g.log.forks().get(&g.node(1)), Some(&a.header().seq));
    // The other side learns it from the evidence alone.
    assert!(h.log.add_evidence(a.clone(), b.clone()));
    assert!(!h.log.add_evidence(b.clone(), a.clone()), "the same evidence twice");
    // The same equivocation again is not new evidence.
    assert!(matches!(g.log.ingest(b), Err(Refused::Equivocation { new: false, .. })));
    assert_eq!(h.log.forks(), g.log.forks());
}

#[test]
fn clocks_must_rise_and_not_leap() {
    let mut g = Group::new(1);
    let mut header = g.log.next_header(g.node(0), vec![], 3);
    let floor = g.log.last_of(&g.node(0)).unwrap().header().clock;
    header.clock = floor;
    let same = Event::sign(&g.keys[0], header.clone(), Body::Note(Note { text: "x".into() })).unwrap();
    assert_eq!(g.log.ingest(same.clone()), Err(Refused::BadClock(same.id())));
    header.clock = floor + crate::event::MAX_CLOCK_STEP + 1;
    let leap = Event::sign(&g.keys[0], header, Body::Note(Note { text: "x".into() })).unwrap();
    assert_eq!(g.log.ingest(leap.clone()), Err(Refused::BadClock(leap.id())));
}

#[test]
fn missing_for_sends_exactly_what_the_other_lacks() {
    let mut g = Group::new(3);
    let base = g.log.heads();
    for i in 0..3 {
        g.note(i, "x");
    }
    let missing = g.log.missing_for(&base);
    assert_eq!(missing.len(), 3);
    let mut other = Group::new(3);
    for e in missing {
        assert_eq!(other.log.ingest(e.clone()), Ok(Ingested::Added));
    }
    assert_eq!(other.log.heads(), g.log.heads());
    assert!(g.log.missing_for(&g.log.heads()).is_empty());
}

#[test]
fn an_event_dated_far_ahead_does_not_stop_others_writing() {
    let mut g = Group::new(2);
    // Member 1 dates an event as far ahead as a log allows, twice.
    for _ in 0..2 {
        let mut h = g.log.next_header(g.node(1), vec![], 5);
        let floor = g.log.last_of(&g.node(1)).unwrap().header().clock;
        h.clock = floor + crate::event::MAX_CLOCK_STEP;
        let e = Event::sign(&g.keys[1], h, Body::Note(Note { text: "later".into() })).unwrap();
        g.log.ingest(e).unwrap();
    }
    // Member 0 still writes: its clock stays within reach of what it names.
    g.note(0, "still here");
}

#[test]
fn authors_and_bytes_are_bounded() {
    let mut g = Group::new(1);
    for i in 1..MAX_AUTHORS {
        let key = ed25519_dalek::SigningKey::from_bytes(&[
            (i % 250) as u8 + 3,
            (i / 250) as u8,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
            9,
        ]);
        let invite = MemberRoles { member: *key.verifying_key().as_bytes(), roles: vec![], admin: false };
        g.write(0, Body::Invite(invite), vec![]);
    }
    let key = ed25519_dalek::SigningKey::from_bytes(&[200; 32]);
    let one_more = MemberRoles { member: *key.verifying_key().as_bytes(), roles: vec![], admin: false };
    let e = g.sign(0, Body::Invite(one_more), vec![]);
    assert_eq!(g.log.ingest(e), Err(Refused::TooManyAuthors));
}
