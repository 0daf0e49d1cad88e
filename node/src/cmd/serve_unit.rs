//! `alp serve --install-unit`: a systemd user unit that runs this
//! profile's node at login and restarts it if it fails.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Serialize;

use crate::ctx::Ctx;
use crate::error::{CliResult, usage};
use crate::say::status;

#[derive(Serialize)]
struct Installed {
    unit: String,
    path: PathBuf,
    enable: String,
}

/// Writes `alp-PROFILE.service` into the user's systemd unit directory
/// (`$XDG_CONFIG_HOME/systemd/user`, else `~/.config/systemd/user`).
pub(crate) fn install(ctx: &Ctx, listen: Option<SocketAddr>) -> CliResult {
    let profile = ctx.open()?;
    let exe = std::env::current_exe()?;
    let dir = match std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".config"))
            .ok_or_else(|| usage("no home directory to put the unit in: set XDG_CONFIG_HOME"))?,
    }
    .join("systemd/user");
    std::fs::create_dir_all(&dir)?;
    let name = format!("alp-{}.service", profile.name());
    let path = dir.join(&name);
    let text = unit(&exe, ctx.home.root(), &profile.name().to_string(), listen);
    alp_profiles::write_atomic(&path, text.as_bytes(), 0o644)?;
    let enable = format!("systemctl --user daemon-reload && systemctl --user enable --now {name}");
    status!("wrote {}; start it now and at every login with:\n  {enable}", path.display());
    if ctx.json {
        return ctx.print_json(&Installed { unit: name, path, enable });
    }
    ctx.print(&path.display().to_string())
}

/// The unit's text. Paths are quoted for systemd (spaces are allowed in
/// them); SIGTERM stops the node cleanly, as Ctrl-C does.
fn unit(exe: &std::path::Path, home: &std::path::Path, profile: &str, listen: Option<SocketAddr>) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%"));
    let mut exec =
        format!("{} --home {} --profile {} serve", q(&exe.to_string_lossy()), q(&home.to_string_lossy()), q(profile));
    if let Some(l) = listen {
        exec.push_str(&format!(" --listen {l}"));
    }
    format!(
        "# Written by `alp serve --install-unit`; run it again to rewrite.\n\
         [Unit]\n\
         Description=alp node of profile '{profile}'\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={exec}\n\
         Restart=on-failure\n\
         RestartSec=2\n\
         KillSignal=SIGTERM\n\
         TimeoutStopSec=15\n\
         NoNewPrivileges=yes\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_this_profile_with_quoted_paths() {
        let text = unit(
            std::path::Path::new("/opt/my apps/alp"),
            std::path::Path::new("/home/a/.local/share/alp"),
            "work",
            Some("0.0.0.0:7200".parse().unwrap()),
        );
        assert!(text.contains(
            "ExecStart=\"/opt/my apps/alp\" --home \"/home/a/.local/share/alp\" --profile \"work\" serve --listen 0.0.0.0:7200\n"
        ));
        assert!(text.contains("Restart=on-failure") && text.contains("WantedBy=default.target"));
    }
}
