//! `alp init`, `alp id`, `alp profile …`.

use crate::say::status;
use std::path::PathBuf;

use alp_profiles::{Profile, ProfileName};
use serde::Serialize;

use crate::cli::ProfileCmd;
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult};

#[derive(Serialize)]
struct IdOut<'a> {
    profile: &'a str,
    node_id: String,
}

pub(crate) fn init(ctx: &Ctx) -> CliResult {
    let (profile, report) = Profile::init(&ctx.home, &ctx.profile)?;
    let root = profile.paths().root().display();
    if let Some(mode) = report.repaired_mode {
        status!("warning: {root} was writable by others (mode {mode:o}); it is now 0700: check its files");
    }
    if report.created_anything() {
        tracing::info!(identity = report.created_identity, config = report.created_config, "initialised");
        status!("created profile '{}' in {root}", ctx.profile);
    } else {
        status!("profile '{}' already exists in {root}; nothing changed", ctx.profile);
    }
    print_id(ctx, &profile)
}

pub(crate) fn id(ctx: &Ctx) -> CliResult {
    print_id(ctx, &ctx.open()?)
}

fn print_id(ctx: &Ctx, profile: &Profile) -> CliResult {
    let node_id = profile.identity().node_id().to_string();
    if ctx.json { ctx.print_json(&IdOut { profile: profile.name().as_str(), node_id }) } else { ctx.print(&node_id) }
}

pub(crate) fn run(ctx: &Ctx, cmd: ProfileCmd) -> CliResult {
    match cmd {
        ProfileCmd::List => list(ctx),
        ProfileCmd::Show { name } => show(ctx, name.as_ref().unwrap_or(&ctx.profile)),
        ProfileCmd::Remove { name, yes } => remove(ctx, &name, yes),
        ProfileCmd::Use { name } => {
            // It must exist: its error names the closest one if not.
            Profile::open(&ctx.home, &name)?;
            ctx.home.set_default_profile(&name)?;
            status!("commands now act as '{name}' unless -p names another");
            Ok(())
        }
    }
}

#[derive(Serialize)]
struct Summary {
    name: String,
    current: bool,
    path: PathBuf,
    node_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peers: Option<usize>,
    /// Where its own runs' tools work (`agent.workspace`).
    #[serde(skip_serializing_if = "Option::is_none")]
    workspace: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn summary(ctx: &Ctx, name: &ProfileName, with_peers: bool) -> Summary {
    let path = ctx.home.profile(name).root().to_owned();
    let (node_id, peers, error) = match Profile::open(&ctx.home, name) {
        Ok(p) => {
            let peers = with_peers.then(|| p.peers().load());
            match peers {
                Some(Err(e)) => (Some(p.identity().node_id().to_string()), None, Some(e.to_string())),
                Some(Ok(list)) => (Some(p.identity().node_id().to_string()), Some(list.len()), None),
                None => (Some(p.identity().node_id().to_string()), None, None),
            }
        }
        Err(e) => (None, None, Some(e.to_string())),
    };
    Summary { name: name.to_string(), current: *name == ctx.profile, path, node_id, peers, workspace: None, error }
}

fn list(ctx: &Ctx) -> CliResult {
    let all: Vec<Summary> = ctx.home.list()?.iter().map(|n| summary(ctx, n, false)).collect();
    if ctx.json {
        return ctx.print_json(&all);
    }
    if all.is_empty() {
        status!("no profiles in {}: create one with `alp init`", ctx.home.root().display());
    }
    let width = all.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let lines: Vec<String> = all
        .iter()
        .map(|s| {
            let mark = if s.current { '*' } else { ' ' };
            let id = s.node_id.clone().unwrap_or_else(|| format!("(unusable: {})", s.error.as_deref().unwrap_or("")));
            format!("{mark} {:width$}  {id}", s.name)
        })
        .collect();
    if lines.is_empty() { Ok(()) } else { ctx.print(&lines.join("\n")) }
}

fn show(ctx: &Ctx, name: &ProfileName) -> CliResult {
    if !ctx.home.profile(name).root().is_dir() {
        Profile::open(&ctx.home, name)?;
    }
    let mut s = summary(ctx, name, true);
    if let Ok(profile) = Profile::open(&ctx.home, name)
        && let Ok(resolved) = ctx.config(&profile)
    {
        s.workspace = super::chat::workspace_dir(&profile, &resolved.config).ok();
    }
    if ctx.json {
        return ctx.print_json(&s);
    }
    let mut text = format!("name:    {}\npath:    {}\n", s.name, s.path.display());
    if let Some(id) = &s.node_id {
        text.push_str(&format!("node id: {id}\n"));
    }
    if let Some(n) = s.peers {
        text.push_str(&format!("peers:   {n}\n"));
    }
    if let Some(w) = &s.workspace {
        text.push_str(&format!("workspace: {}\n", w.display()));
    }
    if let Some(e) = &s.error {
        text.push_str(&format!("problem: {e}\n"));
    }
    ctx.print(text.trim_end())
}

fn remove(ctx: &Ctx, name: &ProfileName, yes: bool) -> CliResult {
    let paths = ctx.home.profile(name);
    if !paths.root().is_dir() {
        Profile::open(&ctx.home, name)?;
    }
    if !yes {
        let mut files = Vec::new();
        collect_files(paths.root(), &mut files).map_err(CliError::from)?;
        files.sort();
        let listing: Vec<String> = files.iter().map(|f| format!("  {}", f.display())).collect();
        ctx.print(&format!(
            "would delete profile '{name}' ({}), including its identity key:\n{}",
            paths.root().display(),
            listing.join("\n")
        ))?;
        status!("nothing deleted: run `alp profile remove {name} --yes` to delete it for good");
        return Ok(());
    }
    Profile::remove(&ctx.home, name)?;
    status!("deleted profile '{name}' ({})", paths.root().display());
    Ok(())
}

fn collect_files(dir: &std::path::Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            collect_files(&entry.path(), out)?;
        } else {
            out.push(entry.path());
        }
    }
    Ok(())
}
