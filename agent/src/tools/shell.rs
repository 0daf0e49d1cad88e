//! `shell`: runs a program (an argv, never a shell string) in the
//! workspace, with an explicit environment, a timeout, capped output, and
//! its whole process group killed on timeout or cancellation.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Args, MAX_OUTPUT, Spec, Tier, Tool, Workspace};
use crate::provider::BoxFuture;

/// The longest a shell command may run.
pub const MAX_SHELL_TIMEOUT: Duration = Duration::from_secs(600);
/// Environment variables a command inherits; everything else is dropped.
const SHELL_ENV: &[&str] = &["PATH", "LANG", "LC_ALL", "TZ"];

/// Runs programs in the workspace.
#[derive(Debug)]
pub struct Shell {
    workspace: Arc<Workspace>,
    timeout: Duration,
}

impl Shell {
    /// Runs in `workspace` for at most `timeout` (capped at
    /// [`MAX_SHELL_TIMEOUT`]).
    pub fn new(workspace: &Arc<Workspace>, timeout: Duration) -> Self {
        Self { workspace: workspace.clone(), timeout: timeout.min(MAX_SHELL_TIMEOUT) }
    }

    async fn run(&self, argv: &[String], timeout: Duration) -> Result<String, String> {
        let (program, args) = argv.split_first().ok_or("argv is empty")?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(self.workspace.root())
            .env_clear()
            .env("HOME", self.workspace.root())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for var in SHELL_ENV {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        let child = cmd.spawn().map_err(|e| format!("cannot run {program}: {e}"))?;
        // Kills the whole group if this future is dropped (Ctrl-C) or times out.
        let group = GroupGuard(child.id());
        let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Err(_) => {
                drop(group);
                return Err(format!("{program} timed out after {}s; its process group was killed", timeout.as_secs()));
            }
            Ok(r) => r.map_err(|e| format!("{program}: {e}"))?,
        };
        group.disarm();
        let status = out.status.code().map_or_else(|| "killed by a signal".to_string(), |c| format!("exit status {c}"));
        let text = format!(
            "{status}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(MAX_OUTPUT)]),
            String::from_utf8_lossy(&out.stderr[..out.stderr.len().min(MAX_OUTPUT)])
        );
        if out.status.success() { Ok(text) } else { Err(text) }
    }
}

impl Tool for Shell {
    fn spec(&self) -> Spec {
        let argv = json!({"type": "array", "items": {"type": "string"}, "description": "Program and arguments"});
        Spec::new("shell", Tier::Privileged, "Run a program (argv list, no shell) in the workspace, with a timeout.")
            .arg("argv", argv)
            .opt("timeout_secs", json!({"type": "integer", "description": "At most 600"}))
    }

    fn call<'a>(&'a self, args: &'a Args) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let argv: Vec<String> = args
                .get("argv")
                .and_then(Value::as_array)
                .ok_or("missing array argument \"argv\"")?
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or("argv must hold strings"))
                .collect::<Result<_, _>>()?;
            let timeout = args
                .get("timeout_secs")
                .and_then(Value::as_u64)
                .map_or(self.timeout, Duration::from_secs)
                .min(self.timeout);
            self.run(&argv, timeout).await
        })
    }
}

/// Kills a process group when dropped, unless disarmed.
struct GroupGuard(Option<u32>);

impl GroupGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}
