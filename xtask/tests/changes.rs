//! `cargo xtask changed` on real git repositories (made with the git CLI in temp dirs): every
//! case issue #3 names, each checked by the services selected and the reasons given.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::repo::{between, changed, commit, digest, git, reasons, selected, write};
use support::{stderr, stdout, xtask};

const LOCK: &str = r#"version = 4

[[package]]
name = "api"
version = "0.1.0"
dependencies = ["common", "serde"]

[[package]]
name = "common"
version = "0.1.0"

[[package]]
name = "other"
version = "0.1.0"

[[package]]
name = "serde"
version = "1.0.1"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "aa"

[[package]]
name = "worker"
version = "0.1.0"
dependencies = ["other"]
"#;

fn krate(dir: &Path, path: &str, name: &str, deps: &[(&str, &str)], bin: bool) {
    let deps: String = deps
        .iter()
        .map(|(n, p)| format!("{n} = {{ path = \"{p}\" }}\n"))
        .collect();
    write(
        dir,
        &format!("{path}/Cargo.toml"),
        &format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n{deps}"),
    );
    let file = if bin { "src/main.rs" } else { "src/lib.rs" };
    write(dir, &format!("{path}/{file}"), "// code\n");
}

/// A monorepo with Rust services sharing crates, a static site with .dockerignore and watch
/// globs, a service built FROM another, and one whose context is the repository root.
fn monorepo() -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    git(r, &["init", "-q"]);
    write(
        r,
        "Cargo.toml",
        "[workspace]\nresolver = \"2\"\nmembers = [\"crates/*\", \"services/api\", \"services/worker\"]\n\n\
         [workspace.metadata.images]\nregistries = [\"127.0.0.1:1\"]\n\n[profile.release]\nlto = false\n",
    );
    write(r, "Cargo.lock", LOCK);
    write(r, ".gitignore", "/target\n");
    write(r, "VERSION", "1.0.0\n");
    write(r, ".cargo/config.toml", "[build]\n");
    write(r, "README.md", "monorepo\n");
    krate(r, "crates/common", "common", &[], false);
    krate(r, "crates/other", "other", &[], false);
    krate(
        r,
        "services/api",
        "api",
        &[("common", "../../crates/common")],
        true,
    );
    // api compiles serde from the registry (the lock says so too).
    let api = std::fs::read_to_string(r.join("services/api/Cargo.toml")).unwrap();
    write(
        r,
        "services/api/Cargo.toml",
        &format!("{api}serde = \"1\"\n"),
    );
    krate(
        r,
        "services/worker",
        "worker",
        &[("other", "../../crates/other")],
        true,
    );
    for s in ["api", "worker"] {
        write(
            r,
            &format!("services/{s}/Dockerfile"),
            "FROM scratch\nCOPY bin/app /app\n",
        );
    }
    write(
        r,
        "services/web/Dockerfile",
        "FROM busybox:1.35\nCOPY www/ /www/\n",
    );
    write(r, "services/web/www/index.html", "<p>hi</p>\n");
    write(r, "services/web/README.md", "about the site\n");
    write(r, "services/web/.dockerignore", "*.md\n");
    write(
        r,
        "services/web/service.toml",
        "watch = [\"docs/web/**\"]\n",
    );
    write(r, "docs/web/guide.md", "guide\n");
    write(r, "docs/other.md", "other\n");
    write(
        r,
        "services/edge/Dockerfile",
        "FROM 127.0.0.1:1/web:latest\n",
    );
    write(r, "services/edge/service.toml", "depends_on = [\"web\"]\n");
    write(
        r,
        "services/gateway/Dockerfile",
        "FROM busybox:1.35\nCOPY shared/conf.toml /etc/conf.toml\n",
    );
    write(r, "services/gateway/service.toml", "context = \"../..\"\n");
    write(r, "shared/conf.toml", "a = 1\n");
    write(r, "shared/unrelated.txt", "x\n");
    let base = commit(r, "base");
    (d, base)
}

#[test]
fn an_edit_in_a_service_selects_it_and_what_builds_from_it() {
    let (d, base) = monorepo();
    write(d.path(), "services/web/www/index.html", "<p>hello</p>\n");
    let head = commit(d.path(), "edit web");
    let v = between(d.path(), &base, &head);
    assert_eq!(selected(&v), ["edge", "web"]);
    assert_eq!(reasons(&v, "web"), "changed: services/web/www/index.html");
    assert_eq!(reasons(&v, "edge"), "builds FROM web, which changed");
    assert_eq!(reasons(&v, "api"), "no change in its inputs");
    assert_eq!(v["base"], base.as_str());
    assert_eq!(v["head"], head.as_str());
    assert_eq!(
        v["services"].as_array().unwrap().len(),
        5,
        "sorted, every service"
    );
}

#[test]
fn an_edit_in_a_shared_crate_selects_its_dependents_only() {
    let (d, base) = monorepo();
    write(d.path(), "crates/common/src/lib.rs", "// changed\n");
    let head = commit(d.path(), "edit common");
    let v = between(d.path(), &base, &head);
    assert_eq!(selected(&v), ["api"]);
    assert_eq!(
        reasons(&v, "api"),
        "dependency crates/common changed: crates/common/src/lib.rs"
    );
}

#[test]
fn a_lock_bump_selects_only_the_services_that_use_it() {
    let (d, base) = monorepo();
    write(
        d.path(),
        "Cargo.lock",
        &LOCK.replace("1.0.1", "1.0.2").replace("\"aa\"", "\"bb\""),
    );
    let head = commit(d.path(), "bump serde");
    let v = between(d.path(), &base, &head);
    assert_eq!(selected(&v), ["api"]);
    assert_eq!(reasons(&v, "api"), "Cargo.lock: serde 1.0.1 → 1.0.2");
    assert_eq!(reasons(&v, "worker"), "no change in its inputs");
}

#[test]
fn a_rename_from_one_service_into_another_selects_both() {
    let (d, base) = monorepo();
    write(d.path(), "services/api/src/extra.rs", "// moves\n");
    let mid = commit(d.path(), "add extra");
    git(
        d.path(),
        &[
            "mv",
            "services/api/src/extra.rs",
            "services/worker/src/extra.rs",
        ],
    );
    let head = commit(d.path(), "move extra");
    let v = between(d.path(), &mid, &head);
    assert_eq!(selected(&v), ["api", "worker"]);
    assert!(reasons(&v, "api").contains("services/api/src/extra.rs"));
    assert!(reasons(&v, "worker").contains("services/worker/src/extra.rs"));
    let _ = base;
}

#[test]
fn a_deleted_service_is_reported_as_removed() {
    let (d, base) = monorepo();
    git(d.path(), &["rm", "-q", "-r", "services/gateway"]);
    let head = commit(d.path(), "drop gateway");
    let v = between(d.path(), &base, &head);
    assert!(selected(&v).is_empty(), "{v}");
    let gw = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "gateway")
        .unwrap();
    assert_eq!(gw["removed"], true);
    assert_eq!(gw["selected"], false);
    assert_eq!(
        reasons(&v, "gateway"),
        "removed: services/gateway is gone at head"
    );
}

#[test]
fn cargo_config_and_profiles_select_the_rust_services_only() {
    let (d, base) = monorepo();
    write(d.path(), ".cargo/config.toml", "[build]\njobs = 2\n");
    let head = commit(d.path(), "cargo config");
    let v = between(d.path(), &base, &head);
    assert_eq!(selected(&v), ["api", "worker"]);
    assert_eq!(reasons(&v, "api"), "toolchain: .cargo changed");
    assert_eq!(reasons(&v, "web"), "no change in its inputs");

    write(
        d.path(),
        "Cargo.toml",
        &std::fs::read_to_string(d.path().join("Cargo.toml"))
            .unwrap()
            .replace("lto = false", "lto = true"),
    );
    let head2 = commit(d.path(), "profile");
    let v = between(d.path(), &head, &head2);
    assert_eq!(selected(&v), ["api", "worker"]);
    assert_eq!(reasons(&v, "api"), "Cargo.toml [profile.release] changed");

    // shared_paths select every service that lists them.
    let manifest = std::fs::read_to_string(d.path().join("Cargo.toml")).unwrap();
    write(
        d.path(),
        "Cargo.toml",
        &manifest.replace(
            "[workspace.metadata.images]\n",
            "[workspace.metadata.images]\nshared_paths = [\"ci/**\"]\n",
        ),
    );
    let head3 = commit(d.path(), "shared paths");
    write(d.path(), "ci/common.env", "A=1\n");
    let head4 = commit(d.path(), "ci env");
    let v = between(d.path(), &head3, &head4);
    assert_eq!(selected(&v).len(), 5, "{v}");
    assert_eq!(reasons(&v, "web"), "global: ci/common.env");
}

#[test]
fn working_tree_edits_staged_and_unstaged_are_included_locally() {
    let (d, _) = monorepo();
    write(d.path(), "services/web/www/index.html", "<p>staged</p>\n");
    git(d.path(), &["add", "services/web/www/index.html"]);
    write(d.path(), "services/worker/src/main.rs", "// unstaged\n");
    write(d.path(), "services/api/src/new.rs", "// untracked\n");
    let v = changed(d.path(), &[], &[]);
    assert_eq!(v["working_tree"], true);
    assert!(
        v["comparison"]
            .as_str()
            .unwrap()
            .contains("merge-base of main"),
        "{v}"
    );
    assert_eq!(selected(&v), ["api", "edge", "web", "worker"]);
    assert_eq!(reasons(&v, "api"), "changed: services/api/src/new.rs");
    // With --head the working tree is not looked at.
    let head = git(d.path(), &["rev-parse", "HEAD"]);
    let v = changed(d.path(), &["--base", &head, "--head", &head], &[]);
    assert!(selected(&v).is_empty(), "{v}");
}

#[test]
fn a_shallow_clone_without_the_base_selects_everything_and_says_how_to_fix_it() {
    let (d, base) = monorepo();
    write(d.path(), "services/web/www/index.html", "<p>2</p>\n");
    commit(d.path(), "two");
    let clone = tempfile::tempdir().unwrap();
    let url = format!("file://{}", d.path().display());
    let out = Command::new("git")
        .args(["clone", "-q", "--depth", "1", &url])
        .arg(clone.path().join("c"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = clone.path().join("c");
    let v = changed(&c, &["--base", &base], &[]);
    assert_eq!(selected(&v).len(), 5, "never nothing: {v}");
    assert!(v["base"].is_null());
    assert!(
        reasons(&v, "api").contains(&format!(
            "base {} is not in this shallow clone (depth 1): fetch with fetch-depth: 0",
            &base[..7]
        )),
        "{}",
        reasons(&v, "api")
    );
    let out = xtask(&c, &["changed", "--base", &base, "--strict"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--strict: cannot tell what changed"),
        "{}",
        stderr(&out)
    );
}

/// The GitHub Actions variables and event file of a push.
fn push_env(dir: &Path, branch: &str, before: &str, sha: &str) -> Vec<(String, String)> {
    let event = dir.join("target/event.json");
    write(
        dir,
        "target/event.json",
        &format!(
            r#"{{"ref":"refs/heads/{branch}","before":"{before}","after":"{sha}","repository":{{"default_branch":"main"}}}}"#
        ),
    );
    vec![
        ("GITHUB_ACTIONS".into(), "true".into()),
        ("GITHUB_EVENT_NAME".into(), "push".into()),
        ("GITHUB_REF".into(), format!("refs/heads/{branch}")),
        ("GITHUB_SHA".into(), sha.into()),
        ("GITHUB_EVENT_PATH".into(), event.display().to_string()),
    ]
}

fn changed_in_ci(dir: &Path, env: &[(String, String)]) -> Value {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    changed(dir, &[], &env)
}

#[test]
fn a_push_uses_before_and_a_new_branch_uses_the_merge_base_with_main() {
    let (d, _) = monorepo();
    let r = d.path();
    git(r, &["checkout", "-q", "-b", "feature"]);
    write(r, "services/worker/src/main.rs", "// feature 1\n");
    let f1 = commit(r, "f1");
    write(r, "services/web/www/index.html", "<p>feature 2</p>\n");
    let f2 = commit(r, "f2");
    // An ordinary push: before = f1.
    let v = changed_in_ci(r, &push_env(r, "feature", &f1, &f2));
    assert_eq!(v["comparison"], format!("the push's before = {}", &f1[..7]));
    assert_eq!(selected(&v), ["edge", "web"]);
    // The branch's first push: before is all zeros.
    let v = changed_in_ci(r, &push_env(r, "feature", &"0".repeat(40), &f2));
    assert!(
        v["comparison"]
            .as_str()
            .unwrap()
            .starts_with("a new branch (before is all zeros); merge-base of main"),
        "{v}"
    );
    assert_eq!(selected(&v), ["edge", "web", "worker"]);
}

#[test]
fn a_force_push_compares_with_the_dropped_tip_so_nothing_it_built_is_left_stale() {
    let (d, _) = monorepo();
    let r = d.path();
    git(r, &["checkout", "-q", "-b", "feature"]);
    write(r, "services/worker/src/main.rs", "// old attempt\n");
    let old = commit(r, "old");
    git(r, &["reset", "-q", "--hard", "main"]);
    write(r, "services/web/www/index.html", "<p>rewritten</p>\n");
    let new = commit(r, "new");
    let v = changed_in_ci(r, &push_env(r, "feature", &old, &new));
    assert_eq!(
        v["comparison"],
        format!(
            "force push: before {} is not an ancestor of {}; compared with it directly",
            &old[..7],
            &new[..7]
        )
    );
    assert_eq!(
        selected(&v),
        ["edge", "web", "worker"],
        "worker's image under the branch tag holds the dropped edit: rebuild it"
    );
    // A before the clone does not have (gone after the force push): everything, with why.
    let v = changed_in_ci(r, &push_env(r, "feature", &"1234567".repeat(6)[..40], &new));
    assert_eq!(selected(&v).len(), 5, "{v}");
    assert!(
        reasons(&v, "api").contains("is not in this clone (a force push?)"),
        "{v}"
    );
}

/// A GitHub Actions run of `event` with this event file.
fn actions_env(
    dir: &Path,
    event: &str,
    git_ref: &str,
    sha: &str,
    payload: &str,
) -> Vec<(String, String)> {
    write(dir, "target/event.json", payload);
    vec![
        ("GITHUB_ACTIONS".into(), "true".into()),
        ("GITHUB_EVENT_NAME".into(), event.into()),
        ("GITHUB_REF".into(), git_ref.into()),
        ("GITHUB_SHA".into(), sha.into()),
        (
            "GITHUB_EVENT_PATH".into(),
            dir.join("target/event.json").display().to_string(),
        ),
    ]
}

#[test]
fn every_ci_event_shape_selects_something_or_says_why_everything() {
    let (d, base) = monorepo();
    let r = d.path();
    write(r, "services/web/www/index.html", "<p>on main</p>\n");
    let head = commit(r, "main moves");
    let repo = r#""repository":{"default_branch":"main"}"#;
    // workflow_dispatch and schedule on the default branch: no previous commit to compare.
    for event in ["workflow_dispatch", "schedule"] {
        let v = changed_in_ci(
            r,
            &actions_env(r, event, "refs/heads/main", &head, &format!("{{{repo}}}")),
        );
        assert_eq!(selected(&v).len(), 5, "{event}: {v}");
        assert!(
            reasons(&v, "api")
                .starts_with(&format!("{event} has no previous commit to compare with")),
            "{v}"
        );
    }
    // merge_group: its base_sha.
    let payload =
        format!(r#"{{"merge_group":{{"base_sha":"{base}","head_sha":"{head}"}},{repo}}}"#);
    let v = changed_in_ci(
        r,
        &actions_env(
            r,
            "merge_group",
            "refs/heads/gh-readonly-queue/main/pr-7-abc",
            &head,
            &payload,
        ),
    );
    assert_eq!(selected(&v), ["edge", "web"], "{v}");
    assert_eq!(v["base"], base.as_str());
    // pull_request_target whose head is not in the clone (it checks out the base branch).
    let missing = "ab".repeat(20);
    let payload = format!(
        r#"{{"number":9,"pull_request":{{"number":9,"head":{{"sha":"{missing}","ref":"fork-topic"}},"base":{{"ref":"main"}}}},{repo}}}"#
    );
    let v = changed_in_ci(
        r,
        &actions_env(r, "pull_request_target", "refs/heads/main", &head, &payload),
    );
    assert_eq!(selected(&v).len(), 5, "{v}");
    assert!(
        reasons(&v, "web").contains("pull_request_target checks out the base branch"),
        "{v}"
    );
    // The same with --strict fails instead.
    let env = actions_env(r, "pull_request_target", "refs/heads/main", &head, &payload);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = xtask(r, &["changed", "--strict"], &env);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not in this clone"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_merge_commit_brings_in_the_merged_branch_changes() {
    let (d, _) = monorepo();
    let r = d.path();
    git(r, &["checkout", "-q", "-b", "topic"]);
    write(r, "services/worker/src/main.rs", "// topic\n");
    commit(r, "topic");
    git(r, &["checkout", "-q", "main"]);
    write(r, "services/web/www/index.html", "<p>main moved</p>\n");
    let m1 = commit(r, "main moves");
    git(r, &["merge", "-q", "--no-ff", "-m", "merge topic", "topic"]);
    let merge = git(r, &["rev-parse", "HEAD"]);
    let v = between(r, &m1, &merge);
    assert_eq!(selected(&v), ["worker"]);
    let v = between(r, "HEAD~2", &merge);
    assert!(selected(&v).contains(&"worker".to_string()), "{v}");
}

#[test]
fn watch_globs_select_a_non_rust_service() {
    let (d, base) = monorepo();
    write(d.path(), "docs/web/guide.md", "new guide\n");
    write(d.path(), "docs/other.md", "not watched\n");
    let head = commit(d.path(), "docs");
    let v = between(d.path(), &base, &head);
    assert_eq!(selected(&v), ["edge", "web"]);
    assert_eq!(
        reasons(&v, "web"),
        "watched (docs/web/**): docs/web/guide.md"
    );
}

#[test]
fn dockerignored_files_do_not_select() {
    let (d, base) = monorepo();
    write(d.path(), "services/web/README.md", "reworded\n");
    let head = commit(d.path(), "readme");
    let v = between(d.path(), &base, &head);
    assert!(selected(&v).is_empty(), "{v}");
    assert_eq!(
        reasons(&v, "web"),
        "no change in its inputs (changed here, but not read by its build or with the same content: services/web/README.md)"
    );
}

#[test]
fn copy_sources_outside_the_service_directory_select_it() {
    let (d, base) = monorepo();
    write(d.path(), "shared/conf.toml", "a = 2\n");
    let head = commit(d.path(), "conf");
    let v = between(d.path(), &base, &head);
    assert_eq!(selected(&v), ["gateway"]);
    assert_eq!(
        reasons(&v, "gateway"),
        "COPY source changed: shared/conf.toml"
    );
    write(d.path(), "shared/unrelated.txt", "y\n");
    let head2 = commit(d.path(), "unrelated");
    assert!(selected(&between(d.path(), &head, &head2)).is_empty());
}

#[test]
fn input_digests_follow_the_inputs_not_the_commit() {
    let (d, base) = monorepo();
    write(d.path(), "README.md", "reworded, not an input\n");
    let c1 = commit(d.path(), "readme");
    let (v0, v1) = (
        between(d.path(), &base, &base),
        between(d.path(), &base, &c1),
    );
    for s in ["api", "web", "worker", "edge", "gateway"] {
        assert_eq!(
            digest(&v0, s),
            digest(&v1, s),
            "{s}: same inputs, same digest"
        );
        assert!(digest(&v0, s).starts_with("sha256:") && digest(&v0, s).len() == 71);
    }
    write(d.path(), "services/web/www/index.html", "<p>new</p>\n");
    let c2 = commit(d.path(), "web");
    let v2 = between(d.path(), &base, &c2);
    assert_ne!(digest(&v1, "web"), digest(&v2, "web"));
    assert_ne!(
        digest(&v1, "edge"),
        digest(&v2, "edge"),
        "edge builds on web"
    );
    assert_eq!(digest(&v1, "api"), digest(&v2, "api"));
    // An uncommitted edit changes the digest of a local run; reverting it restores it.
    write(d.path(), "crates/common/src/lib.rs", "// local edit\n");
    let local = changed(d.path(), &[], &[]);
    assert_ne!(digest(&local, "api"), digest(&v2, "api"));
    write(d.path(), "crates/common/src/lib.rs", "// code\n");
    let clean = changed(d.path(), &[], &[]);
    assert_eq!(digest(&clean, "api"), digest(&v2, "api"));
}

#[test]
fn bad_refs_are_clear_errors() {
    let (d, _) = monorepo();
    let out = xtask(d.path(), &["changed", "--base", "no-such-branch"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("`no-such-branch` is not a commit, branch or tag in this repository"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn build_and_plan_take_changed() {
    let (d, base) = monorepo();
    write(d.path(), "services/web/www/index.html", "<p>x</p>\n");
    let head = commit(d.path(), "web");
    let out = xtask(
        d.path(),
        &[
            "plan",
            "--json",
            "--changed",
            "--base",
            &base,
            "--head",
            &head,
        ],
        &[("PATH", "/nonexistent")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(selected(&v), ["edge", "web"]);
    assert_eq!(reasons(&v, "worker"), "no change in its inputs");
    // Names narrow the changed set.
    let out = xtask(
        d.path(),
        &[
            "plan",
            "--json",
            "--changed",
            "--base",
            &base,
            "--head",
            &head,
            "edge",
        ],
        &[("PATH", "/nonexistent")],
    );
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(selected(&v), ["edge"]);
    // Range flags without --changed would be ignored: refused instead.
    let out = xtask(
        d.path(),
        &["plan", "--base", &base],
        &[("PATH", "/nonexistent")],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("add --changed"), "{}", stderr(&out));
}

#[test]
fn a_pull_request_compares_its_head_with_the_merge_base_of_its_base_branch() {
    let (d, _) = monorepo();
    let r = d.path();
    git(r, &["checkout", "-q", "-b", "pr"]);
    write(r, "services/worker/src/main.rs", "// pr work\n");
    let pr_head = commit(r, "pr work");
    git(r, &["checkout", "-q", "main"]);
    write(r, "services/web/www/index.html", "<p>main moved on</p>\n");
    commit(r, "main moves");
    // What actions/checkout gives a PR: a synthetic merge commit of the head into the base,
    // checked out detached (the base branch itself does not move).
    git(r, &["checkout", "-q", "--detach", "main"]);
    git(
        r,
        &["merge", "-q", "--no-ff", "-m", "synthetic merge", "pr"],
    );
    let merge = git(r, &["rev-parse", "HEAD"]);
    write(
        r,
        "target/pr.json",
        &format!(
            r#"{{"number":9,"pull_request":{{"head":{{"sha":"{pr_head}","ref":"pr"}},"base":{{"ref":"main"}}}}}}"#
        ),
    );
    let env = [
        ("GITHUB_ACTIONS", "true".to_string()),
        ("GITHUB_EVENT_NAME", "pull_request".to_string()),
        ("GITHUB_REF", "refs/pull/9/merge".to_string()),
        ("GITHUB_SHA", merge),
        (
            "GITHUB_EVENT_PATH",
            r.join("target/pr.json").display().to_string(),
        ),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let v = changed(r, &[], &env);
    assert_eq!(
        v["head"],
        pr_head.as_str(),
        "the PR head, not the merge commit"
    );
    assert_eq!(
        selected(&v),
        ["worker"],
        "main's own change is not the PR's"
    );
}

#[test]
fn with_head_the_services_are_read_at_that_commit_not_from_the_checkout() {
    let (d, base) = monorepo();
    let r = d.path();
    write(r, "services/fresh/Dockerfile", "FROM busybox:1.35\n");
    let head = commit(r, "add a service");
    git(r, &["checkout", "-q", &base]);
    assert!(
        !r.join("services/fresh").exists(),
        "the checkout is at base"
    );
    let v = between(r, &base, &head);
    assert_eq!(selected(&v), ["fresh"]);
    assert_eq!(
        reasons(&v, "fresh"),
        "new service: services/fresh is not at the base"
    );
}
