use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
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
        tags: vec!["{version}".into(), "{branch}".into(), "{sha7}".into()],
        build_args: BTreeMap::from([("EXTRA".into(), "1".into())]),
        target: None,
        description: None,
        non_root: true,
        port: None,
        health_path: None,
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
            tags: vec![],
            labels: LabelInfo {
                vendor: Some("Acme".into()),
                ..LabelInfo::default()
            },
            build_args: BTreeMap::new(),
            network: Some("host".into()),
        },
        services: vec![service("api", true), service("web", false)],
    }
}

fn git(branch: Option<&str>) -> GitInfo {
    GitInfo {
        sha: "abcdef0123456789abcdef0123456789abcdef01".into(),
        branch: branch.map(String::from),
        commit_time: 1_795_234_961,
        dirty: false,
    }
}

fn inputs<'a>(ws: &'a Workspace, version: &'a Version, git: &'a GitInfo) -> Inputs<'a> {
    Inputs {
        workspace: ws,
        selected: ws
            .services
            .iter()
            .map(|s| (s.name.clone(), vec!["--all".to_string()]))
            .collect(),
        version,
        git,
        created: git.commit_time,
        builder: Builder::Buildkit,
        docker: "docker".into(),
        cargo: "cargo".into(),
        push: true,
        platforms: None,
        network: None,
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
}

#[test]
fn classic_and_buildkit_build_then_verify_then_push_each_reference() {
    let (ws, v, g) = (workspace(), Version::new(1, 2, 3), git(Some("main")));
    let plan = make(&inputs(&ws, &v, &g)).unwrap();
    let web = &plan.services[1];
    let kinds: Vec<String> = web.steps.iter().map(Step::label).collect();
    assert_eq!(kinds[..2], ["build", "verify"]);
    assert_eq!(kinds.len(), 2 + web.images.len());
    for (step, image) in web.steps[2..].iter().zip(&web.images) {
        assert_eq!(
            step,
            &Step::Push {
                command: docker::push("docker", image),
                reference: image.clone()
            }
        );
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
fn cargo_services_share_one_compile_and_stage_their_binary() {
    let (ws, v, g) = (workspace(), Version::new(1, 2, 3), git(Some("main")));
    let mut inp = inputs(&ws, &v, &g);
    inp.push = false;
    let plan = make(&inp).unwrap();
    assert_eq!(
        plan.prepare,
        [Step::Compile {
            command: cargo::build_static(
                "cargo",
                Path::new("target/slipway/cargo"),
                &["x86_64-unknown-linux-gnu"],
                &[("api".into(), "api".into())]
            )
        }]
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
    inp.selected.remove("api");
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
    assert_eq!(plan.services[0].reasons, ["not selected"]);
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
    ws3.services[1].tags = vec!["{branch}".into()];
    let g2 = git(None);
    let err = make(&inputs(&ws3, &v, &g2)).unwrap_err().to_string();
    assert!(err.contains("no tag template gives a tag here"), "{err}");
}

#[test]
fn plan_json_has_the_contract_fields() {
    let (ws, v, g) = (workspace(), Version::new(1, 2, 3), git(Some("main")));
    let plan = make(&inputs(&ws, &v, &g)).unwrap();
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["head"], g.sha.as_str());
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
