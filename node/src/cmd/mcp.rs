//! `alp mcp add|list|remove`: MCP servers whose tools this profile's agent
//! may call; `alp mcp serve`: this node as an MCP server for other agents.

use alp_profiles::Profile;
use alp_profiles::mcp::{McpSpec, McpTier, check_name};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::ctx::Ctx;
use crate::error::{CliError, CliResult, RUNTIME, usage};
use crate::say::status;

#[derive(Debug, Subcommand)]
pub(crate) enum McpCmd {
    /// Add a server: `alp mcp add fs -- npx -y @modelcontextprotocol/server-filesystem DIR` (stdio), or
    /// `alp mcp add NAME --url URL` (streamable HTTP). It is started once to learn its tools
    Add(AddArgs),
    /// The servers, their tools, and whether each starts
    #[command(visible_alias = "ls")]
    List,
    /// Remove a server
    #[command(visible_alias = "rm")]
    Remove {
        #[arg(help = "The server's name (see `alp mcp list`)")]
        name: String,
    },
    /// Serve this node to an MCP client on stdio (Claude Desktop, Claude Code, Cursor, ...)
    Serve,
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// The server's name: its tools are offered as NAME__TOOL
    name: String,
    /// The tier of its tools: read-only (never asks), side-effect (needs --allow-tools NAME__*), privileged
    #[arg(long, value_name = "TIER", default_value = "side-effect", value_parser = parse_tier)]
    tier: McpTier,
    /// An environment variable it gets (KEY=VALUE, repeatable); others are not passed
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Run it outside the sandbox (by default it runs in the tools' sandbox where bubblewrap is installed)
    #[arg(long)]
    no_sandbox: bool,
    /// Let it use the network from inside the sandbox
    #[arg(long)]
    network: bool,
    /// Longest one call may take (and its start)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// A streamable HTTP server's endpoint (https, or http on this machine) instead of a command
    #[arg(long, value_name = "URL", conflicts_with = "command")]
    url: Option<String>,
    /// The program and its arguments, after the options (`--` before it is optional)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present = "url",
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

fn parse_tier(s: &str) -> Result<McpTier, String> {
    match s {
        "read-only" => Ok(McpTier::ReadOnly),
        "side-effect" => Ok(McpTier::SideEffect),
        "privileged" => Ok(McpTier::Privileged),
        _ => Err("expected read-only, side-effect or privileged".into()),
    }
}

pub(crate) fn run(ctx: &Ctx, cmd: McpCmd) -> CliResult {
    match cmd {
        McpCmd::Add(args) => add(ctx, args),
        McpCmd::List => list(ctx),
        McpCmd::Remove { name } => remove(ctx, &name),
        McpCmd::Serve => crate::mcp_server::serve(ctx),
    }
}

fn add(ctx: &Ctx, args: AddArgs) -> CliResult {
    let profile = ctx.open()?;
    check_name(&args.name).map_err(usage)?;
    // The server runs in the workspace: a path relative to here would not
    // be found there, so existing ones are made absolute.
    let command = args
        .command
        .into_iter()
        .map(|a| {
            let p = std::path::Path::new(&a);
            match (p.is_relative() && a.contains(['/', '.']) && p.exists(), p.canonicalize()) {
                (true, Ok(abs)) => abs.display().to_string(),
                _ => a,
            }
        })
        .collect();
    let mut spec = McpSpec::stdio(command);
    spec.url = args.url;
    spec.tier = args.tier;
    spec.sandbox = !args.no_sandbox;
    spec.network = args.network;
    spec.timeout = alp_profiles::config::HumanDuration(args.timeout);
    for kv in &args.env {
        let (k, v) = kv.split_once('=').ok_or_else(|| usage(format!("--env {kv}: expected KEY=VALUE")))?;
        spec.env.insert(k.to_owned(), v.to_owned());
    }
    spec.check().map_err(usage)?;
    if let Some(url) = &spec.url {
        alp_agent::fetch::check_url(url).map_err(usage)?;
    }
    write_spec(&profile, &args.name, Some(&spec))?;
    status!("added MCP server {} to {}", args.name, profile.paths().config().display());
    let probe = probe(&profile, &args.name, &spec)?;
    if let Some(e) = &probe.error {
        return Err(CliError {
            code: RUNTIME,
            error: anyhow::anyhow!(
                "{e}\nit is added but did not start: fix it and check with `alp mcp list`, or `alp mcp remove {}`",
                args.name
            ),
        });
    }
    report(ctx, &[probe])
}

fn remove(ctx: &Ctx, name: &str) -> CliResult {
    let profile = ctx.open()?;
    let servers = ctx.config(&profile)?.mcp;
    if !servers.contains_key(name) {
        let meant = alp_profiles::suggest::closest(name, servers.keys().map(String::as_str))
            .map(|s| format!("; did you mean {s}?"))
            .unwrap_or_default();
        return Err(usage(format!("there is no MCP server {name}{meant} (`alp mcp list`)")));
    }
    write_spec(&profile, name, None)?;
    alp_mcp::remove_cache(&profile.paths().mcp_cache(), name);
    status!("removed MCP server {name}");
    Ok(())
}

fn list(ctx: &Ctx) -> CliResult {
    let profile = ctx.open()?;
    let servers = ctx.config(&profile)?.mcp;
    if servers.is_empty() {
        status!("no MCP servers: add one with `alp mcp add NAME -- COMMAND [ARGS...]`");
        return if ctx.json { ctx.print_json(&Vec::<Probe>::new()) } else { Ok(()) };
    }
    let probes: Vec<Probe> =
        servers.iter().map(|(name, spec)| probe(&profile, name, spec)).collect::<CliResult<_>>()?;
    report(ctx, &probes)
}

/// One server, started to see what it offers.
#[derive(Serialize)]
struct Probe {
    name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    command: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    tier: McpTier,
    starts: bool,
    error: Option<String>,
    tools: Vec<String>,
}

fn probe(profile: &Profile, name: &str, spec: &McpSpec) -> CliResult<Probe> {
    let workspace = profile.paths().workspace();
    std::fs::create_dir_all(&workspace)?;
    let launch = alp_mcp::Launch::new(name, spec, &workspace, &profile.paths().mcp_cache());
    let rt = super::net::client_runtime()?;
    let listed = rt.block_on(async {
        let mut conn = launch.start().await?;
        conn.list().await
    });
    let mut p = Probe {
        name: name.to_owned(),
        command: spec.command.clone(),
        url: spec.url.clone(),
        tier: spec.tier,
        starts: listed.is_ok(),
        error: None,
        tools: Vec::new(),
    };
    match listed {
        Ok(cached) => {
            p.tools = cached.tools.iter().map(|t| format!("{name}__{}", t.local)).collect();
            alp_mcp::save_cache(&profile.paths().mcp_cache(), name, &cached)?;
        }
        Err(e) => p.error = Some(e),
    }
    Ok(p)
}

/// The servers and their tools; one that does not start is listed with
/// why (runs carry on without it).
fn report(ctx: &Ctx, probes: &[Probe]) -> CliResult {
    if ctx.json {
        ctx.print_json(&probes)?;
    } else {
        let mut text = String::new();
        for p in probes {
            let state = if p.starts { format!("{} tools", p.tools.len()) } else { "does not start".into() };
            let what = p.url.clone().unwrap_or_else(|| p.command.join(" "));
            text.push_str(&format!("{}  ({:?}, {state})  {what}\n", p.name, p.tier));
            for t in &p.tools {
                text.push_str(&format!("  {t}\n"));
            }
            if let Some(e) = &p.error {
                text.push_str(&format!("  error: {e}\n"));
            }
        }
        ctx.print(text.trim_end())?;
    }
    Ok(())
}

/// Sets (or, with `None`, removes) `[mcp.NAME]` in config.toml, keeping
/// the rest of the file and its comments.
fn write_spec(profile: &Profile, name: &str, spec: Option<&McpSpec>) -> CliResult {
    let path = profile.paths().config();
    // One writer of the profile's files at a time.
    let _lock = alp_profiles::ProfileLock::acquire(&profile.paths().lock())?;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    let mut doc: toml_edit::DocumentMut =
        text.parse().map_err(|e| usage(format!("{} is not valid TOML ({e}): fix it first", path.display())))?;
    let mcp = doc.entry("mcp").or_insert_with(|| {
        let mut t = toml_edit::Table::new();
        t.set_implicit(true);
        toml_edit::Item::Table(t)
    });
    let table = mcp.as_table_mut().ok_or_else(|| usage(format!("`mcp` in {} is not a table", path.display())))?;
    match spec {
        // Checked under the lock: two adds of one name cannot both win.
        Some(_) if table.contains_key(name) => {
            return Err(usage(format!("there is already an MCP server {name}: `alp mcp remove {name}` first")));
        }
        Some(spec) => {
            let value = toml::to_string(spec).map_err(|e| usage(format!("cannot write the server: {e}")))?;
            let parsed: toml_edit::DocumentMut =
                value.parse().map_err(|e| usage(format!("cannot write the server: {e}")))?;
            table.insert(name, toml_edit::Item::Table(parsed.as_table().clone()));
        }
        None => {
            table.remove(name);
        }
    }
    alp_profiles::write_atomic(&path, doc.to_string().as_bytes(), 0o600)?;
    Ok(())
}
