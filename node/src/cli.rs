//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use alp_profiles::ProfileName;
use alp_profiles::peers::PeerAddr;
use alp_protocol::ticket::Ticket;
use alp_protocol::{NodeId, Verb};
use clap::{Args, Parser, Subcommand};

/// The version and the commit it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("ALP_COMMIT"), ")");

/// alp: a peer-to-peer, local-first agent node.
#[derive(Debug, Parser)]
#[command(name = "alp", version = VERSION, propagate_version = true, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags accepted by every command (listed after each command's own).
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct Global {
    /// Home directory holding all profiles [default: the platform data dir]
    #[arg(long, global = true, env = "ALP_HOME", value_name = "DIR")]
    pub(crate) home: Option<PathBuf>,
    /// Profile to act as [default: the one `alp profile use` chose, else personal]
    #[arg(short, long, global = true, env = "ALP_PROFILE", value_name = "NAME")]
    pub(crate) profile: Option<ProfileName>,
    /// Print the result as JSON on stdout
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Override a config value for this run (repeatable), e.g. --set log.level=debug
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub(crate) overrides: Vec<String>,
    /// More diagnostics on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub(crate) verbose: u8,
    /// Quieter stderr: -q drops status lines, progress and warnings (errors remain), -qq drops everything (the exit code tells)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) quiet: u8,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the profile: identity key and config file (never overwrites)
    Init,
    /// Print this profile's node id
    Id,
    /// List, show or remove profiles
    #[command(subcommand)]
    Profile(ProfileCmd),
    /// Inspect the effective configuration
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Manage trusted peers and their permissions
    #[command(subcommand)]
    Peer(PeerCmd),
    /// Content-addressed blobs in this profile's store
    #[command(subcommand)]
    Blob(BlobCmd),
    /// Run this profile's node in the foreground until Ctrl-C or SIGTERM
    Serve {
        /// UDP address to listen on, HOST:PORT (localhost:7118 works; port 0: any free one)
        /// [default: config node.listen: UDP port 7117 on every IPv6 and IPv4 address]
        #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
        listen: Option<SocketAddr>,
        /// Do not serve: write a systemd user unit that serves this profile
        /// at login and restarts it on failure, and say how to enable it
        #[arg(long)]
        install_unit: bool,
    },
    /// Print a pairing ticket for another node to redeem with `alp pair`
    Invite {
        /// How long the ticket stays valid
        #[arg(long, default_value = "10m", value_parser = parse_ttl)]
        ttl: Duration,
        /// How many nodes may redeem it
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        uses: u32,
        /// Address to put in the ticket instead of the running node's (repeatable)
        #[arg(long = "addr", value_name = "HOST:PORT")]
        addrs: Vec<SocketAddr>,
    },
    /// Redeem a ticket from `alp invite`: both nodes then trust each other
    Pair {
        #[arg(help = "The ticket `alp invite` printed on the other node")]
        ticket: Ticket,
        /// Local name for the inviting node [default: its display name]
        #[arg(long)]
        name: Option<ProfileName>,
    },
    /// Talk to a model: `alp chat "PROMPT"` answers once; without a prompt, an interactive session
    Chat(ChatArgs),
    /// Ask a peer's agent: the prompt runs there, with its model, tools and budget
    Ask(AskArgs),
    /// Send a file or folder: to a peer (--to), or as a ticket a trusted peer redeems with `alp receive`
    Send(crate::cmd::send::SendArgs),
    /// Fetch the file or folder a ticket from `alp send` names, and write it out
    Receive(crate::cmd::receive::ReceiveArgs),
    /// MCP servers as tools for this profile's agent, and this node as an MCP server (`alp mcp serve`)
    #[command(subcommand)]
    Mcp(crate::cmd::mcp::McpCmd),
    /// The local model files: `alp model pull` downloads the default one
    #[command(subcommand)]
    Model(crate::cmd::model::ModelCmd),
    /// The profile at a glance: identity, node, peers, blobs, today's spend
    Status,
    /// Check the profile, config, model, provider, sandbox, node and peers; say what to fix
    Doctor,
    /// Print shell completions (bash, zsh, fish, powershell, elvish)
    Completions(crate::cmd::completions::CompletionsArgs),
    /// Print the manual page: `alp man | man -l -`
    Man,
    /// A page on this machine: workgroups' task graphs live, spend, approvals (approve or deny there); prints its address
    Ui(crate::cmd::wg_dashboard::UiArgs),
    /// Workgroups: peer profiles working together on tasks, with a signed log
    #[command(subcommand)]
    Wg(crate::cmd::wg::WgCmd),
    /// Recorded chat sessions
    #[command(subcommand)]
    Sessions(SessionsCmd),
}

#[derive(Debug, Args)]
pub(crate) struct AskArgs {
    /// The peer to ask (it must allow agent.ask for this node)
    pub(crate) peer: String,
    /// The prompt; "-" reads it from stdin
    pub(crate) prompt: String,
    /// Attach piped stdin to the prompt
    #[arg(long)]
    pub(crate) stdin: bool,
    /// System prompt
    #[arg(long, value_name = "TEXT")]
    pub(crate) system: Option<String>,
    /// Print one JSON event per line as the answer arrives
    #[arg(long)]
    pub(crate) stream_json: bool,
    /// Longest wait for the next piece of the answer
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub(crate) wait: Duration,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SessionsCmd {
    /// List this profile's sessions, oldest first
    #[command(visible_alias = "ls")]
    List,
    /// Print one session's messages [default: the latest]
    Show {
        /// Session id, or its short end (`3f9a`) (see `alp sessions list`)
        id: Option<String>,
    },
    /// Delete sessions
    #[command(visible_alias = "remove")]
    Rm {
        /// Session ids, or their short ends
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Delete the sessions not written to for a while
    Prune {
        /// Delete those idle for longer than this (e.g. 30d)
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        older_than: Duration,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ChatArgs {
    /// The prompt: given, it is answered once and alp exits; "-" reads it from stdin.
    /// Without one, an interactive session
    pub(crate) prompt: Option<String>,
    /// Answer the prompt and exit (what a prompt given already means; kept for scripts)
    #[arg(long, requires = "prompt")]
    pub(crate) once: bool,
    /// Attach piped stdin to the prompt (stdin is otherwise never read in one-shot mode)
    #[arg(long, requires = "prompt")]
    pub(crate) stdin: bool,
    /// Attach an MCP resource to the prompt: SERVER:URI, a server of `alp mcp list` (repeatable)
    #[arg(long, value_name = "SERVER:URI", requires = "prompt")]
    pub(crate) resource: Vec<String>,
    /// Cut a prompt too long for the local model's context to fit (the longest message loses its end) instead of refusing it
    #[arg(long)]
    pub(crate) truncate: bool,
    /// System prompt [default: the model's own]
    #[arg(long, value_name = "TEXT")]
    pub(crate) system: Option<String>,
    /// Provider to use: a [providers.NAME] table, openai/anthropic/ollama from the environment, or local
    #[arg(long, value_name = "NAME")]
    pub(crate) provider: Option<String>,
    /// Model name for a remote provider [default: the provider's]
    #[arg(long, value_name = "NAME")]
    pub(crate) model: Option<String>,
    /// GGUF file to run in-process [default: config model.local_path, else the embedded default]
    #[arg(long, value_name = "FILE")]
    pub(crate) model_path: Option<PathBuf>,
    /// Most tokens in the reply [default: config model.max_tokens]
    #[arg(long, value_name = "N")]
    pub(crate) max_tokens: Option<u32>,
    /// Sampling temperature, 0 for greedy [default: config model.temperature]
    #[arg(long, value_name = "T")]
    pub(crate) temperature: Option<f64>,
    /// Sampler seed [default: config model.seed]
    #[arg(long, value_name = "N")]
    pub(crate) seed: Option<u64>,
    /// Where tools read and write files (`.`: here) [default: config agent.workspace, else the profile's workspace]
    #[arg(long, value_name = "DIR")]
    pub(crate) workspace: Option<String>,
    /// Side-effect or privileged tools to allow without asking (comma-separated)
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub(crate) allow_tools: Vec<String>,
    /// Allow every tool without asking
    #[arg(long)]
    pub(crate) yes: bool,
    /// Most US dollars this request may spend (needs the model's price in the prices table of config.toml)
    #[arg(long, value_name = "USD")]
    pub(crate) max_cost: Option<f64>,
    /// Model turns allowed before stopping [default: config agent.max_turns]
    #[arg(long, value_name = "N")]
    pub(crate) max_turns: Option<u32>,
    /// Continue the profile's latest session
    #[arg(long = "continue", conflicts_with_all = ["session", "no_session"])]
    pub(crate) continue_last: bool,
    /// Continue session ID (see `alp sessions list`)
    #[arg(long, value_name = "ID", conflicts_with = "no_session")]
    pub(crate) session: Option<String>,
    /// Record nothing
    #[arg(long)]
    pub(crate) no_session: bool,
    /// Print one JSON event per line as the answer is produced
    #[arg(long, requires = "prompt")]
    pub(crate) stream_json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProfileCmd {
    /// List the profiles in the home directory
    #[command(visible_alias = "ls")]
    List,
    /// Show one profile [default: the current one]
    Show {
        #[arg(help = "The profile [default: the current one]")]
        name: Option<ProfileName>,
    },
    /// Make a profile the one commands act as when none is named
    Use {
        #[arg(help = "The profile (see `alp profile list`)")]
        name: ProfileName,
    },
    /// Delete a profile, identity included (needs --yes)
    #[command(visible_alias = "rm")]
    Remove {
        #[arg(help = "The profile to delete")]
        name: ProfileName,
        /// Really delete; without it, only say what would be deleted
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BlobCmd {
    /// Import a file, a folder or standard input; prints its hash (BLAKE3, as `b3sum` prints it)
    Add {
        /// A file; a folder (each file a blob, plus a manifest naming them); or - for stdin
        path: PathBuf,
        /// The name to record [default: the file's or folder's own]
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        how: AddHow,
    },
    /// List stored blobs: hash, size, name, where each came from
    #[command(visible_alias = "list")]
    Ls {
        /// Also list partial blobs: how much of each is verified and kept
        #[arg(long)]
        partial: bool,
        /// Only blobs shared with peers or by tickets, and with whom
        #[arg(long, conflicts_with = "received")]
        shared: bool,
        /// Only blobs received from peers, and from whom
        #[arg(long)]
        received: bool,
    },
    /// Write a blob's bytes to stdout
    Cat {
        #[arg(help = "A blob's hash, or a unique prefix of 4+ hex digits")]
        hash: String,
    },
    /// Write a blob (or a folder) out: to a file, into a folder, or - for stdout
    Export {
        #[arg(help = "A blob's hash, or a unique prefix of 4+ hex digits")]
        hash: String,
        /// A new file; an existing folder (written inside, under the blob's name); - for stdout
        dest: PathBuf,
        /// Replace files that exist
        #[arg(long)]
        force: bool,
    },
    /// Delete a blob (and any partial copy of it)
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(help = "A blob's hash, or a unique prefix of 4+ hex digits")]
        hash: String,
    },
    /// Remove partial blobs untouched for longer than blob.partial_ttl
    Gc {
        /// Remove those idle for longer than this instead (0s: all that no transfer is writing)
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        older_than: Option<Duration>,
    },
    /// Re-hash blobs from disk and check their hash trees (all, or one)
    Verify {
        #[arg(help = "A blob's hash, or a unique prefix of 4+ hex digits [default: every blob]")]
        hash: Option<String>,
    },
    /// Push a blob to a peer: a file or folder (imported first) or a stored hash; prints the hash
    Put {
        /// A file or folder path, or the hash (or a unique prefix) of a stored blob
        what: String,
        /// The peer to push to (it must allow you blob.put)
        #[arg(long, value_name = "PEER")]
        to: String,
    },
    /// Fetch a blob (or a folder) from a peer, verifying it as it arrives
    Get {
        #[arg(help = "The blob's hash (a prefix works for one partly here)")]
        hash: String,
        /// The peer to fetch from (it must allow you blob.get and share the blob); several
        /// (a,b,c) fetch disjoint parts from each at once; any: every trusted peer that shares it
        #[arg(long, value_name = "PEER[,PEER...]|any")]
        from: String,
        /// Also write it out: a new file, an existing folder (written inside), or - for stdout
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
        /// Replace files that exist
        #[arg(long)]
        force: bool,
        /// Fetch only these bytes (START..END, END exclusive; START.. to the end)
        #[arg(long, value_name = "START..END", value_parser = parse_range)]
        range: Option<(u64, u64)>,
    },
    /// Let a peer (or every trusted peer allowed blob.get) fetch a blob
    Share {
        #[arg(help = "A blob's hash, or a unique prefix of 4+ hex digits")]
        hash: String,
        #[arg(long = "with", value_name = "PEER|all")]
        with: String,
    },
    /// Stop sharing a blob with a peer, with everyone (all), or by its tickets (tickets)
    Unshare {
        #[arg(help = "A blob's hash, or a unique prefix of 4+ hex digits")]
        hash: String,
        #[arg(long = "with", value_name = "PEER|all|tickets")]
        with: String,
    },
    /// Who sent a blob, and when; every receipt's signature is re-verified
    Receipt {
        #[arg(help = "A blob's hash, or a unique prefix of 4+ hex digits")]
        hash: String,
    },
}

/// How files are added: copied into the store, or kept where they are.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct AddHow {
    /// Keep the files where they are: the store records their path, size, time and hash tree [default: blob.reference]
    #[arg(long, conflicts_with = "copy")]
    pub(crate) reference: bool,
    /// Copy the files into the store, whatever blob.reference says
    #[arg(long)]
    pub(crate) copy: bool,
}

impl AddHow {
    /// Whether to add by reference, given the config's default.
    pub(crate) fn by_reference(self, default: bool) -> bool {
        self.reference || (default && !self.copy)
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCmd {
    /// Print every setting, its value and the layer that set it
    Show,
    /// Set a key in this profile's config.toml (checked first; comments kept)
    Set {
        /// The key, e.g. model.max_tokens (`alp config show` lists them)
        key: String,
        /// The value: a number, true/false, or text
        value: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PeerCmd {
    /// Trust a peer (it may call link.ping and link.info until allowed more)
    Add {
        #[arg(help = "The name to know it by here")]
        name: ProfileName,
        #[arg(help = "Its node id (`alp id` on that node prints it)")]
        node_id: NodeId,
        /// Where to reach it (repeatable)
        #[arg(long = "addr", value_name = "HOST:PORT")]
        addrs: Vec<PeerAddr>,
    },
    /// List trusted peers
    #[command(visible_alias = "ls")]
    List,
    /// Show one peer
    Show {
        #[arg(help = "The peer's name (see `alp peer list`)")]
        name: String,
    },
    /// Stop trusting a peer
    #[command(visible_alias = "rm")]
    Remove {
        #[arg(help = "The peer's name (see `alp peer list`)")]
        name: String,
    },
    /// Give a peer another name here (permissions, keys and addresses stay)
    Rename {
        #[arg(help = "The peer's name (see `alp peer list`)")]
        name: String,
        /// Its new name
        new_name: ProfileName,
    },
    /// Allow a peer to call these verbs on this node
    Allow {
        #[arg(help = "The peer's name (see `alp peer list`)")]
        name: String,
        #[arg(required = true, value_name = "VERB")]
        #[arg(help = "Verbs, e.g. blob.get blob.put agent.ask (docs/PROTOCOL.md lists them)")]
        verbs: Vec<Verb>,
    },
    /// List the alp nodes on the local network (mDNS), naming trusted peers
    Discover {
        /// How long to listen
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        wait: Duration,
    },
    /// Measure round trips to a peer over an authenticated link
    Ping {
        #[arg(help = "The peer's name (see `alp peer list`)")]
        name: String,
        /// Number of pings
        #[arg(short = 'c', long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
        count: u32,
        /// Time between pings
        #[arg(short = 'i', long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// Dial from this command even when the profile's node is running
        /// (by default the node sends the pings over the link it keeps)
        #[arg(long)]
        direct: bool,
    },
    /// Ask a peer who it is and what this node may call there
    Info {
        #[arg(help = "The peer's name (see `alp peer list`)")]
        name: String,
        /// Dial from this command even when the profile's node is running
        #[arg(long)]
        direct: bool,
    },
    /// Stop allowing a peer to call these verbs
    Deny {
        #[arg(help = "The peer's name (see `alp peer list`)")]
        name: String,
        #[arg(required = true, value_name = "VERB")]
        #[arg(help = "Verbs, e.g. blob.get blob.put agent.ask (docs/PROTOCOL.md lists them)")]
        verbs: Vec<Verb>,
    },
    /// Change a peer's addresses, or what its agent.ask may use here
    Set {
        #[arg(help = "The peer's name (see `alp peer list`)")]
        name: String,
        /// Where to reach it from now on (repeatable; replaces the known addresses)
        #[arg(long = "addr", value_name = "HOST:PORT")]
        addrs: Vec<PeerAddr>,
        /// Tools the model may use for this peer (comma-separated; "" for none)
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        ask_tools: Option<Vec<String>>,
        /// Tokens its asks may spend per UTC day
        #[arg(long, value_name = "N")]
        ask_daily_tokens: Option<u64>,
        /// US dollars its asks may spend per UTC day (0: only the profile's caps)
        #[arg(long, value_name = "USD")]
        ask_daily_cost: Option<f64>,
        /// Grant tools that run programs without asking (see what it means first)
        #[arg(long)]
        yes: bool,
    },
}

/// The longest a pairing ticket may stay valid.
const MAX_TICKET_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// A ticket's lifetime: at least a second, at most 30 days.
fn parse_ttl(s: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if ttl < Duration::from_secs(1) || ttl > MAX_TICKET_TTL {
        return Err(format!("'{s}' is not between 1s and 30d: a ticket must live a moment and not forever"));
    }
    Ok(ttl)
}

/// A listening address: an IP address and port, or a host name that
/// resolves (`localhost:7118`), the first address it resolves to.
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    use std::net::ToSocketAddrs;
    let mut addrs = s.to_socket_addrs().map_err(|e| format!("'{s}' is not HOST:PORT that resolves here: {e}"))?;
    addrs.next().ok_or_else(|| format!("'{s}' resolves to no address"))
}

/// `START..END` or `START..` (to the end), in bytes.
fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("'{s}' is not a byte range: write START..END (END exclusive) or START..");
    let (a, b) = s.split_once("..").ok_or_else(bad)?;
    let start = a.trim().parse::<u64>().map_err(|_| bad())?;
    let end = if b.trim().is_empty() { u64::MAX } else { b.trim().parse::<u64>().map_err(|_| bad())? };
    if start >= end {
        return Err(format!("'{s}' is an empty range: END must be above START"));
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every positional argument of every command says what it is.
    #[test]
    fn every_positional_argument_is_described() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_positionals() {
                if arg.get_help().is_none() {
                    missing.push(format!("{path} <{}>", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "alp", &mut missing);
        assert!(missing.is_empty(), "positional arguments without a description: {missing:#?}");
    }

    #[test]
    fn the_parser_is_consistent() {
        Cli::command().debug_assert();
    }
}
