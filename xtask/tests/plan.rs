//! `cargo xtask plan` on fixture repositories in simulated CI contexts: the JSON contract, the
//! GitHub Actions matrix, release tags, and whole-plan snapshots (shas and paths redacted).

mod support;

use support::{fake_buildx, stderr, stdout, xtask, Fixture};

/// A registry on a loopback port nothing listens on: reading `latest` there fails, plainly.
const IMAGES: &str = r#"registries = ["127.0.0.1:1"]
prefix = "acme"
vendor = "Acme"
environments = ["staging", "prod"]
labels = { "com.example.owner" = "platform" }
"#;

fn fixture() -> Fixture {
    let f = Fixture::new(IMAGES);
    f.write("services/web/Dockerfile", "FROM busybox:1.35\nUSER 65534\n");
    f.write("services/web/service.toml", "description = \"Web\"\n");
    f.write("services/api/Dockerfile", "FROM busybox:1.35\nUSER 10001\n");
    f.write("services/api/VERSION", "2.0.0\n");
    f.write(
        "services/api/service.toml",
        "labels = { \"com.example.tier\" = \"backend\" }\n",
    );
    f
}

/// PATH with the recording fake docker (buildx) in front of the system tools.
fn path(f: &Fixture) -> String {
    format!(
        "{}:/usr/local/bin:/usr/bin:/bin",
        fake_buildx(&f.path().join("fake")).display()
    )
}

fn ci(f: &Fixture, github_ref: &str, sha: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PATH", path(f)),
        ("GITHUB_ACTIONS", "true".into()),
        ("GITHUB_EVENT_NAME", "push".into()),
        ("GITHUB_REF", github_ref.into()),
        ("GITHUB_SHA", sha.into()),
    ]
}

fn run(f: &Fixture, args: &[&str], env: &[(&'static str, String)]) -> std::process::Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    xtask(f.path(), args, &env)
}

/// The plan JSON with the commit ids and temp paths replaced by stable names.
fn redacted(f: &Fixture, sha: &str, json: &str) -> String {
    let mut out = json
        .replace(sha, "[SHA]")
        .replace(&sha[..7], "[SHA7]")
        .replace(&f.path().display().to_string(), "[REPO]");
    // Content digests are checked where they are computed.
    while let Some(i) = out
        .find("input-digest=sha256:")
        .or_else(|| out.find("input-digest\": \"sha256:"))
    {
        let start = out[i..].find("sha256:").unwrap() + i;
        out.replace_range(start..start + 71, "[DIGEST]");
    }
    out
}

#[test]
fn plan_json_on_a_push_to_main() {
    let f = fixture();
    let sha = f.commit("main");
    let out = run(
        &f,
        &["plan", "--json", "--push"],
        &ci(&f, "refs/heads/main", &sha),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json = stdout(&out);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["head"], sha.as_str());
    assert!(v["base"].is_null());
    let web = &v["services"][1];
    assert_eq!(web["name"], "web");
    assert_eq!(web["selected"], true);
    let images: Vec<&str> = web["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert_eq!(
        images,
        [
            format!("127.0.0.1:1/acme/web:{}", &sha[..7]),
            "127.0.0.1:1/acme/web:1.4.0".to_string(),
            "127.0.0.1:1/acme/web:main".to_string(),
            "127.0.0.1:1/acme/web:20261121-042241".to_string(),
        ]
    );
    assert!(
        web["notes"].as_array().unwrap().iter().any(|n| n
            .as_str()
            .unwrap()
            .contains("latest: cannot read what latest points to now")),
        "latest is never moved blindly: {}",
        web["notes"]
    );
    insta::assert_snapshot!("push_to_main", redacted(&f, &sha, &json));
}

#[test]
fn per_service_release_tag_releases_only_that_service_at_its_version() {
    let f = fixture();
    let sha = f.commit("main");
    let out = run(
        &f,
        &["plan", "--json"],
        &ci(&f, "refs/tags/api/v2.0.0", &sha),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json = stdout(&out);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["services"][0]["version"], "2.0.0");
    assert_eq!(v["services"][1]["selected"], false);
    assert_eq!(
        v["services"][1]["reasons"][0],
        "release tag api/v2.0.0 releases only api"
    );
    insta::assert_snapshot!("service_release_tag", redacted(&f, &sha, &json));

    // The tag and the service's VERSION disagree: refused, with the fix.
    let out = run(&f, &["plan"], &ci(&f, "refs/tags/api/v2.0.1", &sha));
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains("release tag `api/v2.0.1` is 2.0.1 but services/api/VERSION says 2.0.0"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn workspace_release_tag_skips_services_with_their_own_version() {
    let f = fixture();
    let sha = f.commit("main");
    let out = run(&f, &["plan", "--json"], &ci(&f, "refs/tags/v1.4.0", &sha));
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["services"][0]["selected"], false);
    assert_eq!(
        v["services"][0]["reasons"][0],
        "has its own VERSION (2.0.0); release it with the tag api/v2.0.0"
    );
    let tags: Vec<String> = v["services"][1]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().rsplit_once(':').unwrap().1.to_string())
        .collect();
    assert_eq!(
        tags,
        ["v1.4.0", "1.4.0", "1.4", "1"],
        "latest is not readable here, so not moved"
    );
}

#[test]
fn matrix_lists_selected_services_for_github_actions() {
    let f = fixture();
    let sha = f.commit("main");
    let out = run(
        &f,
        &["plan", "--matrix", "web"],
        &ci(&f, "refs/heads/feature/x", &sha),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let include = v["include"].as_array().unwrap();
    assert_eq!(include.len(), 1);
    assert_eq!(include[0]["service"], "web");
    assert_eq!(include[0]["platforms"], serde_json::json!(["linux/amd64"]));
    assert_eq!(
        include[0]["images"],
        serde_json::json!([
            format!("127.0.0.1:1/acme/web:{}", &sha[..7]),
            "127.0.0.1:1/acme/web:feature-x"
        ])
    );
    // Under GitHub Actions: matrix and count in $GITHUB_OUTPUT; nothing selected is count 0
    // and a matrix the workflow can skip.
    let output = f.path().join("fake/github_output");
    std::fs::create_dir_all(output.parent().unwrap()).unwrap();
    let mut env = ci(&f, "refs/heads/feature/x", &sha);
    env.push(("GITHUB_OUTPUT", output.display().to_string()));
    env.push(("BUILD_PLATFORMS", "linux/amd64,linux/arm64".into()));
    let out = run(&f, &["plan", "--matrix", "--per-platform", "web"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let platforms: Vec<&str> = v["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let written = std::fs::read_to_string(&output).unwrap();
    assert!(written.contains("\ncount=2\n"), "{written}");
    assert!(written.starts_with("matrix={\"include\":["), "{written}");
    let out = run(
        &f,
        &["plan", "--matrix", "--changed", "--base", "HEAD"],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), r#"{"include":[]}"#);
    assert!(std::fs::read_to_string(&output)
        .unwrap()
        .ends_with("count=0\n"));
}

#[test]
fn pull_requests_are_tagged_by_head_and_not_pushed() {
    let f = fixture();
    f.commit("main");
    // The PR head on a branch, and the synthetic merge actions/checkout checks out.
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(f.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["checkout", "-q", "-b", "feature/y"]);
    git(&["commit", "-q", "--allow-empty", "-m", "pr head"]);
    let head = git(&["rev-parse", "HEAD"]);
    git(&["checkout", "-q", "main"]);
    git(&["commit", "-q", "--allow-empty", "-m", "main moves"]);
    git(&[
        "merge",
        "-q",
        "--no-ff",
        "-m",
        "synthetic merge",
        "feature/y",
    ]);
    git(&["checkout", "-q", "--detach"]);
    let sha = git(&["rev-parse", "HEAD"]);
    let head = head.as_str();
    let event = f.path().join("fake/event.json");
    std::fs::create_dir_all(event.parent().unwrap()).unwrap();
    std::fs::write(
        &event,
        format!(r#"{{"number":17,"pull_request":{{"head":{{"sha":"{head}","ref":"feature/y"}},"base":{{"ref":"main"}}}}}}"#),
    )
    .unwrap();
    let mut env = ci(&f, "refs/pull/17/merge", &sha);
    env[2] = ("GITHUB_EVENT_NAME", "pull_request".into());
    env.push(("GITHUB_EVENT_PATH", event.display().to_string()));
    let out = run(&f, &["plan", "--json", "web"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["head"], head, "the PR head, not the merge commit");
    assert_eq!(
        v["services"][1]["images"],
        serde_json::json!([
            format!("127.0.0.1:1/acme/web:{}", &head[..7]),
            "127.0.0.1:1/acme/web:pr-17".to_string()
        ])
    );
    assert_eq!(
        v["services"][1]["labels"]["org.opencontainers.image.revision"],
        head
    );
    let out = run(&f, &["build", "--push", "web", "--dry-run"], &env);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("pull request #17: images from pull requests are not pushed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn env_placeholder_needs_a_configured_environment() {
    let f = fixture();
    let sha = f.commit("main");
    let mut env = ci(&f, "refs/heads/main", &sha);
    env.push(("DOCKER_TAGS", "{service}-{env}-{version}".into()));
    let out = run(&f, &["plan", "--json", "--env", "prod", "web"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        v["services"][1]["images"],
        serde_json::json!(["127.0.0.1:1/acme/web:web-prod-1.4.0"])
    );
    let out = run(&f, &["plan", "--env", "qa", "web"], &env);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--env qa: not a configured environment (staging, prod)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bad_release_tag_is_an_error_not_a_guess() {
    let f = fixture();
    let sha = f.commit("main");
    // Looks like a release, but is not a well-formed one.
    let out = run(&f, &["plan"], &ci(&f, "refs/tags/a/b/v1.0.0", &sha));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("a per-service release tag is SERVICE/v1.2.3"),
        "{}",
        stderr(&out)
    );
    // Not a release at all: a tag context, `{tag}` and `{sha7}`, never latest.
    let out = run(
        &f,
        &["plan", "--json", "web"],
        &ci(&f, "refs/tags/nightly-2026", &sha),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json = stdout(&out);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["services"][1]["images"],
        serde_json::json!([
            format!("127.0.0.1:1/acme/web:{}", &sha[..7]),
            "127.0.0.1:1/acme/web:nightly-2026"
        ])
    );
    insta::assert_snapshot!("non_release_tag", redacted(&f, &sha, &json));
}

#[test]
fn ghcr_without_an_owner_is_refused_at_load() {
    let f = Fixture::new("registries = [\"ghcr.io\"]\n");
    f.write("services/web/Dockerfile", "FROM scratch\n");
    f.commit("main");
    let out = xtask(f.path(), &["list"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("service `web` (services/web): ghcr.io images live under an owner"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn text_plan_is_a_table_with_commands_behind_v() {
    let f = fixture();
    let sha = f.commit("main");
    let out = run(
        &f,
        &["plan", "--push", "web"],
        &ci(&f, "refs/heads/main", &sha),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = redacted(&f, &sha, &stdout(&out));
    assert!(
        text.starts_with("push to main (default branch) — version 1.4.0, revision [SHA7]"),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    let header = lines.iter().position(|l| l.starts_with("SERVICE")).unwrap();
    let cols: Vec<&str> = lines[header].split_whitespace().collect();
    assert_eq!(
        cols,
        ["SERVICE", "BUILD", "VERSION", "PLATFORMS", "TAGS", "WHY"]
    );
    let api = lines[header + 1];
    assert!(
        api.starts_with("api")
            && api.contains("skip")
            && api.ends_with("not named on the command line"),
        "{text}"
    );
    let web = lines[header + 2];
    assert!(
        web.starts_with("web")
            && web.contains("build")
            && web.contains("1.4.0")
            && web.contains("[SHA7], 1.4.0, main"),
        "{text}"
    );
    assert!(
        text.contains("note: web: 127.0.0.1:1/acme/web:latest: latest: cannot read"),
        "{text}"
    );
    assert!(
        !text.contains("docker buildx build"),
        "commands only with -v: {text}"
    );
    let out = run(
        &f,
        &["plan", "-v", "--push", "web"],
        &ci(&f, "refs/heads/main", &sha),
    );
    let text = redacted(&f, &sha, &stdout(&out));
    assert!(
        text.contains("\n  run    docker buildx build --file services/web/Dockerfile"),
        "{text}"
    );
}
