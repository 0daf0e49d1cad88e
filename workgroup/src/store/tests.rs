use super::*;
use crate::testing::Group;

#[test]
fn a_group_is_created_appended_and_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Group::new(2);
    let (mut files, log) = GroupFiles::create(dir.path(), g.log.genesis()).unwrap();
    assert_eq!(log.len(), 1);
    let rest: Vec<Event> = g.log.ordered().iter().skip(1).map(|e| (*e).clone()).collect();
    files.append(&rest).unwrap();
    let e = g.note(1, "more");
    files.append(&[e]).unwrap();
    let (_, reopened, opened) = GroupFiles::open(files.dir()).unwrap();
    assert_eq!(reopened.heads(), g.log.heads());
    assert_eq!(opened.cut_bytes, 0);
    assert_eq!(list(dir.path()).unwrap(), [files.dir().to_owned()]);
    assert!(GroupFiles::create(dir.path(), g.log.genesis()).is_err(), "created twice");
}

#[test]
fn a_write_cut_short_by_a_crash_is_set_aside_and_the_rest_loads() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Group::new(1);
    let (mut files, _) = GroupFiles::create(dir.path(), g.log.genesis()).unwrap();
    let e = g.note(0, "kept");
    files.append(&[e]).unwrap();
    let torn = g.note(0, "torn");
    let path = files.dir().join("events");
    let mut bytes = fs::read(&path).unwrap();
    let whole = bytes.len();
    push_frame(&mut bytes, &torn.bytes()[..20]);
    bytes.truncate(whole + 4 + 10);
    fs::write(&path, &bytes).unwrap();
    let (_, log, opened) = GroupFiles::open(files.dir()).unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(opened.cut_bytes, 14);
    assert_eq!(fs::read(&path).unwrap().len(), whole);
    assert_eq!(fs::read(files.dir().join(format!("events.cut-at-{whole}"))).unwrap().len(), 14);
}

#[test]
fn a_damaged_log_is_refused_naming_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Group::new(1);
    let (mut files, _) = GroupFiles::create(dir.path(), g.log.genesis()).unwrap();
    files.append(&[g.note(0, "one"), g.note(0, "two")]).unwrap();
    let path = files.dir().join("events");
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 70] ^= 1;
    fs::write(&path, &bytes).unwrap();
    match GroupFiles::open(files.dir()) {
        Err(StoreError::Damaged { problem, .. }) => assert_eq!(problem.index, 3),
        other => panic!("expected damage, got {other:?}"),
    }
}

#[test]
fn evidence_is_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Group::new(2);
    let (mut files, _) = GroupFiles::create(dir.path(), g.log.genesis()).unwrap();
    let rest: Vec<Event> = g.log.ordered().iter().skip(1).map(|e| (*e).clone()).collect();
    files.append(&rest).unwrap();
    let mut h = g.fork();
    let a = g.note(1, "a");
    let b = h.note(1, "b");
    files.append(std::slice::from_ref(&a)).unwrap();
    let Err(crate::log::Refused::Equivocation { proof: e, .. }) = g.log.ingest(b) else { panic!("equivocation") };
    files.append_evidence(&e).unwrap();
    let (_, log, _) = GroupFiles::open(files.dir()).unwrap();
    assert_eq!(log.forks().get(&g.node(1)), Some(&a.header().seq));
}
