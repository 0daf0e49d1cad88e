//! A group of in-memory members for tests.

use alp_protocol::NodeId;
use ed25519_dalek::SigningKey;

use crate::body::{Body, Budget, Card, Create, MemberRoles, Note, Policy, WithCard};
use crate::event::{Event, EventId, Header};
use crate::log::Log;

/// Members 0..n with keys from fixed seeds; member 0 created the group,
/// every other one was invited and joined.
pub(crate) struct Group {
    pub(crate) keys: Vec<SigningKey>,
    pub(crate) log: Log,
    time: u64,
}

impl Group {
    pub(crate) fn new(n: usize) -> Self {
        Self::with(n, Budget::default(), Policy::default())
    }

    pub(crate) fn with(n: usize, budget: Budget, policy: Policy) -> Self {
        let keys: Vec<SigningKey> = (0..n).map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32])).collect();
        let create = Create { name: "test".into(), briefing: String::new(), budget, policy, roles: vec![] };
        let header = Header {
            group: None,
            author: keys[0].verifying_key().into(),
            seq: 1,
            prev: None,
            clock: 1,
            time_ms: 1,
            deps: vec![],
        };
        let genesis = Event::sign(&keys[0], header, Body::Create(create)).unwrap();
        let mut g = Group { keys, log: Log::new(genesis).unwrap(), time: 1 };
        for i in 1..n {
            let invite = g.write(
                0,
                Body::Invite(MemberRoles { member: *g.node(i).as_bytes(), roles: vec![], admin: false }),
                vec![],
            );
            let card = Card { capacity: 1, ..Card::default() };
            g.write(i, Body::Join(WithCard { card }), vec![invite.id()]);
        }
        g
    }

    /// Another view of the same group, from here on apart.
    pub(crate) fn fork(&self) -> Self {
        Group { keys: self.keys.clone(), log: self.log.clone(), time: self.time }
    }

    pub(crate) fn node(&self, i: usize) -> NodeId {
        self.keys[i].verifying_key().into()
    }

    /// Moves the authors' clocks on by `ms`.
    pub(crate) fn advance(&mut self, ms: u64) {
        self.time += ms;
    }

    /// Signs member `i`'s next event without taking it into the log.
    pub(crate) fn sign(&mut self, i: usize, body: Body, deps: Vec<EventId>) -> Event {
        self.time += 1;
        let header = self.log.next_header(self.node(i), deps, self.time);
        Event::sign(&self.keys[i], header, body).unwrap()
    }

    /// Signs member `i`'s next event and takes it into the log.
    pub(crate) fn write(&mut self, i: usize, body: Body, deps: Vec<EventId>) -> Event {
        let e = self.sign(i, body, deps);
        self.log.ingest(e.clone()).unwrap();
        e
    }

    pub(crate) fn note(&mut self, i: usize, text: &str) -> Event {
        self.write(i, Body::Note(Note { text: text.into() }), vec![])
    }
}
