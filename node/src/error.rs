//! How failures become messages and exit codes.
//!
//! Exit codes: 0 success, 1 runtime failure (I/O, network, a busy lock),
//! 2 usage or configuration error (bad input, missing profile, a broken
//! file the user must fix), 3 a limit reached (agent turns, budget), 4 a
//! tool call that needed approval, 130 interrupted by Ctrl-C. A peer's
//! refusal for want of a permission or of trust is a 2 ([`remote_code`]),
//! like any other setting to fix. Each message
//! says what to do next. Under `--json` the error is one JSON object on
//! stderr, `{"error": {"code", "kind", "message", "hint"}}`, with the same
//! exit code.

use alp_profiles::config::ConfigError;
use alp_profiles::peers::PeerError;
use alp_profiles::{FileError, HomeError, IdentityError, LockError, NameError, ProfileError};

/// Exit code for runtime failures.
pub(crate) const RUNTIME: u8 = 1;
/// Exit code for usage and configuration errors.
pub(crate) const USAGE: u8 = 2;
/// Exit code when a limit stopped the work: turns or budget.
pub(crate) const LIMIT: u8 = 3;
/// Exit code when the model called a tool that was not approved.
pub(crate) const DENIED: u8 = 4;
/// Exit code when the user interrupted the command (SIGINT), as shells do.
pub(crate) const INTERRUPTED: u8 = 130;

/// The name of an exit code's kind of failure, as `--json` errors give it.
pub(crate) fn kind(code: u8) -> &'static str {
    match code {
        RUNTIME => "runtime",
        USAGE => "usage",
        LIMIT => "limit",
        DENIED => "denied",
        INTERRUPTED => "interrupted",
        _ => "error",
    }
}

/// Writes `{"error": {"code", "kind", "message", "hint"}}` on stderr, one
/// line (what `--json` gives instead of `alp: error: …`).
pub(crate) fn print_json_error(code: u8, message: &str, hint: String) {
    let mut error = serde_json::json!({ "code": code, "kind": kind(code), "message": message });
    if !hint.is_empty() {
        error["hint"] = serde_json::Value::String(hint);
    }
    eprintln!("{}", serde_json::json!({ "error": error }));
}

/// The exit code of a request a peer failed: 2 when the peer refuses
/// because of how things are set up (not allowed that verb, not trusted:
/// someone must change a permission or a pairing), 1 for everything that
/// may go better on another try. The same rule for every command.
pub(crate) fn remote_code(e: &alp_link::RequestError) -> u8 {
    use alp_link::RequestError;
    use alp_protocol::envelope::ErrorCode;
    match e {
        RequestError::Remote(r) if r.code == ErrorCode::Forbidden => USAGE,
        RequestError::Closed { code, .. } if *code == alp_link::close_code::NOT_TRUSTED.into_inner() => USAGE,
        _ => RUNTIME,
    }
}

/// A failure with its exit code.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) code: u8,
    pub(crate) error: anyhow::Error,
}

pub(crate) type CliResult<T = ()> = Result<T, CliError>;

fn with_code(code: u8, e: impl Into<anyhow::Error>) -> CliError {
    CliError { code, error: e.into() }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        with_code(RUNTIME, e)
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        match e.io_error_kind() {
            Some(kind) => std::io::Error::from(kind).into(),
            None => with_code(RUNTIME, e),
        }
    }
}

impl From<NameError> for CliError {
    fn from(e: NameError) -> Self {
        with_code(USAGE, e)
    }
}

impl From<HomeError> for CliError {
    fn from(e: HomeError) -> Self {
        let code = if matches!(e, HomeError::NoPlatformDir) { USAGE } else { RUNTIME };
        with_code(code, e)
    }
}

impl From<IdentityError> for CliError {
    fn from(e: IdentityError) -> Self {
        let code = match e {
            IdentityError::Io { .. } | IdentityError::Random(_) => RUNTIME,
            _ => USAGE,
        };
        with_code(code, e)
    }
}

impl From<LockError> for CliError {
    fn from(e: LockError) -> Self {
        with_code(RUNTIME, e)
    }
}

impl From<ProfileError> for CliError {
    fn from(e: ProfileError) -> Self {
        match e {
            ProfileError::Identity(e) => e.into(),
            ProfileError::Lock(e) => e.into(),
            ProfileError::Missing { .. } | ProfileError::Unsafe { .. } => with_code(USAGE, e),
            other => with_code(RUNTIME, other),
        }
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        let code = if matches!(e, ConfigError::Io { .. }) { RUNTIME } else { USAGE };
        with_code(code, e)
    }
}

impl From<PeerError> for CliError {
    fn from(e: PeerError) -> Self {
        match e {
            PeerError::File(e) => e.into(),
            PeerError::Lock(e) => e.into(),
            other => with_code(USAGE, other),
        }
    }
}

impl From<FileError> for CliError {
    fn from(e: FileError) -> Self {
        let code = if matches!(e, FileError::Io { .. }) { RUNTIME } else { USAGE };
        with_code(code, e)
    }
}

impl From<alp_link::DialError> for CliError {
    fn from(e: alp_link::DialError) -> Self {
        match e {
            alp_link::DialError::NoAddress => with_code(USAGE, e),
            other => with_code(RUNTIME, other),
        }
    }
}

impl From<alp_link::RequestError> for CliError {
    fn from(e: alp_link::RequestError) -> Self {
        with_code(RUNTIME, e)
    }
}

impl From<alp_profiles::tickets::TicketStoreError> for CliError {
    fn from(e: alp_profiles::tickets::TicketStoreError) -> Self {
        match e {
            alp_profiles::tickets::TicketStoreError::File(f) => f.into(),
            other => with_code(RUNTIME, other),
        }
    }
}

impl From<alp_profiles::serve::ServeError> for CliError {
    fn from(e: alp_profiles::serve::ServeError) -> Self {
        match e {
            alp_profiles::serve::ServeError::File(f) => f.into(),
            other => with_code(RUNTIME, other),
        }
    }
}

impl From<alp_blobstore::store::StoreError> for CliError {
    fn from(e: alp_blobstore::store::StoreError) -> Self {
        use alp_blobstore::store::StoreError;
        let usage = matches!(
            e,
            StoreError::NotFound(_)
                | StoreError::Full { .. }
                | StoreError::BadHash(_)
                | StoreError::NoMatch(_)
                | StoreError::Ambiguous { .. }
        );
        let code = if usage { USAGE } else { RUNTIME };
        with_code(code, e)
    }
}

/// A usage error with a message.
pub(crate) fn usage(msg: impl std::fmt::Display) -> CliError {
    CliError { code: USAGE, error: anyhow::anyhow!("{msg}") }
}

/// True if the failure is a closed stdout: the reader went away, which is
/// not an error for a command-line tool.
pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().filter_map(|c| c.downcast_ref::<std::io::Error>()).any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
