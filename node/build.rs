//! Names the commit in `alp --version`: `git rev-parse` at build time, or
//! `ALP_COMMIT` from the environment, or "unknown" (a source tarball).

fn main() {
    let commit = std::env::var("ALP_COMMIT").ok().filter(|c| !c.is_empty()).or_else(|| {
        let out = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
        let hash = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (out.status.success() && !hash.is_empty()).then_some(hash)
    });
    println!("cargo:rustc-env=ALP_COMMIT={}", commit.unwrap_or_else(|| "unknown".to_owned()));
    println!("cargo:rerun-if-env-changed=ALP_COMMIT");
    // A new commit moves HEAD or the branch it names.
    println!("cargo:rerun-if-changed=../.git/HEAD");
    // (Only if it exists: a missing path would rerun this every build.)
    if let Ok(head) = std::fs::read_to_string("../.git/HEAD")
        && let Some(branch) = head.strip_prefix("ref: ")
        && std::path::Path::new("../.git").join(branch.trim()).exists()
    {
        println!("cargo:rerun-if-changed=../.git/{}", branch.trim());
    }
}
