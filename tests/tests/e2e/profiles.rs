//! `alp init`, `alp id`, `alp profile …`, home and profile selection.

use std::os::unix::fs::PermissionsExt;

use crate::common::{Home, bare_cmd, output};

#[test]
fn init_creates_identity_and_config_and_prints_the_id() {
    let h = Home::new();
    let r = h.run(&["init"]);
    let id = r.ok().trim();
    assert!(id.starts_with("alp1") && id.len() == 62, "{id}");
    assert_eq!(r.stdout.lines().count(), 1);
    assert!(r.stderr.contains("created profile 'personal'"));
    let dir = h.path().join("profiles/personal");
    let key = std::fs::metadata(dir.join("identity.key")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains("# listen = \"[::]:7117\""), "{config}");
    assert_eq!(h.run(&["id"]).ok().trim(), id);
}

#[test]
fn init_twice_changes_nothing() {
    let h = Home::new();
    let id = h.init("personal");
    let key = h.path().join("profiles/personal/identity.key");
    let before = std::fs::read(&key).unwrap();
    let r = h.run(&["init"]);
    assert_eq!(r.ok().trim(), id);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    assert_eq!(std::fs::read(&key).unwrap(), before);
}

#[test]
fn id_json() {
    let h = Home::new();
    let id = h.init("research");
    let v = h.run(&["-p", "research", "id", "--json"]).json();
    assert_eq!(v, serde_json::json!({"profile": "research", "node_id": id}));
}

#[test]
fn missing_profile_suggests_init() {
    let h = Home::new();
    for args in [&["id"][..], &["peer", "list"], &["config", "show"], &["profile", "show"]] {
        h.run(args).fails(2, &["profile 'personal' does not exist", "alp init"]);
    }
}

#[test]
fn bad_profile_names_are_refused() {
    let h = Home::new();
    let long = "x".repeat(65);
    for bad in ["../x", "a/b", "", "Upper", ".hidden", long.as_str()] {
        let r = h.run(&["-p", bad, "init"]);
        r.fails(2, &["invalid name"]);
        let r = output({
            let mut c = h.cmd(&["init"]);
            c.env("ALP_PROFILE", bad);
            c
        });
        assert_eq!(r.code, 2, "ALP_PROFILE={bad:?}: {}", r.stderr);
    }
    assert!(!h.path().join("profiles").exists() || h.path().join("profiles").read_dir().unwrap().count() == 0);
}

#[test]
fn profile_selection_flag_beats_env() {
    let h = Home::new();
    let a = h.init("alpha");
    let b = h.init("beta");
    let mut c = h.cmd(&["id"]);
    c.env("ALP_PROFILE", "alpha");
    assert_eq!(output(c).ok().trim(), a);
    let mut c = h.cmd(&["-p", "beta", "id"]);
    c.env("ALP_PROFILE", "alpha");
    assert_eq!(output(c).ok().trim(), b);
}

#[test]
fn home_selection_flag_beats_env_beats_platform_dir() {
    let flag = Home::new();
    let env = Home::new();
    let platform = Home::new();
    let run = |with_flag: bool, with_env: bool| {
        let mut c = bare_cmd();
        c.env("HOME", platform.path()).env("XDG_DATA_HOME", platform.path().join("data"));
        if with_env {
            c.env("ALP_HOME", env.path());
        }
        if with_flag {
            c.arg("--home").arg(flag.path());
        }
        c.arg("init");
        output(c).ok().to_owned()
    };
    run(true, true);
    assert!(flag.path().join("profiles/personal").is_dir());
    assert!(!env.path().join("profiles").exists());
    run(false, true);
    assert!(env.path().join("profiles/personal").is_dir());
    run(false, false);
    assert!(platform.path().join("data/alp/profiles/personal").is_dir());
}

#[test]
fn profile_list_and_show() {
    let h = Home::new();
    assert_eq!(h.run(&["profile", "list"]).ok(), "");
    let a = h.init("alpha");
    let b = h.init("beta");
    let text = h.run(&["-p", "beta", "profile", "list"]).ok().to_owned();
    assert!(text.contains(&format!("  alpha  {a}")), "{text}");
    assert!(text.contains(&format!("* beta   {b}")), "{text}");
    let v = h.run(&["-p", "beta", "profile", "list", "--json"]).json();
    assert_eq!(v[0]["name"], "alpha");
    assert_eq!(v[1]["current"], true);
    let v = h.run(&["profile", "show", "alpha", "--json"]).json();
    assert_eq!(v["node_id"], a.as_str());
    assert_eq!(v["peers"], 0);
    let text = h.run(&["profile", "show", "alpha"]).ok().to_owned();
    assert!(text.contains(&a) && text.contains("peers:   0"), "{text}");
    h.run(&["profile", "show", "ghost"]).fails(2, &["does not exist"]);
}

#[test]
fn profile_remove_needs_yes() {
    let h = Home::new();
    h.init("scratch");
    let r = h.run(&["profile", "remove", "scratch"]);
    assert!(r.ok().contains("identity.key"), "{}", r.stdout);
    assert!(r.stderr.contains("--yes"));
    assert!(h.path().join("profiles/scratch/identity.key").exists());
    h.run(&["profile", "remove", "scratch", "--yes"]).ok();
    assert!(!h.path().join("profiles/scratch").exists());
    h.run(&["profile", "remove", "scratch", "--yes"]).fails(2, &["does not exist"]);
}

#[test]
fn broken_identity_is_reported_not_replaced() {
    let h = Home::new();
    h.init("personal");
    let key = h.path().join("profiles/personal/identity.key");
    std::fs::write(&key, "garbage\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    h.run(&["id"]).fails(2, &["identity key", "corrupted", key.to_str().unwrap()]);
    h.run(&["init"]).fails(2, &["corrupted"]);
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "garbage\n");
}

#[test]
fn readable_identity_is_refused() {
    let h = Home::new();
    h.init("personal");
    let key = h.path().join("profiles/personal/identity.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    h.run(&["id"]).fails(2, &["readable by other users", "chmod 600"]);
}

/// Files and directories others may write could say whom this node
/// trusts: they are refused (a profile directory is repaired by `init`).
#[test]
fn trust_files_and_profile_dirs_others_can_write_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let h = Home::new();
    h.init("personal");
    let root = h.path().join("profiles/personal");
    h.run(&["peer", "add", "bob", "alp1af9xcclzn3fq40h42pa3xtk9lx25wa4wh6l8hyjzrm4xj9zx6gkq925ews"]).ok();
    let peers = root.join("peers.toml");
    std::fs::set_permissions(&peers, std::fs::Permissions::from_mode(0o666)).unwrap();
    h.run(&["peer", "list"]).fails(2, &["peers.toml", "writable by others (mode 666)", "chmod 600"]);
    std::fs::set_permissions(&peers, std::fs::Permissions::from_mode(0o600)).unwrap();
    h.run(&["peer", "list"]).ok();

    let config = root.join("config.toml");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o662)).unwrap();
    h.run(&["config", "show"]).fails(2, &["config.toml", "writable by others"]);
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();

    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    h.run(&["id"]).fails(2, &["writable by others (mode 777)", "chmod 700"]);
    let r = h.run(&["init"]);
    r.ok();
    assert!(r.stderr.contains("was writable by others (mode 777); it is now 0700"), "{}", r.stderr);
    assert_eq!(std::fs::metadata(&root).unwrap().permissions().mode() & 0o777, 0o700);
    h.run(&["id"]).ok();
}

/// `alp status`: the profile, its node, its peers, blobs and today's spend.
#[test]
fn status_shows_the_node_its_peers_blobs_and_spend() {
    let h = Home::new();
    let id = h.init("alice");
    h.init("bob");
    let v = h.run(&["-p", "alice", "status", "--json"]).json();
    assert_eq!(v["node_id"], id.as_str());
    assert!(v.get("serving").is_none(), "not serving yet");
    assert!(h.run(&["-p", "alice", "status"]).ok().contains("not serving (start it with `alp serve`)"));
    let alice = h.serve("alice");
    let ticket = h.run(&["-p", "alice", "invite"]).ok().trim().to_owned();
    h.run(&["-p", "bob", "pair", &ticket, "--name", "alice"]).ok();
    let f = h.path().join("f.txt");
    std::fs::write(&f, b"hello").unwrap();
    h.run(&["-p", "alice", "blob", "add", f.to_str().unwrap()]).ok();
    h.run(&["-p", "alice", "--set", "budget.daily_tokens=1000", "status"]).ok();
    let v = h.run(&["-p", "alice", "--set", "budget.daily_tokens=1000", "status", "--json"]).json();
    assert_eq!(v["serving"]["addr"], alice.addr.to_string());
    assert_eq!(v["peers"][0]["name"], "bob");
    assert!(v["peers"][0]["last_seen"].is_u64());
    assert_eq!((v["blobs"]["count"].as_u64(), v["blobs"]["bytes"].as_u64()), (Some(1), Some(5)));
    assert_eq!(v["today"]["daily_tokens_cap"], 1000);
    let text = h.run(&["-p", "alice", "--set", "budget.daily_tokens=1000", "status"]).ok().to_owned();
    assert!(
        text.contains(&format!("serving on {}", alice.addr))
            && text.contains("bob")
            && text.contains("0 of 1000 tokens"),
        "{text}"
    );
}

/// A mistyped profile or config key gets the name meant, and the advice to
/// create a profile says it would be a new one.
#[test]
fn typos_in_profiles_and_config_keys_get_the_name_meant() {
    let h = Home::new();
    h.init("research");
    h.run(&["-p", "reserch", "id"])
        .fails(2, &["'reserch' does not exist", "did you mean 'research'", "alp init -p reserch"]);
    h.run(&["-p", "research", "--set", "model.max_token=5", "config", "show"])
        .fails(2, &["unknown config key `model.max_token`", "did you mean `model.max_tokens`"]);
}

/// `alp profile use`: the profile commands act as when none is named.
#[test]
fn profile_use_sets_the_default_and_a_flag_still_wins() {
    let h = Home::new();
    let personal = h.init("personal");
    let research = h.init("research");
    assert_eq!(h.run(&["id"]).ok().trim(), personal);
    h.run(&["profile", "use", "research"]).ok();
    assert_eq!(h.run(&["id"]).ok().trim(), research);
    assert_eq!(h.run(&["-p", "personal", "id"]).ok().trim(), personal);
    assert!(h.run(&["profile", "list"]).ok().contains("* research"));
    h.run(&["profile", "use", "reserch"]).fails(2, &["did you mean 'research'"]);
}

/// `alp doctor`: each check with what to fix; exit 1 only on failures.
#[test]
fn doctor_checks_and_says_what_to_fix() {
    let h = Home::new();
    let r = h.run(&["--json", "-p", "nobody", "doctor"]);
    assert_eq!(r.code, 1);
    let checks: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!((checks[0]["what"].as_str(), checks[0]["status"].as_str()), (Some("profile"), Some("fail")));

    h.init("alice");
    let bob = h.init("bob");
    let _bob_node = h.serve("bob");
    let addr = h.run(&["-p", "bob", "status", "--json"]).json()["serving"]["addr"].as_str().unwrap().to_owned();
    h.run(&["-p", "alice", "peer", "add", "bob", &bob, "--addr", &addr]).ok();
    h.run(&["-p", "bob", "peer", "add", "alice", h.run(&["-p", "alice", "id"]).ok().trim()]).ok();
    let carol = h.init("carol");
    h.run(&["-p", "alice", "peer", "add", "carol", &carol]).ok();
    let v = h.run(&["-p", "alice", "doctor", "--json"]).json();
    let find = |w: &str| v.as_array().unwrap().iter().find(|c| c["what"] == w).unwrap().clone();
    assert_eq!(find("peer bob")["status"], "ok", "{v}");
    assert_eq!(find("peer carol")["status"], "warn");
    assert!(find("peer carol")["fix"].as_str().unwrap().contains("alp peer set carol --addr"));
    assert_eq!(find("node")["status"], "warn");
    assert!(h.run(&["-p", "alice", "doctor"]).ok().contains("fix: alp serve"));
}

/// The first profile of a home listens on the default port; each later one
/// is given its own in its config.toml, so their nodes serve side by side.
#[test]
fn later_profiles_get_their_own_listen_port() {
    let h = Home::new();
    let port = |p: &str| -> (u16, String) {
        let v = h.run(&["-p", p, "--json", "config", "show"]).json();
        let e = v.as_array().unwrap().iter().find(|e| e["key"] == "node.listen").unwrap().clone();
        let addr: std::net::SocketAddr = e["value"].as_str().unwrap().parse().unwrap();
        (addr.port(), e["source"].as_str().unwrap().to_owned())
    };
    h.init("personal");
    assert_eq!(port("personal"), (7117, "default".to_owned()));
    h.init("research");
    h.init("writer");
    let (research, source) = port("research");
    assert!(source.contains("config.toml"), "{source}");
    let (writer, _) = port("writer");
    assert!(research > 7117 && writer > 7117 && research != writer, "{research} {writer}");
    let text = std::fs::read_to_string(h.path().join("profiles/research/config.toml")).unwrap();
    assert!(text.contains("Chosen by `alp init`"), "{text}");
}
