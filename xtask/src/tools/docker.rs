//! `docker` commands: builds (buildx, BuildKit or the classic builder), pushes and image
//! inspection, and parsers for what they print.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::CommandSpec;

/// How images get built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Builder {
    /// `docker buildx build`; `name` selects a builder (`--builder`).
    Buildx { name: Option<String> },
    /// `DOCKER_BUILDKIT=1 docker build`: a client with BuildKit built in (Docker < 23).
    Buildkit,
    /// `DOCKER_BUILDKIT=0 docker build`: the legacy builder.
    Classic,
}

impl Builder {
    /// Picks the builder from what the client answered. `forced` is `SLIPWAY_BUILDER`.
    pub fn choose(
        forced: Option<&str>,
        buildx_available: bool,
        client_version: Option<&str>,
        name: Option<String>,
    ) -> Result<Builder> {
        let builtin_buildkit = client_version
            .and_then(|v| v.trim().split('.').next()?.parse::<u32>().ok())
            .is_some_and(|major| major < 23);
        match forced {
            Some("buildx") if buildx_available => Ok(Builder::Buildx { name }),
            Some("buildx") => bail!("SLIPWAY_BUILDER=buildx but `docker buildx version` failed: install the buildx plugin (https://github.com/docker/buildx#installing)"),
            Some("buildkit") if builtin_buildkit || buildx_available => Ok(Builder::Buildkit),
            Some("buildkit") => bail!("SLIPWAY_BUILDER=buildkit needs a docker client with BuildKit built in (< 23) or the buildx plugin; this client is {}", client_version.unwrap_or("unknown")),
            Some("classic") => Ok(Builder::Classic),
            Some(other) => bail!("SLIPWAY_BUILDER=`{other}`: use buildx, buildkit or classic"),
            None if buildx_available => Ok(Builder::Buildx { name }),
            None if builtin_buildkit => Ok(Builder::Buildkit),
            None => Ok(Builder::Classic),
        }
    }

    pub fn multi_platform(&self) -> bool {
        matches!(self, Builder::Buildx { .. })
    }
}

/// Where a build's result goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// Into the local Docker image store.
    Load,
    /// Straight to the registry (buildx only; other builders push in a later step).
    Push,
    /// Build only, keep nothing but the cache (multi-platform without `--push`).
    CacheOnly,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    pub dockerfile: PathBuf,
    pub context: PathBuf,
    /// Full references, `registry/repo:tag`.
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub build_args: BTreeMap<String, String>,
    pub platforms: Vec<String>,
    pub target: Option<String>,
    pub network: Option<String>,
    pub output: Output,
    /// Image id (`--iidfile`).
    pub iidfile: PathBuf,
    /// buildx's `--metadata-file` (digest of what was pushed).
    pub metadata_file: PathBuf,
    /// buildx provenance (max) and SBOM attestations; otherwise none.
    pub attestations: bool,
    /// buildx `--cache-from` and, when the build may write it, `--cache-to`.
    pub cache_from: Option<String>,
    pub cache_to: Option<String>,
}

pub fn build(docker: &str, builder: &Builder, o: &BuildOptions) -> CommandSpec {
    let mut cmd = CommandSpec::new(docker);
    match builder {
        Builder::Buildx { name } => {
            cmd = cmd.args(["buildx", "build"]);
            if let Some(n) = name {
                cmd = cmd.args(["--builder", n]);
            }
        }
        Builder::Buildkit => cmd = cmd.arg("build").env("DOCKER_BUILDKIT", "1"),
        Builder::Classic => cmd = cmd.arg("build").env("DOCKER_BUILDKIT", "0"),
    }
    cmd = cmd.arg("--file").arg(o.dockerfile.display().to_string());
    cmd = cmd.arg("--platform").arg(o.platforms.join(","));
    for t in &o.tags {
        cmd = cmd.arg("--tag").arg(t);
    }
    for (k, v) in &o.labels {
        cmd = cmd.arg("--label").arg(format!("{k}={v}"));
    }
    for (k, v) in &o.build_args {
        cmd = cmd.arg("--build-arg").arg(format!("{k}={v}"));
    }
    if let Some(t) = &o.target {
        cmd = cmd.arg("--target").arg(t);
    }
    if let Some(n) = &o.network {
        cmd = cmd.arg("--network").arg(n);
    }
    if !matches!(builder, Builder::Classic) {
        cmd = cmd.arg("--progress=plain");
    }
    cmd = cmd.arg("--iidfile").arg(o.iidfile.display().to_string());
    if let Builder::Buildx { .. } = builder {
        cmd = cmd
            .arg("--metadata-file")
            .arg(o.metadata_file.display().to_string())
            .args(if o.attestations {
                vec!["--provenance=mode=max", "--sbom=true"]
            } else {
                // Provenance turns a one-platform push into an index plus an unknown/unknown
                // manifest, which breaks some consumers and ECR lifecycle rules (SBOM
                // attestations are off by default).
                vec!["--provenance=false"]
            });
        if let Some(c) = &o.cache_from {
            cmd = cmd.args(["--cache-from", c]);
        }
        if let Some(c) = &o.cache_to {
            cmd = cmd.args(["--cache-to", c]);
        }
        match o.output {
            Output::Load => cmd = cmd.arg("--load"),
            Output::Push => cmd = cmd.arg("--push"),
            Output::CacheOnly => {}
        }
    }
    // The workspace root is the empty relative path: docker wants `.`.
    if o.context.as_os_str().is_empty() {
        cmd.arg(".")
    } else {
        cmd.arg(o.context.display().to_string())
    }
}

/// `docker login --username USER --password-stdin REGISTRY` (the password is the caller's to
/// put on stdin, never in argv).
pub fn login(docker: &str, registry: &str, user: &str) -> CommandSpec {
    let host = registry.split('/').next().unwrap_or(registry);
    CommandSpec::new(docker)
        .args(["login", "--username", user, "--password-stdin"])
        .arg(host)
}

/// A throwaway container for the health check: no network but loopback (a HEALTHCHECK runs
/// inside the container), removed by `remove`.
pub fn run_detached(docker: &str, name: &str, image: &str) -> CommandSpec {
    CommandSpec::new(docker)
        .args(["run", "--detach", "--network", "none", "--name", name])
        .arg(image)
}

/// The container's health status (`starting`, `healthy`, `unhealthy`) and whether it runs.
pub fn health_status(docker: &str, name: &str) -> CommandSpec {
    CommandSpec::new(docker).args([
        "inspect",
        "--format",
        "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
        name,
    ])
}

/// The container's last lines of output.
pub fn logs(docker: &str, name: &str) -> CommandSpec {
    CommandSpec::new(docker).args(["logs", "--tail", "20", name])
}

/// What the container's health probes printed, oldest first (Docker keeps the last five).
pub fn health_log(docker: &str, name: &str) -> CommandSpec {
    CommandSpec::new(docker).args([
        "inspect",
        "--format",
        "{{if .State.Health}}{{range .State.Health.Log}}exit {{.ExitCode}}: {{.Output}}\n{{end}}{{end}}",
        name,
    ])
}

pub fn remove(docker: &str, name: &str) -> CommandSpec {
    CommandSpec::new(docker).args(["rm", "--force", name])
}

/// The registry refused to move a tag that exists (ECR `IMMUTABLE`, Harbor, Artifactory,
/// GAR immutable tags).
pub fn is_immutable_refusal(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "cannot be overwritten because the repository is immutable",
        "tag invalid",
        "is immutable",
        "immutable tag",
        "tag already exists",
    ]
    .iter()
    .any(|p| t.contains(p))
}

/// `docker pull REPO@DIGEST`: one exact image (a base this run did not build).
pub fn pull(docker: &str, at: &str) -> CommandSpec {
    CommandSpec::new(docker).args(["pull", "--quiet", at])
}

/// `docker tag IMAGE REFERENCE`.
pub fn tag(docker: &str, image: &str, reference: &str) -> CommandSpec {
    CommandSpec::new(docker).args(["tag", image, reference])
}

/// `build` reading `reference` (as a Dockerfile writes it) as `repo@digest` instead: a buildx
/// named context, inserted before the build context (the last argument).
pub fn with_named_image(build: &CommandSpec, reference: &str, pinned: &str) -> CommandSpec {
    let mut c = build.clone();
    let at = c.args.len().saturating_sub(1);
    c.args.insert(at, "--build-context".into());
    c.args
        .insert(at + 1, format!("{reference}=docker-image://{pinned}"));
    c
}

/// Whether `build` runs through buildx (which takes named contexts).
pub fn is_buildx(build: &CommandSpec) -> bool {
    build.args.first().is_some_and(|a| a == "buildx")
}

pub fn push(docker: &str, reference: &str) -> CommandSpec {
    CommandSpec::new(docker).args(["push", reference])
}

/// `docker image inspect` of one image, as JSON.
pub fn inspect(docker: &str, image: &str) -> CommandSpec {
    CommandSpec::new(docker).args(["image", "inspect", "--format", "{{json .}}", image])
}

pub fn buildx_version(docker: &str) -> CommandSpec {
    CommandSpec::new(docker).args(["buildx", "version"])
}

pub fn client_version(docker: &str) -> CommandSpec {
    CommandSpec::new(docker).args(["version", "--format", "{{.Client.Version}}"])
}

/// The digest `docker push` reports on its last line: `TAG: digest: sha256:… size: N`.
pub fn parse_push_digest(stdout: &str) -> Option<String> {
    stdout.lines().rev().find_map(|line| {
        let rest = line.split_once("digest: ")?.1;
        let digest = rest.split_whitespace().next()?;
        is_digest(digest).then(|| digest.to_string())
    })
}

/// `containerimage.digest` from buildx's `--metadata-file`.
pub fn parse_metadata_digest(json: &str) -> Result<String> {
    let v: serde_json::Value =
        serde_json::from_str(json).context("buildx metadata file is not JSON")?;
    let d = v
        .get("containerimage.digest")
        .and_then(|d| d.as_str())
        .context("buildx metadata file has no `containerimage.digest`")?;
    if !is_digest(d) {
        bail!("buildx metadata file has a malformed digest `{d}`");
    }
    Ok(d.to_string())
}

pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// What the tool checks on a built image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImageInfo {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Architecture")]
    pub architecture: String,
    #[serde(rename = "Os")]
    pub os: String,
    #[serde(rename = "Variant", default)]
    pub variant: Option<String>,
    #[serde(rename = "Config")]
    pub config: ImageConfig,
    /// Bytes (the image's own layers, as `docker images` shows them).
    #[serde(rename = "Size", default)]
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImageConfig {
    #[serde(rename = "User", default)]
    pub user: String,
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// The image's HEALTHCHECK (`Test` is `["NONE"]` when disabled).
    #[serde(rename = "Healthcheck", default)]
    pub healthcheck: Option<Healthcheck>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Healthcheck {
    #[serde(rename = "Test", default)]
    pub test: Vec<String>,
    /// Nanoseconds; 0 or absent: Docker's defaults (30 s, 30 s, 0 s, 3).
    #[serde(rename = "Interval", default)]
    pub interval: i64,
    #[serde(rename = "Timeout", default)]
    pub timeout: i64,
    #[serde(rename = "StartPeriod", default)]
    pub start_period: i64,
    #[serde(rename = "Retries", default)]
    pub retries: i64,
}

pub fn parse_inspect(json: &str) -> Result<ImageInfo> {
    serde_json::from_str(json.trim()).context("cannot parse `docker image inspect` output")
}

impl ImageInfo {
    /// `os/arch[/variant]`, comparable with a configured platform.
    pub fn platform(&self) -> String {
        match self.variant.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// The image declares a health check that is not disabled.
    pub fn has_healthcheck(&self) -> bool {
        self.config
            .healthcheck
            .as_ref()
            .is_some_and(|h| !h.test.is_empty() && h.test[0] != "NONE")
    }

    /// Seconds the image's own HEALTHCHECK settings may take to report: the start period,
    /// then `retries + 1` rounds of interval and timeout (Docker's defaults where unset).
    pub fn health_budget_secs(&self) -> u64 {
        let Some(h) = self.config.healthcheck.as_ref() else {
            return 0;
        };
        let secs = |ns: i64, default: u64| {
            if ns > 0 {
                (ns as u64).div_ceil(1_000_000_000)
            } else {
                default
            }
        };
        let rounds = if h.retries > 0 { h.retries as u64 } else { 3 } + 1;
        secs(h.start_period, 0) + rounds * (secs(h.interval, 30) + secs(h.timeout, 30))
    }

    /// An empty user, `root`, `0` or `0:…` means the container runs as root.
    pub fn runs_as_root(&self) -> bool {
        let user = self.config.user.trim();
        let name = user.split(':').next().unwrap_or("");
        name.is_empty() || name == "root" || name.parse::<u64>() == Ok(0)
    }

    /// The user by name (not a number, not `root`): its uid is in the image's /etc/passwd.
    pub fn user_name(&self) -> Option<&str> {
        let name = self.config.user.trim().split(':').next().unwrap_or("");
        (!name.is_empty() && name != "root" && name.parse::<u64>().is_err()).then_some(name)
    }
}

/// `docker create --name NAME IMAGE`: a container that never runs, to copy files out of.
pub fn create(docker: &str, name: &str, image: &str) -> CommandSpec {
    CommandSpec::new(docker).args(["create", "--name", name, image])
}

/// `docker cp NAME:PATH -`: the file as a tar stream on stdout.
pub fn copy_out(docker: &str, name: &str, path: &str) -> CommandSpec {
    CommandSpec::new(docker).args(["cp", &format!("{name}:{path}"), "-"])
}

/// The uid of `user` in an /etc/passwd (as `docker cp … -` streams it: in a tar).
pub fn passwd_uid(passwd: &str, user: &str) -> Option<u64> {
    passwd.lines().find_map(|line| {
        // The tar header before the first line ends in NULs.
        let line = line.rsplit('\0').next().unwrap_or(line);
        let mut f = line.split(':');
        (f.next()? == user).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> BuildOptions {
        BuildOptions {
            dockerfile: "services/web/Dockerfile".into(),
            context: "services/web".into(),
            tags: vec![
                "127.0.0.1:5000/slipway/web:0.1.0".into(),
                "127.0.0.1:5000/slipway/web:main".into(),
            ],
            labels: BTreeMap::from([
                ("org.opencontainers.image.revision".into(), "abc".into()),
                ("org.opencontainers.image.title".into(), "web".into()),
            ]),
            build_args: BTreeMap::from([("VERSION".into(), "0.1.0".into())]),
            platforms: vec!["linux/amd64".into()],
            target: None,
            network: None,
            output: Output::Load,
            iidfile: "target/slipway/out/web/iid".into(),
            metadata_file: "target/slipway/out/web/metadata.json".into(),
            attestations: false,
            cache_from: None,
            cache_to: None,
        }
    }

    #[test]
    fn classic_build_argv() {
        let cmd = build("docker", &Builder::Classic, &opts());
        assert_eq!(
            cmd.argv(),
            [
                "docker",
                "build",
                "--file",
                "services/web/Dockerfile",
                "--platform",
                "linux/amd64",
                "--tag",
                "127.0.0.1:5000/slipway/web:0.1.0",
                "--tag",
                "127.0.0.1:5000/slipway/web:main",
                "--label",
                "org.opencontainers.image.revision=abc",
                "--label",
                "org.opencontainers.image.title=web",
                "--build-arg",
                "VERSION=0.1.0",
                "--iidfile",
                "target/slipway/out/web/iid",
                "services/web"
            ]
        );
        assert_eq!(cmd.env["DOCKER_BUILDKIT"], "0");
    }

    #[test]
    fn buildkit_build_argv_with_target_and_network() {
        let mut o = opts();
        o.target = Some("runtime".into());
        o.network = Some("none".into());
        o.tags.truncate(1);
        o.labels.clear();
        o.build_args.clear();
        let cmd = build("/usr/bin/docker", &Builder::Buildkit, &o);
        assert_eq!(
            cmd.argv(),
            [
                "/usr/bin/docker",
                "build",
                "--file",
                "services/web/Dockerfile",
                "--platform",
                "linux/amd64",
                "--tag",
                "127.0.0.1:5000/slipway/web:0.1.0",
                "--target",
                "runtime",
                "--network",
                "none",
                "--progress=plain",
                "--iidfile",
                "target/slipway/out/web/iid",
                "services/web"
            ]
        );
        assert_eq!(cmd.env["DOCKER_BUILDKIT"], "1");
    }

    #[test]
    fn buildx_multi_platform_push_argv() {
        let mut o = opts();
        o.platforms = vec!["linux/amd64".into(), "linux/arm64".into()];
        o.output = Output::Push;
        o.tags.truncate(1);
        o.labels.clear();
        o.build_args.clear();
        let cmd = build(
            "docker",
            &Builder::Buildx {
                name: Some("remote".into()),
            },
            &o,
        );
        assert_eq!(
            cmd.argv(),
            [
                "docker",
                "buildx",
                "build",
                "--builder",
                "remote",
                "--file",
                "services/web/Dockerfile",
                "--platform",
                "linux/amd64,linux/arm64",
                "--tag",
                "127.0.0.1:5000/slipway/web:0.1.0",
                "--progress=plain",
                "--iidfile",
                "target/slipway/out/web/iid",
                "--metadata-file",
                "target/slipway/out/web/metadata.json",
                "--provenance=false",
                "--push",
                "services/web"
            ]
        );
        assert!(cmd.env.is_empty());
    }

    #[test]
    fn buildx_load_and_cache_only() {
        let b = Builder::Buildx { name: None };
        let load = build("docker", &b, &opts());
        assert_eq!(load.args[load.args.len() - 2], "--load");
        let mut o = opts();
        o.output = Output::CacheOnly;
        let cache = build("docker", &b, &o);
        assert_eq!(cache.args[cache.args.len() - 2], "--provenance=false");
        o.output = Output::Push;
        o.attestations = true;
        let attested = build("docker", &b, &o);
        assert_eq!(
            attested.args[attested.args.len() - 4..],
            [
                "--provenance=mode=max",
                "--sbom=true",
                "--push",
                "services/web"
            ]
        );
    }

    #[test]
    fn push_inspect_and_probe_argv() {
        assert_eq!(push("docker", "r/a:1").argv(), ["docker", "push", "r/a:1"]);
        assert_eq!(
            inspect("docker", "r/a:1").argv(),
            [
                "docker",
                "image",
                "inspect",
                "--format",
                "{{json .}}",
                "r/a:1"
            ]
        );
        assert_eq!(
            buildx_version("docker").argv(),
            ["docker", "buildx", "version"]
        );
        assert_eq!(
            client_version("docker").argv(),
            ["docker", "version", "--format", "{{.Client.Version}}"]
        );
    }

    #[test]
    fn builder_choice() {
        let b = |forced, bx, v: Option<&str>| Builder::choose(forced, bx, v, None);
        assert_eq!(
            b(None, true, Some("28.2.2")).unwrap(),
            Builder::Buildx { name: None }
        );
        assert_eq!(
            b(None, false, Some("20.10.24+dfsg1")).unwrap(),
            Builder::Buildkit
        );
        assert_eq!(b(None, false, Some("28.2.2")).unwrap(), Builder::Classic);
        assert_eq!(
            b(Some("classic"), true, Some("28.2.2")).unwrap(),
            Builder::Classic
        );
        assert!(b(Some("buildx"), false, Some("28.2.2"))
            .unwrap_err()
            .to_string()
            .contains("install the buildx plugin"));
        assert!(b(Some("buildkit"), false, Some("28.2.2")).is_err());
        assert!(b(Some("bogus"), false, None).is_err());
    }

    #[test]
    fn push_digest_from_last_line() {
        let out = "The push refers to repository [127.0.0.1:5000/slipway/web]\n5f70bf18a086: Pushed\n0.1.0: digest: sha256:8e4e0e4b9d0b5d4f1c1e4f3b5a6e8e7d6c5b4a3928171615141312111009080f size: 942\n";
        assert_eq!(
            parse_push_digest(out).as_deref(),
            Some("sha256:8e4e0e4b9d0b5d4f1c1e4f3b5a6e8e7d6c5b4a3928171615141312111009080f")
        );
        assert_eq!(
            parse_push_digest("0.1.0: digest: sha256:short size: 1"),
            None
        );
        assert_eq!(parse_push_digest(""), None);
    }

    #[test]
    fn metadata_file_digest() {
        let d = format!("sha256:{}", "a".repeat(64));
        let json = format!(r#"{{"containerimage.digest":"{d}","image.name":"r/a:1"}}"#);
        assert_eq!(parse_metadata_digest(&json).unwrap(), d);
        assert!(parse_metadata_digest("{}").is_err());
        assert!(parse_metadata_digest("nope").is_err());
    }

    #[test]
    fn inspect_parsing_and_root_detection() {
        let json = r#"{"Id":"sha256:abc","RepoTags":["a:1"],"Architecture":"amd64","Os":"linux","Config":{"User":"10001:10001","Labels":{"k":"v"}}}"#;
        let info = parse_inspect(json).unwrap();
        assert_eq!(info.platform(), "linux/amd64");
        assert!(!info.runs_as_root());
        assert_eq!(info.config.labels.as_ref().unwrap()["k"], "v");
        for user in ["", "root", "0", "0:0", "root:app"] {
            let j = json.replace("10001:10001", user);
            assert!(parse_inspect(&j).unwrap().runs_as_root(), "{user:?}");
        }
        let arm = r#"{"Id":"x","Architecture":"arm64","Os":"linux","Variant":"v8","Config":{"User":"app","Labels":null}}"#;
        assert_eq!(parse_inspect(arm).unwrap().platform(), "linux/arm64/v8");
    }

    #[test]
    fn health_budget_follows_the_images_healthcheck_settings() {
        let with = |hc: &str| {
            parse_inspect(&format!(
                r#"{{"Id":"x","Architecture":"amd64","Os":"linux","Config":{{"User":"1","Healthcheck":{hc}}}}}"#
            ))
            .unwrap()
        };
        // Docker's defaults: 4 rounds of 30 s interval + 30 s timeout.
        let d = with(r#"{"Test":["CMD","true"]}"#);
        assert!(d.has_healthcheck());
        assert_eq!(d.health_budget_secs(), 240);
        // --start-period=120s --interval=1s --timeout=2s --retries=20.
        let s = with(
            r#"{"Test":["CMD","true"],"Interval":1000000000,"Timeout":2000000000,"StartPeriod":120000000000,"Retries":20}"#,
        );
        assert_eq!(s.health_budget_secs(), 120 + 21 * 3);
        let none = with(r#"{"Test":["NONE"]}"#);
        assert!(!none.has_healthcheck());
    }
}

#[cfg(test)]
mod pin_tests {
    use super::*;

    #[test]
    fn a_named_image_goes_before_the_context() {
        let build = CommandSpec::new("docker").args(["buildx", "build", "--push", "ctx"]);
        assert!(is_buildx(&build));
        let pinned = with_named_image(&build, "r/base:stable", "r/base@sha256:ab");
        assert_eq!(
            pinned.args,
            [
                "buildx",
                "build",
                "--push",
                "--build-context",
                "r/base:stable=docker-image://r/base@sha256:ab",
                "ctx"
            ]
        );
        assert!(!is_buildx(
            &CommandSpec::new("docker").args(["build", "ctx"])
        ));
    }

    #[test]
    fn root_by_any_name() {
        let info = |user: &str| {
            parse_inspect(&format!(
                r#"{{"Id":"sha256:x","Architecture":"amd64","Os":"linux","Config":{{"User":"{user}"}}}}"#
            ))
            .unwrap()
        };
        assert!(info("0000").runs_as_root());
        assert!(info("0:65534").runs_as_root());
        assert!(!info("65534").runs_as_root());
        assert_eq!(info("admin").user_name(), Some("admin"));
        assert_eq!(info("10001:10001").user_name(), None);
        let tar = "passwd\0\0\0\0ustar\0\0root:x:0:0:root:/root:/bin/sh\nadmin:x:0:0:admin:/:/bin/sh\napp:x:10001:10001::/:/bin/sh\n\0\0";
        assert_eq!(passwd_uid(tar, "root"), Some(0));
        assert_eq!(passwd_uid(tar, "admin"), Some(0));
        assert_eq!(passwd_uid(tar, "app"), Some(10001));
        assert_eq!(passwd_uid(tar, "nobody"), None);
    }

    #[test]
    fn immutable_refusals_are_recognised() {
        // ECR's answer to `docker push` over an existing tag in an IMMUTABLE repository.
        assert!(is_immutable_refusal("tag invalid: The image tag '1.2.3' already exists in the 'api' repository and cannot be overwritten because the repository is immutable."));
        assert!(is_immutable_refusal(
            "denied: The tag 1.2.3 is immutable and cannot be overwritten"
        ));
        assert!(!is_immutable_refusal("manifest invalid: manifest invalid"));
        assert!(!is_immutable_refusal("dial tcp: connection refused"));
    }
}
