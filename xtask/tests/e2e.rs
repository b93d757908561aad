//! End-to-end on the local stack (`scripts/stack.sh up`, environment sourced): real builds on
//! a real Docker Engine, pushes to a real registry, tags and labels read back with skopeo,
//! and the images run. Without the stack each test says it skipped; under XTASK_E2E=1 it fails.

mod support;

use std::collections::BTreeMap;

use support::{
    assert_not_in_registry, registry_tags, remove_container, run_ok, skopeo_json, stack, stderr,
    stdout, wait_healthy, Fixture,
};

/// Two busybox services; `greeter` has a RUN step (the build network matters) and a health
/// check served by busybox httpd.
/// Checks out `sha` (detached), as CI would, until the guard is dropped (then `main` again).
fn checkout(dir: &std::path::Path, sha: &str) -> impl Drop {
    struct Back(std::path::PathBuf);
    impl Drop for Back {
        fn drop(&mut self) {
            run_git(&self.0, &["checkout", "-q", "main"]);
        }
    }
    run_git(dir, &["checkout", "-q", "--detach", sha]);
    Back(dir.to_path_buf())
}

fn run_git(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fixture(registry: &str, prefix: &str) -> Fixture {
    let f = Fixture::new(&format!(
        "registries = [\"{registry}\"]\nprefix = \"{prefix}\"\nvendor = \"E2E\"\nsource = \"https://example.invalid/e2e\"\n"
    ));
    f.write(
        "services/greeter/Dockerfile",
        "FROM busybox:1.35\n\
         ARG VERSION\n\
         RUN mkdir -p /www && echo \"hello $VERSION\" > /www/index.html && echo ok > /www/health\n\
         USER 10001:10001\n\
         HEALTHCHECK --interval=1s --timeout=2s --retries=20 CMD [\"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:18089/health\"]\n\
         ENTRYPOINT [\"httpd\", \"-f\", \"-p\", \"18089\", \"-h\", \"/www\"]\n",
    );
    f.write(
        "services/greeter/service.toml",
        "description = \"Says hello\"\nport = 18089\n",
    );
    f.write(
        "services/static/Dockerfile",
        "FROM busybox:1.35\nCOPY page.txt /page.txt\nUSER 65534:65534\nCMD [\"cat\", \"/page.txt\"]\n",
    );
    f.write("services/static/page.txt", "static\n");
    f
}

#[test]
fn builds_pushes_and_labels_fixture_services() {
    let Some(stack) = stack("builds_pushes_and_labels_fixture_services") else {
        return;
    };
    let prefix = stack.unique_prefix("labels");
    let f = fixture(&stack.registry, &prefix);
    let sha = f.commit("feature/E2E-Labels");
    let out = stack.xtask(f.path(), &["build", "--all", "--push"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    let repo = format!("{}/{prefix}/greeter", stack.registry);
    let mut want = vec![sha[..7].to_string(), "feature-e2e-labels".into()];
    want.sort();
    assert_eq!(
        registry_tags(&repo),
        want,
        "a local build: {{sha7}} and the sanitised {{branch}}"
    );
    let inspect = skopeo_json(&["inspect", &format!("docker://{repo}:feature-e2e-labels")]);
    let labels = &inspect["Labels"];
    assert_eq!(labels["org.opencontainers.image.revision"], sha.as_str());
    assert_eq!(labels["org.opencontainers.image.version"], "1.4.0");
    assert_eq!(labels["org.opencontainers.image.title"], "greeter");
    assert_eq!(labels["org.opencontainers.image.description"], "Says hello");
    assert_eq!(labels["org.opencontainers.image.vendor"], "E2E");
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://example.invalid/e2e"
    );
    assert_eq!(
        labels["org.opencontainers.image.created"], "2026-11-21T04:22:41Z",
        "created is the commit time"
    );
    // What the tool printed is what the registry holds.
    let digest = inspect["Digest"].as_str().unwrap();
    let printed = stdout(&out);
    for tag in [&sha[..7], "feature-e2e-labels"] {
        assert!(
            printed.contains(&format!("{repo}:{tag}@{digest}\n")),
            "{tag} not printed with {digest}:\n{printed}"
        );
    }
    // The config in the registry runs as the non-root user.
    let config = skopeo_json(&[
        "inspect",
        "--config",
        "--raw",
        &format!("docker://{repo}:{}", &sha[..7]),
    ]);
    assert_eq!(config["config"]["User"], "10001:10001");

    // The image runs, as that user, and its health check passes.
    let name = format!("e2e-greeter-{}", std::process::id());
    let status = wait_healthy(&format!("{repo}:{}", &sha[..7]), &name);
    let uid = run_ok("docker", &["exec", &name, "id", "-u"]);
    let page = run_ok(
        "docker",
        &[
            "exec",
            &name,
            "wget",
            "-q",
            "-O",
            "-",
            "http://127.0.0.1:18089/",
        ],
    );
    remove_container(&name);
    assert_eq!(status, "running healthy");
    assert_eq!(uid.trim(), "10001");
    assert_eq!(
        page, "hello 1.4.0\n",
        "the VERSION build argument reached the image"
    );

    let static_repo = format!("{}/{prefix}/static", stack.registry);
    assert_eq!(registry_tags(&static_repo).len(), 2);
    let ran = run_ok(
        "docker",
        &[
            "run",
            "--rm",
            "--network",
            "none",
            &format!("{static_repo}:{}", &sha[..7]),
        ],
    );
    assert_eq!(ran, "static\n");
}

#[test]
fn a_root_image_is_refused_and_nothing_is_pushed() {
    let Some(stack) = stack("a_root_image_is_refused_and_nothing_is_pushed") else {
        return;
    };
    let prefix = stack.unique_prefix("root");
    let f = fixture(&stack.registry, &prefix);
    f.write(
        "services/rooted/Dockerfile",
        "FROM busybox:1.35\nCMD [\"id\"]\n",
    );
    f.commit("main");
    let out = stack.xtask(f.path(), &["build", "--all", "--push", "--keep-going"], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("1 of 3 service(s) failed"), "{err}");
    assert!(
        err.contains("- rooted: verify: the image runs as root")
            && err.contains("USER 10001:10001"),
        "{err}"
    );
    // The other services were still published (keep-going), the refused one not at all.
    assert_eq!(
        registry_tags(&format!("{}/{prefix}/static", stack.registry)).len(),
        2
    );
    assert_not_in_registry(&format!("{}/{prefix}/rooted", stack.registry));

    // `non_root = false` is the explicit way out.
    f.write("services/rooted/service.toml", "non_root = false\n");
    f.commit("main");
    let out = stack.xtask(f.path(), &["build", "rooted", "--push"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_broken_dockerfile_fails_with_the_builder_output_and_spares_the_rest() {
    let Some(stack) =
        stack("a_broken_dockerfile_fails_with_the_builder_output_and_spares_the_rest")
    else {
        return;
    };
    let prefix = stack.unique_prefix("broken");
    let f = fixture(&stack.registry, &prefix);
    f.write(
        "services/broken/Dockerfile",
        "FROM busybox:1.35\nCOPY missing.txt /x\nUSER 1\n",
    );
    f.commit("main");
    let out = stack.xtask(
        f.path(),
        &["build", "--all", "--push", "--keep-going", "-j", "2"],
        &[],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("- broken: build: docker failed with exit status"),
        "{err}"
    );
    assert!(
        err.contains("missing.txt"),
        "the builder's own message is kept: {err}"
    );
    assert_eq!(
        registry_tags(&format!("{}/{prefix}/greeter", stack.registry)).len(),
        2
    );
}

#[test]
fn a_local_build_loads_into_docker_without_pushing() {
    let Some(stack) = stack("a_local_build_loads_into_docker_without_pushing") else {
        return;
    };
    let prefix = stack.unique_prefix("local");
    let f = fixture(&stack.registry, &prefix);
    let sha = f.commit("main");
    let out = stack.xtask(
        f.path(),
        &["build", "static"],
        &[("DOCKER_REGISTRY", ""), ("DOCKER_TAGS", "dev-{sha7}")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let image = format!("{prefix}/static:dev-{}", &sha[..7]);
    assert_eq!(stdout(&out), format!("{image}\n"));
    let user = run_ok(
        "docker",
        &["image", "inspect", "--format", "{{.Config.User}}", &image],
    );
    assert_eq!(user.trim(), "65534:65534");
}

#[test]
fn the_repository_examples_build_push_and_run_healthy() {
    let Some(stack) = stack("the_repository_examples_build_push_and_run_healthy") else {
        return;
    };
    // The real workspace (this repository), pushed under a tag no other run uses.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let tag = format!("e2e-{}", std::process::id());
    let out = stack.xtask(
        root,
        &["build", "--all", "--push"],
        &[("DOCKER_REGISTRY", &stack.registry), ("DOCKER_TAGS", &tag)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    // A developer's uncommitted changes add the `-dirty` suffix; a CI clone has none.
    let pushed_tag = |svc: &str| -> String {
        let repo = format!("{}/slipway/{svc}:", stack.registry);
        let line = printed
            .lines()
            .find(|l| l.starts_with(&repo) && l[repo.len()..].starts_with(&tag))
            .unwrap_or_else(|| panic!("{svc} not printed:\n{printed}"));
        let (reference, digest) = line.split_once('@').unwrap();
        assert!(digest.starts_with("sha256:"), "{line}");
        reference[repo.len()..].to_string()
    };
    let mut tags = BTreeMap::new();
    for svc in ["api", "web", "worker"] {
        let t = pushed_tag(svc);
        assert!(registry_tags(&format!("{}/slipway/{svc}", stack.registry)).contains(&t));
        tags.insert(svc, t);
    }
    // api and worker are host-compiled static binaries in `scratch`, with their own health check.
    for (svc, port) in [("api", 8080), ("worker", 8081), ("web", 8088)] {
        let image = format!("{}/slipway/{svc}:{}", stack.registry, tags[svc]);
        let name = format!("e2e-{svc}-{}", std::process::id());
        let status = wait_healthy(&image, &name);
        let health = std::process::Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{port}/health")])
            .output()
            .unwrap();
        remove_container(&name);
        assert_eq!(status, "running healthy", "{svc}");
        assert!(health.status.success(), "{svc} /health");
        let user = run_ok(
            "docker",
            &["image", "inspect", "--format", "{{.Config.User}}", &image],
        );
        assert_ne!(user.trim(), "", "{svc} must not run as root");
        assert!(!user.starts_with('0'), "{svc} runs as {user}");
    }
}

/// Simulates CI pushes to `main` and checks in the registry that `latest` only moves forward.
#[test]
fn latest_moves_forward_only_in_a_real_registry() {
    let Some(stack) = stack("latest_moves_forward_only_in_a_real_registry") else {
        return;
    };
    let prefix = stack.unique_prefix("latest");
    let f = fixture(&stack.registry, &prefix);
    let repo = format!("{}/{prefix}/static", stack.registry);
    let latest_labels = || {
        let v = skopeo_json(&["inspect", &format!("docker://{repo}:latest")]);
        (
            v["Labels"]["org.opencontainers.image.version"]
                .as_str()
                .unwrap()
                .to_string(),
            v["Labels"]["org.opencontainers.image.revision"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    };
    let push_main = |sha: &str| {
        let _at = checkout(f.path(), sha);
        let out = stack.xtask(
            f.path(),
            &["build", "static", "--push"],
            &[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_EVENT_NAME", "push"),
                ("GITHUB_REF", "refs/heads/main"),
                ("GITHUB_SHA", sha),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        (stdout(&out), stderr(&out))
    };

    // First release from main: latest appears.
    f.write("VERSION", "1.2.0\n");
    let a = f.commit("main");
    let (printed, _) = push_main(&a);
    assert!(
        printed.contains(&format!("{repo}:latest@sha256:")),
        "{printed}"
    );
    assert!(printed.contains(&format!("{repo}:1.2.0@")), "{printed}");
    assert_eq!(latest_labels(), ("1.2.0".to_string(), a.clone()));

    // A later commit with an older VERSION: everything but latest is pushed.
    f.write("VERSION", "1.1.9\n");
    let b = f.commit("main");
    let (printed, err) = push_main(&b);
    assert!(!printed.contains(":latest@"), "{printed}");
    assert!(printed.contains(&format!("{repo}:1.1.9@")), "{printed}");
    assert!(
        err.contains("latest: points to 1.2.0, newer than 1.1.9; latest never moves backwards"),
        "{err}"
    );
    assert_eq!(latest_labels(), ("1.2.0".to_string(), a.clone()));

    // A newer version on a commit that does not descend from latest's (a force push).
    f.write("VERSION", "1.3.0\n");
    let orphan = {
        let r = git2::Repository::open(f.path()).unwrap();
        let tree = r.head().unwrap().peel_to_tree().unwrap();
        let sig = git2::Signature::now("t", "t@example.invalid").unwrap();
        r.commit(None, &sig, &sig, "rewritten history", &tree, &[])
            .unwrap()
            .to_string()
    };
    let (printed, err) = push_main(&orphan);
    assert!(!printed.contains(":latest@"), "{printed}");
    assert!(
        err.contains(&format!(
            "points to 1.2.0 at {}, which this commit does not descend from",
            &a[..7]
        )),
        "{err}"
    );
    assert_eq!(latest_labels(), ("1.2.0".to_string(), a.clone()));

    // A descendant with a newer version moves it; running it again is a no-op success.
    let c = f.commit("main");
    push_main(&c);
    assert_eq!(latest_labels(), ("1.3.0".to_string(), c.clone()));
    let (printed, _) = push_main(&c);
    assert!(
        printed.contains(&format!("{repo}:latest@sha256:")),
        "idempotent: {printed}"
    );
    assert_eq!(latest_labels(), ("1.3.0".to_string(), c));
}

#[test]
fn a_released_version_tag_never_moves_in_a_real_registry() {
    let Some(stack) = stack("a_released_version_tag_never_moves_in_a_real_registry") else {
        return;
    };
    let prefix = stack.unique_prefix("versions");
    let f = fixture(&stack.registry, &prefix);
    let repo = format!("{}/{prefix}/static", stack.registry);
    let revision_of = |tag: &str| {
        let v = skopeo_json(&["inspect", &format!("docker://{repo}:{tag}")]);
        v["Labels"]["org.opencontainers.image.revision"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let push = |sha: &str, git_ref: &str, tags: Option<&str>| {
        let mut env = vec![
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_REF", git_ref),
            ("GITHUB_SHA", sha),
        ];
        if let Some(t) = tags {
            env.push(("DOCKER_TAGS", t));
        }
        let _at = checkout(f.path(), sha);
        let out = stack.xtask(f.path(), &["build", "static", "--push"], &env);
        assert!(out.status.success(), "{}", stderr(&out));
        (stdout(&out), stderr(&out))
    };
    // Released from main at 1.1.0.
    f.write("VERSION", "1.1.0\n");
    let released = f.commit("main");
    push(&released, "refs/heads/main", None);
    assert_eq!(revision_of("1.1.0"), released);
    // A feature branch that renders {version} (VERSION not bumped yet): the registry says
    // 1.1.0 holds another commit's image, so that tag is left out, with the fix.
    f.write("services/static/page.txt", "feature\n");
    let feature = f.commit("main");
    let (printed, err) = push(&feature, "refs/heads/feature", Some("{version},{sha7}"));
    assert!(!printed.contains(&format!("{repo}:1.1.0@")), "{printed}");
    assert!(
        printed.contains(&format!("{repo}:{}@", &feature[..7])),
        "{printed}"
    );
    assert!(
        err.contains(&format!(
            "{repo}:1.1.0: holds the image of {}",
            &released[..7]
        )) && err.contains("bump VERSION"),
        "{err}"
    );
    assert_eq!(revision_of("1.1.0"), released, "still the released image");
    // Re-running the released commit is idempotent.
    let (printed, _) = push(&released, "refs/heads/main", None);
    assert!(printed.contains(&format!("{repo}:1.1.0@")), "{printed}");
}

#[test]
fn a_second_push_of_the_same_inputs_rebuilds_nothing_and_only_adds_tags() {
    let Some(stack) = stack("a_second_push_of_the_same_inputs_rebuilds_nothing_and_only_adds_tags")
    else {
        return;
    };
    let prefix = stack.unique_prefix("reuse");
    let f = fixture(&stack.registry, &prefix);
    let repo = format!("{}/{prefix}/static", stack.registry);
    let sha = f.commit("main");
    let push = |tags: &str| {
        let out = stack.xtask(f.path(), &["push", "static"], &[("DOCKER_TAGS", tags)]);
        assert!(out.status.success(), "{}", stderr(&out));
        (stdout(&out), stderr(&out))
    };
    let (first, err) = push("{sha7},{branch}");
    assert!(err.contains("[static] build"), "{err}");
    let digest = first
        .lines()
        .find(|l| l.starts_with(&format!("{repo}:{}@", &sha[..7])))
        .and_then(|l| l.split_once('@'))
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| panic!("{first}"));
    let label = skopeo_json(&["inspect", &format!("docker://{repo}:{}", &sha[..7])])["Labels"]
        ["dev.slipway.input-digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(label.starts_with("sha256:"), "{label}");
    // Again, with one more tag: no build, the new tag added by digest.
    let (second, err) = push("{sha7},{branch},extra");
    assert!(!err.contains("[static] build"), "nothing rebuilt: {err}");
    assert!(
        err.contains("already published with the same inputs"),
        "{err}"
    );
    assert!(
        second.contains(&format!("{repo}:extra@{digest}")),
        "{second}"
    );
    let extra = skopeo_json(&["inspect", &format!("docker://{repo}:extra")]);
    assert_eq!(
        extra["Digest"],
        digest.as_str(),
        "the same image under the new tag"
    );
    // A changed input is built again.
    f.write("services/static/page.txt", "changed\n");
    let sha2 = f.commit("main");
    let (third, err) = push("{sha7}");
    assert!(err.contains("[static] build"), "{err}");
    assert!(
        third.contains(&format!("{repo}:{}@", &sha2[..7])),
        "{third}"
    );
}

#[test]
fn pushes_to_a_registry_that_needs_the_ecr_login_through_the_real_aws_cli() {
    let Some(stack) =
        stack("pushes_to_a_registry_that_needs_the_ecr_login_through_the_real_aws_cli")
    else {
        return;
    };
    let ecr = std::env::var("SLIPWAY_STACK_ECR_REGISTRY")
        .expect("the stack's env names its ECR-login registry (SLIPWAY_STACK_ECR_REGISTRY)");
    let prefix = stack.unique_prefix("ecr");
    // The repository the push creates is set up as `ecr apply` would (encryption is fixed
    // at creation).
    let f = Fixture::new(&format!(
        "registries = [\"{ecr}\"]\nprefix = \"{prefix}\"\necr_login = [\"{ecr}\"]\n[workspace.metadata.images.ecr]\nencryption = \"KMS\"\nkms_key = \"alias/slipway\"\ntags = {{ team = \"core\" }}\n"
    ));
    f.write(
        "services/static/Dockerfile",
        "FROM busybox:1.35\nCOPY page.txt /page.txt\nUSER 65534:65534\n",
    );
    f.write("services/static/page.txt", "static\n");
    let sha = f.commit("main");
    let users_config = std::env::var("DOCKER_CONFIG").map(|d| format!("{d}/config.json"));
    let before = users_config
        .as_ref()
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok());
    // Without AWS credentials: a clear error before anything is built or pushed.
    let out = stack.xtask(
        f.path(),
        &["push", "static"],
        &[
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "the ECR login to {ecr} failed: check the AWS credentials"
        )) && err.contains("Unable to locate credentials"),
        "{err}"
    );
    assert!(!err.contains("[static] build"), "nothing built: {err}");
    // With them: aws ecr get-login-password (moto) | docker login --password-stdin, then push;
    // under -v too (which streams every tool's output), the password never shows.
    let out = stack.xtask(f.path(), &["-v", "push", "static"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("logged in to {ecr} (ECR token)")),
        "{err}"
    );
    assert!(
        !err.contains("123456789012-auth-token"),
        "the password never shows: {err}"
    );
    // ECR does not create repositories on push: the run did, through the ECR API (moto).
    assert!(
        err.contains(&format!(
            "created the ECR repository {prefix}/static on {ecr}"
        )),
        "{err}"
    );
    let aws = std::env::var("SLIPWAY_AWS").unwrap_or_else(|_| "aws".into());
    let described = run_ok(
        &aws,
        &[
            "ecr",
            "describe-repositories",
            "--repository-names",
            &format!("{prefix}/static"),
            "--output",
            "json",
        ],
    );
    let described: serde_json::Value = serde_json::from_str(&described).unwrap();
    assert_eq!(
        described["repositories"][0]["imageScanningConfiguration"]["scanOnPush"], true,
        "{described}"
    );
    assert_eq!(
        described["repositories"][0]["encryptionConfiguration"]["kmsKey"], "alias/slipway",
        "{described}"
    );
    let policy = run_ok(
        &aws,
        &[
            "ecr",
            "get-lifecycle-policy",
            "--repository-name",
            &format!("{prefix}/static"),
        ],
    );
    assert!(
        policy.contains("keep the last 10 v-tagged images"),
        "{policy}"
    );
    let pushed = stdout(&out);
    assert!(
        pushed.contains(&format!("{ecr}/{prefix}/static:{}@sha256:", &sha[..7])),
        "{pushed}"
    );
    let inspected = run_ok(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            "AWS:123456789012-auth-token",
            &format!("docker://{ecr}/{prefix}/static:{}", &sha[..7]),
        ],
    );
    assert!(inspected.contains("\"Digest\""), "{inspected}");
    // The user's docker config is left as it was: the login lives in the run's own.
    let after = users_config
        .as_ref()
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok());
    assert_eq!(before, after, "the user's DOCKER_CONFIG is never changed");
    // …nor does a credential outlive the run in target/ (which CI may cache).
    let left: Vec<String> = std::fs::read_dir(f.path().join("target/slipway"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("docker-config"))
        .collect();
    assert!(left.is_empty(), "the run's login is removed: {left:?}");
}

#[test]
fn an_image_over_its_size_budget_fails_before_any_push() {
    let Some(stack) = stack("an_image_over_its_size_budget_fails_before_any_push") else {
        return;
    };
    let prefix = stack.unique_prefix("size");
    let f = fixture(&stack.registry, &prefix);
    f.write("services/static/service.toml", "max_size = \"1kB\"\n");
    f.commit("main");
    let out = stack.xtask(f.path(), &["push", "static"], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("over its budget of 1.0 kB (max_size in service.toml)"),
        "{err}"
    );
    assert!(
        err.contains("(every command and its output: target/slipway/logs/static.log)"),
        "{err}"
    );
    let log = std::fs::read_to_string(f.path().join("target/slipway/logs/static.log")).unwrap();
    assert!(
        log.contains(" inspect ") && log.contains("[exit 0, ") && !log.contains("$ docker push"),
        "the log holds every command and its output: {log}"
    );
    assert_not_in_registry(&format!("{}/{prefix}/static", stack.registry));
    f.write("services/static/service.toml", "max_size = \"50MB\"\n");
    f.commit("main");
    let out = stack.xtask(f.path(), &["push", "static", "--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let row = err
        .lines()
        .find(|l| l.trim_start().starts_with("static "))
        .unwrap_or_else(|| panic!("a table row for static: {err}"));
    assert!(
        row.contains(" published ") && row.contains(" MB ") && row.contains(" none "),
        "result, size and vulnerabilities in the table: {row}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let svc = &json["services"][0];
    assert_eq!(svc["name"], "static");
    assert_eq!(svc["result"], "published");
    assert!(svc["size"].as_u64().unwrap() > 1000, "{svc}");
    assert_eq!(svc["vulnerabilities"], serde_json::json!({}));
    let digest = svc["digests"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert!(digest.starts_with("sha256:"), "{svc}");
    assert_eq!(svc["log"], "target/slipway/logs/static.log");
    // A re-run says so, in the table and the JSON.
    let out = stack.xtask(f.path(), &["push", "static", "--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["services"][0]["result"], "already published");
}

#[test]
fn the_scan_gate_keeps_a_vulnerable_image_out_of_every_registry() {
    let Some(stack) = stack("the_scan_gate_keeps_a_vulnerable_image_out_of_every_registry") else {
        return;
    };
    let prefix = stack.unique_prefix("scan");
    let f = fixture(&stack.registry, &prefix);
    // An image with a package the fixture trivy database marks CRITICAL (and one HIGH).
    f.write(
        "services/vuln/Dockerfile",
        "FROM busybox:1.35\nCOPY installed /lib/apk/db/installed\nCOPY alpine-release /etc/alpine-release\nUSER 65534:65534\n",
    );
    f.write(
        "services/vuln/installed",
        "P:zz-vuln\nV:1.0.0-r0\no:zz-vuln\n\nP:zz-high\nV:2.0.0-r0\no:zz-high\n\n",
    );
    f.write("services/vuln/alpine-release", "3.22.2\n");
    f.commit("main");
    // `scan` alone (what a pull request runs): the same gate, never a push.
    let out = stack.xtask(f.path(), &["scan", "vuln"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("- vuln: scan: the scan gate failed (1 finding(s) at CRITICAL)"),
        "{}",
        stderr(&out)
    );
    assert!(f
        .path()
        .join("target/slipway/out/vuln/scan.sarif")
        .is_file());
    assert_not_in_registry(&format!("{}/{prefix}/vuln", stack.registry));
    let out = stack.xtask(f.path(), &["push", "vuln", "static", "--keep-going"], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("- vuln: scan: the scan gate failed (1 finding(s) at CRITICAL): CRITICAL CVE-2099-0001 in zz-vuln 1.0.0-r0 (fixed in 1.0.1-r0)"),
        "{err}"
    );
    assert_not_in_registry(&format!("{}/{prefix}/vuln", stack.registry));
    assert_eq!(
        registry_tags(&format!("{}/{prefix}/static", stack.registry)).len(),
        2,
        "the clean one is still published (--keep-going)"
    );
    // One scan, its report converted: the SARIF GitHub code scanning takes.
    let sarif =
        std::fs::read_to_string(f.path().join("target/slipway/out/vuln/scan.sarif")).unwrap();
    assert!(sarif.contains("\"ruleId\": \"CVE-2099-0001\""), "{sarif}");
    // And every service scanned in the run in one file, each run with its own category.
    let merged: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.path().join("target/slipway/out/scan.sarif")).unwrap(),
    )
    .unwrap();
    let ids: Vec<&str> = merged["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["automationDetails"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["slipway/static/", "slipway/vuln/"], "{merged}");
    // Accepted with a reason in .trivyignore: it goes through, the HIGH is reported.
    f.write(
        ".trivyignore",
        "# accepted until the upstream fix: TICKET-1\nCVE-2099-0001\n",
    );
    f.commit("main");
    let out = stack.xtask(f.path(), &["scan", "vuln", "--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["services"][0]["result"], "scanned");
    assert_eq!(
        json["services"][0]["vulnerabilities"],
        serde_json::json!({"HIGH": 1})
    );
    assert_not_in_registry(&format!("{}/{prefix}/vuln", stack.registry));
    let out = stack.xtask(f.path(), &["push", "vuln"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 HIGH"), "{}", stderr(&out));
    assert_eq!(
        registry_tags(&format!("{}/{prefix}/vuln", stack.registry)).len(),
        2
    );
}

#[test]
fn an_image_whose_healthcheck_fails_is_not_pushed() {
    let Some(stack) = stack("an_image_whose_healthcheck_fails_is_not_pushed") else {
        return;
    };
    let prefix = stack.unique_prefix("health");
    let f = fixture(&stack.registry, &prefix);
    f.write(
        "services/sick/Dockerfile",
        "FROM busybox:1.35\nUSER 65534:65534\nHEALTHCHECK --interval=1s --timeout=1s --retries=2 CMD [\"sh\", \"-c\", \"echo probe-said-no; false\"]\nCMD [\"sh\", \"-c\", \"echo starting; sleep 60\"]\n",
    );
    // A container that stops, and one whose command cannot even start.
    f.write(
        "services/quits/Dockerfile",
        "FROM busybox:1.35\nUSER 65534:65534\nHEALTHCHECK --interval=1s --timeout=1s --retries=30 CMD [\"true\"]\nCMD [\"sh\", \"-c\", \"echo missing DATABASE_URL; exit 3\"]\n",
    );
    f.write(
        "services/badexec/Dockerfile",
        "FROM busybox:1.35\nUSER 65534:65534\nHEALTHCHECK --interval=1s CMD [\"true\"]\nCMD [\"/nonexistent\"]\n",
    );
    f.commit("main");
    let out = stack.xtask(
        f.path(),
        &[
            "push",
            "sick",
            "quits",
            "badexec",
            "greeter",
            "--keep-going",
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("- sick: health check: the image's HEALTHCHECK did not pass (unhealthy); nothing was pushed")
            && err.contains("starting")
            && err.contains("exit 1: probe-said-no"),
        "{err}"
    );
    assert!(
        err.contains("- quits: health check: the image's HEALTHCHECK did not pass (the container exited before it was healthy)")
            && err.contains("missing DATABASE_URL"),
        "{err}"
    );
    assert!(err.contains("- badexec: health check: "), "{err}");
    assert_not_in_registry(&format!("{}/{prefix}/sick", stack.registry));
    // greeter's HEALTHCHECK passes: it is published.
    assert_eq!(
        registry_tags(&format!("{}/{prefix}/greeter", stack.registry)).len(),
        2
    );
    // (greeter is left out: other tests run health checks of their own greeter meanwhile.)
    for svc in ["sick", "quits", "badexec"] {
        let left = run_ok(
            "docker",
            &[
                "ps",
                "-aq",
                "--filter",
                &format!("name=slipway-health-{svc}-"),
            ],
        );
        assert!(
            left.trim().is_empty(),
            "{svc}'s health container is removed, also when `docker run` failed: {left}"
        );
    }
}

#[test]
fn pushed_images_are_signed_by_digest_and_the_signature_is_in_the_registry() {
    let Some(stack) =
        stack("pushed_images_are_signed_by_digest_and_the_signature_is_in_the_registry")
    else {
        return;
    };
    let prefix = stack.unique_prefix("sign");
    let f = Fixture::new(&format!(
        "registries = [\"{}\"]\nprefix = \"{prefix}\"\n[workspace.metadata.images.sign]\nkey = \"ci/cosign.key\"\n",
        stack.registry
    ));
    f.write(
        "services/static/Dockerfile",
        "FROM busybox:1.35\nCOPY page.txt /page.txt\nUSER 65534:65534\n",
    );
    f.write("services/static/page.txt", "static\n");
    f.write("ci/cosign.key", "fake private key\n");
    f.write("ci/cosign.pub", "fake public key\n");
    let sha = f.commit("main");
    let tools = tempfile::tempdir().unwrap();
    let bin = support::fake_cosign(tools.path());
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log = tools.path().join("cosign.log");
    let cosign_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let repo = format!("{}/{prefix}/static", stack.registry);
    let push = |extra: &[(&str, &str)]| {
        let mut env = vec![("PATH", path.as_str()), ("DOCKER_TAGS", "{sha7},{branch}")];
        env.extend_from_slice(extra);
        stack.xtask(f.path(), &["push", "static"], &env)
    };

    // Without cosign: refused before anything is built or pushed (no unsigned tags left).
    if which::which("cosign").is_err() {
        let out = stack.xtask(f.path(), &["push", "static"], &[]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("cosign is not installed") && !err.contains("[static] build"),
            "{err}"
        );
    }
    let out = push(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let digest = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{repo}:{}@", &sha[..7])))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{}", stdout(&out)));
    let sig_tag = format!("{}.sig", digest.replace(':', "-"));
    assert!(
        registry_tags(&repo).contains(&sig_tag),
        "{:?}",
        registry_tags(&repo)
    );
    let log1 = cosign_log();
    assert!(
        log1.contains(&format!("sign --yes --key ci/cosign.key {repo}@{digest}")),
        "{log1}"
    );
    assert!(
        log1.contains(&format!("verify --key ci/cosign.pub {repo}@{digest}")),
        "{log1}"
    );
    assert!(
        !log1.contains(&format!("{repo}:")),
        "never a tag, only the digest: {log1}"
    );
    // The scan's CycloneDX SBOM, kept with the run's outputs and attached as a signed
    // attestation beside the image.
    let sbom =
        std::fs::read_to_string(f.path().join("target/slipway/out/static/sbom.cdx.json")).unwrap();
    assert!(sbom.contains("\"bomFormat\": \"CycloneDX\""), "{sbom}");
    assert!(
        log1.contains(&format!(
            "attest --yes --key ci/cosign.key --type cyclonedx --predicate target/slipway/out/static/sbom.cdx.json {repo}@{digest}"
        )) && log1.contains(&format!(
            "verify-attestation --key ci/cosign.pub --type cyclonedx {repo}@{digest}"
        )),
        "{log1}"
    );
    assert!(
        registry_tags(&repo).contains(&format!("{}.att", digest.replace(':', "-"))),
        "{:?}",
        registry_tags(&repo)
    );
    assert!(
        stderr(&out).contains(&format!(
            "signed {repo}@{digest}; check it with: cosign verify --key ci/cosign.pub {repo}@{digest}"
        )),
        "{}",
        stderr(&out)
    );

    // The same inputs again: nothing rebuilt, and the signature in the registry is enough.
    let out = push(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("already signed"), "{}", stderr(&out));
    let signs = |log: &str| log.lines().filter(|l| l.starts_with("sign ")).count();
    assert_eq!(
        signs(&cosign_log()),
        signs(&log1),
        "not signed twice: {}",
        cosign_log()
    );

    // A signing failure fails the run, names the step; `sign` then signs what was pushed
    // without building or pushing anything.
    f.write("services/static/page.txt", "changed\n");
    let sha2 = f.commit("main");
    let out = push(&[("FAKE_COSIGN_FAIL", "1")]);
    assert!(!out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("static: sign") && err.contains("fake failure"),
        "{err}"
    );
    let tags_before = registry_tags(&repo);
    let out = stack.xtask(f.path(), &["sign", "static"], &[("PATH", path.as_str())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains("[static] build"), "nothing built: {err}");
    let digest2 = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{repo}:{}@", &sha2[..7])))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{}", stdout(&out)));
    let sig2 = format!("{}.sig", digest2.replace(':', "-"));
    let att2 = format!("{}.att", digest2.replace(':', "-"));
    let mut expected = tags_before.clone();
    expected.push(sig2);
    expected.push(att2);
    expected.sort();
    assert_eq!(
        registry_tags(&repo),
        expected,
        "only the signature and the SBOM attestation (of the digest in the registry) were added"
    );

    // A signature by another key (rotated, or anyone who can push a tag) is not "signed":
    // the next run verifies it, finds it wrong, and signs with the configured key.
    run_ok(
        bin.join("cosign").to_str().unwrap(),
        &[
            "sign",
            "--yes",
            "--key",
            "ci/old.key",
            &format!("{repo}@{digest2}"),
        ],
    );
    let before = signs(&cosign_log());
    let out = stack.xtask(f.path(), &["sign", "static"], &[("PATH", path.as_str())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("does not verify with the configured key")
            && !err.contains("(already signed)"),
        "{err}"
    );
    assert_eq!(signs(&cosign_log()), before + 1, "{}", cosign_log());
    run_ok(
        bin.join("cosign").to_str().unwrap(),
        &[
            "verify",
            "--key",
            "ci/cosign.pub",
            &format!("{repo}@{digest2}"),
        ],
    );

    // `sign` of a commit that was never pushed: an error naming the service, nothing pushed.
    f.write("services/static/page.txt", "changed again\n");
    f.commit("main");
    let out = stack.xtask(f.path(), &["sign", "static"], &[("PATH", path.as_str())]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("not published with this commit's inputs")
            && err.contains("cargo xtask push static"),
        "{err}"
    );
    assert_eq!(registry_tags(&repo), expected);
}

#[test]
fn logs_in_with_a_token_from_the_environment_and_never_shows_it() {
    let Some(stack) = stack("logs_in_with_a_token_from_the_environment_and_never_shows_it") else {
        return;
    };
    // The stack's htpasswd registry (user AWS, moto's token as the password) stands in for
    // GHCR or Docker Hub.
    let registry = std::env::var("SLIPWAY_STACK_ECR_REGISTRY")
        .expect("the stack's env names its htpasswd registry (SLIPWAY_STACK_ECR_REGISTRY)");
    let prefix = stack.unique_prefix("token");
    let f = Fixture::new(&format!(
        "registries = [\"{registry}\"]\nprefix = \"{prefix}\"\n\n[[workspace.metadata.images.logins]]\nregistry = \"{registry}\"\nusername = \"AWS\"\npassword_env = \"SLIPWAY_TEST_REGISTRY_TOKEN\"\n"
    ));
    f.write(
        "services/static/Dockerfile",
        "FROM busybox:1.35\nCOPY page.txt /page.txt\nUSER 65534:65534\n",
    );
    f.write("services/static/page.txt", "static\n");
    let sha = f.commit("main");
    let push = |token: Option<&str>| {
        let env: Vec<(&str, &str)> = token
            .map(|t| ("SLIPWAY_TEST_REGISTRY_TOKEN", t))
            .into_iter()
            .collect();
        stack.xtask(f.path(), &["push", "static"], &env)
    };
    let out = push(None);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("the login for {registry}"))
            && err.contains("SLIPWAY_TEST_REGISTRY_TOKEN, which is not set")
            && !err.contains("[static] build"),
        "{err}"
    );
    let out = push(Some("not-the-token"));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("docker login to {registry} as AWS failed"))
            && !err.contains("not-the-token")
            && !err.contains("[static] build"),
        "{err}"
    );
    let out = push(Some("123456789012-auth-token"));
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("logged in to {registry} as AWS (token)"))
            && !err.contains("123456789012-auth-token"),
        "{err}"
    );
    assert!(
        stdout(&out).contains(&format!("{registry}/{prefix}/static:{}@sha256:", &sha[..7])),
        "{}",
        stdout(&out)
    );
}

#[test]
fn ctrl_c_pushes_nothing_further_and_a_rerun_finishes_the_job() {
    use std::os::unix::process::CommandExt;
    let Some(stack) = stack("ctrl_c_pushes_nothing_further_and_a_rerun_finishes_the_job") else {
        return;
    };
    let prefix = stack.unique_prefix("ctrlc");
    let f = fixture(&stack.registry, &prefix);
    // Healthy only after a few seconds: the run waits in its health check.
    f.write(
        "services/slow/Dockerfile",
        "FROM busybox:1.35\nUSER 65534:65534\nHEALTHCHECK --interval=1s --timeout=1s --retries=60 CMD [\"test\", \"-f\", \"/tmp/ready\"]\nCMD [\"sh\", \"-c\", \"sleep 5; touch /tmp/ready; sleep 600\"]\n",
    );
    f.commit("main");
    let mut cmd = stack.xtask_command(f.path(), &["push", "static", "slow", "-j", "2"]);
    cmd.process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let health = |all: bool| {
        let mut args = vec!["ps", "-q", "--filter", "name=slipway-health-slow-"];
        if all {
            args.insert(1, "-a");
        }
        run_ok("docker", &args)
    };
    let static_repo = format!("{}/{prefix}/static", stack.registry);
    let start = std::time::Instant::now();
    while health(false).trim().is_empty() || skopeo_tags(&static_repo) < 2 {
        assert!(
            start.elapsed().as_secs() < 120,
            "the run never reached the health check of slow with static published"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Ctrl-C in a terminal: SIGINT to the whole process group.
    run_ok("kill", &["-INT", "--", &format!("-{pid}")]);
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains(
            "interrupted: complete: static; not complete: slow (no further tag was pushed"
        ),
        "{err}"
    );
    assert_not_in_registry(&format!("{}/{prefix}/slow", stack.registry));
    assert_eq!(
        health(true).trim(),
        "",
        "the health check's container is removed"
    );
    // The same command again finishes the job: static is already there, slow is published.
    let out = stack.xtask(
        f.path(),
        &["push", "static", "slow", "-j", "2", "--json"],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results: Vec<(&str, &str)> = json["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        results,
        [("slow", "published"), ("static", "already published")]
    );
    // SIGTERM (a CI cancel, `timeout`), twice — the second leaves at once: the health check's
    // container is still removed.
    f.write(
        "services/slow/Dockerfile",
        "FROM busybox:1.35\nUSER 65534:65534\nHEALTHCHECK --interval=1s --timeout=1s --retries=60 CMD [\"test\", \"-f\", \"/tmp/ready\"]\nCMD [\"sh\", \"-c\", \"sleep 30; touch /tmp/ready; sleep 600\"]\n",
    );
    f.commit("main");
    let mut cmd = stack.xtask_command(f.path(), &["push", "slow"]);
    cmd.process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let start = std::time::Instant::now();
    while health(false).trim().is_empty() {
        assert!(
            start.elapsed().as_secs() < 120,
            "never reached the health check"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    run_ok("kill", &["-TERM", &format!("{pid}")]);
    run_ok("kill", &["-TERM", &format!("{pid}")]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert_eq!(
        health(true).trim(),
        "",
        "removed on the way out: {}",
        stderr(&out)
    );
}

/// How many tags the repository has (0 when it does not exist yet).
fn skopeo_tags(repository: &str) -> usize {
    support::listed_tags(repository).map_or(0, |t| t.len())
}

#[test]
fn a_dependent_builds_from_the_image_its_base_made_in_this_run() {
    let Some(stack) = stack("a_dependent_builds_from_the_image_its_base_made_in_this_run") else {
        return;
    };
    let prefix = stack.unique_prefix("deps");
    let f = fixture(&stack.registry, &prefix);
    f.write(
        "services/base/Dockerfile",
        "FROM busybox:1.35\nCOPY base.txt /base.txt\nUSER 65534:65534\n",
    );
    f.write("services/base/base.txt", "one\n");
    // `stable` is a tag no run writes: without pinning it would not exist (or be stale).
    f.write(
        "services/app/Dockerfile",
        &format!(
            "FROM {}/{prefix}/base:stable\nUSER 65534:65534\nCMD [\"cat\", \"/base.txt\"]\n",
            stack.registry
        ),
    );
    f.commit("main");
    let app = |sha: &str| format!("{}/{prefix}/app:{}", stack.registry, &sha[..7]);
    // What app's image for the current commit reads from its base.
    let app_reads = || {
        let sha = run_ok(
            "git",
            &["-C", &f.path().display().to_string(), "rev-parse", "HEAD"],
        );
        run_ok(
            "docker",
            &["run", "--rm", "--network", "none", &app(sha.trim())],
        )
    };
    // Sorted by name, app comes first; under -j 2 it still waits for base.
    let out = stack.xtask(f.path(), &["push", "app", "base", "-j", "2", "--json"], &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "[app] reads {}/{prefix}/base:stable as sha256:",
            stack.registry
        )),
        "{err}"
    );
    let read = app_reads();
    assert_eq!(read, "one\n");
    // The base changes: the dependent is selected too and reads the new base.
    f.write("services/base/base.txt", "two\n");
    f.commit("main");
    let out = stack.xtask(
        f.path(),
        &["push", "--changed", "--base", "HEAD~1", "-j", "2"],
        &[],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("[app] reads "),
        "app is selected with its base: {err}"
    );
    let read = app_reads();
    assert_eq!(read, "two\n", "never a stale base");
    // The base published first (then reused by the run that builds app): app reads that.
    f.write("services/base/base.txt", "three\n");
    f.commit("main");
    let out = stack.xtask(f.path(), &["push", "base"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = stack.xtask(f.path(), &["push", "--all", "-j", "2"], &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("already published for this commit by base"),
        "{err}"
    );
    let read = app_reads();
    assert_eq!(read, "three\n", "the reused base, not the one before");
    // app alone while its base is not published with its current inputs: refused, since
    // app's content digest would claim a base it was not built on.
    f.write("services/base/base.txt", "four\n");
    f.commit("main");
    let out = stack.xtask(f.path(), &["push", "app"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("which is not published for this commit with its current inputs")
            && stderr(&out).contains("cargo xtask push base app"),
        "{}",
        stderr(&out)
    );
    // Once base is published for this commit, app alone reads it.
    let out = stack.xtask(f.path(), &["push", "base"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = stack.xtask(f.path(), &["push", "app"], &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("published for this commit by base"), "{err}");
    let read = app_reads();
    assert_eq!(read, "four\n");
}

#[test]
fn a_registry_that_comes_back_mid_push_gets_the_image() {
    use std::io::BufRead;
    let Some(stack) = stack("a_registry_that_comes_back_mid_push_gets_the_image") else {
        return;
    };
    // A registry of our own, down when the run starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:{port}, secret: e2e}}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let registry = format!("127.0.0.1:{port}");
    let prefix = stack.unique_prefix("flaky");
    let f = fixture(&registry, &prefix);
    f.commit("main");
    let mut cmd = stack.xtask_command(f.path(), &["push", "static"]);
    cmd.env("SLIPWAY_RETRY_BASE_MS", "1500")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut server: Option<std::process::Child> = None;
    let mut seen = String::new();
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if server.is_none() && line.starts_with("attempt 1/3 failed (connection refused)") {
            // The push found the registry down: bring it up before the next attempt.
            server = Some(
                std::process::Command::new("/usr/bin/docker-registry")
                    .arg("serve")
                    .arg(&config)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap(),
            );
        }
        seen.push_str(&line);
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    let mut server =
        server.unwrap_or_else(|| panic!("the push never found the registry down: {seen}"));
    let tags = registry_tags(&format!("{registry}/{prefix}/static"));
    let _ = server.kill();
    let _ = server.wait();
    assert!(status.success(), "{seen}");
    assert_eq!(tags.len(), 2, "every tag arrived: {tags:?}\n{seen}");
}

#[test]
fn docker_hub_bases_are_read_from_the_configured_mirror() {
    let Some(stack) = stack("docker_hub_bases_are_read_from_the_configured_mirror") else {
        return;
    };
    let prefix = stack.unique_prefix("mirror");
    // The "mirror": a registry path holding library/busybox:1.35, marked so that a build
    // from it can be told apart from one from the local busybox.
    let mirror = format!("{}/{prefix}-hub", stack.registry);
    let marked = format!("{mirror}/library/busybox:1.35");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM busybox:1.35\nRUN echo mirrored > /mirror-marker\n",
    )
    .unwrap();
    run_ok(
        "docker",
        &[
            "build",
            "--network",
            "none",
            "-t",
            &marked,
            &dir.path().display().to_string(),
        ],
    );
    run_ok("docker", &["push", &marked]);
    run_ok("docker", &["rmi", &marked]);
    let f = Fixture::new(&format!(
        "registries = [\"{}\"]\nprefix = \"{prefix}\"\nbase_image_mirror = \"{mirror}\"\n",
        stack.registry
    ));
    f.write(
        "services/app/Dockerfile",
        "FROM busybox:1.35 AS base\nFROM base\nUSER 65534:65534\nCMD [\"cat\", \"/mirror-marker\"]\n",
    );
    let sha = f.commit("main");
    let out = stack.xtask(f.path(), &["push", "app"], &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let image = format!("{}/{prefix}/app:{}", stack.registry, &sha[..7]);
    let read = run_ok("docker", &["run", "--rm", "--network", "none", &image]);
    assert_eq!(read, "mirrored\n", "the base came from the mirror: {err}");
    let log = std::fs::read_to_string(f.path().join("target/slipway/logs/app.log")).unwrap();
    assert!(
        log.contains("--file target/slipway/out/app/Dockerfile"),
        "the build reads the rewritten Dockerfile: {log}"
    );
}

#[test]
fn check_reports_every_problem_with_its_file_and_line() {
    let Some(_stack) = stack("check_reports_every_problem_with_its_file_and_line") else {
        return;
    };
    let f = Fixture::new("");
    f.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"crates/app\"]\nresolver = \"2\"\n\n[workspace.metadata.images]\nregistries = []\n\n[workspace.metadata.images.scan]\nfail_on = [\"CRITICAL\", \"HIGH\"]\n",
    );
    // A crate that locks strsim, which the fixture trivy database has an advisory for.
    f.write(
        "crates/app/Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nstrsim = \"0.11\"\n",
    );
    f.write("crates/app/src/lib.rs", "");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_ok(
        &cargo,
        &[
            "generate-lockfile",
            "--offline",
            "--manifest-path",
            &f.path().join("Cargo.toml").display().to_string(),
        ],
    );
    f.write("VERSION", "1.2\n");
    f.write("services/web/Dockerfile", "FROM busybox\nUSER 65534\n");
    f.write(
        "services/api/Dockerfile",
        "FROM busybox:1.35 AS base\nFROM base\nUSER 65534\n",
    );
    let token = format!("ghp_{}", "aB3".repeat(12));
    f.write("ci/notes.txt", &format!("deploy with\n{token}\n"));
    f.commit("main");

    let out = stack_check(f.path(), &[("GITHUB_ACTIONS", "true")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let lock = std::fs::read_to_string(f.path().join("Cargo.lock")).unwrap();
    // trivy points at the `[[package]]` line, the one above the name (0-based index of the
    // name = 1-based number of the line above it).
    let strsim_line = lock
        .lines()
        .position(|l| l == "name = \"strsim\"")
        .expect("strsim is locked");
    for want in [
        "VERSION:1: error: ".to_string(),
        "services/web/Dockerfile:1: error: `busybox` has no tag: it means `latest`".to_string(),
        format!("Cargo.lock:{strsim_line}: error: HIGH CVE-2099-0101 (vulnerability): strsim 0.11.1: update to 99.0.0"),
        "ci/notes.txt:2: error: CRITICAL github-pat (secret)".to_string(),
        "::error file=services/web/Dockerfile,line=1::`busybox` has no tag".to_string(),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    assert!(
        !err.contains("services/api/Dockerfile"),
        "a stage is not an image: {err}"
    );
    assert!(!err.contains(&token), "the secret itself is never shown");
    assert!(f
        .path()
        .join("target/slipway/out/source-scan.sarif")
        .is_file());

    // Fixed, the advisory accepted in .trivyignore: it passes. A manifest that no longer
    // matches the lock is caught.
    f.write("VERSION", "1.2.0\n");
    f.write("services/web/Dockerfile", "FROM busybox:1.35\nUSER 65534\n");
    f.write("ci/notes.txt", "deploy with the token from the vault\n");
    f.write(".trivyignore", "# accepted: TICKET-2\nCVE-2099-0101\n");
    let out = stack_check(f.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    f.write(
        "crates/app/Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nstrsim = \"0.11\"\nshlex = \"1\"\n",
    );
    let out = stack_check(f.path(), &["--no-source-scan"].map(|a| (a, "")));
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("Cargo.lock: error: out of sync with the manifests"),
        "{err}"
    );
}

/// `cargo xtask check` with extra environment; an `("--flag", "")` pair is an argument.
fn stack_check(repo: &std::path::Path, extra: &[(&str, &str)]) -> std::process::Output {
    let args: Vec<&str> = std::iter::once("check")
        .chain(
            extra
                .iter()
                .filter(|(k, _)| k.starts_with("--"))
                .map(|(k, _)| *k),
        )
        .collect();
    let env: Vec<(&str, &str)> = extra
        .iter()
        .filter(|(k, _)| !k.starts_with("--"))
        .copied()
        .collect();
    support::xtask(repo, &args, &env)
}

#[test]
fn status_reads_what_each_registry_holds_for_a_commit() {
    let Some(stack) = stack("status_reads_what_each_registry_holds_for_a_commit") else {
        return;
    };
    let ecr = std::env::var("SLIPWAY_STACK_ECR_REGISTRY").expect("SLIPWAY_STACK_ECR_REGISTRY");
    let moto = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    let aws = std::env::var("SLIPWAY_AWS").unwrap_or_else(|_| "aws".into());
    let prefix = stack.unique_prefix("status");
    let f = Fixture::new(&format!(
        "registries = [\"{}\", \"{ecr}\"]\nprefix = \"{prefix}\"\necr_login = [\"{ecr}\"]\nenvironments = [\"staging\", \"prod\"]\n",
        stack.registry
    ));
    for s in ["static", "other"] {
        f.write(
            &format!("services/{s}/Dockerfile"),
            &format!("FROM busybox:1.35\nCOPY {s}.txt /{s}.txt\nUSER 65534:65534\n"),
        );
        f.write(&format!("services/{s}/{s}.txt"), s);
    }
    let sha = f.commit("main");
    let out = stack.xtask(f.path(), &["push", "static"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let local = format!("{}/{prefix}/static", stack.registry);
    let digest = skopeo_json(&["inspect", &format!("docker://{local}:{}", &sha[..7])])["Digest"]
        .as_str()
        .unwrap()
        .to_string();
    // Promoted to prod by hand (the same digest under the environment's tag).
    support::registry_copy(&format!("{local}@{digest}"), &format!("{local}:prod"));
    // ECR's side (moto holds the API, not the bytes): the image as ECR would list it, with a
    // scan that found a CRITICAL.
    let name = format!("{prefix}/static");
    let ecr_digest = skopeo_json(&[
        "inspect",
        "--creds",
        "AWS:123456789012-auth-token",
        &format!("docker://{ecr}/{name}:{}", &sha[..7]),
    ])["Digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = run_ok(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "AWS:123456789012-auth-token",
            &format!("docker://{ecr}/{name}:{}", &sha[..7]),
        ],
    );
    run_ok(
        &aws,
        &[
            "ecr",
            "put-image",
            "--endpoint-url",
            &moto,
            "--repository-name",
            &name,
            "--image-tag",
            &sha[..7],
            "--image-digest",
            &ecr_digest,
            "--image-manifest",
            &manifest,
        ],
    );
    let seed = format!(
        r#"{{"region":"us-east-1","results":[{{"registryId":"123456789012","repositoryName":"{name}","imageId":{{"imageDigest":"{ecr_digest}"}},"imageScanStatus":{{"status":"COMPLETE","description":"seeded"}},"imageScanFindings":{{"findings":[{{"name":"CVE-2099-7777","severity":"CRITICAL","uri":"https://example.invalid/x","attributes":[]}}],"findingSeverityCounts":{{"CRITICAL":1}}}}}}]}}"#
    );
    run_ok(
        "curl",
        &[
            "-sf",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            &format!("{moto}/moto-api/static/ecr/scan-finding-results"),
            "-d",
            &seed,
        ],
    );
    run_ok(
        &aws,
        &[
            "ecr",
            "start-image-scan",
            "--endpoint-url",
            &moto,
            "--repository-name",
            &name,
            "--image-id",
            &format!("imageDigest={ecr_digest}"),
        ],
    );

    let out = stack.xtask(f.path(), &["status", "--json"], &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "other has no image: {err}");
    assert!(
        err.contains(&format!("not published for {}: other (", &sha[..7])),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["images"].as_array().unwrap();
    let row = |service: &str, registry: &str| {
        rows.iter()
            .find(|r| {
                r["service"] == service && r["reference"].as_str().unwrap().starts_with(registry)
            })
            .unwrap_or_else(|| panic!("{service} in {registry}: {v}"))
            .clone()
    };
    let a = row("static", &stack.registry);
    assert_eq!(a["state"], "published");
    assert_eq!(a["digest"], digest.as_str());
    assert_eq!(a["revision"], sha.as_str());
    assert_eq!(a["platforms"], serde_json::json!(["linux/amd64"]));
    assert!(a["size"].as_u64().unwrap() > 1000, "{a}");
    assert_eq!(a["signed"], false);
    assert_eq!(a["environments"], serde_json::json!(["prod"]));
    assert!(a["scan"].is_null(), "not an ECR registry: {a}");
    let b = row("static", &ecr);
    assert_eq!(b["state"], "published");
    assert_eq!(b["scan"]["status"], "COMPLETE");
    assert_eq!(b["scan"]["counts"]["CRITICAL"], 1);
    assert!(b["pushed_at"].as_str().is_some(), "{b}");
    for reg in [stack.registry.as_str(), ecr.as_str()] {
        assert_eq!(row("other", reg)["state"], "missing");
    }
    // The table for people names the same.
    let out = stack.xtask(f.path(), &["status", "static"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(
        table.contains("CRITICAL") && table.contains("prod"),
        "{table}"
    );
}

#[test]
fn promotion_moves_a_checked_digest_and_refuses_what_is_unsigned_or_vulnerable() {
    let Some(stack) =
        stack("promotion_moves_a_checked_digest_and_refuses_what_is_unsigned_or_vulnerable")
    else {
        return;
    };
    let prefix = stack.unique_prefix("promote");
    let f = Fixture::new(&format!(
        "registries = [\"{}\"]\nprefix = \"{prefix}\"\nenvironments = [\"staging\", \"prod\"]\n[workspace.metadata.images.sign]\nkey = \"ci/cosign.key\"\n",
        stack.registry
    ));
    f.write("ci/cosign.key", "fake private key\n");
    f.write("ci/cosign.pub", "fake public key\n");
    for s in ["static", "bare"] {
        f.write(
            &format!("services/{s}/Dockerfile"),
            &format!("FROM busybox:1.35\nCOPY {s}.txt /{s}.txt\nUSER 65534:65534\n"),
        );
        f.write(&format!("services/{s}/{s}.txt"), s);
    }
    let sha = f.commit("main");
    let tools = tempfile::tempdir().unwrap();
    let bin = support::fake_cosign(tools.path());
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let env = [("PATH", path.as_str())];
    let out = stack.xtask(f.path(), &["push", "static"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    // `bare` is pushed but its signing fails: published, unsigned.
    let out = stack.xtask(
        f.path(),
        &["push", "bare"],
        &[("PATH", path.as_str()), ("FAKE_COSIGN_FAIL", "1")],
    );
    assert!(!out.status.success());
    let repo = |s: &str| format!("{}/{prefix}/{s}", stack.registry);
    let digest_of = |r: &str| {
        skopeo_json(&["inspect", &format!("docker://{r}")])["Digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let deploy = |s: &str, tag: &str| {
        support::registry_copy(
            &format!("{}:{}", repo(s), &sha[..7]),
            &format!("{}:{tag}", repo(s)),
        );
    };
    deploy("static", "staging");
    deploy("bare", "staging");
    let digest = digest_of(&format!("{}:staging", repo("static")));

    let out = stack.xtask(
        f.path(),
        &["promote", "static", "--from", "staging", "--to", "prod"],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!(
            "{r}:prod -> {digest} (promoted, from {r}:staging)",
            r = repo("static")
        )
    );
    assert_eq!(digest_of(&format!("{}:prod", repo("static"))), digest);
    let log = std::fs::read_to_string(tools.path().join("cosign.log")).unwrap();
    assert!(
        log.contains(&format!(
            "verify --key ci/cosign.pub {}@{digest}",
            repo("static")
        )),
        "the signature is verified, by digest: {log}"
    );
    // Again: nothing to do.
    let out = stack.xtask(
        f.path(),
        &["promote", "static", "--from", "staging", "--to", "prod"],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("(already there,"), "{}", stdout(&out));

    // Unsigned: refused with the reason, prod untouched.
    let out = stack.xtask(
        f.path(),
        &["promote", "bare", "--from", "staging", "--to", "prod"],
        &env,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not signed (no sha256-")
            && stderr(&out).contains("cargo xtask sign"),
        "{}",
        stderr(&out)
    );
    assert!(!registry_tags(&repo("bare")).contains(&"prod".to_string()));

    // Signed but vulnerable (pushed around Slipway's gate): refused by today's scan.
    let vuln = format!("{}:staging", repo("static"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("installed"),
        "P:zz-vuln\nV:1.0.0-r0\no:zz-vuln\n\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("alpine-release"), "3.22.2\n").unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM busybox:1.35\nCOPY installed /lib/apk/db/installed\nCOPY alpine-release /etc/alpine-release\n",
    )
    .unwrap();
    run_ok(
        "docker",
        &[
            "build",
            "--network",
            "none",
            "-t",
            &vuln,
            &dir.path().display().to_string(),
        ],
    );
    run_ok("docker", &["push", &vuln]);
    let vuln_digest = digest_of(&vuln);
    run_ok(
        bin.join("cosign").to_str().unwrap(),
        &[
            "sign",
            "--yes",
            "--key",
            "ci/cosign.key",
            &format!("{}@{vuln_digest}", repo("static")),
        ],
    );
    let out = stack.xtask(
        f.path(),
        &["promote", "static", "--from", "staging", "--to", "prod"],
        &env,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("did not pass the scan (CRITICAL CVE-2099-0001 in zz-vuln 1.0.0-r0)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        digest_of(&format!("{}:prod", repo("static"))),
        digest,
        "prod still runs what passed"
    );
    // An environment that does not exist.
    let out = stack.xtask(
        f.path(),
        &["promote", "static", "--from", "staging", "--to", "prd"],
        &env,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown environment `prd` (did you mean `prod`?)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn promotion_on_ecr_puts_the_tag_on_the_same_digest_through_the_api() {
    let Some(_stack) = stack("promotion_on_ecr_puts_the_tag_on_the_same_digest_through_the_api")
    else {
        return;
    };
    let moto = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    let aws = std::env::var("SLIPWAY_AWS").unwrap_or_else(|_| "aws".into());
    let host = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let prefix = format!("promote-ecr-{nanos}");
    let name = format!("{prefix}/api");
    let f = Fixture::new(&format!(
        "registries = [\"{host}\"]\nprefix = \"{prefix}\"\nenvironments = [\"staging\", \"prod\"]\n"
    ));
    f.write("services/api/Dockerfile", "FROM busybox:1.35\nUSER 65534\n");
    f.commit("main");
    let ecr = |args: &[&str]| {
        let mut all = vec!["ecr", args[0], "--endpoint-url", &moto];
        all.extend_from_slice(&args[1..]);
        run_ok(&aws, &all)
    };
    ecr(&["create-repository", "--repository-name", &name]);
    let manifest = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1186,"digest":"sha256:69bc636c53866ac447bc74bbdd3911952cefaecd9414062dcddad448763d7f9d"},"layers":[]}"#;
    let digest = format!(
        "sha256:{}",
        run_ok(
            "sh",
            &[
                "-c",
                &format!("printf %s '{manifest}' | sha256sum | cut -c1-64")
            ]
        )
        .trim()
    );
    ecr(&[
        "put-image",
        "--repository-name",
        &name,
        "--image-tag",
        "staging",
        "--image-manifest",
        manifest,
        "--image-digest",
        &digest,
    ]);
    let promote = || {
        support::xtask(
            f.path(),
            &["promote", "api", "--from", "staging", "--to", "prod"],
            &[],
        )
    };
    let out = promote();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not signed"), "{}", stderr(&out));
    // The signature (ECR holds cosign's tag like any other) and ECR's scan.
    let sig = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;
    ecr(&[
        "put-image",
        "--repository-name",
        &name,
        "--image-tag",
        &format!("{}.sig", digest.replace(':', "-")),
        "--image-manifest",
        sig,
    ]);
    let out = promote();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("ECR has no scan of"),
        "{}",
        stderr(&out)
    );
    ecr(&[
        "start-image-scan",
        "--repository-name",
        &name,
        "--image-id",
        &format!("imageDigest={digest}"),
    ]);
    // moto's default finding is one HIGH: below the CRITICAL gate.
    let out = promote();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("{host}/{name}:prod -> {digest} (promoted, from {host}/{name}:staging)")
    );
    let described = ecr(&[
        "describe-images",
        "--repository-name",
        &name,
        "--image-ids",
        "imageTag=prod",
    ]);
    let v: serde_json::Value = serde_json::from_str(&described).unwrap();
    assert_eq!(v["imageDetails"][0]["imageDigest"], digest.as_str());
    let out = promote();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("(already there,"), "{}", stdout(&out));
}

#[test]
fn root_is_refused_by_any_name() {
    let Some(stack) = stack("root_is_refused_by_any_name") else {
        return;
    };
    let prefix = stack.unique_prefix("root");
    let f = fixture(&stack.registry, &prefix);
    f.write(
        "services/zeros/Dockerfile",
        "FROM busybox:1.35\nUSER 0000\n",
    );
    f.write(
        "services/admin/Dockerfile",
        "FROM busybox:1.35\nRUN echo 'admin:x:0:0:admin:/:/bin/sh' >> /etc/passwd && echo 'app:x:10001:10001::/:/bin/sh' >> /etc/passwd\nUSER admin\n",
    );
    f.write(
        "services/named/Dockerfile",
        "FROM busybox:1.35\nRUN echo 'app:x:10001:10001::/:/bin/sh' >> /etc/passwd\nUSER app\n",
    );
    f.commit("main");
    let out = stack.xtask(
        f.path(),
        &["build", "zeros", "admin", "named", "--keep-going"],
        &[],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("- zeros: verify: the image runs as root (USER is `0000`)"),
        "{err}"
    );
    assert!(
        err.contains(
            "- admin: verify: the image runs as root: USER `admin` has uid 0 in its /etc/passwd"
        ),
        "{err}"
    );
    assert!(
        !err.contains("- named:"),
        "a named user with another uid is fine: {err}"
    );
    let left = run_ok("docker", &["ps", "-aq", "--filter", "name=slipway-passwd-"]);
    assert_eq!(left.trim(), "", "the lookup's container is removed");
}

#[test]
fn a_branch_tag_only_moves_forward() {
    let Some(stack) = stack("a_branch_tag_only_moves_forward") else {
        return;
    };
    let prefix = stack.unique_prefix("forward");
    let f = fixture(&stack.registry, &prefix);
    let a = f.commit("main");
    let out = stack.xtask(f.path(), &["push", "static"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    f.write("services/static/page.txt", "newer\n");
    let b = f.commit("main");
    let out = stack.xtask(f.path(), &["push", "static"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let repo = format!("{}/{prefix}/static", stack.registry);
    let revision = |tag: &str| {
        skopeo_json(&["inspect", &format!("docker://{repo}:{tag}")])["Labels"]
            ["org.opencontainers.image.revision"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(revision("main"), b);
    // A re-run of the older commit (a late CI job): its own tag is fine, `main` stays.
    run_ok(
        "git",
        &[
            "-C",
            &f.path().display().to_string(),
            "checkout",
            "-q",
            "-B",
            "main",
            &a,
        ],
    );
    let out = stack.xtask(f.path(), &["push", "static"], &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "{repo}:main: holds {}, which this commit does not descend from",
            &b[..7]
        )),
        "{err}"
    );
    assert_eq!(revision("main"), b, "never back to an older commit");
}

#[test]
fn the_workspace_root_as_context_and_a_service_name_with_a_space() {
    let Some(stack) = stack("the_workspace_root_as_context_and_a_service_name_with_a_space") else {
        return;
    };
    let prefix = stack.unique_prefix("layout");
    let f = fixture(&stack.registry, &prefix);
    f.write(
        "services/rooted/Dockerfile",
        "FROM busybox:1.35\nCOPY services/rooted/page.txt /page.txt\nUSER 65534:65534\n",
    );
    f.write("services/rooted/page.txt", "from the root\n");
    f.write("services/rooted/service.toml", "context = \"../..\"\n");
    f.write(
        "services/my svc/Dockerfile",
        "FROM busybox:1.35\nUSER 65534:65534\nHEALTHCHECK --interval=1s CMD [\"true\"]\nCMD [\"sleep\", \"60\"]\n",
    );
    f.write("services/my svc/service.toml", "image = \"my-svc\"\n");
    f.commit("main");
    let out = stack.xtask(f.path(), &["push", "rooted", "my svc"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        registry_tags(&format!("{}/{prefix}/rooted", stack.registry)).len(),
        2
    );
    assert_eq!(
        registry_tags(&format!("{}/{prefix}/my-svc", stack.registry)).len(),
        2
    );
}

#[test]
fn ecr_repositories_as_code_plan_apply_and_drift() {
    let Some(_stack) = stack("ecr_repositories_as_code_plan_apply_and_drift") else {
        return;
    };
    let moto = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    let aws = std::env::var("SLIPWAY_AWS").unwrap_or_else(|_| "aws".into());
    let host = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let prefix = format!("ecr-code-{nanos}");
    let name = format!("{prefix}/api");
    let config = |extra: &str| {
        format!(
            "registries = [\"{host}\"]\nprefix = \"{prefix}\"\n[workspace.metadata.images.ecr]\ntag_mutability = \"IMMUTABLE_WITH_EXCLUSION\"\nmutability_exclusions = [\"latest\", \"main\"]\ntags = {{ team = \"core\" }}\n{extra}"
        )
    };
    let f = Fixture::new(&config(""));
    f.write("services/api/Dockerfile", "FROM busybox:1.35\nUSER 65534\n");
    f.commit("main");
    let ecr = |args: &[&str]| support::xtask(f.path(), &[&["ecr"], args].concat(), &[]);
    let api = |args: &[&str]| {
        let mut all = vec!["ecr", args[0], "--endpoint-url", &moto];
        all.extend_from_slice(&args[1..]);
        run_ok(&aws, &all)
    };
    let out = ecr(&["plan"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), format!("create     {host}/{name}"));
    let out = ecr(&["apply"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&api(&[
        "describe-repositories",
        "--repository-names",
        &name,
    ]))
    .unwrap();
    let repo = &v["repositories"][0];
    assert_eq!(repo["imageTagMutability"], "IMMUTABLE_WITH_EXCLUSION");
    assert_eq!(
        repo["imageTagMutabilityExclusionFilters"][1]["filter"],
        "main"
    );
    assert_eq!(repo["imageScanningConfiguration"]["scanOnPush"], true);
    assert_eq!(repo["encryptionConfiguration"]["encryptionType"], "AES256");
    let policy = |text: &str| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        serde_json::from_str(v["lifecyclePolicyText"].as_str().unwrap()).unwrap()
    };
    let p = policy(&api(&["get-lifecycle-policy", "--repository-name", &name]));
    assert_eq!(p["rules"][0]["selection"]["tagPrefixList"][0], "v");
    assert_eq!(p["rules"][0]["selection"]["countNumber"], 10);
    assert_eq!(p["rules"][1]["selection"]["countNumber"], 7);
    // Twice: nothing to do.
    let out = ecr(&["apply"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), format!("unchanged  {host}/{name}"));

    // A setting changed in config, one changed by hand: both shown, both put back.
    f.write(
        "Cargo.toml",
        &format!(
            "[workspace]\nmembers = []\n\n[workspace.metadata.images]\n{}",
            config("keep_versions = 5\n")
        ),
    );
    api(&[
        "put-image-tag-mutability",
        "--repository-name",
        &name,
        "--image-tag-mutability",
        "MUTABLE",
    ]);
    let out = ecr(&["plan"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.starts_with(&format!("update     {host}/{name}")),
        "{text}"
    );
    assert!(
        text.contains("tag mutability: MUTABLE → IMMUTABLE_WITH_EXCLUSION (except latest, main)"),
        "{text}"
    );
    assert!(text.contains("lifecycle policy: {"), "{text}");
    let out = ecr(&["apply"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let p = policy(&api(&["get-lifecycle-policy", "--repository-name", &name]));
    assert_eq!(p["rules"][0]["selection"]["countNumber"], 5);
    let out = ecr(&["plan"]);
    assert_eq!(stdout(&out).trim(), format!("unchanged  {host}/{name}"));

    // Managed by Terraform: differences are drift, never changed here.
    let arn = format!("arn:aws:ecr:us-east-1:123456789012:repository/{name}");
    api(&[
        "tag-resource",
        "--resource-arn",
        &arn,
        "--tags",
        "Key=managed-by,Value=terraform",
    ]);
    api(&[
        "put-image-tag-mutability",
        "--repository-name",
        &name,
        "--image-tag-mutability",
        "MUTABLE",
    ]);
    let out = ecr(&["apply"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!(
            "drift      {host}/{name} (managed by Terraform: not changed here)"
        )),
        "{}",
        stdout(&out)
    );
    let v: serde_json::Value = serde_json::from_str(&api(&[
        "describe-repositories",
        "--repository-names",
        &name,
    ]))
    .unwrap();
    assert_eq!(v["repositories"][0]["imageTagMutability"], "MUTABLE");

    // The same as Terraform.
    let out = ecr(&["plan", "--format", "terraform"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("name                 = \"{name}\"")),
        "{}",
        stdout(&out)
    );

    // A policy ECR would misread is refused before anything is sent.
    f.write(
        "ci/ecr-policy.json",
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}"#,
    );
    f.write(
        "Cargo.toml",
        &format!(
            "[workspace]\nmembers = []\n\n[workspace.metadata.images]\n{}",
            config("lifecycle_policy = \"ci/ecr-policy.json\"\n")
        ),
    );
    let out = ecr(&["apply"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains("a `tagged` rule needs exactly one of tagPrefixList or tagPatternList"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn environments_with_their_own_repositories_are_promoted_across_with_the_signature() {
    let Some(stack) =
        stack("environments_with_their_own_repositories_are_promoted_across_with_the_signature")
    else {
        return;
    };
    let prefix = stack.unique_prefix("envrepo");
    let f = Fixture::new(&format!(
        "registries = [\"{}\"]\nprefix = \"{prefix}\"\nenvironments = [\"staging\", \"prod\"]\nenvironment_repository = \"{{repository}}-{{env}}\"\n[workspace.metadata.images.sign]\nkey = \"ci/cosign.key\"\n",
        stack.registry
    ));
    f.write("ci/cosign.key", "fake private key\n");
    f.write("ci/cosign.pub", "fake public key\n");
    f.write(
        "services/static/Dockerfile",
        "FROM busybox:1.35\nCOPY page.txt /page.txt\nUSER 65534:65534\n",
    );
    f.write("services/static/page.txt", "static\n");
    let sha = f.commit("main");
    let tools = tempfile::tempdir().unwrap();
    let bin = support::fake_cosign(tools.path());
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let env = [("PATH", path.as_str())];
    let out = stack.xtask(f.path(), &["push", "static"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let base = format!("{}/{prefix}/static", stack.registry);
    let staging = format!("{base}-staging");
    let prod = format!("{base}-prod");
    let digest = skopeo_json(&["inspect", &format!("docker://{base}:{}", &sha[..7])])["Digest"]
        .as_str()
        .unwrap()
        .to_string();
    // The deploy to staging put the image and its signature in staging's repository.
    let sig = format!("{}.sig", digest.replace(':', "-"));
    for (from, to) in [
        (format!("{base}@{digest}"), format!("{staging}:staging")),
        (format!("{base}:{sig}"), format!("{staging}:{sig}")),
    ] {
        support::registry_copy(&from, &to);
    }
    let out = stack.xtask(
        f.path(),
        &["promote", "static", "--from", "staging", "--to", "prod"],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("{prod}:prod -> {digest} (promoted, from {staging}:staging)")
    );
    let tags = registry_tags(&prod);
    assert!(
        tags.contains(&"prod".to_string()) && tags.contains(&sig),
        "the image and its signature: {tags:?}"
    );
    // status finds prod in prod's repository.
    let out = stack.xtask(f.path(), &["status", "static", "--json"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["images"][0]["environments"],
        serde_json::json!(["staging", "prod"])
    );
}

#[test]
fn lint_finds_dockerfile_and_workflow_problems_and_passes_on_this_repository() {
    let Some(_stack) =
        stack("lint_finds_dockerfile_and_workflow_problems_and_passes_on_this_repository")
    else {
        return;
    };
    let f = Fixture::new("");
    f.write(
        "services/web/Dockerfile",
        "FROM busybox\nRUN cd /tmp && echo hi\n",
    );
    f.write(
        ".github/workflows/build.yml",
        "name: build\non: push\njobs:\n  build:\n    runs-on: ubuntu-24.04\n    steps:\n      - uses: actions/checkout@v4\n      - run: echo \"${{ github.event.head_commit.message }}\"\n",
    );
    f.commit("main");
    let out = support::xtask(f.path(), &["lint"], &[("GITHUB_ACTIONS", "true")]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    for want in [
        "services/web/Dockerfile:1: error: Always tag the version of an image explicitly [DL3006]",
        "services/web/Dockerfile:2: error: Use WORKDIR to switch to a directory [DL3003]",
        ".github/workflows/build.yml:7: error: unpinned action reference",
        "[template-injection]",
        "::error file=services/web/Dockerfile,line=1::",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // .hadolint.yaml's failure-threshold decides what fails: warnings are then shown only.
    let g = Fixture::new("");
    g.write("services/web/Dockerfile", "FROM busybox\nUSER 65534\n");
    g.write(".hadolint.yaml", "failure-threshold: error\n");
    g.commit("main");
    let out = support::xtask(g.path(), &["lint"], &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: services/web/Dockerfile:1: Always tag the version of an image explicitly [DL3006]"),
        "{err}"
    );
    // This repository itself is clean.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let out = support::xtask(root, &["lint"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}
