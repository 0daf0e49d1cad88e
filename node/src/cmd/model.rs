//! `alp model pull` and `alp model ls`: the local model files, for people
//! who have only the binary (`scripts/fetch-model.sh` is the path CI uses).

use std::path::PathBuf;

use alp_agent::fetch::{self, FetchError, Source};
use alp_agent::local::DEFAULT_MODEL_FILE;
use clap::Subcommand;
use serde::Serialize;

use crate::bar::progress_bar;
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult, RUNTIME, USAGE};
use crate::say::status;

#[derive(Debug, Subcommand)]
pub(crate) enum ModelCmd {
    /// Download the default model (SmolLM2-135M-Instruct, Q4_1, 98 MB) into the home's models dir,
    /// resuming an interrupted download and checking its pinned SHA-256
    Pull {
        /// Fetch from here instead: a mirror of the default model, or, with --sha256, another GGUF file
        /// (https, or http from this machine)
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// The SHA-256 the file at --url must have (another model than the default)
        #[arg(long, value_name = "HEX", requires = "url")]
        sha256: Option<String>,
        /// Replace a different file already at the destination
        #[arg(long)]
        force: bool,
    },
    /// List the GGUF files in the home's models dir, and which one chat uses
    #[command(visible_alias = "list")]
    Ls,
}

pub(crate) fn run(ctx: &Ctx, cmd: ModelCmd) -> CliResult {
    match cmd {
        ModelCmd::Pull { url, sha256, force } => pull(ctx, url, sha256, force),
        ModelCmd::Ls => list(ctx),
    }
}

fn pull(ctx: &Ctx, url: Option<String>, sha256: Option<String>, force: bool) -> CliResult {
    let dir = ctx.home.models_dir();
    let (src, name) = match sha256 {
        None => {
            // A mirror of the default model carries its name.
            if let Some(u) = &url
                && file_name(u).ok().as_deref() != Some(DEFAULT_MODEL_FILE)
            {
                return Err(crate::error::usage(format!(
                    "{u} is not a mirror of the default model ({DEFAULT_MODEL_FILE}): for another model, \
                     give the SHA-256 it must have with --sha256"
                )));
            }
            (Source::default_model(url.as_deref()), DEFAULT_MODEL_FILE.to_owned())
        }
        Some(hex) => {
            let hex = hex.trim().to_ascii_lowercase();
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(crate::error::usage("--sha256 takes 64 hex digits"));
            }
            let url = url.unwrap_or_default();
            (Source { url: url.clone(), sha256: hex, size: None }, file_name(&url)?)
        }
    };
    // Before the bar: a refused URL is a usage error, not a failed download.
    fetch::check_url(&src.url).map_err(fetch_error)?;
    let dest = dir.join(&name);
    let bar = progress_bar(ctx, &format!("downloading {name}"));
    let mut progress = |done: u64, total: Option<u64>| bar.update(done, total.unwrap_or(done));
    let rt = super::net::client_runtime()?;
    let fetched = rt.block_on(fetch::pull(&src, &dest, force, &mut progress));
    bar.finish();
    let fetched = fetched.map_err(fetch_error)?;
    if fetched.already {
        status!("{name} is already here and intact");
    } else if fetched.resumed_from > 0 {
        status!(
            "fetched the last {} of {} bytes (resumed); SHA-256 checked",
            fetched.size.saturating_sub(fetched.resumed_from),
            fetched.size
        );
    } else {
        status!("fetched {} bytes; SHA-256 checked", fetched.size);
    }
    if ctx.json { ctx.print_json(&fetched) } else { ctx.print(&fetched.path.display().to_string()) }
}

/// The file name a URL's last path segment gives, if it is a plain GGUF name.
fn file_name(url: &str) -> CliResult<String> {
    let parsed = fetch::check_url(url).map_err(fetch_error)?;
    let name = parsed.path_segments().and_then(|mut s| s.next_back()).unwrap_or_default();
    let plain = name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !plain || !name.ends_with(".gguf") || name.starts_with('.') || name.len() > 200 {
        return Err(crate::error::usage(format!(
            "{url} does not end in a plain FILE.gguf name: alp names the downloaded file after it"
        )));
    }
    Ok(name.to_owned())
}

fn fetch_error(e: FetchError) -> CliError {
    let code = match e {
        FetchError::Refused(_) => USAGE,
        _ => RUNTIME,
    };
    CliError { code, error: e.into() }
}

#[derive(Serialize)]
struct ModelFile {
    name: String,
    path: PathBuf,
    size: u64,
    /// The file `alp chat` runs (model.local_path, else the default).
    used: bool,
}

fn list(ctx: &Ctx) -> CliResult {
    let dir = ctx.home.models_dir();
    let used = used_model(ctx);
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".gguf") || name.starts_with('.') {
                continue;
            }
            let path = e.path();
            let Some(meta) = std::fs::metadata(&path).ok().filter(std::fs::Metadata::is_file) else { continue };
            let size = meta.len();
            let is_used = used.is_some() && path.canonicalize().ok() == used;
            files.push(ModelFile { used: is_used, name, path, size });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    if ctx.json {
        return ctx.print_json(&files);
    }
    if files.is_empty() {
        status!("no models in {}: `alp model pull` fetches the default one", dir.display());
        return Ok(());
    }
    let lines: Vec<String> = files
        .iter()
        .map(|f| format!("{}{:>8.1} MB  {}", if f.used { "* " } else { "  " }, f.size as f64 / 1e6, f.name))
        .collect();
    ctx.print(&lines.join("\n"))
}

/// The file a local chat would load (canonical, when it exists).
fn used_model(ctx: &Ctx) -> Option<PathBuf> {
    let configured = ctx.open().ok().and_then(|p| ctx.config(&p).ok()).map(|r| r.config.model.local_path);
    let path = match configured.as_deref() {
        None | Some("") => ctx.home.models_dir().join(DEFAULT_MODEL_FILE),
        Some(p) => PathBuf::from(p),
    };
    path.canonicalize().ok()
}
