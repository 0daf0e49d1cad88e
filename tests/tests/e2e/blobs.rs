//! `alp blob …` on the local store.

use crate::common::{Home, output};

fn file(h: &Home, name: &str, bytes: &[u8]) -> String {
    let p = h.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn add_ls_cat_export_rm_round_trip() {
    let h = Home::new();
    h.init("personal");
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
    let src = file(&h, "data.bin", &bytes);
    let hash = h.run(&["blob", "add", &src]).ok().trim().to_owned();
    assert_eq!(hash, blake3::hash(&bytes).to_hex().as_str(), "the address is b3sum's");
    let v = h.run(&["blob", "add", &src, "--json"]).json();
    assert_eq!(v["size"], 200_000);
    let v = h.run(&["blob", "ls", "--json"]).json();
    assert_eq!(v.as_array().unwrap().len(), 1, "same content stored once");
    assert!(h.run(&["blob", "ls"]).ok().contains(&hash));

    let mut c = h.cmd(&["blob", "cat", &hash]);
    c.stdout(std::process::Stdio::piped());
    let out = c.output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, bytes);

    let dest = h.path().join("copy.bin");
    h.run(&["blob", "export", &hash, dest.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
    assert_eq!(h.run(&["blob", "verify"]).ok().trim(), format!("ok       {hash}"));

    h.run(&["blob", "rm", &hash]).ok();
    h.run(&["blob", "cat", &hash]).fails(2, &["not in the store"]);
    h.run(&["blob", "rm", &hash]).fails(2, &["not in the store"]);
}

#[test]
fn bad_hashes_and_missing_files_are_refused() {
    let h = Home::new();
    h.init("personal");
    h.run(&["blob", "cat", "xyz"]).fails(2, &["xyz", "64 hex"]);
    h.run(&["blob", "add", "/nonexistent/file"]).fails(1, &["/nonexistent/file"]);
    h.run(&["blob", "export", &"ab".repeat(32), "/tmp/x"]).fails(2, &["not in the store"]);
}

#[test]
fn verify_reports_damage_with_exit_1() {
    let h = Home::new();
    h.init("personal");
    let good = file(&h, "good", b"fine");
    let bad = file(&h, "bad", &[9u8; 70_000]);
    h.run(&["blob", "add", &good]).ok();
    let bad_hash = h.run(&["blob", "add", &bad]).ok().trim().to_owned();
    let stored = h.path().join("profiles/personal/blobs/data").join(&bad_hash);
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[40_000] ^= 1;
    std::fs::write(&stored, bytes).unwrap();
    let r = h.run(&["blob", "verify"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.contains(&format!("DAMAGED  {bad_hash}")) && r.stdout.contains("ok "), "{}", r.stdout);
    assert!(r.stderr.contains("1 of 2 blobs failed verification"), "{}", r.stderr);
    let mut c = h.cmd(&["blob", "verify", "--json"]);
    c.env("NO_COLOR", "1");
    let r = output(c);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().iter().filter(|b| b["ok"] == false).count(), 1);
}

#[test]
fn cat_into_a_closed_pipe_exits_quietly() {
    let h = Home::new();
    h.init("personal");
    let src = file(&h, "big", &vec![1u8; 3_000_000]);
    let hash = h.run(&["blob", "add", &src]).ok().trim().to_owned();
    let mut child = h.cmd(&["blob", "cat", &hash]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    assert!(child.wait().unwrap().success());
}
