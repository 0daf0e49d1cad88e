//! `alp model pull` against a local HTTP server: resume after a cut, the
//! pinned SHA-256, what it refuses; `alp model ls`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use sha2::Digest;

use crate::common::Home;

/// How the server answers one request.
#[derive(Clone, Copy)]
enum Serve {
    /// The whole file, or the range asked for.
    Honest,
    /// Promises the whole file, sends this many bytes, and hangs up.
    CutAfter(usize),
    /// The whole file with one byte changed.
    Tampered,
    /// The whole file, whatever range was asked for.
    IgnoreRange,
}

/// A one-file HTTP server on 127.0.0.1 that answers requests in turn by
/// `script` (then honestly) and records each request's Range header.
struct Server {
    url: String,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

impl Server {
    fn start(name: &str, body: Vec<u8>, script: Vec<Serve>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/models/{name}", listener.local_addr().unwrap());
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let seen = ranges.clone();
        std::thread::spawn(move || {
            let mut script = script.into_iter();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut range = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                        range = Some(v.trim().to_owned());
                    }
                }
                seen.lock().unwrap().push(range.clone());
                let how = script.next().unwrap_or(Serve::Honest);
                let start: usize = range.as_deref().and_then(|r| r.trim_end_matches('-').parse().ok()).unwrap_or(0);
                let mut data = body.clone();
                if let Serve::Tampered = how {
                    data[body.len() / 2] ^= 1;
                }
                if start >= data.len() && start > 0 {
                    let head = format!(
                        "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        data.len()
                    );
                    let _ = stream.write_all(head.as_bytes());
                    continue;
                }
                let start = if let Serve::IgnoreRange = how { 0 } else { start };
                let head = if start > 0 {
                    format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\nConnection: close\r\n\r\n",
                        data.len() - start,
                        data.len() - 1,
                        data.len()
                    )
                } else {
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", data.len())
                };
                let _ = stream.write_all(head.as_bytes());
                let rest = &data[start..];
                let n = match how {
                    Serve::CutAfter(n) => n.min(rest.len()),
                    _ => rest.len(),
                };
                let _ = stream.write_all(&rest[..n]);
                let _ = stream.flush();
                drop(stream);
            }
        });
        Server { url, ranges }
    }

    fn ranges(&self) -> Vec<Option<String>> {
        self.ranges.lock().unwrap().clone()
    }
}

fn body(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_cut_download_resumes_where_it_stopped_and_is_checked() {
    let h = Home::new();
    let data = body(3 << 20);
    let server = Server::start("tiny.gguf", data.clone(), vec![Serve::CutAfter(1 << 20)]);
    let sha = hex(&data);
    let args = ["model", "pull", "--url", &server.url, "--sha256", &sha];
    h.run(&args).fails(1, &["stopped at 1048576 of 3145728 bytes", "run the same command again to resume"]);
    let models = h.path().join("models");
    assert_eq!(std::fs::metadata(models.join(".tiny.gguf.part")).unwrap().len(), 1 << 20);
    assert!(!models.join("tiny.gguf").exists(), "nothing in place before it is whole and checked");

    let r = h.run(&args);
    assert_eq!(r.ok().trim(), models.join("tiny.gguf").display().to_string());
    assert!(r.stderr.contains("resumed"), "{}", r.stderr);
    assert_eq!(server.ranges(), [None, Some("1048576-".to_owned())]);
    assert_eq!(std::fs::read(models.join("tiny.gguf")).unwrap(), data);
    assert!(!models.join(".tiny.gguf.part").exists());

    // Again: already there, nothing fetched.
    let v = h.run(&["--json", "model", "pull", "--url", &server.url, "--sha256", &sha]).json();
    assert_eq!(v["already"], true);
    assert_eq!(server.ranges().len(), 2);

    let list = h.run(&["--json", "model", "ls"]).json();
    assert_eq!(list[0]["name"], "tiny.gguf");
    assert_eq!(list[0]["size"], 3 << 20);
    assert_eq!(list[0]["used"], false);
    assert!(h.run(&["model", "list"]).ok().contains("tiny.gguf"));
}

#[test]
fn a_tampered_download_is_never_installed() {
    let h = Home::new();
    let data = body(1 << 20);
    let server = Server::start("m.gguf", data.clone(), vec![Serve::Tampered]);
    h.run(&["model", "pull", "--url", &server.url, "--sha256", &hex(&data)])
        .fails(1, &["does not match its pinned SHA-256", "nothing was installed"]);
    let models = h.path().join("models");
    assert!(!models.join("m.gguf").exists() && !models.join(".m.gguf.part").exists());
}

#[test]
fn pull_refuses_plain_http_elsewhere_bad_names_and_overwriting() {
    let h = Home::new();
    let sha = "0".repeat(64);
    h.run(&["model", "pull", "--url", "http://192.0.2.1/m.gguf", "--sha256", &sha])
        .fails(2, &["only https is allowed (plain http only from this machine)"]);
    h.run(&["model", "pull", "--url", "https://192.0.2.1/../etc", "--sha256", &sha]).fails(2, &["FILE.gguf"]);
    h.run(&["model", "pull", "--url", "https://192.0.2.1/m.gguf", "--sha256", "abc"]).fails(2, &["64 hex digits"]);
    // A different file under the name is kept unless --force.
    let data = body(4096);
    let server = Server::start("m.gguf", data.clone(), vec![]);
    std::fs::create_dir_all(h.path().join("models")).unwrap();
    std::fs::write(h.path().join("models/m.gguf"), b"mine").unwrap();
    h.run(&["model", "pull", "--url", &server.url, "--sha256", &hex(&data)])
        .fails(2, &["is already there and is not this model", "--force"]);
    assert_eq!(std::fs::read(h.path().join("models/m.gguf")).unwrap(), b"mine");
    // On a terminal (script(1) makes one), the download shows a bar.
    let line = format!(
        "{} --home {} model pull --url {} --sha256 {} --force",
        crate::common::alp_bin().display(),
        h.path().display(),
        server.url,
        hex(&data)
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("downloading m.gguf") && text.contains("SHA-256 checked"), "{text}");
    assert_eq!(std::fs::read(h.path().join("models/m.gguf")).unwrap(), data);
}

/// The default model from a mirror: the pinned digest and size apply, and
/// chat then finds it where it looks.
#[test]
fn the_default_model_from_a_mirror() {
    let Some(model) = std::env::var_os("ALP_TEST_MODEL") else {
        eprintln!("ALP_TEST_MODEL is not set: skipping (scripts/test.sh sets it)");
        return;
    };
    let mut data = Vec::new();
    std::fs::File::open(model).unwrap().read_to_end(&mut data).unwrap();
    let server = Server::start("SmolLM2-135M-Instruct.Q4_1.gguf", data, vec![Serve::CutAfter(10 << 20)]);
    let h = Home::new();
    h.run(&["model", "pull", "--url", &server.url]).fails(1, &["resume"]);
    h.run(&["model", "pull", "--url", &server.url]).ok();
    let list = h.run(&["--json", "model", "ls"]).json();
    assert_eq!(list[0]["name"], "SmolLM2-135M-Instruct.Q4_1.gguf");
    assert_eq!(list[0]["used"], true);
    assert_eq!(h.run(&["chat", "What is the capital of France?"]).ok(), "The capital of France is Paris.\n");
    // A mirror serving something else is caught by the pinned digest.
    let other = Server::start("SmolLM2-135M-Instruct.Q4_1.gguf", body(1000), vec![]);
    let h2 = Home::new();
    h2.run(&["model", "pull", "--url", &other.url]).fails(1, &["offers 1000 bytes where the model has 98362432"]);
}

/// A server that ignores ranges sends everything again and the part
/// starts over; a part that is already whole is checked and installed
/// after the server's 416; a part another pull holds is left alone.
#[test]
fn a_server_without_ranges_a_whole_part_and_a_busy_part() {
    let h = Home::new();
    let data = body(2 << 20);
    let sha = hex(&data);
    let models = h.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let part = models.join(".m.gguf.part");

    // Half a part, from a server that then ignores the range.
    std::fs::write(&part, &data[..1 << 20]).unwrap();
    let server = Server::start("m.gguf", data.clone(), vec![Serve::IgnoreRange]);
    let v = h.run(&["--json", "model", "pull", "--url", &server.url, "--sha256", &sha]).json();
    assert_eq!(v["resumed_from"], 0);
    assert_eq!(std::fs::read(models.join("m.gguf")).unwrap(), data);

    // A whole part left behind: 416, then checked and put in place.
    std::fs::remove_file(models.join("m.gguf")).unwrap();
    std::fs::write(&part, &data).unwrap();
    let server = Server::start("m.gguf", data.clone(), vec![]);
    h.run(&["model", "pull", "--url", &server.url, "--sha256", &sha]).ok();
    assert_eq!(server.ranges(), [Some(format!("{}-", data.len()))]);
    assert_eq!(std::fs::read(models.join("m.gguf")).unwrap(), data);

    // Another pull holds the part: this one says so and touches nothing.
    if std::process::Command::new("flock").arg("--version").output().is_err() {
        eprintln!("flock(1) is not installed: skipping the busy part");
        return;
    }
    std::fs::remove_file(models.join("m.gguf")).unwrap();
    std::fs::write(&part, &data[..100]).unwrap();
    // In its own process group, so that its `sleep` goes with it.
    let mut holder = std::process::Command::new("flock");
    std::os::unix::process::CommandExt::process_group(holder.arg(&part).args(["sleep", "30"]), 0);
    let mut holder = holder.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    h.run(&["model", "pull", "--url", &server.url, "--sha256", &sha]).fails(2, &["another `alp model pull`"]);
    std::process::Command::new("kill").args(["-KILL", "--", &format!("-{}", holder.id())]).status().unwrap();
    holder.wait().unwrap();
    assert_eq!(std::fs::read(&part).unwrap(), &data[..100]);
}
