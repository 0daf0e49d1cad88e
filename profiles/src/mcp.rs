//! `[mcp.NAME]` tables of `config.toml`: MCP servers whose tools the
//! profile's agent may call.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::HumanDuration;

/// How much an MCP server's tools can do, as the agent's tool tiers say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum McpTier {
    /// Read only: never needs approval.
    ReadOnly,
    /// Changes things: needs `--allow-tools` (or a yes) to run.
    #[default]
    SideEffect,
    /// Runs programs or acts with wide power.
    Privileged,
}

/// One MCP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpSpec {
    /// The program and its arguments, for a server on stdio (argv, never
    /// a shell string).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The endpoint of a streamable HTTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The tier of all its tools.
    #[serde(default)]
    pub tier: McpTier,
    /// Environment variables it gets, on top of the tools' whitelist.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Runs in the tools' sandbox (bubblewrap) where one is installed.
    #[serde(default = "yes")]
    pub sandbox: bool,
    /// May use the network from inside the sandbox.
    #[serde(default)]
    pub network: bool,
    /// More directories the server may read in the sandbox (its program's
    /// own directory, and a `node_modules` it lives in, are readable
    /// already).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read: Vec<PathBuf>,
    /// Longest one tool call may take.
    #[serde(default = "call_timeout")]
    pub timeout: HumanDuration,
}

fn yes() -> bool {
    true
}

fn call_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(60))
}

impl McpSpec {
    /// A server on stdio running `command`.
    pub fn stdio(command: Vec<String>) -> Self {
        McpSpec {
            command,
            url: None,
            tier: McpTier::default(),
            env: BTreeMap::new(),
            sandbox: true,
            network: false,
            read: Vec::new(),
            timeout: call_timeout(),
        }
    }

    /// Checks what serde cannot: one transport, a sensible timeout.
    pub fn check(&self) -> Result<(), String> {
        match (self.command.is_empty(), &self.url) {
            (false, None) | (true, Some(_)) => {}
            (true, None) => return Err("give `command` (a stdio server) or `url` (an HTTP server)".into()),
            (false, Some(_)) => return Err("give `command` or `url`, not both".into()),
        }
        if self.command.first().is_some_and(|p| p.is_empty()) {
            return Err("`command` starts with an empty program name".into());
        }
        if self.timeout.0.is_zero() || self.timeout.0 > std::time::Duration::from_secs(24 * 3600) {
            return Err("`timeout` must be between 1s and 24h".into());
        }
        Ok(())
    }
}

/// Checks a server name: it prefixes its tools' names (`NAME__TOOL`),
/// which model providers accept only as letters, digits, `_` and `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !name.contains("__")
        && !name.starts_with(['_', '-'])
        && !name.ends_with(['_', '-']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} cannot name an MCP server: use up to 32 letters, digits, `-` or `_` (no `__`, none at either end), e.g. fs or github"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_specs_are_checked() {
        assert!(check_name("fs").is_ok() && check_name("my-server_2").is_ok());
        for bad in ["", "a__b", "a b", "a/b", "x_", "_x", &"x".repeat(33)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        let mut s = McpSpec::stdio(vec!["node".into(), "server.js".into()]);
        assert!(s.check().is_ok());
        s.url = Some("http://127.0.0.1:1/mcp".into());
        assert!(s.check().is_err());
        s.command.clear();
        assert!(s.check().is_ok());
        s.url = None;
        assert!(s.check().is_err());
    }
}
