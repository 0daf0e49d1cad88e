//! `alp invite` and `alp pair`.

use crate::say::status;
use std::net::SocketAddr;
use std::time::Duration;

use alp_link::LinkEndpoint;
use alp_profiles::peers::{NoiseKey, Peer, PeerAddr, PeerError, suggest_name};
use alp_profiles::serve::running;
use alp_profiles::{ProfileName, format_time, unix_now};
use alp_protocol::ticket::{Ticket, TicketSecret};
use serde::Serialize;

use crate::ctx::Ctx;
use crate::error::{CliError, CliResult, usage};

#[derive(Serialize)]
struct Invitation {
    ticket: String,
    expires_at: u64,
    uses: u32,
    addrs: Vec<SocketAddr>,
}

pub(crate) fn invite(ctx: &Ctx, ttl: Duration, uses: u32, addrs: Vec<SocketAddr>) -> CliResult {
    let profile = ctx.open()?;
    let serving = running(profile.paths())?;
    let addrs = match (addrs.is_empty(), &serving) {
        (false, _) => addrs,
        (true, Some(record)) => record.advertised.clone(),
        (true, None) => {
            return Err(usage(format!(
                "no `alp serve` is running for profile '{}': start it first (tickets are redeemed against the running node), or pass --addr",
                profile.name()
            )));
        }
    };
    if serving.is_none() {
        status!(
            "note: profile '{}' is not being served; start `alp serve` before the ticket is redeemed",
            profile.name()
        );
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| CliError::from(std::io::Error::other(e.to_string())))?;
    let secret = TicketSecret(secret);
    let stored = profile.tickets().add(&secret, ttl.as_secs().max(1), uses, unix_now())?;
    let ticket = Ticket { node_id: profile.identity().node_id(), secret, addrs: addrs.clone() };
    status!(
        "ticket valid until {} for {uses} use(s); on the other node run: alp pair <ticket>",
        format_time(stored.expires_at)
    );
    if ctx.json {
        ctx.print_json(&Invitation { ticket: ticket.to_string(), expires_at: stored.expires_at, uses, addrs })
    } else {
        ctx.print(&ticket.to_string())
    }
}

pub(crate) fn pair(ctx: &Ctx, ticket: &Ticket, name: Option<ProfileName>) -> CliResult {
    let profile = ctx.open()?;
    if ticket.node_id == profile.identity().node_id() {
        return Err(usage("this ticket was made by this profile: redeem it from another profile or node"));
    }
    let peers = profile.peers().load()?;
    if let Some(clash) = name.as_ref().and_then(|n| peers.iter().find(|p| p.name == *n && p.node_id != ticket.node_id))
    {
        return Err(PeerError::DuplicateName { name: clash.name.clone(), node_id: clash.node_id }.into());
    }
    let config = ctx.config(&profile)?.config;
    let mut me = alp_link::dial::me(&profile, &config);
    // Where the inviter can reach this node: where it is served, or, when
    // it is not, the port it will listen on (the inviter puts the IP this
    // pairing comes from in front of an unspecified one).
    me.addrs = match running(profile.paths())? {
        Some(r) => r.advertised,
        None if config.node.listen.port() != 0 => vec![config.node.listen],
        None => Vec::new(),
    };
    let settings = alp_link::LinkSettings::from(&config.link);
    let hello = super::net::client_runtime()?.block_on(async {
        let endpoint = LinkEndpoint::client(me, settings)?;
        let link = endpoint.pair(ticket).await?;
        let hello = link.remote().clone();
        link.close();
        let _ = tokio::time::timeout(Duration::from_millis(200), endpoint.quinn().wait_idle()).await;
        Ok::<_, CliError>(hello)
    })?;
    // The ticket's addresses, then any others the handshake announced.
    let mut addrs: Vec<PeerAddr> = Vec::new();
    for a in ticket.addrs.iter().chain(&hello.addrs).map(|a| PeerAddr::from(*a)) {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    let peer = profile.peers().update(|peers| {
        if let Some(p) = peers.iter_mut().find(|p| p.node_id == hello.node_id) {
            p.last_seen = Some(unix_now());
            p.noise_key = Some(NoiseKey(hello.static_key));
            return Ok(p.clone());
        }
        let name = name.unwrap_or_else(|| suggest_name(&hello.display_name, peers));
        let mut peer = Peer::new(name, hello.node_id, addrs, unix_now());
        peer.last_seen = Some(unix_now());
        peer.noise_key = Some(NoiseKey(hello.static_key));
        peers.push(peer.clone());
        Ok(peer)
    })?;
    status!(
        "paired with '{}' ({}): you now trust each other; it may call {} here (grant more with `alp peer allow {} VERB`)",
        peer.name,
        peer.node_id,
        super::peer::verbs(&peer),
        peer.name
    );
    if ctx.json { ctx.print_json(&peer) } else { ctx.print(peer.name.as_str()) }
}
