use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::context::{BuildContext, Trigger};
use crate::policy::LatestRule;
use crate::services::{CargoBinary, Settings};
use crate::tags::LabelInfo;

fn service(name: &str, cargo: bool) -> Service {
    Service {
        name: name.into(),
        repository: format!("acme/{name}"),
        dir: PathBuf::from(format!("services/{name}")),
        dockerfile: PathBuf::from(format!("services/{name}/Dockerfile")),
        context: PathBuf::from(format!("services/{name}")),
        registries: vec!["ghcr.io/acme".into(), "127.0.0.1:5000".into()],
        platforms: vec!["linux/amd64".into()],
        tags: Some(vec!["{version}".into(), "{branch}".into(), "{sha7}".into()]),
        build_args: BTreeMap::from([("EXTRA".into(), "1".into())]),
        labels: BTreeMap::from([("com.example.team".into(), "core".into())]),
        policy: Default::default(),
        version: None,
        target: None,
        description: None,
        non_root: true,
        port: None,
        health_path: None,
        max_size: None,
        health_check: true,
        attestations: false,
        watch: vec![],
        depends_on: vec![],
        cargo: cargo.then(|| CargoBinary {
            package: name.into(),
            bin: name.into(),
        }),
    }
}

fn workspace() -> Workspace {
    Workspace {
        root: PathBuf::from("/ws"),
        settings: Settings {
            registries: vec![],
            prefix: Some("acme".into()),
            platforms: vec!["linux/amd64".into()],
            tags: None,
            labels: LabelInfo {
                vendor: Some("Acme".into()),
                ..LabelInfo::default()
            },
            build_args: BTreeMap::new(),
            network: Some("host".into()),
            extra_labels: BTreeMap::new(),
            policy: Default::default(),
            default_branch: None,
            environments: vec![],
            shared_paths: vec![],
            notes: vec![],
            ecr_login: vec![],
            logins: Vec::new(),
            sign: None,
            base_image_mirror: None,
            environment_tag: "{env}".into(),
            environment_repository: None,
            ecr: Default::default(),
            build_cache: "none".into(),
            check: Default::default(),
            notify: None,
            scan: crate::services::ScanPolicy {
                when: "never".into(),
                ..Default::default()
            },
        },
        services: vec![service("api", true), service("web", false)],
    }
}

const SHA: &str = "abcdef0123456789abcdef0123456789abcdef01";

fn git(branch: Option<&str>) -> BuildContext {
    BuildContext {
        trigger: Trigger::Branch,
        branch: branch.map(String::from),
        revision: SHA.into(),
        default_branch: "main".into(),
        is_default_branch: false,
        is_release_branch: false,
        dirty: false,
        push_before: None,
        event: String::new(),
        event_base: None,
        pr_head: None,
        marked_prerelease: false,
        notes: Vec::new(),
    }
}

fn inputs<'a>(ws: &'a Workspace, version: &'a Version, cx: &'a BuildContext) -> Inputs<'a> {
    Inputs {
        workspace: ws,
        selection: ws
            .services
            .iter()
            .map(|s| (s.name.clone(), Selection::yes("--all")))
            .collect(),
        version,
        context: cx,
        created: 1_795_234_961,
        now: 1_800_000_000,
        env: None,
        released: BTreeMap::new(),
        released_here: BTreeMap::new(),
        tags_unknown: false,
        latest: BTreeMap::new(),
        versions: BTreeMap::new(),
        branches: BTreeMap::new(),
        implicit_deps: BTreeMap::new(),
        input_digests: BTreeMap::new(),
        published: BTreeMap::new(),
        skopeo: "skopeo".into(),
        trivy: None,
        builder: Builder::Buildkit,
        docker: "docker".into(),
        cargo: "cargo".into(),
        push: true,
        platforms: None,
        network: None,
        scan: false,
        gha_cache: false,
    }
}

#[test]
fn references_cover_every_registry_and_tag_commit_tag_first() {
    let (ws, v, g) = (workspace(), Version::new(1, 2, 3), git(Some("main")));
    let plan = make(&inputs(&ws, &v, &g)).unwrap();
    let web = &plan.services[1];
    assert_eq!(
        web.images,
        [
            "ghcr.io/acme/acme/web:abcdef0",
            "ghcr.io/acme/acme/web:1.2.3",
            "ghcr.io/acme/acme/web:main",
            "127.0.0.1:5000/acme/web:abcdef0",
            "127.0.0.1:5000/acme/web:1.2.3",
            "127.0.0.1:5000/acme/web:main",
        ]
    );
    assert_eq!(web.reasons, ["--all"]);
    assert_eq!(web.labels["org.opencontainers.image.vendor"], "Acme");
    assert_eq!(web.labels["org.opencontainers.image.title"], "web");
    assert_eq!(
        web.labels["com.example.team"], "core",
        "service-level extra labels"
    );
    assert_eq!(web.version.as_deref(), Some("1.2.3"));
}

#[test]
fn classic_and_buildkit_build_then_verify_then_push_each_reference() {
    let (ws, v, g) = (workspace(), Version::new(1, 2, 3), git(Some("main")));
    let plan = make(&inputs(&ws, &v, &g)).unwrap();
    let web = &plan.services[1];
    let kinds: Vec<String> = web.steps.iter().map(Step::label).collect();
    assert_eq!(
        kinds[..3],
        ["build", "verify", "health check"],
        "checked before anything is pushed"
    );
    assert_eq!(kinds.len(), 3 + web.images.len());
    // Per repository: the commit tag pushed from the local Docker, the others copied from
    // the digest it returned.
    let mut last_pushed = String::new();
    for (step, image) in web.steps[3..].iter().zip(&web.images) {
        let repo = image.rsplit_once(':').unwrap().0;
        if !last_pushed.starts_with(&format!("{repo}:")) {
            assert!(image.ends_with(":abcdef0"), "the commit tag first: {image}");
            assert_eq!(
                step,
                &Step::Push {
                    command: docker::push("docker", image),
                    reference: image.clone()
                }
            );
            last_pushed = image.clone();
        } else {
            assert_eq!(
                step,
                &Step::CopyTag {
                    from: last_pushed.clone(),
                    reference: image.clone(),
                    skopeo: "skopeo".into(),
                }
            );
        }
    }
    let Step::Build { command, .. } = &web.steps[0] else {
        panic!()
    };
    let args = command.args.join(" ");
    assert!(
        args.contains("--network host"),
        "the configured network: {args}"
    );
    assert!(
        args.contains("--build-arg EXTRA=1") && args.contains("--build-arg VERSION=1.2.3"),
        "{args}"
    );
    let Step::Verify {
        platform, non_root, ..
    } = &web.steps[1]
    else {
        panic!()
    };
    assert_eq!((platform.as_str(), *non_root), ("linux/amd64", true));
}

#[test]
fn each_cargo_package_compiles_alone_and_stages_its_binary() {
    let (mut ws, v, g) = (workspace(), Version::new(1, 2, 3), git(Some("main")));
    ws.services.push(service("worker", true));
    let mut inp = inputs(&ws, &v, &g);
    inp.push = false;
    let plan = make(&inp).unwrap();
    let compile = |pkg: &str| Step::Compile {
        command: cargo::build_static(
            "cargo",
            Path::new("target/slipway/cargo"),
            &["x86_64-unknown-linux-gnu"],
            &[(pkg.into(), pkg.into())],
        ),
    };
    assert_eq!(
        plan.prepare,
        [compile("api"), compile("worker")],
        "built together, cargo would unify their features"
    );
    let api = &plan.services[0];
    assert_eq!(
        api.steps[0],
        Step::Stage {
            context: "services/api".into(),
            dest: "target/slipway/context/api".into(),
            files: vec![(
                "target/slipway/cargo/x86_64-unknown-linux-gnu/release/api".into(),
                "bin/amd64/api".into()
            )],
        }
    );
    let Step::Build { command, .. } = &api.steps[1] else {
        panic!()
    };
    assert_eq!(command.args.last().unwrap(), "target/slipway/context/api");
    assert_eq!(api.steps.len(), 3, "stage, build, verify; no push");
}

#[test]
fn buildx_pushes_itself_and_reads_the_metadata_file() {
    let (ws, v, g) = (workspace(), Version::new(1, 2, 3), git(Some("main")));
    let mut inp = inputs(&ws, &v, &g);
    inp.builder = Builder::Buildx { name: None };
    inp.platforms = Some(vec!["linux/amd64".into(), "linux/arm64".into()]);
    inp.selection
        .insert("api".into(), Selection::no("not named on the command line"));
    let plan = make(&inp).unwrap();
    let web = &plan.services[1];
    assert_eq!(web.platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(
        web.steps.len(),
        1,
        "one buildx build --push, nothing else: {:?}",
        web.steps
    );
    let Step::Build {
        command,
        metadata_file,
        ..
    } = &web.steps[0]
    else {
        panic!()
    };
    assert!(command.args.contains(&"--push".to_string()));
    assert_eq!(
        metadata_file.as_deref(),
        Some(Path::new("target/slipway/out/web/metadata.json"))
    );
    assert!(!plan.services[0].selected);
    assert_eq!(plan.services[0].reasons, ["not named on the command line"]);
    assert!(
        plan.prepare.is_empty(),
        "api is not selected, so nothing to compile"
    );
}

#[test]
fn detached_head_leaves_out_the_branch_tag() {
    let (ws, v, g) = (workspace(), Version::new(1, 2, 3), git(None));
    let plan = make(&inputs(&ws, &v, &g)).unwrap();
    assert!(plan.services[1]
        .images
        .iter()
        .all(|i| !i.ends_with(":main")));
    assert_eq!(plan.services[1].images.len(), 4);
}

#[test]
fn impossible_requests_fail_naming_the_service() {
    let (ws, v, g) = (workspace(), Version::new(1, 2, 3), git(Some("main")));
    let mut inp = inputs(&ws, &v, &g);
    inp.platforms = Some(vec!["linux/amd64".into(), "linux/arm64".into()]);
    let err = make(&inp).unwrap_err().to_string();
    assert!(err.starts_with("service `api`: 2 platforms"), "{err}");

    let mut ws2 = workspace();
    ws2.services[1].registries.clear();
    let err = make(&inputs(&ws2, &v, &g)).unwrap_err().to_string();
    assert!(
        err.starts_with("service `web`: --push needs a registry"),
        "{err}"
    );

    let mut ws3 = workspace();
    ws3.services[1].tags = Some(vec!["{branch}".into()]);
    let g2 = git(None);
    let err = make(&inputs(&ws3, &v, &g2)).unwrap_err().to_string();
    assert!(err.contains("no tag applies here"), "{err}");
}

#[test]
fn plan_json_has_the_contract_fields() {
    let (ws, v, g) = (workspace(), Version::new(1, 2, 3), git(Some("main")));
    let plan = make(&inputs(&ws, &v, &g)).unwrap();
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["head"], SHA);
    assert_eq!(json["context"]["trigger"]["kind"], "branch");
    assert!(json["base"].is_null());
    let names: Vec<&str> = json["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "web"], "sorted by name");
    for key in ["selected", "reasons", "images", "platforms", "steps"] {
        assert!(json["services"][0].get(key).is_some(), "missing {key}");
    }
    assert_eq!(json["services"][1]["steps"][0]["step"], "build");
    assert_eq!(
        json["services"][1]["steps"][0]["command"]["program"],
        "docker"
    );
}

fn policy_ws() -> Workspace {
    let mut ws = workspace();
    for s in &mut ws.services {
        s.tags = None;
        s.registries = vec!["127.0.0.1:5000".into()];
    }
    ws
}

#[test]
fn default_branch_gets_version_branch_sha_timestamp_and_latest_when_it_may_move() {
    let ws = policy_ws();
    let v = Version::new(1, 2, 3);
    let mut cx = git(Some("main"));
    cx.is_default_branch = true;
    let mut inp = inputs(&ws, &v, &cx);
    assert_eq!(
        latest_candidates(&inp).unwrap(),
        [
            "127.0.0.1:5000/acme/api:latest",
            "127.0.0.1:5000/acme/web:latest"
        ]
    );
    inp.latest
        .insert("127.0.0.1:5000/acme/web:latest".into(), LatestState::Absent);
    inp.latest.insert(
        "127.0.0.1:5000/acme/api:latest".into(),
        LatestState::Present {
            version: Some("1.3.0".into()),
            revision: Some("f".repeat(40)),
            ours_descends: Some(true),
        },
    );
    let plan = make(&inp).unwrap();
    let web = &plan.services[1];
    assert_eq!(
        web.images,
        [
            "127.0.0.1:5000/acme/web:abcdef0",
            "127.0.0.1:5000/acme/web:1.2.3",
            "127.0.0.1:5000/acme/web:main",
            "127.0.0.1:5000/acme/web:20261121-042241",
            "127.0.0.1:5000/acme/web:latest",
        ]
    );
    let api = &plan.services[0];
    assert!(!api.images.iter().any(|i| i.ends_with(":latest")));
    assert_eq!(
        api.notes,
        ["127.0.0.1:5000/acme/api:latest: latest: points to 1.3.0, newer than 1.2.3; latest never moves backwards"]
    );
}

#[test]
fn latest_is_never_moved_blindly() {
    let ws = policy_ws();
    let v = Version::new(1, 2, 3);
    let mut cx = git(Some("main"));
    cx.is_default_branch = true;
    let plan = make(&inputs(&ws, &v, &cx)).unwrap();
    assert!(
        plan.services[1].notes[0].contains("cannot read what latest points to now"),
        "{:?}",
        plan.services[1].notes
    );
    assert!(!plan.services[1]
        .images
        .iter()
        .any(|i| i.ends_with(":latest")));
}

#[test]
fn release_tags_fan_out_and_use_the_tag_version() {
    let ws = policy_ws();
    let root = Version::new(1, 2, 3);
    let mut cx = git(None);
    cx.trigger = Trigger::Release {
        tag: "v1.2.3".into(),
        version: root.clone(),
        service: None,
    };
    let mut inp = inputs(&ws, &root, &cx);
    inp.latest
        .insert("127.0.0.1:5000/acme/web:latest".into(), LatestState::Absent);
    inp.released.insert(
        "web".into(),
        vec![Version::new(1, 1, 0), Version::parse("1.3.0-rc.1").unwrap()],
    );
    let plan = make(&inp).unwrap();
    let tags: Vec<&str> = plan.services[1]
        .images
        .iter()
        .map(|i| i.rsplit_once(':').unwrap().1)
        .collect();
    assert_eq!(tags, ["v1.2.3", "1.2.3", "1.2", "1", "latest"]);
}

#[test]
fn a_hotfix_on_an_older_line_moves_neither_latest_nor_the_major_tag() {
    let ws = policy_ws();
    let hotfix = Version::new(1, 1, 5);
    let mut cx = git(None);
    cx.trigger = Trigger::Release {
        tag: "v1.1.5".into(),
        version: hotfix.clone(),
        service: None,
    };
    let mut inp = inputs(&ws, &hotfix, &cx);
    inp.latest
        .insert("127.0.0.1:5000/acme/web:latest".into(), LatestState::Absent);
    inp.released.insert(
        "web".into(),
        vec![Version::new(1, 1, 4), Version::new(1, 2, 0)],
    );
    let plan = make(&inp).unwrap();
    let web = &plan.services[1];
    let tags: Vec<&str> = web
        .images
        .iter()
        .map(|i| i.rsplit_once(':').unwrap().1)
        .collect();
    assert_eq!(tags, ["v1.1.5", "1.1.5", "1.1"]);
    assert_eq!(
        web.notes,
        [
            "{major}: 1.2.0 is already released on this line; 1.1.5 does not move it back",
            "127.0.0.1:5000/acme/web:latest: latest: 1.2.0 is already released; 1.1.5 does not move latest back",
        ]
    );
}

#[test]
fn pull_requests_get_pr_and_head_sha_tags_only() {
    let ws = policy_ws();
    let v = Version::new(1, 2, 3);
    let mut cx = git(Some("feature/x"));
    cx.trigger = Trigger::PullRequest {
        number: 42,
        base: "main".into(),
    };
    let mut inp = inputs(&ws, &v, &cx);
    inp.push = false;
    let plan = make(&inp).unwrap();
    let tags: Vec<&str> = plan.services[1]
        .images
        .iter()
        .map(|i| i.rsplit_once(':').unwrap().1)
        .collect();
    assert_eq!(tags, ["abcdef0", "pr-42"]);
    assert_eq!(
        plan.services[1].labels["org.opencontainers.image.revision"],
        SHA
    );
}

#[test]
fn environment_style_tags() {
    let mut ws = policy_ws();
    ws.services[1].tags = Some(vec!["{service}-{env}-{version}".into()]);
    let v = Version::new(1, 2, 3);
    let cx = git(Some("main"));
    let mut inp = inputs(&ws, &v, &cx);
    inp.env = Some("prod".into());
    inp.selection.insert("api".into(), Selection::no("x"));
    let plan = make(&inp).unwrap();
    assert_eq!(
        plan.services[1].images,
        ["127.0.0.1:5000/acme/web:web-prod-1.2.3"]
    );
}

#[test]
fn timestamp_comes_from_the_commit_unless_the_policy_says_build() {
    let mut ws = policy_ws();
    let v = Version::new(1, 2, 3);
    let mut cx = git(Some("main"));
    cx.is_default_branch = true;
    let stamp = |ws: &Workspace| {
        let plan = make(&inputs(ws, &v, &cx)).unwrap();
        plan.services[1].images[3]
            .rsplit_once(':')
            .unwrap()
            .1
            .to_string()
    };
    assert_eq!(stamp(&ws), "20261121-042241");
    std::sync::Arc::make_mut(&mut ws.services[1].policy).timestamp_from_build = true;
    assert_eq!(stamp(&ws), "20270115-080000");
    let plan = make(&inputs(&ws, &v, &cx)).unwrap();
    assert_eq!(
        plan.services[1].labels["org.opencontainers.image.created"], "2026-11-21T04:22:41Z",
        "created stays the commit time"
    );
}

#[test]
fn release_lines_never_point_at_a_pre_release_whatever_the_templates() {
    let mut ws = policy_ws();
    for s in &mut ws.services {
        s.tags = Some(vec![
            "{version}".into(),
            "{major}.{minor}".into(),
            "{major}".into(),
        ]);
    }
    let v = Version::parse("2.0.8-beta.67").unwrap();
    let mut cx = git(None);
    cx.trigger = Trigger::Release {
        tag: "v2.0.8-beta.67".into(),
        version: v.clone(),
        service: None,
    };
    let plan = make(&inputs(&ws, &v, &cx)).unwrap();
    let api = &plan.services[0];
    assert_eq!(api.images, ["127.0.0.1:5000/acme/api:2.0.8-beta.67"]);
    assert!(
        api.notes
            .iter()
            .any(|n| n.starts_with("{major}.{minor}: 2.0.8-beta.67 is a pre-release")),
        "{:?}",
        api.notes
    );
    // A GitHub release marked pre-release: the same, with a stable version string.
    let v = Version::new(2, 1, 0);
    cx.trigger = Trigger::Release {
        tag: "v2.1.0".into(),
        version: v.clone(),
        service: None,
    };
    cx.marked_prerelease = true;
    ws.services[0].tags = None;
    let plan = make(&inputs(&ws, &v, &cx)).unwrap();
    let api = &plan.services[0];
    assert_eq!(
        api.images,
        [
            "127.0.0.1:5000/acme/api:v2.1.0",
            "127.0.0.1:5000/acme/api:2.1.0"
        ],
        "the pre-release list, no lines, no latest"
    );
}

#[test]
fn a_released_version_never_moves_from_another_commit() {
    let mut ws = policy_ws();
    for s in &mut ws.services {
        s.tags = Some(vec!["{version}".into(), "{sha7}".into()]);
    }
    let v = Version::new(1, 1, 0);
    let cx = git(Some("feature"));
    let mut inp = inputs(&ws, &v, &cx);
    inp.released.insert("api".into(), vec![v.clone()]);
    let plan = make(&inp).unwrap();
    let api = &plan.services[0];
    assert_eq!(api.images, ["127.0.0.1:5000/acme/api:abcdef0"]);
    assert!(
        api.notes[0].contains("1.1.0 is already released (git tag v1.1.0)")
            && api.notes[0].contains("bump VERSION"),
        "{:?}",
        api.notes
    );
    // The registry says the tag holds another commit's image (no git tag here).
    let mut inp = inputs(&ws, &v, &cx);
    inp.versions.insert(
        "127.0.0.1:5000/acme/web:1.1.0".into(),
        LatestState::Present {
            version: Some("1.1.0".into()),
            revision: Some("1234567890".into()),
            ours_descends: None,
        },
    );
    assert_eq!(
        version_candidates(&inp).unwrap(),
        [
            "127.0.0.1:5000/acme/api:1.1.0",
            "127.0.0.1:5000/acme/web:1.1.0"
        ]
    );
    let plan = make(&inp).unwrap();
    let web = &plan.services[1];
    assert_eq!(web.images, ["127.0.0.1:5000/acme/web:abcdef0"]);
    assert!(
        web.notes[0].contains("holds the image of 1234567"),
        "{:?}",
        web.notes
    );
    // Its own release tag builds it; the same commit re-run is idempotent.
    let mut rel = git(None);
    rel.trigger = Trigger::Release {
        tag: "v1.1.0".into(),
        version: v.clone(),
        service: None,
    };
    let mut inp = inputs(&ws, &v, &rel);
    inp.released.insert("api".into(), vec![v.clone()]);
    let plan = make(&inp).unwrap();
    assert!(plan.services[0]
        .images
        .contains(&"127.0.0.1:5000/acme/api:1.1.0".to_string()));
    // Strict: fail instead.
    let mut strict = policy_ws();
    for s in &mut strict.services {
        s.tags = Some(vec!["{version}".into(), "{sha7}".into()]);
        let mut p = (*s.policy).clone();
        p.fail_on_released = true;
        s.policy = std::sync::Arc::new(p);
    }
    let mut inp = inputs(&strict, &v, &cx);
    inp.released.insert("api".into(), vec![v.clone()]);
    let err = make(&inp).unwrap_err().to_string();
    assert!(err.contains("released_versions = \"fail\""), "{err}");
}

#[test]
fn non_release_git_tags_get_tag_and_sha_never_latest() {
    let ws = policy_ws();
    let v = Version::new(1, 2, 3);
    let mut cx = git(None);
    cx.trigger = Trigger::Tag {
        tag: "nightly/2026-11-21".into(),
    };
    let plan = make(&inputs(&ws, &v, &cx)).unwrap();
    assert_eq!(
        plan.services[1].images,
        [
            "127.0.0.1:5000/acme/web:abcdef0",
            "127.0.0.1:5000/acme/web:nightly-2026-11-21"
        ]
    );
}

#[test]
fn branch_and_tag_names_never_pose_as_other_tags() {
    let mut ws = policy_ws();
    for s in &mut ws.services {
        s.tags = Some(vec!["{branch}".into(), "{sha7}".into()]);
    }
    let v = Version::new(1, 4, 0);
    for (branch, what) in [
        ("latest", "latest"),
        ("1.2.0", "a version"),
        ("v1.2", "a release line"),
        ("51236df", "a commit"),
    ] {
        let cx = git(Some(branch));
        let plan = make(&inputs(&ws, &v, &cx)).unwrap();
        let web = &plan.services[1];
        assert_eq!(web.images, ["127.0.0.1:5000/acme/web:abcdef0"], "{branch}");
        assert!(
            web.notes
                .iter()
                .any(|n| n.contains(&format!("looks like {what}"))),
            "{branch}: {:?}",
            web.notes
        );
    }
}

#[test]
fn release_tags_are_immutable_across_contexts_but_a_rerun_of_the_release_commit_is_not_blocked() {
    let mut ws = policy_ws();
    for s in &mut ws.services {
        s.tags = Some(vec![
            "{version}".into(),
            "{major}.{minor}".into(),
            "{major}".into(),
            "v{major}.{minor}.{patch}".into(),
            "{sha7}".into(),
        ]);
    }
    // A pre-release: no stable-shaped tag at all.
    let rc = Version::parse("1.3.0-rc.1").unwrap();
    let cx = git(Some("main"));
    let plan = make(&inputs(&ws, &rc, &cx)).unwrap();
    assert_eq!(
        plan.services[1].images,
        [
            "127.0.0.1:5000/acme/web:abcdef0",
            "127.0.0.1:5000/acme/web:1.3.0-rc.1"
        ]
    );
    // A branch build at 1.1.5 after 1.2.0: the `1` line does not move back.
    let v = Version::new(1, 1, 5);
    let mut inp = inputs(&ws, &v, &cx);
    inp.released
        .insert("web".into(), vec![Version::new(1, 2, 0)]);
    let plan = make(&inp).unwrap();
    assert!(
        !plan.services[1].images.iter().any(|i| i.ends_with(":1")),
        "{:?}",
        plan.services[1].images
    );
    // The commit the release tag points at, pushed to main (git push --follow-tags): allowed.
    let mut inp = inputs(&ws, &v, &cx);
    inp.released.insert("web".into(), vec![v.clone()]);
    inp.released_here.insert("web".into(), vec![v.clone()]);
    let plan = make(&inp).unwrap();
    assert!(plan.services[1]
        .images
        .contains(&"127.0.0.1:5000/acme/web:1.1.5".to_string()));
    // A shallow clone without tags cannot tell: a note, or an error when asked to fail.
    let mut inp = inputs(&ws, &v, &cx);
    inp.tags_unknown = true;
    let plan = make(&inp).unwrap();
    assert!(
        plan.services[1]
            .notes
            .iter()
            .any(|n| n.contains("has no git tags")),
        "{:?}",
        plan.services[1].notes
    );
}

#[test]
fn latest_rules_on_the_default_branch_with_a_dev_version() {
    let dev = Version::parse("1.3.0-dev").unwrap();
    let mut cx = git(Some("main"));
    cx.is_default_branch = true;
    let state = |descends: bool| LatestState::Present {
        version: Some("1.4.0".into()),
        revision: Some("1111111".into()),
        ours_descends: Some(descends),
    };
    for (rule, descends, moves) in [
        // default-branch: every push moves it forward by ancestry, pre-release or not, even
        // past a higher semver label (the branch's history is the order).
        (LatestRule::DefaultBranch, true, true),
        (LatestRule::DefaultBranch, false, false),
        // both (the default) and release: the release rule wins: never a pre-release.
        (LatestRule::Both, true, false),
        (LatestRule::Release, true, false),
        (LatestRule::Never, true, false),
    ] {
        let mut ws = policy_ws();
        for s in &mut ws.services {
            let mut p = (*s.policy).clone();
            p.latest = rule;
            s.policy = std::sync::Arc::new(p);
        }
        let mut inp = inputs(&ws, &dev, &cx);
        inp.latest
            .insert("127.0.0.1:5000/acme/web:latest".into(), state(descends));
        let plan = make(&inp).unwrap();
        let moved = plan.services[1]
            .images
            .contains(&"127.0.0.1:5000/acme/web:latest".to_string());
        assert_eq!(
            moved, moves,
            "{rule:?} descends={descends}: {:?}",
            plan.services[1].notes
        );
    }
}

#[test]
fn a_missing_placeholder_value_says_how_to_supply_it() {
    let mut ws = policy_ws();
    ws.settings.environments = vec!["staging".into(), "prod".into()];
    for s in &mut ws.services {
        s.tags = Some(vec![
            "{service}-{env}".into(),
            "pr-{pr}".into(),
            "{sha7}".into(),
        ]);
    }
    let v = Version::new(1, 0, 0);
    let cx = git(Some("main"));
    let plan = make(&inputs(&ws, &v, &cx)).unwrap();
    let notes = plan.services[1].notes.join("\n");
    assert!(
        notes.contains("{service}-{env}: needs --env (one of staging, prod)"),
        "{notes}"
    );
    assert!(
        notes.contains("pr-{pr}: {pr} has a value only in pull requests"),
        "{notes}"
    );
}

#[test]
fn the_buildx_layer_cache_is_scoped_per_service_and_written_only_where_it_can_be() {
    let (mut ws, v, g) = (workspace(), Version::new(1, 2, 3), git(Some("main")));
    ws.settings.build_cache = "gha".into();
    let build_args = |inp: &Inputs| {
        let plan = make(inp).unwrap();
        let web = plan.services.iter().find(|s| s.name == "web").unwrap();
        let Step::Build { command, .. } = web
            .steps
            .iter()
            .find(|s| matches!(s, Step::Build { .. }))
            .unwrap()
        else {
            panic!()
        };
        (command.args.join(" "), web.notes.clone())
    };
    let mut inp = inputs(&ws, &v, &g);
    inp.builder = Builder::Buildx { name: None };
    inp.gha_cache = true;
    let (args, _) = build_args(&inp);
    assert!(
        args.contains("--cache-from type=gha,scope=slipway-web --cache-to type=gha,mode=max,scope=slipway-web"),
        "{args}"
    );
    // Outside Actions: none, and a note saying why.
    inp.gha_cache = false;
    let (args, notes) = build_args(&inp);
    assert!(!args.contains("--cache-"), "{args}");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("ACTIONS_RUNTIME_TOKEN unset")),
        "{notes:?}"
    );
    // Not buildx: no cache flags at all.
    inp.builder = Builder::Buildkit;
    inp.gha_cache = true;
    assert!(!build_args(&inp).0.contains("--cache-"));
}
