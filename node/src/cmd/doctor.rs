//! `alp doctor`: checks what commonly goes wrong and says what to fix:
//! the profile and its files, the config, the local model, which provider
//! would answer, the shell sandbox, the node, and whether each peer can be
//! reached now. Exits 1 if anything failed.

use std::time::Duration;

use alp_agent::local::DEFAULT_MODEL_FILE;
use alp_agent::tools::sandbox::Sandbox;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::error::{CliError, CliResult, RUNTIME};

#[derive(Serialize)]
struct Check {
    what: String,
    /// `ok`, `warn` or `fail`.
    status: &'static str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

fn check(what: &str, status: &'static str, detail: impl Into<String>, fix: Option<&str>) -> Check {
    Check { what: what.to_owned(), status, detail: detail.into(), fix: fix.map(str::to_owned) }
}

pub(crate) fn run(ctx: &Ctx) -> CliResult {
    let mut checks = Vec::new();
    let profile = match ctx.open() {
        Ok(p) => {
            checks.push(check("profile", "ok", format!("'{}' ({})", p.name(), p.identity().node_id()), None));
            Some(p)
        }
        Err(e) => {
            checks.push(check("profile", "fail", e.error.to_string(), Some("see the message")));
            None
        }
    };
    if let Some(profile) = &profile {
        match ctx.config(profile) {
            Ok(resolved) => {
                checks.push(check("config", "ok", profile.paths().config().display().to_string(), None));
                model(ctx, &resolved.config, &mut checks);
                provider(&resolved.config, &mut checks);
                sandbox(&resolved.config, &mut checks);
                node_and_peers(profile, &resolved.config, &mut checks);
            }
            Err(e) => {
                checks.push(check("config", "fail", e.error.to_string(), Some("fix the file or the setting named")))
            }
        }
    }
    if ctx.json {
        ctx.print_json(&checks)?;
    } else {
        let lines: Vec<String> = checks
            .iter()
            .map(|c| {
                let fix = c.fix.as_ref().map_or_else(String::new, |f| format!("\n         fix: {f}"));
                format!("{:<5} {:<9} {}{fix}", c.status.to_uppercase(), c.what, c.detail)
            })
            .collect();
        ctx.print(&lines.join("\n"))?;
    }
    let failed = checks.iter().filter(|c| c.status == "fail").count();
    if failed > 0 {
        return Err(CliError {
            code: RUNTIME,
            error: anyhow::anyhow!("{failed} check(s) failed: see the fixes above"),
        });
    }
    Ok(())
}

fn model(ctx: &Ctx, config: &alp_profiles::config::Config, checks: &mut Vec<Check>) {
    let path = match config.model.local_path.as_str() {
        "" => ctx.home.models_dir().join(DEFAULT_MODEL_FILE),
        p => p.into(),
    };
    match std::fs::metadata(&path) {
        Ok(m) => checks.push(check("model", "ok", format!("{} ({} MB)", path.display(), m.len() / 1_000_000), None)),
        Err(_) => checks.push(check(
            "model",
            "warn",
            format!("no local model at {}", path.display()),
            Some("run `alp model pull`, or set model.local_path (`alp config set model.local_path FILE`)"),
        )),
    }
}

fn provider(config: &alp_profiles::config::Config, checks: &mut Vec<Check>) {
    let from_env: Vec<&str> = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OLLAMA_HOST"]
        .into_iter()
        .filter(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
        .collect();
    let detail = match (config.model.provider.as_str(), from_env.as_slice()) {
        ("", []) => "the local model answers (no provider configured or in the environment)".to_owned(),
        ("", found) => {
            format!("{} in the environment chooses a remote provider over the local model", found.join(", "))
        }
        (p, _) => format!("model.provider = {p}"),
    };
    checks.push(check("provider", "ok", detail, None));
}

fn sandbox(config: &alp_profiles::config::Config, checks: &mut Vec<Check>) {
    match (config.agent.shell_sandbox, Sandbox::detect(false)) {
        (_, Some(s)) => checks.push(check("sandbox", "ok", format!("bubblewrap ({})", s.program().display()), None)),
        (true, None) => checks.push(check(
            "sandbox",
            "warn",
            "no working bubblewrap: the shell tool runs unsandboxed here, and not at all for peers",
            Some("install bubblewrap (Debian: apt-get install bubblewrap)"),
        )),
        (false, None) => checks.push(check("sandbox", "ok", "off (agent.shell_sandbox = false)", None)),
    }
}

fn node_and_peers(profile: &alp_profiles::Profile, config: &alp_profiles::config::Config, checks: &mut Vec<Check>) {
    match alp_profiles::serve::running(profile.paths()) {
        Ok(Some(n)) => checks.push(check("node", "ok", format!("serving on {} (pid {})", n.addr, n.pid), None)),
        Ok(None) => {
            checks.push(check("node", "warn", "not serving: peers cannot reach this profile", Some("alp serve")))
        }
        Err(e) => checks.push(check("node", "fail", e.to_string(), None)),
    }
    let peers = match profile.peers().load() {
        Ok(p) => p,
        Err(e) => return checks.push(check("peers", "fail", e.to_string(), Some("see the message"))),
    };
    if peers.is_empty() {
        checks.push(check("peers", "ok", "none yet", None));
        return;
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    let mut quick = config.clone();
    quick.link.handshake_timeout = alp_profiles::config::HumanDuration(Duration::from_secs(3));
    for peer in peers {
        let what = format!("peer {}", peer.name);
        let reached = rt.block_on(alp_link::dial::with_peer(profile, &quick, &peer, async |d| d.link.ping(1).await));
        match reached {
            Ok(Ok(_)) => checks.push(check(&what, "ok", "reachable", None)),
            Ok(Err(e)) => checks.push(check(&what, "warn", format!("connected, but: {e}"), None)),
            Err(alp_link::dial::PeerDialError::NoAddress { .. }) => {
                let fix = format!("alp peer set {} --addr HOST:PORT", peer.name);
                checks.push(check(&what, "warn", "no address", Some(&fix)));
            }
            Err(e) => checks.push(check(
                &what,
                "warn",
                format!("not reachable now: {e}"),
                Some("is its node serving (`alp serve` there)? is the address right (`alp peer show`)?"),
            )),
        }
    }
}
