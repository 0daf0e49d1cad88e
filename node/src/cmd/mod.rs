//! One module per command group; each turns parsed arguments into calls on
//! the library crates and prints the result.

mod config;
mod peer;
mod profile;

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
    }
}
