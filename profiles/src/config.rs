//! Layered configuration: built-in defaults < the profile's `config.toml` <
//! environment `ALP__SECTION__KEY` < command-line overrides.
//!
//! Every key is declared once in [`KEYS`] with its default and its type.
//! Each layer's values are checked against that type as they are read, so an
//! error names the layer (file, variable or flag), the key and the reason.
//! The merged table then deserialises into the typed [`Config`], and
//! [`Resolved::entries`] records which layer set each value.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use toml::{Table, Value};

/// The effective configuration of a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How this node presents itself and where it listens.
    pub node: NodeConfig,
    /// Limits and timeouts of the peer link.
    pub link: LinkConfig,
    /// The blob store.
    pub blob: BlobConfig,
    /// Text generation, and the local model.
    pub model: ModelConfig,
    /// The tool loop.
    pub agent: AgentConfig,
    /// Spending caps.
    pub budget: BudgetConfig,
    /// Workgroups this profile is in.
    pub workgroup: WorkgroupConfig,
    /// Diagnostics on stderr.
    pub log: LogConfig,
}

/// `[workgroup]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkgroupConfig {
    /// How often a serving node catches up with the other members.
    pub sync_interval: HumanDuration,
    /// Peers whose invitations to a workgroup are accepted at once.
    pub auto_join: Vec<String>,
    /// The tools this profile runs for groups' tasks (its card's).
    pub tools: Vec<String>,
    /// Tasks this profile works on at once (its card's capacity).
    pub capacity: u8,
    /// A short bio for its capability card.
    pub bio: String,
    /// Most tasks a model's proposed graph may have (`alp wg run --plan`).
    pub plan_max_tasks: u16,
    /// Most tasks one task of a proposed graph may wait for, or be waited on by.
    pub plan_max_width: u16,
    /// Longest chain of tasks in a proposed graph.
    pub plan_max_depth: u16,
}

/// `[blob]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobConfig {
    /// The largest blob a peer may push to this node, in bytes.
    pub max_size: u64,
    /// Bytes of blobs each peer may have stored on this node.
    pub peer_quota: u64,
    /// Unfinished pushes each peer may have on this node at once.
    pub partials_per_peer: u32,
    /// Most bytes of blobs (complete and partial) this profile keeps; 0: no limit.
    pub store_quota: u64,
    /// Bytes of the disk that blobs must leave free.
    pub min_free: u64,
    /// Partial blobs untouched for this long are removed by `alp blob gc`
    /// and by a serving node.
    pub partial_ttl: HumanDuration,
    /// Add files by reference (kept where they are) rather than as copies.
    pub reference: bool,
}

/// `[budget]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Most US dollars this profile may spend per UTC day; 0: no cap.
    pub daily_cost: f64,
    /// Most tokens (input + output) per UTC day; 0: no cap.
    pub daily_tokens: u64,
}

/// `[agent]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Model turns allowed per request before the loop stops.
    pub max_turns: u32,
    /// Side-effect and privileged tools allowed without asking.
    pub allow_tools: Vec<String>,
    /// Tools never offered to the model on this profile.
    pub deny_tools: Vec<String>,
    /// Longest a `shell` tool call may run.
    pub shell_timeout: HumanDuration,
    /// Run `shell` programs in a sandbox (bubblewrap) when one is
    /// installed; for peers' asks a sandbox is always required.
    pub shell_sandbox: bool,
    /// Programs run by `shell` may use the network.
    pub shell_network: bool,
    /// Asks one peer may have running on this node at a time.
    pub asks_per_peer: u32,
    /// Where this profile's own runs work with files: empty for the
    /// profile's `workspace/`, `.` for the current directory, or a path.
    /// (Peers' asks always use the profile's.)
    pub workspace: String,
}

/// `[model]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Default provider name; empty: the environment's one provider, else local.
    pub provider: String,
    /// Attempts per provider request on 429, 5xx and timeouts.
    pub max_attempts: u32,
    /// Time allowed for one provider request.
    pub timeout: HumanDuration,
    /// Longest silence from a provider before the request is retried (or,
    /// mid-answer, fails).
    pub idle_timeout: HumanDuration,
    /// GGUF file of the local model; empty: the default model in the home's `models` dir.
    pub local_path: String,
    /// Most tokens generated per reply.
    pub max_tokens: u32,
    /// Sampling temperature; 0 is greedy and deterministic.
    pub temperature: f64,
    /// Nucleus sampling mass (used when temperature > 0).
    pub top_p: f64,
    /// Seed of the sampler (used when temperature > 0).
    pub seed: u64,
}

/// `[link]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// Authenticated connections served at once; further ones are refused.
    pub max_connections: u32,
    /// Authenticated connections one peer may have at once.
    pub connections_per_peer: u32,
    /// Connections not authenticated yet, at once (the oldest gives way).
    pub max_pending: u32,
    /// Connections not authenticated yet from one address (IPv6: one /64).
    pub pending_per_address: u32,
    /// Time a new connection has to send its first handshake frame.
    pub hello_timeout: HumanDuration,
    /// Requests one peer may have running at once.
    pub requests_per_peer: u32,
    /// Request bytes in flight on this node, from all peers.
    pub inflight_bytes: u64,
    /// Request bytes in flight from one peer.
    pub peer_inflight_bytes: u64,
    /// Time allowed from a new connection to a finished handshake.
    pub handshake_timeout: HumanDuration,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: HumanDuration,
    /// Time allowed for one request or response to arrive.
    pub request_timeout: HumanDuration,
    /// Largest request or response frame, in bytes.
    pub max_frame: u32,
    /// Concurrent request streams per connection.
    pub max_streams: u32,
    /// Sustained requests per second allowed from one peer.
    pub requests_per_second: u32,
    /// Requests one peer may send in a burst.
    pub request_burst: u32,
    /// Failed pairing attempts allowed per minute from one address.
    pub pair_failures_per_minute: u32,
    /// How long `alp serve` waits for open requests when stopping.
    pub shutdown_grace: HumanDuration,
}

/// A duration written for people: `10s`, `500ms`, `2m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub std::time::Duration);

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map(HumanDuration).map_err(|e| {
            serde::de::Error::custom(format!("`{s}` is not a duration ({e}); write e.g. 10s, 500ms or 2m"))
        })
    }
}

/// `[node]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Name shown to peers; empty means the profile name.
    pub display_name: String,
    /// UDP address `alp serve` binds.
    pub listen: SocketAddr,
    /// Announce this node on the local network and find trusted peers
    /// there (mDNS).
    pub discovery: bool,
    /// Trusted peers (by name) that introduce this node to others behind
    /// NATs (`link.meet`): the serving node waits for introductions there,
    /// and reaches peers it cannot dial through them.
    pub rendezvous: Vec<String>,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Default level when neither `-v`/`-q` nor `RUST_LOG` is given.
    pub level: LogLevel,
}

/// A tracing level name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// The default UDP port of `alp serve`.
pub const DEFAULT_PORT: u16 = 7117;

/// One configuration key: its dotted name, meaning, default and type check.
#[derive(Debug)]
pub struct KeySpec {
    /// `section.key`.
    pub key: &'static str,
    /// One line for the commented template and `config show`.
    pub doc: &'static str,
    default: fn() -> Value,
    check: fn(&Value) -> Result<(), String>,
}

fn check<T: DeserializeOwned>(v: &Value) -> Result<(), String> {
    v.clone().try_into::<T>().map(drop).map_err(|e| e.message().to_owned())
}

fn string(s: &str) -> Value {
    Value::String(s.to_owned())
}

/// Every configuration key, in file order.
pub const KEYS: &[KeySpec] = &[
    KeySpec {
        key: "node.display_name",
        doc: "Name shown to peers (empty: the profile name).",
        default: || string(""),
        check: check::<String>,
    },
    KeySpec {
        key: "node.listen",
        doc: "UDP address `alp serve` listens on (port 0 picks a free port).",
        default: || string("[::]:7117"),
        check: check::<SocketAddr>,
    },
    KeySpec {
        key: "node.discovery",
        doc: "Announce the serving node on the local network (mDNS, under a tag only trusted peers can tie to it) and find trusted peers there.",
        default: || Value::Boolean(true),
        check: check::<bool>,
    },
    KeySpec {
        key: "node.rendezvous",
        doc: "Trusted peers (names) with reachable addresses that introduce this node to peers behind NATs, for hole punching (each must allow this node link.meet).",
        default: || Value::Array(Vec::new()),
        check: check::<Vec<String>>,
    },
    KeySpec {
        key: "link.max_connections",
        doc: "Authenticated connections served at once; further ones are refused.",
        default: || Value::Integer(256),
        check: check::<u32>,
    },
    KeySpec {
        key: "link.connections_per_peer",
        doc: "Authenticated connections one peer may have at once.",
        default: || Value::Integer(4),
        check: check::<u32>,
    },
    KeySpec {
        key: "link.max_pending",
        doc: "Connections not authenticated yet, at once; when full, the oldest gives way.",
        default: || Value::Integer(128),
        check: check::<u32>,
    },
    KeySpec {
        key: "link.pending_per_address",
        doc: "Connections not authenticated yet from one address (IPv6: one /64).",
        default: || Value::Integer(16),
        check: check::<u32>,
    },
    KeySpec {
        key: "link.hello_timeout",
        doc: "Time a new connection has to finish QUIC and send its first handshake frame.",
        default: || string("3s"),
        check: check::<HumanDuration>,
    },
    KeySpec {
        key: "link.requests_per_peer",
        doc: "Requests one peer may have running at once; more wait.",
        default: || Value::Integer(32),
        check: check::<u32>,
    },
    KeySpec {
        key: "link.inflight_bytes",
        doc: "Request bytes in flight on this node, from all peers.",
        default: || Value::Integer(64 << 20),
        check: check::<u64>,
    },
    KeySpec {
        key: "link.peer_inflight_bytes",
        doc: "Request bytes in flight from one peer.",
        default: || Value::Integer(16 << 20),
        check: check::<u64>,
    },
    KeySpec {
        key: "link.handshake_timeout",
        doc: "Time allowed from a new connection to a finished handshake.",
        default: || string("10s"),
        check: check::<HumanDuration>,
    },
    KeySpec {
        key: "link.idle_timeout",
        doc: "A connection with no traffic for this long is closed.",
        default: || string("30s"),
        check: check::<HumanDuration>,
    },
    KeySpec {
        key: "link.request_timeout",
        doc: "Time allowed for one request or response to arrive.",
        default: || string("30s"),
        check: check::<HumanDuration>,
    },
    KeySpec {
        key: "link.max_frame",
        doc: "Largest request or response frame, in bytes.",
        default: || Value::Integer(1024 * 1024),
        check: check::<u32>,
    },
    KeySpec {
        key: "link.max_streams",
        doc: "Concurrent request streams per connection.",
        default: || Value::Integer(100),
        check: check::<u32>,
    },
    KeySpec {
        key: "link.requests_per_second",
        doc: "Sustained requests per second allowed from one peer.",
        default: || Value::Integer(100),
        check: check::<u32>,
    },
    KeySpec {
        key: "link.request_burst",
        doc: "Requests one peer may send in a burst.",
        default: || Value::Integer(200),
        check: check::<u32>,
    },
    KeySpec {
        key: "link.pair_failures_per_minute",
        doc: "Failed pairing attempts allowed per minute from one address.",
        default: || Value::Integer(5),
        check: check::<u32>,
    },
    KeySpec {
        key: "link.shutdown_grace",
        doc: "How long `alp serve` waits for open requests when stopping.",
        default: || string("5s"),
        check: check::<HumanDuration>,
    },
    KeySpec {
        key: "blob.max_size",
        doc: "The largest blob a peer may push to this node, in bytes.",
        default: || Value::Integer(16 << 30),
        check: check::<u64>,
    },
    KeySpec {
        key: "blob.peer_quota",
        doc: "Bytes of blobs each peer may have stored on this node (what it pushed, complete and partial).",
        default: || Value::Integer(64 << 30),
        check: check::<u64>,
    },
    KeySpec {
        key: "blob.partials_per_peer",
        doc: "Unfinished pushes each peer may have on this node at once.",
        default: || Value::Integer(16),
        check: check::<u32>,
    },
    KeySpec {
        key: "blob.store_quota",
        doc: "Most bytes of blobs (complete and partial) this profile keeps; 0: no limit.",
        default: || Value::Integer(100 << 30),
        check: check::<u64>,
    },
    KeySpec {
        key: "blob.min_free",
        doc: "Bytes of the disk that blobs must leave free; a blob that would eat into them is refused.",
        default: || Value::Integer(1 << 30),
        check: check::<u64>,
    },
    KeySpec {
        key: "blob.partial_ttl",
        doc: "Partial blobs (interrupted transfers) untouched for this long are garbage-collected.",
        default: || string("7d"),
        check: check::<HumanDuration>,
    },
    KeySpec {
        key: "blob.reference",
        doc: "`alp blob add` and `alp send` keep files where they are (by reference) instead of copying them; --copy overrides.",
        default: || Value::Boolean(false),
        check: check::<bool>,
    },
    KeySpec {
        key: "model.provider",
        doc: "Default provider: a [providers.NAME] table, or openai/anthropic/ollama from the environment, or local.",
        default: || string(""),
        check: check::<String>,
    },
    KeySpec {
        key: "model.max_attempts",
        doc: "Attempts per provider request on 429, 5xx and timeouts (exponential backoff with jitter).",
        default: || Value::Integer(3),
        check: check::<u32>,
    },
    KeySpec {
        key: "model.timeout",
        doc: "Time allowed for one provider request, from sending it (or, on the local model, from reading the prompt's last slice) to the last token.",
        default: || string("120s"),
        check: check::<HumanDuration>,
    },
    KeySpec {
        key: "model.idle_timeout",
        doc: "Longest silence from a provider before the request is retried (mid-answer: an error).",
        default: || string("90s"),
        check: check::<HumanDuration>,
    },
    KeySpec {
        key: "model.local_path",
        doc: "GGUF file of the local model (empty: SmolLM2-135M-Instruct in the home's models dir).",
        default: || string(""),
        check: check::<String>,
    },
    KeySpec {
        key: "model.max_tokens",
        doc: "Most tokens generated per reply.",
        default: || Value::Integer(512),
        check: check::<u32>,
    },
    KeySpec {
        key: "model.temperature",
        doc: "Sampling temperature; 0 is greedy and deterministic.",
        default: || Value::Float(0.0),
        check: check::<f64>,
    },
    KeySpec {
        key: "model.top_p",
        doc: "Nucleus sampling mass, used when temperature > 0.",
        default: || Value::Float(0.95),
        check: check::<f64>,
    },
    KeySpec {
        key: "model.seed",
        doc: "Seed of the sampler, used when temperature > 0.",
        default: || Value::Integer(0),
        check: check::<u64>,
    },
    KeySpec {
        key: "agent.max_turns",
        doc: "Model turns allowed per request before the tool loop stops.",
        default: || Value::Integer(8),
        check: check::<u32>,
    },
    KeySpec {
        key: "agent.allow_tools",
        doc: "Side-effect and privileged tools run without asking, e.g. [\"write_file\"].",
        default: || Value::Array(Vec::new()),
        check: check::<Vec<String>>,
    },
    KeySpec {
        key: "agent.deny_tools",
        doc: "Tools never offered to the model on this profile, e.g. [\"shell\"].",
        default: || Value::Array(Vec::new()),
        check: check::<Vec<String>>,
    },
    KeySpec {
        key: "agent.shell_timeout",
        doc: "Longest a shell tool call may run.",
        default: || string("60s"),
        check: check::<HumanDuration>,
    },
    KeySpec {
        key: "agent.shell_sandbox",
        doc: "Run shell programs in a sandbox (bubblewrap) when one is installed; peers' asks always need one.",
        default: || Value::Boolean(true),
        check: check::<bool>,
    },
    KeySpec {
        key: "agent.shell_network",
        doc: "Programs run by the shell tool may use the network (in the sandbox, no network otherwise).",
        default: || Value::Boolean(false),
        check: check::<bool>,
    },
    KeySpec {
        key: "agent.workspace",
        doc: "Where this profile's own runs read and write files: empty for <profile>/workspace, `.` for the current directory, or a path. Peers' asks always use <profile>/workspace.",
        default: || string(""),
        check: check::<String>,
    },
    KeySpec {
        key: "agent.asks_per_peer",
        doc: "Asks (agent.ask) one peer may have running on this node at a time.",
        default: || Value::Integer(1),
        check: check::<u32>,
    },
    KeySpec {
        key: "budget.daily_cost",
        doc: "Most US dollars this profile may spend on models per UTC day (0: no cap; prices in [prices]).",
        default: || Value::Float(0.0),
        check: check::<f64>,
    },
    KeySpec {
        key: "budget.daily_tokens",
        doc: "Most tokens (input + output) per UTC day (0: no cap).",
        default: || Value::Integer(0),
        check: check::<u64>,
    },
    KeySpec {
        key: "workgroup.sync_interval",
        doc: "How often a serving node catches up with the other members of its workgroups.",
        default: || string("10s"),
        check: check::<HumanDuration>,
    },
    KeySpec {
        key: "workgroup.auto_join",
        doc: "Peers (names) whose invitations to a workgroup are accepted at once, e.g. [\"laptop\"].",
        default: || Value::Array(Vec::new()),
        check: check::<Vec<String>>,
    },
    KeySpec {
        key: "workgroup.tools",
        doc: "Tools this profile runs for workgroup tasks, each in the task's own workspace.",
        default: || {
            let tools = ["read_file", "list_dir", "search_files", "write_file", "edit_file"];
            Value::Array(tools.iter().map(|t| string(t)).collect())
        },
        check: check::<Vec<String>>,
    },
    KeySpec {
        key: "workgroup.capacity",
        doc: "Workgroup tasks this profile works on at once (1 to 255).",
        default: || Value::Integer(1),
        check: check::<u8>,
    },
    KeySpec {
        key: "workgroup.bio",
        doc: "A short bio for this profile's capability card in workgroups.",
        default: || string(""),
        check: check::<String>,
    },
    KeySpec {
        key: "workgroup.plan_max_tasks",
        doc: "Most tasks a model's proposed graph may have (`alp wg run --plan`; at most 256).",
        default: || Value::Integer(16),
        check: check::<u16>,
    },
    KeySpec {
        key: "workgroup.plan_max_width",
        doc: "Most tasks one task of a proposed graph may wait for, or be waited on by.",
        default: || Value::Integer(8),
        check: check::<u16>,
    },
    KeySpec {
        key: "workgroup.plan_max_depth",
        doc: "Longest chain of tasks in a proposed graph.",
        default: || Value::Integer(8),
        check: check::<u16>,
    },
    KeySpec {
        key: "log.level",
        doc: "Log level on stderr: off, error, warn, info, debug or trace (-v/-q and RUST_LOG override).",
        default: || string("warn"),
        check: check::<LogLevel>,
    },
];

/// " (did you mean `x`?)" for the known key closest to `key`, if close.
fn near_key(key: &str) -> String {
    crate::suggest::closest(key, KEYS.iter().map(|k| k.key))
        .map_or_else(String::new, |k| format!(" (did you mean `{k}`?)"))
}

fn spec(key: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|s| s.key == key)
}

fn known_keys() -> String {
    KEYS.iter().map(|s| s.key).collect::<Vec<_>>().join(", ")
}

/// Which layer set a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The profile's config file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Cli(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(var) => write!(f, "env {var}"),
            Source::Cli(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// The configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Others than its owner may write the config file.
    #[error(transparent)]
    Unsafe(#[from] crate::tomlfile::FileError),
    /// The config file exists but cannot be read.
    #[error("cannot read config file {path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}fix the file (or move it aside and run `alp init` for a fresh one)", path = path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A layer names a key alp does not know.
    #[error("{layer}: unknown config key `{key}`{} (known keys: {known})", near_key(key), known = known_keys())]
    UnknownKey {
        /// Where the key came from.
        layer: Source,
        /// The key as written.
        key: String,
    },
    /// A layer gives a key a value of the wrong type or form.
    #[error("{layer}: invalid value for `{key}`: {reason}")]
    InvalidValue {
        /// Where the value came from.
        layer: Source,
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A command-line override is not `section.key=value`.
    #[error("invalid override `{0}`: expected section.key=value, e.g. --set node.listen=127.0.0.1:0")]
    BadOverride(String),
}

/// One effective setting and where it came from.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `section.key`.
    pub key: &'static str,
    /// The effective value.
    pub value: Value,
    /// The layer that set it.
    pub source: Source,
}

/// The merged configuration and the provenance of each value.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The typed configuration.
    pub config: Config,
    /// Every key, in [`KEYS`] order.
    pub entries: Vec<Entry>,
    /// The `[providers.NAME]` tables of the config file.
    pub providers: BTreeMap<String, ProviderSpec>,
    /// The `[prices]` table: model name → price.
    pub prices: BTreeMap<String, Price>,
    /// The `[mcp.NAME]` tables: MCP servers whose tools the agent may use.
    pub mcp: BTreeMap<String, crate::mcp::McpSpec>,
}

/// What a model costs, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million input (prompt) tokens.
    pub input: f64,
    /// Per million output tokens.
    pub output: f64,
}

/// One `[providers.NAME]` table: a model endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// The wire format it speaks.
    pub kind: ProviderKind,
    /// Endpoint root, e.g. `http://127.0.0.1:11434/v1` for Ollama.
    pub base_url: Option<String>,
    /// Model name sent to the endpoint (`--model` overrides).
    pub model: Option<String>,
    /// Environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// File holding the API key (must not be readable by others).
    pub api_key_file: Option<PathBuf>,
    /// Provider to try when this one is unreachable or keeps failing.
    pub fallback: Option<String>,
    /// Attempts per request on 429, 5xx and timeouts [default: model.max_attempts].
    pub max_attempts: Option<u32>,
}

/// The wire formats alp speaks to model providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI-compatible chat completions (OpenAI, Ollama, llama.cpp, vLLM, LM Studio, OpenRouter).
    Openai,
    /// The Anthropic Messages API.
    Anthropic,
}

/// The inputs of [`load`], one per layer above the defaults.
#[derive(Debug, Default)]
pub struct Layers<'a> {
    /// The profile's `config.toml`; a missing file is an empty layer.
    pub file: Option<&'a Path>,
    /// Environment variables (all of them; only `ALP__*` are read).
    pub env: Vec<(String, String)>,
    /// Command-line overrides, in order.
    pub cli: Vec<Override>,
}

/// One command-line override: `assignment` is `section.key=value`, `flag`
/// is how the user wrote it (shown as the value's source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The flag as written, e.g. `--listen 127.0.0.1:0`.
    pub flag: String,
    /// `section.key=value`.
    pub assignment: String,
}

impl Override {
    /// A `--set section.key=value` override.
    pub fn set(arg: &str) -> Self {
        Self { flag: format!("--set {arg}"), assignment: arg.to_owned() }
    }
}

/// Merges the layers over the defaults and checks every value.
pub fn load(layers: &Layers<'_>) -> Result<Resolved, ConfigError> {
    let mut entries: Vec<Entry> =
        KEYS.iter().map(|s| Entry { key: s.key, value: (s.default)(), source: Source::Default }).collect();
    let mut set = |key: &str, value: Value, source: Source| -> Result<(), ConfigError> {
        let Some(spec) = spec(key) else {
            return Err(ConfigError::UnknownKey { layer: source, key: key.to_owned() });
        };
        if let Err(reason) = (spec.check)(&value) {
            return Err(ConfigError::InvalidValue { layer: source, key: key.to_owned(), reason });
        }
        if let Some(e) = entries.iter_mut().find(|e| e.key == spec.key) {
            *e = Entry { key: spec.key, value, source };
        }
        Ok(())
    };
    let mut file = FileLayer::default();
    if let Some(path) = layers.file {
        file = read_file(path)?;
        for (key, value) in std::mem::take(&mut file.values) {
            set(&key, value, Source::File(path.to_owned()))?;
        }
    }
    for (var, raw) in &layers.env {
        if let Some(key) = env_key(var) {
            let source = Source::Env(var.clone());
            let value = typed(&key, raw, &source)?;
            set(&key, value, source)?;
        }
    }
    for o in &layers.cli {
        let (key, raw) = o.assignment.split_once('=').ok_or_else(|| ConfigError::BadOverride(o.assignment.clone()))?;
        let source = Source::Cli(o.flag.clone());
        let value = typed(key.trim(), raw, &source)?;
        set(key.trim(), value, source)?;
    }
    let config = to_config(&entries)?;
    Ok(Resolved { config, entries, providers: file.providers, prices: file.prices, mcp: file.mcp })
}

/// `ALP__NODE__LISTEN` → `node.listen`.
fn env_key(var: &str) -> Option<String> {
    let rest = var.strip_prefix("ALP__")?;
    Some(rest.split("__").collect::<Vec<_>>().join(".").to_ascii_lowercase())
}

/// Gives a raw string from the environment or a flag the type of the key's
/// default: strings stay strings, anything else is read as a TOML value.
fn typed(key: &str, raw: &str, source: &Source) -> Result<Value, ConfigError> {
    let spec = spec(key).ok_or_else(|| ConfigError::UnknownKey { layer: source.clone(), key: key.to_owned() })?;
    if let Value::String(_) = (spec.default)() {
        return Ok(string(raw));
    }
    // Not TOML: as text, so that the type check names what was expected.
    Ok(toml::from_str::<Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| string(raw)))
}

/// What the config file holds: plain keys, and the named tables.
#[derive(Default)]
struct FileLayer {
    values: Vec<(String, Value)>,
    providers: BTreeMap<String, ProviderSpec>,
    prices: BTreeMap<String, Price>,
    mcp: BTreeMap<String, crate::mcp::McpSpec>,
}

fn read_file(path: &Path) -> Result<FileLayer, ConfigError> {
    crate::tomlfile::check_private(path)?;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(source) => {
            return Err(ConfigError::Io { path: path.to_owned(), source });
        }
    };
    let table: Table =
        toml::from_str(&text).map_err(|e| ConfigError::Syntax { path: path.to_owned(), message: e.to_string() })?;
    let mut out = Vec::new();
    let mut providers = BTreeMap::new();
    let mut prices = BTreeMap::new();
    let mut mcp = BTreeMap::new();
    for (section, value) in table {
        if section == "mcp" {
            let Value::Table(named) = value else {
                return Err(ConfigError::UnknownKey { layer: Source::File(path.to_owned()), key: section });
            };
            for (name, spec) in named {
                let invalid = |reason: String| ConfigError::InvalidValue {
                    layer: Source::File(path.to_owned()),
                    key: format!("mcp.{name}"),
                    reason,
                };
                crate::mcp::check_name(&name).map_err(invalid)?;
                let spec: crate::mcp::McpSpec =
                    spec.try_into().map_err(|e: toml::de::Error| invalid(e.message().to_owned()))?;
                spec.check().map_err(invalid)?;
                mcp.insert(name, spec);
            }
            continue;
        }
        if section == "prices" {
            let Value::Table(models) = value else {
                return Err(ConfigError::UnknownKey { layer: Source::File(path.to_owned()), key: section });
            };
            for (model, price) in models {
                let price: Price = price.try_into().map_err(|e: toml::de::Error| ConfigError::InvalidValue {
                    layer: Source::File(path.to_owned()),
                    key: format!("prices.{model}"),
                    reason: e.message().to_owned(),
                })?;
                if price.input.is_nan() || price.output.is_nan() || price.input < 0.0 || price.output < 0.0 {
                    return Err(ConfigError::InvalidValue {
                        layer: Source::File(path.to_owned()),
                        key: format!("prices.{model}"),
                        reason: "prices must be zero or more".into(),
                    });
                }
                prices.insert(model, price);
            }
            continue;
        }
        if section == "providers" {
            let Value::Table(named) = value else {
                return Err(ConfigError::UnknownKey { layer: Source::File(path.to_owned()), key: section });
            };
            for (name, spec) in named {
                let spec: ProviderSpec = spec.try_into().map_err(|e: toml::de::Error| ConfigError::InvalidValue {
                    layer: Source::File(path.to_owned()),
                    key: format!("providers.{name}"),
                    reason: e.message().to_owned(),
                })?;
                providers.insert(name, spec);
            }
            continue;
        }
        let Value::Table(keys) = value else {
            return Err(ConfigError::UnknownKey { layer: Source::File(path.to_owned()), key: section });
        };
        for (key, value) in keys {
            out.push((format!("{section}.{key}"), value));
        }
    }
    Ok(FileLayer { values: out, providers, prices, mcp })
}

fn to_config(entries: &[Entry]) -> Result<Config, ConfigError> {
    let mut root = Table::new();
    for e in entries {
        let (section, key) = e.key.split_once('.').unwrap_or((e.key, ""));
        let Value::Table(t) = root.entry(section).or_insert_with(|| Value::Table(Table::new())) else {
            continue;
        };
        t.insert(key.to_owned(), e.value.clone());
    }
    Value::Table(root).try_into().map_err(|e: toml::de::Error| ConfigError::InvalidValue {
        layer: Source::Default,
        key: String::new(),
        reason: e.message().to_owned(),
    })
}

/// The `config.toml` written by `alp init`: every key, commented out with
/// its default, under its section; `port`, when given, is set as the
/// port of `node.listen` (a second profile in a home gets its own).
pub fn template(profile: &str, port: Option<u16>) -> String {
    let mut out = format!(
        "# alp configuration for profile '{profile}'.\n\
         # Every setting is listed with its built-in default, commented out.\n\
         # Precedence: built-in defaults < this file < environment ALP__SECTION__KEY\n\
         # < command line (--set section.key=value). `alp config show` prints the result.\n"
    );
    let mut section = "";
    for s in KEYS {
        let (sec, key) = s.key.split_once('.').unwrap_or((s.key, ""));
        if sec != section {
            out.push_str(&format!("\n[{sec}]\n"));
            section = sec;
        }
        out.push_str(&format!("# {}\n# {key} = {}\n", s.doc, (s.default)()));
        if let (Some(port), "node.listen") = (port, s.key) {
            out.push_str(&format!(
                "# Chosen by `alp init`: a free port no other profile of this home uses.\n\
                 {key} = \"[::]:{port}\"\n"
            ));
        }
    }
    out.push_str(
        "\n# Model providers, by name (select with --provider NAME or model.provider).\n\
         # kind is \"openai\" (any OpenAI-compatible server) or \"anthropic\".\n\
         # [providers.ollama]\n\
         # kind = \"openai\"\n\
         # base_url = \"http://127.0.0.1:11434/v1\"\n\
         # model = \"llama3.2\"\n\
         # [providers.claude]\n\
         # kind = \"anthropic\"\n\
         # model = \"claude-haiku-4-5\"\n\
         # api_key_env = \"ANTHROPIC_API_KEY\"     # or api_key_file = \"/path/0600/file\"\n\
         # fallback = \"ollama\"                   # tried when this one is unreachable\n\
         \n# Prices in US dollars per million tokens, for cost reports and budget caps.\n\
         # [prices]\n\
         # \"claude-haiku-4-5\" = { input = 1.0, output = 5.0 }\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    fn source_of(r: &Resolved, key: &str) -> Source {
        r.entries.iter().find(|e| e.key == key).unwrap().source.clone()
    }

    #[test]
    fn defaults_alone() {
        let r = load(&Layers::default()).unwrap();
        assert_eq!(r.config.node.listen.port(), DEFAULT_PORT);
        assert_eq!(r.config.log.level, LogLevel::Warn);
        assert!(r.entries.iter().all(|e| e.source == Source::Default));
    }

    #[test]
    fn each_layer_overrides_the_one_below() {
        let (_d, p) = file("[node]\nlisten = \"127.0.0.1:1\"\ndisplay_name = \"from file\"\n[log]\nlevel = \"info\"\n");
        let env = vec![
            ("ALP__NODE__LISTEN".into(), "127.0.0.1:2".into()),
            ("ALP__LOG__LEVEL".into(), "debug".into()),
            ("UNRELATED".into(), "x".into()),
        ];
        let cli = vec![Override::set("log.level=trace")];
        let r = load(&Layers { file: Some(&p), env, cli }).unwrap();
        assert_eq!(r.config.node.display_name, "from file");
        assert_eq!(source_of(&r, "node.display_name"), Source::File(p.clone()));
        assert_eq!(r.config.node.listen.port(), 2);
        assert_eq!(source_of(&r, "node.listen"), Source::Env("ALP__NODE__LISTEN".into()));
        assert_eq!(r.config.log.level, LogLevel::Trace);
        assert_eq!(source_of(&r, "log.level"), Source::Cli("--set log.level=trace".into()));
    }

    #[test]
    fn missing_file_is_an_empty_layer() {
        let r = load(&Layers { file: Some(Path::new("/nonexistent/config.toml")), ..Default::default() });
        assert!(r.is_ok());
    }

    #[test]
    fn template_lists_every_key_and_uncommented_gives_the_defaults() {
        let t = template("personal", None);
        for s in KEYS {
            assert!(t.contains(s.key.split_once('.').unwrap().1), "{}", s.key);
        }
        // The template itself parses and changes nothing.
        let (_d, p) = file(&t);
        let plain = load(&Layers { file: Some(&p), ..Default::default() }).unwrap();
        assert!(plain.entries.iter().all(|e| e.source == Source::Default));
        // Uncommented, every key is set by the file, to its default.
        // (The provider and price examples at the end are illustrations, not defaults.)
        let keys_part = &t[..t.find("\n# Model providers").unwrap()];
        let uncommented: String = keys_part
            .lines()
            .map(|l| if l.starts_with("# ") && l.contains(" = ") { &l[2..] } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        let (_d2, p2) = file(&uncommented);
        let r = load(&Layers { file: Some(&p2), ..Default::default() }).unwrap();
        assert!(r.entries.iter().all(|e| e.source == Source::File(p2.clone())));
        assert_eq!(r.config, plain.config);
        // Uncommented, the examples parse as providers and prices.
        let examples: String = t[keys_part.len()..]
            .lines()
            .map(|l| l.strip_prefix("# ").filter(|l| l.starts_with('[') || l.contains(" = ")).unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let (_d3, p3) = file(&examples);
        let r = load(&Layers { file: Some(&p3), ..Default::default() }).unwrap();
        assert_eq!(r.providers.len(), 2);
        assert_eq!(r.prices.len(), 1);
    }

    #[test]
    fn errors_name_layer_key_and_reason() {
        let (_d, p) = file("[node]\nlisten = \"not an address\"\n");
        let err = load(&Layers { file: Some(&p), ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains(&p.display().to_string()) && err.contains("node.listen"), "{err}");
        assert!(err.contains("invalid socket address"), "{err}");

        let (_d, p) = file("[node]\nlisen = \"x\"\n");
        let err = load(&Layers { file: Some(&p), ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("unknown config key `node.lisen`") && err.contains("node.listen"), "{err}");

        let (_d, p) = file("[node\n");
        let err = load(&Layers { file: Some(&p), ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("not valid TOML") && err.contains("line 1"), "{err}");

        let env = vec![("ALP__LOG__LEVEL".into(), "loud".into())];
        let err = load(&Layers { env, ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("env ALP__LOG__LEVEL") && err.contains("log.level"), "{err}");

        let env = vec![("ALP__NODE__NOPE".into(), "1".into())];
        let err = load(&Layers { env, ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("ALP__NODE__NOPE") && err.contains("node.nope"), "{err}");

        let err = load(&Layers { cli: vec![Override::set("node.listen")], ..Default::default() }).unwrap_err();
        assert!(matches!(err, ConfigError::BadOverride(_)));

        let (_d, p) = file("top = 1\n");
        let err = load(&Layers { file: Some(&p), ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("unknown config key `top`"), "{err}");
    }

    #[test]
    fn every_key_reaches_the_typed_config() {
        // Drift guard: the typed struct and KEYS name the same keys.
        let r = load(&Layers::default()).unwrap();
        let serialized = Value::try_from(&r.config).unwrap();
        let mut keys = Vec::new();
        for (section, v) in serialized.as_table().unwrap() {
            for key in v.as_table().unwrap().keys() {
                keys.push(format!("{section}.{key}"));
            }
        }
        keys.sort();
        let mut declared: Vec<String> = KEYS.iter().map(|s| s.key.to_owned()).collect();
        declared.sort();
        assert_eq!(keys, declared);
    }
}
