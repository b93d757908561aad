//! Real git repositories for change-detection tests, and `changed --json` run both ways
//! (fast path and `--exhaustive`), which must agree.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::{stderr, stdout, xtask};

/// Runs git in `dir`; returns trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

pub fn commit(dir: &Path, msg: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", msg]);
    git(dir, &["rev-parse", "HEAD"])
}

/// `changed --json`, run three ways: the fast path (changed paths pick the services to
/// compare) with the memo earlier calls left in the git directory, the fast path again (with
/// the memo the first run wrote), and `--exhaustive` (every service's digests compared, no
/// memo). All must give the same answer, in every scenario of the suites that use it.
pub fn changed(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Value {
    let run = |extra: Option<&str>| -> Value {
        let mut all = vec!["changed", "--json"];
        all.extend_from_slice(args);
        all.extend(extra);
        let out = xtask(dir, &all, env);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    let fast = run(None);
    let again = run(None);
    let exhaustive = run(Some("--exhaustive"));
    assert_eq!(
        fast, exhaustive,
        "the changed-path fast path (with the memo earlier calls left) and the digest comparison disagree"
    );
    assert_eq!(
        again, exhaustive,
        "the changed-path fast path (with the memo of the same call) and the digest comparison disagree"
    );
    fast
}

pub fn between(dir: &Path, base: &str, head: &str) -> Value {
    changed(dir, &["--base", base, "--head", head], &[])
}

pub fn selected(v: &Value) -> Vec<String> {
    v["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["selected"] == true)
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

pub fn reasons(v: &Value, name: &str) -> String {
    let s = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {v}"));
    s["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn digest(v: &Value, name: &str) -> String {
    v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()["input_digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A service's notes (where its inputs were widened), joined.
pub fn notes(v: &Value, name: &str) -> String {
    let s = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {v}"));
    s["notes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r.as_str().unwrap())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}
