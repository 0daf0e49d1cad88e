//! The workgroup log at scale: decoding (signature checks), taking events
//! into a log, folding them into state, and answering a sync, for a log of
//! N events by 20 members (notes and whole task lifecycles). Beside each,
//! a baseline from the same run: plain Ed25519 verification of the same
//! messages, and sorting the same events into fold order.
//!
//! `cargo bench -p alp-workgroup --bench log [-- N]` (default 100000).

use std::collections::BTreeMap;
use std::time::Instant;

use alp_workgroup::body::{
    Assign, AttemptRef, Budget, Card, Complete, Create, MemberRoles, Note, Policy, Spend, TaskCreate, WithCard,
};
use alp_workgroup::{Body, Event, EventId, Header, Log, State};
use ed25519_dalek::{Signature, SigningKey, Verifier};

const MEMBERS: usize = 20;

fn main() {
    let n: usize =
        std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let keys: Vec<SigningKey> = (0..MEMBERS).map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32])).collect();
    let node = |i: usize| keys[i].verifying_key().into();
    let t0 = Instant::now();
    let create = Create {
        name: "bench".into(),
        briefing: String::new(),
        budget: Budget::default(),
        policy: Policy::default(),
        roles: vec![],
    };
    let header = Header { group: None, author: node(0), seq: 1, prev: None, clock: 1, time_ms: 1, deps: vec![] };
    let genesis = Event::sign(&keys[0], header, Body::Create(create)).unwrap();
    let mut log = Log::new(genesis.clone()).unwrap();
    let mut events = vec![genesis];
    let mut write = |log: &mut Log, i: usize, body: Body, deps: Vec<EventId>| {
        let h = log.next_header(node(i), deps, 1);
        let e = Event::sign(&keys[i], h, body).unwrap();
        log.ingest(e.clone()).unwrap();
        events.push(e.clone());
        e
    };
    for i in 1..MEMBERS {
        let inv = write(
            &mut log,
            0,
            Body::Invite(MemberRoles { member: *node(i).as_bytes(), roles: vec!["w".into()], admin: false }),
            vec![],
        );
        write(&mut log, i, Body::Join(WithCard { card: Card { capacity: 4, ..Card::default() } }), vec![inv.id()]);
    }
    let mut k = 0usize;
    while log.len() < n {
        let by = k % MEMBERS;
        let to = (k + 1) % MEMBERS;
        if k.is_multiple_of(3) {
            write(&mut log, by, Body::Note(Note { text: format!("note {k}") }), vec![]);
        } else {
            let spec = TaskCreate::new(format!("task {k}"));
            let t = write(&mut log, by, Body::TaskCreate(spec), vec![]).id();
            write(&mut log, by, Body::Assign(Assign { task: t.0, attempt: 1, member: *node(to).as_bytes() }), vec![t]);
            write(&mut log, to, Body::Claim(AttemptRef { task: t.0, attempt: 1 }), vec![t]);
            let spend = Spend {
                task: t.0,
                attempt: 1,
                model: "m".into(),
                input_tokens: 100,
                output_tokens: 10,
                usd_micros: 5,
                model_ms: 1,
            };
            write(&mut log, to, Body::Spend(spend), vec![t]);
            write(
                &mut log,
                to,
                Body::Complete(Complete { task: t.0, attempt: 1, text: "done".into(), artefacts: vec![] }),
                vec![t],
            );
        }
        k += 1;
    }
    let bytes: usize = events.iter().map(|e| e.bytes().len()).sum();
    println!(
        "{} events ({:.1} MiB) by {MEMBERS} members, written in {:.2?}",
        events.len(),
        bytes as f64 / (1 << 20) as f64,
        t0.elapsed()
    );

    // Decoding every event: layout, canonical body, signature.
    let raw: Vec<Vec<u8>> = events.iter().map(|e| e.bytes().to_vec()).collect();
    let t = Instant::now();
    let decoded: Vec<Event> = raw.iter().map(|b| Event::decode(b).unwrap()).collect();
    let decode = t.elapsed();
    // Baseline: Ed25519 verification alone, of the same messages.
    let msgs: Vec<(ed25519_dalek::VerifyingKey, Vec<u8>, Signature)> = raw
        .iter()
        .zip(&events)
        .map(|(b, e)| {
            let (unsigned, sig) = b.split_at(b.len() - 64);
            let msg = [alp_workgroup::event::EVENT_CONTEXT, unsigned].concat();
            (e.author().verifying_key(), msg, Signature::from_slice(sig).unwrap())
        })
        .collect();
    let t = Instant::now();
    for (k, m, s) in &msgs {
        k.verify(m, s).unwrap();
    }
    let verify = t.elapsed();
    println!(
        "decode+check   {:>8.1} ms  ({:.1} µs/event); baseline ed25519 verify {:.1} ms",
        ms(decode),
        us(decode, n),
        ms(verify)
    );

    // Taking them into a fresh log, in fold order (as a sync delivers them).
    let mut ordered = decoded.clone();
    let t = Instant::now();
    ordered.sort_unstable_by_key(|e| (e.header().clock, e.id()));
    let sort = t.elapsed();
    let t = Instant::now();
    let mut fresh = Log::new(ordered[0].clone()).unwrap();
    for e in &ordered[1..] {
        fresh.ingest(e.clone()).unwrap();
    }
    let ingest = t.elapsed();
    println!("ingest         {:>8.1} ms  ({:.1} µs/event)", ms(ingest), us(ingest, n));

    // The fold.
    let t = Instant::now();
    let state = State::fold(&fresh);
    let fold = t.elapsed();
    println!(
        "fold           {:>8.1} ms  ({:.1} µs/event); baseline sort into fold order {:.1} ms; {} tasks",
        ms(fold),
        us(fold, n),
        ms(sort),
        state.tasks.len()
    );

    // A sync answer for a member holding nothing.
    let t = Instant::now();
    let answer = alp_workgroup::sync::answer(&fresh, &BTreeMap::new());
    println!("sync answer    {:>8.1} ms  (first batch: {} events)", ms(t.elapsed()), answer.events.len());
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: std::time::Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}
