//! `shell`: runs a program (an argv, never a shell string) in the
//! workspace, inside a [`Sandbox`] when there is one, with an explicit
//! environment, a timeout, capped output, and its whole process group
//! killed on timeout or cancellation. Where a sandbox is required (work
//! for peers) and none is available, it refuses to run anything.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::sandbox::Sandbox;
use super::{Args, MAX_OUTPUT, Spec, Tier, Tool, Workspace};
use crate::provider::BoxFuture;

/// The longest a shell command may run.
pub const MAX_SHELL_TIMEOUT: Duration = Duration::from_secs(600);
/// Environment variables a command inherits; everything else is dropped.
pub const SHELL_ENV: &[&str] = &["PATH", "LANG", "LC_ALL", "TZ"];

/// The variables of this process's environment that programs run by tools
/// get (see [`SHELL_ENV`]), with their values.
pub fn allowed_env() -> impl Iterator<Item = (&'static str, std::ffi::OsString)> {
    SHELL_ENV.iter().filter_map(|var| std::env::var_os(var).map(|v| (*var, v)))
}

/// How `shell` runs programs.
#[derive(Debug, Clone, Copy)]
pub struct ShellConfig {
    /// The longest a call may run (capped at [`MAX_SHELL_TIMEOUT`]).
    pub timeout: Duration,
    /// Run programs in a sandbox when one is available (looked for on the
    /// first call).
    pub sandbox: bool,
    /// Refuse to run anything without a sandbox (work for peers).
    pub require_sandbox: bool,
    /// Programs in the sandbox may use the network.
    pub network: bool,
}

impl ShellConfig {
    /// For this profile's own user, as `config` says.
    pub fn local(config: &alp_profiles::config::AgentConfig) -> Self {
        ShellConfig {
            timeout: config.shell_timeout.0,
            sandbox: config.shell_sandbox,
            require_sandbox: false,
            network: config.shell_network,
        }
    }

    /// For peers' asks: a sandbox is required.
    pub fn for_peers(config: &alp_profiles::config::AgentConfig) -> Self {
        ShellConfig { require_sandbox: true, ..Self::local(config) }
    }
}

/// Runs programs in the workspace.
#[derive(Debug)]
pub struct Shell {
    workspace: Arc<Workspace>,
    config: ShellConfig,
    sandbox: std::sync::OnceLock<Option<Sandbox>>,
}

impl Shell {
    /// Runs in `workspace` as `config` says.
    pub fn new(workspace: &Arc<Workspace>, config: &ShellConfig) -> Self {
        let config = ShellConfig { timeout: config.timeout.min(MAX_SHELL_TIMEOUT), ..*config };
        Self { workspace: workspace.clone(), config, sandbox: std::sync::OnceLock::new() }
    }

    /// The sandbox programs run in, if any.
    fn sandbox(&self) -> Option<&Sandbox> {
        let wanted = self.config.sandbox || self.config.require_sandbox;
        self.sandbox.get_or_init(|| if wanted { Sandbox::detect(self.config.network) } else { None }).as_ref()
    }

    /// The command that runs `program` with `args`: through the sandbox
    /// if there is one.
    fn command(&self, program: &str, args: &[String]) -> Result<tokio::process::Command, String> {
        let cmd = match self.sandbox() {
            Some(sandbox) => {
                let mut cmd = tokio::process::Command::new(sandbox.program());
                cmd.args(sandbox.args(self.workspace.root())).arg(program).args(args);
                cmd
            }
            None if self.config.require_sandbox => {
                return Err("shell is not available here: this node runs programs for peers only in a sandbox, and none is installed (its owner can install bubblewrap)"
                    .into());
            }
            None => {
                let mut cmd = tokio::process::Command::new(program);
                cmd.args(args);
                cmd
            }
        };
        Ok(cmd)
    }

    async fn run(&self, argv: &[String], timeout: Duration) -> Result<String, String> {
        let (program, args) = argv.split_first().ok_or("argv is empty")?;
        let mut cmd = self.command(program, args)?;
        cmd.current_dir(self.workspace.root())
            .env_clear()
            .env("HOME", self.workspace.root())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        cmd.envs(allowed_env());
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
                .map_or(self.config.timeout, Duration::from_secs)
                .min(self.config.timeout);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(dir: &std::path::Path, require_sandbox: bool) -> Shell {
        let ws = Workspace::open(dir).unwrap();
        let config = ShellConfig { timeout: Duration::from_secs(5), sandbox: true, require_sandbox, network: false };
        Shell::new(&ws, &config)
    }

    #[tokio::test]
    async fn without_a_sandbox_work_that_requires_one_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let s = shell(d.path(), true);
        s.sandbox.set(None).unwrap();
        let e = s.run(&["true".into()], Duration::from_secs(1)).await.unwrap_err();
        assert!(e.contains("not available here") && e.contains("bubblewrap"), "{e}");
        // The owner's own work runs without one.
        let s = shell(d.path(), false);
        s.sandbox.set(None).unwrap();
        assert!(s.run(&["true".into()], Duration::from_secs(1)).await.is_ok());
    }

    /// Only where bubblewrap can run (CI installs it): the sandbox shows
    /// the workspace and nothing around it.
    #[tokio::test]
    async fn in_the_sandbox_only_the_workspace_is_there() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("secret"), "s3cret").unwrap();
        let s = shell(&d.path().join("ws"), true);
        if s.sandbox().is_none() {
            eprintln!("no bubblewrap here: skipped (the e2e test of the sandbox needs it)");
            return;
        }
        let out = s
            .run(&["sh".into(), "-c".into(), "cat ../secret; echo hi > here; ls /".into()], Duration::from_secs(5))
            .await;
        let out = out.unwrap_or_else(|e| e);
        assert!(!out.contains("s3cret"), "{out}");
        assert!(d.path().join("ws/here").exists(), "the workspace is writable");
        assert!(!out.contains("home") && !out.contains("root"), "{out}");
    }

    #[tokio::test]
    async fn a_timeout_kills_everything_in_the_sandbox() {
        let d = tempfile::tempdir().unwrap();
        let s = shell(d.path(), true);
        if s.sandbox().is_none() {
            eprintln!("no bubblewrap here: skipped");
            return;
        }
        let script = "(sleep 2; touch survived) & sleep 30";
        let e = s.run(&["sh".into(), "-c".into(), script.into()], Duration::from_secs(1)).await.unwrap_err();
        assert!(e.contains("timed out"), "{e}");
        std::thread::sleep(Duration::from_secs(3));
        assert!(!d.path().join("survived").exists(), "a process in the sandbox outlived the timeout");
    }
}
