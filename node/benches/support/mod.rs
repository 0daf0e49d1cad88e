//! What the benchmarks that run the `alp` binary share.

use std::path::Path;
use std::process::{Command, Stdio};

/// `alp --home HOME`, without the caller's alp or provider settings.
pub(crate) fn alp(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alp"));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("ALP") || k.starts_with("OPENAI_") || k.starts_with("ANTHROPIC_") {
            c.env_remove(k);
        }
    }
    c.arg("--home").arg(home).stdin(Stdio::null());
    c
}

/// Runs `alp ARGS` to success; its stdout, trimmed.
pub(crate) fn run(home: &Path, args: &[&str]) -> String {
    let out = alp(home).args(args).output().unwrap();
    assert!(out.status.success(), "alp {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Starts `serve` (an `alp … serve --listen 127.0.0.1:0` command) and
/// returns it with the address it printed.
#[allow(dead_code)] // not every bench starts a node
pub(crate) fn start_serving(mut serve: Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = serve.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (child, line.trim().to_owned())
}
