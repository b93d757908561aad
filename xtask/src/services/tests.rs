use std::path::Path;

use super::*;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn workspace(images: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Cargo.toml",
        &format!("[workspace]\nmembers = []\n[workspace.metadata.images]\n{images}"),
    );
    dir
}

fn no_packages() -> Result<Vec<Package>> {
    panic!("cargo metadata must not be asked for without a [cargo] service")
}

fn load(root: &Path, env: &EnvOverrides) -> Result<Workspace> {
    Workspace::load(root, env, no_packages)
}

#[test]
fn discovers_services_sorted_with_defaults_and_overrides() {
    let dir = workspace("registries = [\"ghcr.io/acme\"]\nprefix = \"team\"\nbuild_args = { A = \"1\", B = \"1\" }\n");
    let r = dir.path();
    write(r, "services/zeta/Dockerfile", "FROM scratch\n");
    write(r, "services/alpha/docker/Prod.Dockerfile", "FROM scratch\n");
    write(
        r,
        "services/alpha/service.toml",
        "image = \"alpha-svc\"\ndockerfile = \"docker/Prod.Dockerfile\"\ncontext = \"..\"\nplatforms = [\"linux/arm64\"]\ntags = [\"{sha7}\"]\nbuild_args = { B = \"2\" }\ntarget = \"runtime\"\nnon_root = false\n",
    );
    write(r, "services/README.md", "not a dir");
    let ws = load(r, &EnvOverrides::default()).unwrap();
    let names: Vec<&str> = ws.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["alpha", "zeta"]);
    let a = &ws.services[0];
    assert_eq!(a.repository, "team/alpha-svc");
    assert_eq!(
        a.dockerfile,
        Path::new("services/alpha/docker/Prod.Dockerfile")
    );
    assert_eq!(a.context, Path::new("services"));
    assert_eq!(a.platforms, ["linux/arm64"]);
    assert_eq!(a.tags, Some(vec!["{sha7}".to_string()]));
    assert_eq!(a.build_args["A"], "1");
    assert_eq!(
        a.build_args["B"], "2",
        "service build args win over global ones"
    );
    assert_eq!(a.target.as_deref(), Some("runtime"));
    assert!(!a.non_root);
    let z = &ws.services[1];
    assert_eq!(z.repository, "team/zeta");
    assert_eq!(z.registries, ["ghcr.io/acme"]);
    assert_eq!(z.platforms, ["linux/amd64"]);
    assert_eq!(z.tags, None, "no explicit tags: the tag policy decides");
    assert!(z.non_root, "non-root is the default");
}

#[test]
fn environment_wins_over_both_files() {
    let dir = workspace("registries = [\"ghcr.io/acme\"]\n");
    let r = dir.path();
    write(r, "services/api/Dockerfile", "FROM scratch\n");
    write(
        r,
        "services/api/service.toml",
        "registries = [\"quay.io/x\"]\nplatforms = [\"linux/arm64\"]\n",
    );
    let env = EnvOverrides {
        registries: Some(vec!["127.0.0.1:5000".into()]),
        platforms: Some(vec!["linux/amd64".into(), "linux/arm64".into()]),
        tags: Some(vec!["ci-{sha7}".into()]),
    };
    let ws = load(r, &env).unwrap();
    let s = &ws.services[0];
    assert_eq!(s.registries, ["127.0.0.1:5000"]);
    assert_eq!(s.platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(s.tags, Some(vec!["ci-{sha7}".to_string()]));
}

#[test]
fn every_bad_service_is_reported_at_once_with_its_location() {
    let dir = workspace("");
    let r = dir.path();
    write(r, "services/a/Dockerfile", "FROM scratch\n");
    write(
        r,
        "services/a/service.toml",
        "platforms = [\"linux/amd64\", \"arm64\"]\n",
    );
    write(r, "services/b/Dockerfile", "FROM scratch\n");
    write(r, "services/b/service.toml", "tags = [\"{vrsion}\"]\n");
    write(
        r,
        "services/c/service.toml",
        "description = \"no Dockerfile\"\n",
    );
    write(r, "services/D/Dockerfile", "FROM scratch\n");
    let err = load(r, &EnvOverrides::default()).unwrap_err().to_string();
    assert!(err.starts_with("4 configuration error(s):"), "{err}");
    assert!(
        err.contains("services/D: service directory name: invalid repository name `D`"),
        "{err}"
    );
    assert!(err.contains("or set `image = \"...\"`"), "{err}");
    assert!(
        err.contains("services/a/service.toml:1:29: unknown platform `arm64`"),
        "{err}"
    );
    assert!(
        err.contains(
            "services/b/service.toml:1:9: tag template `{vrsion}` uses unknown placeholder"
        ),
        "{err}"
    );
    assert!(
        err.contains("services/c/service.toml: service `c` has a service.toml but no Dockerfile"),
        "{err}"
    );
}

#[test]
fn bad_paths_in_service_toml_are_located() {
    let dir = workspace("");
    let r = dir.path();
    write(r, "services/a/Dockerfile", "FROM scratch\n");
    write(
        r,
        "services/a/service.toml",
        "dockerfile = \"Nope.Dockerfile\"\n",
    );
    let err = load(r, &EnvOverrides::default()).unwrap_err().to_string();
    assert!(
        err.contains("services/a/service.toml:1:14: dockerfile `Nope.Dockerfile` does not exist"),
        "{err}"
    );
    write(r, "services/a/service.toml", "context = \"../../..\"\n");
    let err = load(r, &EnvOverrides::default()).unwrap_err().to_string();
    assert!(
        err.contains("context `../../..` is not a directory inside the workspace"),
        "{err}"
    );
    write(r, "services/a/service.toml", "context = \"/tmp\"\n");
    let err = load(r, &EnvOverrides::default()).unwrap_err().to_string();
    assert!(
        err.contains("services/a/service.toml:1:11: context `/tmp` is absolute"),
        "{err}"
    );
    // The workspace root, a common monorepo layout.
    write(r, "services/a/service.toml", "context = \"../..\"\n");
    let ws = load(r, &EnvOverrides::default()).unwrap();
    assert_eq!(ws.services[0].context, Path::new(""));
}

#[test]
fn global_config_errors_point_into_cargo_toml() {
    let dir = workspace("prefix = \"Team\"\n");
    let err = load(dir.path(), &EnvOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Cargo.toml:4:10: invalid repository name `Team`"),
        "{err}"
    );
    let dir = workspace("network = \"bridge\"\n");
    let err = load(dir.path(), &EnvOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Cargo.toml:4:11: network must be one of default, host, none"),
        "{err}"
    );
    let dir = workspace("regsitries = []\n");
    let err = load(dir.path(), &EnvOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Cargo.toml:4:1: unknown field `regsitries`")
            && err.contains("did you mean `registries`?"),
        "{err}"
    );
}

#[test]
fn cargo_services_resolve_package_and_binary() {
    let dir = workspace("");
    let r = dir.path();
    write(r, "services/api/Dockerfile", "FROM scratch\n");
    write(r, "services/api/service.toml", "[cargo]\n");
    write(r, "services/tool/Dockerfile", "FROM scratch\n");
    write(
        r,
        "services/tool/service.toml",
        "[cargo]\npackage = \"tools\"\nbin = \"migrate\"\n",
    );
    let packages = || {
        Ok(vec![
            Package {
                name: "api".into(),
                dir: "services/api".into(),
                bins: vec!["api".into()],
                deps: vec![],
            },
            Package {
                name: "tools".into(),
                dir: "crates/tools".into(),
                bins: vec!["migrate".into(), "seed".into()],
                deps: vec![],
            },
        ])
    };
    let ws = Workspace::load(r, &EnvOverrides::default(), packages).unwrap();
    assert_eq!(
        ws.services[0].cargo,
        Some(CargoBinary {
            package: "api".into(),
            bin: "api".into()
        })
    );
    assert_eq!(
        ws.services[1].cargo,
        Some(CargoBinary {
            package: "tools".into(),
            bin: "migrate".into()
        })
    );

    write(
        r,
        "services/tool/service.toml",
        "[cargo]\npackage = \"tools\"\n",
    );
    let err = Workspace::load(r, &EnvOverrides::default(), packages)
        .unwrap_err()
        .to_string();
    assert!(err.contains("package `tools` has several binaries (migrate, seed): set `bin = \"...\"` under [cargo]"), "{err}");
    write(
        r,
        "services/tool/service.toml",
        "[cargo]\npackage = \"nope\"\n",
    );
    let err = Workspace::load(r, &EnvOverrides::default(), packages)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[cargo] package `nope` is not a workspace member"),
        "{err}"
    );
}

#[test]
fn select_keeps_order_dedups_and_suggests() {
    let dir = workspace("");
    let r = dir.path();
    for s in ["api", "web", "worker"] {
        write(r, &format!("services/{s}/Dockerfile"), "FROM scratch\n");
    }
    let ws = load(r, &EnvOverrides::default()).unwrap();
    let picked: Vec<&str> = ws
        .select(&["worker".into(), "api".into(), "worker".into()])
        .unwrap()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(picked, ["worker", "api"]);
    let err = ws.select(&["wokrer".into()]).unwrap_err().to_string();
    assert_eq!(
        err,
        "unknown service `wokrer`: did you mean `worker`? (services: api, web, worker)"
    );
    let err = ws.select(&["database".into()]).unwrap_err().to_string();
    assert_eq!(
        err,
        "unknown service `database`; the services are: api, web, worker"
    );
}

#[test]
fn service_tag_policy_overrides_the_global_one_key_by_key() {
    let dir = workspace(
        "[workspace.metadata.images.tag_policy]\nlatest = \"release\"\ndirty_suffix = \"-wip\"\n",
    );
    let r = dir.path();
    write(r, "services/api/Dockerfile", "FROM scratch\n");
    write(
        r,
        "services/api/service.toml",
        "[tag_policy]\nlatest = \"never\"\nbranch = [\"{service}-{branch}\"]\ntimestamp = \"build\"\n",
    );
    write(r, "services/web/Dockerfile", "FROM scratch\n");
    let ws = load(r, &EnvOverrides::default()).unwrap();
    let (api, web) = (&ws.services[0].policy, &ws.services[1].policy);
    assert_eq!(api.latest, LatestRule::Never);
    assert_eq!(api.branch, ["{service}-{branch}"]);
    assert_eq!(api.dirty_suffix, "-wip", "inherited from the global policy");
    assert!(api.timestamp_from_build);
    assert_eq!(web.latest, LatestRule::Release);
    assert!(!web.timestamp_from_build);

    write(
        r,
        "services/api/service.toml",
        "[tag_policy]\nlatest = \"sometimes\"\n",
    );
    let err = load(r, &EnvOverrides::default()).unwrap_err().to_string();
    assert!(
        err.contains("services/api/service.toml:2:10: latest must be one of default-branch, release, both, never"),
        "{err}"
    );
    write(
        r,
        "services/api/service.toml",
        "[tag_policy]\ntimestamp = \"now\"\n",
    );
    let err = load(r, &EnvOverrides::default()).unwrap_err().to_string();
    assert!(
        err.contains("timestamp must be `commit` or `build`"),
        "{err}"
    );
}

#[test]
fn depends_on_must_name_services_and_form_no_cycle() {
    let dir = workspace("");
    let r = dir.path();
    for s in ["base", "api", "web"] {
        write(r, &format!("services/{s}/Dockerfile"), "FROM scratch\n");
    }
    write(r, "services/api/service.toml", "depends_on = [\"bse\"]\n");
    let err = load(r, &EnvOverrides::default()).unwrap_err().to_string();
    assert!(err.contains("services/api/service.toml: depends_on names `bse`, which is not a service: did you mean `base`?"), "{err}");
    write(r, "services/api/service.toml", "depends_on = [\"base\"]\n");
    write(r, "services/base/service.toml", "depends_on = [\"web\"]\n");
    write(r, "services/web/service.toml", "depends_on = [\"api\"]\n");
    let err = load(r, &EnvOverrides::default()).unwrap_err().to_string();
    assert!(
        err.contains("depends_on forms a cycle: api -> base -> web -> api"),
        "{err}"
    );
    write(r, "services/web/service.toml", "watch = [\"docs/**\"]\n");
    let ws = load(r, &EnvOverrides::default()).unwrap();
    assert_eq!(ws.services[0].depends_on, ["base"]);
    assert_eq!(ws.services[2].watch, ["docs/**"]);
    assert!(
        ws.settings.shared_paths.is_empty(),
        "toolchain files are Rust inputs, not shared paths"
    );
    for (glob, why) in [("/docs/**", "absolute"), ("../docs/**", "`..`")] {
        write(
            r,
            "services/web/service.toml",
            &format!("watch = [\"{glob}\"]\n"),
        );
        let err = load(r, &EnvOverrides::default()).unwrap_err().to_string();
        assert!(
            err.contains("services/web/service.toml:1:") && err.contains(why),
            "{err}"
        );
    }
}

#[test]
fn signing_config_picks_key_or_keyless_and_names_what_is_missing() {
    use crate::tools::cosign::Signer;
    let sign = |table: &str| {
        let dir = workspace(&format!("[workspace.metadata.images.sign]\n{table}"));
        load(dir.path(), &EnvOverrides::default()).map(|w| w.settings.sign)
    };
    assert_eq!(
        sign("key = \"ci/cosign.key\"\n").unwrap(),
        Some(Signer::Key {
            key: "ci/cosign.key".into(),
            public: "ci/cosign.pub".into()
        })
    );
    assert_eq!(
        sign("key = \"awskms:///alias/sign\"\n").unwrap(),
        Some(Signer::Key {
            key: "awskms:///alias/sign".into(),
            public: "awskms:///alias/sign".into()
        })
    );
    assert_eq!(
        sign("identity = \"https://x/y\"\nissuer = \"https://token\"\n").unwrap(),
        Some(Signer::Keyless {
            identity: "https://x/y".into(),
            issuer: "https://token".into()
        })
    );
    assert_eq!(sign("enabled = false\nkey = \"k.key\"\n").unwrap(), None);
    let err = sign("key = \"env://COSIGN_KEY\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs `public_key`"), "{err}");
    let err = sign("identity = \"https://x/y\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[workspace.metadata.images.sign]") && err.contains("issuer"),
        "{err}"
    );
}

#[test]
fn token_logins_need_a_user_and_point_at_the_entry() {
    let load_with = |entry: &str| {
        let dir = workspace(&format!(
            "[[workspace.metadata.images.logins]]\nregistry = \"ghcr.io/acme\"\n{entry}"
        ));
        load(dir.path(), &EnvOverrides::default()).map(|w| w.settings.logins)
    };
    assert_eq!(
        load_with("username_env = \"GITHUB_ACTOR\"\npassword_env = \"GITHUB_TOKEN\"\n").unwrap(),
        [TokenLogin {
            registry: "ghcr.io".into(),
            username: LoginUser::FromEnv("GITHUB_ACTOR".into()),
            password_env: "GITHUB_TOKEN".into()
        }]
    );
    let err = load_with("password_env = \"GITHUB_TOKEN\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Cargo.toml:5:12")
            && err.contains("needs one of `username` or `username_env`"),
        "{err}"
    );
    let err = load_with("username = \"x\"\npassword = \"inline\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `password`"), "{err}");
}

#[test]
fn two_services_publishing_one_repository_are_refused() {
    let dir = workspace("registries = [\"ghcr.io/acme\"]\n");
    let r = dir.path();
    for s in ["api", "api-v2"] {
        write(r, &format!("services/{s}/Dockerfile"), "FROM scratch\n");
    }
    write(r, "services/api-v2/service.toml", "image = \"api\"\n");
    let err = load(r, &EnvOverrides::default()).unwrap_err().to_string();
    assert!(
        err.contains("`api` and `api-v2` both publish ghcr.io/acme/api: their tags would overwrite each other"),
        "{err}"
    );
    // Another registry each: no clash.
    write(
        r,
        "services/api-v2/service.toml",
        "image = \"api\"\nregistries = [\"ghcr.io/other\"]\n",
    );
    assert!(load(r, &EnvOverrides::default()).is_ok());
    // An environment's own repository that is another service's.
    let dir = workspace("registries = [\"ghcr.io/acme\"]\nenvironments = [\"prod\"]\nenvironment_repository = \"{repository}-{env}\"\n");
    let r = dir.path();
    for s in ["api", "api-prod"] {
        write(r, &format!("services/{s}/Dockerfile"), "FROM scratch\n");
    }
    let err = load(r, &EnvOverrides::default()).unwrap_err().to_string();
    assert!(
        err.contains(
            "`api` (its prod repository) and `api-prod` both publish ghcr.io/acme/api-prod"
        ),
        "{err}"
    );
}

#[test]
fn notify_and_ecr_settings_name_the_allowed_values_at_their_place() {
    let dir = workspace(
        "[workspace.metadata.images.notify]\nwebhook_env = \"HOOK\"\nformat = \"email\"\n",
    );
    let err = load(dir.path(), &EnvOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Cargo.toml:6:10: notify.format must be one of `teams`, `slack`"),
        "{err}"
    );
    let dir = workspace(
        "[workspace.metadata.images.ecr]\ntag_mutability = \"IMMUTABLE_WITH_EXCLUSION\"\n",
    );
    let err = load(dir.path(), &EnvOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs `mutability_exclusions`"), "{err}");
    let dir = workspace(
        "[workspace.metadata.images.notify]\nwebhook_env = \"https://hooks.example/x\"\n",
    );
    let err = load(dir.path(), &EnvOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("never the URL itself"), "{err}");
}
