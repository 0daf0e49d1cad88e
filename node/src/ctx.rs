//! What every command needs: the home, the profile name, output mode and
//! config overrides, resolved once from the global flags.

use std::io::Write;

use alp_profiles::config::{Override, Resolved};
use alp_profiles::{Home, Profile, ProfileName};
use serde::Serialize;

use crate::cli::Global;
use crate::error::CliResult;

#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) home: Home,
    pub(crate) profile: ProfileName,
    pub(crate) json: bool,
    pub(crate) overrides: Vec<String>,
    /// `-q` was given: no progress bars either.
    pub(crate) quiet: bool,
}

impl Ctx {
    pub(crate) fn new(g: &Global) -> CliResult<Self> {
        let home = Home::resolve(g.home.as_deref())?;
        let profile = match &g.profile {
            Some(p) => p.clone(),
            None => home.current_profile(),
        };
        Ok(Self { home, profile, json: g.json, overrides: g.overrides.clone(), quiet: g.quiet > 0 })
    }

    /// Opens the current profile, failing with a hint to `alp init`.
    pub(crate) fn open(&self) -> CliResult<Profile> {
        Ok(Profile::open(&self.home, &self.profile)?)
    }

    /// The effective config of `profile`.
    pub(crate) fn config(&self, profile: &Profile) -> CliResult<Resolved> {
        self.config_with(profile, Vec::new())
    }

    /// The effective config with command-specific flags on top.
    pub(crate) fn config_with(&self, profile: &Profile, extra: Vec<Override>) -> CliResult<Resolved> {
        let mut cli = self.cli_overrides();
        cli.extend(extra);
        Ok(profile.config(alp_env(), cli)?)
    }

    /// The global `--set` overrides.
    pub(crate) fn cli_overrides(&self) -> Vec<Override> {
        self.overrides.iter().map(|o| Override::set(o)).collect()
    }

    /// Writes `value` as one JSON document on stdout.
    pub(crate) fn print_json<T: Serialize + ?Sized>(&self, value: &T) -> CliResult {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)?;
        Ok(())
    }

    /// Writes text lines on stdout.
    pub(crate) fn print(&self, text: &str) -> CliResult {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}")?;
        out.flush()?;
        Ok(())
    }
}

/// The environment variables the config layer reads.
pub(crate) fn alp_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("ALP__"))
        .collect()
}
