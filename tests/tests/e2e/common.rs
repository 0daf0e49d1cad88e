//! Helpers: locate (or build) the `alp` binary and run it in a clean
//! environment against a temporary home.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The `alp` binary next to this test binary (`target/<profile>/alp`),
/// built once if it is missing.
pub(crate) fn alp_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        let dir = exe.parent().and_then(Path::parent).expect("target dir");
        let bin = dir.join("alp");
        if !bin.exists() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--locked", "-p", "alp-node", "--bin", "alp"])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building alp failed");
        }
        bin
    })
}

/// A temporary alp home; dropped with the test.
pub(crate) struct Home {
    dir: tempfile::TempDir,
}

/// What one `alp` run produced.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub(crate) fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        &self.stdout
    }

    /// Asserts the exit code and that stderr contains every fragment.
    #[track_caller]
    pub(crate) fn fails(&self, code: i32, fragments: &[&str]) {
        assert_eq!(self.code, code, "wrong exit code\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        for f in fragments {
            assert!(self.stderr.contains(f), "stderr lacks {f:?}\nstderr: {}", self.stderr);
        }
        assert!(self.stdout.is_empty(), "a failure printed on stdout: {}", self.stdout);
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Home {
    pub(crate) fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp home") }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A command with a scrubbed environment and `--home` set.
    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let mut c = bare_cmd();
        c.arg("--home").arg(self.path()).args(args);
        c
    }

    pub(crate) fn run(&self, args: &[&str]) -> Run {
        output(self.cmd(args))
    }

    /// `alp init` for `profile`, returning its node id.
    pub(crate) fn init(&self, profile: &str) -> String {
        self.run(&["-p", profile, "init"]).ok().trim().to_owned()
    }
}

/// `alp` with none of the caller's alp, log or colour settings.
pub(crate) fn bare_cmd() -> Command {
    let mut c = Command::new(alp_bin());
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        let provider_env = ["OPENAI_", "ANTHROPIC_", "OLLAMA_"].iter().any(|p| k.starts_with(p));
        if k.starts_with("ALP") || k == "RUST_LOG" || k == "NO_COLOR" || provider_env {
            c.env_remove(k);
        }
    }
    c.stdin(Stdio::null());
    c
}

/// Sends SIGINT to `child` and waits (at most 20 s) for it to exit.
pub(crate) fn interrupt(child: &mut std::process::Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().expect("kill").success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        assert!(std::time::Instant::now() < deadline, "alp did not stop on SIGINT");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub(crate) fn output(mut c: Command) -> Run {
    let Output { status, stdout, stderr } = c.output().expect("run alp");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8(stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(stderr).expect("utf-8 stderr"),
    }
}

/// Spawns `c` (an `alp … serve` command) and waits for the address it
/// prints.
pub(crate) fn spawn_served(mut c: Command) -> Served {
    use std::io::BufRead;
    c.stdout(Stdio::piped());
    let mut child = c.spawn().expect("spawn alp serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("alp serve printed its address");
    let addr = line.trim().parse().unwrap_or_else(|_| panic!("not an address: {line:?}"));
    Served { child, addr }
}

/// A running `alp serve`, stopped (SIGKILL) when dropped.
pub(crate) struct Served {
    child: std::process::Child,
    pub(crate) addr: std::net::SocketAddr,
}

impl Served {
    /// The serving process's id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the serving process now, in bytes.
    pub(crate) fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("proc status");
        let kib: u64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .expect("VmRSS");
        kib * 1024
    }

    /// Sends SIGTERM and waits for the exit status (at most 10 s).
    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "alp serve did not stop within 10 s of SIGTERM");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Home {
    /// Starts `alp serve` for `profile` on 127.0.0.1 (port `port`, 0 for
    /// any) with extra environment, and waits for its address.
    pub(crate) fn serve_on(&self, profile: &str, port: u16, env: &[(&str, &str)]) -> Served {
        self.serve_logging(profile, port, env, None)
    }

    /// [`Self::serve_on`], its stderr written to `log` (if given).
    pub(crate) fn serve_logging(&self, profile: &str, port: u16, env: &[(&str, &str)], log: Option<&Path>) -> Served {
        let listen = format!("127.0.0.1:{port}");
        let mut c = self.cmd(&["-p", profile, "serve", "--listen", &listen]);
        c.envs(env.iter().copied()).stdout(Stdio::piped());
        // ALP_TEST_LOGS=DIR keeps each node's log there, for debugging a test.
        match (log, std::env::var_os("ALP_TEST_LOGS")) {
            (Some(path), _) => {
                c.stderr(std::fs::File::create(path).expect("log file"));
            }
            (None, Some(dir)) => {
                let path = std::path::Path::new(&dir).join(format!("{profile}-{}.log", std::process::id()));
                let file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("log file");
                c.stderr(file).env("ALP__LOG__LEVEL", "debug");
            }
            (None, None) => {
                c.stderr(Stdio::null());
            }
        }
        spawn_served(c)
    }

    pub(crate) fn serve(&self, profile: &str) -> Served {
        self.serve_on(profile, 0, &[])
    }

    /// The peer store of `profile`, for tests that trust in-process keys.
    pub(crate) fn peers(&self, profile: &str) -> alp_profiles::peers::PeerStore {
        let home = alp_profiles::Home::at(self.path());
        let paths = home.profile(&profile.parse().expect("profile name"));
        alp_profiles::peers::PeerStore::new(&paths.peers(), &paths.lock())
    }

    /// Makes `profile` trust `key` under `name`.
    pub(crate) fn trust(&self, profile: &str, name: &str, key: &ed25519_dalek::SigningKey) {
        let peer = alp_profiles::peers::Peer::new(name.parse().expect("name"), key.verifying_key().into(), vec![], 0);
        self.peers(profile).add(peer).expect("add peer");
    }
}

/// An in-process node identity that only dials.
pub(crate) fn client(seed: u8) -> (ed25519_dalek::SigningKey, alp_link::LinkEndpoint) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let me = alp_link::Me { key: key.clone(), display_name: format!("client{seed}"), addrs: vec![] };
    let ep = alp_link::LinkEndpoint::client(me, alp_link::LinkSettings::default()).expect("client endpoint");
    (key, ep)
}

/// The node id of `profile`.
pub(crate) fn node_id(h: &Home, profile: &str) -> alp_protocol::NodeId {
    h.run(&["-p", profile, "id"]).ok().trim().parse().expect("node id")
}
