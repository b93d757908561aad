//! The surface people meet first: make targets with the names platform teams use, a closed
//! stdout, the workspace found from the current directory, and bad input refused with a
//! message that says how to fix it (the text is asserted).

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use support::{fake_buildx, stderr, xtask, Fixture};

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn make(args: &[&str]) -> (bool, String) {
    // Under `make test` this runs inside make: a nested make would print its directory.
    let out = Command::new("make")
        .current_dir(repo_root())
        .arg("--no-print-directory")
        .args(args)
        .env_remove("MAKEFLAGS")
        .env_remove("MAKELEVEL")
        .env_remove("MFLAGS")
        .output()
        .expect("make is installed");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn seed_named_make_targets_wrap_the_xtask_and_never_touch_the_stack() {
    let (ok, _) = make(&["container-build-"]);
    assert!(!ok, "an empty name is an error, not a built-in rule");
    let (ok, help) = make(&[]);
    assert!(ok);
    for target in [
        "container-build",
        "container-build-NAME",
        "container-push",
        "container-push-NAME",
        "demo",
        "test",
    ] {
        assert!(
            help.contains(&format!("  {target}")),
            "bare make lists {target}: {help}"
        );
    }
    assert!(!help.contains("cargo"), "bare make runs nothing: {help}");
    for (target, want) in [
        ("container-build", "cargo xtask build --all"),
        ("container-build-api", "cargo xtask build -- 'api'"),
        ("container-push", "cargo xtask push --all"),
        ("container-push-web", "cargo xtask push -- 'web'"),
        ("container-scan", "cargo xtask scan --all"),
        ("check", "cargo xtask check"),
        ("status", "cargo xtask status"),
    ] {
        let (ok, text) = make(&["-n", target, "BUILD_PLATFORMS=linux/amd64,linux/arm64"]);
        assert!(ok, "{target}");
        assert_eq!(text.trim(), want, "{target}");
        assert!(
            !text.contains("stack"),
            "{target} must not start the local stack: {text}"
        );
    }
}

fn fixture() -> Fixture {
    let f = Fixture::new("registries = [\"127.0.0.1:1\"]\nprefix = \"acme\"\n");
    f.write("services/web/Dockerfile", "FROM busybox:1.35\nUSER 65534\n");
    f.write("services/web/docs/readme.txt", "hi\n");
    f.write("VERSION", "1.0.0\n");
    f.commit("main");
    f
}

#[test]
fn every_command_ends_quietly_on_a_closed_pipe() {
    let f = fixture();
    let fake = fake_buildx(&f.path().join("fake"));
    let path = format!("{}:/usr/bin:/bin", fake.display());
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["plan"],
        &["plan", "--json"],
        &["plan", "--matrix"],
        &["changed", "--json"],
        &["changed"],
        &["version"],
        &["build", "--dry-run"],
        &["completions", "bash"],
        &["--help"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("--repo")
            .arg(f.path())
            .args(args)
            .env("PATH", &path)
            .env_remove("GITHUB_ACTIONS")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before the first line
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.success() || status.code() == Some(141),
            "{args:?}: {status:?}\n{err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn version_completions_and_help_name_what_people_need() {
    let f = fixture();
    let out = xtask(f.path(), &["--version"], &[]);
    let text = support::stdout(&out);
    assert!(text.starts_with("cargo xtask 0.1.0 ("), "{text}");
    for shell in ["bash", "zsh", "fish"] {
        let out = xtask(f.path(), &["completions", shell], &[]);
        assert!(out.status.success(), "{shell}");
        assert!(support::stdout(&out).contains("plan"), "{shell}");
    }
    let out = xtask(f.path(), &["build", "--help"], &[]);
    let help = support::stdout(&out);
    assert!(help.contains("Usage: cargo xtask build"), "{help}");
    assert!(
        help.contains("Global options:") && help.contains("Example"),
        "{help}"
    );
}

#[test]
fn the_workspace_is_found_from_the_current_directory() {
    let f = fixture();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["list", "--json"])
        .current_dir(f.path().join("services/web/docs"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["web"],
        "the fixture's services, not this repository's"
    );
}

#[test]
fn bad_input_is_refused_with_the_fix() {
    let f = fixture();
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            &["build", "-j", "0", "--dry-run"],
            &[],
            "-j 0 builds nothing: give at least 1",
        ),
        (
            &["plan", "--platform", "linux/amd65"],
            &[],
            "unknown platform `linux/amd65`: did you mean `linux/amd64`?",
        ),
        (
            &["plan"],
            &[("BUILD_PLATFORMS", "")],
            "$BUILD_PLATFORMS is set but empty",
        ),
        (
            &["plan"],
            &[("DOCKER_TAGS", "v1 latest")],
            "$DOCKER_TAGS: `v1 latest` contains a space: separate values with commas",
        ),
        (&["plan"], &[("DOCKER_TAGS", "a,,b")], "has an empty item"),
    ];
    for (args, env, want) in cases {
        let out = xtask(f.path(), args, env);
        assert!(!out.status.success(), "{args:?} {env:?} must fail");
        assert!(
            stderr(&out).contains(want),
            "{args:?} {env:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn nothing_selected_spawns_no_probe() {
    let f = fixture();
    f.write("services/api/Dockerfile", "FROM scratch\nCOPY bin/ /\n");
    f.write("services/api/service.toml", "[cargo]\n");
    f.write(
        "services/api/Cargo.toml",
        "[package]\nname = \"api\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    f.write("services/api/src/main.rs", "fn main() {}\n");
    f.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"services/api\"]\n\n[workspace.metadata.images]\nregistries = [\"127.0.0.1:1\"]\nprefix = \"acme\"\n",
    );
    let head = f.commit("main");
    let fake = fake_buildx(&f.path().join("fake"));
    let path = format!("{}:/usr/bin:/bin", fake.display());
    for args in [
        &["plan", "--json", "--changed", "--base", head.as_str()][..],
        &["build", "--changed", "--base", head.as_str(), "--dry-run"],
    ] {
        // A cargo that fails if called: `cargo metadata` must not run either.
        let out = xtask(
            f.path(),
            args,
            &[("PATH", path.as_str()), ("CARGO", "/nonexistent/cargo")],
        );
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let log = std::fs::read_to_string(f.path().join("fake/docker.log")).unwrap_or_default();
        assert!(
            log.is_empty(),
            "{args:?} probed docker with nothing selected: {log}"
        );
    }
}

#[test]
fn colour_only_on_request_and_quiet_means_only_errors() {
    let f = fixture();
    let bad = [("BUILD_PLATFORMS", "linux/amd65")];
    let plain = xtask(f.path(), &["plan"], &bad);
    assert!(
        stderr(&plain).starts_with("error: "),
        "no colour in a pipe: {}",
        stderr(&plain)
    );
    let forced = xtask(f.path(), &["plan"], &[bad[0], ("CLICOLOR_FORCE", "1")]);
    assert!(
        stderr(&forced).starts_with("\u{1b}[31merror:\u{1b}[0m "),
        "{:?}",
        stderr(&forced)
    );
    let off = xtask(
        f.path(),
        &["plan"],
        &[bad[0], ("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
    );
    assert!(
        stderr(&off).starts_with("error: "),
        "NO_COLOR wins: {:?}",
        stderr(&off)
    );
    // A dirty tree warns; -q keeps only errors.
    f.write("services/web/docs/readme.txt", "edited\n");
    let fake = fake_buildx(&f.path().join("fake"));
    let path = format!("{}:/usr/bin:/bin", fake.display());
    let loud = xtask(f.path(), &["plan"], &[("PATH", path.as_str())]);
    assert!(
        stderr(&loud).contains("warning: the working tree has uncommitted changes"),
        "{}",
        stderr(&loud)
    );
    let quiet = xtask(f.path(), &["-q", "plan"], &[("PATH", path.as_str())]);
    assert!(quiet.status.success());
    assert_eq!(stderr(&quiet), "", "-q: nothing but errors");
}

#[test]
fn a_cargo_service_for_another_platform_needs_its_target_and_linker_first() {
    let f = fixture();
    f.write("services/api/Dockerfile", "FROM scratch\nCOPY bin/ /\n");
    f.write("services/api/service.toml", "[cargo]\n");
    f.write(
        "services/api/Cargo.toml",
        "[package]\nname = \"api\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    f.write("services/api/src/main.rs", "fn main() {}\n");
    f.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"services/api\"]\n\n[workspace.metadata.images]\nregistries = [\"127.0.0.1:1\"]\n",
    );
    f.commit("main");
    let fake = fake_buildx(&f.path().join("fake"));
    let path = format!(
        "{}:{}",
        fake.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = xtask(
        f.path(),
        &["build", "api", "--platform", "linux/s390x", "--dry-run"],
        &[("PATH", path.as_str())],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    // Which half is missing depends on the machine; both say how to get it.
    assert!(
        err.contains("service `api`: platform linux/s390x needs")
            && (err.contains("rustup target add s390x-unknown-linux-gnu")
                || err.contains("apt-get install gcc-s390x-linux-gnu")),
        "{err}"
    );
    assert!(
        !support::stdout(&out).contains("cargo build"),
        "nothing printed as if it would run"
    );
}

#[test]
fn a_registry_listed_twice_is_pushed_to_once_with_a_note() {
    let f = fixture();
    let fake = fake_buildx(&f.path().join("fake"));
    let path = format!("{}:/usr/bin:/bin", fake.display());
    let out = xtask(
        f.path(),
        &["plan", "--json", "web"],
        &[
            ("PATH", path.as_str()),
            ("DOCKER_REGISTRY", "127.0.0.1:5000,ghcr.io/acme"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let f2 = Fixture::new("registries = [\"ghcr.io/acme\", \"ghcr.io/acme/\", \"GHCR.io/acme\"]\n");
    f2.write("services/web/Dockerfile", "FROM busybox:1.35\nUSER 65534\n");
    f2.commit("main");
    let out = xtask(
        f2.path(),
        &["plan", "--json", "web"],
        &[("PATH", path.as_str())],
    );
    let err = stderr(&out);
    // `ghcr.io/acme/` is refused by the grammar (no trailing slash) before any note.
    assert!(
        !out.status.success() && err.contains("invalid registry `ghcr.io/acme/`"),
        "{err}"
    );
    let f3 = Fixture::new("registries = [\"ghcr.io/acme\", \"GHCR.io/acme\"]\n");
    f3.write("services/web/Dockerfile", "FROM busybox:1.35\nUSER 65534\n");
    f3.commit("main");
    let out = xtask(
        f3.path(),
        &["plan", "--json", "web"],
        &[("PATH", path.as_str())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("registry `GHCR.io/acme` is listed twice: pushed to once"),
        "{}",
        stderr(&out)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let images = v["services"][0]["images"].as_array().unwrap();
    assert!(
        images
            .iter()
            .all(|i| i.as_str().unwrap().starts_with("ghcr.io/acme/web:")),
        "{images:?}"
    );
}

#[test]
fn review_findings_stay_fixed() {
    let f = fixture();
    let fake = fake_buildx(&f.path().join("fake"));
    let path = format!("{}:/usr/bin:/bin", fake.display());
    // A full disk is not a closed pipe: the run fails.
    if Path::new("/dev/full").exists() {
        let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["--repo"])
            .arg(f.path())
            .args(["list", "--json"])
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "lost output must not exit 0");
    }
    // An exact duplicate from the environment is noted too.
    let out = xtask(
        f.path(),
        &["plan", "web"],
        &[
            ("PATH", path.as_str()),
            ("DOCKER_REGISTRY", "ghcr.io/acme,ghcr.io/acme"),
        ],
    );
    assert!(stderr(&out).contains("listed twice"), "{}", stderr(&out));
    // Ports are 1..65535.
    let out = xtask(
        f.path(),
        &["plan"],
        &[("DOCKER_REGISTRY", "localhost:99999")],
    );
    assert!(
        stderr(&out).contains("the port must be a number from 1 to 65535"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_plan_for_a_platform_this_machine_cannot_build_is_still_a_plan() {
    let f = fixture();
    f.write("services/api/Dockerfile", "FROM scratch\nCOPY bin/ /\n");
    f.write(
        "services/api/service.toml",
        "platforms = [\"linux/amd64\", \"linux/s390x\"]\n[cargo]\n",
    );
    f.write(
        "services/api/Cargo.toml",
        "[package]\nname = \"api\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    f.write("services/api/src/main.rs", "fn main() {}\n");
    f.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"services/api\"]\n\n[workspace.metadata.images]\nregistries = [\"127.0.0.1:1\"]\n",
    );
    f.commit("main");
    let fake = fake_buildx(&f.path().join("fake"));
    let path = format!(
        "{}:{}",
        fake.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The per-platform matrix sends s390x to another runner: planning here must work.
    let out = xtask(
        f.path(),
        &["plan", "--matrix", "--per-platform", "api"],
        &[("PATH", path.as_str())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("a build on this machine would stop here"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("join the digests into one multi-arch index"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn doctor_names_every_missing_tool_with_its_fix_and_refuses_a_compromised_trivy() {
    let f = fixture();
    let fake = fake_buildx(&f.path().join("fake"));
    std::os::unix::fs::symlink(which_git(), fake.join("git")).unwrap();
    std::fs::write(fake.join("trivy"), "#!/bin/sh\necho 'Version: 0.69.4'\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(fake.join("trivy"), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Only the fakes: no skopeo, although a registry is configured.
    let out = xtask(
        f.path(),
        &["doctor", "--json"],
        &[("PATH", fake.to_str().unwrap())],
    );
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by = |tool: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["tool"] == tool)
            .unwrap_or_else(|| panic!("{tool} in {v}"))
            .clone()
    };
    assert_eq!(by("git")["status"], "ok");
    assert_eq!(by("docker buildx")["status"], "ok");
    assert_eq!(by("skopeo")["status"], "missing");
    assert_eq!(by("skopeo")["needed"], true);
    assert_eq!(by("skopeo")["fix"], "apt-get install skopeo");
    assert_eq!(by("trivy")["status"], "refused");
    let err = stderr(&out);
    assert!(
        err.contains("skopeo: apt-get install skopeo") && err.contains("trivy:"),
        "{err}"
    );
}

fn which_git() -> std::path::PathBuf {
    ["/usr/bin/git", "/usr/local/bin/git", "/bin/git"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
        .expect("git is installed")
}
