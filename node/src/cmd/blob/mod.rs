//! `alp blob …` on the local store, and pushing and fetching blobs.

mod list;
pub(crate) mod output;
pub(crate) mod transfer;

use crate::say::status;
use std::io::IsTerminal;
use std::path::Path;

use alp_blobstore::BlobHash;
use alp_blobstore::store::meta::{Kind, check_name};
use alp_blobstore::store::{BlobInfo, Store, StoreError};
use alp_profiles::shares::ShareTarget;
use alp_profiles::{Profile, format_time, unix_now};
use alp_protocol::receipt::SignedReceipt;
use serde::Serialize;

pub(crate) use crate::bar::progress_bar;

use crate::cli::BlobCmd;
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult, RUNTIME, usage};

/// What `blob add` (and `send`) print of what they added.
#[derive(Serialize)]
pub(crate) struct BlobOut {
    pub(crate) hash: String,
    pub(crate) size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) files: Option<usize>,
}

impl From<&Added> for BlobOut {
    fn from(a: &Added) -> Self {
        Self { hash: a.info.hash.to_string(), size: a.info.size, name: a.name.clone(), files: a.files }
    }
}

pub(crate) fn run(ctx: &Ctx, cmd: BlobCmd) -> CliResult {
    let profile = ctx.open()?;
    let store = crate::store::open(&profile, &ctx.config(&profile)?.config)?;
    match cmd {
        BlobCmd::Add { path, name, how } => {
            let by_reference = how.by_reference(ctx.config(&profile)?.config.blob.reference);
            let added = add(&store, &path, name.as_deref(), by_reference)?;
            let out = BlobOut::from(&added);
            if ctx.json { ctx.print_json(&out) } else { ctx.print(&out.hash) }
        }
        BlobCmd::Ls { partial, shared, received } => list::run(ctx, &profile, &store, partial, shared, received),
        BlobCmd::Cat { hash } => {
            output::to_stdout(&store, &store.resolve(&hash)?)?;
            Ok(())
        }
        BlobCmd::Export { hash, dest, force } => {
            let hash = store.resolve(&hash)?;
            let written = write_out(&store, &hash, &dest, force)?;
            if ctx.json { ctx.print_json(&written) } else { Ok(()) }
        }
        BlobCmd::Rm { hash } => {
            let hash = store.resolve(&hash)?;
            store.remove(&hash)?;
            status!("removed blob {hash}");
            Ok(())
        }
        BlobCmd::Gc { older_than } => gc(ctx, &profile, &store, older_than),
        BlobCmd::Verify { hash } => {
            let hash = hash.map(|h| store.resolve(&h)).transpose()?;
            verify(ctx, &store, hash)
        }
        BlobCmd::Put { what, to } => transfer::put(ctx, &profile, &store, &what, &to),
        BlobCmd::Get { hash, from, output, force, range } => {
            transfer::get(ctx, &profile, &store, &hash, &from, output.as_deref(), force, range)
        }
        BlobCmd::Share { hash, with } => {
            let hash = store.resolve(&hash)?;
            profile.shares().share(&hash.to_string(), &target(&profile, &with)?).map_err(share_error)?;
            status!("blob {hash} is shared with {with}");
            Ok(())
        }
        BlobCmd::Unshare { hash, with } => {
            let hash = store.resolve(&hash)?;
            let shares = profile.shares();
            if with == "tickets" {
                let tickets = shares.list().map_err(share_error)?.into_iter().filter(|(h, _)| *h == hash.to_string());
                for t in tickets.flat_map(|(_, ts)| ts).filter(|t| matches!(t, ShareTarget::Ticket { .. })) {
                    shares.unshare(&hash.to_string(), &t).map_err(share_error)?;
                }
            } else {
                shares.unshare(&hash.to_string(), &target(&profile, &with)?).map_err(share_error)?;
            }
            status!("blob {hash} is no longer shared with {with}");
            Ok(())
        }
        BlobCmd::Receipt { hash } => {
            let hash = store.resolve(&hash)?;
            receipts(ctx, &profile, &store, hash)
        }
    }
}

/// What `add` stored.
pub(crate) struct Added {
    pub(crate) info: BlobInfo,
    pub(crate) name: Option<String>,
    /// For a folder: how many files it holds.
    pub(crate) files: Option<usize>,
}

/// Adds a file, a folder or stdin (`-`), recording its name (`name`, or
/// the file's or folder's own); files `by_reference` stay where they are.
pub(crate) fn add(store: &Store, path: &Path, name: Option<&str>, by_reference: bool) -> CliResult<Added> {
    if let Some(n) = name {
        check_name(n).map_err(usage)?;
    }
    let now = unix_now();
    if path.as_os_str() == "-" {
        if by_reference {
            return Err(usage("standard input cannot be added by reference: add --copy"));
        }
        if std::io::stdin().is_terminal() {
            status!("reading standard input until end of file (Ctrl-D)");
        }
        let info = store.import_unsized(&mut std::io::stdin().lock(), Path::new("standard input"))?;
        store.note_added(&info.hash, name, Kind::File, now)?;
        return Ok(Added { info, name: name.map(str::to_owned), files: None });
    }
    let meta = std::fs::metadata(path)
        .map_err(|e| CliError { code: RUNTIME, error: anyhow::anyhow!("cannot read {}: {e}", path.display()) })?;
    if meta.is_dir() {
        let folder = store.import_folder(path, now, by_reference)?;
        for skipped in &folder.skipped {
            status!("left out {} (not a regular file, or a name that cannot travel)", skipped.display());
        }
        if let Some(n) = name {
            store.note_added(&folder.manifest.hash, Some(n), Kind::Collection, now)?;
        }
        let name = store.meta(&folder.manifest.hash).and_then(|m| m.name);
        return Ok(Added { info: folder.manifest, name, files: Some(folder.entries.len()) });
    }
    let info = if by_reference { store.import_reference(path)? } else { store.import_file(path)? };
    let own = path.file_name().and_then(|n| n.to_str()).filter(|n| check_name(n).is_ok());
    let name = name.or(own);
    store.note_added(&info.hash, name, Kind::File, now)?;
    Ok(Added { info, name: name.map(str::to_owned), files: None })
}

#[derive(Serialize)]
pub(crate) struct Written {
    pub(crate) hash: String,
    /// Where it went (`-`: stdout).
    pub(crate) path: String,
    pub(crate) bytes: u64,
    /// For a folder: the files written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) files: Option<usize>,
}

/// Writes blob `hash` (a file, or a folder's tree) to `dest`: a new path,
/// an existing folder (inside it, under the blob's name), or `-`.
pub(crate) fn write_out(store: &Store, hash: &BlobHash, dest: &Path, force: bool) -> CliResult<Written> {
    let meta = store.meta(hash);
    let name = meta.as_ref().and_then(|m| m.name.clone());
    let folder = match meta.as_ref().map(|m| m.kind) {
        Some(Kind::Collection) => store.collection(hash)?,
        _ => None,
    };
    if output::is_stdout(dest) {
        if folder.is_some() {
            return Err(usage("a folder cannot go to standard output: give a path for it"));
        }
        let bytes = output::to_stdout(store, hash)?;
        return Ok(Written { hash: hash.to_string(), path: "-".into(), bytes, files: None });
    }
    let path = output::target(dest, name.as_deref(), hash);
    let (bytes, files) = match folder {
        Some(entries) => {
            let (files, bytes) = output::write_folder(store, &entries, &path, force)?;
            status!("wrote {files} files, {bytes} bytes, to {}", path.display());
            (bytes, Some(files))
        }
        None => {
            let bytes = output::write_file(store, hash, &path, 0o666, force)?;
            status!("wrote {bytes} bytes to {}", path.display());
            (bytes, None)
        }
    };
    Ok(Written { hash: hash.to_string(), path: path.display().to_string(), bytes, files })
}

fn share_error(e: alp_profiles::shares::ShareError) -> CliError {
    CliError { code: RUNTIME, error: e.into() }
}

fn target(profile: &Profile, with: &str) -> CliResult<ShareTarget> {
    if with == "all" {
        return Ok(ShareTarget::All);
    }
    Ok(ShareTarget::Peer(profile.peers().get(with)?.node_id))
}

#[derive(Serialize)]
struct GcOut {
    hash: String,
    size: u64,
    kept_bytes: u64,
}

fn gc(ctx: &Ctx, profile: &Profile, store: &Store, older_than: Option<std::time::Duration>) -> CliResult {
    let ttl = match older_than {
        Some(d) => d,
        None => ctx.config(profile)?.config.blob.partial_ttl.0,
    };
    let removed = store.gc(ttl)?;
    // Totals drift if a process died between a change and its record.
    store.rebuild_usage()?;
    let freed: u64 = removed.iter().map(|p| p.have_bytes()).sum();
    status!(
        "removed {} partial blob{} idle for over {} ({freed} bytes)",
        removed.len(),
        if removed.len() == 1 { "" } else { "s" },
        humantime::format_duration(ttl)
    );
    if ctx.json {
        let out: Vec<GcOut> = removed
            .iter()
            .map(|p| GcOut { hash: p.hash.to_string(), size: p.size, kept_bytes: p.have_bytes() })
            .collect();
        return ctx.print_json(&out);
    }
    Ok(())
}

#[derive(Serialize)]
struct ReceiptOut {
    sender: String,
    sender_name: Option<String>,
    receiver: String,
    size: u64,
    /// The bytes this transfer carried.
    range: (u64, u64),
    time: u64,
    transfer_id: String,
    signature_valid: bool,
}

fn receipts(ctx: &Ctx, profile: &Profile, store: &Store, hash: BlobHash) -> CliResult {
    store.get(&hash)?;
    let peers = profile.peers().load()?;
    let name_of = |id: &alp_protocol::NodeId| peers.iter().find(|p| p.node_id == *id).map(|p| p.name.to_string());
    let out: Vec<ReceiptOut> = store
        .receipts(&hash)?
        .iter()
        .filter_map(|bytes| SignedReceipt::decode(bytes).ok())
        .map(|r| ReceiptOut {
            sender: r.receipt.sender.to_string(),
            sender_name: name_of(&r.receipt.sender),
            receiver: r.receipt.receiver.to_string(),
            size: r.receipt.size,
            range: (r.receipt.start, r.receipt.end),
            time: r.receipt.time,
            transfer_id: alp_profiles::hex(&r.receipt.transfer_id.0),
            signature_valid: r.verify().is_ok(),
        })
        .collect();
    if ctx.json {
        return ctx.print_json(&out);
    }
    if out.is_empty() {
        status!("no receipts: blob {hash} was added locally, not received");
        return Ok(());
    }
    let lines: Vec<String> = out
        .iter()
        .map(|r| {
            let who = r.sender_name.clone().unwrap_or_else(|| "unknown peer".into());
            let sig = if r.signature_valid { "signature valid" } else { "SIGNATURE INVALID" };
            let (a, b) = r.range;
            let what = if (a, b) == (0, r.size) {
                format!("{} bytes", r.size)
            } else {
                format!("bytes {a}..{b} of {}", r.size)
            };
            format!("from {who} ({}) at {}, {what}, {sig}", r.sender, format_time(r.time))
        })
        .collect();
    ctx.print(&lines.join("\n"))
}

#[derive(Serialize)]
struct Verified {
    hash: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
    /// Added by reference, and the file changed since.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    changed: bool,
}

fn verify(ctx: &Ctx, store: &Store, only: Option<BlobHash>) -> CliResult {
    let hashes = match only {
        // A reference whose file changed is not held, but is reported.
        Some(h) if store.reference(&h).is_some() => vec![h],
        Some(h) => vec![store.get(&h)?.hash],
        None => store.list()?.into_iter().map(|b| b.hash).collect(),
    };
    let results: Vec<Verified> = hashes
        .iter()
        .map(|h| match store.verify(h) {
            Ok(()) => Verified { hash: h.to_string(), ok: true, problem: None, changed: false },
            Err(e) => Verified {
                hash: h.to_string(),
                ok: false,
                changed: matches!(e, StoreError::Changed { .. }) || store.reference(h).is_some(),
                problem: Some(e.to_string()),
            },
        })
        .collect();
    if ctx.json {
        ctx.print_json(&results)?;
    } else {
        let lines: Vec<String> = results
            .iter()
            .map(|r| match (r.ok, r.changed) {
                (true, _) => format!("ok       {}", r.hash),
                (false, true) => format!("CHANGED  {}", r.hash),
                (false, false) => format!("DAMAGED  {}", r.hash),
            })
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
