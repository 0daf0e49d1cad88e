//! Sharing files as people do: names and where blobs came from, hash
//! prefixes, standard streams, folders, `alp send` and `alp receive` with
//! tickets, and no file replaced unless asked.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{Home, Served};

/// alice and bob, paired; alice serves (its stderr in `log`) and lets bob push.
fn pair(h: &Home, log: &std::path::Path) -> Served {
    h.init("alice");
    h.init("bob");
    let alice = h.serve_logging("alice", 0, &[], Some(log));
    let ticket = h.run(&["-p", "alice", "invite"]).ok().trim().to_owned();
    h.run(&["-p", "bob", "pair", &ticket, "--name", "alice"]).ok();
    h.run(&["-p", "alice", "peer", "allow", "bob", "blob.put"]).ok();
    alice
}

fn tree(h: &Home) -> std::path::PathBuf {
    let root = h.path().join("project");
    std::fs::create_dir_all(root.join("docs/img")).unwrap();
    std::fs::write(root.join("README.md"), b"# project\n").unwrap();
    std::fs::write(root.join("docs/guide.md"), vec![b'g'; 70_000]).unwrap();
    std::fs::write(root.join("docs/img/logo.bin"), (0..50_000u32).map(|i| i as u8).collect::<Vec<_>>()).unwrap();
    let run = root.join("run.sh");
    std::fs::write(&run, b"#!/bin/sh\necho hi\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("escape")).unwrap();
    root
}

/// Asserts that `got` holds the same files, bytes and exec bits as `want`
/// (symbolic links left out).
fn same_tree(want: &std::path::Path, got: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(want).unwrap() {
        let e = entry.unwrap();
        let (w, g) = (e.path(), got.join(e.file_name()));
        let kind = std::fs::symlink_metadata(&w).unwrap().file_type();
        if kind.is_symlink() {
            assert!(!g.exists(), "{} was not to be copied", g.display());
        } else if kind.is_dir() {
            same_tree(&w, &g);
        } else {
            assert_eq!(std::fs::read(&w).unwrap(), std::fs::read(&g).unwrap(), "{}", g.display());
            let x = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o111 != 0;
            assert_eq!(x(&w), x(&g), "exec bit of {}", g.display());
        }
    }
}

#[test]
fn names_origins_prefixes_and_standard_streams() {
    let h = Home::new();
    h.init("bob");
    let file = h.path().join("report.txt");
    std::fs::write(&file, b"quarterly numbers\n").unwrap();
    let hash = h.run(&["-p", "bob", "blob", "add", file.to_str().unwrap()]).ok().trim().to_owned();
    let mut c = h.cmd(&["-p", "bob", "blob", "add", "-", "--name", "piped.txt", "--json"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"from a pipe\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let piped: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((piped["name"].as_str(), piped["size"].as_u64()), (Some("piped.txt"), Some(12)));
    let piped = piped["hash"].as_str().unwrap().to_owned();
    assert_eq!(piped, blake3::hash(b"from a pipe\n").to_hex().as_str(), "the hash b3sum gives");

    let ls = h.run(&["-p", "bob", "blob", "ls", "--json"]).json();
    let row = ls.as_array().unwrap().iter().find(|b| b["hash"] == hash.as_str()).unwrap().clone();
    assert_eq!(
        (row["name"].as_str(), row["origin"].as_str(), row["kind"].as_str()),
        (Some("report.txt"), Some("added"), Some("file"))
    );
    assert!(row["added"].as_u64().unwrap() > 1_700_000_000);
    assert!(h.run(&["-p", "bob", "blob", "ls"]).ok().contains("report.txt  added"));

    // A unique prefix works wherever a hash does.
    let cat = h.run(&["-p", "bob", "blob", "cat", &hash[..6]]);
    assert_eq!(cat.ok(), "quarterly numbers\n");
    h.run(&["-p", "bob", "blob", "export", &piped[..8], "-"]).ok();
    assert_eq!(h.run(&["-p", "bob", "blob", "export", &piped[..8], "-"]).stdout, "from a pipe\n");
    h.run(&["-p", "bob", "blob", "verify", &hash[..5]]).ok();
    h.run(&["-p", "bob", "blob", "cat", "zz"]).fails(2, &["not a blob hash"]);
    let none = if hash.starts_with("0000") { "ffff" } else { "0000" };
    let missing = if piped.starts_with(none) || hash.starts_with(none) { "fffe" } else { none };
    h.run(&["-p", "bob", "blob", "cat", missing]).fails(2, &["no blob here starts with"]);

    // Export: into a folder under the name, never over a file unless --force.
    let out = h.path().join("out");
    std::fs::create_dir(&out).unwrap();
    h.run(&["-p", "bob", "blob", "export", &hash, out.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read(out.join("report.txt")).unwrap(), b"quarterly numbers\n");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("report.txt")).unwrap().permissions().mode() & 0o777;
    assert_ne!(mode, 0o600, "the user's umask, not the store's mode");
    std::fs::write(out.join("report.txt"), b"mine").unwrap();
    h.run(&["-p", "bob", "blob", "export", &hash, out.to_str().unwrap()]).fails(2, &["exists", "--force"]);
    assert_eq!(std::fs::read(out.join("report.txt")).unwrap(), b"mine", "untouched");
    h.run(&["-p", "bob", "blob", "export", &hash, out.to_str().unwrap(), "--force"]).ok();
    assert_eq!(std::fs::read(out.join("report.txt")).unwrap(), b"quarterly numbers\n");
}

#[test]
fn a_folder_sent_to_a_peer_arrives_as_the_same_tree_and_is_announced() {
    let h = Home::new();
    let log = h.path().join("alice.log");
    let _alice = pair(&h, &log);
    let root = tree(&h);
    let sent = h.run(&["-p", "bob", "send", root.to_str().unwrap(), "--to", "alice", "--json"]);
    assert!(sent.stderr.contains("left out") && sent.stderr.contains("escape"), "{}", sent.stderr);
    let v = sent.json();
    assert_eq!((v["name"].as_str(), v["files"].as_u64()), (Some("project"), Some(4)));
    let hash = v["hash"].as_str().unwrap().to_owned();

    // alice's node says what arrived, and lists it as received from bob.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log).unwrap().contains("received 'project'") {
        assert!(Instant::now() < deadline, "{}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(std::fs::read_to_string(&log).unwrap().contains("from bob"));
    let got = h.run(&["-p", "alice", "blob", "ls", "--received", "--json"]).json();
    let row = got.as_array().unwrap().iter().find(|b| b["hash"] == hash.as_str()).unwrap().clone();
    assert_eq!(
        (row["kind"].as_str(), row["from"].as_str(), row["origin"].as_str()),
        (Some("folder"), Some("bob"), Some("pushed"))
    );
    assert_eq!(got.as_array().unwrap().len(), 5, "the folder and its four files");
    assert!(h.run(&["-p", "alice", "blob", "ls", "--shared", "--json"]).json().as_array().unwrap().is_empty());

    let out = h.path().join("restored");
    let w = h.run(&["-p", "alice", "blob", "export", &hash[..10], out.to_str().unwrap(), "--json"]).json();
    assert_eq!(w["files"], 4);
    same_tree(&root, &out);
    // Sending it again moves nothing.
    let again = h.run(&["-p", "bob", "send", root.to_str().unwrap(), "--to", "alice", "--json"]).json();
    assert_eq!(again["sent"], 0);
}

/// Reads the ticket `alp send` prints, waiting at most 20 s.
fn ticket_of(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(Duration::from_secs(20)).expect("a ticket").trim().to_owned()
}

#[test]
fn a_ticket_from_send_is_redeemed_by_a_trusted_peer_for_that_blob_only() {
    let h = Home::new();
    h.init("alice");
    h.init("bob");
    h.init("carol");
    {
        let _bob = h.serve("bob");
        let t = h.run(&["-p", "bob", "invite"]).ok().trim().to_owned();
        h.run(&["-p", "alice", "pair", &t, "--name", "bob"]).ok();
    }
    // bob no longer serves: `alp send` serves the ticket itself.
    let root = tree(&h);
    let secret = h.path().join("other.txt");
    std::fs::write(&secret, b"not in the ticket").unwrap();
    let other = h.run(&["-p", "bob", "blob", "add", secret.to_str().unwrap()]).ok().trim().to_owned();
    let mut send = h.cmd(&["-p", "bob", "send", root.to_str().unwrap(), "--set", "node.listen=127.0.0.1:0"]);
    send.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut send = send.spawn().unwrap();
    let ticket = ticket_of(&mut send);
    assert!(ticket.starts_with("alpblob1"), "{ticket}");

    // A node bob does not trust cannot redeem it.
    let dest = h.path().join("carol-got");
    std::fs::create_dir(&dest).unwrap();
    h.run(&["-p", "carol", "receive", &ticket, "-o", dest.to_str().unwrap()]).fails(2, &["does not trust", "pair"]);

    // alice can: the tree lands in the folder given, under its name.
    let into = h.path().join("inbox");
    std::fs::create_dir(&into).unwrap();
    let v = h.run(&["-p", "alice", "receive", &ticket, "-o", into.to_str().unwrap(), "--json"]).json();
    assert_eq!((v["name"].as_str(), v["files"].as_u64()), (Some("project"), Some(4)));
    same_tree(&root, &into.join("project"));
    // Again: nothing moves, and nothing is overwritten without --force.
    h.run(&["-p", "alice", "receive", &ticket, "-o", into.to_str().unwrap()]).fails(2, &["exists", "--force"]);
    let again = h.run(&["-p", "alice", "receive", &ticket, "-o", into.to_str().unwrap(), "--force", "--json"]).json();
    assert_eq!(again["received"], 0);

    // The secret opens that folder and its files, nothing else; a ticket
    // with another secret opens nothing.
    let mut forged: alp_protocol::blob_ticket::BlobTicket = ticket.parse().unwrap();
    forged.hash = *other.parse::<alp_blobstore::BlobHash>().unwrap().as_bytes();
    forged.folder = false;
    h.run(&["-p", "alice", "receive", &forged.to_string(), "-o", "-"]).fails(1, &["no blob"]);
    let mut wrong: alp_protocol::blob_ticket::BlobTicket = ticket.parse().unwrap();
    wrong.secret[0] ^= 1;
    h.run(&["-p", "alice", "blob", "rm", &wrong.hash.iter().map(|b| format!("{b:02x}")).collect::<String>()]).ok();
    h.run(&["-p", "alice", "receive", &wrong.to_string(), "-o", "-"]).fails(1, &["no blob"]);
    let _ = send.kill();
    let _ = send.wait();
}

#[test]
fn a_file_fetched_to_stdout_and_over_an_existing_file() {
    let h = Home::new();
    h.init("alice");
    h.init("bob");
    let alice = h.serve("alice");
    let ticket = h.run(&["-p", "alice", "invite"]).ok().trim().to_owned();
    h.run(&["-p", "bob", "pair", &ticket, "--name", "alice"]).ok();
    h.run(&["-p", "alice", "peer", "allow", "bob", "blob.get"]).ok();
    let src = h.path().join("data.bin");
    std::fs::write(&src, vec![42u8; 100_000]).unwrap();
    let hash = h.run(&["-p", "alice", "blob", "add", src.to_str().unwrap()]).ok().trim().to_owned();
    h.run(&["-p", "alice", "blob", "share", &hash[..12], "--with", "bob"]).ok();
    let shared = h.run(&["-p", "alice", "blob", "ls", "--shared", "--json"]).json();
    assert_eq!(shared[0]["shared_with"], serde_json::json!(["bob"]));

    let mut c = h.cmd(&["-p", "bob", "blob", "get", &hash, "--from", "alice", "-o", "-"]);
    c.stdout(Stdio::piped());
    assert_eq!(c.output().unwrap().stdout, vec![42u8; 100_000], "the bytes, and only them, on stdout");
    let ls = h.run(&["-p", "bob", "blob", "ls", "--received", "--json"]).json();
    assert_eq!((ls[0]["origin"].as_str(), ls[0]["from"].as_str()), (Some("fetched"), Some("alice")));

    let target = h.path().join("data.bin");
    h.run(&["-p", "bob", "blob", "get", &hash, "--from", "alice", "-o", target.to_str().unwrap()])
        .fails(2, &["exists"]);
    drop(alice);
}

#[test]
fn a_file_added_by_reference_is_served_from_where_it_is_until_it_changes() {
    let h = Home::new();
    h.init("alice");
    h.init("bob");
    let _alice = h.serve("alice");
    let ticket = h.run(&["-p", "alice", "invite"]).ok().trim().to_owned();
    h.run(&["-p", "bob", "pair", &ticket, "--name", "alice"]).ok();
    h.run(&["-p", "alice", "peer", "allow", "bob", "blob.get"]).ok();
    let src = h.path().join("video.bin");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
    std::fs::write(&src, &bytes).unwrap();
    let v = h.run(&["-p", "alice", "blob", "add", "--reference", src.to_str().unwrap(), "--json"]).json();
    let hash = v["hash"].as_str().unwrap().to_owned();
    let data = h.path().join("profiles/alice/blobs/data").join(&hash);
    assert!(!data.exists(), "no copy in the store");
    let ls = h.run(&["-p", "alice", "blob", "ls", "--json"]).json();
    assert_eq!(ls[0]["reference"], src.to_str().unwrap());
    assert_eq!(ls[0]["changed"], false);
    h.run(&["-p", "alice", "blob", "share", &hash, "--with", "bob"]).ok();
    let mut c = h.cmd(&["-p", "bob", "blob", "get", &hash, "--from", "alice", "-o", "-"]);
    c.stdout(Stdio::piped());
    assert_eq!(c.output().unwrap().stdout, bytes, "served from the file itself");

    // The file changes: reported, refused to peers, found by verify.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&src, b"something else").unwrap();
    let ls = h.run(&["-p", "alice", "blob", "ls"]).ok().to_owned();
    assert!(ls.contains("CHANGED"), "{ls}");
    let v = h.run(&["-p", "alice", "blob", "verify", &hash]);
    assert_eq!(v.code, 1);
    assert!(
        v.stdout.starts_with("CHANGED") && v.stderr.contains("video.bin") && v.stderr.contains("add it again"),
        "{v:?}"
    );
    h.run(&["-p", "bob", "blob", "rm", &hash]).ok();
    let r = h.run(&["-p", "bob", "blob", "get", &hash, "--from", "alice"]);
    assert_ne!(r.code, 0, "never served wrong: {}", r.stderr);
    // Removing the blob leaves the user's file alone.
    h.run(&["-p", "alice", "blob", "rm", &hash]).ok();
    assert_eq!(std::fs::read(&src).unwrap(), b"something else");
}
