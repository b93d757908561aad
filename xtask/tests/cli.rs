//! The xtask binary on fixture repositories, without the local stack: errors people see,
//! `list`, `version`, `--dry-run`, and the buildx path through a recording fake.

mod support;

use support::{fake_buildx, fake_cosign, stderr, stdout, xtask, Fixture};

const IMAGES: &str = r#"registries = ["registry.example.invalid:5000"]
prefix = "acme"
tags = ["{version}", "{branch}", "{sha7}"]
vendor = "Acme"

# These fixtures are about building and pushing; the scan gate has its own tests.
[workspace.metadata.images.scan]
when = "never"
"#;

fn web_fixture() -> Fixture {
    let f = Fixture::new(IMAGES);
    f.write(
        "services/web/Dockerfile",
        "FROM busybox:1.35\nCOPY index.html /www/\nUSER 65534\n",
    );
    f.write("services/web/index.html", "hi\n");
    f.write(
        "services/web/service.toml",
        "description = \"Web\"\nport = 8088\n",
    );
    f.write(
        "services/jobs/Dockerfile",
        "FROM busybox:1.35\nUSER 10001\n",
    );
    f
}

/// PATH with only the fake docker in front of the system tools the fake uses.
fn fake_path(f: &Fixture) -> String {
    format!(
        "{}:/usr/bin:/bin",
        fake_buildx(&f.path().join("fake")).display()
    )
}

#[test]
fn unknown_service_suggests_the_closest_name() {
    let f = web_fixture();
    f.commit("main");
    let out = xtask(f.path(), &["build", "wbe", "--dry-run"], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("unknown service `wbe`: did you mean `web`? (services: jobs, web)"),
        "{err}"
    );
}

#[test]
fn bad_service_toml_names_file_line_and_column() {
    let f = web_fixture();
    f.write(
        "services/web/service.toml",
        "description = \"Web\"\n\nplatfroms = [\"linux/amd64\"]\n",
    );
    f.commit("main");
    let out = xtask(f.path(), &["list"], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("services/web/service.toml:3:1: unknown field `platfroms`"),
        "{err}"
    );
    assert!(err.contains("did you mean `platforms`?"), "{err}");
}

#[test]
fn bad_global_value_is_located_in_cargo_toml() {
    let f = Fixture::new("registries = [\"https://ghcr.io/acme\"]\n");
    f.write("services/web/Dockerfile", "FROM scratch\n");
    f.commit("main");
    let out = xtask(f.path(), &["list"], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("Cargo.toml:5:15: invalid registry `https://ghcr.io/acme`: drop the scheme"),
        "{err}"
    );
}

#[test]
fn bad_environment_override_names_the_variable() {
    let f = web_fixture();
    f.commit("main");
    let out = xtask(f.path(), &["list"], &[("BUILD_PLATFORMS", "amd64")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("in $BUILD_PLATFORMS") && err.contains("unknown platform `amd64`"),
        "{err}"
    );
}

#[test]
fn bad_version_file_is_a_clear_error() {
    let f = web_fixture();
    f.write("VERSION", "v1.2\n");
    f.commit("main");
    let out = xtask(f.path(), &["version", "check"], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("VERSION:1") && err.contains("`v1.2` is not a semantic version"),
        "{err}"
    );
    let out = xtask(f.path(), &["build", "--dry-run"], &[]);
    assert!(
        !out.status.success(),
        "a build with a bad VERSION must fail"
    );
}

#[test]
fn version_print_check_and_bump() {
    let f = web_fixture();
    f.write("services/jobs/VERSION", "2.0.0-rc.1\n");
    f.commit("main");
    let out = xtask(f.path(), &["version"], &[]);
    assert_eq!(stdout(&out), "1.4.0\n");
    let out = xtask(f.path(), &["version", "check"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("services/jobs/VERSION: 2.0.0-rc.1"));
    let out = xtask(f.path(), &["version", "bump", "minor", "--dry-run"], &[]);
    assert_eq!(stdout(&out), "1.5.0\n");
    assert_eq!(
        std::fs::read_to_string(f.path().join("VERSION")).unwrap(),
        "1.4.0\n"
    );
    let out = xtask(f.path(), &["version", "bump", "pre"], &[]);
    assert_eq!(stdout(&out), "1.4.1-rc.1\n");
    assert_eq!(
        std::fs::read_to_string(f.path().join("VERSION")).unwrap(),
        "1.4.1-rc.1\n"
    );
    f.write("services/jobs/VERSION", "two\n");
    let out = xtask(f.path(), &["version", "check"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("services/jobs/VERSION:1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn list_json_describes_every_service() {
    let f = web_fixture();
    f.commit("main");
    let out = xtask(f.path(), &["list", "--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let services = v["services"].as_array().unwrap();
    let names: Vec<&str> = services
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["jobs", "web"]);
    let web = &services[1];
    assert_eq!(web["repository"], "acme/web");
    assert_eq!(web["images"][0], "registry.example.invalid:5000/acme/web");
    assert_eq!(web["dockerfile"], "services/web/Dockerfile");
    assert_eq!(web["platforms"][0], "linux/amd64");
    assert_eq!(web["port"], 8088);
}

#[test]
fn a_directory_without_dockerfile_is_not_a_service() {
    let f = web_fixture();
    f.write("services/notes/README.md", "not a service\n");
    f.commit("main");
    let out = xtask(f.path(), &["list", "--json"], &[]);
    assert!(!stdout(&out).contains("notes"), "{}", stdout(&out));
}

#[test]
fn dry_run_prints_the_exact_commands_with_env_overrides() {
    let f = web_fixture();
    let sha = f.commit("feature/Login");
    let out = xtask(
        f.path(),
        &["build", "web", "--push", "--dry-run"],
        &[
            ("PATH", &fake_path(&f)),
            ("SLIPWAY_BUILDER", "classic"),
            ("DOCKER_REGISTRY", "127.0.0.1:5999"),
            ("DOCKER_TAGS", "{version},sha-{sha7}"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The content digest is checked where it is computed; here only that it is labelled.
    let lines: Vec<String> = stdout(&out)
        .lines()
        .map(|l| match l.find("dev.slipway.input-digest=sha256:") {
            Some(i) => {
                let start = i + "dev.slipway.input-digest=".len();
                format!("{}[DIGEST]{}", &l[..start], &l[start + 71..])
            }
            None => l.to_string(),
        })
        .collect();
    // The program by name (found on PATH when run), not this machine's path to it.
    let d = "docker";
    let sha7 = &sha[..7];
    assert_eq!(
        lines,
        [
            format!(
                "DOCKER_BUILDKIT=0 {d} build --file services/web/Dockerfile --platform linux/amd64 \
                 --tag 127.0.0.1:5999/acme/web:sha-{sha7} --tag 127.0.0.1:5999/acme/web:1.4.0 \
                 --label 'dev.slipway.input-digest=[DIGEST]' \
                 --label 'org.opencontainers.image.created=2026-11-21T04:22:41Z' \
                 --label 'org.opencontainers.image.description=Web' \
                 --label 'org.opencontainers.image.revision={sha}' \
                 --label 'org.opencontainers.image.title=web' \
                 --label 'org.opencontainers.image.vendor=Acme' \
                 --label 'org.opencontainers.image.version=1.4.0' \
                 --build-arg 'BUILD_DATE=2026-11-21T04:22:41Z' --build-arg 'VCS_REF={sha}' \
                 --build-arg 'VERSION=1.4.0' --iidfile target/slipway/out/web/iid services/web"
            ),
            format!(
                "{d} image inspect --format '{{{{json .}}}}' 127.0.0.1:5999/acme/web:sha-{sha7}"
            ),
            format!(
                "{d} run --detach --network none --name slipway-health-web-{sha7} 127.0.0.1:5999/acme/web:sha-{sha7}"
            ),
            format!("{d} rm --force slipway-health-web-{sha7}"),
            format!("{d} push 127.0.0.1:5999/acme/web:sha-{sha7}"),
            // The other tags by the digest the commit tag's push returned, registry-side.
            "skopeo --command-timeout 600s copy --all '--src-tls-verify=false' '--dest-tls-verify=false' 'docker://127.0.0.1:5999/acme/web@<digest>' docker://127.0.0.1:5999/acme/web:1.4.0".to_string(),
        ]
    );
    assert!(
        !f.path().join("target/slipway/out/web/iid").exists(),
        "a dry run builds nothing"
    );
}

#[test]
fn source_date_epoch_sets_created() {
    let f = web_fixture();
    f.commit("main");
    let out = xtask(
        f.path(),
        &["build", "web", "--dry-run"],
        &[("PATH", &fake_path(&f)), ("SOURCE_DATE_EPOCH", "0")],
    );
    assert!(stdout(&out).contains("org.opencontainers.image.created=1970-01-01T00:00:00Z"));
    let out = xtask(
        f.path(),
        &["build", "web", "--dry-run"],
        &[("PATH", &fake_path(&f)), ("SOURCE_DATE_EPOCH", "yesterday")],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("SOURCE_DATE_EPOCH=`yesterday`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn push_without_a_registry_is_refused_before_anything_runs() {
    let f = web_fixture();
    f.commit("main");
    let out = xtask(
        f.path(),
        &["build", "web", "--push", "--dry-run"],
        &[("PATH", &fake_path(&f)), ("DOCKER_REGISTRY", "")],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("service `web`: --push needs a registry"),
        "{err}"
    );
    assert!(
        stdout(&out).is_empty(),
        "no command may be printed: {}",
        stdout(&out)
    );
}

#[test]
fn several_platforms_without_buildx_say_how_to_get_it() {
    let f = web_fixture();
    f.commit("main");
    let out = xtask(
        f.path(),
        &[
            "build",
            "web",
            "--platform",
            "linux/amd64,linux/arm64",
            "--dry-run",
        ],
        &[("PATH", &fake_path(&f)), ("SLIPWAY_BUILDER", "classic")],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("2 platforms (linux/amd64, linux/arm64) need `docker buildx`")
            && err.contains("install the buildx plugin"),
        "{err}"
    );
}

#[test]
fn buildx_multi_platform_push_reads_the_digest_from_the_metadata_file() {
    let f = web_fixture();
    let sha = f.commit("main");
    let out = xtask(
        f.path(),
        &[
            "build",
            "web",
            "--push",
            "--platform",
            "linux/amd64,linux/arm64",
        ],
        &[("PATH", &fake_path(&f))],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let log = std::fs::read_to_string(f.path().join("fake/docker.log")).unwrap();
    let build: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("buildx build"))
        .collect();
    assert_eq!(build.len(), 1, "{log}");
    assert!(
        build[0].contains("--platform linux/amd64,linux/arm64"),
        "{}",
        build[0]
    );
    assert!(
        build[0].contains("--provenance=false --push services/web"),
        "{}",
        build[0]
    );
    assert!(
        !log.contains("push registry"),
        "buildx pushes itself: {log}"
    );
    let meta =
        std::fs::read_to_string(f.path().join("target/slipway/out/web/metadata.json")).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    let digest = meta["containerimage.digest"].as_str().unwrap();
    let printed: Vec<String> = stdout(&out).lines().map(String::from).collect();
    let sha7 = &sha[..7];
    assert_eq!(
        printed,
        [
            format!("registry.example.invalid:5000/acme/web:{sha7}@{digest}"),
            format!("registry.example.invalid:5000/acme/web:1.4.0@{digest}"),
            format!("registry.example.invalid:5000/acme/web:main@{digest}"),
        ]
    );
}

#[test]
fn a_failing_build_fails_the_run_and_names_the_service() {
    let f = web_fixture();
    f.commit("main");
    // The fake docker refuses anything but buildx; SLIPWAY_BUILDER=classic makes it fail.
    let out = xtask(
        f.path(),
        &["build", "--keep-going"],
        &[("PATH", &fake_path(&f)), ("SLIPWAY_BUILDER", "classic")],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("2 of 2 service(s) failed"), "{err}");
    // The tool's own error first, then the command, shortened.
    assert!(
        err.contains(
            "- jobs: build: docker failed with exit status 1:\nfake docker: unexpected: build"
        ),
        "{err}"
    );
    assert!(err.contains("\ncommand: DOCKER_BUILDKIT=0 "), "{err}");
    assert!(err.contains("… (-v shows it whole)"), "{err}");
    assert!(
        stdout(&out).is_empty(),
        "nothing was built: {}",
        stdout(&out)
    );
}

#[test]
fn without_keep_going_the_first_failure_stops_the_rest() {
    let f = web_fixture();
    f.commit("main");
    let out = xtask(
        f.path(),
        &["build", "-j", "1"],
        &[("PATH", &fake_path(&f)), ("SLIPWAY_BUILDER", "classic")],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("- jobs: build:"), "{err}");
    assert!(err.contains("- web: not run"), "{err}");
}

#[test]
fn services_build_in_depends_on_order_under_j_and_a_failed_base_skips_its_dependents() {
    let f = Fixture::new(IMAGES);
    f.write(
        "services/base/Dockerfile",
        "FROM busybox:1.35\nUSER 10001\n",
    );
    // app builds FROM base's image (implicit); tool declares depends_on; solo is independent.
    f.write(
        "services/app/Dockerfile",
        "FROM registry.example.invalid:5000/acme/base:1.4.0\nUSER 10001\n",
    );
    f.write(
        "services/tool/Dockerfile",
        "FROM busybox:1.35\nUSER 10001\n",
    );
    f.write("services/tool/service.toml", "depends_on = [\"base\"]\n");
    f.write(
        "services/solo/Dockerfile",
        "FROM busybox:1.35\nUSER 10001\n",
    );
    f.commit("main");
    let out = xtask(
        f.path(),
        &["push", "--all", "-j", "2", "--keep-going"],
        &[("PATH", &fake_path(&f)), ("FAKE_SLOW_TAG", "/base:")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let log = std::fs::read_to_string(f.path().join("fake/docker.log")).unwrap();
    let at = |needle: &str| {
        log.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in {log}"))
    };
    let base_done = at("done build,registry.example.invalid:5000/acme/base:");
    for dependent in ["acme/app:", "acme/tool:"] {
        let started = log
            .lines()
            .position(|l| l.starts_with("buildx build") && l.contains(dependent))
            .unwrap();
        assert!(
            started > base_done,
            "{dependent} started before base finished:\n{log}"
        );
    }
    assert!(
        at("acme/solo:") < base_done,
        "an independent service does not wait:\n{log}"
    );
    // A base that fails: its dependents are not built, and say why.
    let out = xtask(
        f.path(),
        &["push", "--all", "-j", "2", "--keep-going"],
        &[("PATH", &fake_path(&f)), ("FAKE_FAIL_TAG", "/base:")],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("- app: not built: it builds on base, which failed"),
        "{err}"
    );
    assert!(
        err.contains("- tool: not built: it builds on base, which failed"),
        "{err}"
    );
    assert!(!err.contains("- solo:"), "{err}");
}

#[test]
fn the_scan_gate_refuses_what_it_cannot_guarantee() {
    let f = Fixture::new("registries = [\"registry.example.invalid:5000\"]\nprefix = \"acme\"\n");
    f.write("services/web/Dockerfile", "FROM busybox:1.35\nUSER 65534\n");
    f.commit("main");
    // No trivy on PATH: scanning is on by default for pushes. A dry run says what a real
    // one would stop at, and shows the commands.
    let out = xtask(
        f.path(),
        &["push", "web", "--dry-run"],
        &[("PATH", &fake_path(&f))],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("scanning is on (scan.when = \"push\") but trivy is not installed")
            && stderr(&out).contains("(a run without --dry-run would stop here)"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("trivy image "), "{}", stdout(&out));
    // With trivy: a single-platform buildx push is loaded, scanned, then pushed.
    let bin = f.path().join("fake/bin");
    std::fs::write(bin.join("trivy"), "#!/bin/sh\necho 'Version: 0.76.0'\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("trivy"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = xtask(
        f.path(),
        &["push", "web", "--dry-run"],
        &[("PATH", &fake_path(&f))],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(String::from).collect();
    let at = |p: &str| {
        lines
            .iter()
            .position(|l| l.contains(p))
            .unwrap_or_else(|| panic!("no `{p}` in {lines:?}"))
    };
    assert!(lines[at("buildx build")].contains("--load"), "{lines:?}");
    assert!(at("buildx build") < at("trivy image") && at("trivy image") < at("trivy convert"));
    assert!(
        at("trivy convert") < at("docker push"),
        "scanned before any tag is pushed"
    );
    // Several platforms: buildx would push inside the build, before any scan: refused.
    let out = xtask(
        f.path(),
        &[
            "push",
            "web",
            "--dry-run",
            "--platform",
            "linux/amd64",
            "--platform",
            "linux/arm64",
        ],
        &[("PATH", &fake_path(&f))],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the scan gate runs before any tag is pushed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn signing_is_checked_before_any_build_and_shown_by_dry_run() {
    let f = Fixture::new(&format!(
        "{IMAGES}\n[workspace.metadata.images.sign]\nkey = \"env://SLIPWAY_TEST_COSIGN_KEY\"\npublic_key = \"ci/cosign.pub\"\n"
    ));
    f.write("services/web/Dockerfile", "FROM busybox:1.35\nUSER 65534\n");
    f.write("ci/cosign.pub", "public\n");
    f.commit("main");
    let env = |path: &str| {
        vec![
            ("PATH", path.to_string()),
            ("SLIPWAY_BUILDER", "classic".to_string()),
            ("DOCKER_REGISTRY", "127.0.0.1:5999".to_string()),
        ]
    };
    let run = |args: &[&str], path: &str| {
        let e = env(path);
        let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        xtask(f.path(), args, &e)
    };
    // A dry run without cosign still shows the signing, and says a real push would stop.
    let out = run(&["push", "web", "--dry-run"], &fake_path(&f));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cosign is not installed")
            && stderr(&out).contains("a push without --dry-run would stop here"),
        "{}",
        stderr(&out)
    );
    let printed = stdout(&out);
    assert!(
        printed.contains("cosign sign --yes --key env://SLIPWAY_TEST_COSIGN_KEY '127.0.0.1:5999/acme/web@<digest>'")
            && printed.contains("cosign verify --key ci/cosign.pub '127.0.0.1:5999/acme/web@<digest>'"),
        "{printed}"
    );
    // With cosign but without the key's variable: refused before the build.
    let cosign = fake_cosign(&f.path().join("fake-cosign"));
    let path = format!("{}:{}", cosign.display(), fake_path(&f));
    let out = run(&["push", "web"], &path);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("Cargo.toml [workspace.metadata.images.sign]: key `env://SLIPWAY_TEST_COSIGN_KEY` names the environment variable SLIPWAY_TEST_COSIGN_KEY, which is not set")
            && err.contains("nothing was built or pushed"),
        "{err}"
    );
    let log = std::fs::read_to_string(f.path().join("fake/docker.log")).unwrap_or_default();
    assert!(
        !log.lines()
            .any(|l| l.starts_with("build ") || l.starts_with("buildx build")),
        "{log}"
    );
}

/// A webhook on loopback that answers every request with `status` and records the bodies.
fn webhook(status: u16) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/hook/s3cr3t-path-token",
        listener.local_addr().unwrap()
    );
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let mut reader = std::io::BufReader::new(conn);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let mut conn = reader.into_inner();
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    (url, got)
}

fn notify_fixture(notify: &str) -> Fixture {
    let f = web_fixture();
    f.write(
        "Cargo.toml",
        &format!("[workspace]\nmembers = []\n\n[workspace.metadata.images]\n{IMAGES}\n[workspace.metadata.images.notify]\nwebhook_env = \"SLIPWAY_TEST_WEBHOOK\"\n{notify}"),
    );
    f.commit("main");
    f
}

#[test]
fn a_failed_run_is_posted_to_the_webhook_with_the_failing_step_and_the_ci_run() {
    let (url, got) = webhook(200);
    let f = notify_fixture("format = \"slack\"\n");
    let out = xtask(
        f.path(),
        &["build", "-j", "1"],
        &[
            ("PATH", &fake_path(&f)),
            ("SLIPWAY_BUILDER", "classic"),
            ("SLIPWAY_TEST_WEBHOOK", &url),
            ("GITHUB_SERVER_URL", "https://github.example"),
            ("GITHUB_REPOSITORY", "acme/shop"),
            ("GITHUB_RUN_ID", "7"),
        ],
    );
    assert!(!out.status.success(), "the build failed");
    let err = stderr(&out);
    assert!(
        err.contains("notified the slack webhook (SLIPWAY_TEST_WEBHOOK)"),
        "{err}"
    );
    assert!(
        !err.contains("s3cr3t-path-token"),
        "the URL is a secret: {err}"
    );
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let v: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    let text = v["text"].as_str().unwrap();
    assert!(
        text.starts_with("*Slipway build failed: 1 of 2 service(s)*"),
        "{text}"
    );
    assert!(
        text.contains("• jobs: FAILED at build: docker failed with exit status 1:"),
        "{text}"
    );
    assert!(text.contains("• web: not run"), "{text}");
    assert!(
        text.ends_with("<https://github.example/acme/shop/actions/runs/7|Open the run>"),
        "{text}"
    );
}

#[test]
fn a_webhook_that_fails_or_is_down_never_changes_the_result() {
    // Every run (`when = "always"`) in Teams' format, to a webhook answering 500: tried again,
    // then a warning; the successful build stays successful.
    let (url, got) = webhook(500);
    let f = notify_fixture("format = \"teams\"\nwhen = \"always\"\n");
    let run = |url: &str| {
        xtask(
            f.path(),
            &["build", "web", "--platform", "linux/amd64,linux/arm64"],
            &[
                ("PATH", &fake_path(&f)),
                ("SLIPWAY_BUILDER", "buildx"),
                ("SLIPWAY_TEST_WEBHOOK", url),
            ],
        )
    };
    let out = run(&url);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("the notification could not be delivered (the run's result stands)"),
        "{err}"
    );
    assert!(!err.contains("s3cr3t-path-token"), "{err}");
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 4, "one try and three retries: {bodies:?}");
    let v: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    let card = &v["attachments"][0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["body"][0]["text"], "Slipway build: 1 service(s) done");
    assert_eq!(card["body"][1]["facts"][0]["value"], "built");
    // Nothing listens there: the same.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let out = run(&dead);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("could not be delivered"), "{err}");
    // Not configured in the environment: said, not failed.
    let out = xtask(
        f.path(),
        &["build", "web", "--platform", "linux/amd64,linux/arm64"],
        &[("PATH", &fake_path(&f)), ("SLIPWAY_BUILDER", "buildx")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("no notification: SLIPWAY_TEST_WEBHOOK (notify.webhook_env) is not set"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn under_github_actions_the_run_leaves_a_summary_and_outputs() {
    let f = web_fixture();
    f.commit("main");
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.md");
    let output = dir.path().join("output");
    let out = xtask(
        f.path(),
        &[
            "build",
            "--keep-going",
            "--platform",
            "linux/amd64,linux/arm64",
        ],
        &[
            ("PATH", &fake_path(&f)),
            ("SLIPWAY_BUILDER", "buildx"),
            ("FAKE_FAIL_TAG", "/jobs:"),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
            ("GITHUB_OUTPUT", output.to_str().unwrap()),
        ],
    );
    assert!(!out.status.success());
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.starts_with("### Slipway build\n\n| service | result |"),
        "{md}"
    );
    assert!(md.contains("| jobs | FAILED | - | - |"), "{md}");
    assert!(md.contains("| web | built |"), "{md}");
    assert!(md.contains("**jobs**: build: docker failed"), "{md}");
    let outputs = std::fs::read_to_string(&output).unwrap();
    assert!(outputs.contains("services=[\"web\"]\n"), "{outputs}");
    assert!(outputs.contains("failed=[\"jobs\"]\n"), "{outputs}");
    assert!(
        outputs.contains("images=[\"registry.example.invalid:5000/acme/web:"),
        "{outputs}"
    );
}

#[test]
fn the_matrix_keeps_services_that_build_on_each_other_in_one_entry() {
    let f = Fixture::new(IMAGES);
    for s in ["base", "app", "solo"] {
        f.write(
            &format!("services/{s}/Dockerfile"),
            "FROM busybox:1.35\nUSER 65534\n",
        );
    }
    f.write("services/app/service.toml", "depends_on = [\"base\"]\n");
    f.commit("main");
    let out = xtask(
        f.path(),
        &["plan", "--matrix", "--all"],
        &[("PATH", &fake_path(&f))],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let services: Vec<&str> = v["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["service"].as_str().unwrap())
        .collect();
    assert_eq!(services, ["base app", "solo"], "{v}");
    assert_eq!(
        v["include"][0]["services"],
        serde_json::json!(["base", "app"])
    );
    let images = v["include"][0]["images"].as_array().unwrap();
    assert!(
        images
            .iter()
            .any(|i| i.as_str().unwrap().contains("/acme/base:"))
            && images
                .iter()
                .any(|i| i.as_str().unwrap().contains("/acme/app:")),
        "every member's images: {v}"
    );
}
