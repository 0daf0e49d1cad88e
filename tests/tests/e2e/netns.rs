//! Network namespaces made by a test: a LAN on a bridge, NATs, a "public"
//! network, all inside this machine. They need root and iproute2 (and
//! for NAT, nftables); where those are missing, `Net::new` says why and the
//! test prints `SKIPPED: …` and passes, so the suite still runs anywhere.
//! Everything is removed when the `Net` is dropped.

use std::process::Command;

use crate::common::{Served, alp_bin, spawn_served};

/// A NAT's addresses (see [`Net::nat`]).
pub(crate) struct Nat<'a> {
    pub(crate) outside: &'a str,
    pub(crate) inside: &'a str,
    /// The hosts behind it: namespace and address (e.g. 10.1.0.2/24).
    pub(crate) hosts: &'a [(&'a str, &'a str)],
    pub(crate) symmetric: bool,
}

/// The namespaces (and the links between them) of one test.
pub(crate) struct Net {
    tag: String,
    spaces: Vec<String>,
    links: u32,
}

/// Runs `ip ARGS`, or says why it failed.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Net {
    /// A fresh set, or why this machine cannot make one.
    pub(crate) fn new() -> Result<Self, String> {
        let net = Net { tag: format!("alp{}", std::process::id()), spaces: Vec::new(), links: 0 };
        let probe = format!("{}probe", net.tag);
        ip(&["netns", "add", &probe])
            .map_err(|e| format!("no network namespaces here (root and iproute2 needed): {e}"))?;
        let _ = ip(&["netns", "del", &probe]);
        Ok(net)
    }

    /// A new namespace called `name` (loopback up); returns its full name.
    pub(crate) fn space(&mut self, name: &str) -> String {
        let full = format!("{}{name}", self.tag);
        ip(&["netns", "add", &full]).unwrap();
        self.spaces.push(full.clone());
        ip(&["-n", &full, "link", "set", "lo", "up"]).unwrap();
        full
    }

    /// `ip -n SPACE ARGS`, which must succeed.
    pub(crate) fn ip(&self, space: &str, args: &[&str]) {
        let mut all = vec!["-n", space];
        all.extend_from_slice(args);
        ip(&all).unwrap();
    }

    /// A bridge `br0` in `space`.
    pub(crate) fn bridge(&self, space: &str) {
        self.ip(space, &["link", "add", "br0", "type", "bridge", "mcast_snooping", "0"]);
        self.ip(space, &["link", "set", "br0", "up"]);
    }

    /// A cable from interface `a_if` in `a` to `b_if` in `b` (both up).
    pub(crate) fn cable(&mut self, a: &str, a_if: &str, b: &str, b_if: &str) {
        self.links += 1;
        let (x, y) = (
            format!("v{}x{}", std::process::id() % 100_000, self.links),
            format!("v{}y{}", std::process::id() % 100_000, self.links),
        );
        ip(&["link", "add", &x, "type", "veth", "peer", "name", &y]).unwrap();
        ip(&["link", "set", &x, "netns", a]).unwrap();
        ip(&["link", "set", &y, "netns", b]).unwrap();
        self.ip(a, &["link", "set", &x, "name", a_if]);
        self.ip(b, &["link", "set", &y, "name", b_if]);
        self.ip(a, &["link", "set", a_if, "up"]);
        self.ip(b, &["link", "set", b_if, "up"]);
    }

    /// Runs a command inside `space`, which must succeed.
    pub(crate) fn exec(&self, space: &str, args: &[&str]) {
        let out = Command::new("ip").args(["netns", "exec", space]).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?} in {space}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A router `space` between the public bridge of `public` (address
    /// `outside`, e.g. 203.0.113.1/24) and a private network of its own
    /// (`inside`, e.g. 10.1.0.1/24, on a bridge `br1`) with the hosts
    /// `hosts` behind it, masquerading what leaves: `symmetric` picks a
    /// random port per destination (a symmetric NAT), else the source port
    /// is kept where free (an endpoint-independent mapping). Like many
    /// home routers, it does not loop a host's packets to its own public
    /// address back inside (no hairpinning).
    pub(crate) fn nat(&mut self, public: &str, space: &str, n: Nat<'_>) {
        let Nat { outside, inside, hosts, symmetric } = n;
        let port = format!("n{}", &space[space.len() - 1..]);
        self.cable(space, "eth0", public, &port);
        self.ip(public, &["link", "set", &port, "master", "br0"]);
        self.ip(space, &["addr", "add", outside, "dev", "eth0"]);
        self.ip(space, &["link", "add", "br1", "type", "bridge", "mcast_snooping", "0"]);
        self.ip(space, &["link", "set", "br1", "up"]);
        self.ip(space, &["addr", "add", inside, "dev", "br1"]);
        let gateway = inside.split('/').next().unwrap();
        for (i, (host, host_ip)) in hosts.iter().enumerate() {
            let inner = format!("eth{}", i + 1);
            self.cable(space, &inner, host, "eth0");
            self.ip(space, &["link", "set", &inner, "master", "br1"]);
            self.ip(host, &["addr", "add", host_ip, "dev", "eth0"]);
            self.ip(host, &["route", "add", "default", "via", gateway]);
        }
        self.exec(space, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        self.exec(space, &["nft", "add", "table", "ip", "nat"]);
        self.exec(space, &["nft", "add chain ip nat post { type nat hook postrouting priority 100 ; }"]);
        let how: &[&str] = if symmetric { &["masquerade", "random"] } else { &["masquerade"] };
        let mut rule = vec!["nft", "add", "rule", "ip", "nat", "post", "oifname", "eth0"];
        rule.extend_from_slice(how);
        self.exec(space, &rule);
        // As a home router's firewall does: what arrives from outside
        // unasked for is dropped, not answered (nor tracked: a tracked
        // stray would take the port its host's own packets later need).
        self.exec(space, &["nft", "add", "table", "ip", "filter"]);
        self.exec(space, &["nft", "add chain ip filter input { type filter hook input priority 0 ; }"]);
        self.exec(
            space,
            &["nft", "add", "rule", "ip", "filter", "input", "iifname", "eth0", "ct", "state", "new", "drop"],
        );
    }

    /// `alp --home HOME -p PROFILE serve --listen LISTEN` inside `space`.
    pub(crate) fn serve(&self, space: &str, home: &std::path::Path, profile: &str, listen: &str) -> Served {
        self.serve_env(space, home, profile, listen, &[])
    }

    /// [`Self::serve`] with extra environment.
    pub(crate) fn serve_env(
        &self,
        space: &str,
        home: &std::path::Path,
        profile: &str,
        listen: &str,
        env: &[(&str, &str)],
    ) -> Served {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", space]).arg(alp_bin()).arg("--home").arg(home);
        c.args(["-p", profile, "serve", "--listen", listen]).stdin(std::process::Stdio::null());
        c.stderr(match std::env::var_os("ALP_TEST_LOGS") {
            Some(dir) => std::fs::File::create(std::path::Path::new(&dir).join(format!("{profile}-{space}.log")))
                .map(Into::into)
                .unwrap_or(std::process::Stdio::null()),
            None => std::process::Stdio::null(),
        });
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ALP") {
                c.env_remove(k);
            }
        }
        if std::env::var_os("ALP_TEST_LOGS").is_some() {
            c.env("ALP__LOG__LEVEL", "debug");
        }
        c.envs(env.iter().copied());
        spawn_served(c)
    }

    /// An `alp --home HOME ARGS` command run inside `space`.
    pub(crate) fn alp(&self, space: &str, home: &std::path::Path, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", space]).arg(alp_bin()).arg("--home").arg(home).args(args);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ALP") {
                c.env_remove(k);
            }
        }
        c.stdin(std::process::Stdio::null());
        c
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for s in &self.spaces {
            let _ = ip(&["netns", "del", s]);
        }
    }
}

/// A `Net`, or `None` after printing why the test is skipped.
pub(crate) fn net_or_skip(test: &str) -> Option<Net> {
    match Net::new() {
        Ok(n) => Some(n),
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

/// [`net_or_skip`], also needing nftables for NATs.
pub(crate) fn nat_or_skip(test: &str) -> Option<Net> {
    if Command::new("nft").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        eprintln!("SKIPPED {test}: no nft (Debian package nftables) to make NATs with");
        return None;
    }
    net_or_skip(test)
}
