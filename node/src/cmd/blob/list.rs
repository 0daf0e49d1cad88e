//! `alp blob ls`: what is stored, under which name, from whom; with
//! `--partial` what is still arriving, `--shared` what is shared with
//! whom, `--received` what peers sent.

use crate::say::status;
use alp_blobstore::store::Store;
use alp_blobstore::store::meta::{Kind, Origin};
use alp_profiles::shares::ShareTarget;
use alp_profiles::{Profile, format_time};
use serde::Serialize;

use crate::ctx::Ctx;
use crate::error::CliResult;

#[derive(Serialize)]
struct ListOut {
    hash: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// `file` or `folder`.
    kind: &'static str,
    /// When it was added or received (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    added: Option<u64>,
    /// `added`, `pushed` or `fetched`.
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<&'static str>,
    /// Who sent it: the peer's name, or its node id if it is no longer trusted.
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    /// With whom it is shared: peer names, `all`, `ticket`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    shared_with: Vec<String>,
    /// Added by reference: the file it is read from.
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    /// Added by reference: whether that file changed since (it is then not served).
    #[serde(skip_serializing_if = "Option::is_none")]
    changed: Option<bool>,
    /// Partial blobs only: bytes verified and kept so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    partial: Option<u64>,
    /// Partial blobs only: whether a transfer is writing it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    receiving: Option<bool>,
}

pub(super) fn run(
    ctx: &Ctx,
    profile: &Profile,
    store: &Store,
    partial: bool,
    shared: bool,
    received: bool,
) -> CliResult {
    let peers = profile.peers().load()?;
    let peer_name =
        |id: &str| peers.iter().find(|p| p.node_id.to_string() == id).map_or(id.to_owned(), |p| p.name.to_string());
    let shares = profile.shares().list().unwrap_or_default();
    let shared_with = |hash: &str| -> Vec<String> {
        let targets = shares.iter().find(|(h, _)| h == hash).map(|(_, t)| t.clone()).unwrap_or_default();
        targets
            .iter()
            .map(|t| match t {
                ShareTarget::All => "all".to_owned(),
                ShareTarget::Peer(id) => peer_name(&id.to_string()),
                ShareTarget::Ticket { expires, .. } => format!("ticket until {}", format_time(*expires)),
            })
            .collect()
    };
    let mut out: Vec<ListOut> = Vec::new();
    for b in store.list()? {
        let hash = b.hash.to_string();
        let meta = store.meta(&b.hash);
        let (origin, from) = match meta.as_ref().map(|m| &m.origin) {
            Some(Origin::Added) => (Some("added"), None),
            Some(Origin::Pushed { peer, .. }) => (Some("pushed"), Some(peer_name(peer))),
            Some(Origin::Fetched { peer, .. }) => (Some("fetched"), Some(peer_name(peer))),
            None => (None, None),
        };
        let reference = store.reference(&b.hash);
        let changed = reference.as_ref().map(|_| store.open_blob(&b.hash).is_err());
        let row = ListOut {
            reference: reference.map(|r| r.path.display().to_string()),
            changed,
            shared_with: shared_with(&hash),
            hash,
            size: b.size,
            name: meta.as_ref().and_then(|m| m.name.clone()),
            kind: if meta.as_ref().is_some_and(|m| m.kind == Kind::Collection) { "folder" } else { "file" },
            added: meta.as_ref().map(|m| m.added),
            origin,
            from,
            partial: None,
            receiving: None,
        };
        if (shared && row.shared_with.is_empty()) || (received && row.from.is_none()) {
            continue;
        }
        out.push(row);
    }
    if partial {
        for p in store.partials()? {
            out.push(ListOut {
                hash: p.hash.to_string(),
                size: p.size,
                name: None,
                kind: "file",
                added: None,
                origin: None,
                from: None,
                shared_with: Vec::new(),
                reference: None,
                changed: None,
                partial: Some(p.have_bytes()),
                receiving: Some(store.partial_active(&p.hash)),
            });
        }
    }
    if ctx.json {
        return ctx.print_json(&out);
    }
    if out.is_empty() {
        let hint = match (shared, received) {
            (true, _) => "nothing is shared: see `alp blob share` and `alp send`",
            (_, true) => "nothing received from peers yet",
            _ => "no blobs: add one with `alp blob add FILE`",
        };
        status!("{hint}");
        return Ok(());
    }
    let lines: Vec<String> = out.iter().map(line).collect();
    ctx.print(&lines.join("\n"))
}

fn line(b: &ListOut) -> String {
    let mut text = format!("{}  {:>12}", b.hash, b.size);
    if let Some(have) = b.partial {
        text.push_str(&format!("  partial: {have} bytes kept"));
        if b.receiving == Some(true) {
            text.push_str(", receiving");
        }
        return text;
    }
    let name = b.name.as_deref().unwrap_or("-");
    text.push_str(&format!("  {name}{}", if b.kind == "folder" { "/" } else { "" }));
    match (b.origin, &b.from) {
        (Some(how), Some(peer)) => text.push_str(&format!("  {how} from {peer}")),
        (Some(how), None) => text.push_str(&format!("  {how}")),
        _ => {}
    }
    if let Some(t) = b.added {
        text.push_str(&format!(" {}", format_time(t)));
    }
    if let Some(path) = &b.reference {
        text.push_str(&format!("  -> {path}"));
        if b.changed == Some(true) {
            text.push_str(" (CHANGED since added: not served)");
        }
    }
    if !b.shared_with.is_empty() {
        text.push_str(&format!("  shared with {}", b.shared_with.join(", ")));
    }
    text
}
