//! One module per command group; each turns parsed arguments into calls on
//! the library crates and prints the result.

mod ask;
pub(crate) mod blob;
mod chat;
pub(crate) mod completions;
mod config;
mod discover;
mod doctor;
pub(crate) mod mcp;
pub(crate) mod model;
mod net;
mod pairing;
mod peer;
mod ping;
mod profile;
pub(crate) mod receive;
pub(crate) mod send;
mod serve;
mod serve_unit;
mod status;
pub(crate) mod wg;
pub(crate) mod wg_dashboard;
pub(crate) mod wg_govern;
pub(crate) mod wg_graph;
pub(crate) mod wg_plan;

use crate::cli::Command;
use crate::ctx::Ctx;
use crate::error::CliResult;

pub(crate) fn run(ctx: &Ctx, command: Command) -> CliResult {
    match command {
        Command::Init => profile::init(ctx),
        Command::Id => profile::id(ctx),
        Command::Profile(cmd) => profile::run(ctx, cmd),
        Command::Config(cmd) => config::run(ctx, cmd),
        Command::Peer(cmd) => peer::run(ctx, cmd),
        Command::Blob(cmd) => blob::run(ctx, cmd),
        Command::Serve { listen, install_unit: true } => serve_unit::install(ctx, listen),
        Command::Serve { listen, .. } => serve::run(ctx, listen),
        Command::Invite { ttl, uses, addrs } => pairing::invite(ctx, ttl, uses, addrs),
        Command::Pair { ticket, name } => pairing::pair(ctx, &ticket, name),
        Command::Chat(args) => chat::run(ctx, args),
        Command::Ask(args) => ask::run(ctx, args),
        Command::Sessions(cmd) => chat::sessions(ctx, cmd),
        Command::Send(args) => send::run(ctx, args),
        Command::Receive(args) => receive::run(ctx, args),
        Command::Completions(args) => completions::completions(&args),
        Command::Man => completions::man(),
        Command::Mcp(cmd) => mcp::run(ctx, cmd),
        Command::Model(cmd) => model::run(ctx, cmd),
        Command::Status => status::run(ctx),
        Command::Doctor => doctor::run(ctx),
        Command::Wg(cmd) => wg::run(ctx, cmd),
        Command::Ui(args) => wg::run(ctx, wg::WgCmd::Dashboard(args)),
    }
}
