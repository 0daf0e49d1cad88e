//! `alp blob …` on the local store.

use std::io::Write;
use std::path::Path;

use alp_blobstore::BlobHash;
use alp_blobstore::store::{BlobInfo, Store};
use alp_link::{Fetched, Held};
use alp_profiles::shares::ShareTarget;
use alp_profiles::{Profile, format_time};
use alp_protocol::receipt::SignedReceipt;
use serde::Serialize;

use crate::cli::BlobCmd;
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult, RUNTIME, usage};

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
    let store = crate::store::open(&profile, &ctx.config(&profile)?.config)?;
    match cmd {
        BlobCmd::Add { file } => {
            let info = store.import_file(&file)?;
            if ctx.json { ctx.print_json(&BlobOut::from(&info)) } else { ctx.print(&info.hash.to_string()) }
        }
        BlobCmd::Ls { partial } => list(ctx, &store, partial),
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
        BlobCmd::Gc { older_than } => gc(ctx, &profile, &store, older_than),
        BlobCmd::Verify { hash } => verify(ctx, &store, hash),
        BlobCmd::Put { what, to } => put(ctx, &profile, &store, &what, &to),
        BlobCmd::Get { hash, from, output, range } => get(ctx, &profile, &store, hash, &from, output.as_deref(), range),
        BlobCmd::Share { hash, with } => {
            profile.shares().share(&hash.to_string(), &target(&profile, &with)?).map_err(share_error)?;
            eprintln!("blob {hash} is shared with {with}");
            Ok(())
        }
        BlobCmd::Unshare { hash, with } => {
            profile.shares().unshare(&hash.to_string(), &target(&profile, &with)?).map_err(share_error)?;
            eprintln!("blob {hash} is no longer shared with {with}");
            Ok(())
        }
        BlobCmd::Receipt { hash } => receipts(ctx, &profile, &store, hash),
    }
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
struct PutOut {
    hash: String,
    size: u64,
    /// Bytes sent by this command (less than `size` when resuming).
    sent: u64,
    already_there: bool,
}

fn put(ctx: &Ctx, profile: &Profile, store: &Store, what: &str, to: &str) -> CliResult {
    let peer = profile.peers().get(to)?;
    let path = Path::new(what);
    let hash = if path.exists() {
        store.import_file(path)?.hash
    } else {
        let hash: BlobHash = what.parse().map_err(|_| {
            usage(format!("'{what}' is neither a file nor the hash of a stored blob (see `alp blob ls`)"))
        })?;
        store.get(&hash)?.hash
    };
    let config = ctx.config(profile)?.config;
    let pushed = super::net::client_runtime()?.block_on(super::net::with_peer(profile, &config, &peer, async |d| {
        let bar = progress_bar(ctx, &format!("sending to {}", peer.name));
        let pushed = d.link.put_blob(store, hash, &|done, total| bar.update(done, total)).await;
        bar.finish();
        pushed.map_err(|e| CliError {
            code: RUNTIME,
            error: anyhow::anyhow!(
                "sending {hash} to '{}' failed: {e}\n(the peer keeps what it verified: run the same command again to resume)",
                peer.name
            ),
        })
    }))?;
    if pushed.already_there {
        eprintln!("'{}' already has blob {hash}", peer.name);
    } else if pushed.sent < pushed.size {
        eprintln!("resumed: sent the last {} of {} bytes to '{}'", pushed.sent, pushed.size, peer.name);
    } else {
        eprintln!("sent {} bytes to '{}'", pushed.sent, peer.name);
    }
    if ctx.json {
        ctx.print_json(&PutOut {
            hash: hash.to_string(),
            size: pushed.size,
            sent: pushed.sent,
            already_there: pushed.already_there,
        })
    } else {
        ctx.print(&hash.to_string())
    }
}

#[derive(Serialize)]
struct GetOut {
    hash: String,
    size: u64,
    /// Bytes fetched by this command (earlier, interrupted fetches and
    /// blobs already here are not fetched again).
    received: u64,
    /// Whether the whole blob is now stored here.
    complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    range: Option<(u64, u64)>,
}

fn get(
    ctx: &Ctx,
    profile: &Profile,
    store: &Store,
    hash: BlobHash,
    from: &str,
    output: Option<&Path>,
    range: Option<(u64, u64)>,
) -> CliResult {
    let peer = profile.peers().get(from)?;
    let config = ctx.config(profile)?.config;
    let fetched = match store.get(&hash) {
        Ok(info) => Fetched { blob: Held::Complete(info), received: 0, receipts: Vec::new() },
        Err(_) => {
            super::net::client_runtime()?.block_on(super::net::with_peer(profile, &config, &peer, async |d| {
                let bar = progress_bar(ctx, &format!("fetching from {}", peer.name));
                let got = d.link.get_blob(store, hash, range, &|done, total| bar.update(done, total)).await;
                bar.finish();
                got.map_err(|e| CliError {
                    code: RUNTIME,
                    error: anyhow::anyhow!("fetching {hash} from '{}' failed: {e}", peer.name),
                })
            }))?
        }
    };
    let size = match &fetched.blob {
        Held::Complete(info) => info.size,
        Held::Partial(p) => p.size(),
    };
    let range = range.map(|(a, b)| (a, b.min(size)));
    match (fetched.received, &fetched.blob) {
        (0, Held::Complete(_)) => eprintln!("blob {hash} is already stored here"),
        (n, Held::Complete(_)) if n < size => {
            eprintln!("fetched the missing {n} of {size} bytes from '{}' (resumed)", peer.name)
        }
        (n, _) => eprintln!("fetched {n} bytes from '{}'", peer.name),
    }
    if let Some(out) = output {
        let written = match (&fetched.blob, range) {
            (Held::Complete(_), None) => store.export(&hash, out)?,
            (blob, Some((a, b))) => write_range(blob, store, a, b, out)?,
            (Held::Partial(_), None) => 0,
        };
        eprintln!("wrote {written} bytes to {}", out.display());
    }
    if ctx.json {
        ctx.print_json(&GetOut {
            hash: hash.to_string(),
            size,
            received: fetched.received,
            complete: matches!(fetched.blob, Held::Complete(_)),
            range,
        })
    } else {
        ctx.print(&hash.to_string())
    }
}

/// Writes bytes `[a, b)` of the blob, whole or partial, to `dest`
/// atomically.
fn write_range(blob: &Held, store: &Store, a: u64, b: u64, dest: &Path) -> CliResult<u64> {
    use std::os::unix::fs::FileExt;
    let complete = match blob {
        Held::Complete(info) => Some(store.open_blob(&info.hash)?),
        Held::Partial(_) => None,
    };
    let written = alp_blobstore::store::write_atomically(dest, |out| {
        let mut buf = vec![0u8; 1 << 20];
        let mut at = a;
        while at < b {
            let n = usize::try_from((b - at).min(buf.len() as u64)).unwrap_or(buf.len());
            match (&complete, blob) {
                (Some(f), _) => f.read_exact_at(&mut buf[..n], at)?,
                (None, Held::Partial(p)) => p.read_at(&mut buf[..n], at).map_err(std::io::Error::other)?,
                (None, Held::Complete(_)) => return Err(std::io::Error::other("blob vanished")),
            }
            out.write_all(&buf[..n])?;
            at += n as u64;
        }
        Ok(b - a)
    })?;
    Ok(written)
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
    eprintln!(
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

/// A progress bar on stderr (bytes, rate, ETA), drawn only when stderr is
/// a terminal and diagnostics are not silenced; otherwise nothing.
struct Bar(Option<indicatif::ProgressBar>);

fn progress_bar(ctx: &Ctx, message: &str) -> Bar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() || ctx.quiet {
        return Bar(None);
    }
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    let template = "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}";
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_owned());
    Bar(Some(bar))
}

impl Bar {
    fn update(&self, done: u64, total: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
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
            transfer_id: r.receipt.transfer_id.0.iter().map(|b| format!("{b:02x}")).collect(),
            signature_valid: r.verify().is_ok(),
        })
        .collect();
    if ctx.json {
        return ctx.print_json(&out);
    }
    if out.is_empty() {
        eprintln!("no receipts: blob {hash} was added locally, not received");
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
struct ListOut {
    hash: String,
    size: u64,
    /// Partial blobs only: bytes verified and kept so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    partial: Option<u64>,
    /// Partial blobs only: whether a transfer is writing it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    receiving: Option<bool>,
}

fn list(ctx: &Ctx, store: &Store, with_partials: bool) -> CliResult {
    let mut out: Vec<ListOut> = store
        .list()?
        .iter()
        .map(|b| ListOut { hash: b.hash.to_string(), size: b.size, partial: None, receiving: None })
        .collect();
    if with_partials {
        for p in store.partials()? {
            let receiving = Some(store.partial_active(&p.hash));
            out.push(ListOut { hash: p.hash.to_string(), size: p.size, partial: Some(p.have_bytes()), receiving });
        }
    }
    if ctx.json {
        return ctx.print_json(&out);
    }
    if out.is_empty() {
        eprintln!("no blobs: add one with `alp blob add FILE`");
        return Ok(());
    }
    let lines: Vec<String> = out
        .iter()
        .map(|b| match (b.partial, b.receiving) {
            (Some(have), Some(true)) => format!("{}  {:>12}  partial: {have} bytes kept, receiving", b.hash, b.size),
            (Some(have), _) => format!("{}  {:>12}  partial: {have} bytes kept", b.hash, b.size),
            (None, _) => format!("{}  {:>12}", b.hash, b.size),
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
