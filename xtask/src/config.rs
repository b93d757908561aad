//! Image configuration as written: `[workspace.metadata.images]` in the root `Cargo.toml`,
//! `services/<name>/service.toml`, and the environment overrides. Parsing is strict: unknown
//! keys, wrong types and invalid values are errors that name file, line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use toml::Spanned;

use crate::files::Files;

/// The global section, `[workspace.metadata.images]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// Registries every image goes to (`host[:port][/path]`); empty = local Docker only.
    #[serde(default)]
    pub registries: Vec<Spanned<String>>,
    /// Repository path between the registry and the image name.
    pub prefix: Option<Spanned<String>>,
    pub platforms: Option<Vec<Spanned<String>>>,
    pub tags: Option<Vec<Spanned<String>>>,
    pub vendor: Option<String>,
    pub source: Option<String>,
    pub licenses: Option<String>,
    pub url: Option<String>,
    pub documentation: Option<String>,
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// Network for `RUN` steps (`docker build --network`): `default`, `host` or `none`.
    pub network: Option<Spanned<String>>,
    /// Which tags each kind of build gets, and when `latest` moves.
    pub tag_policy: Option<TagPolicyConfig>,
    /// The vulnerability scan gate (trivy) before any tag is pushed.
    pub scan: Option<ScanConfig>,
    /// Signing pushed images by digest (cosign).
    pub sign: Option<SignConfig>,
    /// The branch `latest` and `{version}` tags come from (default: the repository's).
    pub default_branch: Option<String>,
    /// Names `{env}` may take (`--env`), e.g. staging, prod.
    #[serde(default)]
    pub environments: Vec<Spanned<String>>,
    /// Extra labels on every image (`org.opencontainers.image.*` ones override the generated).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Registries (`host[:port]`) that log in the ECR way (`aws ecr get-login-password`)
    /// besides `*.dkr.ecr.*.amazonaws.com`, which always do: an ECR-compatible endpoint.
    #[serde(default)]
    pub ecr_login: Vec<Spanned<String>>,
    /// Registries logged in to with a token from the environment (GHCR, Docker Hub, …).
    #[serde(default)]
    pub logins: Vec<LoginConfig>,
    /// Globs of paths every service reads (default: none; cargo config and toolchain files
    /// are inputs of every Rust service without being listed here).
    pub shared_paths: Option<Vec<Spanned<String>>>,
    /// Where Docker Hub base images are read from instead (a mirror or an ECR pull-through
    /// cache prefix, e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com/dockerhub`).
    pub base_image_mirror: Option<Spanned<String>>,
    /// The tag an environment's image carries (`promote`, `status`): `{env}` (default) or,
    /// e.g., `{service}-{env}-{version}`.
    pub environment_tag: Option<Spanned<String>>,
    /// Repositories per environment (`{repository}-{env}`): an environment's images live in
    /// their own repository (promote copies across, ecr sets each up).
    pub environment_repository: Option<Spanned<String>>,
    /// buildx layer cache: `none` (default), `gha` (GitHub Actions' cache, per service) or
    /// `registry` (a `buildcache` tag beside each image).
    pub build_cache: Option<Spanned<String>>,
    /// `cargo xtask check`: what it requires.
    pub check: Option<CheckConfig>,
    /// ECR repositories as code (`cargo xtask ecr plan|apply`).
    pub ecr: Option<EcrConfig>,
    /// Posting a run's summary to a chat webhook (Teams, Slack).
    pub notify: Option<NotifyConfig>,
}

/// `[workspace.metadata.images.ecr]`: how every ECR repository is set up.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcrConfig {
    /// Scan on push (default true).
    pub scan_on_push: Option<bool>,
    /// `AES256` (default) or `KMS` (fixed at creation).
    pub encryption: Option<Spanned<String>>,
    pub kms_key: Option<String>,
    /// `MUTABLE` (default), `IMMUTABLE`, `IMMUTABLE_WITH_EXCLUSION`, `MUTABLE_WITH_EXCLUSION`.
    pub tag_mutability: Option<Spanned<String>>,
    /// Wildcard filters excluded from the mutability setting (e.g. `latest`, `main`).
    #[serde(default)]
    pub mutability_exclusions: Vec<String>,
    /// Resource tags on every repository.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The lifecycle policy: keep the last N tagged with `version_prefix` (default 10, `v`),
    /// expire untagged after D days (default 7)…
    pub keep_versions: Option<u32>,
    pub version_prefix: Option<String>,
    pub expire_untagged_days: Option<u32>,
    /// …or a policy file (ECR's JSON), relative to the workspace root.
    pub lifecycle_policy: Option<Spanned<String>>,
}

/// `[workspace.metadata.images.check]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Every base image pinned by digest, not only by tag (default false).
    pub require_digests: Option<bool>,
    /// `trivy fs` of the repository as part of `check` (default true).
    pub source_scan: Option<bool>,
}

/// `[workspace.metadata.images.notify]`: the webhook URL is read from the environment,
/// never from the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The variable that holds the incoming webhook's URL.
    pub webhook_env: Spanned<String>,
    /// `teams` (an Adaptive Card) or `slack`.
    pub format: Option<Spanned<String>>,
    /// `failure` (default) or `always`.
    pub when: Option<Spanned<String>>,
}

/// `[[workspace.metadata.images.logins]]`: `docker login` with a token read from the
/// environment (never from the file), e.g. GHCR with `GITHUB_TOKEN`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    pub registry: Spanned<String>,
    /// The user name, or the variable that holds it (`username_env`, e.g. GITHUB_ACTOR).
    pub username: Option<String>,
    pub username_env: Option<String>,
    /// The variable that holds the password or token.
    pub password_env: String,
}

/// `[workspace.metadata.images.sign]`: a key (file, `env://VAR`, KMS URI) or keyless.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignConfig {
    /// Sign every pushed image (default true when the table is there).
    pub enabled: Option<bool>,
    /// The signing key; without it, keyless (OIDC).
    pub key: Option<String>,
    /// What verifies a key's signatures (default: `x.pub` for `x.key`, the URI for KMS).
    pub public_key: Option<String>,
    /// Keyless: the certificate identity and OIDC issuer to verify against.
    pub identity: Option<String>,
    pub issuer: Option<String>,
}

/// `[workspace.metadata.images.scan]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanConfig {
    /// `push` (default: before every push), `always` (local builds too) or `never`.
    pub when: Option<Spanned<String>>,
    /// Severities that fail the gate (default CRITICAL).
    pub fail_on: Option<Vec<Spanned<String>>>,
    /// Leave out findings with no fixed version yet.
    pub ignore_unfixed: Option<bool>,
    /// trivy's cache (its database); default: TRIVY_CACHE_DIR or trivy's own.
    pub cache_dir: Option<String>,
}

/// `[workspace.metadata.images.tag_policy]`: tag templates per kind of build.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagPolicyConfig {
    pub local: Option<Vec<Spanned<String>>>,
    pub pull_request: Option<Vec<Spanned<String>>>,
    /// Pushes to the default branch.
    pub default_branch: Option<Vec<Spanned<String>>>,
    pub release_branch: Option<Vec<Spanned<String>>>,
    /// Pushes to any other branch.
    pub branch: Option<Vec<Spanned<String>>>,
    /// Stable release tags (`v1.2.3`).
    pub release: Option<Vec<Spanned<String>>>,
    /// Pre-release tags (`v1.3.0-rc.1`).
    pub prerelease: Option<Vec<Spanned<String>>>,
    /// Pushed git tags that are not releases (`nightly`); never `latest`.
    pub tag: Option<Vec<Spanned<String>>>,
    /// When `latest` moves: `default-branch`, `release`, `both` or `never`.
    pub latest: Option<Spanned<String>>,
    /// Branch name patterns (`*` wildcards) that count as release branches.
    pub release_branches: Option<Vec<Spanned<String>>>,
    /// Appended to every tag of a local build from a tree with uncommitted changes.
    pub dirty_suffix: Option<String>,
    /// Allow `--push` from pull requests (default: refused).
    pub push_pull_requests: Option<bool>,
    /// What `{timestamp}` is: `commit` (the commit time, reproducible) or `build` (now).
    pub timestamp: Option<Spanned<String>>,
    /// A version tag that is already released: `skip` it with a note (default) or `fail`.
    pub released_versions: Option<Spanned<String>>,
}

/// One `services/<name>/service.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Image name (default: the directory name).
    pub image: Option<Spanned<String>>,
    pub description: Option<String>,
    /// Dockerfile, relative to the service directory.
    pub dockerfile: Option<Spanned<String>>,
    /// Build context, relative to the service directory.
    pub context: Option<Spanned<String>>,
    pub platforms: Option<Vec<Spanned<String>>>,
    pub target: Option<String>,
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    pub registries: Option<Vec<Spanned<String>>>,
    pub tags: Option<Vec<Spanned<String>>>,
    pub port: Option<u16>,
    pub health_path: Option<String>,
    /// Run the image's HEALTHCHECK before pushing it (default: true).
    pub health_check: Option<bool>,
    /// buildx provenance and SBOM attestations on pushed images (default: false: they turn
    /// an image into an index, which AWS Lambda and some scanners reject).
    pub attestations: Option<bool>,
    /// The largest the image may be (`"200MB"`, `"1.5GB"`, `"512MiB"`): bigger fails the service
    /// before any push.
    pub max_size: Option<Spanned<String>>,
    /// The image must not run as root (checked after the build). Default: true.
    pub non_root: Option<bool>,
    /// Extra labels for this service's images.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Overrides of the global tag policy, key by key.
    pub tag_policy: Option<TagPolicyConfig>,
    /// More paths (globs from the repository root) whose change selects this service.
    #[serde(default)]
    pub watch: Vec<Spanned<String>>,
    /// Services whose image this one builds `FROM`: selected when they are.
    #[serde(default)]
    pub depends_on: Vec<Spanned<String>>,
    /// Present when the service's binary is compiled on the host by cargo and staged into the
    /// build context as `bin/<arch>/<bin>`.
    pub cargo: Option<CargoBuild>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CargoBuild {
    /// Package to build (default: the package whose manifest is in the service directory).
    pub package: Option<String>,
    /// Binary target (default: the package's only binary).
    pub bin: Option<String>,
}

/// `DOCKER_REGISTRY`, `BUILD_PLATFORMS`, `DOCKER_TAGS`: they win over both files.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EnvOverrides {
    pub registries: Option<Vec<String>>,
    pub platforms: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
}

impl EnvOverrides {
    /// Reads the three variables through `get` (the process environment in `main`). Values
    /// are split on commas only; an empty value, an empty item or a space inside an item is an
    /// error naming the variable. (`DOCKER_REGISTRY=""` is the one explicit empty: local only.)
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<EnvOverrides> {
        let list = |name: &str, empty_ok: bool, dedupe: bool| -> Result<Option<Vec<String>>> {
            let Some(v) = get(name) else {
                return Ok(None);
            };
            if v.trim().is_empty() {
                if empty_ok {
                    return Ok(Some(Vec::new()));
                }
                bail!("${name} is set but empty: unset it to use the configuration, or give comma-separated values");
            }
            let mut out = Vec::new();
            for item in v.split(',') {
                let item = item.trim();
                if item.is_empty() {
                    bail!("${name}=`{v}` has an empty item: separate values with single commas");
                }
                if item.contains(char::is_whitespace) {
                    bail!("${name}: `{item}` contains a space: separate values with commas, not spaces");
                }
                // Registry duplicates stay: the service model drops them with a note.
                if !dedupe || !out.iter().any(|o| o == item) {
                    out.push(item.to_string());
                }
            }
            Ok(Some(out))
        };
        Ok(EnvOverrides {
            registries: list("DOCKER_REGISTRY", true, false)?,
            platforms: list("BUILD_PLATFORMS", false, true)?,
            tags: list("DOCKER_TAGS", false, true)?,
        })
    }
}

/// A parsed TOML file kept with its text, so later checks can point at a line.
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    /// `file:line:column` for a byte offset.
    pub fn locate(&self, offset: usize) -> String {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("{}:{line}:{col}", self.path.display())
    }

    /// An error about a spanned value: `file:line:col: message`.
    pub fn error_at<T>(
        &self,
        value: &Spanned<T>,
        message: impl std::fmt::Display,
    ) -> anyhow::Error {
        anyhow::anyhow!("{}: {message}", self.locate(value.span().start))
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, section: &str) -> Result<T> {
        toml::from_str(&self.text).map_err(|e| {
            let at = e
                .span()
                .map(|s| self.locate(s.start))
                .unwrap_or_else(|| self.path.display().to_string());
            let msg = e.message().trim_end_matches('\n');
            match unknown_field_hint(msg) {
                Some(hint) => anyhow::anyhow!("{at}: {msg} in {section}\n  help: {hint}"),
                None => anyhow::anyhow!("{at}: {msg} in {section}"),
            }
        })
    }
}

/// Reads `[workspace.metadata.images]` from the root manifest (all of it optional).
pub fn load_global(files: &dyn Files) -> Result<(GlobalConfig, Source)> {
    #[derive(Deserialize)]
    struct Manifest {
        workspace: Option<Workspace>,
    }
    #[derive(Deserialize)]
    struct Workspace {
        metadata: Option<Metadata>,
    }
    #[derive(Deserialize)]
    struct Metadata {
        images: Option<GlobalConfig>,
    }
    let text = files
        .read(Path::new("Cargo.toml"))?
        .context("the workspace has no Cargo.toml")?;
    let src = Source {
        path: PathBuf::from("Cargo.toml"),
        text,
    };
    let parsed: Manifest = src.parse("[workspace.metadata.images]")?;
    let config = parsed
        .workspace
        .and_then(|w| w.metadata)
        .and_then(|m| m.images)
        .unwrap_or_default();
    Ok((config, src))
}

/// Reads one `service.toml` (`rel` to the workspace root); `None` when there is none.
pub fn load_service(files: &dyn Files, rel: &Path) -> Result<Option<(ServiceConfig, Source)>> {
    let Some(text) = files.read(rel)? else {
        return Ok(None);
    };
    let src = Source {
        path: rel.to_path_buf(),
        text,
    };
    let parsed: ServiceConfig = src.parse("service.toml")?;
    Ok(Some((parsed, src)))
}

/// For serde's "unknown field `x`, expected one of `a`, `b`": the closest valid key.
fn unknown_field_hint(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    let valid: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    Some(match closest(unknown, valid.iter().copied()) {
        Some(key) => format!("did you mean `{key}`? (remove or rename `{unknown}`)"),
        None => format!("remove `{unknown}`; valid keys: {}", valid.join(", ")),
    })
}

/// The candidate a person most likely meant by `word` (a typo, a transposition, a close
/// prefix), if any is close enough.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(word, c),
                strsim::jaro_winkler(word, c),
                c,
            )
        })
        .filter(|(dist, jw, _)| *dist <= limit || *jw > 0.85)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, c)| c)
}

/// `os/arch[/variant]`, as buildx takes it.
/// Platforms BuildKit builds (`os/arch[/variant]`).
pub const PLATFORMS: &[&str] = &[
    "linux/amd64",
    "linux/amd64/v2",
    "linux/amd64/v3",
    "linux/amd64/v4",
    "linux/arm64",
    "linux/arm64/v8",
    "linux/arm/v7",
    "linux/arm/v6",
    "linux/arm/v5",
    "linux/386",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
    "linux/mips64le",
    "linux/mips64",
    "linux/loong64",
    "windows/amd64",
    "windows/arm64",
    "darwin/amd64",
    "darwin/arm64",
    "freebsd/amd64",
];

pub fn check_platform(p: &str) -> Result<()> {
    if PLATFORMS.contains(&p) {
        return Ok(());
    }
    if p.contains([';', ' ']) {
        bail!("platform `{p}`: separate platforms with commas");
    }
    // What people write for what BuildKit calls it.
    let lower = p.to_ascii_lowercase();
    let (os, arch) = lower.split_once('/').unwrap_or(("linux", lower.as_str()));
    let alias = match arch {
        "x86_64" | "x86-64" | "amd64" => Some("amd64"),
        "aarch64" | "arm64" => Some("arm64"),
        "armhf" | "armv7" | "armv7l" => Some("arm/v7"),
        "i386" | "i686" | "x86" => Some("386"),
        _ => None,
    };
    if let Some(a) = alias {
        let guess = format!("{os}/{a}");
        if PLATFORMS.contains(&guess.as_str()) {
            bail!("unknown platform `{p}`: did you mean `{guess}`?");
        }
    }
    if !p.contains('/') {
        bail!("unknown platform `{p}`: write it as os/arch[/variant], e.g. linux/amd64");
    }
    let parts: Vec<&str> = p.split('/').collect();
    let shaped = (2..=3).contains(&parts.len()) && parts.iter().all(|s| !s.is_empty());
    let hint = match closest(p, PLATFORMS.iter().copied()) {
        Some(c) => format!("did you mean `{c}`?"),
        None if !shaped => {
            "write it as os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8".to_string()
        }
        None => format!("known: {}", PLATFORMS.join(", ")),
    };
    bail!("unknown platform `{p}`: {hint}");
}

/// A size with its unit: `200MB`, `1.5GB`, `512MiB`, `900kB`, `1024` (bytes). Decimal units are
/// powers of 1000 (as `docker images` shows sizes), `KiB`/`MiB`/`GiB` powers of 1024.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("size `{s}`: write a number and a unit, e.g. \"200MB\""))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => bail!("size `{s}`: unknown unit `{other}` (use B, kB, MB, GB, KiB, MiB or GiB)"),
    };
    Ok((n * factor).round() as u64)
}

/// `1234567` → `1.2 MB`.
pub fn show_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => format!("{:.2} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

/// A registry: `host[:port][/path]`, no scheme.
pub fn check_registry(r: &str) -> Result<()> {
    if r.contains("://") {
        bail!("invalid registry `{r}`: drop the scheme, e.g. `ghcr.io/acme` or `127.0.0.1:5000`");
    }
    let (host, path) = r.split_once('/').unwrap_or((r, ""));
    // The OCI reference grammar: a domain (labels of letters, digits and `-`), an IPv4 or a
    // bracketed IPv6 address, then an optional numeric port.
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, "")) if v6.contains(':') => (Some(v6), None),
            Some((v6, after)) if v6.contains(':') => match after.strip_prefix(':') {
                Some(p) => (Some(v6), Some(p)),
                None => (None, None),
            },
            _ => (None, None),
        },
        None => match host.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(host), None),
        },
    };
    let name_ok = name.is_some_and(|n| {
        !n.is_empty()
            && (n.contains(':') && n.chars().all(|c| c.is_ascii_hexdigit() || c == ':')
                || n.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                }))
    });
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    let host_ok = name_ok && port_ok;
    if !port_ok {
        bail!("invalid registry `{r}`: the port must be a number from 1 to 65535");
    }
    if name_ok && path.chars().any(|c| c.is_ascii_uppercase()) {
        bail!(
            "invalid registry `{r}`: the path must be lowercase (`{}`)",
            path.to_ascii_lowercase()
        );
    }
    if !host_ok || (!path.is_empty() && check_repository(path).is_err()) {
        bail!("invalid registry `{r}`: expected host[:port][/path], e.g. `ghcr.io/acme` or `123456789012.dkr.ecr.us-east-1.amazonaws.com`");
    }
    Ok(())
}

/// A repository path: `/`-separated lowercase components of `[a-z0-9]+([._-][a-z0-9]+)*`.
pub fn check_repository(path: &str) -> Result<()> {
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        !c.is_empty()
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && c.chars().all(|ch| {
                ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
            })
    };
    if path.len() > 255 || !path.split('/').all(component_ok) {
        bail!("invalid repository name `{path}`: use lowercase letters, digits and . _ - between `/`-separated parts (e.g. `team/api`)");
    }
    Ok(())
}

/// The rules a registry adds to the repository name under it: ECR (2–256 characters), GHCR
/// and Docker Hub (an owner or namespace before the name).
pub fn check_reference(registry: &str, repository: &str) -> Result<()> {
    let (host, path) = registry.split_once('/').unwrap_or((registry, ""));
    let full = if path.is_empty() {
        repository.to_string()
    } else {
        format!("{path}/{repository}")
    };
    if is_ecr_host(host) {
        if !(2..=256).contains(&full.len()) {
            bail!("ECR repository `{full}` must be 2 to 256 characters");
        }
    } else if host == "ghcr.io" && !full.contains('/') {
        bail!("ghcr.io images live under an owner: use the registry `ghcr.io/<owner>` (got `ghcr.io/{full}`)");
    } else if matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) && !full.contains('/')
    {
        bail!("Docker Hub images live under a namespace: use the registry `docker.io/<namespace>` or a prefix (got `{host}/{full}`)");
    }
    Ok(())
}

/// `<12 digits>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`
pub fn is_ecr_host(host: &str) -> bool {
    let host = host.strip_suffix(".cn").unwrap_or(host);
    let Some(rest) = host.strip_suffix(".amazonaws.com") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('.').collect();
    matches!(parts.as_slice(), [account, "dkr", ecr, region]
        if account.len() == 12
            && account.chars().all(|c| c.is_ascii_digit())
            && (*ecr == "ecr" || *ecr == "ecr-fips")
            && !region.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_specific_repository_rules() {
        let ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
        assert!(is_ecr_host(ecr));
        assert!(is_ecr_host(
            "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com"
        ));
        assert!(is_ecr_host(
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"
        ));
        assert!(!is_ecr_host("12345.dkr.ecr.us-east-1.amazonaws.com"));
        assert!(!is_ecr_host("ghcr.io"));
        assert!(check_reference(ecr, "team/api").is_ok());
        assert!(check_reference(ecr, "a")
            .unwrap_err()
            .to_string()
            .contains("2 to 256"));
        assert!(check_reference(&format!("{ecr}/team"), &"x".repeat(252)).is_err());
        assert!(check_reference("ghcr.io/acme", "api").is_ok());
        assert!(check_reference("ghcr.io", "acme/api").is_ok());
        let err = check_reference("ghcr.io", "api").unwrap_err().to_string();
        assert!(err.contains("use the registry `ghcr.io/<owner>`"), "{err}");
        assert!(check_reference("docker.io", "api").is_err());
        assert!(check_reference("docker.io/acme", "api").is_ok());
        assert!(check_reference("127.0.0.1:5000", "api").is_ok());
    }

    fn source(name: &str, text: &str) -> Source {
        Source {
            path: PathBuf::from(name),
            text: text.to_string(),
        }
    }

    #[test]
    fn global_section_parses_and_is_optional() {
        let src = source(
            "Cargo.toml",
            "[workspace]\nmembers = []\n[workspace.metadata.images]\nregistries = [\"ghcr.io/acme\"]\nprefix = \"team\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n",
        );
        #[derive(Deserialize)]
        struct M {
            workspace: W,
        }
        #[derive(Deserialize)]
        struct W {
            metadata: Me,
        }
        #[derive(Deserialize)]
        struct Me {
            images: GlobalConfig,
        }
        let m: M = src.parse("x").unwrap();
        let g = m.workspace.metadata.images;
        assert_eq!(g.registries[0].get_ref(), "ghcr.io/acme");
        assert_eq!(g.prefix.unwrap().into_inner(), "team");
        assert_eq!(g.platforms.unwrap().len(), 2);
    }

    #[test]
    fn unknown_service_key_names_line_column_and_suggests() {
        let src = source(
            "services/api/service.toml",
            "description = \"x\"\nplatfroms = [\"linux/amd64\"]\n",
        );
        let err = src
            .parse::<ServiceConfig>("service.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("services/api/service.toml:2:1: unknown field `platfroms`"),
            "{err}"
        );
        assert!(err.contains("did you mean `platforms`?"), "{err}");
    }

    #[test]
    fn unknown_key_without_close_match_lists_valid_keys() {
        let src = source("s.toml", "zzzzzz = 1\n");
        let err = src
            .parse::<ServiceConfig>("service.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("remove `zzzzzz`; valid keys: image, description"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_names_line_and_column() {
        let src = source("s.toml", "\n\nport = \"eighty\"\n");
        let err = src
            .parse::<ServiceConfig>("service.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("s.toml:3:8: invalid type: string \"eighty\""),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_in_cargo_table_is_an_error() {
        let src = source("s.toml", "[cargo]\npackage = \"api\"\nbinary = \"api\"\n");
        let err = src
            .parse::<ServiceConfig>("service.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("s.toml:3:1: unknown field `binary`"), "{err}");
        assert!(err.contains("did you mean `bin`?"), "{err}");
    }

    #[test]
    fn invalid_toml_is_located() {
        let src = source("s.toml", "image = \"api\"\nimage = \"b\"\n");
        let err = src
            .parse::<ServiceConfig>("service.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("s.toml:2:1:"), "{err}");
    }

    #[test]
    fn closest_finds_typos_and_transpositions_only() {
        let names = ["api", "web", "worker", "platforms"];
        assert_eq!(closest("wbe", names), Some("web"));
        assert_eq!(closest("workr", names), Some("worker"));
        assert_eq!(closest("platfroms", names), Some("platforms"));
        assert_eq!(closest("database", names), None);
    }

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("200MB").unwrap(), 200_000_000);
        assert_eq!(parse_size("1.5GB").unwrap(), 1_500_000_000);
        assert_eq!(parse_size("512MiB").unwrap(), 512 * 1024 * 1024);
        assert_eq!(parse_size("900 kB").unwrap(), 900_000);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("200 parsecs")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
        assert!(parse_size("lots").is_err());
        assert_eq!(show_size(1_982_491), "2.0 MB");
    }

    #[test]
    fn env_overrides_split_on_commas_only_and_refuse_what_they_cannot_mean() {
        let env = |k: &str| match k {
            "DOCKER_REGISTRY" => Some("ghcr.io/acme, 127.0.0.1:5000".to_string()),
            "BUILD_PLATFORMS" => Some("linux/amd64,linux/arm64,linux/amd64".to_string()),
            _ => None,
        };
        let o = EnvOverrides::from_lookup(env).unwrap();
        assert_eq!(o.registries.unwrap(), ["ghcr.io/acme", "127.0.0.1:5000"]);
        assert_eq!(
            o.platforms.unwrap(),
            ["linux/amd64", "linux/arm64"],
            "duplicates dropped"
        );
        assert_eq!(o.tags, None);
        let err = |var: &str, value: &str| {
            let value = value.to_string();
            EnvOverrides::from_lookup(|k| (k == var).then(|| value.clone()))
                .unwrap_err()
                .to_string()
        };
        assert!(err("DOCKER_TAGS", "").contains("$DOCKER_TAGS is set but empty"));
        assert!(err("BUILD_PLATFORMS", " ").contains("$BUILD_PLATFORMS is set but empty"));
        assert!(err("DOCKER_TAGS", "v1 latest").contains("`v1 latest` contains a space"));
        assert!(err("DOCKER_TAGS", "v1,,latest").contains("has an empty item"));
    }

    #[test]
    fn empty_docker_registry_means_local_only() {
        let o = EnvOverrides::from_lookup(|k| (k == "DOCKER_REGISTRY").then(String::new)).unwrap();
        assert_eq!(o.registries, Some(vec![]));
    }

    #[test]
    fn platform_registry_and_repository_grammar() {
        assert!(check_platform("linux/amd64").is_ok());
        assert!(check_platform("linux/arm64/v8").is_ok());
        for bad in [
            "linux",
            "linux/",
            "Linux/amd64",
            "linux/amd64/v8/x",
            "linux/amd64,linux/arm64",
        ] {
            assert!(check_platform(bad).is_err(), "{bad}");
        }
        for (given, hint) in [
            ("linux/amd65", "did you mean `linux/amd64`?"),
            ("linux/x86_64", "did you mean `linux/amd64`?"),
            ("Linux/AMD64", "did you mean `linux/amd64`?"),
            ("aarch64", "did you mean `linux/arm64`?"),
            ("linux", "write it as os/arch"),
            ("linux/amd64;linux/arm64", "separate platforms with commas"),
        ] {
            let err = check_platform(given).unwrap_err().to_string();
            assert!(err.contains(hint), "{given}: {err}");
        }
        assert!(check_registry("127.0.0.1:5000").is_ok());
        assert!(check_registry("ghcr.io/acme").is_ok());
        assert!(check_registry("https://ghcr.io").is_err());
        assert!(check_registry("ghcr.io/Acme").is_err());
        for bad in [
            "ghcr.io/acme/",
            "ghcr.io acme",
            " ghcr.io",
            "ghcr.io//acme",
            "",
            "host:port:1/x",
        ] {
            assert!(check_registry(bad).is_err(), "`{bad}`");
        }
        assert!(check_registry("[::1]:5000").is_ok());
        assert!(check_registry("localhost:5000/team/sub").is_ok());
        assert!(check_repository("team/api-v2").is_ok());
        for bad in ["Api", "api-", "-api", "team//api", "a b", ""] {
            assert!(check_repository(bad).is_err(), "{bad}");
        }
    }
}
