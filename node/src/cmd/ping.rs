//! `alp peer ping` and `alp peer info`.

use crate::say::status;
use std::time::{Duration, Instant};

use alp_profiles::Profile;
use serde::Serialize;

use alp_profiles::peers::Peer;

use crate::cmd::wg::Control;
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult};
use crate::service::{peer_info, peer_ping};

#[derive(Serialize)]
struct PingReport {
    peer: String,
    node_id: String,
    addr: String,
    version: Option<String>,
    connect_ms: f64,
    sent: u32,
    received: u32,
    rtt_ms: Vec<f64>,
    min_ms: Option<f64>,
    avg_ms: Option<f64>,
    max_ms: Option<f64>,
    /// Whether the running node sent the pings over its kept link.
    via_node: bool,
    /// Whether that link runs through a relay.
    relayed: bool,
    /// Through the node: each round trip as this command saw it (the
    /// control socket included).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    command_ms: Vec<f64>,
}

impl PingReport {
    fn new(peer: &Peer, via_node: bool) -> Self {
        Self {
            peer: peer.name.to_string(),
            node_id: peer.node_id.to_string(),
            addr: String::new(),
            version: None,
            connect_ms: 0.0,
            sent: 0,
            received: 0,
            rtt_ms: Vec::new(),
            min_ms: None,
            avg_ms: None,
            max_ms: None,
            via_node,
            relayed: false,
            command_ms: Vec::new(),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn ping(
    ctx: &Ctx,
    profile: &Profile,
    name: &str,
    count: u32,
    interval: Duration,
    direct: bool,
) -> CliResult {
    let peer = profile.peers().get(name)?;
    let node = Control::of(profile);
    if !direct && node.is_running() {
        return ping_via(ctx, &node, &peer, count, interval);
    }
    let config = ctx.config(profile)?.config;
    super::net::client_runtime()?.block_on(super::net::with_peer(profile, &config, &peer, async |dialled| {
        let addr = dialled.link.remote_addr();
        // The peer authorises us after the handshake: only its first answer
        // proves the link is up, so the header waits for it.
        let mut header = (!ctx.json).then(|| {
            let (name, short, t) = (&peer.name, peer.node_id.short(), ms(dialled.connect_time));
            format!("PING {name} ({short}) at {addr}: link up in {t:.2} ms")
        });
        let mut report = PingReport::new(&peer, false);
        report.addr = addr.to_string();
        report.connect_ms = ms(dialled.connect_time);
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        for seq in 1..=count {
            report.sent += 1;
            let start = Instant::now();
            let reply = tokio::select! {
                r = dialled.link.ping(u64::from(seq)) => r,
                _ = &mut interrupted => break,
            };
            match reply {
                Ok(pong) => {
                    let rtt = ms(start.elapsed());
                    report.received += 1;
                    report.rtt_ms.push(rtt);
                    report.version.get_or_insert(pong.version);
                    if let Some(h) = header.take() {
                        ctx.print(&h)?;
                    }
                    if !ctx.json {
                        ctx.print(&format!("reply from {}: seq={seq} time={rtt:.3} ms", peer.name))?;
                    }
                }
                Err(e) if e.is_fatal() => return Err(e.into()),
                Err(e) if !ctx.json => status!("seq={seq}: {e}"),
                Err(e) => tracing::warn!("seq={seq}: {e}"),
            }
            if seq < count {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    _ = &mut interrupted => break,
                }
            }
        }
        finish(ctx, report)
    }))
}

/// `ping` through the profile's running node: each round is one request on
/// the control socket, sent by the node over the link it keeps.
fn ping_via(ctx: &Ctx, node: &Control, peer: &Peer, count: u32, interval: Duration) -> CliResult {
    let mut report = PingReport::new(peer, true);
    for seq in 1..=count {
        report.sent += 1;
        let request = peer_ping::Args { op: peer_ping::OP.name.into(), peer: peer.name.to_string(), seq: seq.into() };
        let start = Instant::now();
        match node.run::<peer_ping::Pong>(&peer_ping::OP, &request) {
            Ok(pong) => {
                report.command_ms.push(ms(start.elapsed()));
                report.received += 1;
                report.rtt_ms.push(pong.rtt_ms);
                if report.addr.is_empty() {
                    report.addr = pong.addr.clone();
                    report.relayed = pong.relayed;
                    report.connect_ms = pong.connect_ms.unwrap_or(0.0);
                    if !ctx.json {
                        let (name, short) = (&peer.name, peer.node_id.short());
                        let how = match pong.connect_ms {
                            Some(t) => format!("link up in {t:.2} ms"),
                            None => "over the running node's link".to_owned(),
                        };
                        let at = if pong.relayed { "through a relay".to_owned() } else { format!("at {}", pong.addr) };
                        ctx.print(&format!("PING {name} ({short}) {at}: {how}"))?;
                    }
                }
                report.version.get_or_insert(pong.version);
                if !ctx.json {
                    ctx.print(&format!("reply from {}: seq={seq} time={:.3} ms", peer.name, pong.rtt_ms))?;
                }
            }
            // Not reached at all (no link yet), or a usage error: as when
            // dialling directly, the command fails at once.
            Err(e) if e.code == 2 || report.addr.is_empty() => return Err(e),
            Err(e) if !ctx.json => status!("seq={seq}: {}", e.error),
            Err(e) => tracing::warn!("seq={seq}: {}", e.error),
        }
        if seq < count {
            std::thread::sleep(interval);
        }
    }
    finish(ctx, report)
}

/// Prints the summary (or the JSON report); no reply at all is a failure.
fn finish(ctx: &Ctx, mut report: PingReport) -> CliResult {
    summarise(&mut report);
    if ctx.json {
        ctx.print_json(&report)?;
    } else {
        print_summary(ctx, &report)?;
    }
    if report.received == 0 {
        return Err(CliError::from(std::io::Error::other(format!("no reply from {}", report.peer))));
    }
    Ok(())
}

fn summarise(r: &mut PingReport) {
    if r.rtt_ms.is_empty() {
        return;
    }
    r.min_ms = r.rtt_ms.iter().copied().reduce(f64::min);
    r.max_ms = r.rtt_ms.iter().copied().reduce(f64::max);
    r.avg_ms = Some(r.rtt_ms.iter().sum::<f64>() / r.rtt_ms.len() as f64);
}

fn print_summary(ctx: &Ctx, r: &PingReport) -> CliResult {
    let loss = 100.0 * f64::from(r.sent - r.received) / f64::from(r.sent.max(1));
    let mut text =
        format!("--- {} ping statistics ---\n{} sent, {} received, {loss:.0}% loss", r.peer, r.sent, r.received);
    if let (Some(min), Some(avg), Some(max)) = (r.min_ms, r.avg_ms, r.max_ms) {
        text.push_str(&format!("\nrtt min/avg/max = {min:.3}/{avg:.3}/{max:.3} ms"));
    }
    ctx.print(&text)
}

pub(crate) fn info(ctx: &Ctx, profile: &Profile, name: &str, direct: bool) -> CliResult {
    let peer = profile.peers().get(name)?;
    let node = Control::of(profile);
    let info: peer_info::PeerInfo = if !direct && node.is_running() {
        let request = peer_info::Args { op: peer_info::OP.name.into(), peer: peer.name.to_string() };
        node.run(&peer_info::OP, &request)?
    } else {
        let config = ctx.config(profile)?.config;
        let ask = async |d: &alp_link::dial::Dialled| Ok((d.link.info().await?, d.link.remote_addr()));
        let (info, at) = super::net::client_runtime()?.block_on(super::net::with_peer(profile, &config, &peer, ask))?;
        let (view, record) = peer_info::PeerInfo::checked(info, &peer.node_id);
        if let Some(record) = record {
            alp_link::dial::learn_record(&profile.peers(), &record, Some(at));
        }
        view
    };
    if ctx.json {
        return ctx.print_json(&info);
    }
    let verbs = if info.verbs.is_empty() { "nothing".to_owned() } else { info.verbs.join(", ") };
    let announces = match (&info.announces, info.announced_until, &info.record_error) {
        (Some(addrs), Some(until), _) => {
            let left = until.saturating_sub(alp_profiles::unix_now());
            let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            format!(
                "\nannounces:    {} (signed, valid {}h{:02}m more)",
                addrs.join(", "),
                left / 3600,
                left % 3600 / 60
            )
        }
        (_, _, Some(e)) => format!("\nannounces:    nothing usable: {e}"),
        _ => String::new(),
    };
    ctx.print(&format!(
        "node id:      {}\ndisplay name: {}\nversion:      {}\nyou may call: {verbs}{announces}",
        info.node_id, info.display_name, info.version
    ))
}
