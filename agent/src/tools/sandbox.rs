//! Where programs started by tools run: inside bubblewrap (`bwrap`, from
//! the distribution's packages), which puts them in new mount, PID, IPC,
//! UTS, cgroup, user and (unless granted) network namespaces. Inside:
//! the system's programs and libraries read-only, a fresh `/proc` that
//! shows only the sandbox's own processes, an empty `/tmp`, and the
//! workspace as the only writable place. The profile directory around the
//! workspace, the home directory, the node's identity key and the parent
//! processes (and their environment) are not there at all.

use std::path::{Path, PathBuf};

/// System directories mounted read-only (or re-created as the symlinks
/// they are on merged-/usr systems).
const SYSTEM_DIRS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt"];
/// Files of `/etc` that programs need to start and to name users; nothing
/// that holds a secret.
const ETC_FILES: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/mime.types",
];
/// More of `/etc` when the network is granted: name resolution and CAs.
const NETWORK_FILES: &[&str] =
    &["/etc/resolv.conf", "/etc/hosts", "/etc/host.conf", "/etc/gai.conf", "/etc/ssl", "/etc/ca-certificates"];

/// A sandbox for programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    bwrap: PathBuf,
    /// Whether programs may use the network.
    pub network: bool,
}

impl Sandbox {
    /// The sandbox, if bubblewrap is installed and can make namespaces on
    /// this machine (it is tried once).
    pub fn detect(network: bool) -> Option<Self> {
        let bwrap = find_on_path("bwrap")?;
        let sandbox = Sandbox { bwrap, network };
        let mut probe = std::process::Command::new(&sandbox.bwrap);
        probe.args(sandbox.args(Path::new("/tmp"))).arg("true");
        probe.env_clear().stdin(std::process::Stdio::null());
        probe.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        match probe.status() {
            Ok(s) if s.success() => Some(sandbox),
            _ => {
                tracing::info!("bubblewrap is installed but cannot make a sandbox here");
                None
            }
        }
    }

    /// The sandbox if bubblewrap is installed, untried: a program started
    /// in it fails with bwrap's own error where namespaces are not allowed
    /// (for long-lived programs, where a probe would only add its start).
    pub fn find(network: bool) -> Option<Self> {
        find_on_path("bwrap").map(|bwrap| Sandbox { bwrap, network })
    }

    /// The program to run (bwrap).
    pub fn program(&self) -> &Path {
        &self.bwrap
    }

    /// bwrap's arguments for a program working in `workspace`; the program
    /// and its arguments follow.
    pub fn args(&self, workspace: &Path) -> Vec<String> {
        self.args_reading(workspace, &[])
    }

    /// [`Self::args`], with `read` also readable (a server's own files),
    /// `write` also writable, and `home` as `HOME`.
    pub fn args_for(&self, workspace: &Path, read: &[PathBuf], write: &[PathBuf], home: &Path) -> Vec<String> {
        let mut a = self.args_reading(workspace, read);
        a.pop(); // "--"
        for dir in write {
            let dir = dir.display().to_string();
            a.extend(["--bind".into(), dir.clone(), dir]);
        }
        a.extend(["--setenv".into(), "HOME".into(), home.display().to_string(), "--".into()]);
        a
    }

    /// [`Self::args`], with `read` also readable (a server's own files).
    pub fn args_reading(&self, workspace: &Path, read: &[PathBuf]) -> Vec<String> {
        let mut a: Vec<String> = ["--die-with-parent", "--new-session", "--unshare-all"].map(String::from).to_vec();
        if self.network {
            a.push("--share-net".into());
        }
        for dir in SYSTEM_DIRS {
            let path = Path::new(dir);
            match std::fs::read_link(path) {
                Ok(target) => a.extend(["--symlink".into(), target.display().to_string(), (*dir).into()]),
                Err(_) if path.is_dir() => a.extend(["--ro-bind".into(), (*dir).into(), (*dir).into()]),
                Err(_) => {}
            }
        }
        let etc = ETC_FILES.iter().chain(if self.network { NETWORK_FILES } else { &[] });
        for file in etc {
            a.extend(["--ro-bind-try".into(), (*file).into(), (*file).into()]);
        }
        let ws = workspace.display().to_string();
        a.extend(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"].map(String::from));
        // After /tmp (a path under it shows through), and never one that
        // would cover the sandbox's own /, /proc or /dev.
        for dir in read.iter().filter(|d| d.is_absolute() && !d.starts_with("/proc") && !d.starts_with("/dev")) {
            if dir.parent().is_none() {
                continue;
            }
            let dir = dir.display().to_string();
            a.extend(["--ro-bind-try".into(), dir.clone(), dir]);
        }
        a.extend(["--bind".into(), ws.clone(), ws.clone(), "--chdir".into(), ws.clone()]);
        a.extend(["--setenv".into(), "HOME".into(), ws, "--".into()]);
        a
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}
