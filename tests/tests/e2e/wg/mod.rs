//! Workgroups end to end: every member a real `alp serve` in its own
//! profile (one home), each with its own scripted model, on fixed
//! loopback ports so that a member restarted after a kill is found again.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Home, Run, Served};
use crate::fake_provider::{FakeProvider, Script};

mod access;
mod durability;
mod governance;
mod graphs;
mod tamper;
mod tasks;

/// The group every test forms.
pub(crate) const GROUP: &str = "team";

/// A member: its profile, port, scripted model and running node.
pub(crate) struct Member {
    pub(crate) name: String,
    port: u16,
    pub(crate) fake: FakeProvider,
    pub(crate) node: Option<Served>,
}

/// Members of one home, all paired with each other.
pub(crate) struct Team {
    pub(crate) h: Home,
    pub(crate) members: Vec<Member>,
    env: Vec<(String, String)>,
}

/// A UDP port free now on 127.0.0.1.
fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Waits (at most `secs`) until `cond` holds, polling; panics naming `what`.
#[track_caller]
pub(crate) fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {secs}s waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Team {
    /// Members `names` (scripts in the same order), each serving, every
    /// pair paired. `env` goes to every node (config as ALP__SECTION__KEY).
    pub(crate) fn new(names: &[&str], scripts: Vec<Vec<Script>>, env: &[(&str, &str)]) -> Self {
        let h = Home::new();
        let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        if !env.iter().any(|(k, _)| k == "ALP__WORKGROUP__SYNC_INTERVAL") {
            env.push(("ALP__WORKGROUP__SYNC_INTERVAL".into(), "500ms".into()));
        }
        let members = names
            .iter()
            .zip(scripts)
            .map(|(name, script)| {
                h.init(name);
                Member { name: (*name).to_owned(), port: free_port(), fake: FakeProvider::start(script), node: None }
            })
            .collect();
        let mut team = Team { h, members, env };
        for i in 0..team.members.len() {
            team.start(i);
        }
        for i in 0..team.members.len() {
            for j in i + 1..team.members.len() {
                let ticket = team.h.run(&["-p", names[i], "invite"]).ok().trim().to_owned();
                team.h.run(&["-p", names[j], "pair", &ticket, "--name", names[i]]).ok();
            }
        }
        team
    }

    /// Starts member `i`'s node on its port.
    pub(crate) fn start(&mut self, i: usize) {
        let m = &self.members[i];
        let url = m.fake.url("/v1");
        let mut env: Vec<(&str, &str)> = vec![("OPENAI_BASE_URL", &url), ("OPENAI_API_KEY", "sk-test-0000")];
        env.extend(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let served = self.h.serve_on(&m.name, m.port, &env);
        self.members[i].node = Some(served);
    }

    /// Stops member `i`'s node politely.
    pub(crate) fn stop(&mut self, i: usize) {
        if let Some(n) = self.members[i].node.take() {
            n.terminate();
        }
    }

    /// Kills member `i`'s node (SIGKILL), as a crash would.
    pub(crate) fn kill(&mut self, i: usize) {
        drop(self.members[i].node.take());
    }

    /// Sends `signal` (e.g. "STOP", "CONT") to member `i`'s node.
    pub(crate) fn signal(&self, i: usize, signal: &str) {
        let pid = self.members[i].node.as_ref().expect("running").pid().to_string();
        assert!(std::process::Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap().success());
    }

    /// `alp -p MEMBER wg ARGS...`.
    pub(crate) fn wg(&self, i: usize, args: &[&str]) -> Run {
        let mut all = vec!["-p", &self.members[i].name, "wg"];
        all.extend_from_slice(args);
        self.h.run(&all)
    }

    /// `alp -p MEMBER --json wg ARGS...`, which must succeed.
    pub(crate) fn wg_json(&self, i: usize, args: &[&str]) -> Value {
        let mut all = vec!["-p", &self.members[i].name, "--json", "wg"];
        all.extend_from_slice(args);
        self.h.run(&all).json()
    }

    /// Member `i`'s view of the group.
    pub(crate) fn status(&self, i: usize) -> Value {
        self.wg_json(i, &["status", GROUP])
    }

    /// Member 0 creates the group; members 1.. up to `roles.len()` are
    /// invited with their roles (`roles[i]`, member 0's are its own) and
    /// join. Members past `roles.len()` stay out of it.
    pub(crate) fn form(&self, roles: &[&[&str]], create_flags: &[&str]) {
        let mut create = vec!["create", GROUP];
        for r in roles[0] {
            create.extend(["--role", r]);
        }
        create.extend_from_slice(create_flags);
        self.wg(0, &create).ok();
        for (i, member_roles) in roles.iter().enumerate().skip(1) {
            let mut invite = vec!["invite", GROUP, self.members[i].name.as_str()];
            for r in *member_roles {
                invite.extend(["--role", r]);
            }
            self.wg(0, &invite).ok();
            wait_until("the invitation", 20, || {
                self.wg_json(i, &["list"]).as_array().is_some_and(|l| l.iter().any(|g| g["name"] == GROUP))
            });
            self.wg(i, &["join", GROUP]).ok();
        }
        let n = roles.len();
        for i in 0..n {
            wait_until("every member to see everyone joined", 20, || {
                let s = self.status(i);
                s["members"].as_array().is_some_and(|m| m.len() == n && m.iter().all(|m| m["status"] == "active"))
            });
        }
    }

    /// Member `i`'s view of one task.
    pub(crate) fn task(&self, i: usize, id: &str) -> Value {
        self.wg_json(i, &["status", GROUP, id])
    }

    /// Submits a task as member `i`; returns its id.
    pub(crate) fn submit(&self, i: usize, goal: &str, flags: &[&str]) -> String {
        let mut args = vec!["task", GROUP, goal];
        args.extend_from_slice(flags);
        self.wg(i, &args).ok().trim().to_owned()
    }

    /// The group's id.
    pub(crate) fn group_id(&self) -> String {
        self.status(0)["id"].as_str().unwrap().to_owned()
    }

    /// Member `i`'s identity key, read from its profile.
    pub(crate) fn key(&self, i: usize) -> ed25519_dalek::SigningKey {
        let home = alp_profiles::Home::at(self.h.path());
        let name = self.members[i].name.parse().unwrap();
        alp_profiles::Profile::open(&home, &name).unwrap().identity().signing_key().clone()
    }

    /// An in-process link to member `i`'s node, as the node with `key`.
    pub(crate) async fn link_as(
        &self,
        key: &ed25519_dalek::SigningKey,
        i: usize,
    ) -> Result<alp_link::Link, alp_link::DialError> {
        let me = alp_link::Me { key: key.clone(), display_name: "tester".into(), addrs: vec![] };
        let ep = alp_link::LinkEndpoint::client(me, alp_link::LinkSettings::default()).unwrap();
        let target = self.key(i).verifying_key().into();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.members[i].port));
        ep.dial(addr, target).await
    }

    /// Member `i`'s events file.
    pub(crate) fn events_file(&self, i: usize) -> std::path::PathBuf {
        let id = self.group_id();
        self.h.path().join("profiles").join(&self.members[i].name).join("workgroups").join(id).join("events")
    }

    /// The kinds of the events in member `i`'s transcript.
    pub(crate) fn log(&self, i: usize) -> Vec<Value> {
        let run = self.h.run(&["-p", &self.members[i].name, "--json", "wg", "log", GROUP]);
        run.ok().lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
    }
}
