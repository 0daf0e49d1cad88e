//! `alp blob put` and `alp blob get`: files and folders, to and from a
//! peer, resuming what an earlier run left.

use crate::say::status;
use std::io::Write;
use std::path::Path;

use alp_blobstore::BlobHash;
use alp_blobstore::collection::Entry;
use alp_blobstore::store::Store;
use alp_blobstore::store::meta::Kind;
use alp_link::{Fetched, Held, Source, SourceReport, Via, get_blob_from_many};
use alp_profiles::{Profile, unix_now};
use serde::Serialize;

use super::{Written, write_out};
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult, usage};

#[derive(Serialize)]
struct PutOut {
    hash: String,
    size: u64,
    /// Bytes sent by this command (less than `size` when resuming).
    sent: u64,
    already_there: bool,
    /// For a folder: its files.
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<usize>,
}

/// What one push moved.
#[derive(Debug, Default)]
pub(crate) struct PushTotals {
    pub(crate) size: u64,
    pub(crate) sent: u64,
    pub(crate) already_there: bool,
    pub(crate) files: Option<usize>,
}

pub(crate) fn put(ctx: &Ctx, profile: &Profile, store: &Store, what: &str, to: &str) -> CliResult {
    let path = Path::new(what);
    let hash = if path.exists() || what == "-" {
        super::add(store, path, None, ctx.config(profile)?.config.blob.reference)?.info.hash
    } else {
        store.resolve(what)?
    };
    let totals = push(ctx, profile, store, hash, to)?;
    if ctx.json {
        ctx.print_json(&PutOut {
            hash: hash.to_string(),
            size: totals.size,
            sent: totals.sent,
            already_there: totals.already_there,
            files: totals.files,
        })
    } else {
        ctx.print(&hash.to_string())
    }
}

/// Pushes blob `hash` (for a folder: every file, then the manifest) to
/// the peer `to`, saying on stderr what moved.
pub(crate) fn push(ctx: &Ctx, profile: &Profile, store: &Store, hash: BlobHash, to: &str) -> CliResult<PushTotals> {
    store.get(&hash)?;
    let peer = profile.peers().get(to)?;
    let files = folder_files(store, &hash)?;
    let mut blobs: Vec<BlobHash> = files.iter().flatten().map(|f| f.hash).collect();
    blobs.push(hash);
    let total: u64 = blobs.iter().filter_map(|h| store.get(h).ok()).map(|b| b.size).sum();
    let node = crate::cmd::wg::Control::of(profile);
    let totals = if node.is_running() {
        // The running node sends them over the link it keeps.
        use crate::service::blob_push;
        status!("sending {total} bytes to '{}' through the running node...", peer.name);
        let request = blob_push::Args {
            op: blob_push::OP.name.into(),
            peer: peer.name.to_string(),
            hashes: blobs.iter().map(ToString::to_string).collect(),
        };
        let p: blob_push::Pushed = node.run(&blob_push::OP, &request)?;
        PushTotals { size: total, sent: p.sent, already_there: p.already_there, files: files.as_ref().map(Vec::len) }
    } else {
        push_direct(ctx, profile, store, &peer, &blobs, total, files.as_ref().map(Vec::len))?
    };
    if totals.already_there {
        status!("'{}' already has blob {hash}", peer.name);
    } else if totals.sent < totals.size {
        status!("resumed: sent the last {} of {} bytes to '{}'", totals.sent, totals.size, peer.name);
    } else {
        status!("sent {} bytes to '{}'", totals.sent, peer.name);
    }
    Ok(totals)
}

/// [`push`] from this command's own link.
fn push_direct(
    ctx: &Ctx,
    profile: &Profile,
    store: &Store,
    peer: &alp_profiles::peers::Peer,
    blobs: &[BlobHash],
    total: u64,
    files: Option<usize>,
) -> CliResult<PushTotals> {
    let config = ctx.config(profile)?.config;
    let totals = super::super::net::client_runtime()?.block_on(super::super::net::with_peer(
        profile,
        &config,
        peer,
        async |d| {
            let bar = super::progress_bar(ctx, &format!("sending to {}", peer.name));
            let mut t = PushTotals { size: total, already_there: true, files, ..Default::default() };
            let mut before = 0u64;
            for h in blobs {
                let size = store.get(h)?.size;
                let tick = |done: u64, _: u64| bar.update(before + done, total);
                let pushed = d.link.put_blob(store, *h, &tick).await;
                let pushed = pushed.map_err(|e| {
                    // Only a transfer cut short has something to resume; a
                    // refusal (permission, trust, quota) does not.
                    let resume = matches!(
                        e,
                        alp_link::RequestError::Transfer(_)
                            | alp_link::RequestError::Interrupted { .. }
                            | alp_link::RequestError::Timeout(_)
                            | alp_link::RequestError::Transport(_)
                    );
                    let hint = if resume {
                        "\n(the peer keeps what it verified: run the same command again to resume)"
                    } else {
                        ""
                    };
                    CliError {
                        code: crate::error::remote_code(&e),
                        error: anyhow::anyhow!("sending {h} to '{}' failed: {e}{hint}", peer.name),
                    }
                })?;
                t.sent += pushed.sent;
                t.already_there &= pushed.already_there;
                before += size;
            }
            bar.finish();
            Ok(t)
        },
    ))?;
    Ok(totals)
}

/// The files of `hash` if it is a folder's manifest here.
fn folder_files(store: &Store, hash: &BlobHash) -> CliResult<Option<Vec<Entry>>> {
    match store.meta(hash).map(|m| m.kind) {
        Some(Kind::Collection) => Ok(store.collection(hash)?),
        _ => Ok(None),
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
    /// For a folder: its files.
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    written: Option<Written>,
    /// With several sources: what each sent, and which were dropped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sources: Vec<SourceOut>,
}

#[derive(Serialize)]
struct SourceOut {
    peer: String,
    received: u64,
    parts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    dropped: Option<String>,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn get(
    ctx: &Ctx,
    profile: &Profile,
    store: &Store,
    hash: &str,
    from: &str,
    output: Option<&Path>,
    force: bool,
    range: Option<(u64, u64)>,
) -> CliResult {
    let hash = store.resolve(hash)?;
    let peers = sources(profile, from)?;
    if peers.len() > 1 && range.is_some() {
        return Err(usage("--range fetches from one peer: give one name to --from"));
    }
    let config = ctx.config(profile)?.config;
    let via = Via::Verb(alp_protocol::Verb::BlobGet);
    let names: Vec<String> = peers.iter().map(|p| p.name.to_string()).collect();
    let who = names.join(", ");
    let node = crate::cmd::wg::Control::of(profile);
    let got = if range.is_none() && node.is_running() {
        // The running node fetches over the links it keeps (peers it
        // reaches only through a rendezvous or a relay included).
        use crate::service::blob_fetch;
        status!("fetching {hash} from {who} through the running node...");
        let request = blob_fetch::Args {
            op: blob_fetch::OP.name.into(),
            peers: names.clone(),
            hash: hash.to_string(),
            ticket: None,
        };
        let s: blob_fetch::Fetch = node.run(&blob_fetch::OP, &request)?;
        Got::from_node(store, hash, s)?
    } else {
        super::super::net::client_runtime()?.block_on(super::super::net::with_peers(
            profile,
            &config,
            &peers,
            async |up| {
                let names: Vec<String> = up.iter().map(|d| d.peer.name.to_string()).collect();
                let sources: Vec<Source> =
                    up.iter().zip(&names).map(|(d, n)| Source { link: &d.link, name: n }).collect();
                fetch(ctx, &sources, store, hash, via, range).await
            },
        ))?
    };
    report_fetch(&got, &who);
    let size = got.size;
    let range = range.map(|(a, b)| (a, b.min(size)));
    let written = match (output, range) {
        (Some(out), Some((a, b))) => {
            let bytes = write_range(&got.fetched.blob, store, a, b, out)?;
            status!("wrote {bytes} bytes to {}", out.display());
            Some(Written { hash: hash.to_string(), path: out.display().to_string(), bytes, files: None })
        }
        (Some(out), None) if got.complete() => Some(write_out(store, &hash, out, force)?),
        _ => None,
    };
    if ctx.json {
        ctx.print_json(&GetOut {
            hash: hash.to_string(),
            size,
            received: got.received,
            complete: got.complete(),
            range,
            files: got.files.as_ref().map(Vec::len),
            written,
            sources: got
                .sources
                .iter()
                .map(|s| SourceOut {
                    peer: s.name.clone(),
                    received: s.received,
                    parts: s.parts,
                    dropped: s.dropped.clone(),
                })
                .collect(),
        })
    } else if output.is_some_and(super::output::is_stdout) {
        Ok(())
    } else {
        ctx.print(&hash.to_string())
    }
}

/// What a fetch brought, a folder's files included.
pub(crate) struct Got {
    pub(crate) fetched: Fetched,
    /// The blob's size (for a folder: the manifest and every file).
    pub(crate) size: u64,
    /// Bytes moved, files included.
    pub(crate) received: u64,
    /// A folder's files.
    pub(crate) files: Option<Vec<Entry>>,
    /// With several sources: what each did.
    pub(crate) sources: Vec<SourceReport>,
}

impl Got {
    pub(crate) fn complete(&self) -> bool {
        matches!(self.fetched.blob, Held::Complete(_))
    }
}

/// The peers `--from` names: one, several (`a,b,c`), or `any` (every
/// trusted peer; those that do not share the blob drop out).
fn sources(profile: &Profile, from: &str) -> CliResult<Vec<alp_profiles::peers::Peer>> {
    if from == "any" {
        let all = profile.peers().load()?;
        if all.is_empty() {
            return Err(usage("no trusted peers: pair with one first (`alp invite`, `alp pair`)"));
        }
        return Ok(all);
    }
    let mut out: Vec<alp_profiles::peers::Peer> = Vec::new();
    for name in from.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let peer = profile.peers().get(name)?;
        if !out.iter().any(|p| p.node_id == peer.node_id) {
            out.push(peer);
        }
    }
    if out.is_empty() {
        return Err(usage("--from needs a peer name, several (a,b,c), or any"));
    }
    Ok(out)
}

/// Fetches one blob from `sources`: from one as a single transfer (or a
/// `range` of it), from several in parallel.
async fn fetch_one(
    sources: &[Source<'_>],
    store: &Store,
    hash: BlobHash,
    via: Via,
    range: Option<(u64, u64)>,
    progress: alp_link::Progress<'_>,
) -> CliResult<(Fetched, Vec<SourceReport>)> {
    let failed = |e: alp_link::RequestError| {
        let who: Vec<&str> = sources.iter().map(|s| s.name).collect();
        let code = crate::error::remote_code(&e);
        CliError { code, error: anyhow::anyhow!("fetching {hash} from '{}' failed: {e}", who.join("', '")) }
    };
    if let [one] = sources {
        let fetched = one.link.get_blob_via(via, store, hash, range, progress).await.map_err(failed)?;
        return Ok((fetched, Vec::new()));
    }
    let many = get_blob_from_many(sources, via, store, hash, progress).await.map_err(failed)?;
    for s in many.sources.iter().filter(|s| s.dropped.is_some()) {
        status!("'{}' dropped: {}", s.name, s.dropped.as_deref().unwrap_or_default());
    }
    Ok((many.fetched, many.sources))
}

/// Fetches blob `hash` (a folder: its manifest, then every file it
/// lists that is not here yet) from `sources`, asking `via`.
pub(crate) async fn fetch(
    ctx: &Ctx,
    sources: &[Source<'_>],
    store: &Store,
    hash: BlobHash,
    via: Via,
    range: Option<(u64, u64)>,
) -> CliResult<Got> {
    let who: Vec<&str> = sources.iter().map(|s| s.name).collect();
    let bar = super::progress_bar(ctx, &format!("fetching from {}", who.join(", ")));
    let got = fetch_with(sources, store, hash, via, range, &|done, total| bar.update(done, total)).await;
    bar.finish();
    got
}

/// [`fetch`], telling `progress` the bytes so far of the whole (a
/// folder's files included).
pub(crate) async fn fetch_with(
    sources: &[Source<'_>],
    store: &Store,
    hash: BlobHash,
    via: Via,
    range: Option<(u64, u64)>,
    progress: alp_link::Progress<'_>,
) -> CliResult<Got> {
    let (fetched, reports) = fetch_one(sources, store, hash, via, range, progress).await?;
    let size = match &fetched.blob {
        Held::Complete(info) => info.size,
        Held::Partial(p) => p.size(),
    };
    let mut got = Got { size, received: fetched.received, fetched, files: None, sources: reports };
    let files = match (&got.fetched.blob, range) {
        (Held::Complete(_), None) => store.collection(&hash)?,
        _ => None,
    };
    if let Some(files) = files {
        let now = unix_now();
        store.set_kind(&hash, Kind::Collection, now)?;
        let total: u64 = got.size + files.iter().map(|f| f.size).sum::<u64>();
        let mut before = got.size;
        for f in &files {
            let tick = |done: u64, _: u64| progress(before + done, total);
            let (one, reports) = fetch_one(sources, store, f.hash, via, None, &tick).await?;
            got.received += one.received;
            merge(&mut got.sources, reports);
            let name = f.path.rsplit('/').next();
            let origin = store.meta(&f.hash).map(|m| m.origin);
            if let Some(origin) = origin.filter(|o| !matches!(o, alp_blobstore::store::meta::Origin::Added)) {
                store.note_received(&f.hash, name, origin, now)?;
            }
            before += f.size;
        }
        got.size = total;
        got.files = Some(files);
    }
    Ok(got)
}

impl Got {
    /// What a fetch by the running node left in the store, as if fetched
    /// here: the whole blob (and a folder's files), with the node's counts.
    pub(crate) fn from_node(store: &Store, hash: BlobHash, s: crate::service::blob_fetch::Fetch) -> CliResult<Self> {
        let info = store.get(&hash)?;
        let files = match store.meta(&hash).map(|m| m.kind) {
            Some(Kind::Collection) => store.collection(&hash)?,
            _ => None,
        };
        let sources = s
            .sources
            .into_iter()
            .map(|r| SourceReport { name: r.peer, received: r.received, parts: r.parts, dropped: r.dropped })
            .collect();
        Ok(Got {
            fetched: Fetched { blob: Held::Complete(info), received: s.received, receipts: Vec::new() },
            size: s.size,
            received: s.received,
            files,
            sources,
        })
    }
}

/// Adds up what each source did over several blobs.
fn merge(into: &mut Vec<SourceReport>, more: Vec<SourceReport>) {
    for m in more {
        match into.iter_mut().find(|r| r.name == m.name) {
            Some(r) => {
                r.received += m.received;
                r.parts += m.parts;
                r.dropped = r.dropped.take().or(m.dropped);
            }
            None => into.push(m),
        }
    }
}

/// Says on stderr what a fetch moved.
pub(crate) fn report_fetch(got: &Got, peer: &str) {
    match (got.received, got.complete()) {
        (0, true) => status!("already here: nothing to fetch"),
        (n, true) if n < got.size => status!("fetched the missing {n} of {} bytes from '{peer}' (resumed)", got.size),
        (n, _) => status!("fetched {n} bytes from '{peer}'"),
    }
}

/// Writes bytes `[a, b)` of the blob, whole or partial, to `dest`
/// atomically.
pub(crate) fn write_range(blob: &Held, store: &Store, a: u64, b: u64, dest: &Path) -> CliResult<u64> {
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
