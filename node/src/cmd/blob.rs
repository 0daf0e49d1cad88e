//! `alp blob …` on the local store.

use std::io::Write;

use alp_blobstore::BlobHash;
use alp_blobstore::store::{BlobInfo, Store};
use serde::Serialize;

use crate::cli::BlobCmd;
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult, RUNTIME};

#[derive(Serialize)]
struct BlobOut {
    hash: String,
    size: u64,
}

impl From<&BlobInfo> for BlobOut {
    fn from(b: &BlobInfo) -> Self {
        Self { hash: b.hash.to_string(), size: b.size }
    }
}

pub(crate) fn run(ctx: &Ctx, cmd: BlobCmd) -> CliResult {
    let profile = ctx.open()?;
    let store = Store::open(&profile.paths().blobs())?;
    match cmd {
        BlobCmd::Add { file } => {
            let info = store.import_file(&file)?;
            if ctx.json { ctx.print_json(&BlobOut::from(&info)) } else { ctx.print(&info.hash.to_string()) }
        }
        BlobCmd::Ls => list(ctx, &store),
        BlobCmd::Cat { hash } => {
            let mut src = store.open_blob(&hash)?;
            let mut out = std::io::stdout().lock();
            std::io::copy(&mut src, &mut out)?;
            out.flush()?;
            Ok(())
        }
        BlobCmd::Export { hash, file } => {
            let size = store.export(&hash, &file)?;
            eprintln!("wrote {size} bytes to {}", file.display());
            if ctx.json { ctx.print_json(&BlobOut { hash: hash.to_string(), size }) } else { Ok(()) }
        }
        BlobCmd::Rm { hash } => {
            store.remove(&hash)?;
            eprintln!("removed blob {hash}");
            Ok(())
        }
        BlobCmd::Verify { hash } => verify(ctx, &store, hash),
    }
}

fn list(ctx: &Ctx, store: &Store) -> CliResult {
    let blobs = store.list()?;
    if ctx.json {
        return ctx.print_json(&blobs.iter().map(BlobOut::from).collect::<Vec<_>>());
    }
    if blobs.is_empty() {
        eprintln!("no blobs: add one with `alp blob add FILE`");
        return Ok(());
    }
    let lines: Vec<String> = blobs.iter().map(|b| format!("{}  {:>12}", b.hash, b.size)).collect();
    ctx.print(&lines.join("\n"))
}

#[derive(Serialize)]
struct Verified {
    hash: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

fn verify(ctx: &Ctx, store: &Store, only: Option<BlobHash>) -> CliResult {
    let hashes = match only {
        Some(h) => vec![store.get(&h)?.hash],
        None => store.list()?.into_iter().map(|b| b.hash).collect(),
    };
    let results: Vec<Verified> = hashes
        .iter()
        .map(|h| match store.verify(h) {
            Ok(()) => Verified { hash: h.to_string(), ok: true, problem: None },
            Err(e) => Verified { hash: h.to_string(), ok: false, problem: Some(e.to_string()) },
        })
        .collect();
    if ctx.json {
        ctx.print_json(&results)?;
    } else {
        let lines: Vec<String> = results
            .iter()
            .map(|r| if r.ok { format!("ok       {}", r.hash) } else { format!("DAMAGED  {}", r.hash) })
            .collect();
        if !lines.is_empty() {
            ctx.print(&lines.join("\n"))?;
        }
    }
    let bad: Vec<&Verified> = results.iter().filter(|r| !r.ok).collect();
    match bad.first() {
        None => Ok(()),
        Some(first) => Err(CliError {
            code: RUNTIME,
            error: anyhow::anyhow!(
                "{} of {} blobs failed verification; first: {}",
                bad.len(),
                results.len(),
                first.problem.as_deref().unwrap_or("")
            ),
        }),
    }
}
