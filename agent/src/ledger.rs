//! The spending ledger: one JSONL file per UTC day under the profile,
//! one line per model turn, so daily caps survive restarts and the
//! numbers can be audited.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::provider::Usage;

/// One model turn's spend.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub ts: u64,
    pub provider: String,
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// US dollars; absent when the model has no price.
    pub cost: Option<f64>,
    /// Who asked: `local` or a peer's name.
    pub caller: String,
}

/// Today's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub tokens: u64,
    pub cost: f64,
}

/// The ledger directory of a profile.
#[derive(Debug, Clone)]
pub struct Ledger {
    dir: PathBuf,
}

/// The UTC date of a Unix time, `YYYY-MM-DD`.
pub fn day(unix: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_owned()
}

impl Ledger {
    pub fn new(dir: &Path) -> Self {
        Ledger { dir: dir.to_owned() }
    }

    fn file(&self, day: &str) -> PathBuf {
        self.dir.join(format!("{day}.jsonl"))
    }

    /// Totals of `day` for `caller` (all callers with `None`). Unreadable
    /// lines are skipped with a warning rather than lifting the cap.
    pub fn totals(&self, day: &str, caller: Option<&str>) -> std::io::Result<Totals> {
        let f = match std::fs::File::open(self.file(day)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Totals::default()),
            Err(e) => return Err(e),
        };
        let mut t = Totals::default();
        for (n, line) in BufReader::new(f).lines().enumerate() {
            let line = line?;
            match serde_json::from_str::<Entry>(&line) {
                Ok(e) if caller.is_none_or(|c| c == e.caller) => {
                    t.tokens += e.input_tokens + e.output_tokens;
                    t.cost += e.cost.unwrap_or(0.0);
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(file = %self.file(day).display(), line = n + 1, "ledger line skipped: {err}")
                }
            }
        }
        Ok(t)
    }

    /// Appends one entry to its day's file and syncs it.
    pub fn append(&self, entry: &Entry) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        let mut f = OpenOptions::new().create(true).append(true).open(self.file(&day(entry.ts)))?;
        f.write_all(&line)?;
        f.sync_data()
    }
}

impl Ledger {
    /// Appends one entry per model turn; a failure is logged, never fatal
    /// (the answer already happened).
    pub fn record(&self, provider: &str, model: &str, turns: &[(Usage, Option<f64>)], caller: &str) {
        for (usage, cost) in turns {
            let entry = Entry {
                ts: alp_profiles::unix_now(),
                provider: provider.into(),
                model: model.into(),
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
                cost: *cost,
                caller: caller.into(),
            };
            if let Err(e) = self.append(&entry) {
                tracing::warn!("could not write the ledger: {e}");
            }
        }
    }
}

/// What a turn costs at `price` (USD per million tokens).
pub fn cost(usage: Usage, price: alp_profiles::config::Price) -> f64 {
    (usage.input_tokens as f64 * price.input + usage.output_tokens as f64 * price.output) / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_totals() {
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(day(1_795_000_000), "2026-11-18");
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::new(d.path());
        let e = |caller: &str, cost| Entry {
            ts: 1_795_000_000,
            provider: "p".into(),
            model: "m".into(),
            input_tokens: 10,
            output_tokens: 5,
            cost,
            caller: caller.into(),
        };
        l.append(&e("local", Some(0.25))).unwrap();
        l.append(&e("research", Some(0.5))).unwrap();
        l.append(&e("local", None)).unwrap();
        assert_eq!(l.totals("2026-11-18", None).unwrap(), Totals { tokens: 45, cost: 0.75 });
        assert_eq!(l.totals("2026-11-18", Some("local")).unwrap(), Totals { tokens: 30, cost: 0.25 });
        assert_eq!(l.totals("2026-11-19", None).unwrap(), Totals::default());
        let p = alp_profiles::config::Price { input: 1.0, output: 2.0 };
        assert_eq!(cost(Usage { input_tokens: 1_000_000, output_tokens: 500_000 }, p), 2.0);
    }
}
