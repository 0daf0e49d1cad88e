//! `alp blob …` on the local store.

use std::io::Write;
use std::path::Path;

use alp_blobstore::BlobHash;
use alp_blobstore::store::{BlobInfo, Store};
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
        BlobCmd::Put { what, to } => put(ctx, &profile, &store, &what, &to),
        BlobCmd::Get { hash, from, output } => get(ctx, &profile, &store, hash, &from, output.as_deref()),
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
    let receipt = super::net::client_runtime()?.block_on(async {
        let dialled = super::net::dial(profile, &config, &peer).await?;
        let bar = progress_bar(ctx, &format!("sending to {}", peer.name));
        let receipt = dialled.link.put_blob(store, hash, &|done, total| bar.update(done, total)).await;
        bar.finish();
        super::net::hang_up(dialled).await;
        Ok::<_, CliError>(receipt?)
    })?;
    eprintln!("sent {} bytes to '{}'", receipt.receipt.size, peer.name);
    if ctx.json {
        ctx.print_json(&BlobOut { hash: hash.to_string(), size: receipt.receipt.size })
    } else {
        ctx.print(&hash.to_string())
    }
}

fn get(ctx: &Ctx, profile: &Profile, store: &Store, hash: BlobHash, from: &str, output: Option<&Path>) -> CliResult {
    let peer = profile.peers().get(from)?;
    let config = ctx.config(profile)?.config;
    let info = match store.get(&hash) {
        Ok(info) => {
            eprintln!("blob {hash} is already stored here");
            info
        }
        Err(_) => super::net::client_runtime()?.block_on(async {
            let dialled = super::net::dial(profile, &config, &peer).await?;
            let bar = progress_bar(ctx, &format!("fetching from {}", peer.name));
            let got = dialled.link.get_blob(store, hash, &|done, total| bar.update(done, total)).await;
            bar.finish();
            super::net::hang_up(dialled).await;
            let (info, _) = got.map_err(|e| CliError {
                code: RUNTIME,
                error: anyhow::anyhow!("fetching {hash} from '{}' failed: {e}", peer.name),
            })?;
            Ok::<_, CliError>(info)
        })?,
    };
    if let Some(out) = output {
        store.export(&hash, out)?;
        eprintln!("wrote {} bytes to {}", info.size, out.display());
    }
    if ctx.json { ctx.print_json(&BlobOut::from(&info)) } else { ctx.print(&hash.to_string()) }
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
            format!("from {who} ({}) at {}, {} bytes, {sig}", r.sender, format_time(r.time), r.size)
        })
        .collect();
    ctx.print(&lines.join("\n"))
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
