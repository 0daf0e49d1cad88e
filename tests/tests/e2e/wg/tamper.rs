//! A log nobody can silently rewrite: `alp wg verify` names an edited,
//! deleted, reordered or forged event; a damaged log is not loaded; forged
//! and equivocating events are refused on sync, and equivocation is
//! reported to every member.

use alp_protocol::envelope::to_cbor;
use alp_workgroup::body::Note;
use alp_workgroup::store::GroupFiles;
use alp_workgroup::sync::PushRequest;
use alp_workgroup::verify::{frames, push_frame};
use alp_workgroup::{Body, Event};
use serde_bytes::ByteBuf;

use super::{GROUP, Team, wait_until};

/// The frames of an events file.
fn split(bytes: &[u8]) -> Vec<Vec<u8>> {
    frames(bytes).map(|f| f.unwrap().1.to_vec()).collect()
}

fn join(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        push_frame(&mut out, f);
    }
    out
}

#[test]
fn verify_names_edited_deleted_reordered_and_forged_events_and_a_damaged_log_is_not_loaded() {
    let mut t = Team::new(&["alice", "bob"], vec![vec![], vec![]], &[]);
    t.form(&[&[], &[]], &[]);
    for i in 0..3 {
        t.wg(0, &["note", GROUP, &format!("alice {i}")]).ok();
        t.wg(1, &["note", GROUP, &format!("bob {i}")]).ok();
    }
    let path = t.events_file(0);
    wait_until("alice to hold bob's notes", 20, || split(&std::fs::read(&path).unwrap()).len() >= 10);
    t.stop(0);
    t.wg(0, &["verify", GROUP]).ok();
    let clean = std::fs::read(&path).unwrap();
    let original = split(&clean);
    let check = |bytes: Vec<u8>, fragments: &[&str]| {
        std::fs::write(&path, bytes).unwrap();
        t.wg(0, &["verify", GROUP]).fails(1, fragments);
        std::fs::write(&path, &clean).unwrap();
    };

    // One flipped byte inside event #6's body.
    let mut edited = original.clone();
    let n = edited[5].len();
    edited[5][n - 70] ^= 0x01;
    check(join(&edited), &["event #6", "edited"]);

    // An event deleted: something later refers to it.
    let mut deleted = original.clone();
    deleted.remove(5);
    check(join(&deleted), &["deleted"]);

    // Two events of one author swapped.
    let author_of = |f: &Vec<u8>| Event::decode(f).unwrap().author();
    let (i, j) = (4..original.len())
        .flat_map(|i| (i + 1..original.len()).map(move |j| (i, j)))
        .find(|(i, j)| author_of(&original[*i]) == author_of(&original[*j]))
        .unwrap();
    let mut reordered = original.clone();
    reordered.swap(i, j);
    check(join(&reordered), &[&format!("event #{}", i + 1), "reordered"]);

    // A forged author: event #8 claims to be by the other member.
    let mut forged = original.clone();
    let author = 1 + 32;
    let alice: [u8; 32] = t.key(0).verifying_key().to_bytes();
    let bob: [u8; 32] = t.key(1).verifying_key().to_bytes();
    let other = if forged[7][author..author + 32] == alice { bob } else { alice };
    forged[7][author..author + 32].copy_from_slice(&other);
    check(join(&forged), &["event #8", "edited or forged"]);

    // A damaged log is not loaded (and not served) until it is restored.
    std::fs::write(&path, join(&edited)).unwrap();
    t.start(0);
    assert_eq!(t.wg_json(0, &["list"]), serde_json::json!([]));
    t.stop(0);
    std::fs::write(&path, &clean).unwrap();
    t.start(0);
    assert_eq!(t.wg_json(0, &["list"])[0]["name"], GROUP);
    t.wg(0, &["verify", GROUP]).ok();
}

#[test]
fn forged_and_equivocating_events_are_refused_on_sync_and_reported_to_every_member() {
    let mut t = Team::new(&["alice", "bob", "carol"], vec![vec![], vec![], vec![]], &[]);
    t.form(&[&[], &[], &[]], &[]);
    // bob's node stops; "bob" now is a client with bob's key that signs
    // what it likes.
    t.stop(1);
    let group_dir = t.events_file(1).parent().unwrap().to_owned();
    let (_, log, _) = GroupFiles::open(&group_dir).unwrap();
    let bob = t.key(1);
    let note = |text: &str| Body::Note(Note { text: text.into() });
    let header = log.next_header(bob.verifying_key().into(), vec![], 1);
    let a = Event::sign(&bob, header.clone(), note("version a")).unwrap();
    let b = Event::sign(&bob, header.clone(), note("version b")).unwrap();
    // Signed by another key, claiming to be bob's.
    let mut forged = a.bytes().to_vec();
    let n = forged.len();
    let mallory = ed25519_dalek::SigningKey::from_bytes(&[66; 32]);
    use ed25519_dalek::Signer;
    let sig = mallory.sign(&[alp_workgroup::event::EVENT_CONTEXT, &forged[..n - 64]].concat());
    forged[n - 64..].copy_from_slice(&sig.to_bytes());

    let group = log.group().0;
    let push = |events: Vec<Vec<u8>>| PushRequest {
        group,
        events: events.into_iter().map(ByteBuf::from).collect(),
        evidence: vec![],
    };
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let link = t.link_as(&bob, 0).await.unwrap();
        let answer: alp_workgroup::sync::PushResponse =
            alp_protocol::envelope::from_cbor(&link.call("wg.push", to_cbor(&push(vec![forged]))).await.unwrap())
                .unwrap();
        assert_eq!(answer.added, 0);
        assert!(answer.refused[0].contains("signature"), "{:?}", answer.refused);
        let answer: alp_workgroup::sync::PushResponse = alp_protocol::envelope::from_cbor(
            &link.call("wg.push", to_cbor(&push(vec![a.bytes().to_vec()]))).await.unwrap(),
        )
        .unwrap();
        assert_eq!(answer.added, 1);
        let answer: alp_workgroup::sync::PushResponse = alp_protocol::envelope::from_cbor(
            &link.call("wg.push", to_cbor(&push(vec![b.bytes().to_vec()]))).await.unwrap(),
        )
        .unwrap();
        assert_eq!(answer.added, 0);
        assert!(answer.refused[0].contains("equivocation"), "{:?}", answer.refused);
    });
    // alice reports it; so does carol, who learns it from alice.
    for i in [0, 2] {
        wait_until("the equivocation to reach every member", 20, || {
            t.status(i)["equivocations"].as_array().is_some_and(|e| e.len() == 1)
        });
        let s = t.status(i);
        assert_eq!(s["equivocations"][0][1], header.seq);
        t.wg(i, &["verify", GROUP]).fails(1, &["equivocation", "signed two different events"]);
    }
    // bob's feed from the fork on no longer counts.
    let log = t.log(0);
    let note_a = log.iter().find(|e| e["id"] == a.id().to_string()).unwrap();
    assert!(note_a["refused"].as_str().unwrap().contains("equivocated"), "{note_a}");
}
