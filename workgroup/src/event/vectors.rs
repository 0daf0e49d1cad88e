//! The workgroup test vectors of docs/PROTOCOL.md: alice (seed `07×32`)
//! creates a group and writes a note; the bytes and ids are frozen, and
//! the spec must list the same values.
//!
//! `ALP_PRINT_VECTORS=1 cargo test -p alp-workgroup vectors -- --nocapture`
//! prints every value instead of checking it.

#![cfg(test)]

use ed25519_dalek::SigningKey;

use crate::body::{Body, Budget, Create, Decision, Governance, NodeKey, Note, Policy, Risk, ToolRisk};
use crate::event::{Event, Header};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check(name: &str, value: &[u8], expected: &str) {
    if std::env::var_os("ALP_PRINT_VECTORS").is_some() {
        println!("{name}: {}", hex(value));
        return;
    }
    assert_eq!(hex(value), expected, "vector {name} changed: the event format changed");
    assert_eq!(in_spec(name).as_deref(), Some(expected), "docs/PROTOCOL.md differs on `{name}`");
}

/// The value the spec's "Test vectors" section gives for `name`.
fn in_spec(name: &str) -> Option<String> {
    let doc = include_str!("../../../docs/PROTOCOL.md");
    let section = doc.split("\n## Test vectors").nth(1)?;
    let mut lines = section.lines().skip_while(|l| !l.starts_with(&format!("{name} (")));
    lines.next()?;
    Some(lines.map_while(|l| l.strip_prefix("    ")).map(str::trim).collect())
}

#[test]
fn vectors() {
    let alice = SigningKey::from_bytes(&[7; 32]);
    let create = Create {
        name: "team".into(),
        briefing: "Owl facts.".into(),
        budget: Budget { usd_micros: None, tokens: Some(100_000) },
        policy: Policy::default(),
        roles: vec!["lead".into()],
    };
    let header = Header {
        group: None,
        author: alice.verifying_key().into(),
        seq: 1,
        prev: None,
        clock: 1,
        time_ms: 1_795_000_000_000,
        deps: vec![],
    };
    let genesis = Event::sign(&alice, header, Body::Create(create)).unwrap();
    check(
        "workgroup create body",
        &genesis.body().encode().1,
        "a5646e616d65647465616d686272696566696e676a4f776c2066616374732e66627564676574a26a7573645f6d6963726f73f666746f6b656e731a000186a066706f6c696379a36a6c656173655f73656373181e6c6d61785f617474656d70747303696d61785f64657074680465726f6c657381646c656164",
    );
    check(
        "workgroup create event",
        genesis.bytes(),
        "010000000000000000000000000000000000000000000000000000000000000000ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c000000000000000100000000000000000000000000000000000000000000000000000000000000000000000000000001000001a1ee565e00000100000079a5646e616d65647465616d686272696566696e676a4f776c2066616374732e66627564676574a26a7573645f6d6963726f73f666746f6b656e731a000186a066706f6c696379a36a6c656173655f73656373181e6c6d61785f617474656d70747303696d61785f64657074680465726f6c657381646c656164aa78cacf820038747c4e7e6f807a49dcd1453d4824f70cf978050bdb56d8bb693e0740308a9f6f1a49f01697a49fb44271944f5c3216a1c1564f11dfa0b0ed0b",
    );
    check("workgroup id", &genesis.id().0, "8f83c8d8689499258f1bd4b2064939b47be3b7e12df3af93dd458aeb1755ae89");
    let log = crate::log::Log::new(genesis.clone()).unwrap();
    let header = log.next_header(alice.verifying_key().into(), vec![], 1_795_000_001_000);
    let note = Event::sign(&alice, header, Body::Note(Note { text: "hello".into() })).unwrap();
    check(
        "workgroup note event",
        note.bytes(),
        "018f83c8d8689499258f1bd4b2064939b47be3b7e12df3af93dd458aeb1755ae89ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c00000000000000028f83c8d8689499258f1bd4b2064939b47be3b7e12df3af93dd458aeb1755ae890000000000000002000001a1ee5661e800090000000ca164746578746568656c6c6f7888a551a0ba68024db3539ab687eaedd96bdab032990c2a5aa038660d0d646bddb487677154b989e0c9b363984977a3de309ba4d39b6c7db4734acbd412bb0e",
    );
    check("workgroup note id", &note.id().0, "b7b763bbfef1cff9e818cbf6ea7b459d7b051518222c0fcba24920e4d91ed745");
    assert_eq!(Event::decode(note.bytes()).unwrap().id(), note.id());

    // Governance: the default policy with alice as the one approver, and
    // her approval of the note's id (as if it were a task).
    let policy = Governance {
        approvers: vec![NodeKey(*alice.verifying_key().as_bytes())],
        tools: vec![ToolRisk { tool: "shell".into(), tier: Risk::Critical }],
        ..Governance::default()
    };
    check("workgroup policy body", &Body::Policy(policy).encode().1, POLICY);
    let approve = Body::Approve(Decision { subject: note.id().0, reason: "ok".into() });
    check("workgroup approve body", &approve.encode().1, APPROVE);
    let task = crate::body::TaskCreate { tier: Some(Risk::High), ..crate::body::TaskCreate::new("x") };
    check("workgroup task body with a tier", &Body::TaskCreate(task).encode().1, TASK);
}

const POLICY: &str = "a86b6d61785f72756e6e696e67006c64656661756c745f74696572666d656469756d656e65656473a4636c6f7700666d656469756d0064686967680068637269746963616c0169617070726f76657273815820ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c6c74696d656f75745f73656373190e106a6f6e5f74696d656f757464736b69706a7375626d697474657273f665746f6f6c7381a264746f6f6c657368656c6c647469657268637269746963616c";
const APPROVE: &str =
    "a2677375626a6563745820b7b763bbfef1cff9e818cbf6ea7b459d7b051518222c0fcba24920e4d91ed74566726561736f6e626f6b";
const TASK: &str = "a864676f616c617862746ff664726f6c65f666696e707574738066627564676574a26a7573645f6d6963726f73f666746f6b656e73f66b646561646c696e655f6d73f666706172656e74f664746965726468696768";
