//! Who may do what: a removed member writes nothing that counts, a peer
//! outside the group sees nothing of it, a stranger cannot even connect.

use alp_protocol::envelope::to_cbor;
use alp_workgroup::sync::{Head, PushRequest, SyncRequest};

use super::{GROUP, Team, wait_until};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn removed_members_outsiders_and_strangers_are_refused() {
    let t = Team::new(&["alice", "bob", "carol", "dave"], vec![vec![], vec![], vec![], vec![]], &[]);
    t.form(&[&[], &["research"], &["writer"]], &[]);
    let topic = t.h.path().join("topic.txt");
    std::fs::write(&topic, "secret topic").unwrap();

    // A removed member: its node still has the group, but what it writes
    // after the removal does not count, here or anywhere.
    t.wg(0, &["remove", GROUP, "carol"]).ok();
    wait_until("carol to learn she was removed", 20, || t.status(2)["me"] == "removed");
    t.wg(2, &["note", GROUP, "still here"]).fails(2, &["does not accept that", "not a member"]);
    t.wg(2, &["task", GROUP, "do it", "--to", "bob"]).fails(2, &["does not accept that"]);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let notes = t.log(0).iter().filter(|e| e["kind"] == "note" && e["refused"].is_null()).count();
    assert_eq!(notes, 0);

    // The control socket is the owner's alone.
    use std::os::unix::fs::PermissionsExt;
    let socket = t.h.path().join("profiles/alice/node.sock");
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600);

    let group = hex(&t.group_id());
    let input_hash = *blake3::hash(b"secret topic").as_bytes();
    t.wg(0, &["task", GROUP, "read it", "--to", "bob", "--input", topic.to_str().unwrap()]).ok();
    runtime().block_on(async {
        // dave is a trusted peer of alice, but not a member.
        let dave = t.link_as(&t.key(3), 0).await.expect("dave may connect");
        let sync = SyncRequest { group, heads: vec![Head { author: [0; 32], seq: 0 }] };
        let err = dave.call("wg.sync", to_cbor(&sync)).await.unwrap_err().to_string();
        assert!(err.contains("no such workgroup"), "{err}");
        let push = PushRequest { group, events: vec![], evidence: vec![] };
        let err = dave.call("wg.push", to_cbor(&push)).await.unwrap_err().to_string();
        assert!(err.contains("no such workgroup"), "{err}");
        let store = alp_blobstore::store::Store::open(&t.h.path().join("dave-fetch")).unwrap();
        let hash = alp_blobstore::BlobHash::from(blake3::Hash::from_bytes(input_hash));
        let got = dave.get_blob_via(alp_protocol::Verb::WgBlob, &store, hash, None, &alp_link::silent).await;
        assert!(got.unwrap_err().to_string().contains("not_found"));
        // bob, a member, may fetch it.
        let bob = t.link_as(&t.key(1), 0).await.unwrap();
        bob.get_blob_via(alp_protocol::Verb::WgBlob, &store, hash, None, &alp_link::silent).await.unwrap();

        // A stranger is refused at the handshake (close code 3).
        let stranger = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
        let err = match t.link_as(&stranger, 0).await {
            Ok(link) => link.ping(1).await.unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("not a trusted peer"), "{err}");
        // carol, removed, finds no such group any more.
        let carol = t.link_as(&t.key(2), 0).await.unwrap();
        let err = carol.call("wg.sync", to_cbor(&sync)).await.unwrap_err().to_string();
        assert!(err.contains("no such workgroup"), "{err}");
    });
}

fn hex(id: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// A declined invitation stays declined: the inviter pushing it again
/// (here after a restart, when its courier sends the whole log) brings
/// nothing back.
#[test]
fn a_declined_invitation_stays_declined() {
    let mut t = Team::new(&["alice", "bob"], vec![vec![], vec![]], &[]);
    t.wg(0, &["create", GROUP]).ok();
    t.wg(0, &["invite", GROUP, "bob"]).ok();
    let listed = |t: &Team| t.wg_json(1, &["list"]).as_array().unwrap().len();
    wait_until("the invitation", 20, || listed(&t) == 1);
    t.wg(1, &["decline", GROUP]).ok();
    assert_eq!(listed(&t), 0);
    t.stop(0);
    t.start(0);
    // Several sync rounds (500 ms each here).
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(listed(&t), 0, "the declined invitation came back");
    t.wg(1, &["join", GROUP]).fails(2, &["no workgroup"]);
    // (Members are listed by node id: find bob by his name on alice's side.)
    let status = t.status(0);
    let bob = status["members"].as_array().unwrap().iter().find(|m| m["name"] == "bob").unwrap().clone();
    assert_eq!(bob["status"], "invited");
}
