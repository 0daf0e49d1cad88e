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
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Asserts the exit code and that stderr contains every fragment.
    #[track_caller]
    pub(crate) fn fails(&self, code: i32, fragments: &[&str]) {
        assert_eq!(
            self.code, code,
            "wrong exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        for f in fragments {
            assert!(
                self.stderr.contains(f),
                "stderr lacks {f:?}\nstderr: {}",
                self.stderr
            );
        }
        assert!(
            self.stdout.is_empty(),
            "a failure printed on stdout: {}",
            self.stdout
        );
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Home {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp home"),
        }
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
        if k.starts_with("ALP") || k == "RUST_LOG" || k == "NO_COLOR" {
            c.env_remove(k);
        }
    }
    c.stdin(Stdio::null());
    c
}

pub(crate) fn output(mut c: Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().expect("run alp");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8(stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(stderr).expect("utf-8 stderr"),
    }
}
