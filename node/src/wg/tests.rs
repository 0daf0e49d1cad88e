//! Taking invitations: what a node pushed a group it does not hold
//! accepts, and what it refuses.

use alp_workgroup::body::{Budget, Create, MemberRoles, Note, Policy};
use alp_workgroup::event::Header;

use super::*;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn node(seed: u8) -> NodeId {
    key(seed).verifying_key().into()
}

/// A group created by `creator` (named `name`) whose log invites each of
/// `invited`: its events in fold order.
fn group(creator: u8, name: &str, invited: &[u8]) -> Vec<Event> {
    let create = Create {
        name: name.into(),
        briefing: String::new(),
        budget: Budget::default(),
        policy: Policy::default(),
        roles: vec![],
    };
    let header = Header { group: None, author: node(creator), seq: 1, prev: None, clock: 1, time_ms: 1, deps: vec![] };
    let genesis = Event::sign(&key(creator), header, Body::Create(create)).unwrap();
    let mut log = Log::new(genesis).unwrap();
    for i in invited {
        let body = Body::Invite(MemberRoles { member: *node(*i).as_bytes(), roles: vec![], admin: false });
        let header = log.next_header(node(creator), vec![], 2);
        log.ingest(Event::sign(&key(creator), header, body).unwrap()).unwrap();
    }
    log.ordered().into_iter().cloned().collect()
}

const ME: u8 = 2;

fn here() -> (tempfile::TempDir, Workgroups) {
    let dir = tempfile::tempdir().unwrap();
    let wg = Workgroups::open(dir.path(), key(ME));
    (dir, wg)
}

#[test]
fn an_invitation_is_taken_once_from_a_member_and_only_if_it_invites_this_node() {
    let (_dir, wg) = here();
    let events = group(1, "team", &[ME]);
    // The creator pushes it: taken, once.
    assert_eq!(wg.accept_invitation(node(1), &events).unwrap(), Some(events[0].id()));
    assert_eq!(wg.accept_invitation(node(1), &events).unwrap(), None);
    assert_eq!(wg.state(events[0].id()).unwrap().members[&node(ME)].status, MemberStatus::Invited);

    // From a peer that is not a member of it.
    let other = group(1, "other", &[ME]);
    let err = wg.accept_invitation(node(9), &other).unwrap_err().to_string();
    assert!(err.contains("not an invitation to this node from a member"), "{err}");
    // Not inviting this node.
    let elsewhere = group(1, "elsewhere", &[3]);
    assert!(wg.accept_invitation(node(1), &elsewhere).is_err());
    // Not starting with the group's creation.
    assert!(wg.accept_invitation(node(1), &other[1..]).is_err());
    // An event that does not check out.
    let mut tampered = other.clone();
    let stranger_note = {
        let h = Header {
            group: Some(other[0].id()),
            author: node(9),
            seq: 1,
            prev: None,
            clock: 2,
            time_ms: 2,
            deps: vec![other[0].id()],
        };
        Event::sign(&key(9), h, Body::Note(Note { text: "hi".into() })).unwrap()
    };
    tampered.push(stranger_note);
    assert!(wg.accept_invitation(node(1), &tampered).is_err());
    assert_eq!(wg.states().len(), 1, "nothing refused was kept");
}

#[test]
fn one_creator_has_at_most_four_invitations_waiting() {
    let (_dir, wg) = here();
    for i in 0..INVITATIONS_PER_PEER {
        wg.accept_invitation(node(1), &group(1, &format!("g{i}"), &[ME])).unwrap();
    }
    let err = wg.accept_invitation(node(1), &group(1, "one more", &[ME])).unwrap_err().to_string();
    assert!(err.contains("invitations from that creator are pending"), "{err}");
    // Another creator's still come in.
    wg.accept_invitation(node(3), &group(3, "elsewhere", &[ME])).unwrap();
}

#[test]
fn a_declined_invitation_is_refused_when_pushed_again_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let events = group(1, "team", &[ME]);
    let id = events[0].id();
    {
        let wg = Workgroups::open(dir.path(), key(ME));
        wg.accept_invitation(node(1), &events).unwrap();
        wg.forget(id).unwrap();
        assert!(wg.state(id).is_none());
    }
    let wg = Workgroups::open(dir.path(), key(ME));
    assert!(wg.state(id).is_none(), "a declined group is not loaded again");
    let err = wg.accept_invitation(node(1), &events).unwrap_err().to_string();
    assert!(err.contains("declined"), "{err}");
}
